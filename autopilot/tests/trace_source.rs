//! The Jaeger trace source over real HTTP. No Jaeger server can be installed on our test machines,
//! so a loopback server answers with Jaeger's documented v3 (OTLP JSON) and v1 response shapes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use autopilot::sources::{self, EventReceiver, traces::TraceWatch};
use autopilot_metrics::ClientOptions;
use autopilot_metrics::jaeger::JaegerClient;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};

fn otlp_span(trace: &str, status: u32) -> Value {
    json!({"traceId": trace, "spanId": "01", "name": "GET /cart",
           "startTimeUnixNano": "1764064800000000000", "endTimeUnixNano": "1764064800120000000",
           "status": {"code": status}})
}

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

async fn next(received: &mut EventReceiver) -> sources::ExternalEvent {
    tokio::time::timeout(Duration::from_secs(30), received.recv())
        .await
        .expect("an event")
        .expect("channel open")
}

#[tokio::test]
async fn reports_each_failed_trace_once_from_the_v3_api() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let app = axum::Router::new().route(
        "/api/v3/traces",
        get(move |Query(query): Query<std::collections::HashMap<String, String>>| {
            let call = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                assert_eq!(query.get("query.service_name").map(String::as_str), Some("checkout"));
                assert!(query.get("query.start_time_min").is_some_and(|t| t.ends_with('Z')));
                if call == 0 {
                    // Jaeger's "no traces" answer.
                    return (StatusCode::NOT_FOUND, axum::Json(json!({"error": {"httpCode": 404, "message": "No traces found"}})));
                }
                // Every later answer repeats the same window: trace "bad" must be reported once.
                let mut spans = vec![otlp_span("good", 0), otlp_span("bad", 2)];
                if call >= 3 {
                    spans.push(otlp_span("worse", 2));
                }
                (StatusCode::OK, axum::Json(json!({"result": {"resourceSpans": [{
                    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
                    "scopeSpans": [{"spans": spans}]
                }]}})))
            }
        }),
    );
    let url = serve(app).await;
    let jaeger = JaegerClient::new(&url, ClientOptions::default()).unwrap();
    let (events, mut received) = sources::channel(16);
    let watch = TraceWatch::new(jaeger, "checkout")
        .subject("shop/checkout")
        .every(Duration::from_millis(50))
        .spawn(events);

    let first = next(&mut received).await;
    assert_eq!(
        (first.kind.as_str(), first.id.as_str()),
        ("trace.error", "bad")
    );
    assert_eq!(first.subject.as_deref(), Some("shop/checkout"));
    assert_eq!(first.data["operation"], "GET /cart");
    assert_eq!(first.data["durationMs"], 120.0);
    let second = next(&mut received).await;
    assert_eq!(second.id, "worse", "\"bad\" is not reported twice");
    watch.abort();
    assert!(calls.load(Ordering::SeqCst) >= 4);
}

#[tokio::test]
async fn falls_back_to_the_v1_search_on_older_servers() {
    let app = axum::Router::new().route(
        "/api/traces",
        get(|Query(query): Query<std::collections::HashMap<String, String>>| async move {
            assert_eq!(query.get("service").map(String::as_str), Some("checkout"));
            axum::Json(json!({"data": [{
                "traceID": "v1bad",
                "spans": [{"spanID": "1", "operationName": "POST /pay", "startTime": 1_764_064_800_000_000_u64,
                           "duration": 3000, "processID": "p1",
                           "tags": [{"key": "http.status_code", "type": "int64", "value": 502}]}],
                "processes": {"p1": {"serviceName": "checkout"}}
            }], "errors": null}))
        }),
    );
    let url = serve(app).await;
    let jaeger = JaegerClient::new(&url, ClientOptions::default()).unwrap();
    let (events, mut received) = sources::channel(16);
    let watch = TraceWatch::new(jaeger, "checkout")
        .every(Duration::from_millis(50))
        .spawn(events);
    let event = next(&mut received).await;
    assert_eq!(
        (event.id.as_str(), event.data["operation"].as_str()),
        ("v1bad", Some("POST /pay"))
    );
    watch.abort();
}

#[tokio::test]
async fn an_unreachable_jaeger_is_an_error_not_an_empty_answer() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let jaeger = JaegerClient::new(&url, ClientOptions::default()).unwrap();
    let now = std::time::SystemTime::now();
    let query =
        autopilot_metrics::jaeger::TraceQuery::new("checkout", now - Duration::from_secs(60), now);
    let error = jaeger.find_traces(&query).await.unwrap_err();
    assert!(
        matches!(error, autopilot_metrics::QueryError::Connect { .. }),
        "{error}"
    );
}
