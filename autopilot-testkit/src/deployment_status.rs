//! A stand-in for the Deployment controller and the kubelets: Deployment status catches up with
//! the spec, so rollout logic (`kubectl rollout status`, "is the primary ready?") can be tested
//! without pods.
//!
//! For every Deployment whose status lags its spec, after a short delay it writes through the
//! status subresource what a healthy rollout ends with: `observedGeneration` = `generation`,
//! `replicas` = `updatedReplicas` = `readyReplicas` = `availableReplicas` = `spec.replicas`, and the
//! `Available` and `Progressing` conditions.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::time::Duration;
//! use k8s_openapi::api::apps::v1::Deployment;
//! use kube::api::{Api, PostParams};
//!
//! let server = autopilot_testkit::ApiServer::start().await?;
//! let _controller = autopilot_testkit::spawn_deployment_status(server.client());
//! let deployments: Api<Deployment> = Api::namespaced(server.client(), "default");
//! let app: Deployment = serde_json::from_value(serde_json::json!({
//!     "metadata": {"name": "app"},
//!     "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "app"}},
//!              "template": {"metadata": {"labels": {"app": "app"}}, "spec": {"containers": [{"name": "app", "image": "app:1"}]}}}
//! }))?;
//! deployments.create(&PostParams::default(), &app).await?;
//! for _ in 0..100 {
//!     let status = deployments.get("app").await?.status.unwrap_or_default();
//!     if status.ready_replicas == Some(3) { return Ok(()); }
//!     tokio::time::sleep(Duration::from_millis(50)).await;
//! }
//! panic!("status never caught up");
//! # #[allow(unreachable_code)] Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use std::time::Duration;

use futures::TryStreamExt;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tokio::task::JoinHandle;

/// Field manager of the status writes, as the real controller's.
const MANAGER: &str = "deployment-controller";

/// Starts the stand-in controller with a 100 ms rollout time; it runs until the handle is aborted
/// or dropped with the runtime.
#[must_use]
pub fn spawn_deployment_status(client: Client) -> JoinHandle<()> {
    spawn_deployment_status_with(client, Duration::from_millis(100))
}

/// Starts the stand-in controller; a Deployment's status catches up `rollout` after its change.
#[must_use]
pub fn spawn_deployment_status_with(client: Client, rollout: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let api: Api<Deployment> = Api::all(client.clone());
        let changes = watcher(api, watcher::Config::default())
            .default_backoff()
            .applied_objects();
        changes
            .try_for_each_concurrent(None, |deployment| {
                let client = client.clone();
                async move {
                    if lags(&deployment) {
                        tokio::time::sleep(rollout).await;
                        if let Err(error) = catch_up(client, &deployment).await {
                            tracing::debug!(name = %deployment.name_any(), %error, "deployment status not written");
                        }
                    }
                    Ok(())
                }
            })
            .await
            .unwrap_or_else(|error| tracing::warn!(%error, "deployment status controller stopped"));
    })
}

/// Whether the status does not yet show the current spec fully rolled out.
fn lags(deployment: &Deployment) -> bool {
    let wanted = deployment.spec.replicas.unwrap_or(1);
    let status = deployment.status.clone().unwrap_or_default();
    status.observed_generation != deployment.metadata.generation
        || status.replicas.unwrap_or(0) != wanted
        || status.updated_replicas.unwrap_or(0) != wanted
        || status.ready_replicas.unwrap_or(0) != wanted
        || status.available_replicas.unwrap_or(0) != wanted
}

async fn catch_up(client: Client, deployment: &Deployment) -> kube::Result<()> {
    let Some(namespace) = deployment.namespace() else {
        return Ok(());
    };
    let api: Api<Deployment> = Api::namespaced(client, &namespace);
    // Read again: the spec may have moved on while the rollout "ran".
    let current = api.get(&deployment.name_any()).await?;
    let wanted = current.spec.replicas.unwrap_or(1);
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let condition = |type_: &str, reason: &str, message: String| DeploymentCondition {
        type_: Some(type_.to_owned()),
        status: Some("True".to_owned()),
        reason: Some(reason.to_owned()),
        message: Some(message),
        last_transition_time: Some(now.clone()),
        last_update_time: Some(now.clone()),
    };
    let status = DeploymentStatus {
        observed_generation: current.metadata.generation,
        replicas: Some(wanted),
        updated_replicas: Some(wanted),
        ready_replicas: Some(wanted),
        available_replicas: Some(wanted),
        conditions: Some(vec![
            condition(
                "Available",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".to_owned(),
            ),
            condition(
                "Progressing",
                "NewReplicaSetAvailable",
                format!(
                    "ReplicaSet \"{}\" has successfully progressed.",
                    current.name_any()
                ),
            ),
        ]),
        ..DeploymentStatus::default()
    };
    let patch = serde_json::json!({ "status": status });
    api.patch_status(
        &current.name_any(),
        &PatchParams {
            field_manager: Some(MANAGER.to_owned()),
            ..PatchParams::default()
        },
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}
