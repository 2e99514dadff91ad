use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, autopilot::Autopilot, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(group = "ui.autopilot.rs", version = "v1", kind = "Job", namespaced, status = "JobStatus")]
#[autopilot(phases(Queued(initial), Running, Done(final)))]
pub struct JobSpec {
    pub image: String,
}

use std::sync::Arc;
use autopilot::{Context, Transition};

async fn queued(_: Arc<Job>, _: Context<Job>) -> anyhow::Result<Transition<JobPhase>> {
    Ok(Transition::next(JobPhase::Running))
}

fn main() {
    let _ = JobHandlers { queued };
}
