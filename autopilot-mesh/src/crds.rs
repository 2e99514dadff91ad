//! CustomResourceDefinitions for the mesh resources, generated from the types.
//!
//! They are structural schemas of our own (not the projects' upstream manifests): the fields the types
//! name are typed, every level that keeps unknown fields says `x-kubernetes-preserve-unknown-fields`.
//! Install them into a test API server, or apply the same manifests from `autopilot-mesh/crds/`.
//!
//! ```
//! let crds = autopilot_mesh::crds::all();
//! let names: Vec<_> = crds.iter().filter_map(|c| c.metadata.name.as_deref()).collect();
//! assert!(names.contains(&"virtualservices.networking.istio.io"));
//! assert!(names.contains(&"httproutes.gateway.networking.k8s.io"));
//! ```

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSON, JSONSchemaProps, JSONSchemaPropsOrArray,
};
use kube::CustomResourceExt;
use kube::core::crd::merge_crds;
use serde_json::{Value, json};

use crate::resources::{gateway, istio, smi};

/// Every CRD this crate's routers write: VirtualService, DestinationRule, TrafficSplit, HTTPRoute.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![
        istio::VirtualService::crd(),
        istio::DestinationRule::crd(),
        traffic_split(),
        http_route(),
    ]
}

/// The defaults upstream's HTTPRoute schema gives the fields the router writes, by path (`[]` steps
/// into list items). A cluster stores routes with them filled in, so ours fills in the same.
fn http_route_defaults() -> Vec<(&'static [&'static str], Value)> {
    let any_path = json!({"type": "PathPrefix", "value": "/"});
    vec![
        (
            &["spec", "parentRefs", "[]", "group"],
            json!("gateway.networking.k8s.io"),
        ),
        (&["spec", "parentRefs", "[]", "kind"], json!("Gateway")),
        (
            &["spec", "rules"],
            json!([{"matches": [{"path": any_path}]}]),
        ),
        (
            &["spec", "rules", "[]", "backendRefs", "[]", "group"],
            json!(""),
        ),
        (
            &["spec", "rules", "[]", "backendRefs", "[]", "kind"],
            json!("Service"),
        ),
        (
            &["spec", "rules", "[]", "backendRefs", "[]", "weight"],
            json!(1),
        ),
        (
            &["spec", "rules", "[]", "matches"],
            json!([{"path": any_path}]),
        ),
        (&["spec", "rules", "[]", "matches", "[]", "path"], any_path),
        (
            &["spec", "rules", "[]", "matches", "[]", "path", "type"],
            json!("PathPrefix"),
        ),
        (
            &["spec", "rules", "[]", "matches", "[]", "path", "value"],
            json!("/"),
        ),
        (
            &[
                "spec", "rules", "[]", "matches", "[]", "headers", "[]", "type",
            ],
            json!("Exact"),
        ),
    ]
}

/// The schema of a RequestMirror filter's settings, whose backend reference upstream defaults as it
/// does the rule's own (the rest of the filter is kept as written).
fn request_mirror_schema() -> Value {
    json!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "properties": {
            "backendRef": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
                "properties": {
                    "group": {"type": "string", "default": ""},
                    "kind": {"type": "string", "default": "Service"}
                }
            },
            "fraction": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
                "properties": {"denominator": {"type": "integer", "format": "int32", "default": 100}}
            }
        }
    })
}

/// The schema node at `path` (object properties by name, `[]` for list items).
fn node_at<'a>(schema: &'a mut JSONSchemaProps, path: &[&str]) -> Option<&'a mut JSONSchemaProps> {
    path.iter().try_fold(schema, |node, step| match *step {
        "[]" => match node.items.as_mut() {
            Some(JSONSchemaPropsOrArray::Schema(items)) => Some(&mut **items),
            _ => None,
        },
        name => node.properties.as_mut().and_then(|p| p.get_mut(name)),
    })
}

/// The HTTPRoute CRD, with upstream's defaults on the fields the router writes. `gateway.networking.k8s.io`
/// is a group the Kubernetes project protects: the API server refuses its CRDs without the
/// `api-approved.kubernetes.io` annotation, which names the Gateway API release's approving change as
/// upstream's manifests do.
pub fn http_route() -> CustomResourceDefinition {
    let mut crd = gateway::HttpRoute::crd();
    for version in &mut crd.spec.versions {
        let schema = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut());
        let Some(schema) = schema else { continue };
        for (path, default) in http_route_defaults() {
            if let Some(node) = node_at(schema, path) {
                node.default = Some(JSON(default));
            }
        }
        let filters = node_at(schema, &["spec", "rules", "[]", "filters", "[]"]);
        if let (Some(filters), Ok(mirror)) =
            (filters, serde_json::from_value(request_mirror_schema()))
        {
            filters
                .properties
                .get_or_insert_with(Default::default)
                .insert("requestMirror".to_owned(), mirror);
        }
    }
    crd.metadata.annotations = Some(
        [(
            "api-approved.kubernetes.io".to_owned(),
            "https://github.com/kubernetes-sigs/gateway-api/pull/4530".to_owned(),
        )]
        .into(),
    );
    crd
}

/// The TrafficSplit CRD serving `v1alpha1` and `v1alpha2` (stored).
pub fn traffic_split() -> CustomResourceDefinition {
    let versions = vec![smi::v1alpha1::TrafficSplit::crd(), smi::TrafficSplit::crd()];
    // Both inputs come from the same group, kind and scope, which is all merging checks.
    merge_crds(versions, "v1alpha2").unwrap_or_else(|_| smi::TrafficSplit::crd())
}
