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

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::core::crd::merge_crds;

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

/// The HTTPRoute CRD. `gateway.networking.k8s.io` is a group the Kubernetes project protects: the API
/// server refuses its CRDs without the `api-approved.kubernetes.io` annotation, which names the Gateway
/// API release's approving change as upstream's manifests do.
pub fn http_route() -> CustomResourceDefinition {
    let mut crd = gateway::HttpRoute::crd();
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
