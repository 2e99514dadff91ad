//! The operator's own Prometheus metrics.
//!
//! Names that controller-runtime already defines keep controller-runtime's spelling, so the dashboards and
//! alerts Kubebuilder users have work unchanged; what only a phase machine has carries the `autopilot_`
//! prefix. The README's "Running in production" section lists every series.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use std::fmt::Write as _;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::leader::Leadership;

/// Upper bounds (seconds) of the duration histograms' buckets: from 5 ms up to a minute.
const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0,
];

/// How a reconcile ended, as controller-runtime's `result` label spells it.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum ReconcileResult {
    /// Done; nothing scheduled.
    Success,
    /// The reconcile failed.
    Error,
    /// Requeued at once (for example after moving to the next phase).
    Requeue,
    /// Requeued after a delay (a phase that stays and re-checks later).
    RequeueAfter,
}

impl ReconcileResult {
    /// The label value: `success`, `error`, `requeue` or `requeue_after`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Error => "error",
            Self::Requeue => "requeue",
            Self::RequeueAfter => "requeue_after",
        }
    }
}

impl EncodeLabelValue for ReconcileResult {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    controller: String,
    result: ReconcileResult,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    controller: String,
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransitionLabels {
    controller: String,
    from: String,
    to: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LeaseLabels {
    name: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// The metric families, shared by every clone of [`Metrics`].
#[derive(Debug)]
struct Families {
    reconcile_total: Family<ResultLabels, Counter>,
    reconcile_errors: Family<ControllerLabels, Counter>,
    reconcile_time: HistogramFamily<ControllerLabels>,
    active_workers: Family<ControllerLabels, Gauge>,
    handler_time: HistogramFamily<PhaseLabels>,
    transitions: Family<TransitionLabels, Counter>,
    objects: Family<PhaseLabels, Gauge>,
    leader: Family<LeaseLabels, Gauge>,
}

#[derive(Debug)]
struct Inner {
    registry: Mutex<Registry>,
    families: Families,
    /// The phase each object was last seen in, per controller, to move it between `objects` gauges.
    object_phases: Mutex<HashMap<(String, String), String>>,
}

/// The metrics registry of one operator process. Cloning is cheap; clones share the series.
///
/// ```
/// use std::time::Duration;
/// use autopilot::observability::{Metrics, ReconcileResult};
///
/// let metrics = Metrics::new();
/// metrics.reconcile_finished("canary", ReconcileResult::Success, Duration::from_millis(12));
/// metrics.transition("canary", "Initializing", "Waiting");
/// let text = metrics.encode().unwrap();
/// assert!(text.contains(r#"controller_runtime_reconcile_total{controller="canary",result="success"} 1"#));
/// assert!(text.contains(r#"autopilot_phase_transitions_total{controller="canary",from="Initializing",to="Waiting"} 1"#));
/// assert!(text.ends_with("# EOF\n"));
/// ```
#[derive(Clone, Debug)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every operator metric registered and no series yet.
    pub fn new() -> Self {
        let families = Families {
            reconcile_total: Family::default(),
            reconcile_errors: Family::default(),
            reconcile_time: Family::new_with_constructor(duration_histogram),
            active_workers: Family::default(),
            handler_time: Family::new_with_constructor(duration_histogram),
            transitions: Family::default(),
            objects: Family::default(),
            leader: Family::default(),
        };
        let mut registry = Registry::default();
        registry.register(
            "controller_runtime_reconcile",
            "Reconciles per controller and result",
            families.reconcile_total.clone(),
        );
        registry.register(
            "controller_runtime_reconcile_errors",
            "Reconciles that ended in an error, per controller",
            families.reconcile_errors.clone(),
        );
        registry.register_with_unit(
            "controller_runtime_reconcile_time",
            "Time a reconcile took, per controller",
            Unit::Seconds,
            families.reconcile_time.clone(),
        );
        registry.register(
            "controller_runtime_active_workers",
            "Reconciles running right now, per controller",
            families.active_workers.clone(),
        );
        registry.register_with_unit(
            "autopilot_phase_handler_duration",
            "Time a phase handler took, per controller and phase",
            Unit::Seconds,
            families.handler_time.clone(),
        );
        registry.register(
            "autopilot_phase_transitions",
            "Phase transitions written to status, per controller, from and to phase",
            families.transitions.clone(),
        );
        registry.register(
            "autopilot_objects",
            "Objects in each phase, per controller",
            families.objects.clone(),
        );
        registry.register(
            "leader_election_master_status",
            "1 while this replica holds the named lease, else 0",
            families.leader.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry: Mutex::new(registry),
                families,
                object_phases: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn families(&self) -> &Families {
        &self.inner.families
    }

    /// Lets callers add their own metrics to the same `/metrics` page.
    ///
    /// ```
    /// use prometheus_client::metrics::counter::Counter;
    /// let metrics = autopilot::observability::Metrics::new();
    /// let promotions = Counter::<u64>::default();
    /// metrics.register(|registry| registry.register("canary_promotions", "Promotions", promotions.clone()));
    /// promotions.inc();
    /// assert!(metrics.encode().unwrap().contains("canary_promotions_total 1"));
    /// ```
    pub fn register(&self, add: impl FnOnce(&mut Registry)) {
        add(&mut self
            .inner
            .registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner));
    }

    /// Renders every metric in the OpenMetrics text format (ending with `# EOF`).
    pub fn encode(&self) -> Result<String, fmt::Error> {
        let mut text = String::new();
        let registry = self
            .inner
            .registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        prometheus_client::encoding::text::encode(&mut text, &registry)?;
        Ok(text)
    }

    /// Creates the series of `controller` with zero values, so dashboards and alerts see them before the
    /// first reconcile (as controller-runtime does): reconcile counts per result, errors, durations, active
    /// workers, and per phase the handler durations and object counts.
    ///
    /// ```
    /// let metrics = autopilot::observability::Metrics::new();
    /// metrics.init_controller("canary", &["Initializing", "Waiting"]);
    /// let text = metrics.encode().unwrap();
    /// assert!(text.contains(r#"controller_runtime_reconcile_errors_total{controller="canary"} 0"#));
    /// assert!(text.contains(r#"autopilot_objects{controller="canary",phase="Waiting"} 0"#));
    /// ```
    pub fn init_controller(&self, controller: &str, phases: &[&str]) {
        let families = self.families();
        for result in [
            ReconcileResult::Success,
            ReconcileResult::Error,
            ReconcileResult::Requeue,
            ReconcileResult::RequeueAfter,
        ] {
            let _ = families.reconcile_total.get_or_create(&ResultLabels {
                controller: controller.to_owned(),
                result,
            });
        }
        let labels = controller_labels(controller);
        let _ = families.reconcile_errors.get_or_create(&labels);
        let _ = families.reconcile_time.get_or_create(&labels);
        let _ = families.active_workers.get_or_create(&labels);
        for phase in phases {
            let labels = phase_labels(controller, phase);
            let _ = families.handler_time.get_or_create(&labels);
            let _ = families.objects.get_or_create(&labels);
        }
    }

    /// Marks a reconcile as running; call [`ReconcileTimer::finish`] on the returned guard with the outcome.
    ///
    /// ```
    /// use autopilot::observability::{Metrics, ReconcileResult};
    /// let metrics = Metrics::new();
    /// let timer = metrics.reconcile_started("canary");
    /// timer.finish(ReconcileResult::RequeueAfter);
    /// assert!(metrics.encode().unwrap().contains("controller_runtime_reconcile_time_seconds_count{controller=\"canary\"} 1"));
    /// ```
    pub fn reconcile_started(&self, controller: &str) -> ReconcileTimer {
        self.families()
            .active_workers
            .get_or_create(&controller_labels(controller))
            .inc();
        ReconcileTimer {
            metrics: self.clone(),
            controller: controller.to_owned(),
            started: std::time::Instant::now(),
        }
    }

    /// Records a finished reconcile: its result and how long it took. Errors also count in
    /// `controller_runtime_reconcile_errors_total`.
    pub fn reconcile_finished(&self, controller: &str, result: ReconcileResult, took: Duration) {
        let families = self.families();
        families
            .reconcile_total
            .get_or_create(&ResultLabels {
                controller: controller.to_owned(),
                result,
            })
            .inc();
        if result == ReconcileResult::Error {
            families
                .reconcile_errors
                .get_or_create(&controller_labels(controller))
                .inc();
        }
        families
            .reconcile_time
            .get_or_create(&controller_labels(controller))
            .observe(took.as_secs_f64());
    }

    /// Records how long a phase handler ran (whatever it returned).
    pub fn handler_finished(&self, controller: &str, phase: &str, took: Duration) {
        self.families()
            .handler_time
            .get_or_create(&phase_labels(controller, phase))
            .observe(took.as_secs_f64());
    }

    /// Records a phase transition written to an object's status.
    pub fn transition(&self, controller: &str, from: &str, to: &str) {
        self.families()
            .transitions
            .get_or_create(&TransitionLabels {
                controller: controller.to_owned(),
                from: from.to_owned(),
                to: to.to_owned(),
            })
            .inc();
    }

    /// Records the phase an object is in now (`None` once it is gone), keeping `autopilot_objects` a true
    /// count per phase. `object` is any key unique within the controller, e.g. `namespace/name`.
    ///
    /// ```
    /// let metrics = autopilot::observability::Metrics::new();
    /// metrics.object_phase("canary", "default/a", Some("Waiting"));
    /// metrics.object_phase("canary", "default/a", Some("Promoting"));
    /// let text = metrics.encode().unwrap();
    /// assert!(text.contains(r#"autopilot_objects{controller="canary",phase="Waiting"} 0"#));
    /// assert!(text.contains(r#"autopilot_objects{controller="canary",phase="Promoting"} 1"#));
    /// ```
    pub fn object_phase(&self, controller: &str, object: &str, phase: Option<&str>) {
        let key = (controller.to_owned(), object.to_owned());
        let mut phases = self
            .inner
            .object_phases
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let previous = match phase {
            Some(phase) => {
                if phases.get(&key).is_some_and(|p| p == phase) {
                    return;
                }
                self.families()
                    .objects
                    .get_or_create(&phase_labels(controller, phase))
                    .inc();
                phases.insert(key, phase.to_owned())
            }
            None => phases.remove(&key),
        };
        if let Some(previous) = previous {
            self.families()
                .objects
                .get_or_create(&phase_labels(controller, &previous))
                .dec();
        }
    }

    /// Sets `leader_election_master_status{name=lease}` to 1 or 0.
    pub fn set_leader(&self, lease: &str, leading: bool) {
        self.families()
            .leader
            .get_or_create(&LeaseLabels {
                name: lease.to_owned(),
            })
            .set(i64::from(leading));
    }

    /// Keeps the leader status gauge in step with `leadership` until the election ends.
    pub fn track_leadership(
        &self,
        lease: &str,
        mut leadership: Leadership,
    ) -> tokio::task::JoinHandle<()> {
        let metrics = self.clone();
        let lease = lease.to_owned();
        metrics.set_leader(&lease, leadership.is_leader());
        tokio::spawn(async move {
            while leadership.changed().await.is_some() {
                metrics.set_leader(&lease, leadership.is_leader());
            }
            metrics.set_leader(&lease, false);
        })
    }
}

fn controller_labels(controller: &str) -> ControllerLabels {
    ControllerLabels {
        controller: controller.to_owned(),
    }
}

fn phase_labels(controller: &str, phase: &str) -> PhaseLabels {
    PhaseLabels {
        controller: controller.to_owned(),
        phase: phase.to_owned(),
    }
}

/// A running reconcile, from [`Metrics::reconcile_started`]. Dropping it without
/// [`ReconcileTimer::finish`] (the reconcile was cancelled) only ends the active-worker count.
#[derive(Debug)]
#[must_use = "finish the timer with the reconcile's result"]
pub struct ReconcileTimer {
    metrics: Metrics,
    controller: String,
    started: std::time::Instant,
}

impl ReconcileTimer {
    /// Records the reconcile's result and duration.
    pub fn finish(self, result: ReconcileResult) {
        self.metrics
            .reconcile_finished(&self.controller, result, self.started.elapsed());
    }
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.metrics
            .families()
            .active_workers
            .get_or_create(&controller_labels(&self.controller))
            .dec();
    }
}
