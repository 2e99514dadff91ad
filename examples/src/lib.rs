//! Runnable operators built with autopilot, and the pieces their demos share.
//!
//! - [`canary`]: progressive delivery for Deployments (run it: `cargo run --example canary`).
//! - [`traffic`]: a synthetic mesh data plane whose telemetry a real Prometheus scrapes.

pub mod canary;
pub mod traffic;
