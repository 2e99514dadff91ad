//! Write Kubernetes operators as phase state machines.
//!
//! Start with `#[derive(Autopilot)]` on a kube `CustomResource` spec (see [`Autopilot`]): it declares the
//! phases and generates the phase enum and a handler struct with one field per phase. Write one [`Phase`]
//! handler per phase — an `async fn(Arc<K>, Context<K>) -> Result<Transition<P>, E>` is enough — and hand the
//! handlers to an [`Operator`], which drives every object through its phases on kube-runtime's `Controller`:
//! status and conditions, Events, finalizers, retries with backoff, and graceful shutdown. The parts under it
//! ([`status`], [`backoff`], [`config`]) are usable on their own.
//!
//! ```
//! use std::sync::Arc;
//! use autopilot::{Context, Transition};
//! # use autopilot::__doc::*;
//!
//! async fn waiting(rollout: Arc<Rollout>, _: Context<Rollout>) -> anyhow::Result<Transition<RolloutPhase>> {
//!     if rollout.spec.replicas > 0 {
//!         Ok(Transition::next(RolloutPhase::Done))
//!     } else {
//!         Ok(Transition::recheck())
//!     }
//! }
//! # let _ = waiting;
//! ```

// The derive names this crate `::autopilot`; let the crate's own tests and docs use it too.
extern crate self as autopilot;

pub mod backoff;
pub mod config;
pub mod context;
mod crd;
pub mod events;
pub mod leader;
pub mod manifests;
pub mod observability;
pub mod phase;
pub mod runtime;
pub mod shutdown;
pub mod sinks;
pub mod sources;
pub mod status;
mod transition;

pub use autopilot_derive::Autopilot;
pub use context::Context;
pub use crd::{Autopilot, crd};
pub use phase::{BoxError, Handlers, Phase, PhaseEnum};
pub use runtime::{ObserveHooks, Operator};
pub use status::{PhaseValue, Status};
pub use transition::{Recheck, Transition};

/// Paths the derive's generated code uses; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use kube;
    pub use schemars;
    pub use serde;
}

/// A small resource for the documentation's examples; not part of the public API.
#[doc(hidden)]
pub mod __doc {
    use kube::CustomResource;
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    /// Fields the `Rollout` handlers keep in its status.
    #[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
    pub struct RolloutFields {
        /// How many checks ran.
        #[serde(default)]
        pub checks: u32,
    }

    /// An example resource.
    #[derive(
        CustomResource, crate::Autopilot, Serialize, Deserialize, Clone, Debug, JsonSchema,
    )]
    #[kube(
        group = "doc.autopilot.rs",
        version = "v1",
        kind = "Rollout",
        namespaced,
        status = "RolloutStatus"
    )]
    #[autopilot(phases(Starting(initial), Waiting, Done(final)), fields = RolloutFields)]
    pub struct RolloutSpec {
        /// The Deployment rolled out.
        pub target: String,
        /// Replicas wanted.
        pub replicas: i32,
    }
}
