//! CloudEvents 1.0 over HTTP: binary, structured and batched modes.
//!
//! `POST /` takes an event in binary mode (`ce-*` headers, the body is the data), structured mode
//! (`Content-Type: application/cloudevents+json`) or a batch
//! (`application/cloudevents-batch+json`). A malformed event — missing `id`, `source`, `type` or
//! `specversion`, an unknown spec version, bad JSON — gets `400 Bad Request` saying why, and no
//! event of a bad batch is delivered. Accepted events answer `202 Accepted`.
//!
//! ```
//! let (events, _received) = autopilot::sources::channel(16);
//! let app: axum::Router = autopilot::sources::cloudevents::router(events);
//! # drop(app);
//! ```

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use cloudevents::{AttributesReader, Data, Event};

use super::{EventSender, ExternalEvent, deliver};

const BATCH_CONTENT_TYPE: &str = "application/cloudevents-batch+json";

/// A router answering `POST /` with CloudEvents; mount it with `Router::nest`.
pub fn router(events: EventSender) -> Router {
    Router::new().route("/", post(receive)).with_state(events)
}

async fn receive(
    State(events): State<EventSender>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let batch = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with(BATCH_CONTENT_TYPE));
    let parsed = if batch {
        serde_json::from_slice::<Vec<Event>>(&body).map_err(|error| error.to_string())
    } else {
        cloudevents::binding::http::to_event(&headers, body.to_vec())
            .map(|event| vec![event])
            .map_err(|error| error.to_string())
    };
    let received = match parsed {
        Ok(received) => received,
        Err(reason) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("malformed CloudEvent: {reason}"),
            );
        }
    };
    let count = received.len();
    for event in received {
        if let Err((status, reason)) = deliver(&events, to_external(event)) {
            return (status, reason.to_owned());
        }
    }
    (StatusCode::ACCEPTED, format!("accepted {count} event(s)"))
}

fn to_external(event: Event) -> ExternalEvent {
    let data = match event.data() {
        Some(Data::Json(value)) => value.clone(),
        Some(Data::String(text)) => serde_json::Value::String(text.clone()),
        Some(Data::Binary(bytes)) => serde_json::from_slice(bytes).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned())
        }),
        None => serde_json::Value::Null,
    };
    ExternalEvent {
        source: event.source().to_string(),
        kind: event.ty().to_owned(),
        id: event.id().to_owned(),
        subject: event.subject().map(str::to_owned),
        time: event.time().copied(),
        data,
    }
}
