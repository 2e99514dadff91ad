//! Every router against the in-process API server with the mesh CRDs installed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;
mod gateway_api;
mod istio;
mod linkerd;
mod provider;
mod smi;
