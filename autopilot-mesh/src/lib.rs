//! Mesh routing.
