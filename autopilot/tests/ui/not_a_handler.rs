use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, autopilot::Autopilot, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(group = "ui.autopilot.rs", version = "v1", kind = "Job", namespaced, status = "JobStatus")]
#[autopilot(phases(Queued(initial), Done(final)))]
pub struct JobSpec {
    pub image: String,
}

use std::sync::Arc;
use autopilot::{Context, Operator, config::OperatorConfig};

// Returns the wrong type: not a phase handler.
async fn queued(_: Arc<Job>, _: Context<Job>) -> anyhow::Result<()> {
    Ok(())
}

fn build(client: kube::Client) -> Operator<Job> {
    Operator::<Job>::new(client, OperatorConfig::default(), JobHandlers { queued })
}

fn main() {}
