//! The CRD manifests: generated from the types, committed under `crds/`, structural, and keeping
//! unknown fields where the types do.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use autopilot_mesh::crds;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

fn manifest_path(crd: &CustomResourceDefinition) -> PathBuf {
    let name = crd.metadata.name.as_deref().unwrap();
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("crds/{name}.yaml"))
}

/// `AUTOPILOT_MESH_WRITE_CRDS=1 cargo test -p autopilot-mesh --test crds` rewrites the manifests.
#[test]
fn committed_manifests_match_the_types() {
    for crd in crds::all() {
        let path = manifest_path(&crd);
        let generated = serde_saphyr::to_string(&crd).unwrap();
        if std::env::var_os("AUTOPILOT_MESH_WRITE_CRDS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (regenerate the manifests)", path.display()));
        assert!(
            committed == generated,
            "{} is stale (regenerate the manifests); generated:\n{generated}",
            path.display()
        );
    }
}

fn schema(crd: &CustomResourceDefinition, version: &str) -> Value {
    let version = crd
        .spec
        .versions
        .iter()
        .find(|v| v.name == version)
        .unwrap();
    serde_json::to_value(&version.schema.as_ref().unwrap().open_api_v3_schema).unwrap()
}

fn preserves(schema: &Value, pointer: &str) -> bool {
    schema
        .pointer(pointer)
        .unwrap_or_else(|| panic!("no {pointer}"))["x-kubernetes-preserve-unknown-fields"]
        == true
}

#[test]
fn schemas_preserve_unknown_fields_at_every_kept_level() {
    let all = crds::all();
    let find = |name: &str| {
        all.iter()
            .find(|c| c.metadata.name.as_deref() == Some(name))
            .unwrap()
    };

    let vs = schema(find("virtualservices.networking.istio.io"), "v1");
    for pointer in [
        "/properties/spec",
        "/properties/spec/properties/http/items",
        "/properties/spec/properties/http/items/properties/route/items",
        "/properties/spec/properties/http/items/properties/match/items",
        "/properties/spec/properties/http/items/properties/retries",
        "/properties/status",
    ] {
        assert!(preserves(&vs, pointer), "VirtualService {pointer}");
    }
    // Typed fields stay typed (structural schema).
    assert_eq!(
        vs.pointer(
            "/properties/spec/properties/http/items/properties/route/items/properties/weight/type"
        ),
        Some(&Value::from("integer"))
    );

    let route = schema(find("httproutes.gateway.networking.k8s.io"), "v1");
    for pointer in [
        "/properties/spec",
        "/properties/spec/properties/rules/items",
        "/properties/spec/properties/rules/items/properties/backendRefs/items",
        "/properties/spec/properties/rules/items/properties/filters/items",
        "/properties/spec/properties/rules/items/properties/matches/items",
    ] {
        assert!(preserves(&route, pointer), "HTTPRoute {pointer}");
    }

    let dr = schema(find("destinationrules.networking.istio.io"), "v1");
    assert!(preserves(&dr, "/properties/spec/properties/trafficPolicy"));
}

#[test]
fn traffic_split_serves_both_weight_versions_and_stores_integers() {
    let split = crds::traffic_split();
    let mut versions: Vec<_> = split
        .spec
        .versions
        .iter()
        .map(|v| (v.name.as_str(), v.served, v.storage))
        .collect();
    versions.sort();
    assert_eq!(
        versions,
        [("v1alpha1", true, false), ("v1alpha2", true, true)]
    );
    let v2 = schema(&split, "v1alpha2");
    assert_eq!(
        v2.pointer("/properties/spec/properties/backends/items/properties/weight/type"),
        Some(&Value::from("integer"))
    );
    assert!(preserves(&v2, "/properties/spec"));
}

/// The documentation-shaped objects pass our schemas as the API server checks them: nothing is
/// pruned and nothing is invalid.
#[test]
fn documented_objects_validate_and_lose_nothing_to_pruning() {
    use autopilot_testkit::validation::{prune_reporting, validate};

    let all = crds::all();
    let cases = [
        (
            "virtualservices.networking.istio.io",
            "v1",
            include_str!("fixtures/virtualservice.yaml"),
        ),
        (
            "destinationrules.networking.istio.io",
            "v1",
            include_str!("fixtures/destinationrule.yaml"),
        ),
        (
            "trafficsplits.split.smi-spec.io",
            "v1alpha2",
            include_str!("fixtures/trafficsplit-v1alpha2.yaml"),
        ),
        (
            "trafficsplits.split.smi-spec.io",
            "v1alpha1",
            include_str!("fixtures/trafficsplit-v1alpha1.yaml"),
        ),
        (
            "httproutes.gateway.networking.k8s.io",
            "v1",
            include_str!("fixtures/httproute.yaml"),
        ),
    ];
    for (name, version, yaml) in cases {
        let crd = all
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(name))
            .unwrap();
        let schema = schema(crd, version);
        let object: Value = serde_saphyr::from_str(yaml).unwrap();
        let mut pruned = object.clone();
        assert_eq!(
            prune_reporting(&schema, &mut pruned),
            Vec::<String>::new(),
            "{name}"
        );
        assert_eq!(pruned, object, "{name}");
        let errors: Vec<String> = validate(&schema, &object)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(errors, Vec::<String>::new(), "{name}");
    }
}
