//! Label and field selectors on lists and watches, and pagination, through the real kube client.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

use autopilot_testkit::ApiServer;

mod common;

use common::next;

fn config_map(name: &str, tier: &str) -> ConfigMap {
    serde_json::from_value(json!({ "metadata": { "name": name, "labels": { "tier": tier } } }))
        .unwrap()
}

fn names(list: Vec<ConfigMap>) -> Vec<String> {
    list.into_iter().filter_map(|c| c.metadata.name).collect()
}

#[tokio::test]
async fn lists_filter_by_labels_and_fields() {
    let server = ApiServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    for (name, tier) in [("a", "web"), ("b", "db"), ("c", "web")] {
        api.create(&PostParams::default(), &config_map(name, tier))
            .await
            .unwrap();
    }
    let web = api
        .list(&ListParams::default().labels("tier=web"))
        .await
        .unwrap();
    assert_eq!(names(web.items), vec!["a", "c"]);
    let not_web = api
        .list(&ListParams::default().labels("tier notin (web)"))
        .await
        .unwrap();
    // `notin` also selects objects without the label, such as the namespace's root CA ConfigMap.
    assert_eq!(names(not_web.items), vec!["b", "kube-root-ca.crt"]);
    let by_name = api
        .list(&ListParams::default().fields("metadata.name=c"))
        .await
        .unwrap();
    assert_eq!(names(by_name.items), vec!["c"]);

    let error = api
        .list(&ListParams::default().fields("spec.nodeName=x"))
        .await
        .unwrap_err();
    match error {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 400);
            // ConfigMaps have no field labels of their own: apimachinery's default conversion answers.
            assert_eq!(
                status.message,
                r#""spec.nodeName" is not a known field selector: only "metadata.name", "metadata.namespace""#
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn lists_page_with_limit_and_continue() {
    let server = ApiServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    for name in ["a", "b", "c", "d", "e"] {
        api.create(&PostParams::default(), &config_map(name, "x"))
            .await
            .unwrap();
    }
    // Six objects: the five and the namespace's kube-root-ca.crt, last in name order.
    let first = api.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(names(first.items), vec!["a", "b"]);
    assert_eq!(first.metadata.remaining_item_count, Some(4));
    let token = first.metadata.continue_.unwrap();
    let second = api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(names(second.items), vec!["c", "d"]);
    assert_eq!(
        second.metadata.resource_version,
        first.metadata.resource_version
    );
    let token = second.metadata.continue_.unwrap();
    let last = api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(names(last.items), vec!["e", "kube-root-ca.crt"]);
    assert!(last.metadata.continue_.unwrap_or_default().is_empty());

    // Once history past the token's resourceVersion is compacted away, the token is too old.
    api.create(&PostParams::default(), &config_map("f", "x"))
        .await
        .unwrap();
    server.faults().compact();
    let error = api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap_err();
    match error {
        kube::Error::Api(status) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"))
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn all_namespace_lists_span_namespaces() {
    let server = ApiServer::start().await.unwrap();
    for ns in ["default", "kube-system"] {
        let api: Api<ConfigMap> = Api::namespaced(server.client(), ns);
        api.create(&PostParams::default(), &config_map("same", "x"))
            .await
            .unwrap();
    }
    let all: Api<ConfigMap> = Api::all(server.client());
    let items = all.list(&ListParams::default()).await.unwrap().items;
    let keys: Vec<(String, String)> = items
        .into_iter()
        .map(|c| (c.metadata.namespace.unwrap(), c.metadata.name.unwrap()))
        .collect();
    let key = |ns: &str, name: &str| (ns.to_string(), name.to_string());
    assert_eq!(
        keys,
        vec![
            key("default", "kube-root-ca.crt"),
            key("default", "same"),
            key("kube-node-lease", "kube-root-ca.crt"),
            key("kube-public", "kube-root-ca.crt"),
            key("kube-system", "kube-root-ca.crt"),
            key("kube-system", "same"),
        ]
    );
}

#[tokio::test]
async fn selected_watches_see_objects_enter_and_leave() {
    let server = ApiServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let created = api
        .create(&PostParams::default(), &config_map("a", "db"))
        .await
        .unwrap();
    let rv = created.metadata.resource_version.unwrap();
    let mut stream = api
        .watch(&WatchParams::default().labels("tier=web"), &rv)
        .await
        .unwrap()
        .boxed();
    for (round, tier) in ["web", "web", "db"].into_iter().enumerate() {
        let change = json!({ "metadata": { "labels": { "tier": tier } }, "data": { "round": round.to_string() } });
        api.patch("a", &PatchParams::default(), &Patch::Merge(change))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    while seen.len() < 3 {
        match next(&mut stream).await.unwrap() {
            WatchEvent::Added(_) => seen.push("ADDED"),
            WatchEvent::Modified(_) => seen.push("MODIFIED"),
            WatchEvent::Deleted(_) => seen.push("DELETED"),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(seen, vec!["ADDED", "MODIFIED", "DELETED"]);
}
