//! Patches through the real kube client: JSON patch, merge patch, strategic merge patch and server-side
//! apply with field ownership, conflicts and force; plus dry runs and field managers.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use autopilot_testkit::ApiServer;

mod common;

use common::api_error;

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(group = "example.com", version = "v1", kind = "Gadget", namespaced)]
struct GadgetSpec {
    size: i32,
    color: Option<String>,
}

fn deployment() -> Deployment {
    serde_json::from_value(json!({
        "metadata": { "name": "web" },
        "spec": {
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": { "containers": [
                    { "name": "app", "image": "app:1" },
                    { "name": "proxy", "image": "envoy:1" },
                ] },
            },
        },
    }))
    .unwrap()
}

#[tokio::test]
async fn strategic_merge_patches_merge_containers_by_name() {
    let server = ApiServer::start().await.unwrap();
    let api: Api<Deployment> = Api::default_namespaced(server.client());
    api.create(&PostParams::default(), &deployment())
        .await
        .unwrap();
    let patch = json!({ "spec": { "template": { "spec": { "containers": [{ "name": "app", "image": "app:2" }] } } } });
    let patched = api
        .patch("web", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap();
    let containers = patched.spec.template.spec.unwrap().containers;
    let images: Vec<(String, Option<String>)> =
        containers.into_iter().map(|c| (c.name, c.image)).collect();
    assert_eq!(
        images,
        vec![
            ("app".into(), Some("app:2".into())),
            ("proxy".into(), Some("envoy:1".into()))
        ]
    );
    assert_eq!(patched.metadata.generation, Some(2));
}

#[tokio::test]
async fn strategic_merge_is_refused_for_custom_resources() {
    let server = ApiServer::start().await.unwrap();
    server.install::<Gadget>().await.unwrap();
    let api: Api<Gadget> = Api::default_namespaced(server.client());
    api.create(
        &PostParams::default(),
        &Gadget::new(
            "g",
            GadgetSpec {
                size: 1,
                color: None,
            },
        ),
    )
    .await
    .unwrap();
    let error = api_error(
        api.patch(
            "g",
            &PatchParams::default(),
            &Patch::Strategic(json!({ "spec": { "size": 2 } })),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(
        (error.code, error.reason.as_str()),
        (415, "UnsupportedMediaType")
    );
}

#[tokio::test]
async fn json_patches_apply_operations_in_order() {
    let server = ApiServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let cm: ConfigMap =
        serde_json::from_value(json!({ "metadata": { "name": "c" }, "data": { "a": "1" } }))
            .unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap();
    let ops: json_patch::Patch = serde_json::from_value(json!([
        { "op": "test", "path": "/data/a", "value": "1" },
        { "op": "replace", "path": "/data/a", "value": "2" },
        { "op": "add", "path": "/data/b", "value": "3" },
    ]))
    .unwrap();
    let patched = api
        .patch("c", &PatchParams::default(), &Patch::<()>::Json(ops))
        .await
        .unwrap();
    let data = patched.data.unwrap();
    assert_eq!((data["a"].as_str(), data["b"].as_str()), ("2", "3"));

    let failing: json_patch::Patch =
        serde_json::from_value(json!([{ "op": "test", "path": "/data/a", "value": "1" }])).unwrap();
    let error = api_error(
        api.patch("c", &PatchParams::default(), &Patch::<()>::Json(failing))
            .await
            .unwrap_err(),
    );
    assert_eq!(error.code, 422);
}

#[tokio::test]
async fn server_side_apply_creates_tracks_owners_and_reports_conflicts() {
    let server = ApiServer::start().await.unwrap();
    server.install::<Gadget>().await.unwrap();
    let api: Api<Gadget> = Api::default_namespaced(server.client());
    let config = json!({ "apiVersion": "example.com/v1", "kind": "Gadget", "metadata": { "name": "g" }, "spec": { "size": 1 } });
    let created = api
        .patch("g", &PatchParams::apply("ci"), &Patch::Apply(&config))
        .await
        .unwrap();
    assert_eq!(created.spec.size, 1);
    let managers: Vec<String> = created
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(managers, vec!["ci"]);

    let other = json!({ "apiVersion": "example.com/v1", "kind": "Gadget", "metadata": { "name": "g" }, "spec": { "size": 5 } });
    let conflict = api_error(
        api.patch("g", &PatchParams::apply("ops"), &Patch::Apply(&other))
            .await
            .unwrap_err(),
    );
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert!(
        conflict.message.contains(".spec.size"),
        "{}",
        conflict.message
    );

    let forced = api
        .patch(
            "g",
            &PatchParams::apply("ops").force(),
            &Patch::Apply(&other),
        )
        .await
        .unwrap();
    assert_eq!(forced.spec.size, 5);

    // A field the first manager no longer applies, and nobody else owns, is removed.
    let colored = json!({ "apiVersion": "example.com/v1", "kind": "Gadget", "metadata": { "name": "g" }, "spec": { "size": 5, "color": "red" } });
    api.patch(
        "g",
        &PatchParams::apply("ops").force(),
        &Patch::Apply(&colored),
    )
    .await
    .unwrap();
    let without = api
        .patch("g", &PatchParams::apply("ops"), &Patch::Apply(&other))
        .await
        .unwrap();
    assert_eq!(without.spec.color, None);
}

#[tokio::test]
async fn apply_needs_a_field_manager() {
    let server = ApiServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let config = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "c" } });
    let request = http::Request::patch("/api/v1/namespaces/default/configmaps/c")
        .header("Content-Type", "application/apply-patch+yaml")
        .body(serde_json::to_vec(&config).unwrap())
        .unwrap();
    let error = server
        .client()
        .request::<ConfigMap>(request)
        .await
        .unwrap_err();
    let status = api_error(error);
    assert_eq!(status.code, 422, "{}", status.message);
    assert!(
        status.message.contains("fieldManager"),
        "{}",
        status.message
    );
    assert!(api.get_opt("c").await.unwrap().is_none());
}

#[tokio::test]
async fn dry_runs_answer_without_storing() {
    let server = ApiServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let cm: ConfigMap =
        serde_json::from_value(json!({ "metadata": { "name": "c" }, "data": { "a": "1" } }))
            .unwrap();
    let dry = PostParams {
        dry_run: true,
        field_manager: None,
    };
    let answered = api.create(&dry, &cm).await.unwrap();
    assert!(answered.metadata.uid.is_some());
    assert!(api.get_opt("c").await.unwrap().is_none());

    api.create(&PostParams::default(), &cm).await.unwrap();
    let patch = Patch::Merge(json!({ "data": { "a": "2" } }));
    let answered = api
        .patch("c", &PatchParams::default().dry_run(), &patch)
        .await
        .unwrap();
    assert_eq!(answered.data.unwrap()["a"], "2");
    assert_eq!(api.get("c").await.unwrap().data.unwrap()["a"], "1");
}

#[tokio::test]
async fn updates_record_their_field_manager() {
    let server = ApiServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let cm: ConfigMap =
        serde_json::from_value(json!({ "metadata": { "name": "c" }, "data": { "a": "1" } }))
            .unwrap();
    let params = PostParams {
        dry_run: false,
        field_manager: Some("creator".into()),
    };
    let created = api.create(&params, &cm).await.unwrap();
    let entry = &created.metadata.managed_fields.unwrap()[0];
    assert_eq!(
        (entry.manager.as_deref(), entry.operation.as_deref()),
        (Some("creator"), Some("Update"))
    );
}

#[tokio::test]
async fn crds_from_rust_types_are_validated_against_their_schema() {
    let server = ApiServer::start().await.unwrap();
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(server.client());
    crds.create(&PostParams::default(), &Gadget::crd())
        .await
        .unwrap();
    let api: Api<kube::api::DynamicObject> = Api::default_namespaced_with(
        server.client(),
        &kube::api::ApiResource::erase::<Gadget>(&()),
    );
    let bad: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Gadget", "metadata": { "name": "bad" }, "spec": { "size": "big" },
    }))
    .unwrap();
    let error = api_error(api.create(&PostParams::default(), &bad).await.unwrap_err());
    assert_eq!((error.code, error.reason.as_str()), (422, "Invalid"));
    assert!(
        error
            .message
            .starts_with("Gadget.example.com \"bad\" is invalid: spec.size"),
        "{}",
        error.message
    );
    let causes = error.details.unwrap().causes;
    assert_eq!(causes[0].field, "spec.size");
    assert!(
        api.get_opt("bad").await.unwrap().is_none(),
        "nothing is stored"
    );
}
