//! SMI `TrafficSplit` (`split.smi-spec.io`): `v1alpha2` with integer weights (what Linkerd's SMI extension
//! serves) and `v1alpha1` with Quantity weights.
//!
//! ```
//! use autopilot_mesh::resources::smi::TrafficSplit;
//!
//! let yaml = r#"
//! apiVersion: split.smi-spec.io/v1alpha2
//! kind: TrafficSplit
//! metadata: { name: canary }
//! spec:
//!   service: website
//!   backends:
//!   - { service: website-v1, weight: 90 }
//!   - { service: website-v2, weight: 10 }
//! "#;
//! let split: TrafficSplit = serde_saphyr::from_str(yaml).unwrap();
//! assert_eq!(split.spec.backends[1].weight, 10);
//! ```

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Extra;

/// Splits traffic addressed to an apex service between backend services (`split.smi-spec.io/v1alpha2`).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "split.smi-spec.io",
    version = "v1alpha2",
    kind = "TrafficSplit",
    namespaced,
    shortname = "ts",
    printcolumn = r#"{"name":"Service","type":"string","jsonPath":".spec.service"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TrafficSplitSpec {
    /// The apex service clients address.
    pub service: String,
    /// Services receiving the traffic, with integer weights.
    #[serde(default)]
    pub backends: Vec<TrafficSplitBackend>,
    /// Everything else (`matches` in later versions), kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A backend service and its weight: an integer from `v1alpha2` on, a quantity in `v1alpha1`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrafficSplitBackend<W = i64> {
    /// Backend service name.
    pub service: String,
    /// Relative weight.
    pub weight: W,
    /// Everything else, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The first TrafficSplit version, whose weights are Kubernetes quantities (`500m`, `1`).
pub mod v1alpha1 {
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use kube::CustomResource;
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    use super::Extra;

    /// Splits traffic addressed to an apex service between backend services (`split.smi-spec.io/v1alpha1`).
    #[derive(
        CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema,
    )]
    #[kube(
        group = "split.smi-spec.io",
        version = "v1alpha1",
        kind = "TrafficSplit",
        namespaced,
        shortname = "ts",
        printcolumn = r#"{"name":"Service","type":"string","jsonPath":".spec.service"}"#
    )]
    #[serde(rename_all = "camelCase")]
    pub struct TrafficSplitSpec {
        /// The apex service clients address.
        pub service: String,
        /// Services receiving the traffic, with quantity weights.
        #[serde(default)]
        pub backends: Vec<TrafficSplitBackend>,
        /// Everything else, kept verbatim.
        #[serde(flatten)]
        pub extra: Extra,
    }

    /// A backend service and its quantity weight, e.g. `900m`.
    pub type TrafficSplitBackend = super::TrafficSplitBackend<Quantity>;
}
