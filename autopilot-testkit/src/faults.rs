//! Fault injection for reliability tests: failing requests, added latency, cut watch streams and a compacted
//! change history.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use crate::cluster::Cluster;

/// Faults the HTTP layer consults on every resource request.
#[derive(Debug)]
pub struct FaultState {
    failures: Mutex<VecDeque<u16>>,
    latency_micros: AtomicU64,
    cuts: watch::Sender<u64>,
}

impl Default for FaultState {
    fn default() -> Self {
        Self {
            failures: Mutex::new(VecDeque::new()),
            latency_micros: AtomicU64::new(0),
            cuts: watch::channel(0).0,
        }
    }
}

impl FaultState {
    /// The status code the next resource request must fail with, if a failure is queued.
    pub fn take_failure(&self) -> Option<u16> {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
    }

    /// Delay added to each resource request.
    pub fn latency(&self) -> Duration {
        Duration::from_micros(self.latency_micros.load(Ordering::Relaxed))
    }

    /// A receiver that changes whenever open watches must be cut.
    pub fn cuts(&self) -> watch::Receiver<u64> {
        self.cuts.subscribe()
    }

    /// Ends every open watch stream.
    pub fn cut_watches(&self) {
        self.cuts.send_modify(|generation| *generation += 1);
    }
}

/// Handle to inject faults into a running [`crate::ApiServer`].
///
/// Faults apply to requests on resources (`/api/v1/...`, `/apis/{group}/{version}/...` naming a resource),
/// not to discovery, so clients can still find their way.
///
/// ```no_run
/// # async fn demo() -> Result<(), autopilot_testkit::Error> {
/// let server = autopilot_testkit::ApiServer::start().await?;
/// server.faults().fail_next(2, 500); // the next two resource requests get 500 InternalError
/// server.faults().compact(); // watches resuming from older resourceVersions get 410 Expired
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Faults {
    cluster: Arc<Cluster>,
}

impl Faults {
    pub(crate) fn new(cluster: Arc<Cluster>) -> Self {
        Self { cluster }
    }

    /// Fails the next `count` resource requests with `code`: 500 (InternalError), 429 (TooManyRequests,
    /// with `Retry-After: 1`), 409 (Conflict), or any other code (a generic `Status`).
    pub fn fail_next(&self, count: usize, code: u16) {
        let mut failures = self
            .cluster
            .faults
            .failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        failures.extend(std::iter::repeat_n(code, count));
    }

    /// How many injected failures are still queued.
    pub fn pending_failures(&self) -> usize {
        self.cluster
            .faults
            .failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Adds `delay` before every resource request is served (zero removes it).
    pub fn set_latency(&self, delay: Duration) {
        let micros = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.cluster
            .faults
            .latency_micros
            .store(micros, Ordering::Relaxed);
    }

    /// Ends every open watch stream; clients see the connection's body end and re-watch.
    pub fn cut_watches(&self) {
        self.cluster.faults.cut_watches();
    }

    /// Forgets the change history, so a watch from any earlier resourceVersion (and an old list continue
    /// token) gets 410 Expired.
    pub fn compact(&self) {
        self.cluster.store.compact();
    }

    /// Removes queued failures and latency.
    pub fn clear(&self) {
        self.cluster
            .faults
            .failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.set_latency(Duration::ZERO);
    }
}
