//! Prometheus scraping a loopback exporter, queried "now" through a path prefix with GET requests.

mod support;

use std::time::{Duration, Instant};

use autopilot_metrics::{ClientOptions, QueryData, RequestMethod};
use support::{DEADLINE, Prometheus, Setup, servers};

const EXPOSITION: &str = "# TYPE demo_requests_total counter\n\
    demo_requests_total{code=\"200\"} 42\n\
    demo_requests_total{code=\"500\"} 8\n";

#[tokio::test]
async fn scraped_values_are_read_back_under_a_path_prefix() {
    let exporter = servers::canned(200, "text/plain; version=0.0.4", EXPOSITION).await;
    let target = exporter.url.trim_start_matches("http://").to_owned();
    let prometheus = Prometheus::start(Setup {
        scrape_targets: vec![target],
        route_prefix: Some("/prom".to_owned()),
        ..Setup::default()
    })
    .await;
    assert!(prometheus.url.ends_with("/prom"));
    let client = prometheus.client(ClientOptions::default().method(RequestMethod::Get));

    // The first scrape comes a few seconds after start: poll for data, bounded by a generous deadline.
    let started = Instant::now();
    let total = loop {
        if let Some(total) = client
            .query_value("sum(demo_requests_total)", None)
            .await
            .unwrap()
        {
            break total;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "no scrape within {DEADLINE:?}:\n{}",
            prometheus.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(total, 50.0);
    let ratio = client
        .query_value(
            r#"sum(demo_requests_total{code!~"5.."}) / sum(demo_requests_total) * 100"#,
            None,
        )
        .await
        .unwrap();
    assert_eq!(ratio, Some(84.0));

    let answer = client.query(r#"up{job="exporter"}"#, None).await.unwrap();
    let QueryData::Vector(up) = answer.data else {
        panic!("expected a vector")
    };
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].value.value, 1.0);

    let scrapes = exporter.requests.lock().unwrap().clone();
    assert!(
        scrapes
            .iter()
            .all(|r| r.request_line.starts_with("GET /metrics ")),
        "{scrapes:?}"
    );
}
