//! Helpers shared by the cluster-level tests.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::core::Status;

/// Bounds every wait so a broken feature fails instead of hanging; never a timing assertion.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A ConfigMap named `name` with no data.
pub fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({ "metadata": { "name": name } }))
        .expect("a valid ConfigMap")
}

/// Creates a ConfigMap named `name` with no data.
pub async fn created(api: &kube::Api<ConfigMap>, name: &str) -> ConfigMap {
    api.create(&kube::api::PostParams::default(), &config_map(name))
        .await
        .expect("create succeeds")
}

/// Creates the namespace `name`; returns the API of namespaces.
pub async fn created_namespace(client: kube::Client, name: &str) -> kube::Api<Namespace> {
    let namespaces: kube::Api<Namespace> = kube::Api::all(client);
    let namespace: Namespace =
        serde_json::from_value(serde_json::json!({ "metadata": { "name": name } }))
            .expect("a valid Namespace");
    namespaces
        .create(&kube::api::PostParams::default(), &namespace)
        .await
        .expect("create succeeds");
    namespaces
}

/// Deletes the namespace `name` and waits until its content is gone and it is removed.
pub async fn namespace_deleted(namespaces: &kube::Api<Namespace>, name: &str) {
    namespaces
        .delete(name, &kube::api::DeleteParams::default())
        .await
        .expect("delete succeeds");
    eventually("the namespace goes away", || async {
        namespaces
            .get_opt(name)
            .await
            .expect("get succeeds")
            .is_none()
    })
    .await;
}

/// The names of a server-side printed `Table`'s columns.
pub fn column_names(table: &serde_json::Value) -> Vec<&str> {
    table["columnDefinitions"]
        .as_array()
        .expect("a Table has column definitions")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect()
}

/// Checks that a request was refused with `code` and a message ending in `ending` (the part after the
/// object's name).
pub fn assert_refused(status: &Status, code: u16, ending: &str) {
    assert_eq!(status.code, code, "{}", status.message);
    assert!(status.message.ends_with(ending), "{}", status.message);
}

/// The `Status` of a failed request.
pub fn api_error(error: kube::Error) -> Status {
    match error {
        kube::Error::Api(status) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// The next item of a stream of results, failing the test on errors or after [`DEADLINE`]; `None` when the
/// stream ended.
pub async fn next<S, T, E>(stream: &mut S) -> Option<T>
where
    S: Stream<Item = Result<T, E>> + Unpin,
    E: Debug,
{
    let item = tokio::time::timeout(DEADLINE, stream.next())
        .await
        .expect("the stream stalled");
    item.map(|result| result.expect("the stream failed"))
}

/// Polls `condition` until it holds, failing the test after [`DEADLINE`].
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let until = tokio::time::Instant::now() + DEADLINE;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < until,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
