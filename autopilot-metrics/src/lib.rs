//! Prometheus client.
