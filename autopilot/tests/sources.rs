//! Event sources over real HTTP on loopback.

use std::time::Duration;

use autopilot::sources::{self, EventReceiver, ExternalEvent, cloudevents, github};
use serde_json::json;

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

async fn next(received: &mut EventReceiver) -> ExternalEvent {
    tokio::time::timeout(Duration::from_secs(10), received.recv())
        .await
        .expect("an event arrives")
        .expect("channel open")
}

/// An HTTP client; plain HTTP needs no TLS, but reqwest wants a crypto provider chosen.
fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

fn assert_nothing_delivered(received: &mut EventReceiver) {
    assert!(received.try_recv().is_err(), "no event may be delivered");
}

#[tokio::test]
async fn github_webhooks_are_verified() {
    let secret = github::WebhookSecret::new("It's a Secret to Everybody");
    let (events, mut received) = sources::channel(8);
    let url = serve(github::router(secret.clone(), events)).await;
    let http = client();
    let body =
        json!({"ref": "refs/heads/main", "repository": {"full_name": "team/app"}}).to_string();
    let post =
        |signature: Option<String>, event: &'static str, delivery: &'static str, body: String| {
            let mut request = http
                .post(&url)
                .header("X-GitHub-Event", event)
                .header("X-GitHub-Delivery", delivery)
                .body(body);
            if let Some(signature) = signature {
                request = request.header("X-Hub-Signature-256", signature);
            }
            request.send()
        };

    // Forged, missing and malformed signatures: 401, nothing delivered.
    let forged = github::signature(&github::WebhookSecret::new("guess"), body.as_bytes());
    for signature in [
        Some(forged),
        None,
        Some("sha256=zz".to_owned()),
        Some("sha1=00".to_owned()),
    ] {
        let response = post(signature, "push", "d-0", body.clone()).await.unwrap();
        assert_eq!(response.status(), 401);
    }
    // A signature for another body does not carry over.
    let other = github::signature(&secret, b"{}");
    assert_eq!(
        post(Some(other), "push", "d-0", body.clone())
            .await
            .unwrap()
            .status(),
        401
    );
    assert_nothing_delivered(&mut received);

    let signed = github::signature(&secret, body.as_bytes());
    let response = post(Some(signed.clone()), "push", "d-1", body.clone())
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let event = next(&mut received).await;
    assert_eq!(
        (
            event.source.as_str(),
            event.kind.as_str(),
            event.id.as_str()
        ),
        ("github", "push", "d-1")
    );
    assert_eq!(event.subject.as_deref(), Some("team/app"));
    assert_eq!(event.data["ref"], "refs/heads/main");

    // GitHub redelivers with the same id: acknowledged, not delivered twice.
    assert_eq!(
        post(Some(signed), "push", "d-1", body)
            .await
            .unwrap()
            .status(),
        200
    );
    // Pings are acknowledged without an event.
    let ping = "{\"zen\":\"Keep it simple.\"}".to_owned();
    let ping_signature = github::signature(&secret, ping.as_bytes());
    assert_eq!(
        post(Some(ping_signature), "ping", "d-2", ping)
            .await
            .unwrap()
            .status(),
        200
    );
    // Signed but not JSON: a client error, not an event.
    let junk = "not json".to_owned();
    let junk_signature = github::signature(&secret, junk.as_bytes());
    assert_eq!(
        post(Some(junk_signature), "push", "d-3", junk)
            .await
            .unwrap()
            .status(),
        400
    );
    assert_nothing_delivered(&mut received);
}

#[tokio::test]
async fn cloudevents_in_every_mode() {
    let (events, mut received) = sources::channel(8);
    let url = serve(cloudevents::router(events)).await;
    let http = client();

    // Binary mode.
    let response = http
        .post(&url)
        .header("ce-specversion", "1.0")
        .header("ce-id", "b-1")
        .header("ce-source", "/ci/pipeline")
        .header("ce-type", "com.example.build.finished")
        .header("ce-subject", "podinfo")
        .header("content-type", "application/json")
        .body(r#"{"result":"ok"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let event = next(&mut received).await;
    assert_eq!(event.kind, "com.example.build.finished");
    assert_eq!(event.source, "/ci/pipeline");
    assert_eq!(event.subject.as_deref(), Some("podinfo"));
    assert_eq!(event.data, json!({"result": "ok"}));

    // Structured mode.
    let structured = json!({
        "specversion": "1.0", "id": "s-1", "source": "/alerts", "type": "com.example.alert",
        "time": "2026-11-25T10:00:00Z", "datacontenttype": "application/json", "data": {"severity": "page"}
    });
    let response = http
        .post(&url)
        .header("content-type", "application/cloudevents+json")
        .body(structured.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let event = next(&mut received).await;
    assert_eq!(
        (event.id.as_str(), event.data["severity"].as_str()),
        ("s-1", Some("page"))
    );
    assert_eq!(
        event.time.map(|time| time.to_rfc3339()).as_deref(),
        Some("2026-11-25T10:00:00+00:00")
    );

    // Batch mode.
    let batch = json!([
        {"specversion": "1.0", "id": "1", "source": "/b", "type": "t"},
        {"specversion": "1.0", "id": "2", "source": "/b", "type": "t"}
    ]);
    let response = http
        .post(&url)
        .header("content-type", "application/cloudevents-batch+json")
        .body(batch.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(next(&mut received).await.id, "1");
    assert_eq!(next(&mut received).await.id, "2");
}

#[tokio::test]
async fn malformed_cloudevents_get_400_and_deliver_nothing() {
    let (events, mut received) = sources::channel(8);
    let url = serve(cloudevents::router(events)).await;
    let http = client();

    let missing_type = http
        .post(&url)
        .header("ce-specversion", "1.0")
        .header("ce-id", "x")
        .header("ce-source", "/x")
        .send()
        .await
        .unwrap();
    assert_eq!(missing_type.status(), 400);
    assert!(
        missing_type
            .text()
            .await
            .unwrap()
            .contains("malformed CloudEvent")
    );

    let bad_version = http
        .post(&url)
        .header("ce-specversion", "9.9")
        .header("ce-id", "x")
        .header("ce-source", "/x")
        .header("ce-type", "t")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_version.status(), 400);

    let bad_json = http
        .post(&url)
        .header("content-type", "application/cloudevents+json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_json.status(), 400);

    // One bad member spoils the batch: nothing of it is delivered.
    let batch = json!([
        {"specversion": "1.0", "id": "1", "source": "/b", "type": "t"},
        {"specversion": "1.0", "id": "2", "source": "/b"}
    ]);
    let bad_batch = http
        .post(&url)
        .header("content-type", "application/cloudevents-batch+json")
        .body(batch.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(bad_batch.status(), 400);
    assert_nothing_delivered(&mut received);
}

#[tokio::test]
async fn a_full_queue_answers_503_instead_of_dropping() {
    let (events, mut received) = sources::channel(1);
    let url = serve(cloudevents::router(events)).await;
    let http = client();
    let send = |id: &'static str| {
        http.post(&url)
            .header("ce-specversion", "1.0")
            .header("ce-id", id)
            .header("ce-source", "/q")
            .header("ce-type", "t")
            .send()
    };
    assert_eq!(send("1").await.unwrap().status(), 202);
    assert_eq!(send("2").await.unwrap().status(), 503);
    assert_eq!(next(&mut received).await.id, "1");
    assert_eq!(send("3").await.unwrap().status(), 202);
    assert_eq!(next(&mut received).await.id, "3");
}
