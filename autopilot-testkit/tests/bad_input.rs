//! Bad input gets the status code and `Status` body a real API server gives, and nothing stored is lost.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use kube::core::Status;
use serde_json::{Value, json};

use autopilot_testkit::ApiServer;

async fn send(
    server: &ApiServer,
    method: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Status {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("Content-Type", content_type)
        .body(body)
        .unwrap();
    match server.client().request::<Value>(request).await {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected a Status failure, got {other:?}"),
    }
}

async fn seed(server: &ApiServer) -> Api<ConfigMap> {
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let cm: ConfigMap =
        serde_json::from_value(json!({ "metadata": { "name": "keep" }, "data": { "k": "v" } }))
            .unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap();
    api
}

async fn still_intact(api: &Api<ConfigMap>) {
    let kept = api.get("keep").await.unwrap();
    assert_eq!(kept.data.unwrap()["k"], "v");
}

const CONFIG_MAPS: &str = "/api/v1/namespaces/default/configmaps";

#[tokio::test]
async fn malformed_json_is_a_400_bad_request() {
    let server = ApiServer::start().await.unwrap();
    let api = seed(&server).await;
    let status = send(
        &server,
        "POST",
        CONFIG_MAPS,
        "application/json",
        b"{\"metadata\": {".to_vec(),
    )
    .await;
    assert_eq!((status.code, status.reason.as_str()), (400, "BadRequest"));
    assert!(
        status
            .message
            .starts_with("the object provided is unrecognized (must be of type ConfigMap)"),
        "{}",
        status.message
    );
    let status = send(
        &server,
        "PUT",
        &format!("{CONFIG_MAPS}/keep"),
        "application/json",
        b"[1,".to_vec(),
    )
    .await;
    assert_eq!(status.code, 400);
    still_intact(&api).await;
}

#[tokio::test]
async fn unknown_resources_are_404_not_found() {
    let server = ApiServer::start().await.unwrap();
    let api = seed(&server).await;
    let status = send(
        &server,
        "GET",
        "/api/v1/namespaces/default/widgets",
        "application/json",
        Vec::new(),
    )
    .await;
    // As kube-apiserver's request router answers a path no resource serves: plain text, not a Status.
    assert_eq!(status.code, 404);
    assert!(status.message.contains("404 page not found"), "{status:?}");
    let status = send(
        &server,
        "GET",
        "/apis/example.com/v1/widgets",
        "application/json",
        Vec::new(),
    )
    .await;
    assert_eq!(status.code, 404);
    still_intact(&api).await;
}

#[tokio::test]
async fn a_body_of_another_kind_or_version_is_a_400() {
    let server = ApiServer::start().await.unwrap();
    let api = seed(&server).await;
    let secret = json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "s" } });
    let status = send(
        &server,
        "POST",
        CONFIG_MAPS,
        "application/json",
        serde_json::to_vec(&secret).unwrap(),
    )
    .await;
    assert_eq!(status.code, 400);
    assert!(
        status
            .message
            .starts_with("Secret in version \"v1\" cannot be handled as a ConfigMap"),
        "{}",
        status.message
    );

    let wrong_version =
        json!({ "apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": { "name": "s" } });
    let status = send(
        &server,
        "POST",
        CONFIG_MAPS,
        "application/json",
        serde_json::to_vec(&wrong_version).unwrap(),
    )
    .await;
    assert_eq!(status.code, 400);
    assert_eq!(
        status.message,
        "the API version in the data (apps/v1) does not match the expected API version (v1)"
    );
    assert!(api.get_opt("s").await.unwrap().is_none());
    still_intact(&api).await;
}

#[tokio::test]
async fn a_body_for_another_namespace_is_a_400() {
    let server = ApiServer::start().await.unwrap();
    let api = seed(&server).await;
    let elsewhere = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "x", "namespace": "kube-system" } });
    let status = send(
        &server,
        "POST",
        CONFIG_MAPS,
        "application/json",
        serde_json::to_vec(&elsewhere).unwrap(),
    )
    .await;
    assert_eq!(status.code, 400);
    assert_eq!(
        status.message,
        "the namespace of the provided object does not match the namespace sent on the request"
    );
    still_intact(&api).await;
}

#[tokio::test]
async fn an_oversized_body_is_a_413() {
    let server = ApiServer::start().await.unwrap();
    let api = seed(&server).await;
    let big = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "big" }, "data": { "blob": "x".repeat(4 * 1024 * 1024) } });
    let status = send(
        &server,
        "POST",
        CONFIG_MAPS,
        "application/json",
        serde_json::to_vec(&big).unwrap(),
    )
    .await;
    assert_eq!(
        (status.code, status.reason.as_str()),
        (413, "RequestEntityTooLarge")
    );
    assert_eq!(status.message, "Request entity too large: limit is 3145728");
    assert!(api.get_opt("big").await.unwrap().is_none());
    still_intact(&api).await;
}

#[tokio::test]
async fn invalid_names_are_a_422_naming_the_field() {
    let server = ApiServer::start().await.unwrap();
    let api = seed(&server).await;
    let cm: ConfigMap =
        serde_json::from_value(json!({ "metadata": { "name": "Not_Valid" } })).unwrap();
    let error = api.create(&PostParams::default(), &cm).await.unwrap_err();
    let kube::Error::Api(status) = error else {
        panic!("{error:?}")
    };
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(
        status
            .message
            .starts_with("ConfigMap \"Not_Valid\" is invalid: metadata.name: Invalid value"),
        "{}",
        status.message
    );
    still_intact(&api).await;
}

#[tokio::test]
async fn unsupported_verbs_and_media_types_are_refused() {
    let server = ApiServer::start().await.unwrap();
    let api = seed(&server).await;
    let status = send(
        &server,
        "POST",
        "/api/v1/configmaps",
        "application/json",
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(
        (status.code, status.reason.as_str()),
        (405, "MethodNotAllowed")
    );
    let status = send(
        &server,
        "PATCH",
        &format!("{CONFIG_MAPS}/keep"),
        "text/plain",
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(
        (status.code, status.reason.as_str()),
        (415, "UnsupportedMediaType")
    );
    still_intact(&api).await;
}
