//! In-process Kubernetes API server.
