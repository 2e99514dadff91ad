//! The in-process API server against the real one: one corpus of requests, played in order on both, the
//! answers compared after normalising what must differ (uids, timestamps, resourceVersions, the test
//! namespace's random name).
//!
//! A difference fails the test unless [`ALLOWED`] lists it with the reason. Needs the real server's
//! programs (`KUBEBUILDER_ASSETS`, which `scripts/test` sets).

use std::collections::BTreeMap;

use http_body_util::BodyExt;
use kube::CustomResourceExt;
use serde_json::{Value, json};

use autopilot_testkit::{Backend, TestCluster};

#[derive(
    kube::CustomResource, serde::Serialize, serde::Deserialize, Clone, Debug, schemars::JsonSchema,
)]
#[kube(
    group = "diff.autopilot.rs",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas"
    ),
    printcolumn(name = "Size", type_ = "integer", json_path = ".spec.size")
)]
struct WidgetSpec {
    size: u32,
    #[serde(default)]
    replicas: u32,
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, Default, schemars::JsonSchema)]
struct WidgetStatus {
    #[serde(default)]
    replicas: u32,
    #[serde(default)]
    ready: bool,
}

/// One request of the corpus; `{ns}` in the path stands for the test's namespace.
struct Case {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    content_type: &'static str,
    accept: &'static str,
    body: Value,
}

const JSON: &str = "application/json";
const MERGE: &str = "application/merge-patch+json";
const STRATEGIC: &str = "application/strategic-merge-patch+json";
const JSON_PATCH: &str = "application/json-patch+json";
const APPLY: &str = "application/apply-patch+yaml";

fn case(name: &'static str, method: &'static str, path: &'static str) -> Case {
    Case {
        name,
        method,
        path,
        content_type: JSON,
        accept: JSON,
        body: Value::Null,
    }
}

impl Case {
    fn body(mut self, content_type: &'static str, body: Value) -> Case {
        self.content_type = content_type;
        self.body = body;
        self
    }

    fn accept(mut self, accept: &'static str) -> Case {
        self.accept = accept;
        self
    }
}

fn deployment(name: &str, replicas: u32) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "app", "image": "app:1"}]}}
        }
    })
}

fn corpus() -> Vec<Case> {
    let cms = "/api/v1/namespaces/{ns}/configmaps";
    let widgets = "/apis/diff.autopilot.rs/v1/namespaces/{ns}/widgets";
    let deployments = "/apis/apps/v1/namespaces/{ns}/deployments";
    vec![
        // Config maps: CRUD, conflicts, patches of every type, dry runs, selectors, pages.
        case("create a config map", "POST", cms).body(
            JSON,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one", "labels": {"tier": "a"}}, "data": {"k": "v"}}),
        ),
        case("create it again", "POST", cms).body(
            JSON,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one"}}),
        ),
        case("create a second one", "POST", cms).body(
            JSON,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "two", "labels": {"tier": "b"}}}),
        ),
        case("get it", "GET", "/api/v1/namespaces/{ns}/configmaps/one"),
        case("get a missing one", "GET", "/api/v1/namespaces/{ns}/configmaps/missing"),
        case("update with a stale resourceVersion", "PUT", "/api/v1/namespaces/{ns}/configmaps/one").body(
            JSON,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one", "resourceVersion": "1"}, "data": {"k": "w"}}),
        ),
        case("update under another name", "PUT", "/api/v1/namespaces/{ns}/configmaps/one").body(
            JSON,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other"}}),
        ),
        case("merge patch", "PATCH", "/api/v1/namespaces/{ns}/configmaps/one")
            .body(MERGE, json!({"data": {"added": "1", "k": null}})),
        case("strategic merge patch", "PATCH", "/api/v1/namespaces/{ns}/configmaps/one")
            .body(STRATEGIC, json!({"metadata": {"annotations": {"note": "x"}}})),
        case("json patch", "PATCH", "/api/v1/namespaces/{ns}/configmaps/one").body(
            JSON_PATCH,
            json!([{"op": "add", "path": "/data/patched", "value": "yes"}]),
        ),
        case("json patch testing a wrong value", "PATCH", "/api/v1/namespaces/{ns}/configmaps/one").body(
            JSON_PATCH,
            json!([{"op": "test", "path": "/data/patched", "value": "no"}]),
        ),
        case("server-side apply by a manager", "PATCH", "/api/v1/namespaces/{ns}/configmaps/one?fieldManager=alice")
            .body(APPLY, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one"}, "data": {"owned": "alice"}})),
        case("conflicting apply by another", "PATCH", "/api/v1/namespaces/{ns}/configmaps/one?fieldManager=bob")
            .body(APPLY, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one"}, "data": {"owned": "bob"}})),
        case("forced apply by another", "PATCH", "/api/v1/namespaces/{ns}/configmaps/one?fieldManager=bob&force=true")
            .body(APPLY, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one"}, "data": {"owned": "bob"}})),
        case("apply without a field manager", "PATCH", "/api/v1/namespaces/{ns}/configmaps/one")
            .body(APPLY, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one"}})),
        case("dry-run create", "POST", "/api/v1/namespaces/{ns}/configmaps?dryRun=All").body(
            JSON,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dry"}}),
        ),
        case("the dry run stored nothing", "GET", "/api/v1/namespaces/{ns}/configmaps/dry"),
        case("label selector", "GET", "/api/v1/namespaces/{ns}/configmaps?labelSelector=tier%3Da"),
        case("set-based selector", "GET", "/api/v1/namespaces/{ns}/configmaps?labelSelector=tier%20in%20(a,b)"),
        case("bad label selector", "GET", "/api/v1/namespaces/{ns}/configmaps?labelSelector=tier%3D%3D%3D"),
        case("field selector", "GET", "/api/v1/namespaces/{ns}/configmaps?fieldSelector=metadata.name%3Dtwo"),
        case("unsupported field selector", "GET", "/api/v1/namespaces/{ns}/configmaps?fieldSelector=data.k%3Dv"),
        case("first page", "GET", "/api/v1/namespaces/{ns}/configmaps?limit=1&labelSelector=tier"),
        case("bad continue token", "GET", "/api/v1/namespaces/{ns}/configmaps?limit=1&continue=garbage"),
        case("invalid name", "POST", cms).body(
            JSON,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Not_Valid"}}),
        ),
        case("malformed JSON", "POST", cms).body(JSON, json!("{not json")),
        case("wrong kind for the path", "POST", cms).body(
            JSON,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}),
        ),
        case("namespace mismatch", "POST", cms).body(
            JSON,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m", "namespace": "elsewhere"}}),
        ),
        case("unknown field, strict", "POST", "/api/v1/namespaces/{ns}/configmaps?fieldValidation=Strict").body(
            JSON,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "strict"}, "bogus": 1}),
        ),
        case("a table", "GET", cms).accept("application/json;as=Table;v=v1;g=meta.k8s.io"),
        case("partial object metadata", "GET", "/api/v1/namespaces/{ns}/configmaps/two")
            .accept("application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io"),
        case("finalizer keeps an object", "PATCH", "/api/v1/namespaces/{ns}/configmaps/two")
            .body(MERGE, json!({"metadata": {"finalizers": ["diff.autopilot.rs/hold"]}})),
        case("delete it", "DELETE", "/api/v1/namespaces/{ns}/configmaps/two"),
        case("it waits for its finalizer", "GET", "/api/v1/namespaces/{ns}/configmaps/two"),
        case("release the finalizer", "PATCH", "/api/v1/namespaces/{ns}/configmaps/two")
            .body(MERGE, json!({"metadata": {"finalizers": null}})),
        case("now it is gone", "GET", "/api/v1/namespaces/{ns}/configmaps/two"),
        case("delete a missing one", "DELETE", "/api/v1/namespaces/{ns}/configmaps/missing"),
        // Deployments: validation, generation, scale and status subresources.
        case("create a deployment", "POST", deployments).body(JSON, deployment("web", 2)),
        case("an invalid deployment", "POST", deployments).body(
            JSON,
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bad"}, "spec": {"selector": {}}}),
        ),
        case("scale it", "GET", "/apis/apps/v1/namespaces/{ns}/deployments/web/scale"),
        case("patch its scale", "PATCH", "/apis/apps/v1/namespaces/{ns}/deployments/web/scale")
            .body(MERGE, json!({"spec": {"replicas": 3}})),
        case("its generation moved", "GET", "/apis/apps/v1/namespaces/{ns}/deployments/web"),
        case("status through the subresource", "PATCH", "/apis/apps/v1/namespaces/{ns}/deployments/web/status")
            .body(MERGE, json!({"status": {"replicas": 3}})),
        // A custom resource: schema, status and scale subresources, printer columns.
        case("create a widget", "POST", widgets).body(
            JSON,
            json!({"apiVersion": "diff.autopilot.rs/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}}),
        ),
        case("a widget of the wrong type", "POST", widgets).body(
            JSON,
            json!({"apiVersion": "diff.autopilot.rs/v1", "kind": "Widget", "metadata": {"name": "x"}, "spec": {"size": "big"}}),
        ),
        case("a widget missing a field", "POST", widgets).body(
            JSON,
            json!({"apiVersion": "diff.autopilot.rs/v1", "kind": "Widget", "metadata": {"name": "y"}, "spec": {}}),
        ),
        case("status is ignored on the main resource", "PATCH", "/apis/diff.autopilot.rs/v1/namespaces/{ns}/widgets/w")
            .body(MERGE, json!({"status": {"ready": true}})),
        case("status through its subresource", "PATCH", "/apis/diff.autopilot.rs/v1/namespaces/{ns}/widgets/w/status")
            .body(MERGE, json!({"status": {"ready": true, "replicas": 1}})),
        case("spec change bumps the generation", "PATCH", "/apis/diff.autopilot.rs/v1/namespaces/{ns}/widgets/w")
            .body(MERGE, json!({"spec": {"size": 2}})),
        case("widget scale", "GET", "/apis/diff.autopilot.rs/v1/namespaces/{ns}/widgets/w/scale"),
        case("widgets as a table", "GET", widgets).accept("application/json;as=Table;v=v1;g=meta.k8s.io"),
        case("unknown resource", "GET", "/apis/diff.autopilot.rs/v1/namespaces/{ns}/gadgets"),
    ]
}

/// Keys whose values differ between any two servers (and runs), kept only as present.
const VOLATILE: [&str; 6] = [
    "uid",
    "creationTimestamp",
    "resourceVersion",
    "time",
    "deletionTimestamp",
    "continue",
];

fn normalise(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                if VOLATILE.contains(&key.as_str()) && !inner.is_null() {
                    *inner = json!("<volatile>");
                } else {
                    normalise(inner);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalise),
        _ => {}
    }
}

/// Every leaf where `a` and `b` differ, by JSON pointer.
fn differences(pointer: &str, a: &Value, b: &Value, out: &mut BTreeMap<String, (Value, Value)>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for key in x.keys().chain(y.keys()) {
                let path = format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1"));
                if !out.contains_key(&path) {
                    differences(
                        &path,
                        x.get(key).unwrap_or(&Value::Null),
                        y.get(key).unwrap_or(&Value::Null),
                        out,
                    );
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (index, (p, q)) in x.iter().zip(y).enumerate() {
                differences(&format!("{pointer}/{index}"), p, q, out);
            }
        }
        _ if a != b => {
            out.insert(pointer.to_owned(), (a.clone(), b.clone()));
        }
        _ => {}
    }
}

const ITEMS_AS_STORED: &str = "list items of built-in kinds keep their apiVersion and kind: lists send the \
    stored JSON without decoding it; clients take the items' type from the list's";
const GO_DECODER_WORDS: &str =
    "the words of Go's JSON decoder; the code, reason and the message's start agree";
const MANAGED_FIELDS_BY_TYPE: &str = "managedFields of built-in kinds: the in-process server marks every object \
    it records with `.` and descends into atomic structs (a LabelSelector); the real one follows the Go \
    types (`.` only on maps, atomic structs as one field)";

/// Differences the in-process server keeps for now: (case, pointer prefix, why).
const ALLOWED: &[(&str, &str, &str)] = &[
    ("label selector", "/items/", ITEMS_AS_STORED),
    ("set-based selector", "/items/", ITEMS_AS_STORED),
    ("field selector", "/items/", ITEMS_AS_STORED),
    ("first page", "/items/", ITEMS_AS_STORED),
    ("bad continue token", "/message", GO_DECODER_WORDS),
    ("malformed JSON", "/message", GO_DECODER_WORDS),
    (
        "create a deployment",
        "/metadata/managedFields/",
        MANAGED_FIELDS_BY_TYPE,
    ),
    (
        "its generation moved",
        "/metadata/managedFields",
        MANAGED_FIELDS_BY_TYPE,
    ),
    (
        "status through the subresource",
        "/metadata/managedFields",
        MANAGED_FIELDS_BY_TYPE,
    ),
];

/// A Table's ages are wall-clock durations: they are kept only as present.
fn normalise_ages(table: &mut Value) {
    let Some(age) = table["columnDefinitions"]
        .as_array()
        .and_then(|columns| columns.iter().position(|c| c["name"] == "Age"))
    else {
        return;
    };
    for row in table["rows"].as_array_mut().into_iter().flatten() {
        if let Some(cell) = row["cells"].get_mut(age) {
            *cell = json!("<age>");
        }
    }
}

async fn answer(cluster: &TestCluster, case: &Case) -> (u16, Value) {
    let namespace = cluster.namespace();
    let body = match &case.body {
        Value::Null => Vec::new(),
        Value::String(raw) => raw.clone().into_bytes(),
        other => serde_json::to_vec(other).unwrap(),
    };
    let request = http::Request::builder()
        .method(case.method)
        .uri(case.path.replace("{ns}", namespace))
        .header("content-type", case.content_type)
        .header("accept", case.accept)
        .body(kube::client::Body::from(body))
        .unwrap();
    let response = cluster.client().send(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).replace(namespace, "<ns>");
    let mut value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    normalise(&mut value);
    if value["kind"] == "Table" {
        normalise_ages(&mut value);
    }
    (status, value)
}

/// Waits until the namespace holds what the controllers put in every namespace, so both answer lists of it
/// alike.
async fn settled(cluster: &TestCluster) {
    let config_maps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::default_namespaced(cluster.client());
    for _ in 0..600 {
        if config_maps
            .get_opt("kube-root-ca.crt")
            .await
            .unwrap()
            .is_some()
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{:?}: kube-root-ca.crt never appeared", cluster.backend());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_process_server_answers_as_the_real_one() {
    let ours = TestCluster::start_on(Backend::InProcess).await.unwrap();
    let real = TestCluster::start_on(Backend::Real).await.unwrap();
    for cluster in [&ours, &real] {
        cluster.install::<Widget>().await.unwrap();
        settled(cluster).await;
    }
    let corpus = corpus();
    let mut unexpected = Vec::new();
    let mut allowed = 0;
    for case in &corpus {
        let (our_status, our_body) = answer(&ours, case).await;
        let (real_status, real_body) = answer(&real, case).await;
        let mut found = BTreeMap::new();
        if our_status != real_status {
            found.insert(
                "(status code)".to_owned(),
                (json!(our_status), json!(real_status)),
            );
        }
        differences("", &our_body, &real_body, &mut found);
        for (pointer, (ours, real)) in found {
            let excused = ALLOWED
                .iter()
                .any(|(name, prefix, _)| *name == case.name && pointer.starts_with(prefix));
            if excused {
                allowed += 1;
            } else {
                unexpected.push(format!(
                    "{}: {pointer}: ours {ours}, real {real}",
                    case.name
                ));
            }
        }
    }
    println!(
        "differential corpus: {} requests, {} allowed differences, {} unexpected",
        corpus.len(),
        allowed,
        unexpected.len()
    );
    assert!(
        unexpected.is_empty(),
        "differences from the real server:\n{}",
        unexpected.join("\n")
    );
    // The CRD type is what both servers serve.
    assert_eq!(Widget::crd().spec.group, "diff.autopilot.rs");
}
