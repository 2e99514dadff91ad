//! Every way of not getting a number is its own error, and a check built on it never passes.

mod support;

use std::time::Duration;

use autopilot_metrics::{
    ClientOptions, ErrorType, MetricCheck, PrometheusClient, QueryError, QueryTemplate,
    RequestMethod, ThresholdRange, Variables, Verdict,
};
use support::{Prometheus, Setup, servers};

/// A check that would pass on any number, so only a failure to get one can make it not pass.
fn accept_anything(query: &str) -> MetricCheck {
    MetricCheck::new(
        "probe",
        QueryTemplate::new(query).unwrap(),
        ThresholdRange::default(),
    )
}

async fn assert_check_errors(client: &PrometheusClient, query: &str) -> String {
    let result = accept_anything(query)
        .run(client, &Variables::new(), None)
        .await;
    assert_eq!(result.verdict, Verdict::Error, "{}", result.reason);
    assert!(!result.passed());
    assert_eq!(result.observed, None);
    result.reason
}

#[tokio::test]
async fn prometheus_down_is_a_connect_error() {
    let client = PrometheusClient::new(&servers::refused(), ClientOptions::default()).unwrap();
    let err = client.query("up", None).await.unwrap_err();
    assert!(matches!(err, QueryError::Connect { .. }), "{err:?}");
    let reason = assert_check_errors(&client, "up").await;
    assert!(reason.contains("cannot connect"), "{reason}");
}

#[tokio::test]
async fn slow_prometheus_is_a_timeout() {
    let url = servers::silent().await;
    let options = ClientOptions::default().timeout(Duration::from_millis(300));
    let client = PrometheusClient::new(&url, options).unwrap();
    let err = client.query("up", None).await.unwrap_err();
    match err {
        QueryError::Timeout { timeout, .. } => assert_eq!(timeout, Duration::from_millis(300)),
        other => panic!("expected a timeout, got {other:?}"),
    }
    let reason = assert_check_errors(&client, "up").await;
    assert!(reason.contains("did not answer within"), "{reason}");
}

#[tokio::test]
async fn invalid_query_is_bad_data_from_a_real_prometheus() {
    let prometheus = Prometheus::start(Setup::default()).await;
    let client = prometheus.client(ClientOptions::default());
    let err = client.query("sum(rate(up[1m]", None).await.unwrap_err();
    match &err {
        QueryError::Prometheus {
            error_type,
            message,
            status,
        } => {
            assert_eq!(*error_type, ErrorType::BadData);
            assert_eq!(status.as_u16(), 400);
            assert!(message.contains("parse error"), "{message}");
        }
        other => panic!("expected bad_data, got {other:?}"),
    }
    let reason = assert_check_errors(&client, "sum(rate(up[1m]").await;
    assert!(reason.contains("bad_data"), "{reason}");

    // A matrix is not one number.
    let reason = assert_check_errors(&client, "vector(1)[5m:1m]").await;
    assert!(reason.contains("matrix"), "{reason}");
    // Nor are two series.
    let reason = assert_check_errors(
        &client,
        r#"label_replace(vector(1), "a", "x", "", "") or vector(2)"#,
    )
    .await;
    assert!(reason.contains("at most one series"), "{reason}");
}

#[tokio::test]
async fn proxy_error_page_is_an_http_status_error() {
    let server = servers::canned(502, "text/html", "<html>bad gateway</html>").await;
    let client = PrometheusClient::new(&server.url, ClientOptions::default()).unwrap();
    match client.query("up", None).await.unwrap_err() {
        QueryError::HttpStatus { status, body } => {
            assert_eq!(status.as_u16(), 502);
            assert!(body.contains("bad gateway"));
        }
        other => panic!("expected an HTTP status error, got {other:?}"),
    }
    assert_check_errors(&client, "up").await;
}

#[tokio::test]
async fn undecodable_body_is_a_decode_error() {
    let server = servers::canned(
        200,
        "application/json",
        r#"{"status":"success","data":{"resultType":"nope"}}"#,
    )
    .await;
    let client = PrometheusClient::new(&server.url, ClientOptions::default()).unwrap();
    assert!(matches!(
        client.query("up", None).await.unwrap_err(),
        QueryError::Decode { .. }
    ));

    let server = servers::canned(200, "text/plain", "definitely not json").await;
    let client = PrometheusClient::new(&server.url, ClientOptions::default()).unwrap();
    match client.query("up", None).await.unwrap_err() {
        QueryError::Decode { body, .. } => assert_eq!(body, "definitely not json"),
        other => panic!("expected a decode error, got {other:?}"),
    }
    assert_check_errors(&client, "up").await;
}

#[tokio::test]
async fn warnings_are_surfaced() {
    let body = r#"{"status":"success","warnings":["remote read of store A failed"],
        "data":{"resultType":"vector","result":[{"metric":{},"value":[1,"3"]}]}}"#;
    let server = servers::canned(200, "application/json", body).await;
    let client = PrometheusClient::new(&server.url, ClientOptions::default()).unwrap();
    let answer = client.query("up", None).await.unwrap();
    assert_eq!(answer.warnings, ["remote read of store A failed"]);
    assert_eq!(client.query_value("up", None).await.unwrap(), Some(3.0));
}

#[tokio::test]
async fn credentials_headers_and_methods_go_on_the_wire() {
    let body = r#"{"status":"success","data":{"resultType":"scalar","result":[1,"1"]}}"#;
    let server = servers::canned(200, "application/json", body).await;
    let prefixed = format!("{}/prom", server.url);

    let bearer = ClientOptions::default()
        .bearer_token("t0ken")
        .header("X-Scope-OrgID", "team-a");
    let client = PrometheusClient::new(&prefixed, bearer).unwrap();
    client.query(r#"up{job="a b"}"#, None).await.unwrap();

    let basic = ClientOptions::default()
        .basic_auth("alice", Some("pa:ss".to_owned()))
        .method(RequestMethod::Get);
    let client = PrometheusClient::new(&prefixed, basic).unwrap();
    client
        .query(
            "up",
            Some(std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
        )
        .await
        .unwrap();

    let requests = server.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    let post = &requests[0];
    assert_eq!(post.request_line, "POST /prom/api/v1/query HTTP/1.1");
    assert_eq!(post.header("authorization"), Some("Bearer t0ken"));
    assert_eq!(post.header("x-scope-orgid"), Some("team-a"));
    assert_eq!(
        post.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(post.body, "query=up%7Bjob%3D%22a+b%22%7D");

    let get = &requests[1];
    assert_eq!(
        get.request_line,
        "GET /prom/api/v1/query?query=up&time=1700000000.000 HTTP/1.1"
    );
    // base64("alice:pa:ss")
    assert_eq!(get.header("authorization"), Some("Basic YWxpY2U6cGE6c3M="));
}

#[test]
#[should_panic(expected = "is not installed")]
fn a_missing_prometheus_binary_fails_the_tests_loudly() {
    support::program("prometheus-that-is-not-installed");
}
