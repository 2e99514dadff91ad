//! Lists at a resourceVersion through the real kube client: `resourceVersionMatch=Exact` serves the state
//! as of that version (410 once compacted), pages continue from one consistent state, `NotOlderThan` and
//! `resourceVersion=0`, and the combinations the server refuses.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, VersionMatch};
use serde_json::{Value, json};

use autopilot_testkit::ApiServer;
use common::{api_error, assert_refused, created};

/// Names and `data.v` of the listed ConfigMaps, without the namespace's root CA.
fn contents(items: &[ConfigMap]) -> Vec<(String, String)> {
    items
        .iter()
        .filter(|cm| cm.metadata.name.as_deref() != Some("kube-root-ca.crt"))
        .map(|cm| {
            let value = cm
                .data
                .as_ref()
                .and_then(|d| d.get("v").cloned())
                .unwrap_or_default();
            (cm.metadata.name.clone().unwrap(), value)
        })
        .collect()
}

fn pair(name: &str, value: &str) -> (String, String) {
    (name.to_string(), value.to_string())
}

async fn set(api: &Api<ConfigMap>, name: &str, value: &str) -> String {
    let patch = json!({ "data": { "v": value } });
    let patched = api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    patched.metadata.resource_version.unwrap()
}

/// A raw GET of `path`, from a client that does not retry (kube's default client retries 504s for minutes).
async fn raw_get(server: &ApiServer, path: &str) -> Result<Value, kube::Error> {
    let mut config = kube::Config::new(server.url().parse().unwrap());
    config.default_retry = false;
    let client = kube::Client::try_from(config).unwrap();
    let request = http::Request::get(path).body(Vec::new()).unwrap();
    client.request::<Value>(request).await
}

/// A list of ConfigMaps in `default` with a raw query.
async fn raw_list(server: &ApiServer, query: &str) -> Result<Value, kube::Error> {
    raw_get(
        server,
        &format!("/api/v1/namespaces/default/configmaps?{query}"),
    )
    .await
}

#[tokio::test]
async fn exact_lists_serve_the_state_at_that_version() {
    let server = ApiServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    created(&api, "a").await;
    created(&api, "b").await;
    set(&api, "a", "1").await;
    let then = set(&api, "b", "1").await;
    set(&api, "a", "2").await;
    api.delete("b", &DeleteParams::default()).await.unwrap();
    created(&api, "c").await;

    let exact = ListParams::default()
        .matching(VersionMatch::Exact)
        .at(&then);
    let past = api.list(&exact).await.unwrap();
    assert_eq!(
        contents(&past.items),
        [pair("a", "1"), pair("b", "1")],
        "the state as of {then}"
    );
    assert_eq!(
        past.metadata.resource_version.as_deref(),
        Some(then.as_str())
    );

    let now = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(contents(&now.items), [pair("a", "2"), pair("c", "")]);
    // Not older than a past version: the current state.
    let not_older = ListParams::default()
        .matching(VersionMatch::NotOlderThan)
        .at(&then);
    assert_eq!(
        contents(&api.list(&not_older).await.unwrap().items),
        contents(&now.items)
    );
    // Any version: what the server holds, the whole of it even when a limit is asked for (the kube
    // client leaves `resourceVersion=0` out of limited lists, so the request is made by hand).
    let any = raw_list(&server, "resourceVersion=0&limit=1")
        .await
        .unwrap();
    let listed: Vec<ConfigMap> = serde_json::from_value(any["items"].clone()).unwrap();
    assert_eq!(contents(&listed), contents(&now.items));
    assert!(any["metadata"].get("continue").is_none(), "{any}");

    // Once the history behind it is compacted, the version is too old.
    server.faults().compact();
    let status = api_error(api.list(&exact).await.unwrap_err());
    assert_eq!(
        (status.code, status.reason.as_str(), status.message.as_str()),
        (
            410,
            "Expired",
            "The resourceVersion for the provided list is too old."
        )
    );
}

#[tokio::test]
async fn continued_pages_come_from_the_first_pages_state() {
    let server = ApiServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    for name in ["a", "b", "c", "d"] {
        created(&api, name).await;
    }
    let first = api.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(contents(&first.items), [pair("a", ""), pair("b", "")]);
    // Changes after the first page do not show in the next ones.
    api.delete("c", &DeleteParams::default()).await.unwrap();
    set(&api, "d", "new").await;
    let token = first.metadata.continue_.unwrap();
    let rest = api
        .list(&ListParams::default().limit(10).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(contents(&rest.items), [pair("c", ""), pair("d", "")]);
    assert_eq!(
        rest.metadata.resource_version,
        first.metadata.resource_version
    );

    // A selected list does not say how many items remain.
    let selected = api
        .list(&ListParams::default().limit(1).fields("metadata.name!=zzz"))
        .await
        .unwrap();
    assert!(selected.metadata.continue_.is_some());
    assert_eq!(selected.metadata.remaining_item_count, None);
}

#[tokio::test]
async fn refused_combinations_get_the_servers_answers() {
    let server = ApiServer::start().await.unwrap();
    let status = api_error(
        raw_list(&server, "resourceVersionMatch=NotOlderThan")
            .await
            .unwrap_err(),
    );
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        status.message,
        "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"
    );
    let details = status.details.unwrap();
    assert_eq!(
        (details.group.as_str(), details.kind.as_str()),
        ("meta.k8s.io", "ListOptions")
    );

    let status = api_error(
        raw_list(&server, "resourceVersion=0&resourceVersionMatch=Exact")
            .await
            .unwrap_err(),
    );
    let ending = r#"resourceVersionMatch "exact" is forbidden for resourceVersion "0""#;
    assert_refused(&status, 422, ending);

    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    created(&api, "a").await;
    let first = raw_list(&server, "limit=1").await.unwrap();
    let token = first["metadata"]["continue"].as_str().unwrap().to_string();
    let status = api_error(
        raw_list(&server, &format!("resourceVersion=1&continue={token}"))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (status.code, status.message.as_str()),
        (
            400,
            "specifying resource version is not allowed when using continue"
        )
    );

    let status = api_error(
        raw_list(&server, "watch=true&resourceVersionMatch=NotOlderThan")
            .await
            .unwrap_err(),
    );
    let ending = "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided";
    assert_refused(&status, 422, ending);

    // A version the server has not reached: it waits briefly, then gives up.
    let status = api_error(
        raw_list(
            &server,
            "resourceVersion=999999&resourceVersionMatch=NotOlderThan",
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((status.code, status.reason.as_str()), (504, "Timeout"));
    assert!(
        status
            .message
            .starts_with("Timeout: Too large resource version: 999999, current: "),
        "{}",
        status.message
    );
    assert_eq!(
        status.details.unwrap().causes[0].reason,
        "ResourceVersionTooLarge"
    );

    // A get not older than a version: served once the store has it, 504 when it never comes.
    let root_ca = "/api/v1/namespaces/default/configmaps/kube-root-ca.crt";
    let current = raw_get(&server, &format!("{root_ca}?resourceVersion=1")).await;
    assert_eq!(current.unwrap()["metadata"]["name"], "kube-root-ca.crt");
    let status = api_error(
        raw_get(&server, &format!("{root_ca}?resourceVersion=999999"))
            .await
            .unwrap_err(),
    );
    assert_eq!((status.code, status.reason.as_str()), (504, "Timeout"));
}
