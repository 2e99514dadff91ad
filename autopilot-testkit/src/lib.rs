//! An in-process Kubernetes API server for tests and demos.
//!
//! [`ApiServer::start`] serves the Kubernetes API over plain HTTP on 127.0.0.1 (a port chosen by the OS) and
//! hands out a ready [`kube::Client`]. The unmodified kube client, kube-runtime's watcher, reflector and
//! `Controller`, and `kubectl` talk to it as to a real cluster: discovery, built-in kinds, CRDs with
//! status subresources, resourceVersion conflicts, watches that resume or expire with 410, finalizers,
//! garbage collection of dependents, and `Status` error bodies. It starts in milliseconds and needs no
//! binaries.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use k8s_openapi::api::core::v1::Namespace;
//! use kube::api::Api;
//!
//! let server = autopilot_testkit::ApiServer::start().await?;
//! let namespaces: Api<Namespace> = Api::all(server.client());
//! let default = namespaces.get("default").await?;
//! assert_eq!(default.status.and_then(|s| s.phase).as_deref(), Some("Active"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! Fault injection ([`Faults`]) fails requests, adds latency, cuts watches and compacts history;
//! [`ApiServer::restart`] stops and restarts the listener with the state kept.
//!
//! End-to-end tests that should also run on a real cluster take a [`TestCluster`] instead: the same
//! test on this server (the default) or, with `AUTOPILOT_TEST_APISERVER=real`, on a real kube-apiserver
//! and etcd ([`real::RealApiServer`]), each test in a namespace of its own.

pub mod apply;
mod cluster;
mod controllers;
mod conversion;
mod crd;
mod defaults;
mod deployment_status;
mod discovery;
mod faults;
pub mod field_validation;
mod filter;
mod http;
mod meta;
mod openapi;
mod past;
mod programs;
pub mod prometheus;
pub mod protobuf;
pub mod real;
mod registry;
pub mod selector;
mod server;
pub mod status;
mod store;
pub mod strategic;
pub mod table;
mod test_cluster;
pub mod validation;
mod write;

pub use deployment_status::{spawn_deployment_status, spawn_deployment_status_with};
pub use faults::Faults;
pub use server::{ApiServer, Error, ServerOptions, kubeconfig};
pub use test_cluster::{BACKEND_VARIABLE, Backend, ClusterError, TestCluster};
