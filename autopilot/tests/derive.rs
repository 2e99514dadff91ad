//! What `#[derive(Autopilot)]` generates, checked through its public effects.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::sync::Arc;

use autopilot::{Autopilot, Context, PhaseEnum, Transition};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseFields {
    #[serde(default)]
    pub canary_weight: u8,
}

#[derive(CustomResource, Autopilot, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "test.autopilot.rs",
    version = "v1",
    kind = "Release",
    namespaced,
    status = "ReleaseStatus"
)]
#[kube(printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"))]
#[autopilot(
    phases(Pending(initial), WaitingPromotion, Promoted(final), RolledBack(failure), Terminating(finalizer)),
    fields = ReleaseFields
)]
pub struct ReleaseSpec {
    pub target: String,
}

#[test]
fn phase_enum_knows_its_roles() {
    assert_eq!(ReleasePhase::ALL.len(), 5);
    assert_eq!(ReleasePhase::initial(), ReleasePhase::Pending);
    assert!(ReleasePhase::Promoted.is_final() && ReleasePhase::RolledBack.is_final());
    assert!(!ReleasePhase::WaitingPromotion.is_final() && !ReleasePhase::Terminating.is_final());
    assert_eq!(
        <ReleasePhase as PhaseEnum>::failure(),
        Some(ReleasePhase::RolledBack)
    );
    assert_eq!(
        <ReleasePhase as PhaseEnum>::finalizer(),
        Some(ReleasePhase::Terminating)
    );
    assert_eq!(
        ReleasePhase::WaitingPromotion.to_string(),
        "WaitingPromotion"
    );
    let err = "Waiting".parse::<ReleasePhase>().unwrap_err();
    assert!(
        err.to_string().contains("Pending, WaitingPromotion"),
        "{err}"
    );
}

#[test]
fn phases_serialize_as_their_names_and_reject_others() {
    assert_eq!(
        serde_json::to_value(ReleasePhase::RolledBack).unwrap(),
        json!("RolledBack")
    );
    let back: ReleasePhase = serde_json::from_value(json!("Promoted")).unwrap();
    assert_eq!(back, ReleasePhase::Promoted);
    assert!(serde_json::from_value::<ReleasePhase>(json!("promoted")).is_err());
}

#[test]
fn status_tolerates_unknown_phase_names() {
    let status: ReleaseStatus =
        serde_json::from_value(json!({"phase": "Paused", "canaryWeight": 30})).unwrap();
    assert_eq!(status.recorded_phase(), Err("Paused"));
    assert_eq!(status.fields.canary_weight, 30);
    // Written back unchanged.
    assert_eq!(
        serde_json::to_value(&status).unwrap()["phase"],
        json!("Paused")
    );
}

#[test]
fn crd_schema_lists_phases_and_flattens_handler_fields() {
    let crd = serde_json::to_value(autopilot::crd::<Release>()).unwrap();
    let version = &crd["spec"]["versions"][0];
    let status = &version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"];
    let names = json!([
        "Pending",
        "WaitingPromotion",
        "Promoted",
        "RolledBack",
        "Terminating"
    ]);
    // An optional phase also admits null (kube marks it nullable).
    let current: Vec<_> = status["phase"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| !v.is_null())
        .cloned()
        .collect();
    assert_eq!(json!(current), names, "{status:#}");
    assert_eq!(
        status["history"]["items"]["properties"]["phase"]["enum"],
        names
    );
    assert_eq!(status["canaryWeight"]["type"], "integer");
    assert_eq!(status["conditions"]["type"], "array");
    assert!(version["subresources"]["status"].is_object());
    // kube's attribute declared Phase; `crd` adds the missing Age column once.
    let columns = version["additionalPrinterColumns"].as_array().unwrap();
    let names: Vec<_> = columns
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Phase", "Age"]);
    assert_eq!(columns[1]["jsonPath"], ".metadata.creationTimestamp");
    assert_eq!(columns[1]["type"], "date");
}

async fn pending(_: Arc<Release>, _: Context<Release>) -> anyhow::Result<Transition<ReleasePhase>> {
    Ok(Transition::next(ReleasePhase::WaitingPromotion))
}

struct Waiting;

impl autopilot::Phase<Release> for Waiting {
    type Error = std::io::Error;

    async fn run(
        &self,
        _: Arc<Release>,
        _: Context<Release>,
    ) -> Result<Transition<ReleasePhase>, std::io::Error> {
        Ok(Transition::fail("no"))
    }
}

#[test]
fn handler_struct_has_one_field_per_phase_that_runs_code() {
    let handlers = ReleaseHandlers {
        pending,
        waiting_promotion: Waiting,
        terminating: |_: Arc<Release>, _: Context<Release>| async {
            Ok::<_, anyhow::Error>(Transition::recheck())
        },
    };
    fn is_handlers(_: &impl autopilot::Handlers<Release>) {}
    is_handlers(&handlers);
}
