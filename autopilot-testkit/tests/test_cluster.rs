//! `TestCluster` on the backend `AUTOPILOT_TEST_APISERVER` chooses: namespaces apart, CRDs and YAML
//! installed through the API, the same answers on both backends.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, PostParams};
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use autopilot_testkit::{Backend, TestCluster};

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "testkit.autopilot.rs",
    version = "v1",
    kind = "Widget",
    namespaced
)]
struct WidgetSpec {
    size: u32,
}

#[tokio::test]
async fn each_test_has_a_namespace_of_its_own() {
    let first = TestCluster::start().await.unwrap();
    let second = TestCluster::start().await.unwrap();
    assert_ne!(first.namespace(), second.namespace());
    assert_eq!(first.backend(), Backend::from_env().unwrap());
    let namespaces: Api<Namespace> = Api::all(first.client());
    let found = namespaces.get(first.namespace()).await.unwrap();
    assert_eq!(
        found.status.and_then(|s| s.phase).as_deref(),
        Some("Active")
    );

    let config_maps: Api<ConfigMap> = Api::default_namespaced(first.client());
    let mut settings = ConfigMap::default();
    settings.metadata.name = Some("settings".into());
    let created = config_maps
        .create(&PostParams::default(), &settings)
        .await
        .unwrap();
    assert_eq!(
        created.metadata.namespace.as_deref(),
        Some(first.namespace())
    );
    let elsewhere: Api<ConfigMap> = Api::default_namespaced(second.client());
    assert!(elsewhere.get_opt("settings").await.unwrap().is_none());
}

#[tokio::test]
async fn crds_and_yaml_install_through_the_api() {
    let cluster = TestCluster::start().await.unwrap();
    cluster.install::<Widget>().await.unwrap();
    // Installing again (another test of the same binary may do so) changes nothing.
    cluster.install::<Widget>().await.unwrap();
    cluster
        .install_yaml(
            "apiVersion: testkit.autopilot.rs/v1\nkind: Widget\nmetadata:\n  name: small\nspec:\n  size: 1\n---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: seeded\ndata:\n  key: value\n",
        )
        .await
        .unwrap();
    let widgets: Api<Widget> = Api::default_namespaced(cluster.client());
    assert_eq!(widgets.get("small").await.unwrap().spec.size, 1);
    let config_maps: Api<ConfigMap> = Api::default_namespaced(cluster.client());
    let seeded = config_maps.get("seeded").await.unwrap();
    assert_eq!(
        seeded
            .data
            .unwrap_or_default()
            .get("key")
            .map(String::as_str),
        Some("value")
    );
    assert_eq!(Widget::crd().spec.group, "testkit.autopilot.rs");
}

#[tokio::test]
async fn unknown_kinds_are_named() {
    let cluster = TestCluster::start().await.unwrap();
    let error = cluster
        .install_yaml("apiVersion: nowhere.example.com/v1\nkind: Gadget\nmetadata:\n  name: g\n")
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("\"Gadget\""), "{error}");
}

/// Polls `probe` for up to a minute; the real backend's controllers act within seconds.
async fn eventually(what: &str, mut probe: impl AsyncFnMut() -> bool) {
    for _ in 0..600 {
        if probe().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn dependents_are_garbage_collected_and_namespaces_emptied() {
    use kube::Resource;
    use kube::api::DeleteParams;

    let cluster = TestCluster::start().await.unwrap();
    let config_maps: Api<ConfigMap> = Api::default_namespaced(cluster.client());
    let mut owner = ConfigMap::default();
    owner.metadata.name = Some("owner".into());
    let owner = config_maps
        .create(&PostParams::default(), &owner)
        .await
        .unwrap();
    let mut dependent = ConfigMap::default();
    dependent.metadata.name = Some("dependent".into());
    dependent.metadata.owner_references = Some(vec![owner.controller_owner_ref(&()).unwrap()]);
    config_maps
        .create(&PostParams::default(), &dependent)
        .await
        .unwrap();
    config_maps
        .delete("owner", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the dependent to be collected", async || {
        config_maps.get_opt("dependent").await.unwrap().is_none()
    })
    .await;

    // Each namespace gets the objects kube-controller-manager puts there.
    eventually("the default ServiceAccount", async || {
        let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
            Api::default_namespaced(cluster.client());
        accounts.get_opt("default").await.unwrap().is_some()
    })
    .await;

    let namespaces: Api<Namespace> = Api::all(cluster.client());
    namespaces
        .delete(cluster.namespace(), &DeleteParams::default())
        .await
        .unwrap();
    eventually("the namespace to go away", async || {
        namespaces
            .get_opt(cluster.namespace())
            .await
            .unwrap()
            .is_none()
    })
    .await;
}
