//! What every namespace holds, as kube-controller-manager provides it: the `default` ServiceAccount and
//! the `kube-root-ca.crt` ConfigMap, in namespaces existing at start and created later, restored when
//! deleted or changed, and gone with their namespace.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;

use autopilot_testkit::ApiServer;
use common::{created_namespace, eventually, namespace_deleted};

const ROOT_CA: &str = "kube-root-ca.crt";

fn holds_a_certificate(config_map: &ConfigMap) -> bool {
    config_map
        .data
        .as_ref()
        .and_then(|data| data.get("ca.crt"))
        .is_some_and(|pem| {
            pem.starts_with("-----BEGIN CERTIFICATE-----\n")
                && pem.ends_with("-----END CERTIFICATE-----\n")
        })
}

#[tokio::test]
async fn a_fresh_server_has_the_default_objects_in_every_namespace() {
    let server = ApiServer::start().await.unwrap();
    for namespace in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let accounts: Api<ServiceAccount> = Api::namespaced(server.client(), namespace);
        let account = accounts.get("default").await.unwrap();
        assert_eq!(account.metadata.namespace.as_deref(), Some(namespace));
        let config_maps: Api<ConfigMap> = Api::namespaced(server.client(), namespace);
        let root_ca = config_maps.get(ROOT_CA).await.unwrap();
        assert!(holds_a_certificate(&root_ca), "{root_ca:?}");
        let annotations = root_ca.metadata.annotations.unwrap_or_default();
        assert!(annotations["kubernetes.io/description"].starts_with("Contains a CA bundle"));
        let manager = &root_ca.metadata.managed_fields.unwrap()[0];
        assert_eq!(manager.manager.as_deref(), Some("kube-controller-manager"));
    }
}

#[tokio::test]
async fn new_namespaces_get_them_and_they_come_back_when_removed() {
    let server = ApiServer::start().await.unwrap();
    let namespaces = created_namespace(server.client(), "team").await;
    let accounts: Api<ServiceAccount> = Api::namespaced(server.client(), "team");
    let config_maps: Api<ConfigMap> = Api::namespaced(server.client(), "team");
    eventually("the namespace gets its default objects", || async {
        accounts.get_opt("default").await.unwrap().is_some()
            && config_maps
                .get_opt(ROOT_CA)
                .await
                .unwrap()
                .is_some_and(|cm| holds_a_certificate(&cm))
    })
    .await;

    // Deleted: created again, as a new object.
    let first = accounts.get("default").await.unwrap().metadata.uid;
    accounts
        .delete("default", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the default ServiceAccount is back", || async {
        accounts
            .get_opt("default")
            .await
            .unwrap()
            .is_some_and(|account| account.metadata.uid != first)
    })
    .await;

    // Changed: the CA bundle is put back.
    let tampered = json!({ "data": { "ca.crt": "not a certificate", "extra": "x" } });
    config_maps
        .patch(ROOT_CA, &PatchParams::default(), &Patch::Merge(&tampered))
        .await
        .unwrap();
    eventually("the root CA ConfigMap is restored", || async {
        let root_ca = config_maps.get(ROOT_CA).await.unwrap();
        holds_a_certificate(&root_ca) && root_ca.data.unwrap().len() == 1
    })
    .await;

    // They go with their namespace.
    namespace_deleted(&namespaces, "team").await;
    let params = ListParams::default();
    assert!(accounts.list(&params).await.unwrap().items.is_empty());
    assert!(config_maps.list(&params).await.unwrap().items.is_empty());
}
