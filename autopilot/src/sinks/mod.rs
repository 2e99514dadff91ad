//! Where an operator's outputs go besides the cluster.
//!
//! - [`git`]: commit them to a Git repository that Flux applies (GitOps).

pub mod git;
