//! GitHub webhooks, verified with the shared secret (`X-Hub-Signature-256`).
//!
//! A request is accepted only when its body's HMAC-SHA256 under the secret matches the signature
//! header, compared in constant time; anything else gets `401 Unauthorized` and sends nothing.
//! `ping` deliveries are acknowledged without an event, and a redelivery of a delivery id already
//! seen (GitHub retries) is acknowledged without a second event.
//!
//! ```
//! use autopilot::sources::github::{WebhookSecret, signature};
//!
//! // The example from GitHub's documentation.
//! let secret = WebhookSecret::new("It's a Secret to Everybody");
//! assert_eq!(
//!     signature(&secret, b"Hello, World!"),
//!     "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
//! );
//! ```

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::{EventSender, ExternalEvent, deliver};

/// How many recent delivery ids are remembered to drop redeliveries.
const REMEMBERED_DELIVERIES: usize = 1024;

/// The webhook's shared secret; its `Debug` output hides the value.
#[derive(Clone)]
pub struct WebhookSecret(Arc<[u8]>);

impl WebhookSecret {
    /// Wraps the secret configured on the GitHub webhook.
    pub fn new(secret: impl AsRef<[u8]>) -> Self {
        Self(Arc::from(secret.as_ref()))
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length, so this cannot fail.
        <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"))
    }

    /// Whether `header` (`sha256=<hex>`) is the signature of `body`, in constant time.
    #[must_use]
    pub fn verify(&self, body: &[u8], header: &str) -> bool {
        let Some(hex_digest) = header.strip_prefix("sha256=") else {
            return false;
        };
        let Ok(expected) = hex::decode(hex_digest) else {
            return false;
        };
        let mut mac = self.mac();
        mac.update(body);
        mac.verify_slice(&expected).is_ok()
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(***)")
    }
}

/// The `X-Hub-Signature-256` value GitHub sends for `body` (useful for tests and for relaying).
#[must_use]
pub fn signature(secret: &WebhookSecret, body: &[u8]) -> String {
    let mut mac = secret.mac();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[derive(Clone)]
struct Receiver {
    secret: WebhookSecret,
    events: EventSender,
    seen: Arc<Mutex<VecDeque<String>>>,
}

/// A router answering `POST /` with GitHub's webhook protocol; mount it with `Router::nest`.
pub fn router(secret: WebhookSecret, events: EventSender) -> Router {
    Router::new()
        .route("/", post(receive))
        .with_state(Receiver {
            secret,
            events,
            seen: Arc::default(),
        })
}

async fn receive(
    State(receiver): State<Receiver>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let Some(signature) = header("x-hub-signature-256") else {
        return (StatusCode::UNAUTHORIZED, "missing X-Hub-Signature-256");
    };
    if !receiver.secret.verify(&body, signature) {
        tracing::warn!("rejected a GitHub webhook with a wrong signature");
        return (StatusCode::UNAUTHORIZED, "signature does not match");
    }
    let Some(kind) = header("x-github-event") else {
        return (StatusCode::BAD_REQUEST, "missing X-GitHub-Event");
    };
    let Ok(data) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "body is not JSON");
    };
    if kind == "ping" {
        return (StatusCode::OK, "pong");
    }
    let id = header("x-github-delivery").unwrap_or_default().to_owned();
    if !id.is_empty() && !receiver.first_delivery(&id) {
        return (StatusCode::OK, "already received");
    }
    let subject = data["repository"]["full_name"].as_str().map(str::to_owned);
    let event = ExternalEvent {
        source: "github".to_owned(),
        kind: kind.to_owned(),
        id,
        subject,
        time: None,
        data,
    };
    match deliver(&receiver.events, event) {
        Ok(()) => (StatusCode::ACCEPTED, "accepted"),
        Err(refusal) => refusal,
    }
}

impl Receiver {
    /// Remembers `id`; false when it was seen recently.
    fn first_delivery(&self, id: &str) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.iter().any(|known| known == id) {
            return false;
        }
        if seen.len() == REMEMBERED_DELIVERIES {
            seen.pop_front();
        }
        seen.push_back(id.to_owned());
        true
    }
}
