use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, autopilot::Autopilot, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(group = "ui.autopilot.rs", version = "v1", kind = "Job", namespaced, status = "JobStatus")]
#[autopilot(phases(Queued(initial), Running, Running, Done(final)))]
pub struct JobSpec {
    pub image: String,
}

fn main() {}
