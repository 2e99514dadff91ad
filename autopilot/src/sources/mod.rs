//! Event sources: things outside the cluster that should wake objects.
//!
//! A source turns what it receives — a GitHub webhook, a CloudEvent, a metric leaving its range, a failed
//! trace — into an [`ExternalEvent`] and sends it on an [`EventSender`]. Hand the other end to
//! [`Operator::reconcile_on`](crate::Operator::reconcile_on) with a map from an event to the objects it
//! concerns ([`by_name`], [`by_label`], [`by_key`] or your own function). Then, for each event:
//!
//! 1. the map names objects from the operator's cache; objects the cache does not hold are skipped;
//! 2. the event is kept in each named object's inbox (at most
//!    [`Operator::inbox_limit`](crate::Operator::inbox_limit) events per object, the oldest dropped with a
//!    warning) and the object is reconciled at once rather than at its next re-check — after the run in
//!    progress, if any, and after the backoff of a failing object;
//! 3. its handler sees every event in its inbox through [`Context::events`](crate::Context::events);
//! 4. once the handler has returned `Ok` and the status is stored, the events it saw leave the inbox. A
//!    handler error or panic, or a failed status write, leaves them, so the retry sees them again.
//!
//! Inboxes live in the operator's memory: a restarted process has lost them (it reconciles every object
//! when it starts, without their events), so senders that must not lose an event need their own
//! redelivery. Inboxes of deleted objects are dropped, and an object in a final phase, which runs no handler, drops
//! its events. The runtime reads events only once the cache holds the first list, and under leader election
//! only on the leader; until then the channel fills and the HTTP receivers answer `503` so senders retry.
//!
//! Every receiver is an axum [`Router`](axum::Router) to mount wherever the operator serves HTTP:
//!
//! ```
//! use autopilot::sources::{self, cloudevents, github};
//!
//! let (events, mut received) = sources::channel(1024);
//! let app = axum::Router::new()
//!     .nest("/webhooks/github", github::router(github::WebhookSecret::new("s3cret"), events.clone()))
//!     .nest("/events", cloudevents::router(events));
//! // Then: `operator.reconcile_on(received, sources::by_name())`.
//! # drop((app, received));
//! ```

pub mod cloudevents;
pub mod github;
pub mod metrics;
pub mod traces;

use chrono::{DateTime, Utc};
use kube::{
    Resource, ResourceExt,
    runtime::reflector::{ObjectRef, Store},
};
use serde_json::Value;

/// Something that happened outside the cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct ExternalEvent {
    /// Who sent it: `github`, a CloudEvent's `source` URI, …
    pub source: String,
    /// What happened: a GitHub event name (`push`), a CloudEvent `type`, …
    pub kind: String,
    /// The sender's identifier for this event (GitHub delivery GUID, CloudEvent `id`).
    pub id: String,
    /// What it is about, when the sender says (CloudEvent `subject`, a repository's full name).
    pub subject: Option<String>,
    /// When it happened, when the sender says.
    pub time: Option<DateTime<Utc>>,
    /// The payload (JSON; other payloads as a JSON string).
    pub data: Value,
}

/// Where sources deliver events.
pub type EventSender = tokio::sync::mpsc::Sender<ExternalEvent>;

/// Where the runtime receives them.
pub type EventReceiver = tokio::sync::mpsc::Receiver<ExternalEvent>;

/// A bounded channel for events: a full channel makes receivers answer 503 (the sender retries)
/// rather than dropping events.
#[must_use]
pub fn channel(capacity: usize) -> (EventSender, EventReceiver) {
    tokio::sync::mpsc::channel(capacity.max(1))
}

/// The HTTP answer when the event channel cannot take more.
fn deliver(
    events: &EventSender,
    event: ExternalEvent,
) -> Result<(), (axum::http::StatusCode, &'static str)> {
    use tokio::sync::mpsc::error::TrySendError;
    events.try_send(event).map_err(|error| match error {
        TrySendError::Full(_) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "event queue is full, retry later",
        ),
        TrySendError::Closed(_) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "operator is shutting down",
        ),
    })
}

/// Maps an event to the cached object its `subject` names: `namespace/name`, or a bare `name` for every
/// cached object of that name (cluster-scoped kinds, or a single namespace watched).
///
/// ```
/// use autopilot::sources::{self, ExternalEvent};
/// use k8s_openapi::api::core::v1::ConfigMap;
/// use kube::runtime::{reflector::{self, ObjectRef}, watcher};
///
/// let (store, mut writer) = reflector::store::<ConfigMap>();
/// let mut web = ConfigMap::default();
/// web.metadata.name = Some("web".into());
/// web.metadata.namespace = Some("shop".into());
/// writer.apply_watcher_event(&watcher::Event::Apply(web));
///
/// let map = sources::by_name();
/// let mut event = ExternalEvent {
///     source: "/ci".into(), kind: "build.finished".into(), id: "1".into(),
///     subject: Some("shop/web".into()), time: None, data: serde_json::Value::Null,
/// };
/// assert_eq!(map(&event, &store), [ObjectRef::new("web").within("shop")]);
/// event.subject = Some("web".into());
/// assert_eq!(map(&event, &store), [ObjectRef::new("web").within("shop")]);
/// event.subject = Some("other/web".into());
/// assert!(map(&event, &store).is_empty());
/// ```
pub fn by_name<K>()
-> impl Fn(&ExternalEvent, &Store<K>) -> Vec<ObjectRef<K>> + Send + Sync + 'static
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    |event, store| {
        let Some(subject) = event.subject.as_deref() else {
            return Vec::new();
        };
        match subject.split_once('/') {
            Some((namespace, name)) => {
                let oref = ObjectRef::new(name).within(namespace);
                store.get(&oref).map(|_| oref).into_iter().collect()
            }
            None => store
                .state()
                .iter()
                .filter(|obj| obj.meta().name.as_deref() == Some(subject))
                .map(|obj| ObjectRef::from_obj(&**obj))
                .collect(),
        }
    }
}

/// Maps an event to every cached object whose label `key` equals the event's `subject`.
///
/// ```
/// use autopilot::sources::{self, ExternalEvent};
/// use k8s_openapi::api::core::v1::ConfigMap;
/// use kube::runtime::{reflector::{self, ObjectRef}, watcher};
///
/// let (store, mut writer) = reflector::store::<ConfigMap>();
/// for (name, app) in [("a", "web"), ("b", "web"), ("c", "db")] {
///     let mut cm = ConfigMap::default();
///     cm.metadata.name = Some(name.into());
///     cm.metadata.namespace = Some("shop".into());
///     cm.metadata.labels = Some([("app".to_owned(), app.to_owned())].into());
///     writer.apply_watcher_event(&watcher::Event::Apply(cm));
/// }
/// let event = ExternalEvent {
///     source: "/alerts".into(), kind: "alert".into(), id: "1".into(),
///     subject: Some("web".into()), time: None, data: serde_json::Value::Null,
/// };
/// let mut woken = sources::by_label("app")(&event, &store);
/// woken.sort_by(|x, y| x.name.cmp(&y.name));
/// assert_eq!(woken, [ObjectRef::new("a").within("shop"), ObjectRef::new("b").within("shop")]);
/// ```
pub fn by_label<K>(
    key: impl Into<String>,
) -> impl Fn(&ExternalEvent, &Store<K>) -> Vec<ObjectRef<K>> + Send + Sync + 'static
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let key = key.into();
    by_key(move |obj: &K| obj.labels().get(&key).cloned())
}

/// Maps an event to every cached object among whose `keys` is the event's `subject`: declare what an object
/// listens to (a repository in its spec, an annotation) and events about it wake the object.
///
/// ```
/// use autopilot::sources::{self, ExternalEvent};
/// use k8s_openapi::api::core::v1::ConfigMap;
/// use kube::runtime::{reflector::{self, ObjectRef}, watcher};
///
/// let (store, mut writer) = reflector::store::<ConfigMap>();
/// let mut cm = ConfigMap::default();
/// cm.metadata.name = Some("web".into());
/// cm.metadata.namespace = Some("shop".into());
/// cm.data = Some([("repository".to_owned(), "team/web".to_owned())].into());
/// writer.apply_watcher_event(&watcher::Event::Apply(cm));
///
/// // GitHub webhooks carry the repository's full name as their subject.
/// let map = sources::by_key(|cm: &ConfigMap| cm.data.as_ref().and_then(|d| d.get("repository").cloned()));
/// let event = ExternalEvent {
///     source: "github".into(), kind: "push".into(), id: "d-1".into(),
///     subject: Some("team/web".into()), time: None, data: serde_json::Value::Null,
/// };
/// assert_eq!(map(&event, &store), [ObjectRef::new("web").within("shop")]);
/// ```
pub fn by_key<K, I>(
    keys: impl Fn(&K) -> I + Send + Sync + 'static,
) -> impl Fn(&ExternalEvent, &Store<K>) -> Vec<ObjectRef<K>> + Send + Sync + 'static
where
    K: Resource<DynamicType = ()> + Clone + 'static,
    I: IntoIterator<Item = String>,
{
    move |event, store| {
        let Some(subject) = event.subject.as_deref() else {
            return Vec::new();
        };
        store
            .state()
            .iter()
            .filter(|obj| keys(obj).into_iter().any(|key| key == subject))
            .map(|obj| ObjectRef::from_obj(&**obj))
            .collect()
    }
}
