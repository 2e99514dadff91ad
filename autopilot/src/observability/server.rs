//! The HTTP server for Prometheus and the kubelet: `/metrics`, `/healthz`, `/readyz`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use super::Metrics;
use crate::leader::{LeaderStatus, Leadership};

/// The `Content-Type` of the OpenMetrics text format.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Errors of the HTTP server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("HTTP server failed")]
    Serve(#[source] std::io::Error),
}

/// Whether the process should receive work, as `/readyz` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// Ready; the text says in which role.
    Ready(&'static str),
    /// Not ready; the text says what it waits for.
    NotReady(&'static str),
}

/// The state the probes report, shared between the runtime (which sets it) and the server.
///
/// Readiness rules:
/// - without leader election, ready once the caches have synced;
/// - with leader election, not ready until the Lease has been read once; then a standby is ready (it is a
///   healthy replica waiting its turn: were it unready, a Deployment's rolling update would stall on it),
///   and the leader is ready once its caches have synced.
///
/// ```
/// use autopilot::observability::{Health, Readiness};
/// let health = Health::new();
/// assert!(matches!(health.readiness(), Readiness::NotReady(_)));
/// health.set_caches_synced(true);
/// assert!(matches!(health.readiness(), Readiness::Ready(_)));
/// ```
#[derive(Clone, Debug, Default)]
pub struct Health {
    inner: Arc<HealthInner>,
}

#[derive(Debug, Default)]
struct HealthInner {
    caches_synced: AtomicBool,
    leadership: OnceLock<Leadership>,
}

impl Health {
    /// Probe state for a process without leader election.
    pub fn new() -> Self {
        Self::default()
    }

    /// Probe state for a process that takes part in leader election.
    pub fn with_leadership(leadership: Leadership) -> Self {
        let health = Self::new();
        health.set_leadership(leadership);
        health
    }

    /// Makes readiness follow the leader election rules from now on; later calls are ignored.
    pub fn set_leadership(&self, leadership: Leadership) {
        let _ = self.inner.leadership.set(leadership);
    }

    /// Records whether the controllers' caches have synced; set it back to `false` when they stop.
    pub fn set_caches_synced(&self, synced: bool) {
        self.inner.caches_synced.store(synced, Ordering::SeqCst);
    }

    /// Whether the controllers' caches have synced.
    pub fn caches_synced(&self) -> bool {
        self.inner.caches_synced.load(Ordering::SeqCst)
    }

    /// The current readiness, by the rules above.
    pub fn readiness(&self) -> Readiness {
        let synced = self.caches_synced();
        match self.inner.leadership.get().map(Leadership::status) {
            None | Some(LeaderStatus::Leader) if synced => Readiness::Ready("ok"),
            None | Some(LeaderStatus::Leader) => Readiness::NotReady("caches not synced"),
            Some(LeaderStatus::Standby) => Readiness::Ready("ok: standby"),
            Some(LeaderStatus::Starting) => Readiness::NotReady("lease not read yet"),
        }
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Metrics,
    health: Health,
}

/// The routes `/metrics`, `/healthz` and `/readyz`, for embedding in another axum app.
pub fn router(metrics: Metrics, health: Health) -> Router {
    Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(AppState { metrics, health })
}

async fn metrics_page(State(state): State<AppState>) -> Response {
    match state.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], text).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics").into_response(),
    }
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.health.readiness() {
        Readiness::Ready(text) => (StatusCode::OK, text).into_response(),
        Readiness::NotReady(text) => (StatusCode::SERVICE_UNAVAILABLE, text).into_response(),
    }
}

/// Binds the server's address (use port 0 to let the OS choose, then ask the listener).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

/// Serves [`router`] on `listener` until `shutdown` completes.
///
/// ```no_run
/// # async fn example() -> Result<(), autopilot::observability::ServerError> {
/// use autopilot::observability::{bind, serve, Health, Metrics};
/// let listener = bind("0.0.0.0:8080".parse().unwrap()).await?;
/// serve(listener, Metrics::new(), Health::new(), std::future::pending()).await
/// # }
/// ```
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    health: Health,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    axum::serve(listener, router(metrics, health))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ServerError::Serve)
}
