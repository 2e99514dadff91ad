//! Hostile variable values cannot change a query: rendered into the built-in queries and run against a
//! real Prometheus, they match only a series whose label is literally that value, or nothing.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use autopilot_metrics::{
    BuiltinMetric, ClientOptions, Error, Provider, QueryTemplate, TemplateError, Variables,
};
use support::openmetrics::{Backfill, EVAL};
use support::{Prometheus, Setup};

const INJECTION: &str = r#"x"}) or vector(1) #"#;
const BACKSLASHES: &str = r#"we.ird\back"slash\"#;

fn destination(workload: &str, code: &'static str) -> Vec<(&'static str, String)> {
    vec![
        ("reporter", "destination".to_owned()),
        ("destination_workload_namespace", "test".to_owned()),
        ("destination_workload", workload.to_owned()),
        ("response_code", code.to_owned()),
    ]
}

fn data() -> String {
    let mut backfill = Backfill::new();
    // Workloads literally named like the hostile values: 100 % and 50 % success.
    for (workload, ok, failed) in [
        ("podinfo", 900.0, 100.0),
        (INJECTION, 600.0, 0.0),
        (BACKSLASHES, 300.0, 300.0),
    ] {
        for (code, per_minute) in [("200", ok), ("500", failed)] {
            let labels = destination(workload, code);
            let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
            backfill = backfill.counter("istio_requests_total", &labels, per_minute);
        }
    }
    backfill.finish()
}

fn at_eval() -> Option<SystemTime> {
    Some(UNIX_EPOCH + Duration::from_secs(EVAL))
}

async fn success_rate(
    client: &autopilot_metrics::PrometheusClient,
    target: &str,
) -> Result<Option<f64>, Error> {
    let vars = Variables::new()
        .namespace("test")
        .target(target)
        .interval("1m");
    client
        .builtin(
            Provider::Istio,
            BuiltinMetric::RequestSuccessRate,
            &vars,
            at_eval(),
        )
        .await
}

#[tokio::test]
async fn hostile_targets_match_only_themselves() {
    let prometheus = Prometheus::start(Setup {
        backfill: Some(data()),
        ..Setup::default()
    })
    .await;
    let client = prometheus.client(ClientOptions::default());

    // Sanity: the plain target reads 90 %.
    let plain = success_rate(&client, "podinfo").await.unwrap().unwrap();
    assert!((plain - 90.0).abs() < 1e-9, "{plain}");

    // The injection attempt is a label value like any other: it selects the workload with that name (100 %),
    // and `or vector(1)` never runs (it would add a second series or turn the answer into 1).
    let injected = success_rate(&client, INJECTION).await.unwrap();
    assert_eq!(injected, Some(100.0));
    let escaped = success_rate(&client, BACKSLASHES).await.unwrap();
    assert_eq!(escaped, Some(50.0));

    // Regex metacharacters do not widen the match.
    for widening in [
        ".*",
        "podinfo|.*",
        "podinf.",
        "(podinfo)?",
        "podinfo\n",
        "pod\"info",
    ] {
        let value = success_rate(&client, widening).await;
        assert!(
            matches!(value, Ok(None)),
            "{widening:?} matched something: {value:?}"
        );
    }
}

#[tokio::test]
async fn hostile_namespace_newline_and_backslash_stay_in_the_string() {
    let prometheus = Prometheus::start(Setup {
        backfill: Some(data()),
        ..Setup::default()
    })
    .await;
    let client = prometheus.client(ClientOptions::default());
    for namespace in [
        r#"test"} or vector(1) #"#,
        "test\n) or vector(1",
        "test\\",
        "test\\\"} or vector(1)",
    ] {
        let vars = Variables::new()
            .namespace(namespace)
            .target("podinfo")
            .interval("1m");
        let query = Provider::Istio
            .query(BuiltinMetric::RequestSuccessRate)
            .render(&vars)
            .unwrap();
        let value = client.query_value(&query, at_eval()).await;
        assert!(
            matches!(value, Ok(None)),
            "{namespace:?} → {query}\n{value:?}"
        );
    }
}

#[test]
fn hostile_intervals_and_bare_values_are_refused() {
    let template = Provider::Linkerd.query(BuiltinMetric::RequestDuration);
    for interval in [
        "1m]) or vector(1) #",
        "1m ",
        "",
        "5",
        "1m\n",
        "$__interval",
        "1.5m",
    ] {
        let vars = Variables::new()
            .namespace("a")
            .target("b")
            .interval(interval);
        assert!(
            matches!(
                template.render(&vars),
                Err(TemplateError::InvalidInterval(_))
            ),
            "{interval:?} accepted"
        );
    }

    let quantile =
        QueryTemplate::new("histogram_quantile({{ q }}, sum(rate(x_bucket[5m])) by (le))").unwrap();
    for q in ["0.99) or vector(1", "0.99 or vector(1)", "-1", "1e9", "q"] {
        assert!(
            matches!(
                quantile.render(&Variables::new().set("q", q)),
                Err(TemplateError::UnsafeValue { .. })
            ),
            "{q:?} accepted"
        );
    }

    let missing = Variables::new().namespace("a").interval("1m");
    assert_eq!(
        template.render(&missing),
        Err(TemplateError::MissingVariable("target".to_owned()))
    );
    assert!(matches!(
        QueryTemplate::new("up{job=\"{{ job }\"}"),
        Err(TemplateError::Malformed { .. })
    ));
}
