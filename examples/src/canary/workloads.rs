//! The Deployments and Services a canary manages: the user's target (the canary), its `-primary`
//! copy that serves production traffic, and the apex, primary and canary Services.

use std::collections::BTreeMap;

use autopilot::Context;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{PodTemplateSpec, Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Patch, PatchParams};
use sha2::{Digest, Sha256};

use super::spec::Canary;

/// The target Deployment, as it is now.
///
/// # Errors
/// When it does not exist or cannot be read.
pub async fn target(ctx: &Context<Canary>, canary: &Canary) -> anyhow::Result<Deployment> {
    let name = &canary.spec.target_ref.name;
    ctx.api::<Deployment>()
        .get(name)
        .await
        .map_err(|error| anyhow::anyhow!("target Deployment {name}: {error}"))
}

/// The primary Deployment, if it exists yet.
///
/// # Errors
/// When it cannot be read.
pub async fn primary(ctx: &Context<Canary>, canary: &Canary) -> anyhow::Result<Option<Deployment>> {
    Ok(ctx
        .api::<Deployment>()
        .get_opt(&primary_name(canary))
        .await?)
}

/// How many replicas the app runs with: the primary's count, at least one. The canary is scaled to
/// it when an analysis starts, and the target gets it back when the Canary goes away.
///
/// # Errors
/// When the primary cannot be read.
pub async fn serving_replicas(ctx: &Context<Canary>, canary: &Canary) -> anyhow::Result<i32> {
    Ok(primary(ctx, canary)
        .await?
        .and_then(|primary| primary.spec.replicas)
        .unwrap_or(1)
        .max(1))
}

/// `<target>-primary`.
#[must_use]
pub fn primary_name(canary: &Canary) -> String {
    format!("{}-primary", canary.spec.target_ref.name)
}

/// A stable hash of a Deployment's pod template: what identifies a revision.
#[must_use]
pub fn revision(deployment: &Deployment) -> String {
    let template = serde_json::to_vec(&deployment.spec.template).unwrap_or_default();
    let digest = Sha256::digest(&template);
    hex::encode(&digest[..8])
}

/// Whether every replica runs the current spec and is available (what `kubectl rollout status`
/// waits for).
#[must_use]
pub fn is_ready(deployment: &Deployment) -> bool {
    let wanted = deployment.spec.replicas.unwrap_or(1);
    let Some(status) = &deployment.status else {
        return false;
    };
    status.observed_generation >= deployment.metadata.generation
        && status.updated_replicas.unwrap_or(0) >= wanted
        && status.available_replicas.unwrap_or(0) >= wanted
        && status.replicas.unwrap_or(0) <= wanted
}

/// The selector labels of `target`, each value suffixed with `-primary`: the primary's pods must
/// not match the target's selector, or its Services would send traffic to both.
fn primary_labels(target: &Deployment) -> BTreeMap<String, String> {
    target
        .spec
        .selector
        .match_labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(key, value)| (key, format!("{value}-primary")))
        .collect()
}

/// Writes the primary Deployment running `template` (the target's at the time), owned by the
/// canary.
///
/// # Errors
/// When the API server refuses it.
pub async fn apply_primary(
    ctx: &Context<Canary>,
    canary: &Canary,
    target: &Deployment,
    template: &PodTemplateSpec,
    replicas: i32,
) -> anyhow::Result<Deployment> {
    let labels = primary_labels(target);
    let mut template = template.clone();
    let metadata = template.metadata.get_or_insert_with(ObjectMeta::default);
    metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .extend(labels.clone());
    let primary = Deployment {
        metadata: ObjectMeta {
            name: Some(primary_name(canary)),
            labels: Some(labels.clone()),
            ..ObjectMeta::default()
        },
        spec: DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels),
                ..LabelSelector::default()
            },
            template,
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    };
    Ok(ctx.apply_output(&primary).await?)
}

/// Writes the apex (`<target>`), `<target>-primary` and `<target>-canary` Services.
///
/// # Errors
/// When the API server refuses one.
pub async fn apply_services(
    ctx: &Context<Canary>,
    canary: &Canary,
    target: &Deployment,
) -> anyhow::Result<()> {
    let name = &canary.spec.target_ref.name;
    let canary_labels = target
        .spec
        .selector
        .match_labels
        .clone()
        .unwrap_or_default();
    let primary_labels = primary_labels(target);
    for (service, selector) in [
        (name.clone(), &primary_labels),
        (format!("{name}-primary"), &primary_labels),
        (format!("{name}-canary"), &canary_labels),
    ] {
        let port = canary.spec.service.port;
        let object = Service {
            metadata: ObjectMeta {
                name: Some(service),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                selector: Some(selector.clone()),
                ports: Some(vec![ServicePort {
                    name: Some("http".to_owned()),
                    port,
                    target_port: Some(IntOrString::Int(
                        canary.spec.service.target_port.unwrap_or(port),
                    )),
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        };
        ctx.apply_output(&object).await?;
    }
    Ok(())
}

/// Sets the replica count of the user's target Deployment (not ours: a merge patch of one field).
///
/// # Errors
/// When the API server refuses it.
pub async fn scale_target(
    ctx: &Context<Canary>,
    canary: &Canary,
    replicas: i32,
) -> anyhow::Result<()> {
    let patch = serde_json::json!({ "spec": { "replicas": replicas } });
    ctx.api::<Deployment>()
        .patch(
            &canary.spec.target_ref.name,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    Ok(())
}
