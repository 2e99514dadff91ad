//! The operator's own Prometheus metrics.
//!
//! Names that controller-runtime already defines keep controller-runtime's spelling, so the dashboards and
//! alerts Kubebuilder users have work unchanged; what only a phase machine has carries the `autopilot_`
//! prefix. The README's "Running in production" section lists every series.

use std::collections::{HashMap, HashSet};
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

/// Counts objects per phase: `(phase, count)` pairs.
type Census = Arc<dyn Fn() -> Vec<(String, usize)> + Send + Sync>;

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

struct Inner {
    registry: Mutex<Registry>,
    families: Families,
    /// Per controller, a function counting its objects per phase, asked at every scrape.
    censuses: Mutex<HashMap<String, Census>>,
    /// The `(controller, phase)` object gauges set so far, to zero them when a count disappears.
    counted_phases: Mutex<HashSet<(String, String)>>,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// The metrics registry of one operator process. Cloning is cheap; clones share the series.
///
/// ```
/// use std::time::Duration;
/// use autopilot::observability::{Metrics, ReconcileResult};
///
/// let metrics = Metrics::new();
/// metrics.reconcile_started("canary");
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
                censuses: Mutex::new(HashMap::new()),
                counted_phases: Mutex::new(HashSet::new()),
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
        self.refresh_object_counts();
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

    /// Marks a reconcile of `controller` as running (`controller_runtime_active_workers`); pair it with
    /// [`Metrics::reconcile_finished`].
    pub fn reconcile_started(&self, controller: &str) {
        self.families()
            .active_workers
            .get_or_create(&controller_labels(controller))
            .inc();
    }

    /// Records a finished reconcile (started with [`Metrics::reconcile_started`]): its result and how long
    /// it took. Errors also count in `controller_runtime_reconcile_errors_total`.
    pub fn reconcile_finished(&self, controller: &str, result: ReconcileResult, took: Duration) {
        let families = self.families();
        families
            .active_workers
            .get_or_create(&controller_labels(controller))
            .dec();
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

    /// Makes `autopilot_objects{controller}` count the objects per phase with `census` at every scrape.
    /// `census` returns `(phase, count)` pairs, e.g. computed from the controller's cache.
    ///
    /// ```
    /// let metrics = autopilot::observability::Metrics::new();
    /// metrics.count_objects_with("canary", || vec![("Waiting".to_owned(), 2), ("Promoting".to_owned(), 1)]);
    /// let text = metrics.encode().unwrap();
    /// assert!(text.contains(r#"autopilot_objects{controller="canary",phase="Waiting"} 2"#));
    /// assert!(text.contains(r#"autopilot_objects{controller="canary",phase="Promoting"} 1"#));
    /// ```
    pub fn count_objects_with(
        &self,
        controller: &str,
        census: impl Fn() -> Vec<(String, usize)> + Send + Sync + 'static,
    ) {
        self.inner
            .censuses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(controller.to_owned(), Arc::new(census));
    }

    /// Marks `controller` as stopped: its objects are no longer counted here (the gauges drop to zero) and no
    /// reconcile of it runs any more.
    pub fn controller_stopped(&self, controller: &str) {
        self.inner
            .censuses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(controller);
        let families = self.families();
        families
            .active_workers
            .get_or_create(&controller_labels(controller))
            .set(0);
        self.zero_object_counts(controller);
    }

    fn zero_object_counts(&self, controller: &str) {
        // Families offer no iteration; the encoded label sets are the keys we set before.
        let phases: Vec<String> = self
            .inner
            .counted_phases
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(c, _)| c == controller)
            .map(|(_, p)| p.clone())
            .collect();
        for phase in phases {
            self.families()
                .objects
                .get_or_create(&phase_labels(controller, &phase))
                .set(0);
        }
    }

    fn refresh_object_counts(&self) {
        let censuses: Vec<(String, Census)> = self
            .inner
            .censuses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(c, census)| (c.clone(), Arc::clone(census)))
            .collect();
        for (controller, census) in censuses {
            let counts = census();
            self.zero_object_counts(&controller);
            let mut counted = self
                .inner
                .counted_phases
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for (phase, count) in counts {
                self.families()
                    .objects
                    .get_or_create(&phase_labels(&controller, &phase))
                    .set(i64::try_from(count).unwrap_or(i64::MAX));
                counted.insert((controller.clone(), phase));
            }
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
