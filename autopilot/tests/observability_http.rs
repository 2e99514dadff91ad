//! The probe server over real HTTP on loopback: /metrics content and format, /healthz, /readyz.

mod observability_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use autopilot::observability::{Health, Metrics, OPENMETRICS_CONTENT_TYPE, ReconcileResult};
use observability_support::{Server, assert_sample, get, http, sum};

#[tokio::test]
async fn metrics_page_serves_recorded_series_in_openmetrics_format() {
    let metrics = Metrics::new();
    let server = Server::start(metrics.clone(), Health::new()).await;

    let reconcile = |result, took| {
        metrics.reconcile_started("canary");
        metrics.reconcile_finished("canary", result, took);
    };
    for _ in 0..3 {
        reconcile(ReconcileResult::RequeueAfter, Duration::from_millis(3));
    }
    reconcile(ReconcileResult::Error, Duration::from_millis(200));
    metrics.handler_finished("canary", "Waiting", Duration::from_millis(20));
    metrics.handler_finished("canary", "Waiting", Duration::from_secs(2));
    metrics.transition("canary", "Initializing", "Waiting");
    let census = Arc::new(Mutex::new(vec![("Waiting".to_owned(), 1)]));
    let counted = census.clone();
    metrics.count_objects_with("canary", move || counted.lock().unwrap().clone());
    metrics.set_leader("canary-lock", true);
    metrics.reconcile_started("canary"); // still running while scraped

    let response = http().get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        OPENMETRICS_CONTENT_TYPE
    );
    let text = response.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");

    let labels = r#"{controller="canary",result="requeue_after"}"#;
    assert_sample(
        &text,
        &format!("controller_runtime_reconcile_total{labels}"),
        3.0,
    );
    assert_eq!(
        sum(
            &text,
            "controller_runtime_reconcile_total",
            &[("controller", "canary")]
        ),
        4.0
    );
    assert_sample(
        &text,
        r#"controller_runtime_reconcile_errors_total{controller="canary"}"#,
        1.0,
    );
    assert_sample(
        &text,
        r#"controller_runtime_reconcile_time_seconds_count{controller="canary"}"#,
        4.0,
    );
    // The 200 ms reconcile is the only one above 0.1 s.
    assert_sample(
        &text,
        r#"controller_runtime_reconcile_time_seconds_bucket{le="0.1",controller="canary"}"#,
        3.0,
    );
    assert_sample(
        &text,
        r#"autopilot_phase_handler_duration_seconds_count{controller="canary",phase="Waiting"}"#,
        2.0,
    );
    assert_sample(
        &text,
        r#"autopilot_phase_transitions_total{controller="canary",from="Initializing",to="Waiting"}"#,
        1.0,
    );
    assert_sample(
        &text,
        r#"autopilot_objects{controller="canary",phase="Waiting"}"#,
        1.0,
    );
    assert_sample(
        &text,
        r#"leader_election_master_status{name="canary-lock"}"#,
        1.0,
    );
    assert_sample(
        &text,
        r#"controller_runtime_active_workers{controller="canary"}"#,
        1.0,
    );

    metrics.reconcile_finished("canary", ReconcileResult::Success, Duration::from_millis(1));
    *census.lock().unwrap() = vec![("Promoting".to_owned(), 1)];
    let (_, text) = get(&server.url("/metrics")).await;
    assert_sample(
        &text,
        r#"autopilot_objects{controller="canary",phase="Waiting"}"#,
        0.0,
    );
    assert_sample(
        &text,
        r#"autopilot_objects{controller="canary",phase="Promoting"}"#,
        1.0,
    );
    assert_sample(
        &text,
        r#"controller_runtime_active_workers{controller="canary"}"#,
        0.0,
    );
    assert_sample(
        &text,
        r#"controller_runtime_reconcile_total{controller="canary",result="success"}"#,
        1.0,
    );
}

#[tokio::test]
async fn initialised_controller_exposes_every_family_with_zero_values() {
    let metrics = Metrics::new();
    metrics.init_controller("canary", &["Initializing", "Waiting"]);
    metrics.set_leader("canary-lock", false);
    let server = Server::start(metrics, Health::new()).await;
    let (_, text) = get(&server.url("/metrics")).await;
    assert_sample(
        &text,
        r#"controller_runtime_reconcile_total{controller="canary",result="error"}"#,
        0.0,
    );
    assert_sample(
        &text,
        r#"autopilot_phase_handler_duration_seconds_count{controller="canary",phase="Initializing"}"#,
        0.0,
    );
    // Transitions are the one family with no series until a first transition: its {from,to} pairs are open.
    for name in [
        "controller_runtime_reconcile",
        "controller_runtime_reconcile_errors",
        "controller_runtime_reconcile_time_seconds",
        "controller_runtime_active_workers",
        "autopilot_phase_handler_duration_seconds",
        "autopilot_objects",
        "leader_election_master_status",
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "no TYPE for {name}:\n{text}"
        );
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "no HELP for {name}:\n{text}"
        );
    }
}

#[tokio::test]
async fn readyz_waits_for_cache_sync_and_healthz_is_always_ok() {
    let health = Health::new();
    let server = Server::start(Metrics::new(), health.clone()).await;

    assert_eq!(get(&server.url("/healthz")).await, (200, "ok".to_owned()));
    let (status, body) = get(&server.url("/readyz")).await;
    assert_eq!(status, 503, "{body}");

    health.set_caches_synced(true);
    assert_eq!(get(&server.url("/readyz")).await.0, 200);

    health.set_caches_synced(false);
    assert_eq!(get(&server.url("/readyz")).await.0, 503);
    assert_eq!(get(&server.url("/nope")).await.0, 404);
}

#[tokio::test]
async fn a_stopped_controller_counts_no_objects_and_no_workers() {
    let metrics = Metrics::new();
    metrics.count_objects_with("canary", || vec![("Waiting".to_owned(), 4)]);
    metrics.reconcile_started("canary");
    let server = Server::start(metrics.clone(), Health::new()).await;
    let (_, text) = get(&server.url("/metrics")).await;
    assert_sample(
        &text,
        r#"autopilot_objects{controller="canary",phase="Waiting"}"#,
        4.0,
    );

    metrics.controller_stopped("canary");
    let (_, text) = get(&server.url("/metrics")).await;
    assert_sample(
        &text,
        r#"autopilot_objects{controller="canary",phase="Waiting"}"#,
        0.0,
    );
    assert_sample(
        &text,
        r#"controller_runtime_active_workers{controller="canary"}"#,
        0.0,
    );
}
