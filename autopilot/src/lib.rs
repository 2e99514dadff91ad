//! Autopilot.
