//! In-process Kubernetes API server.
pub mod prometheus;
pub mod selector;
pub mod validation;
