//! The [`Autopilot`] trait that ties a custom resource to its phases, and CRD helpers.

use std::fmt::Debug;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceDefinition,
};
use kube::{Api, Client, CustomResourceExt, Resource, core::object::HasStatus};
use schemars::JsonSchema;
use serde::{Serialize, de::DeserializeOwned};

use crate::{PhaseEnum, Status};

/// A custom resource driven through declared phases; implemented by `#[derive(Autopilot)]`.
///
/// Put the derive on the spec struct of a kube `CustomResource`, next to `#[derive(CustomResource)]`, and
/// declare the phases in order: one `initial`, any number of `final`, optionally one `failure` (a final phase
/// that [`Transition::fail`](crate::Transition::fail) leads to) and one `finalizer` (cleanup that runs once when
/// the object is deleted). Point kube's `status` at the generated `<Kind>Status`:
///
/// ```
/// use autopilot::{Autopilot, Context, Transition};
/// use kube::CustomResource;
/// use schemars::JsonSchema;
/// use serde::{Deserialize, Serialize};
/// use std::sync::Arc;
///
/// #[derive(CustomResource, Autopilot, Serialize, Deserialize, Clone, Debug, JsonSchema)]
/// #[kube(group = "demo.autopilot.rs", version = "v1", kind = "Canary", namespaced, status = "CanaryStatus")]
/// #[kube(printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"))]
/// #[kube(printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"))]
/// #[autopilot(phases(Initializing(initial), Evaluating, Succeeded(final), Failed(failure)))]
/// pub struct CanarySpec {
///     target: String,
/// }
///
/// async fn initializing(_: Arc<Canary>, _: Context<Canary>) -> anyhow::Result<Transition<CanaryPhase>> {
///     Ok(Transition::next(CanaryPhase::Evaluating))
/// }
/// async fn evaluating(_: Arc<Canary>, _: Context<Canary>) -> anyhow::Result<Transition<CanaryPhase>> {
///     Ok(Transition::next(CanaryPhase::Succeeded))
/// }
///
/// // Generated: the phase enum...
/// assert_eq!(CanaryPhase::initial(), CanaryPhase::Initializing);
/// assert!(CanaryPhase::Failed.is_final());
/// assert_eq!("Evaluating".parse::<CanaryPhase>(), Ok(CanaryPhase::Evaluating));
/// assert_eq!(serde_json::to_string(&CanaryPhase::Succeeded)?, "\"Succeeded\"");
/// // ...and one handler field per phase that runs code (a missing one does not compile).
/// let handlers = CanaryHandlers { initializing, evaluating };
/// # let _ = handlers;
/// // The CRD schema lists the phases.
/// let crd = serde_json::to_value(autopilot::crd::<Canary>())?;
/// let phase = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["phase"];
/// assert_eq!(phase["enum"][0], "Initializing");
/// # Ok::<(), serde_json::Error>(())
/// ```
///
/// Options of `#[autopilot(...)]`: `phases(...)` (required), `fields = Type` (the handlers' own status
/// fields, flattened into the status; see [`Context::update_status`](crate::Context::update_status)),
/// `kind = ".."` (when there is no `#[kube(kind = "..")]`) and `crate = ".."` (when `autopilot` is renamed).
pub trait Autopilot:
    Resource<DynamicType = ()>
    + HasStatus<Status = Status<Self::Phase, Self::Fields>>
    + CustomResourceExt
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// The generated phase enum.
    type Phase: PhaseEnum;
    /// The handlers' own status fields (`autopilot::status::NoFields` unless declared).
    type Fields: Clone
        + Debug
        + Default
        + PartialEq
        + Serialize
        + DeserializeOwned
        + JsonSchema
        + Send
        + Sync
        + 'static;
    /// An [`Api`] for this kind in `namespace` (all namespaces when `None`, or when cluster-scoped).
    fn api(client: Client, namespace: Option<&str>) -> Api<Self>;
}

/// The CRD of `K`, with `Phase` and `Age` printer columns added when `K` does not declare them.
///
/// `kubectl get` shows a CRD's `additionalPrinterColumns` and nothing else (not even AGE), so an operator
/// wants both. Declare them with `#[kube(printcolumn(...))]` (see [`Autopilot`]) or install this CRD.
#[must_use]
pub fn crd<K: Autopilot>() -> CustomResourceDefinition {
    let mut crd = K::crd();
    for version in &mut crd.spec.versions {
        let columns = version
            .additional_printer_columns
            .get_or_insert_with(Vec::new);
        let has = |path: &str| columns.iter().any(|c| c.json_path == path);
        let phase = (!has(".status.phase")).then(|| column("Phase", "string", ".status.phase"));
        let age = (!has(".metadata.creationTimestamp"))
            .then(|| column("Age", "date", ".metadata.creationTimestamp"));
        columns.extend(phase.into_iter().chain(age));
    }
    crd
}

fn column(name: &str, type_: &str, json_path: &str) -> CustomResourceColumnDefinition {
    CustomResourceColumnDefinition {
        name: name.into(),
        type_: type_.into(),
        json_path: json_path.into(),
        ..Default::default()
    }
}
