//! Autopilot.

pub mod leader;
pub mod manifests;
pub mod observability;
pub mod shutdown;
pub mod sinks;
pub mod sources;
