//! Autopilot.

pub mod sinks;
pub mod sources;
