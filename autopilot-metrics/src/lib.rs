//! Ask Prometheus how a workload is doing, in one line, and get an answer you can trust.
//!
//! Start with [`PrometheusClient`]: build it once from a URL and [`ClientOptions`], clone it freely. For the
//! usual canary questions use the built-in queries of a mesh [`Provider`] (request success rate and p99
//! duration for Istio, Linkerd and Envoy-based gateways); for anything else write a [`QueryTemplate`], whose
//! variables are escaped so a value can never change the query. A [`MetricCheck`] judges a value against a
//! [`ThresholdRange`], and an [`Analysis`] turns rounds of checks into [`Decision`]s. No data is never a
//! pass.
//!
//! ```no_run
//! use autopilot_metrics::{
//!     Analysis, ClientOptions, Decision, MetricCheck, Progress, PrometheusClient, Provider, Variables,
//! };
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let client = PrometheusClient::new("http://prometheus.monitoring:9090", ClientOptions::default())?;
//! let vars = Variables::new().namespace("shop").target("checkout").interval("1m");
//!
//! let analysis = Analysis::new(5, 10)
//!     .check(MetricCheck::success_rate(Provider::Istio, 99.0))
//!     .check(MetricCheck::request_duration(Provider::Istio, 500.0));
//! let round = analysis.run(&client, &vars, None, Progress::default()).await;
//! for result in &round.results {
//!     println!("{}", result.reason);
//! }
//! if round.decision == Decision::Rollback {
//!     // route all traffic back to the primary
//! }
//! # Ok(())
//! # }
//! ```

mod builtin;
mod check;
mod client;
mod config;
mod duration;
mod error;
pub mod jaeger;
mod response;
pub mod template;
mod tls;

pub use builtin::{BuiltinMetric, Provider, UnknownMetric, UnknownProvider};
pub use check::{
    Analysis, CheckResult, Decision, InvalidCheck, MetricCheck, Progress, Round, ThresholdRange,
    Verdict,
};
pub use client::{Auth, ClientOptions, PrometheusClient, RequestMethod, TimeRange};
pub use config::PrometheusConfig;
pub use error::{ConfigError, Error, ErrorType, QueryError};
pub use response::{
    InstantSample, Labels, QueryData, QueryResponse, RangeSeries, Sample, StringSample,
};
pub use template::{DurationError, PromDuration, QueryTemplate, TemplateError, Variables};
pub use tls::TlsVerification;
