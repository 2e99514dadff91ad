//! In-process Kubernetes API server.
pub mod apply;
pub mod prometheus;
pub mod selector;
pub mod strategic;
pub mod table;
pub mod validation;
