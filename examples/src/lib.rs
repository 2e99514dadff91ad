//! Runnable operators built with autopilot, and the pieces their demos share.
//!
//! - [`traffic`]: a synthetic mesh data plane whose telemetry a real Prometheus scrapes.

pub mod traffic;
