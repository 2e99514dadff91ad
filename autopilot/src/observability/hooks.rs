//! Feeds the runtime's callbacks into [`Metrics`] and [`Health`].

use std::time::Duration;

use super::{Health, Metrics, ReconcileResult};
use crate::runtime::{ControllerInfo, ObjectKey, ObserveHooks, Outcome};

/// The [`ObserveHooks`] that keep `/metrics` and `/readyz` in step with the runtime. The controller label
/// is the lower-cased kind (`Canary` → `canary`), as controller-runtime names controllers.
///
/// ```
/// use std::sync::Arc;
/// use autopilot::observability::{Health, Metrics, RuntimeObserver};
///
/// let (metrics, health) = (Metrics::new(), Health::new());
/// let hooks = Arc::new(RuntimeObserver::new(metrics.clone(), health.clone()));
/// // operator.observe(hooks)
/// # let _ = hooks;
/// ```
#[derive(Clone, Debug)]
pub struct RuntimeObserver {
    metrics: Metrics,
    health: Health,
}

impl RuntimeObserver {
    /// Hooks that update `metrics` and `health`.
    pub fn new(metrics: Metrics, health: Health) -> Self {
        Self { metrics, health }
    }
}

fn controller(kind: &str) -> String {
    kind.to_lowercase()
}

impl ObserveHooks for RuntimeObserver {
    fn started(&self, info: &ControllerInfo) {
        let name = controller(&info.kind);
        self.metrics.init_controller(&name, info.phases);
        let census = info.census.clone();
        self.metrics
            .count_objects_with(&name, move || census.count());
    }

    fn caches_synced(&self, _kind: &str) {
        self.health.set_caches_synced(true);
    }

    fn reconcile_started(&self, key: &ObjectKey<'_>) {
        self.metrics.reconcile_started(&controller(key.kind));
    }

    fn reconcile_finished(&self, key: &ObjectKey<'_>, outcome: Outcome, elapsed: Duration) {
        let result = match outcome {
            Outcome::Success => ReconcileResult::Success,
            Outcome::RequeueAfter(_) => ReconcileResult::RequeueAfter,
            Outcome::Error => ReconcileResult::Error,
        };
        self.metrics
            .reconcile_finished(&controller(key.kind), result, elapsed);
    }

    fn handler_finished(
        &self,
        key: &ObjectKey<'_>,
        phase: &'static str,
        elapsed: Duration,
        _ok: bool,
    ) {
        self.metrics
            .handler_finished(&controller(key.kind), phase, elapsed);
    }

    fn transitioned(&self, key: &ObjectKey<'_>, from: Option<&str>, to: &'static str) {
        self.metrics
            .transition(&controller(key.kind), from.unwrap_or(""), to);
    }

    fn stopped(&self, kind: &str) {
        self.health.set_caches_synced(false);
        self.metrics.controller_stopped(&controller(kind));
    }
}
