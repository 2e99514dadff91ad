//! In-process Kubernetes API server.
pub mod prometheus;
