//! The metric event source against a real Prometheus scraping a loopback exporter.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use autopilot::sources::{self, EventReceiver, metrics::MetricWatch};
use autopilot_metrics::{
    ClientOptions, MetricCheck, PrometheusClient, QueryTemplate, ThresholdRange, Variables,
};
use autopilot_testkit::prometheus::{PrometheusServer, ScrapeTarget};

/// Serves `demo_success_rate <value>`; returns the address and the value to change.
async fn exporter() -> (String, Arc<AtomicU64>) {
    let value = Arc::new(AtomicU64::new(100));
    let shared = value.clone();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let value = shared.load(Ordering::SeqCst);
            async move { format!("# TYPE demo_success_rate gauge\ndemo_success_rate {value}\n") }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (address, value)
}

async fn next_kind(received: &mut EventReceiver) -> String {
    let event = tokio::time::timeout(Duration::from_secs(60), received.recv())
        .await
        .expect("an event within 60 s")
        .expect("channel open");
    assert_eq!(event.subject.as_deref(), Some("demo/app"));
    event.kind
}

#[tokio::test]
async fn reports_breach_and_recovery_once_each() {
    let (address, value) = exporter().await;
    let prometheus = PrometheusServer::builder()
        .scrape(ScrapeTarget::new("demo", address))
        .scrape_interval(Duration::from_millis(200))
        .start()
        .await
        .expect("Prometheus starts (scripts/test installs it)");
    let client = PrometheusClient::new(&prometheus.url(), ClientOptions::default()).unwrap();
    let check = MetricCheck::new(
        "success-rate",
        QueryTemplate::new("demo_success_rate").unwrap(),
        ThresholdRange::at_least(99.0),
    );
    // Wait for the first scrape, so the watch starts on a healthy value.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while client
        .query_value("demo_success_rate", None)
        .await
        .ok()
        .flatten()
        != Some(100.0)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no scrape within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (events, mut received) = sources::channel(16);
    let watch = MetricWatch::new(client.clone(), check, Variables::new())
        .subject("demo/app")
        .every(Duration::from_millis(100))
        .spawn(events);

    // A healthy start wakes nobody.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        received.try_recv().is_err(),
        "a healthy start sends no event"
    );

    value.store(90, Ordering::SeqCst);
    assert_eq!(next_kind(&mut received).await, "metric.breached");
    value.store(100, Ordering::SeqCst);
    assert_eq!(next_kind(&mut received).await, "metric.recovered");

    // A steady value sends nothing more.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(received.try_recv().is_err(), "no event without a change");
    watch.abort();

    // A query with no series is reported as no data at once, never as a pass.
    let (events, mut received) = sources::channel(16);
    let missing = MetricCheck::new(
        "missing",
        QueryTemplate::new("no_such_metric").unwrap(),
        ThresholdRange::at_least(0.0),
    );
    let watch = MetricWatch::new(client, missing, Variables::new())
        .subject("demo/app")
        .every(Duration::from_millis(100))
        .spawn(events);
    assert_eq!(next_kind(&mut received).await, "metric.nodata");
    watch.abort();
}
