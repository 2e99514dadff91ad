//! Discovery and content negotiation through the real kube client: API discovery, metadata-only lists and
//! watches, server-side printed Tables, OpenAPI documents.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::discovery::{Discovery, Scope};
use kube::runtime::watcher;
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use autopilot_testkit::ApiServer;

mod common;

use common::column_names;

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "example.com",
    version = "v1",
    kind = "Widget",
    namespaced,
    shortname = "wd",
    printcolumn = r#"{"name":"Size", "type":"integer", "jsonPath":".spec.size"}"#
)]
struct WidgetSpec {
    size: i32,
}

async fn raw(server: &ApiServer, path: &str, accept: &str) -> Value {
    let request = http::Request::get(path)
        .header("Accept", accept)
        .body(Vec::new())
        .unwrap();
    server.client().request::<Value>(request).await.unwrap()
}

#[tokio::test]
async fn discovery_finds_built_ins_and_custom_resources() {
    let server = ApiServer::start().await.unwrap();
    server.install::<Widget>().await.unwrap();
    let discovery = Discovery::new(server.client()).run().await.unwrap();
    let (widgets, caps) = discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .find(|(r, _)| r.kind == "Widget")
        .expect("the CRD's kind is discovered");
    assert_eq!(
        (widgets.group.as_str(), widgets.plural.as_str()),
        ("example.com", "widgets")
    );
    assert_eq!(caps.scope, Scope::Namespaced);
    assert!(caps.subresources.is_empty(), "no subresources declared");
    let deployments = discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .find(|(r, _)| r.kind == "Deployment")
        .unwrap();
    assert!(
        deployments
            .1
            .subresources
            .iter()
            .any(|(r, _)| r.plural == "deployments/scale" || r.plural == "scale")
    );
}

#[tokio::test]
async fn metadata_lists_and_watches_carry_only_metadata() {
    let server = ApiServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let cm: ConfigMap =
        serde_json::from_value(json!({ "metadata": { "name": "m" }, "data": { "secret": "x" } }))
            .unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap();
    let list = api.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(list.types.kind, "PartialObjectMetadataList");
    assert!(
        list.items
            .iter()
            .any(|item| item.metadata.name.as_deref() == Some("m"))
    );

    let listed = raw(
        &server,
        "/api/v1/namespaces/default/configmaps",
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
    )
    .await;
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "m and the namespace's kube-root-ca.crt");
    assert!(
        items.iter().all(|item| item.get("data").is_none()),
        "no content beyond metadata"
    );

    let metadata: Api<PartialObjectMeta<ConfigMap>> = Api::default_namespaced(server.client());
    let mut events = watcher(metadata, watcher::Config::default()).boxed();
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match tokio::time::timeout_at(until, events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            watcher::Event::InitApply(meta) | watcher::Event::Apply(meta)
                if meta.metadata.name.as_deref() == Some("m") =>
            {
                assert!(meta.metadata.uid.is_some());
                break;
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn tables_use_the_crd_printer_columns() {
    let server = ApiServer::start().await.unwrap();
    server.install::<Widget>().await.unwrap();
    let api: Api<Widget> = Api::default_namespaced(server.client());
    api.create(
        &PostParams::default(),
        &Widget::new("w", WidgetSpec { size: 4 }),
    )
    .await
    .unwrap();
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let table = raw(
        &server,
        "/apis/example.com/v1/namespaces/default/widgets",
        accept,
    )
    .await;
    assert_eq!(table["kind"], "Table");
    assert_eq!(column_names(&table), vec!["Name", "Size"]);
    assert_eq!(table["rows"][0]["cells"], json!(["w", 4]));
    let single = raw(
        &server,
        "/apis/example.com/v1/namespaces/default/widgets/w",
        accept,
    )
    .await;
    assert_eq!(single["rows"][0]["cells"][0], "w");

    let plain = raw(&server, "/api/v1/namespaces", accept).await;
    assert_eq!(column_names(&plain), vec!["Name", "Status", "Age"]);
}

#[tokio::test]
async fn openapi_documents_describe_built_ins_and_crds() {
    let server = ApiServer::start().await.unwrap();
    server.install::<Widget>().await.unwrap();
    let index = raw(&server, "/openapi/v3", "application/json").await;
    let url = index["paths"]["apis/example.com/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    let document = raw(&server, &url, "application/json").await;
    let widget = &document["components"]["schemas"]["com.example.v1.Widget"];
    assert_eq!(
        widget["x-kubernetes-group-version-kind"][0]["kind"],
        "Widget"
    );
    assert_eq!(
        widget["properties"]["spec"]["properties"]["size"]["type"],
        "integer"
    );
    assert_eq!(Widget::crd().spec.versions.len(), 1);
    let v2 = raw(&server, "/openapi/v2", "application/json").await;
    assert!(v2["definitions"]["io.k8s.api.apps.v1.Deployment"].is_object());
}

#[tokio::test]
async fn protobuf_only_clients_get_406() {
    let server = ApiServer::start().await.unwrap();
    let request = http::Request::get("/api/v1/namespaces")
        .header("Accept", "application/vnd.kubernetes.protobuf")
        .body(Vec::new())
        .unwrap();
    match server.client().request::<Value>(request).await {
        Err(kube::Error::Api(status)) => assert_eq!(
            (status.code, status.reason.as_str()),
            (406, "NotAcceptable")
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn aggregated_discovery_lists_groups_with_their_resources() {
    let server = ApiServer::start().await.unwrap();
    server.install::<Widget>().await.unwrap();
    let accept =
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
    let groups = raw(&server, "/apis", accept).await;
    assert_eq!(
        (groups["kind"].as_str(), groups["apiVersion"].as_str()),
        (
            Some("APIGroupDiscoveryList"),
            Some("apidiscovery.k8s.io/v2")
        )
    );
    let example = groups["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metadata"]["name"] == "example.com")
        .unwrap();
    let widgets = &example["versions"][0]["resources"][0];
    assert_eq!(
        (widgets["resource"].as_str(), widgets["scope"].as_str()),
        (Some("widgets"), Some("Namespaced"))
    );
    assert_eq!(widgets["shortNames"], json!(["wd"]));
    let core = raw(
        &server,
        "/api",
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
    )
    .await;
    let pods = core["items"][0]["versions"][0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "pods")
        .unwrap()
        .clone();
    assert_eq!(pods["subresources"][0]["subresource"], "status");
    let legacy = raw(&server, "/apis", "application/json").await;
    assert_eq!(legacy["kind"], "APIGroupList");
}
