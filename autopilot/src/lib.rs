//! Autopilot.

pub mod sinks;
