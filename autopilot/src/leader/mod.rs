//! Leader election on a `coordination.k8s.io/v1` Lease.
//!
//! Several replicas of an operator contend for one Lease; the holder runs the phase handlers and the others
//! wait. The rules follow client-go's `leaderelection` so the Lease reads the same to `kubectl` users:
//!
//! - A replica takes the Lease when it does not exist (create), when nobody holds it (released), or when the
//!   holder has not renewed it for the lease duration. Expiry is judged on this replica's own clock, from the
//!   moment it last saw the Lease record change, so clock skew between nodes does not matter.
//! - Every write is an update guarded by the `resourceVersion` that was read, so of two replicas racing for
//!   the same Lease exactly one wins; the other gets a conflict and stays a standby.
//! - The leader renews every retry period. When it cannot renew within the renew deadline, it steps down
//!   (its [`Leadership`] turns to standby) — before anyone else may consider the Lease expired, because the
//!   renew deadline is shorter than the lease duration.
//! - [`LeaseGuard::release`] clears `holderIdentity`, so a standby takes over at its next retry instead of
//!   waiting for the Lease to expire. Dropping the guard without releasing models a crash: the Lease is left
//!   to expire.
//!
//! We write the elector ourselves rather than use a lease crate: the ones on kube 5 renew and release with
//! patches that carry no `resourceVersion` precondition, which lets a stale holder overwrite a newer one.
//!
//! ```no_run
//! # async fn example(client: kube::Client) -> Result<(), autopilot::leader::LeaderError> {
//! use autopilot::leader::{LeaderElectionConfig, LeaderElector};
//!
//! let config = LeaderElectionConfig::new("my-operator", "operators");
//! let guard = LeaderElector::new(client, config)?.spawn();
//! let mut leadership = guard.leadership();
//! leadership.wait_until_leader().await;
//! // ... run the controllers until leadership is lost or the process shuts down ...
//! guard.release().await?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::shutdown::run_with_grace;

mod elector;

pub use elector::{LeaderElector, LeaseGuard};

/// Default time a standby waits after the last renewal before it takes the Lease over.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);
/// Default time the leader keeps trying to renew before it steps down.
pub const DEFAULT_RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// Default interval between two acquire or renew attempts.
pub const DEFAULT_RETRY_PERIOD: Duration = Duration::from_secs(2);

/// Errors of leader election.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// A setting is out of range; `field` names it as the operator configuration does.
    #[error("invalid leader election setting `{field}`: {reason}")]
    InvalidConfig {
        /// The offending setting.
        field: &'static str,
        /// Why it is rejected.
        reason: String,
    },
    /// A request to the API server about the Lease failed.
    #[error("request for lease {namespace}/{name} failed")]
    Api {
        /// Namespace of the Lease.
        namespace: String,
        /// Name of the Lease.
        name: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The background election task panicked or was cancelled.
    #[error("leader election task ended abnormally")]
    Task(#[source] tokio::task::JoinError),
}

/// Where and how to contend for leadership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderElectionConfig {
    /// Name of the Lease object.
    pub lease_name: String,
    /// Namespace of the Lease object.
    pub lease_namespace: String,
    /// This replica's identity, written to `holderIdentity`; must be unique among the replicas.
    pub identity: String,
    /// How long a standby waits after the last renewal it saw before taking over.
    pub lease_duration: Duration,
    /// How long the leader keeps retrying a renewal before it steps down; shorter than `lease_duration`.
    pub renew_deadline: Duration,
    /// Interval between attempts; shorter than `renew_deadline`.
    pub retry_period: Duration,
}

impl LeaderElectionConfig {
    /// Settings with the controller-runtime defaults (15 s / 10 s / 2 s) and [`default_identity`].
    ///
    /// ```
    /// let config = autopilot::leader::LeaderElectionConfig::new("canary-operator", "operators");
    /// assert_eq!(config.lease_duration.as_secs(), 15);
    /// assert!(config.validate().is_ok());
    /// ```
    pub fn new(lease_name: impl Into<String>, lease_namespace: impl Into<String>) -> Self {
        Self {
            lease_name: lease_name.into(),
            lease_namespace: lease_namespace.into(),
            identity: default_identity(),
            lease_duration: DEFAULT_LEASE_DURATION,
            renew_deadline: DEFAULT_RENEW_DEADLINE,
            retry_period: DEFAULT_RETRY_PERIOD,
        }
    }

    /// Checks that the names are set and that `retry_period < renew_deadline < lease_duration`, which is what
    /// keeps two replicas from leading at once.
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut config = autopilot::leader::LeaderElectionConfig::new("op", "default");
    /// config.renew_deadline = Duration::from_secs(20);
    /// let error = config.validate().unwrap_err().to_string();
    /// assert!(error.contains("renewDeadline"), "{error}");
    /// ```
    pub fn validate(&self) -> Result<(), LeaderError> {
        let invalid = |field, reason: &str| {
            Err(LeaderError::InvalidConfig {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.lease_name.is_empty() {
            return invalid("leaseName", "must not be empty");
        }
        if self.lease_namespace.is_empty() {
            return invalid("leaseNamespace", "must not be empty");
        }
        if self.identity.is_empty() {
            return invalid("identity", "must not be empty");
        }
        if self.lease_duration.as_secs() < 1 {
            return invalid("leaseDuration", "must be at least one second");
        }
        if self.renew_deadline >= self.lease_duration {
            return invalid("renewDeadline", "must be shorter than leaseDuration");
        }
        if self.retry_period.is_zero() || self.retry_period >= self.renew_deadline {
            return invalid(
                "retryPeriod",
                "must be positive and shorter than renewDeadline",
            );
        }
        Ok(())
    }

    /// The lease duration in whole seconds, as the Lease stores it.
    fn lease_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }
}

/// The identity a replica uses when none is configured: the pod name from `POD_NAME` (set it from the
/// downward API), else the host name with a random suffix so two processes on one host differ.
///
/// ```
/// let identity = autopilot::leader::default_identity();
/// assert!(!identity.is_empty());
/// ```
pub fn default_identity() -> String {
    if let Ok(pod) = std::env::var("POD_NAME")
        && !pod.is_empty()
    {
        return pod;
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "autopilot".to_owned());
    let suffix: String = std::iter::repeat_with(fastrand::lowercase)
        .take(6)
        .collect();
    format!("{host}-{suffix}")
}

/// What this replica currently is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaderStatus {
    /// The Lease has not been read successfully yet.
    Starting,
    /// Another replica holds the Lease (or nobody does and this one has not taken it yet).
    Standby,
    /// This replica holds the Lease and may run handlers.
    Leader,
}

/// A read-only view of this replica's [`LeaderStatus`], cheap to clone.
///
/// When the election task ends (released or dropped), the view reports [`LeaderStatus::Standby`].
#[derive(Clone, Debug)]
pub struct Leadership {
    status: watch::Receiver<LeaderStatus>,
    /// Keeps the sender of [`Leadership::always`] alive: a dropped sender reads as "no longer leading".
    _always: Option<Arc<watch::Sender<LeaderStatus>>>,
}

impl Leadership {
    /// A view that always leads, for operators that run without leader election.
    ///
    /// ```
    /// assert!(autopilot::leader::Leadership::always().is_leader());
    /// ```
    pub fn always() -> Self {
        let (sender, status) = watch::channel(LeaderStatus::Leader);
        Self {
            status,
            _always: Some(Arc::new(sender)),
        }
    }

    /// The current status.
    pub fn status(&self) -> LeaderStatus {
        if self.status.has_changed().is_err() {
            return LeaderStatus::Standby;
        }
        *self.status.borrow()
    }

    /// Whether this replica leads right now.
    pub fn is_leader(&self) -> bool {
        self.status() == LeaderStatus::Leader
    }

    /// Waits until this replica leads. Never returns when the election has ended without leading.
    pub async fn wait_until_leader(&mut self) {
        let leads = self
            .status
            .wait_for(|s| *s == LeaderStatus::Leader)
            .await
            .is_ok();
        // An ended election keeps its last value, which may still read "leader": it never leads again.
        if !leads || self.status.has_changed().is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Waits until this replica no longer leads (stepped down, released, or the election task ended).
    pub async fn wait_until_lost(&mut self) {
        // An error means the sender is gone, which also means we no longer lead.
        let _ = self.status.wait_for(|s| *s != LeaderStatus::Leader).await;
    }

    /// Waits for the next status change and returns the new status, or `None` once the election has ended.
    pub async fn changed(&mut self) -> Option<LeaderStatus> {
        self.status.changed().await.ok()?;
        Some(*self.status.borrow_and_update())
    }
}

/// How one term of [`lead_once`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TermEnd {
    /// `shutdown` was cancelled (the work, if it started, drained within the grace period), or the work
    /// ended by itself.
    Finished,
    /// This replica lost the Lease while the work ran; the work was stopped at once.
    LeadershipLost,
}

/// Waits until this replica leads, then runs `work` until leadership is lost or `shutdown` is cancelled.
///
/// `work` gets a stop token and its future is run:
/// - leadership lost: the token is cancelled and the future dropped at once, since a standby may take over
///   soon — handlers stop at their next await point ([`TermEnd::LeadershipLost`]);
/// - `shutdown` cancelled: the token is cancelled and the future gets `grace` to finish its in-flight work
///   (cut short if leadership is lost meanwhile);
/// - the future ends by itself: its error, if any, is returned.
///
/// Release the Lease (see [`LeaseGuard::release`]) after this returns, so no handler runs past the release.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// use tokio_util::sync::CancellationToken;
/// use autopilot::leader::{lead_once, Leadership, TermEnd};
///
/// let shutdown = CancellationToken::new();
/// let trigger = shutdown.clone();
/// let ended = lead_once(&mut Leadership::always(), &shutdown, Duration::from_secs(1), |stop| {
///     trigger.cancel(); // as if SIGTERM arrived while the work runs
///     async move { stop.cancelled().await; Ok::<(), std::io::Error>(()) }
/// })
/// .await;
/// assert_eq!(ended.unwrap(), TermEnd::Finished);
/// # }
/// ```
pub async fn lead_once<F, Fut, E>(
    leadership: &mut Leadership,
    shutdown: &CancellationToken,
    grace: Duration,
    work: F,
) -> Result<TermEnd, E>
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    tokio::select! {
        () = leadership.wait_until_leader() => {}
        () = shutdown.cancelled() => return Ok(TermEnd::Finished),
    }
    info!("leading: starting controllers");
    let stop = shutdown.child_token();
    let running = work(stop.clone());
    tokio::pin!(running);
    let mut lost = leadership.clone();
    tokio::select! {
        result = &mut running => result.map(|()| TermEnd::Finished),
        () = lost.wait_until_lost() => {
            warn!("lost leadership: stopping controllers");
            stop.cancel();
            Ok(TermEnd::LeadershipLost)
        }
        () = shutdown.cancelled() => tokio::select! {
            finished = run_with_grace(&mut running, shutdown, grace) => {
                finished.unwrap_or(Ok(())).map(|()| TermEnd::Finished)
            }
            () = lost.wait_until_lost() => Ok(TermEnd::LeadershipLost),
        },
    }
}

/// Runs `work` whenever this replica leads, until `shutdown` is cancelled: [`lead_once`] again after each
/// lost leadership, for work that can start afresh (`work` builds it anew each time).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// use tokio_util::sync::CancellationToken;
/// use autopilot::leader::{run_while_leading, Leadership};
///
/// let shutdown = CancellationToken::new();
/// let trigger = shutdown.clone();
/// let result: Result<(), ()> = run_while_leading(Leadership::always(), &shutdown, Duration::from_secs(1), |stop| {
///     trigger.cancel(); // as if SIGTERM arrived while the work runs
///     async move { stop.cancelled().await; Ok(()) }
/// })
/// .await;
/// assert!(result.is_ok());
/// # }
/// ```
pub async fn run_while_leading<F, Fut, E>(
    mut leadership: Leadership,
    shutdown: &CancellationToken,
    grace: Duration,
    mut work: F,
) -> Result<(), E>
where
    F: FnMut(CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    while lead_once(&mut leadership, shutdown, grace, &mut work).await? == TermEnd::LeadershipLost {
    }
    Ok(())
}
