//! A real Prometheus scrapes the operator's /metrics page: proof that the exposition parses and that the
//! series arrive with the names and values the README documents.

mod observability_support;

use std::time::Duration;

use autopilot::observability::{Health, Metrics, ReconcileResult};
use autopilot_testkit::prometheus::{PrometheusServer, ScrapeTarget};
use observability_support::{Server, http};

/// Runs an instant query and returns the first sample's value, if any.
async fn query(prometheus: &PrometheusServer, promql: &str) -> Option<f64> {
    let body: serde_json::Value = http()
        .get(format!("{}/api/v1/query", prometheus.url()))
        .query(&[("query", promql)])
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    body["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

async fn eventually(prometheus: &PrometheusServer, promql: &str) -> f64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = query(prometheus, promql).await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no result for {promql}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn prometheus_scrapes_and_parses_every_metric() {
    let metrics = Metrics::new();
    metrics.init_controller("canary", &["Initializing", "Waiting"]);
    for result in [ReconcileResult::Success, ReconcileResult::Error] {
        metrics.reconcile_started("canary");
        metrics.reconcile_finished("canary", result, Duration::from_millis(40));
    }
    metrics.handler_finished("canary", "Waiting", Duration::from_millis(30));
    metrics.transition("canary", "Initializing", "Waiting");
    metrics.count_objects_with("canary", || vec![("Waiting".to_owned(), 1)]);
    metrics.set_leader("canary-lock", true);
    let server = Server::start(metrics, Health::new()).await;

    let prometheus = PrometheusServer::builder()
        .scrape(ScrapeTarget::new("operator", server.addr.to_string()))
        .scrape_interval(Duration::from_secs(1))
        .start()
        .await
        .unwrap();

    assert_eq!(eventually(&prometheus, r#"up{job="operator"}"#).await, 1.0);
    let checks = [
        (
            r#"controller_runtime_reconcile_total{controller="canary",result="success"}"#,
            1.0,
        ),
        (
            r#"sum(controller_runtime_reconcile_total{controller="canary"})"#,
            2.0,
        ),
        (
            r#"controller_runtime_reconcile_errors_total{controller="canary"}"#,
            1.0,
        ),
        (
            r#"controller_runtime_reconcile_time_seconds_count{controller="canary"}"#,
            2.0,
        ),
        (
            r#"controller_runtime_reconcile_time_seconds_bucket{controller="canary",le="0.05"}"#,
            2.0,
        ),
        (
            r#"autopilot_phase_handler_duration_seconds_count{phase="Waiting"}"#,
            1.0,
        ),
        (
            r#"autopilot_phase_transitions_total{from="Initializing",to="Waiting"}"#,
            1.0,
        ),
        (r#"autopilot_objects{phase="Waiting"}"#, 1.0),
        (r#"autopilot_objects{phase="Initializing"}"#, 0.0),
        (r#"leader_election_master_status{name="canary-lock"}"#, 1.0),
        (
            r#"controller_runtime_active_workers{controller="canary"}"#,
            0.0,
        ),
    ];
    for (promql, expected) in checks {
        assert_eq!(eventually(&prometheus, promql).await, expected, "{promql}");
    }
}
