//! Mesh routing.

pub mod crds;
mod provider;
pub mod resources;
mod route;
mod router;

pub use provider::{
    ConfigError, GatewayRef, LinkerdBackend, MeshProvider, RouterOptions, router_for,
};
pub use route::{
    MirrorShare, MirrorShareError, RequestMatch, Route, RouteError, ValueMatch, WeightError,
    Weights,
};
pub use router::{
    FIELD_MANAGER, Feature, HttpRouteRouter, IstioRouter, RouteChange, RouterError, SmiRouter,
    TrafficRouter,
};
