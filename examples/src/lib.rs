//! Runnable operators built with autopilot, and the pieces their demos share.
//!
//! - [`canary`]: progressive delivery for Deployments (run it: `cargo run --example canary`).
//! - [`simulated`]: a labelled stand-in for Prometheus where no `prometheus` binary is installed.
//! - [`traffic`]: a synthetic mesh data plane whose telemetry a real Prometheus scrapes.

pub mod canary;
pub mod simulated;
pub mod traffic;
