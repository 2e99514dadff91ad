//! Autopilot.

pub mod manifests;
pub mod sinks;
pub mod sources;
