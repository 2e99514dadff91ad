//! Publishing Kubernetes Events (events.k8s.io/v1), repeated ones folded into a series.
//!
//! kube-runtime's `Recorder` folds repeats the same way but sweeps its whole cache on every publish, which
//! grows quadratic with the number of Events an operator emits (every transition of every object). This
//! recorder keeps a compact fingerprint per recent Event and sweeps only when the table has doubled, so a
//! publish costs one request plus O(1) bookkeeping.

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
    sync::{Mutex, PoisonError},
};

use k8s_openapi::{
    api::{
        core::v1::ObjectReference,
        events::v1::{Event as K8sEvent, EventSeries},
    },
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::{SignedDuration, Timestamp},
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
    runtime::events::{Event, EventType, Reporter},
};
use serde_json::json;

/// How long a published Event can still absorb repeats into its series.
const SERIES_WINDOW: SignedDuration = SignedDuration::from_mins(6);

/// A published Event that repeats fold into; its name is derived from `created` (see `event_name`).
struct Seen {
    created: Timestamp,
    count: i32,
    last: Timestamp,
}

#[derive(Default)]
struct Series {
    seen: HashMap<u64, Seen>,
    /// Table size after the last sweep; the next sweep waits until it has doubled.
    swept_at: usize,
}

/// Publishes Events about objects, folding a repeat of a recent Event (same object, type, reason, action
/// and note) into that Event's `series` instead of creating another.
pub struct Recorder {
    client: Client,
    reporter: Reporter,
    series: Mutex<Series>,
}

impl Recorder {
    /// A recorder publishing as `reporter`.
    #[must_use]
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self {
            client,
            reporter,
            series: Mutex::default(),
        }
    }

    /// Publishes `event` about `regarding`, in its namespace (`default` for cluster-scoped objects).
    ///
    /// # Errors
    /// When the API server refuses the Event.
    pub async fn publish(
        &self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let key = fingerprint(event, regarding);
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        let repeat = self.repeat_of(key, now);
        if let Some((created, count)) = repeat {
            let name = self.event_name(regarding, created);
            let patch =
                json!({ "series": EventSeries { count, last_observed_time: MicroTime(now) } });
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await
            {
                Ok(_) => return Ok(()),
                // Deleted meanwhile (TTL, by hand): start a new one.
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => return Err(error),
            }
        }
        api.create(&PostParams::default(), &self.build(event, regarding, now))
            .await?;
        self.remember(key, now);
        Ok(())
    }

    /// If `key` was published within the window: when its Event was created and the new count, recorded as
    /// seen now.
    fn repeat_of(&self, key: u64, now: Timestamp) -> Option<(Timestamp, i32)> {
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        let seen = series.seen.get_mut(&key)?;
        if seen.last + SERIES_WINDOW <= now {
            return None;
        }
        seen.count = seen.count.saturating_add(1);
        seen.last = now;
        Some((seen.created, seen.count))
    }

    fn remember(&self, key: u64, now: Timestamp) {
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        series.seen.insert(
            key,
            Seen {
                created: now,
                count: 1,
                last: now,
            },
        );
        if series.seen.len() >= (series.swept_at * 2).max(1024) {
            series.seen.retain(|_, s| s.last + SERIES_WINDOW > now);
            series.swept_at = series.seen.len();
        }
    }

    fn build(&self, event: &Event, regarding: &ObjectReference, now: Timestamp) -> K8sEvent {
        let controller = &self.reporter.controller;
        K8sEvent {
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            note: event.note.clone(),
            type_: Some(
                match event.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .to_owned(),
            ),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: event.secondary.clone(),
            reporting_controller: Some(controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| controller.clone()),
            ),
            metadata: ObjectMeta {
                namespace: regarding.namespace.clone(),
                name: Some(self.event_name(regarding, now)),
                ..ObjectMeta::default()
            },
            ..K8sEvent::default()
        }
    }

    /// `<object>.<creation time in hex nanoseconds>`, as kube-runtime names Events.
    fn event_name(&self, regarding: &ObjectReference, created: Timestamp) -> String {
        let object = regarding
            .name
            .as_deref()
            .unwrap_or(&self.reporter.controller);
        format!("{object}.{:x}", created.as_nanosecond())
    }
}

/// Identifies "the same Event about the same object".
fn fingerprint(event: &Event, regarding: &ObjectReference) -> u64 {
    let mut hasher = DefaultHasher::new();
    matches!(event.type_, EventType::Warning).hash(&mut hasher);
    event.reason.hash(&mut hasher);
    event.action.hash(&mut hasher);
    event.note.hash(&mut hasher);
    regarding.uid.hash(&mut hasher);
    regarding.name.hash(&mut hasher);
    regarding.namespace.hash(&mut hasher);
    regarding.kind.hash(&mut hasher);
    hasher.finish()
}
