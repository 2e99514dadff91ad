//! A synthetic service-mesh data plane for demos and tests.
//!
//! [`TrafficSimulator`] plays the part of the sidecars: each [`tick`](TrafficSimulator::tick) sends a
//! batch of requests, split between workloads by their routing weight, and records them the way
//! Istio, Linkerd and Envoy do (request counters by response code, latency histograms). Errors and
//! latencies follow each workload's [`Health`] exactly, so the success rate and p99 a query computes
//! are known in advance. [`TrafficSimulator::serve`] exposes the counters in the Prometheus text
//! format for a real Prometheus to scrape.
//!
//! ```
//! use autopilot_examples::traffic::{Health, TrafficSimulator, Workload};
//!
//! let traffic = TrafficSimulator::new("demo", 100);
//! traffic.tick(&[
//!     Workload::new("podinfo-primary", 90, Health::default()),
//!     Workload::new("podinfo", 10, Health { error_rate: 0.5, latency_ms: 20.0 }),
//! ]);
//! let text = traffic.exposition();
//! assert!(text.contains(
//!     r#"istio_requests_total{reporter="destination",destination_workload_namespace="demo",destination_workload="podinfo",response_code="500"} 5"#
//! ));
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::routing::get;

/// How a workload answers: the share of requests that fail with a 500 and the typical latency.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Health {
    /// Share of requests answered with HTTP 500, from 0.0 to 1.0.
    pub error_rate: f64,
    /// Median latency in milliseconds; requests spread evenly from half to one and a half of it.
    pub latency_ms: f64,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            error_rate: 0.0,
            latency_ms: 25.0,
        }
    }
}

/// A workload receiving `weight` percent of the traffic.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    /// The Deployment name, as the mesh labels its telemetry.
    pub name: String,
    /// The Service in front of it, naming Envoy's upstream cluster (defaults to `name`).
    pub service: String,
    /// Percent of requests routed to it.
    pub weight: u8,
    /// How it answers.
    pub health: Health,
}

impl Workload {
    /// A workload with a name, a routing weight in percent and a health profile.
    pub fn new(name: impl Into<String>, weight: u8, health: Health) -> Self {
        let name = name.into();
        Self {
            service: name.clone(),
            name,
            weight,
            health,
        }
    }

    /// Names the Service in front of the workload (Envoy labels its telemetry by Service).
    #[must_use]
    pub fn behind_service(mut self, service: impl Into<String>) -> Self {
        self.service = service.into();
        self
    }
}

/// Latency bucket bounds (ms) shared by the three meshes' histograms.
pub const BUCKETS_MS: [f64; 14] = [
    1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
];

/// One workload's counters: requests by outcome and the latency histogram.
#[derive(Clone, Debug, Default)]
pub struct WorkloadTelemetry {
    /// The Service in front of the workload.
    pub service: String,
    /// Requests answered successfully.
    pub ok: u64,
    /// Requests answered with HTTP 500.
    pub failed: u64,
    /// Cumulative counts per bucket of [`BUCKETS_MS`], then `+Inf`.
    pub buckets: [u64; BUCKETS_MS.len() + 1],
    latency_sum_ms: f64,
}

impl WorkloadTelemetry {
    fn record(&mut self, requests: u64, health: Health) {
        // Deterministic: exactly round(requests × error_rate) failures per batch.
        let rate = health.error_rate.clamp(0.0, 1.0);
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let failed = ((requests as f64) * rate).round() as u64;
        self.failed += failed;
        self.ok += requests - failed;
        for i in 0..requests {
            #[allow(clippy::cast_precision_loss)]
            let spread = if requests > 1 {
                i as f64 / (requests - 1) as f64
            } else {
                0.5
            };
            let latency = health.latency_ms * (0.5 + spread);
            self.latency_sum_ms += latency;
            let first = BUCKETS_MS
                .iter()
                .position(|bound| latency <= *bound)
                .unwrap_or(BUCKETS_MS.len());
            for bucket in &mut self.buckets[first..] {
                *bucket += 1;
            }
        }
    }

    /// All requests.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.ok + self.failed
    }
}

/// Generates mesh telemetry for weighted workloads; cheap to clone (shared counters).
#[derive(Clone, Debug)]
pub struct TrafficSimulator {
    namespace: String,
    port: u16,
    requests_per_tick: u64,
    workloads: Arc<Mutex<BTreeMap<String, WorkloadTelemetry>>>,
}

impl TrafficSimulator {
    /// A simulator for workloads in `namespace` sending `requests_per_tick` requests per tick.
    pub fn new(namespace: impl Into<String>, requests_per_tick: u64) -> Self {
        Self {
            namespace: namespace.into(),
            port: 80,
            requests_per_tick,
            workloads: Arc::default(),
        }
    }

    /// Sets the Service port that names Envoy's upstream clusters (`<namespace>_<service>_<port>`;
    /// default 80).
    #[must_use]
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Sends one batch of requests, split by weight (weights are percentages of the batch).
    pub fn tick(&self, workloads: &[Workload]) {
        let mut telemetry = self
            .workloads
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for workload in workloads {
            let requests = self.requests_per_tick * u64::from(workload.weight.min(100)) / 100;
            let entry = telemetry.entry(workload.name.clone()).or_default();
            entry.service.clone_from(&workload.service);
            if requests > 0 {
                entry.record(requests, workload.health);
            }
        }
    }

    /// The counters of every workload so far, by workload name.
    #[must_use]
    pub fn snapshot(&self) -> BTreeMap<String, WorkloadTelemetry> {
        self.workloads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The current counters in the Prometheus text exposition format (version 0.0.4).
    #[must_use]
    pub fn exposition(&self) -> String {
        let telemetry = self
            .workloads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let ns = &self.namespace;
        let port = self.port;
        let mut out = String::new();
        let histogram = |out: &mut String, name: &str, labels: &str, data: &WorkloadTelemetry| {
            for (bound, count) in BUCKETS_MS.iter().zip(&data.buckets) {
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {count}");
            }
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels},le=\"+Inf\"}} {}",
                data.total()
            );
            let _ = writeln!(out, "{name}_sum{{{labels}}} {}", data.latency_sum_ms);
            let _ = writeln!(out, "{name}_count{{{labels}}} {}", data.total());
        };

        out.push_str("# TYPE istio_requests_total counter\n");
        for (workload, data) in &telemetry {
            for (code, count) in [("200", data.ok), ("500", data.failed)] {
                let _ = writeln!(
                    out,
                    "istio_requests_total{{reporter=\"destination\",destination_workload_namespace=\"{ns}\",destination_workload=\"{workload}\",response_code=\"{code}\"}} {count}"
                );
            }
        }
        out.push_str("# TYPE istio_request_duration_milliseconds histogram\n");
        for (workload, data) in &telemetry {
            let labels = format!(
                "reporter=\"destination\",destination_workload_namespace=\"{ns}\",destination_workload=\"{workload}\""
            );
            histogram(
                &mut out,
                "istio_request_duration_milliseconds",
                &labels,
                data,
            );
        }

        out.push_str("# TYPE response_total counter\n");
        for (workload, data) in &telemetry {
            for (classification, count) in [("success", data.ok), ("failure", data.failed)] {
                let _ = writeln!(
                    out,
                    "response_total{{namespace=\"{ns}\",deployment=\"{workload}\",direction=\"inbound\",classification=\"{classification}\"}} {count}"
                );
            }
        }
        out.push_str("# TYPE response_latency_ms histogram\n");
        for (workload, data) in &telemetry {
            let labels =
                format!("namespace=\"{ns}\",deployment=\"{workload}\",direction=\"inbound\"");
            histogram(&mut out, "response_latency_ms", &labels, data);
        }

        out.push_str("# TYPE envoy_cluster_upstream_rq counter\n");
        for data in telemetry.values() {
            let service = &data.service;
            for (code, count) in [("200", data.ok), ("500", data.failed)] {
                let _ = writeln!(
                    out,
                    "envoy_cluster_upstream_rq{{envoy_cluster_name=\"{ns}_{service}_{port}\",envoy_response_code=\"{code}\"}} {count}"
                );
            }
        }
        out.push_str("# TYPE envoy_cluster_upstream_rq_time histogram\n");
        for data in telemetry.values() {
            let labels = format!("envoy_cluster_name=\"{ns}_{}_{port}\"", data.service);
            histogram(&mut out, "envoy_cluster_upstream_rq_time", &labels, data);
        }
        out
    }

    /// Serves [`exposition`](Self::exposition) at `/metrics` on `address` (use port 0 for a free
    /// one) until the returned task is dropped or aborted; returns the bound address.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn serve(
        &self,
        address: SocketAddr,
    ) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
        let listener = tokio::net::TcpListener::bind(address).await?;
        let bound = listener.local_addr()?;
        let this = self.clone();
        let app = axum::Router::new().route(
            "/metrics",
            get(move || {
                let this = this.clone();
                async move { this.exposition() }
            }),
        );
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::warn!(%error, "traffic exporter stopped");
            }
        });
        Ok((bound, task))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line_value(text: &str, prefix: &str) -> f64 {
        text.lines()
            .find(|line| line.starts_with(prefix))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("no line starting with {prefix} in\n{text}"))
    }

    #[test]
    fn splits_requests_by_weight_and_error_rate() {
        let traffic = TrafficSimulator::new("ns", 1000);
        let bad = Health {
            error_rate: 0.05,
            latency_ms: 100.0,
        };
        for _ in 0..3 {
            traffic.tick(&[
                Workload::new("app-primary", 80, Health::default()),
                Workload::new("app", 20, bad).behind_service("app-canary"),
            ]);
        }
        let text = traffic.exposition();
        // 20 % of 1000 per tick = 200, 5 % of them fail: 10 per tick.
        assert_eq!(
            line_value(
                &text,
                r#"response_total{namespace="ns",deployment="app",direction="inbound",classification="failure"}"#
            ),
            30.0
        );
        assert_eq!(
            line_value(
                &text,
                r#"istio_requests_total{reporter="destination",destination_workload_namespace="ns",destination_workload="app",response_code="200"}"#
            ),
            570.0
        );
        assert_eq!(
            line_value(
                &text,
                r#"envoy_cluster_upstream_rq{envoy_cluster_name="ns_app-canary_80",envoy_response_code="500"}"#
            ),
            30.0
        );
    }

    #[test]
    fn histograms_are_cumulative_and_match_the_latency_spread() {
        let traffic = TrafficSimulator::new("ns", 100);
        traffic.tick(&[Workload::new(
            "app",
            100,
            Health {
                error_rate: 0.0,
                latency_ms: 100.0,
            },
        )]);
        let text = traffic.exposition();
        let bucket = |le: &str| {
            line_value(
                &text,
                &format!(
                    r#"response_latency_ms_bucket{{namespace="ns",deployment="app",direction="inbound",le="{le}"}}"#
                ),
            )
        };
        // Latencies spread evenly over 50..=150 ms: half at most 100 ms, none above 250 ms.
        assert_eq!(bucket("50"), 1.0);
        assert_eq!(bucket("100"), 50.0);
        assert_eq!(bucket("250"), 100.0);
        assert_eq!(bucket("+Inf"), 100.0);
    }

    #[tokio::test]
    async fn serves_the_exposition_over_http() {
        let traffic = TrafficSimulator::new("ns", 10);
        traffic.tick(&[Workload::new("app", 100, Health::default())]);
        let (address, task) = traffic
            .serve(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(
            &mut stream,
            b"GET /metrics HTTP/1.0\r\nHost: test\r\n\r\n",
        )
        .await
        .unwrap();
        let mut body = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut body)
            .await
            .unwrap();
        task.abort();
        assert!(
            body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200"),
            "{body}"
        );
        assert!(body.contains("istio_requests_total{"), "{body}");
    }
}
