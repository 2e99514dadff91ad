//! One reconcile: pick the phase from the status, run its handler, record the outcome.

use std::{
    collections::HashMap,
    panic::AssertUnwindSafe,
    sync::atomic::{AtomicUsize, Ordering},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use futures::FutureExt;
use kube::{
    ResourceExt,
    api::{Patch, PatchParams},
    runtime::{
        controller::Action,
        events::EventType,
        reflector::{ObjectRef, Store},
    },
};
use serde_json::json;
use tokio::time::Instant;
use tracing::{Instrument, debug, info, info_span, warn};

use super::{
    hooks::{Hooks, ObjectKey, Outcome},
    inbox::{Delivery, Inbox},
};
use crate::{
    Autopilot, BoxError, Context, Handlers, PhaseEnum, Recheck, Status, Transition,
    backoff::Failures,
    context::Shared,
    phase::HandlerFuture,
    status::{self, condition},
};

/// Errors talking to the API server during a reconcile; retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Writing `status` failed.
    #[error("writing the status of {name}")]
    WriteStatus {
        /// The object.
        name: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// Adding or removing the finalizer failed.
    #[error("updating the finalizers of {name}")]
    Finalizer {
        /// The object.
        name: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
}

/// The per-operator state every reconcile uses.
pub(crate) struct Reconciler<K: Autopilot> {
    pub shared: Arc<Shared>,
    pub handlers: Box<dyn Handlers<K>>,
    pub hooks: Hooks,
    pub failures: Failures<ObjectRef<K>>,
    /// resourceVersion of our last status write per object, until the cache has caught up with it.
    pub written: Mutex<HashMap<ObjectRef<K>, u64>>,
    pub history_limit: usize,
    pub restart_on_spec_change: bool,
    pub work_interval: Duration,
    pub finalizer: String,
    pub kind: String,
    /// The controller's cache, to forget per-object state of objects that are gone.
    pub store: Store<K>,
    pub reconciles: AtomicUsize,
    /// External events waiting for their objects; `None` without event sources.
    pub inbox: Option<Arc<Inbox<K>>>,
}

/// Per-object bookkeeping is pruned of deleted objects once per this many reconciles.
const PRUNE_EVERY: usize = 4096;

/// How long to wait for the cache to show our own status write before looking again.
const CACHE_CATCH_UP: Duration = Duration::from_millis(20);

/// How a reconcile step ended, before it is turned into a kube [`Action`].
enum Done<K> {
    Wait,
    After(Duration),
    Failed(Duration),
    /// The object moved to another phase; its next handler can run on the object as just stored.
    Next(Option<Arc<K>>),
}

impl<K> Done<K> {
    fn action(&self) -> Action {
        match self {
            Self::Wait => Action::await_change(),
            Self::After(d) | Self::Failed(d) => Action::requeue(*d),
            Self::Next(_) => Action::requeue(Duration::ZERO),
        }
    }

    fn outcome(&self) -> Outcome {
        match self {
            Self::Wait => Outcome::Success,
            Self::After(d) => Outcome::RequeueAfter(*d),
            Self::Next(_) => Outcome::RequeueAfter(Duration::ZERO),
            Self::Failed(_) => Outcome::Error,
        }
    }
}

/// How many phases one reconcile walks through before handing the object back to the queue.
const MAX_STEPS: usize = 8;

/// Events and hook calls to make once the status is stored.
struct Report<P> {
    transitions: Vec<(Option<String>, P, Option<String>)>,
    warnings: Vec<(&'static str, String)>,
}

impl<P> Default for Report<P> {
    fn default() -> Self {
        Self {
            transitions: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

impl<K: Autopilot> Reconciler<K> {
    /// Runs one reconcile of `obj`, reporting to the hooks.
    pub async fn reconcile(&self, obj: Arc<K>) -> Result<Action, ReconcileError> {
        let name = obj.name_any();
        let namespace = obj.namespace();
        let key = ObjectKey {
            kind: &self.kind,
            namespace: namespace.as_deref(),
            name: &name,
        };
        // `object` rather than `name`: JSON log lines already use `name` for the span's own name.
        let object = namespace
            .as_deref()
            .map_or_else(|| name.clone(), |ns| format!("{ns}/{name}"));
        let span = info_span!(
            "reconcile",
            kind = %self.kind,
            object = %object,
            generation = obj.meta().generation,
            phase = tracing::field::Empty, // recorded once the status is read
        );
        self.hooks.each(|h| h.reconcile_started(&key));
        if self.reconciles.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.prune();
        }
        let started = Instant::now();
        // Status writes do not wake objects, so a phase change continues here with the object the
        // write returned, instead of waiting for the cache to catch up.
        let mut obj = obj;
        let mut steps = 1;
        let result = loop {
            match self.step(obj, &key).instrument(span.clone()).await {
                Ok(Done::Next(Some(stored))) if steps < MAX_STEPS => {
                    obj = stored;
                    steps += 1;
                }
                other => break other,
            }
        };
        let outcome = result.as_ref().map_or(Outcome::Error, Done::outcome);
        let elapsed = started.elapsed();
        self.hooks
            .each(|h| h.reconcile_finished(&key, outcome, elapsed));
        result.map(|done| done.action())
    }

    /// The delay before retrying after an API error.
    pub fn error_delay(&self, obj: &K, error: &ReconcileError) -> Duration {
        let (attempt, delay) = self
            .failures
            .failed(&ObjectRef::from_obj(obj), obj.meta().generation);
        warn!(kind = %self.kind, name = %obj.name_any(), attempt, ?delay, error = %error_chain(error), "reconcile failed");
        delay
    }

    async fn step(&self, obj: Arc<K>, key: &ObjectKey<'_>) -> Result<Done<K>, ReconcileError> {
        let oref = ObjectRef::from_obj(&*obj);
        if self.is_stale(&oref, &obj) {
            debug!("cache is older than our last status write; waiting for it");
            return Ok(Done::After(CACHE_CATCH_UP));
        }
        let generation = obj.meta().generation;
        if let Some(left) = self.failures.remaining(&oref, generation) {
            return Ok(Done::After(left));
        }
        if obj.meta().deletion_timestamp.is_some() {
            return self.finalize(obj, key, &oref).await;
        }
        let adds_finalizer =
            K::Phase::finalizer().is_some() && !obj.finalizers().contains(&self.finalizer);
        if adds_finalizer {
            self.add_finalizer(&obj).await?;
        }

        let old = obj.status().cloned().unwrap_or_default();
        let mut status = old.clone();
        let mut report = Report::default();
        let spec_changed = old.phase.is_some() && old.observed_generation != generation;
        status.observed_generation = generation;
        let phase = if old.phase.is_none() || (spec_changed && self.restart_on_spec_change) {
            let initial = K::Phase::initial();
            let message = spec_changed.then(|| {
                format!(
                    "spec changed (generation {}), restarting",
                    generation.unwrap_or_default()
                )
            });
            self.failures.succeeded(&oref);
            status.enter(initial, message.clone(), &status::now(), self.history_limit);
            let from = old.phase.as_ref().map(|p| p.as_str().to_owned());
            report.transitions.push((from, initial, message));
            initial
        } else {
            match old.recorded_phase() {
                Ok(Some(phase)) => phase,
                Ok(None) => K::Phase::initial(),
                Err(unknown) => {
                    let unknown = unknown.to_owned();
                    return self.unknown_phase(&obj, key, &old, status, &unknown).await;
                }
            }
        };

        tracing::Span::current().record("phase", phase.name());
        let delivery = self.delivery(&oref, &obj);
        let ctx = Context::new(Arc::clone(&self.shared), Arc::clone(&obj), phase)
            .with_events(delivery.as_ref().map(|d| Arc::clone(&d.events)));
        let runnable = !stopped(&status, generation) && Some(phase) != K::Phase::finalizer();
        let run = runnable
            .then(|| self.handlers.run(phase, Arc::clone(&obj), ctx.clone()))
            .flatten();
        let Some(run) = run else {
            // Final (or failed in place): nothing runs until the spec changes.
            if !stopped(&status, generation) {
                status.mark_healthy(phase, generation);
            }
            self.store(&obj, key, &old, &status, report).await?;
            // No handler will run before the spec changes: the events concern nobody.
            self.acknowledge(&oref, delivery.as_ref());
            return Ok(Done::Wait);
        };
        let started = Instant::now();
        let result = guarded(run).await;
        let elapsed = started.elapsed();
        let handled = result.is_ok();
        self.hooks
            .each(|h| h.handler_finished(key, phase.name(), elapsed, handled));
        let done = match result {
            Ok(transition) => {
                self.failures.succeeded(&oref);
                if let Some(fields) = ctx.take_updated_fields() {
                    status.fields = fields;
                }
                self.apply(&mut status, phase, transition, generation, &mut report)
            }
            Err(error) => {
                self.handler_failed(&oref, &mut status, phase, &*error, generation, &mut report)
            }
        };
        let stored = self.store(&obj, key, &old, &status, report).await?;
        if handled {
            self.acknowledge(&oref, delivery.as_ref());
        }
        Ok(match done {
            // The finalizer's own watch event wakes the object once more: let it take the place of the
            // next step, or the next handler would run twice.
            Done::Next(_) if adds_finalizer => Done::Next(None),
            Done::Next(_) => Done::Next(stored.map(Arc::new)),
            other => other,
        })
    }

    /// The external events waiting for `obj`, if any.
    fn delivery(&self, oref: &ObjectRef<K>, obj: &K) -> Option<Delivery> {
        self.inbox.as_ref().and_then(|inbox| inbox.peek(oref, obj))
    }

    /// Removes the events a successful handler run saw, its status being stored.
    fn acknowledge(&self, oref: &ObjectRef<K>, delivery: Option<&Delivery>) {
        if let (Some(inbox), Some(delivery)) = (&self.inbox, delivery) {
            inbox.acknowledge(oref, delivery);
        }
    }

    /// Records a handler's transition in `status`.
    fn apply(
        &self,
        status: &mut Status<K::Phase, K::Fields>,
        phase: K::Phase,
        transition: Transition<K::Phase>,
        generation: Option<i64>,
        report: &mut Report<K::Phase>,
    ) -> Done<K> {
        match transition {
            Transition::Stay { recheck, message } => {
                if message.is_some() {
                    status.message = message;
                }
                status.mark_healthy(phase, generation);
                match recheck {
                    Recheck::After(d) => Done::After(d),
                    Recheck::WorkInterval => Done::After(self.work_interval),
                    Recheck::OnChange => Done::Wait,
                }
            }
            Transition::Next { phase: to, message } => {
                status.enter(to, message.clone(), &status::now(), self.history_limit);
                status.mark_healthy(to, generation);
                report
                    .transitions
                    .push((Some(phase.name().to_owned()), to, message));
                Done::Next(None)
            }
            Transition::Fail { reason } => {
                if let Some(failed) = K::Phase::failure() {
                    status.enter(
                        failed,
                        Some(reason.clone()),
                        &status::now(),
                        self.history_limit,
                    );
                    status.mark_healthy(failed, generation);
                    report
                        .transitions
                        .push((Some(phase.name().to_owned()), failed, Some(reason)));
                } else {
                    status.message = Some(reason.clone());
                    status.set_condition(
                        condition::READY,
                        false,
                        condition::FAILED,
                        &reason,
                        generation,
                    );
                    status.set_condition(
                        condition::PROGRESSING,
                        false,
                        condition::FAILED,
                        "",
                        generation,
                    );
                    status.set_condition(
                        condition::DEGRADED,
                        true,
                        condition::FAILED,
                        &reason,
                        generation,
                    );
                    report.warnings.push((condition::FAILED, reason));
                }
                Done::Wait
            }
        }
    }

    fn handler_failed(
        &self,
        oref: &ObjectRef<K>,
        status: &mut Status<K::Phase, K::Fields>,
        phase: K::Phase,
        error: &(dyn std::error::Error + 'static),
        generation: Option<i64>,
        report: &mut Report<K::Phase>,
    ) -> Done<K> {
        let (attempt, delay) = self.failures.failed(oref, generation);
        let text = format!("{phase}: {}", error_chain(error));
        warn!(%phase, attempt, ?delay, error = %text, "handler failed");
        status.message = Some(text.clone());
        status.set_condition(
            condition::DEGRADED,
            true,
            condition::HANDLER_ERROR,
            &text,
            generation,
        );
        report.warnings.push((condition::HANDLER_ERROR, text));
        Done::Failed(delay)
    }

    async fn unknown_phase(
        &self,
        obj: &K,
        key: &ObjectKey<'_>,
        old: &Status<K::Phase, K::Fields>,
        mut status: Status<K::Phase, K::Fields>,
        unknown: &str,
    ) -> Result<Done<K>, ReconcileError> {
        let generation = obj.meta().generation;
        let text = format!(
            "status.phase `{unknown}` is not one of {}; the object waits until its spec changes, which \
             restarts it at {}",
            K::Phase::NAMES.join(", "),
            K::Phase::initial()
        );
        status.observed_generation = old.observed_generation;
        for type_ in [condition::READY, condition::PROGRESSING] {
            status.set_condition(type_, false, condition::UNKNOWN_PHASE, "", generation);
        }
        status.set_condition(
            condition::DEGRADED,
            true,
            condition::UNKNOWN_PHASE,
            &text,
            generation,
        );
        let mut report = Report::default();
        if status != *old {
            warn!(phase = unknown, "unknown phase in status");
            report.warnings.push((condition::UNKNOWN_PHASE, text));
        }
        self.store(obj, key, old, &status, report).await?;
        Ok(Done::Wait)
    }

    /// Runs the finalizer phase of an object being deleted, then lets it go.
    async fn finalize(
        &self,
        obj: Arc<K>,
        key: &ObjectKey<'_>,
        oref: &ObjectRef<K>,
    ) -> Result<Done<K>, ReconcileError> {
        let Some(phase) = K::Phase::finalizer() else {
            return Ok(Done::Wait);
        };
        if !obj.finalizers().contains(&self.finalizer) {
            return Ok(Done::Wait);
        }
        let generation = obj.meta().generation;
        let old = obj.status().cloned().unwrap_or_default();
        let mut status = old.clone();
        let mut report = Report::default();
        let delivery = self.delivery(oref, &obj);
        let ctx = Context::new(Arc::clone(&self.shared), Arc::clone(&obj), phase)
            .with_events(delivery.as_ref().map(|d| Arc::clone(&d.events)));
        let Some(run) = self.handlers.run(phase, Arc::clone(&obj), ctx.clone()) else {
            return Ok(Done::Wait);
        };
        let started = Instant::now();
        let result = guarded(run).await;
        self.hooks
            .each(|h| h.handler_finished(key, phase.name(), started.elapsed(), result.is_ok()));
        let from = old.phase.as_ref().map(|p| p.as_str().to_owned());
        let entering = old.recorded_phase() != Ok(Some(phase));
        match result {
            Ok(Transition::Stay { recheck, message }) => {
                self.failures.succeeded(oref);
                if entering {
                    status.enter(phase, message.clone(), &status::now(), self.history_limit);
                    report.transitions.push((from, phase, message));
                } else if message.is_some() {
                    status.message = message;
                }
                if let Some(fields) = ctx.take_updated_fields() {
                    status.fields = fields;
                }
                self.store(&obj, key, &old, &status, report).await?;
                self.acknowledge(oref, delivery.as_ref());
                Ok(match recheck {
                    Recheck::After(d) => Done::After(d),
                    Recheck::WorkInterval => Done::After(self.work_interval),
                    Recheck::OnChange => Done::Wait,
                })
            }
            Ok(done) => {
                self.failures.succeeded(oref);
                self.remove_finalizer(&obj).await?;
                if let Some(inbox) = &self.inbox {
                    inbox.forget(oref);
                }
                let message = done.message().map(str::to_owned);
                info!(%phase, "cleanup finished, finalizer removed");
                report.transitions.push((from, phase, message));
                self.announce(&obj, key, report).await;
                Ok(Done::Wait)
            }
            Err(error) => {
                let done =
                    self.handler_failed(oref, &mut status, phase, &*error, generation, &mut report);
                self.store(&obj, key, &old, &status, report).await?;
                Ok(done)
            }
        }
    }

    /// Writes `status` if it differs from `old`, then publishes Events and calls hooks.
    async fn store(
        &self,
        obj: &K,
        key: &ObjectKey<'_>,
        old: &Status<K::Phase, K::Fields>,
        status: &Status<K::Phase, K::Fields>,
        report: Report<K::Phase>,
    ) -> Result<Option<K>, ReconcileError> {
        let mut fresh = None;
        if status != old {
            let api = K::api(self.shared.client.clone(), obj.namespace().as_deref());
            let params = PatchParams {
                field_manager: Some(self.shared.field_manager.clone()),
                ..PatchParams::default()
            };
            let name = obj.name_any();
            let stored = api
                .patch_status(&name, &params, &Patch::Merge(json!({ "status": status })))
                .await
                .map_err(|source| ReconcileError::WriteStatus { name, source })?;
            // A no-op write keeps the resourceVersion and brings no watch event: nothing to wait for.
            let before = obj.resource_version();
            let after = stored
                .resource_version()
                .filter(|rv| Some(rv) != before.as_ref());
            if let Some(rv) = after.and_then(|rv| rv.parse::<u64>().ok()) {
                self.written
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(ObjectRef::from_obj(obj), rv);
            }
            fresh = Some(stored);
        }
        self.announce(obj, key, report).await;
        Ok(fresh)
    }

    /// Publishes the Events of a stored outcome and tells the hooks about transitions.
    async fn announce(&self, obj: &K, key: &ObjectKey<'_>, report: Report<K::Phase>) {
        if report.transitions.is_empty() && report.warnings.is_empty() {
            return;
        }
        let reference = obj.object_ref(&());
        for (from, to, message) in report.transitions {
            info!(from = from.as_deref().unwrap_or("-"), to = %to, "phase transition");
            self.hooks
                .each(|h| h.transitioned(key, from.as_deref(), to.name()));
            let note = match (&from, &message) {
                (Some(from), Some(m)) => format!("{from} → {to}: {m}"),
                (Some(from), None) => format!("{from} → {to}"),
                (None, Some(m)) => format!("→ {to}: {m}"),
                (None, None) => format!("→ {to}"),
            };
            let type_ = if Some(to) == K::Phase::failure() {
                EventType::Warning
            } else {
                EventType::Normal
            };
            self.publish(&reference, type_, to.name(), "Transition", note)
                .await;
        }
        for (reason, note) in report.warnings {
            self.publish(&reference, EventType::Warning, reason, "Reconcile", note)
                .await;
        }
    }

    async fn publish(
        &self,
        reference: &k8s_openapi::api::core::v1::ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = kube::runtime::events::Event {
            type_,
            reason: reason.to_owned(),
            note: Some(truncate(note, 1000)),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(error) = self.shared.recorder.publish(&event, reference).await {
            warn!(reason, error = %error_chain(&error), "could not publish event");
        }
    }

    async fn add_finalizer(&self, obj: &K) -> Result<(), ReconcileError> {
        let mut finalizers = obj.finalizers().to_vec();
        finalizers.push(self.finalizer.clone());
        let patch = json!({ "metadata": {
            "finalizers": finalizers,
            "resourceVersion": obj.resource_version(),
        }});
        self.patch_metadata(obj, patch).await
    }

    async fn remove_finalizer(&self, obj: &K) -> Result<(), ReconcileError> {
        let finalizers: Vec<&String> = obj
            .finalizers()
            .iter()
            .filter(|f| **f != self.finalizer)
            .collect();
        let patch = json!({ "metadata": {
            "finalizers": finalizers,
            "resourceVersion": obj.resource_version(),
        }});
        self.patch_metadata(obj, patch).await
    }

    async fn patch_metadata(
        &self,
        obj: &K,
        patch: serde_json::Value,
    ) -> Result<(), ReconcileError> {
        let api = K::api(self.shared.client.clone(), obj.namespace().as_deref());
        let name = obj.name_any();
        let params = PatchParams {
            field_manager: Some(self.shared.field_manager.clone()),
            ..PatchParams::default()
        };
        match api.patch(&name, &params, &Patch::Merge(patch)).await {
            Ok(_) => Ok(()),
            // Removing the last finalizer may delete the object before the response.
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(source) => Err(ReconcileError::Finalizer { name, source }),
        }
    }

    /// Forgets backoff streaks and pending writes of objects no longer in the cache.
    fn prune(&self) {
        let present = |oref: &ObjectRef<K>| self.store.get(oref).is_some();
        self.failures.retain(present);
        self.written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|oref, _| present(oref));
        if let Some(inbox) = &self.inbox {
            inbox.sweep();
        }
    }

    /// Whether `obj` predates our last status write (the watch has not delivered it yet).
    fn is_stale(&self, oref: &ObjectRef<K>, obj: &K) -> bool {
        let mut written = self.written.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(&ours) = written.get(oref) else {
            return false;
        };
        match obj.resource_version().and_then(|rv| rv.parse::<u64>().ok()) {
            Some(seen) if seen < ours => true,
            _ => {
                written.remove(oref);
                false
            }
        }
    }
}

/// A handler that panicked; reported like an error instead of taking the operator down.
#[derive(Debug, thiserror::Error)]
#[error("the handler panicked: {0}")]
pub struct HandlerPanicked(String);

/// Runs a handler, turning a panic into an error.
async fn guarded<P>(run: HandlerFuture<'_, P>) -> Result<Transition<P>, BoxError> {
    match AssertUnwindSafe(run).catch_unwind().await {
        Ok(result) => result,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-text panic payload".to_owned());
            Err(Box::new(HandlerPanicked(message)))
        }
    }
}

/// Failed in place by `Transition::fail` (no failure phase declared) at this generation.
fn stopped<P: PhaseEnum, F>(status: &Status<P, F>, generation: Option<i64>) -> bool {
    status.condition(condition::DEGRADED).is_some_and(|c| {
        c.status == "True" && c.reason == condition::FAILED && c.observed_generation == generation
    }) && P::failure().is_none()
}

/// `error: cause: cause`.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}
