//! Deletion: ownerReference garbage collection (background, foreground, orphan), deletecollection and
//! namespace termination, through the real kube client.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Resource;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

use autopilot_testkit::ApiServer;

mod common;

use common::{config_map, created, created_namespace, eventually, namespace_deleted};

fn owned_by(name: &str, owner: &ConfigMap, block: bool) -> ConfigMap {
    let mut dependent = config_map(name);
    let mut reference = owner.controller_owner_ref(&()).unwrap();
    reference.block_owner_deletion = Some(block);
    dependent.metadata.owner_references = Some(vec![reference]);
    dependent
}

async fn eventually_gone(api: &Api<ConfigMap>, name: &str) {
    eventually(&format!("{name} is deleted"), || async {
        api.get_opt(name).await.unwrap().is_none()
    })
    .await;
}

#[tokio::test]
async fn deleting_an_owner_garbage_collects_its_dependents() {
    let server = ApiServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let owner = created(&api, "owner").await;
    let other = created(&api, "other-owner").await;
    api.create(&PostParams::default(), &owned_by("child", &owner, false))
        .await
        .unwrap();
    let mut shared = owned_by("shared", &owner, false);
    let mut second = other.controller_owner_ref(&()).unwrap();
    second.controller = Some(false);
    shared
        .metadata
        .owner_references
        .as_mut()
        .unwrap()
        .push(second);
    api.create(&PostParams::default(), &shared).await.unwrap();

    api.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    eventually_gone(&api, "child").await;
    // A dependent with another live owner stays, minus the reference to the deleted owner.
    eventually("the dangling reference is removed", || async {
        let refs = api
            .get("shared")
            .await
            .unwrap()
            .metadata
            .owner_references
            .unwrap_or_default();
        refs.len() == 1 && refs[0].name == "other-owner"
    })
    .await;
}

#[tokio::test]
async fn foreground_deletion_removes_dependents_before_the_owner() {
    let server = ApiServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let owner = created(&api, "owner").await;
    let mut child = owned_by("child", &owner, true);
    child.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&PostParams::default(), &child).await.unwrap();

    api.delete("owner", &DeleteParams::foreground())
        .await
        .unwrap();
    eventually("the dependent is being deleted", || async {
        api.get("child")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    })
    .await;
    let waiting = api.get("owner").await.unwrap();
    assert!(
        waiting
            .metadata
            .finalizers
            .unwrap()
            .contains(&"foregroundDeletion".to_string())
    );

    let release = json!({ "metadata": { "finalizers": null } });
    api.patch(
        "child",
        &Default::default(),
        &kube::api::Patch::Merge(release),
    )
    .await
    .unwrap();
    eventually_gone(&api, "child").await;
    eventually_gone(&api, "owner").await;
}

#[tokio::test]
async fn orphan_deletion_keeps_dependents_without_the_reference() {
    let server = ApiServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let owner = created(&api, "owner").await;
    api.create(&PostParams::default(), &owned_by("child", &owner, false))
        .await
        .unwrap();
    api.delete("owner", &DeleteParams::orphan()).await.unwrap();
    eventually_gone(&api, "owner").await;
    let child = api.get("child").await.unwrap();
    assert!(
        child
            .metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );
}

#[tokio::test]
async fn deletecollection_removes_every_object_of_the_namespace() {
    let server = ApiServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    for name in ["a", "b", "c"] {
        api.create(&PostParams::default(), &config_map(name))
            .await
            .unwrap();
    }
    let root_ca = api.get("kube-root-ca.crt").await.unwrap().metadata.uid;
    api.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap();
    // The root CA publisher puts its ConfigMap back at once, as a new object; nothing else is left.
    let left = api.list(&ListParams::default()).await.unwrap().items;
    assert!(
        left.iter().all(|cm| {
            cm.metadata.name.as_deref() == Some("kube-root-ca.crt") && cm.metadata.uid != root_ca
        }),
        "{left:?}"
    );
}

#[tokio::test]
async fn a_deleted_namespace_takes_its_content_along() {
    let server = ApiServer::start().await.unwrap();
    let namespaces = created_namespace(server.client(), "team").await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "team");
    created(&api, "a").await;
    namespace_deleted(&namespaces, "team").await;
    assert!(
        api.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}
