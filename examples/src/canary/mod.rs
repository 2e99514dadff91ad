//! A progressive delivery operator in the style of Flagger, written with autopilot.
//!
//! A [`Canary`](spec::Canary) names a Deployment. The operator copies it to `<name>-primary`, puts
//! Services and mesh routing in front, and from then on treats every new revision of the Deployment
//! as a canary: it shifts traffic to it step by step while the mesh's metrics stay within range,
//! promotes it to the primary, or rolls it back.
//!
//! - [`spec`]: the custom resource and its phases.
//! - [`phases`]: one handler per phase.
//! - [`workloads`]: the Deployments and Services it manages.
//! - [`webhooks`]: the analysis webhooks.
//! - [`demo`]: the whole thing on the in-process API server.

pub mod demo;
pub mod phases;
pub mod spec;
pub mod webhooks;
pub mod workloads;

use autopilot::Operator;
use autopilot::manifests::{Access, OperatorManifests};
use autopilot_mesh::MeshProvider;
use k8s_openapi::api::apps::v1::Deployment;

use phases::Deps;
use spec::Canary;

/// Wires the canary's inputs and outputs into an operator: a change to a target Deployment or to
/// a Deployment it owns wakes the Canary.
#[must_use]
pub fn operator(operator: Operator<Canary>, deps: Deps) -> Operator<Canary> {
    operator
        .with_extension(deps)
        .watches_input::<Deployment, _>(|canary| Some(canary.spec.target_ref.name.clone()))
        .owns::<Deployment>()
}

/// The manifests that install the canary operator `name` in `namespace` for `provider`: the Canary CRD, and
/// RBAC for exactly what it touches — Deployments (the target and its primary), the Services in front of
/// them, the mesh's routing objects, Events and its Lease.
#[must_use]
pub fn manifests(
    name: &str,
    namespace: &str,
    image: &str,
    provider: MeshProvider,
) -> OperatorManifests {
    let routing: &[(&str, &str)] = match provider {
        MeshProvider::Istio => &[
            ("networking.istio.io", "virtualservices"),
            ("networking.istio.io", "destinationrules"),
        ],
        MeshProvider::Linkerd | MeshProvider::GatewayApi => {
            &[("gateway.networking.k8s.io", "httproutes")]
        }
        MeshProvider::Smi => &[("split.smi-spec.io", "trafficsplits")],
    };
    routing.iter().fold(
        OperatorManifests::new(name, namespace, image)
            .crd(autopilot::crd::<Canary>())
            .access(Access::read_write("apps", "deployments"))
            .access(Access::read_write("", "services")),
        |manifests, (group, resource)| manifests.access(Access::read_write(*group, *resource)),
    )
}

/// An HTTP client for webhooks.
///
/// # Errors
/// When TLS cannot be set up.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    // One crypto provider for the whole process; installing twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(reqwest::Client::builder().build()?)
}
