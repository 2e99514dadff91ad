//! Traffic routing for progressive delivery on Istio, Linkerd, SMI and Gateway API, behind one trait.
//!
//! A handler says how traffic for an app should be split between its stable version (Service
//! `<app>-primary`) and its new version (Service `<app>-canary`); the [`TrafficRouter`] for the
//! configured [`MeshProvider`] writes the mesh's own objects:
//!
//! | provider | objects |
//! |---|---|
//! | [`MeshProvider::Istio`] | VirtualService `<app>`, DestinationRules `<app>-primary` and `<app>-canary` |
//! | [`MeshProvider::Linkerd`] | HTTPRoute `<app>` attached to the Service `<app>` (or a TrafficSplit, see [`LinkerdBackend`]) |
//! | [`MeshProvider::Smi`] | TrafficSplit `<app>` |
//! | [`MeshProvider::GatewayApi`] | HTTPRoute `<app>` attached to a Gateway |
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> Result<(), Box<dyn std::error::Error>> {
//! use autopilot_mesh::{MeshProvider, Route, RouterOptions, router_for};
//!
//! let provider: MeshProvider = "linkerd".parse()?; // an unknown name is a ConfigError
//! let router = router_for(provider, client, RouterOptions::default())?;
//! let route = Route::new("shop", "podinfo", 9898);
//! for canary in [10, 20, 30] {
//!     router.set_weights(&route, 100 - canary, canary).await?;
//! }
//! router.reset(&route).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Objects are written with server-side apply under one field manager and carry the route's owner
//! reference ([`Route::owned_by`]), so deleting the owner garbage-collects them. Routers change only
//! their own entries in the mesh objects' lists and carry the rest over, so fields and routes that
//! users add survive every change. The typed resources in [`resources`] keep unknown fields, and
//! [`crds`] provides CRDs for them.

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
