//! The built-in mesh queries against a real Prometheus holding backfilled, hand-computable data.
//!
//! Every workload's counters grow at a constant rate, sampled every 15 s; instant queries run at a fixed
//! time inside the data. `rate()` scales all series of a query by the same factor, so ratios and histogram
//! quantiles come out exactly as computed by hand below.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use autopilot_metrics::{
    Analysis, BuiltinMetric, ClientOptions, Decision, MetricCheck, Progress, Provider, QueryData,
    TimeRange, Variables, Verdict,
};
use support::openmetrics::{Backfill, EVAL};
use support::{Prometheus, Setup};

const ISTIO_REQUESTS: &str = "istio_requests_total";
const ISTIO_DURATION: &str = "istio_request_duration_milliseconds";

fn istio(workload: &'static str, reporter: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("reporter", reporter),
        ("destination_workload_namespace", "test"),
        ("destination_workload", workload),
    ]
}

fn linkerd(deployment: &'static str, direction: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("namespace", "test"),
        ("deployment", deployment),
        ("direction", direction),
    ]
}

fn with<'a>(
    mut labels: Vec<(&'a str, &'a str)>,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    labels.extend_from_slice(extra);
    labels
}

/// Per minute, for workload `podinfo` in namespace `test`:
/// - Istio: 950 × 200 + 50 × 503 → 95 %; latency buckets 10:100 25:500 50:900 100:980 250:995 500:1000
///   → p99 rank 990 lies in (100, 250] with 980 below and 15 inside: 100 + 150 × 10/15 = 200 ms.
/// - Linkerd: 990 success + 10 failure → 99 %; buckets 10:500 50:950 100:985 200:995 500:1000
///   → rank 990 in (100, 200], 985 below, 10 inside: 100 + 100 × 5/10 = 150 ms.
/// - Envoy (cluster `test_podinfo-canary_9898`): 900 × 200 + 100 × 503 → 90 %; buckets 5:200 25:700
///   100:960 1000:1000 → rank 990 in (100, 1000], 960 below, 40 inside: 100 + 900 × 30/40 = 775 ms.
///
/// Decoys the queries must ignore: source-reported and primary-workload 5xx for Istio, outbound failures for
/// Linkerd, the primary cluster for Envoy. Workload `idle` has counters that never move (0/0 → NaN).
fn mesh_data() -> String {
    Backfill::new()
        .counter(
            ISTIO_REQUESTS,
            &with(istio("podinfo", "destination"), &[("response_code", "200")]),
            950.0,
        )
        .counter(
            ISTIO_REQUESTS,
            &with(istio("podinfo", "destination"), &[("response_code", "503")]),
            50.0,
        )
        .counter(
            ISTIO_REQUESTS,
            &with(istio("podinfo", "source"), &[("response_code", "503")]),
            5000.0,
        )
        .counter(
            ISTIO_REQUESTS,
            &with(
                istio("podinfo-primary", "destination"),
                &[("response_code", "500")],
            ),
            700.0,
        )
        .counter(
            ISTIO_REQUESTS,
            &with(istio("idle", "destination"), &[("response_code", "200")]),
            0.0,
        )
        .histogram(
            ISTIO_DURATION,
            &istio("podinfo", "destination"),
            &[
                ("10", 100.0),
                ("25", 500.0),
                ("50", 900.0),
                ("100", 980.0),
                ("250", 995.0),
                ("500", 1000.0),
                ("+Inf", 1000.0),
            ],
        )
        .histogram(
            ISTIO_DURATION,
            &istio("podinfo-primary", "destination"),
            &[("10", 0.0), ("+Inf", 300.0)],
        )
        .counter(
            "response_total",
            &with(
                linkerd("podinfo", "inbound"),
                &[("classification", "success"), ("status_code", "200")],
            ),
            990.0,
        )
        .counter(
            "response_total",
            &with(
                linkerd("podinfo", "inbound"),
                &[("classification", "failure"), ("status_code", "500")],
            ),
            10.0,
        )
        .counter(
            "response_total",
            &with(
                linkerd("podinfo", "outbound"),
                &[("classification", "failure"), ("status_code", "500")],
            ),
            400.0,
        )
        .histogram(
            "response_latency_ms",
            &linkerd("podinfo", "inbound"),
            &[
                ("10", 500.0),
                ("50", 950.0),
                ("100", 985.0),
                ("200", 995.0),
                ("500", 1000.0),
                ("+Inf", 1000.0),
            ],
        )
        .counter(
            "envoy_cluster_upstream_rq",
            &[
                ("envoy_cluster_name", "test_podinfo-canary_9898"),
                ("envoy_response_code", "200"),
            ],
            900.0,
        )
        .counter(
            "envoy_cluster_upstream_rq",
            &[
                ("envoy_cluster_name", "test_podinfo-canary_9898"),
                ("envoy_response_code", "503"),
            ],
            100.0,
        )
        .counter(
            "envoy_cluster_upstream_rq",
            &[
                ("envoy_cluster_name", "test_podinfo-primary_9898"),
                ("envoy_response_code", "503"),
            ],
            800.0,
        )
        .histogram(
            "envoy_cluster_upstream_rq_time",
            &[("envoy_cluster_name", "test_podinfo-canary_9898")],
            &[
                ("5", 200.0),
                ("25", 700.0),
                ("100", 960.0),
                ("1000", 1000.0),
                ("+Inf", 1000.0),
            ],
        )
        .finish()
}

fn at_eval() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(EVAL)
}

fn vars(target: &str) -> Variables {
    Variables::new()
        .namespace("test")
        .target(target)
        .interval("1m")
}

async fn prometheus() -> Prometheus {
    Prometheus::start(Setup {
        backfill: Some(mesh_data()),
        ..Setup::default()
    })
    .await
}

fn assert_close(actual: Option<f64>, expected: f64, what: &str) {
    let actual = actual.unwrap_or_else(|| panic!("{what}: no data"));
    assert!(
        (actual - expected).abs() < 1e-9,
        "{what}: expected {expected}, got {actual}"
    );
}

#[tokio::test]
async fn builtin_queries_return_hand_computed_values_for_each_mesh() {
    let prometheus = prometheus().await;
    let client = prometheus.client(ClientOptions::default());
    let expected = [
        (Provider::Istio, 95.0, 200.0),
        (Provider::Linkerd, 99.0, 150.0),
        (Provider::Envoy, 90.0, 775.0),
    ];
    for (provider, success_rate, p99) in expected {
        let rate = client
            .builtin(
                provider,
                BuiltinMetric::RequestSuccessRate,
                &vars("podinfo"),
                Some(at_eval()),
            )
            .await
            .unwrap();
        assert_close(rate, success_rate, &format!("{provider} success rate"));
        let duration = client
            .builtin(
                provider,
                BuiltinMetric::RequestDuration,
                &vars("podinfo"),
                Some(at_eval()),
            )
            .await
            .unwrap();
        assert_close(duration, p99, &format!("{provider} p99"));
    }
}

#[tokio::test]
async fn no_traffic_is_nan_and_unknown_target_is_no_data_and_neither_passes() {
    let prometheus = prometheus().await;
    let client = prometheus.client(ClientOptions::default());

    let idle = client
        .builtin(
            Provider::Istio,
            BuiltinMetric::RequestSuccessRate,
            &vars("idle"),
            Some(at_eval()),
        )
        .await
        .unwrap();
    assert!(
        idle.is_some_and(f64::is_nan),
        "0/0 should be NaN, got {idle:?}"
    );
    let absent = client
        .builtin(
            Provider::Linkerd,
            BuiltinMetric::RequestSuccessRate,
            &vars("absent"),
            Some(at_eval()),
        )
        .await
        .unwrap();
    assert_eq!(absent, None);

    // A range that accepts every number still refuses "nothing to judge".
    let lenient = MetricCheck::builtin(
        Provider::Istio,
        BuiltinMetric::RequestSuccessRate,
        Default::default(),
    );
    let result = lenient.run(&client, &vars("idle"), Some(at_eval())).await;
    assert_eq!(result.verdict, Verdict::NoData, "{}", result.reason);
    assert!(result.reason.contains("NaN"), "{}", result.reason);
    let result = lenient.run(&client, &vars("absent"), Some(at_eval())).await;
    assert_eq!(result.verdict, Verdict::NoData, "{}", result.reason);
    assert!(result.reason.contains("no data"), "{}", result.reason);
}

#[tokio::test]
async fn checks_and_analysis_decide_from_real_answers() {
    let prometheus = prometheus().await;
    let client = prometheus.client(ClientOptions::default());
    let podinfo = vars("podinfo");

    // Istio: 95 % fails a 99 % minimum, passes 90 %; p99 200 ms passes 500 ms.
    let strict = MetricCheck::success_rate(Provider::Istio, 99.0)
        .run(&client, &podinfo, Some(at_eval()))
        .await;
    assert_eq!(strict.verdict, Verdict::Fail);
    assert_eq!(strict.observed.map(f64::round), Some(95.0));
    assert!(strict.reason.contains("outside >= 99"), "{}", strict.reason);
    let lenient = MetricCheck::success_rate(Provider::Istio, 90.0)
        .run(&client, &podinfo, Some(at_eval()))
        .await;
    assert_eq!(lenient.verdict, Verdict::Pass, "{}", lenient.reason);

    // Linkerd's 99 % comes back as 98.99999999999999 (float division), so the bound leaves room.
    let healthy = Analysis::new(2, 2)
        .check(MetricCheck::success_rate(Provider::Linkerd, 98.5))
        .check(MetricCheck::request_duration(Provider::Linkerd, 500.0));
    let round = healthy
        .run(&client, &podinfo, Some(at_eval()), Progress::default())
        .await;
    assert!(
        round.results.iter().all(|r| r.verdict == Verdict::Pass),
        "{:?}",
        round.results
    );
    assert_eq!(round.decision, Decision::Continue);
    let round = healthy
        .run(&client, &podinfo, Some(at_eval()), round.progress)
        .await;
    assert_eq!(round.decision, Decision::Promote);

    // Envoy's p99 of 775 ms breaks a 500 ms limit: two failed rounds roll back.
    let slow = Analysis::new(2, 5)
        .check(MetricCheck::success_rate(Provider::Envoy, 80.0))
        .check(MetricCheck::request_duration(Provider::Envoy, 500.0));
    let round = slow
        .run(&client, &podinfo, Some(at_eval()), Progress::default())
        .await;
    assert_eq!(round.results[0].verdict, Verdict::Pass);
    assert_eq!(round.results[1].verdict, Verdict::Fail);
    assert_eq!(
        (round.decision, round.progress.failed_checks),
        (Decision::Continue, 1)
    );
    let round = slow
        .run(&client, &podinfo, Some(at_eval()), round.progress)
        .await;
    assert_eq!(round.decision, Decision::Rollback);
}

#[tokio::test]
async fn a_checks_own_interval_overrides_the_variables() {
    let prometheus = prometheus().await;
    let client = prometheus.client(ClientOptions::default());
    let no_interval = Variables::new().namespace("test").target("podinfo");

    let without = MetricCheck::success_rate(Provider::Istio, 90.0);
    let result = without.run(&client, &no_interval, Some(at_eval())).await;
    assert_eq!(result.verdict, Verdict::Error);
    assert!(result.reason.contains("`interval`"), "{}", result.reason);

    let with = without.interval("5m".parse().unwrap());
    let result = with.run(&client, &no_interval, Some(at_eval())).await;
    assert_eq!(result.verdict, Verdict::Pass, "{}", result.reason);
    assert!((result.observed.unwrap() - 95.0).abs() < 1e-9);
}

#[tokio::test]
async fn range_and_typed_results() {
    let prometheus = prometheus().await;
    let client = prometheus.client(ClientOptions::default());
    let query = Provider::Istio
        .query(BuiltinMetric::RequestSuccessRate)
        .render(&vars("podinfo"))
        .unwrap();

    let end = at_eval();
    let range = TimeRange {
        start: end - Duration::from_secs(120),
        end,
        step: Duration::from_secs(60),
    };
    let answer = client.query_range(&query, &range).await.unwrap();
    let QueryData::Matrix(series) = answer.data else {
        panic!("expected a matrix, got {:?}", answer.data)
    };
    assert_eq!(series.len(), 1);
    let times: Vec<u64> = series[0]
        .values
        .iter()
        .map(|s| s.timestamp as u64)
        .collect();
    assert_eq!(times, [EVAL - 120, EVAL - 60, EVAL]);
    for sample in &series[0].values {
        assert!((sample.value - 95.0).abs() < 1e-9, "{sample:?}");
    }

    let answer = client
        .query("scalar(sum(response_total)) * 0 + 2", Some(end))
        .await
        .unwrap();
    assert!(
        matches!(answer.data, QueryData::Scalar(s) if s.value == 2.0 && s.timestamp as u64 == EVAL)
    );
    let answer = client.query(r#""hello""#, Some(end)).await.unwrap();
    assert!(
        matches!(&answer.data, QueryData::String(s) if s.value == "hello"),
        "{:?}",
        answer.data
    );
    let answer = client.query("+Inf", Some(end)).await.unwrap();
    assert!(matches!(answer.data, QueryData::Scalar(s) if s.value == f64::INFINITY));

    // Per-series vector: one sample per response code of the destination reporter for podinfo.
    let answer = client
        .query(
            r#"istio_requests_total{reporter="destination", destination_workload="podinfo"}"#,
            Some(end),
        )
        .await
        .unwrap();
    let QueryData::Vector(samples) = answer.data else {
        panic!("expected a vector")
    };
    let mut codes: Vec<(&str, f64)> = samples
        .iter()
        .map(|s| (s.metric["response_code"].as_str(), s.value.value))
        .collect();
    codes.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(codes, [("200", 9500.0), ("503", 500.0)]);
    assert!(answer.warnings.is_empty());
}
