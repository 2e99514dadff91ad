//! The `Canary` custom resource: what to roll out, how to analyse it, and what its status records.

use autopilot::Autopilot;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Progressive delivery for a Deployment: shift traffic to a new revision step by step while its
/// metrics stay healthy, then promote it — or roll back.
#[derive(
    CustomResource, Autopilot, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema,
)]
#[kube(
    group = "delivery.autopilot.rs",
    version = "v1",
    kind = "Canary",
    namespaced,
    status = "CanaryStatus",
    shortname = "canary",
    category = "autopilot",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Weight","type":"integer","jsonPath":".status.canaryWeight"}"#,
    printcolumn = r#"{"name":"FailedChecks","type":"integer","jsonPath":".status.failedChecks"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[autopilot(
    phases(
        Initializing(initial),
        Initialized,
        Waiting,
        Progressing,
        Promoting,
        Finalising,
        Succeeded,
        Failed,
        Terminating(finalizer),
    ),
    fields = CanaryFields
)]
#[serde(rename_all = "camelCase")]
pub struct CanarySpec {
    /// The Deployment whose new revisions are rolled out.
    pub target_ref: TargetRef,
    /// The port the app's Services expose.
    pub service: ServicePort,
    /// How each revision is analysed.
    pub analysis: Analysis,
}

/// A reference to the target Deployment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetRef {
    /// `apps/v1`.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// `Deployment`.
    #[serde(default = "default_kind")]
    pub kind: String,
    /// The Deployment's name.
    pub name: String,
}

fn default_api_version() -> String {
    "apps/v1".to_owned()
}

fn default_kind() -> String {
    "Deployment".to_owned()
}

/// The Services' port.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    /// Port of the apex, primary and canary Services.
    pub port: i32,
    /// Container port traffic goes to (defaults to `port`).
    #[serde(default)]
    pub target_port: Option<i32>,
}

/// The analysis run at every interval while a revision is progressing.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Analysis {
    /// Time between two steps, e.g. `1m`.
    pub interval: String,
    /// Failed checks tolerated before rolling back.
    pub threshold: u32,
    /// Weight added per step (percent).
    #[serde(default)]
    pub step_weight: Option<u8>,
    /// Explicit weights per step (percent), instead of `stepWeight`.
    #[serde(default)]
    pub step_weights: Vec<u8>,
    /// Weight at which the revision is promoted (percent).
    #[serde(default = "default_max_weight")]
    pub max_weight: u8,
    /// Metric checks; all must pass for a step to count.
    #[serde(default)]
    pub metrics: Vec<MetricCheck>,
    /// Webhooks called at points of the rollout.
    #[serde(default)]
    pub webhooks: Vec<Webhook>,
}

fn default_max_weight() -> u8 {
    50
}

/// A metric and the range its value must stay in.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricCheck {
    /// `request-success-rate`, `request-duration`, or a name of your own with `query`.
    pub name: String,
    /// The window the metric is computed over, e.g. `1m`.
    #[serde(default = "default_metric_interval")]
    pub interval: String,
    /// Bounds the value must stay within.
    pub threshold_range: ThresholdRange,
    /// A PromQL template for custom metrics (`{{ namespace }}`, `{{ target }}`, `{{ interval }}`).
    #[serde(default)]
    pub query: Option<String>,
}

fn default_metric_interval() -> String {
    "1m".to_owned()
}

/// Inclusive bounds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct ThresholdRange {
    /// Lowest passing value.
    #[serde(default)]
    pub min: Option<f64>,
    /// Highest passing value.
    #[serde(default)]
    pub max: Option<f64>,
}

/// When a webhook is called.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum WebhookType {
    /// Before traffic shifts; a failure counts as a failed check.
    PreRollout,
    /// At every step; a failure counts as a failed check.
    Rollout,
    /// Before promotion; the rollout waits until it answers 2xx.
    ConfirmPromotion,
    /// After promotion; informational.
    PostRollout,
    /// After a rollback; informational.
    Rollback,
}

/// An HTTP endpoint called with the canary's name, namespace and phase.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    /// A name for messages.
    pub name: String,
    /// When it is called.
    #[serde(rename = "type")]
    pub type_: WebhookType,
    /// Where it is sent (POST, JSON).
    pub url: String,
    /// How long to wait for an answer, e.g. `10s`.
    #[serde(default = "default_webhook_timeout")]
    pub timeout: String,
    /// Extra key-values sent along.
    #[serde(default)]
    pub metadata: std::collections::BTreeMap<String, String>,
}

fn default_webhook_timeout() -> String {
    "10s".to_owned()
}

/// What the handlers record in the status, besides the phase bookkeeping.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryFields {
    /// Percent of traffic going to the canary.
    #[serde(default)]
    pub canary_weight: u8,
    /// Failed checks of the current analysis.
    #[serde(default)]
    pub failed_checks: u32,
    /// Steps of the current analysis.
    #[serde(default)]
    pub iterations: u32,
    /// Hash of the target's pod template the primary runs.
    #[serde(default)]
    pub last_applied_spec: Option<String>,
    /// Hash of the target's pod template under (or after) analysis.
    #[serde(default)]
    pub canary_revision: Option<String>,
    /// The last measured value of every metric, by name.
    #[serde(default)]
    pub measurements: std::collections::BTreeMap<String, f64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    #[test]
    fn kubectl_shows_phase_weight_failed_checks_and_age() {
        let crd = Canary::crd();
        let columns: Vec<_> = crd.spec.versions[0]
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|column| (column.name.as_str(), column.json_path.as_str()))
            .collect();
        assert_eq!(
            columns,
            [
                ("Phase", ".status.phase"),
                ("Weight", ".status.canaryWeight"),
                ("FailedChecks", ".status.failedChecks"),
                ("Age", ".metadata.creationTimestamp"),
            ]
        );
        let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
        let phases = &schema["openAPIV3Schema"]["properties"]["status"]["properties"]["phase"];
        assert!(phases.to_string().contains("Progressing"), "{phases}");
    }
}
