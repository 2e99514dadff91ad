//! What an operator shows about itself: Prometheus metrics, health probes and logs.
//!
//! - [`Metrics`]: the registry behind `/metrics` (reconciles, errors, durations, phase transitions, objects
//!   per phase, leader status), in the OpenMetrics text format.
//! - [`Health`]: the state behind `/healthz` and `/readyz`.
//! - [`serve`]: the axum server that exposes both.
//! - [`RuntimeObserver`]: the runtime hooks that keep both in step with the controllers.
//! - [`init_logging`]: text or JSON logs with env-filter levels.

mod hooks;
mod logging;
mod metrics;
mod server;

pub use hooks::RuntimeObserver;
pub use logging::{
    DEFAULT_LOG_FILTER, LogConfig, LogFormat, LoggingError, init_logging, subscriber,
};
pub use metrics::{Metrics, ReconcileResult};
pub use server::{Health, OPENMETRICS_CONTENT_TYPE, Readiness, ServerError, bind, router, serve};
