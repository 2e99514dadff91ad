//! [`ObserveHooks`]: how metrics, health and leader election follow what the runtime does.
//!
//! The runtime calls every registered hook synchronously on its own tasks, so implementations must be
//! cheap and non-blocking (update counters, flip flags). All methods have empty defaults.

use std::{fmt, sync::Arc, time::Duration};

/// Identifies the object a hook call is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectKey<'a> {
    /// The resource kind (`Canary`).
    pub kind: &'a str,
    /// The namespace, for namespaced kinds.
    pub namespace: Option<&'a str>,
    /// The object's name.
    pub name: &'a str,
}

/// How one reconcile ended (labels as controller-runtime's `result`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done until the object or an input changes.
    Success,
    /// Done; runs again after this delay (a waiting phase, or backoff after a handler error).
    RequeueAfter(Duration),
    /// Failed (a handler error or an API error); retried with backoff.
    Error,
}

impl Outcome {
    /// `success`, `requeue_after` or `error`.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::RequeueAfter(_) => "requeue_after",
            Self::Error => "error",
        }
    }
}

/// Counts the objects in the operator's cache per phase, on demand (for an objects-per-phase gauge).
#[derive(Clone)]
pub struct Census {
    count: Arc<dyn Fn() -> Vec<(String, usize)> + Send + Sync>,
}

impl Census {
    pub(crate) fn new(count: impl Fn() -> Vec<(String, usize)> + Send + Sync + 'static) -> Self {
        Self {
            count: Arc::new(count),
        }
    }

    /// `(phase, objects)` for every declared phase (zero included), plus any unknown phase names found;
    /// objects without a phase yet are counted under `""`.
    #[must_use]
    pub fn count(&self) -> Vec<(String, usize)> {
        (self.count)()
    }
}

impl fmt::Debug for Census {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Census")
    }
}

/// What the runtime tells hooks when it starts.
#[derive(Debug, Clone)]
pub struct ControllerInfo {
    /// The resource kind driven.
    pub kind: String,
    /// The declared phases.
    pub phases: &'static [&'static str],
    /// The configured maximum of concurrent reconciles.
    pub concurrency: u16,
    /// Objects per phase, computed from the operator's cache when called.
    pub census: Census,
}

/// Callbacks from the runtime, for metrics, readiness and leader election. Register with
/// [`Operator::observe`](crate::Operator::observe).
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::time::Duration;
/// use autopilot::runtime::{ObjectKey, ObserveHooks, Outcome};
///
/// #[derive(Default)]
/// struct Counters {
///     reconciles: AtomicU64,
///     errors: AtomicU64,
/// }
///
/// impl ObserveHooks for Counters {
///     fn reconcile_finished(&self, _: &ObjectKey<'_>, outcome: Outcome, _: Duration) {
///         self.reconciles.fetch_add(1, Ordering::Relaxed);
///         if outcome == Outcome::Error {
///             self.errors.fetch_add(1, Ordering::Relaxed);
///         }
///     }
/// }
///
/// let counters = Counters::default();
/// let key = ObjectKey { kind: "Canary", namespace: Some("shop"), name: "web" };
/// counters.reconcile_finished(&key, Outcome::Error, Duration::from_millis(3));
/// assert_eq!(counters.errors.load(Ordering::Relaxed), 1);
/// ```
pub trait ObserveHooks: Send + Sync + 'static {
    /// The operator starts watching.
    fn started(&self, info: &ControllerInfo) {
        let _ = info;
    }

    /// The first list of the watched objects is in the cache (ready to serve: `/readyz`).
    fn caches_synced(&self, kind: &str) {
        let _ = kind;
    }

    /// A reconcile of `key` begins (an active worker).
    fn reconcile_started(&self, key: &ObjectKey<'_>) {
        let _ = key;
    }

    /// A reconcile of `key` ended.
    fn reconcile_finished(&self, key: &ObjectKey<'_>, outcome: Outcome, elapsed: Duration) {
        let _ = (key, outcome, elapsed);
    }

    /// The handler of `phase` returned (`ok` is false when it returned an error).
    fn handler_finished(
        &self,
        key: &ObjectKey<'_>,
        phase: &'static str,
        elapsed: Duration,
        ok: bool,
    ) {
        let _ = (key, phase, elapsed, ok);
    }

    /// `key` moved from `from` (none for a new object; possibly an unknown name) to `to`, and the move is
    /// stored in its status.
    fn transitioned(&self, key: &ObjectKey<'_>, from: Option<&str>, to: &'static str) {
        let _ = (key, from, to);
    }

    /// The operator stopped (after draining in-flight handlers).
    fn stopped(&self, kind: &str) {
        let _ = kind;
    }
}

/// The registered hooks, called in registration order.
#[derive(Clone, Default)]
pub(crate) struct Hooks(pub Vec<Arc<dyn ObserveHooks>>);

impl Hooks {
    pub fn each(&self, call: impl Fn(&dyn ObserveHooks)) {
        for hook in &self.0 {
            call(hook.as_ref());
        }
    }
}
