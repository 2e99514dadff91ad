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

/// An HTTP client for webhooks.
///
/// # Errors
/// When TLS cannot be set up.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    // One crypto provider for the whole process; installing twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(reqwest::Client::builder().build()?)
}
