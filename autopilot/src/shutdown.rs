//! Graceful shutdown: SIGTERM/SIGINT stop new work, in-flight handlers get a grace period to finish, then
//! the Lease is released. [`OperatorProcess`] puts this together with leader election and the probe server.
//!
//! ```no_run
//! # async fn example() -> Result<(), autopilot::shutdown::ShutdownError> {
//! use autopilot::shutdown::{run_with_grace, shutdown_on_signal, DEFAULT_GRACE_PERIOD};
//!
//! let shutdown = shutdown_on_signal()?;
//! let stop = shutdown.clone();
//! // The work stops taking new items when `stop` fires and finishes what it has in hand.
//! let work = async move { stop.cancelled().await };
//! let finished = run_with_grace(work, &shutdown, DEFAULT_GRACE_PERIOD).await;
//! assert!(finished.is_some());
//! # Ok(()) }
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::OperatorConfig;
use crate::leader::{
    LeaderElectionConfig, LeaderElector, LeaderError, Leadership, TermEnd, lead_once,
};
use crate::observability::{Health, Metrics, RuntimeObserver, ServerError, bind, serve};
use crate::runtime::Operator;
use crate::{Autopilot, BoxError};

/// How long in-flight handlers may run after a shutdown signal, as in controller-runtime.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(30);

/// Errors of shutdown set-up.
#[derive(Debug, thiserror::Error)]
pub enum ShutdownError {
    /// A signal handler could not be installed.
    #[error("cannot listen for {signal}")]
    Signal {
        /// The signal's name.
        signal: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Listens for SIGTERM and SIGINT and returns a token cancelled at the first of them.
///
/// The handlers are installed before this returns, so a signal sent right afterwards is not lost. Must be
/// called within a Tokio runtime.
pub fn shutdown_on_signal() -> Result<CancellationToken, ShutdownError> {
    let listen = |kind, name| {
        signal(kind).map_err(|source| ShutdownError::Signal {
            signal: name,
            source,
        })
    };
    let mut terminate = listen(SignalKind::terminate(), "SIGTERM")?;
    let mut interrupt = listen(SignalKind::interrupt(), "SIGINT")?;
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
            () = cancel.cancelled() => return,
        };
        info!(signal = name, "shutting down");
        cancel.cancel();
    });
    Ok(token)
}

/// Runs `work` to completion, but once `stop` is cancelled gives it at most `grace` more time.
///
/// `work` is expected to watch `stop` itself (stop taking new items, finish the ones in hand); this bounds
/// how long that may take. Returns `None` when the grace period ran out and `work` was dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// use tokio_util::sync::CancellationToken;
/// use autopilot::shutdown::run_with_grace;
///
/// let stop = CancellationToken::new();
/// stop.cancel();
/// let stubborn = std::future::pending::<()>();
/// assert_eq!(run_with_grace(stubborn, &stop, Duration::from_millis(10)).await, None);
/// # }
/// ```
pub async fn run_with_grace<F: Future>(
    work: F,
    stop: &CancellationToken,
    grace: Duration,
) -> Option<F::Output> {
    tokio::pin!(work);
    tokio::select! {
        output = &mut work => return Some(output),
        () = stop.cancelled() => {}
    }
    match tokio::time::timeout(grace, work).await {
        Ok(output) => Some(output),
        Err(_) => {
            warn!(
                grace_seconds = grace.as_secs_f64(),
                "in-flight work did not finish within the grace period; abandoning it"
            );
            None
        }
    }
}

/// Errors of [`OperatorProcess::run`].
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The signal handlers could not be installed.
    #[error("installing signal handlers")]
    Shutdown(#[from] ShutdownError),
    /// The probe and metrics server failed.
    #[error("metrics and probe server")]
    Server(#[from] ServerError),
    /// Leader election could not start or release.
    #[error("leader election")]
    Leader(#[from] LeaderError),
    /// The controllers ended with an error.
    #[error("controllers failed")]
    Controllers(#[source] BoxError),
    /// This replica lost the Lease and stopped its controllers; exit and let the pod restart as a standby
    /// (controller-runtime does the same).
    #[error("lost the leader election lease")]
    LeadershipLost,
}

impl ProcessError {
    /// Keeps a `ProcessError` the controllers returned as it is; wraps anything else.
    fn from_controllers(error: BoxError) -> Self {
        match error.downcast::<Self>() {
            Ok(own) => *own,
            Err(other) => Self::Controllers(other),
        }
    }
}

/// The production wrapper around an operator's controllers: probe and metrics server, leader election,
/// graceful shutdown.
///
/// [`OperatorProcess::run`] serves `/metrics`, `/healthz` and `/readyz`; contends for the Lease (when
/// configured); runs the controllers only while leading (see [`lead_once`]); on shutdown gives
/// in-flight handlers the grace period, then releases the Lease and stops the server.
///
/// ```no_run
/// # async fn example(client: kube::Client) -> Result<(), Box<dyn std::error::Error>> {
/// use autopilot::leader::LeaderElectionConfig;
/// use autopilot::observability::{Health, Metrics};
/// use autopilot::shutdown::{shutdown_on_signal, OperatorProcess, DEFAULT_GRACE_PERIOD};
///
/// let process = OperatorProcess {
///     metrics_address: Some("0.0.0.0:8080".parse()?),
///     leader_election: Some(LeaderElectionConfig::new("canary-operator", "operators")),
///     grace_period: DEFAULT_GRACE_PERIOD,
/// };
/// let health = Health::new();
/// let synced = health.clone();
/// process
///     .run(client, Metrics::new(), health, shutdown_on_signal()?, |stop| {
///         let synced = synced.clone();
///         async move {
///             synced.set_caches_synced(true); // once the controllers' caches are filled
///             stop.cancelled().await; // run the controllers until `stop` fires
///             Ok::<(), std::io::Error>(())
///         }
///     })
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorProcess {
    /// Where to serve `/metrics`, `/healthz` and `/readyz`; `None` serves nothing.
    pub metrics_address: Option<SocketAddr>,
    /// The Lease to contend for; `None` runs the controllers at once, as the only replica.
    pub leader_election: Option<LeaderElectionConfig>,
    /// How long in-flight handlers may run after the shutdown signal.
    pub grace_period: Duration,
}

impl Default for OperatorProcess {
    fn default() -> Self {
        Self {
            metrics_address: None,
            leader_election: None,
            grace_period: DEFAULT_GRACE_PERIOD,
        }
    }
}

impl OperatorProcess {
    /// The process settings of an operator configuration: its metrics address, grace period, and Lease
    /// when leader election is enabled.
    ///
    /// ```
    /// use std::time::Duration;
    /// use autopilot::{config::OperatorConfig, shutdown::OperatorProcess};
    ///
    /// let flags = ["operator", "--shutdown-grace-period", "45s", "--leader-election", "true"];
    /// let config = OperatorConfig::from_sources(None, |_| None, flags).unwrap();
    /// let process = OperatorProcess::from_config(&config);
    /// assert_eq!(process.grace_period, Duration::from_secs(45));
    /// assert_eq!(process.leader_election.unwrap().lease_name, "autopilot");
    /// assert!(OperatorProcess::from_config(&OperatorConfig::default()).leader_election.is_none());
    /// ```
    pub fn from_config(config: &OperatorConfig) -> Self {
        Self {
            metrics_address: Some(config.metrics_address),
            leader_election: config
                .leader_election_enabled
                .then(|| config.leader_election.clone()),
            grace_period: config.shutdown_grace_period,
        }
    }

    /// Runs `controllers` under this process's rules until `shutdown` is cancelled and the work drained.
    ///
    /// `controllers` is called once this replica leads, with a token that fires when it must stop taking
    /// new work; it should set [`Health::set_caches_synced`] once its caches are filled. A clean return
    /// after the shutdown signal is `Ok(())`, which `main` turns into exit code 0. Losing the Lease stops
    /// the controllers at once and ends the run with [`ProcessError::LeadershipLost`].
    pub async fn run<F, Fut, E>(
        self,
        client: Client,
        metrics: Metrics,
        health: Health,
        shutdown: CancellationToken,
        controllers: F,
    ) -> Result<(), ProcessError>
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Into<BoxError>,
    {
        let stop_server = CancellationToken::new();
        let server = match self.metrics_address {
            Some(addr) => {
                let listener = bind(addr).await?;
                let address = listener.local_addr().unwrap_or(addr);
                info!(%address, "serving /metrics, /healthz and /readyz");
                let serving = serve(
                    listener,
                    metrics.clone(),
                    health.clone(),
                    stop_server.clone().cancelled_owned(),
                );
                Some(tokio::spawn(serving))
            }
            None => None,
        };
        let (guard, mut leadership) = match self.leader_election {
            Some(config) => {
                let lease = config.lease_name.clone();
                let guard = LeaderElector::new(client, config)?.spawn();
                let leadership = guard.leadership();
                health.set_leadership(leadership.clone());
                metrics.track_leadership(&lease, leadership.clone());
                (Some(guard), leadership)
            }
            None => (None, Leadership::always()),
        };
        let term = lead_once(
            &mut leadership,
            &shutdown,
            self.grace_period,
            |stop| async move {
                controllers(stop)
                    .await
                    .map_err(|e| ProcessError::from_controllers(e.into()))
            },
        )
        .await;
        // Controllers stopped: a standby may take over at once.
        health.set_caches_synced(false);
        let released = match guard {
            Some(guard) => guard.release().await.map(drop),
            None => Ok(()),
        };
        stop_server.cancel();
        if let Some(server) = server {
            // The server ends right after the cancellation; its error, if any, is secondary to ours.
            let _ = server.await;
        }
        if term? == TermEnd::LeadershipLost {
            return Err(ProcessError::LeadershipLost);
        }
        released?;
        Ok(())
    }
}

impl<K: Autopilot> Operator<K> {
    /// Runs this operator under `process`'s rules until `shutdown` is cancelled: `/metrics` and the probes
    /// follow the runtime (through [`RuntimeObserver`]), handlers run only while leading, and a shutdown
    /// drains them within the grace period before the Lease is released. [`Operator::run`] calls this with
    /// the settings from the configuration and SIGTERM/SIGINT as `shutdown`.
    ///
    /// The controllers start once per process: losing the Lease stops them at once and ends the run with
    /// [`ProcessError::LeadershipLost`], and the pod restarts as a standby with fresh caches.
    pub async fn run_process(
        self,
        process: OperatorProcess,
        metrics: Metrics,
        health: Health,
        shutdown: CancellationToken,
    ) -> Result<(), ProcessError> {
        let client = self.client().clone();
        let operator = self.observe(Arc::new(RuntimeObserver::new(
            metrics.clone(),
            health.clone(),
        )));
        process
            .run(client, metrics, health, shutdown, |stop| async move {
                operator
                    .run_until(stop.cancelled_owned())
                    .await
                    .map_err(|e| ProcessError::Controllers(Box::new(e)))
            })
            .await
    }
}
