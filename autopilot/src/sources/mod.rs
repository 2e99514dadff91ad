//! Event sources: things outside the cluster that should wake objects.
//!
//! A source turns what it receives — a GitHub webhook, a CloudEvent, a metric leaving its range, a failed trace — into an [`ExternalEvent`] and
//! sends it on an [`EventSender`]. The runtime maps each event to the objects it concerns and
//! reconciles them at once instead of waiting for their next re-check; their handlers see the event.
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
//! # drop((app, received));
//! ```

pub mod cloudevents;
pub mod github;
pub mod metrics;
pub mod traces;

use chrono::{DateTime, Utc};
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
