//! Object lifecycle through the real kube client: metadata, conflicts, status, generation, finalizers.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{CustomResource, CustomResourceExt, Resource};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use autopilot_testkit::ApiServer;

mod common;

use common::{api_error, created_namespace};

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "example.com",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus"
)]
struct WidgetSpec {
    size: i32,
}

#[derive(Serialize, Deserialize, Clone, Debug, JsonSchema, Default)]
struct WidgetStatus {
    ready: bool,
}

fn config_map(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(json!({ "metadata": { "name": name }, "data": { "key": value } }))
        .unwrap()
}

#[tokio::test]
async fn a_fresh_server_looks_like_a_fresh_cluster() {
    let server = ApiServer::start().await.unwrap();
    let namespaces: Api<Namespace> = Api::all(server.client());
    let names: Vec<String> = namespaces
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    for expected in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(
            names.contains(&expected.to_string()),
            "{expected} missing from {names:?}"
        );
    }
    let services: Api<Service> = Api::namespaced(server.client(), "default");
    let kubernetes = services.get("kubernetes").await.unwrap();
    assert_eq!(
        kubernetes.spec.unwrap().cluster_ip.as_deref(),
        Some("10.96.0.1")
    );
}

#[tokio::test]
async fn created_objects_get_server_owned_metadata() {
    let server = ApiServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let created = api
        .create(&PostParams::default(), &config_map("a", "1"))
        .await
        .unwrap();
    let meta = &created.metadata;
    assert!(meta.uid.as_deref().is_some_and(|u| u.len() == 36));
    assert!(meta.creation_timestamp.is_some());
    assert_eq!(meta.namespace.as_deref(), Some("default"));
    assert!(meta.generation.is_none(), "config maps have no generation");
    let other = api
        .create(&PostParams::default(), &config_map("b", "1"))
        .await
        .unwrap();
    let rv = |cm: &ConfigMap| {
        cm.metadata
            .resource_version
            .clone()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert!(
        rv(&other) > rv(&created),
        "one global counter orders writes"
    );

    let again = api_error(
        api.create(&PostParams::default(), &config_map("a", "2"))
            .await
            .unwrap_err(),
    );
    assert_eq!((again.code, again.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(again.message, "configmaps \"a\" already exists");

    let missing = api_error(api.get("nope").await.unwrap_err());
    assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));
    assert_eq!(missing.message, "configmaps \"nope\" not found");
}

#[tokio::test]
async fn generate_name_gets_a_random_suffix() {
    let server = ApiServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let mut cm = config_map("", "1");
    cm.metadata.name = None;
    cm.metadata.generate_name = Some("cfg-".into());
    let created = api.create(&PostParams::default(), &cm).await.unwrap();
    let name = created.metadata.name.unwrap();
    assert!(name.starts_with("cfg-") && name.len() == 9, "{name}");
}

#[tokio::test]
async fn two_writers_racing_one_gets_a_conflict_and_nothing_is_lost() {
    let server = ApiServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    api.create(&PostParams::default(), &config_map("race", "0"))
        .await
        .unwrap();
    let mut first = api.get("race").await.unwrap();
    let mut second = api.get("race").await.unwrap();
    first
        .data
        .as_mut()
        .unwrap()
        .insert("first".into(), "yes".into());
    second
        .data
        .as_mut()
        .unwrap()
        .insert("second".into(), "yes".into());
    api.replace("race", &PostParams::default(), &first)
        .await
        .unwrap();
    let conflict = api_error(
        api.replace("race", &PostParams::default(), &second)
            .await
            .unwrap_err(),
    );
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert!(
        conflict.message.contains("the object has been modified"),
        "{}",
        conflict.message
    );

    // The loser re-reads and retries; both changes survive.
    let mut retry = api.get("race").await.unwrap();
    retry
        .data
        .as_mut()
        .unwrap()
        .insert("second".into(), "yes".into());
    api.replace("race", &PostParams::default(), &retry)
        .await
        .unwrap();
    let data = api.get("race").await.unwrap().data.unwrap();
    assert_eq!(data.get("first").map(String::as_str), Some("yes"));
    assert_eq!(data.get("second").map(String::as_str), Some("yes"));
}

#[tokio::test]
async fn status_writes_do_not_bump_generation_and_spec_writes_do() {
    let server = ApiServer::start().await.unwrap();
    server.install::<Widget>().await.unwrap();
    let api: Api<Widget> = Api::default_namespaced(server.client());
    let mut widget = Widget::new("w", WidgetSpec { size: 1 });
    widget.status = Some(WidgetStatus { ready: true });
    let created = api.create(&PostParams::default(), &widget).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert!(
        created.status.is_none(),
        "status is dropped on create when it is a subresource"
    );

    let status = json!({ "status": { "ready": true } });
    let after_status = api
        .patch_status("w", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(after_status.metadata.generation, Some(1));
    assert!(after_status.status.unwrap().ready);

    // Status sent to the main endpoint is ignored; the spec change bumps the generation.
    let change = json!({ "spec": { "size": 2 }, "status": { "ready": false } });
    let after_spec = api
        .patch("w", &PatchParams::default(), &Patch::Merge(&change))
        .await
        .unwrap();
    assert_eq!(after_spec.metadata.generation, Some(2));
    assert!(after_spec.status.unwrap().ready);
    assert_eq!(after_spec.spec.size, 2);

    // A write that changes nothing keeps the resourceVersion.
    let same = api
        .patch("w", &PatchParams::default(), &Patch::Merge(&change))
        .await
        .unwrap();
    assert_eq!(
        same.metadata.resource_version,
        after_spec.metadata.resource_version
    );
}

#[tokio::test]
async fn custom_resources_need_a_resource_version_to_be_replaced() {
    let server = ApiServer::start().await.unwrap();
    server.install::<Widget>().await.unwrap();
    let api: Api<Widget> = Api::default_namespaced(server.client());
    api.create(
        &PostParams::default(),
        &Widget::new("w", WidgetSpec { size: 1 }),
    )
    .await
    .unwrap();
    let error = api_error(
        api.replace(
            "w",
            &PostParams::default(),
            &Widget::new("w", WidgetSpec { size: 2 }),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((error.code, error.reason.as_str()), (422, "Invalid"));
    assert!(
        error.message.contains("metadata.resourceVersion"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn a_finalizer_keeps_the_object_until_it_is_removed() {
    let server = ApiServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let mut cm = config_map("held", "1");
    cm.metadata.finalizers = Some(vec!["example.com/cleanup".into()]);
    api.create(&PostParams::default(), &cm).await.unwrap();

    let answer = api.delete("held", &DeleteParams::default()).await.unwrap();
    let deleting = answer
        .left()
        .expect("a held object is returned, not a Status");
    assert!(deleting.metadata.deletion_timestamp.is_some());
    let still_there = api.get("held").await.unwrap();
    assert!(still_there.metadata.deletion_timestamp.is_some());

    let error = api_error(
        api.patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "metadata": { "finalizers": ["example.com/cleanup", "example.com/new"] } }),
            ),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(
        error.code, 422,
        "no new finalizers while deleting: {}",
        error.message
    );

    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
    )
    .await
    .unwrap();
    let gone = api_error(api.get("held").await.unwrap_err());
    assert_eq!(gone.code, 404);
}

#[tokio::test]
async fn deployments_get_generation_and_defaults() {
    let server = ApiServer::start().await.unwrap();
    let api: Api<Deployment> = Api::default_namespaced(server.client());
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": { "name": "web" },
        "spec": {
            "selector": { "matchLabels": { "app": "web" } },
            "template": { "metadata": { "labels": { "app": "web" } }, "spec": { "containers": [{ "name": "web", "image": "nginx:1.27" }] } },
        },
    }))
    .unwrap();
    let created = api
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(created.spec.replicas, Some(1));
    let scaled = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 3 } })),
        )
        .await
        .unwrap();
    assert_eq!(scaled.metadata.generation, Some(2));
    let scale = api.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(3));
}

#[tokio::test]
async fn objects_in_missing_namespaces_are_rejected() {
    let server = ApiServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "nowhere");
    let error = api_error(
        api.create(&PostParams::default(), &config_map("a", "1"))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (error.code, error.message.as_str()),
        (404, "namespaces \"nowhere\" not found")
    );
}

#[tokio::test]
async fn crds_are_established_and_served() {
    let server = ApiServer::start().await.unwrap();
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(server.client());
    crds.create(&PostParams::default(), &Widget::crd())
        .await
        .unwrap();
    let crd = crds.get("widgets.example.com").await.unwrap();
    let conditions = crd.status.unwrap().conditions.unwrap();
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );
    let widgets: Api<Widget> = Api::default_namespaced(server.client());
    widgets
        .create(
            &PostParams::default(),
            &Widget::new("w", WidgetSpec { size: 1 }),
        )
        .await
        .unwrap();
    assert_eq!(
        widgets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    crds.delete("widgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    let error = api_error(widgets.get("w").await.unwrap_err());
    assert_eq!(error.code, 404);
}

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "example.com",
    version = "v1",
    kind = "Pool",
    namespaced,
    status = "PoolStatus",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas"
    )
)]
struct PoolSpec {
    replicas: i32,
}

#[derive(Serialize, Deserialize, Clone, Debug, JsonSchema, Default)]
struct PoolStatus {
    replicas: i32,
}

#[tokio::test]
async fn the_scale_subresource_of_a_crd_reads_and_writes_its_replica_paths() {
    let server = ApiServer::start().await.unwrap();
    server.install::<Pool>().await.unwrap();
    let api: Api<Pool> = Api::default_namespaced(server.client());
    api.create(
        &PostParams::default(),
        &Pool::new("p", PoolSpec { replicas: 1 }),
    )
    .await
    .unwrap();
    api.patch_status(
        "p",
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": { "replicas": 1 } })),
    )
    .await
    .unwrap();
    let scale = api.get_scale("p").await.unwrap();
    assert_eq!(
        (scale.spec.unwrap().replicas, scale.status.unwrap().replicas),
        (Some(1), 1)
    );
    api.patch_scale(
        "p",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "replicas": 4 } })),
    )
    .await
    .unwrap();
    let pool = api.get("p").await.unwrap();
    assert_eq!(pool.spec.replicas, 4);
    assert_eq!(
        pool.metadata.generation,
        Some(2),
        "scaling changes the spec"
    );
}

#[tokio::test]
async fn events_recorded_through_events_k8s_io_are_core_events_too() {
    use k8s_openapi::api::core::v1::Event as CoreEvent;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};

    let server = ApiServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let cm = api
        .create(&PostParams::default(), &config_map("subject", "1"))
        .await
        .unwrap();
    let reporter = Reporter {
        controller: "tester".into(),
        instance: None,
    };
    let recorder = Recorder::new(server.client(), reporter);
    let event = Event {
        type_: EventType::Normal,
        reason: "Checked".into(),
        note: Some("all good".into()),
        action: "Check".into(),
        secondary: None,
    };
    recorder.publish(&event, &cm.object_ref(&())).await.unwrap();
    recorder.publish(&event, &cm.object_ref(&())).await.unwrap();

    let core: Api<CoreEvent> = Api::default_namespaced(server.client());
    let events = core.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(
        events.len(),
        1,
        "the repeat became a series of the same Event"
    );
    let seen = &events[0];
    assert_eq!(seen.message.as_deref(), Some("all good"));
    assert_eq!(seen.involved_object.name.as_deref(), Some("subject"));
    assert_eq!(seen.reporting_component.as_deref(), Some("tester"));
    let fields = ListParams::default().fields("involvedObject.name=subject");
    assert_eq!(core.list(&fields).await.unwrap().items.len(), 1);
}

#[tokio::test]
async fn put_creates_leases_but_not_config_maps() {
    use k8s_openapi::api::coordination::v1::Lease;

    let server = ApiServer::start().await.unwrap();
    let leases: Api<Lease> = Api::default_namespaced(server.client());
    let lease: Lease = serde_json::from_value(
        json!({ "metadata": { "name": "leader" }, "spec": { "holderIdentity": "a" } }),
    )
    .unwrap();
    let created = leases
        .replace("leader", &PostParams::default(), &lease)
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some());
    assert_eq!(
        leases
            .get("leader")
            .await
            .unwrap()
            .spec
            .unwrap()
            .holder_identity
            .as_deref(),
        Some("a")
    );

    let config_maps: Api<ConfigMap> = Api::default_namespaced(server.client());
    let error = api_error(
        config_maps
            .replace("absent", &PostParams::default(), &config_map("absent", "1"))
            .await
            .unwrap_err(),
    );
    assert_eq!(error.code, 404);
}

#[tokio::test]
async fn terminating_namespaces_refuse_new_content() {
    let server = ApiServer::start().await.unwrap();
    let namespaces = created_namespace(server.client(), "closing").await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "closing");
    let mut held = config_map("held", "1");
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&PostParams::default(), &held).await.unwrap();
    namespaces
        .delete("closing", &DeleteParams::default())
        .await
        .unwrap();
    let error = api_error(
        api.create(&PostParams::default(), &config_map("late", "1"))
            .await
            .unwrap_err(),
    );
    assert_eq!((error.code, error.reason.as_str()), (403, "Forbidden"));
    assert!(
        error.message.contains("because it is being terminated"),
        "{}",
        error.message
    );
    assert_eq!(
        namespaces
            .get("closing")
            .await
            .unwrap()
            .status
            .unwrap()
            .phase
            .as_deref(),
        Some("Terminating")
    );
}
