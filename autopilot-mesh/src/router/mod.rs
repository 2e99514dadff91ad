//! The [`TrafficRouter`] trait and what its implementations share.

use async_trait::async_trait;

use crate::provider::MeshProvider;
use crate::route::{MirrorShare, RequestMatch, Route, WeightError, Weights};

mod apply;
pub(crate) mod httproute;
pub(crate) mod istio;
pub(crate) mod smi;

pub use apply::FIELD_MANAGER;
pub(crate) use apply::Writer;
pub use httproute::HttpRouteRouter;
pub use istio::IstioRouter;
pub use smi::SmiRouter;

/// A change to an app's routing. Every change first creates missing routing objects.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum RouteChange {
    /// Only create what is missing; an existing split is kept.
    Ensure,
    /// Split traffic between primary and canary.
    Weights(Weights),
    /// Send requests matching all the conditions to the canary; an empty list removes the match route.
    Matches(Vec<RequestMatch>),
    /// Copy a share of the primary's requests to the canary, or stop copying (`None`).
    Mirror(Option<MirrorShare>),
    /// All traffic to the primary, no match route, no mirroring.
    Reset,
}

/// A routing feature that not every mesh offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Feature {
    /// Routing requests by header or cookie (A/B testing).
    RequestMatching,
    /// Copying requests to the canary.
    Mirroring,
}

impl std::fmt::Display for Feature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Feature::RequestMatching => "header/cookie request matching",
            Feature::Mirroring => "traffic mirroring",
        })
    }
}

/// Drives the traffic split of apps on one mesh.
///
/// Implementations write with server-side apply under one field manager ([`FIELD_MANAGER`] unless
/// configured otherwise), put the route's owner reference on every object, and keep fields they do not
/// manage (retries, timeouts, other routes) as they are. Arguments are validated before anything is
/// written.
///
/// Get one for the configured mesh with [`router_for`](crate::router_for):
///
/// ```no_run
/// # async fn demo(client: kube::Client) -> Result<(), Box<dyn std::error::Error>> {
/// use autopilot_mesh::{MeshProvider, Route, RouterOptions, router_for};
///
/// let provider: MeshProvider = "istio".parse()?;
/// let router = router_for(provider, client, RouterOptions::default())?;
/// let route = Route::new("shop", "podinfo", 9898);
/// router.ensure(&route).await?;
/// router.set_weights(&route, 90, 10).await?;
/// assert_eq!(router.weights(&route).await?.canary(), 10);
/// router.reset(&route).await?;
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait TrafficRouter: Send + Sync + std::fmt::Debug {
    /// The mesh this router writes for.
    fn provider(&self) -> MeshProvider;

    /// Whether this router offers `feature`.
    fn supports(&self, feature: Feature) -> bool;

    /// The current split, read from the cluster.
    async fn weights(&self, route: &Route) -> Result<Weights, RouterError>;

    /// Applies `change` and returns the split in effect afterwards.
    async fn apply(&self, route: &Route, change: RouteChange) -> Result<Weights, RouterError>;

    /// Creates the routing objects that are missing (all traffic to the primary when new) and returns
    /// the split in effect.
    async fn ensure(&self, route: &Route) -> Result<Weights, RouterError> {
        self.apply(route, RouteChange::Ensure).await
    }

    /// Sends `primary` percent of traffic to the primary and `canary` percent to the canary.
    ///
    /// Fails with [`RouterError::InvalidWeights`], writing nothing, unless both are in 0..=100 and sum
    /// to 100.
    async fn set_weights(
        &self,
        route: &Route,
        primary: u32,
        canary: u32,
    ) -> Result<Weights, RouterError> {
        let weights = Weights::new(primary, canary)?;
        self.apply(route, RouteChange::Weights(weights)).await
    }

    /// Sends requests matching all `matches` to the canary (A/B testing); the rest follow the split.
    /// An empty list removes the match route.
    async fn set_matches(
        &self,
        route: &Route,
        matches: &[RequestMatch],
    ) -> Result<(), RouterError> {
        self.apply(route, RouteChange::Matches(matches.to_vec()))
            .await
            .map(drop)
    }

    /// Copies `share` of the primary's requests to the canary, or stops copying (`None`).
    async fn set_mirror(
        &self,
        route: &Route,
        share: Option<MirrorShare>,
    ) -> Result<(), RouterError> {
        self.apply(route, RouteChange::Mirror(share))
            .await
            .map(drop)
    }

    /// All traffic back to the primary: no canary share, no match route, no mirroring.
    async fn reset(&self, route: &Route) -> Result<(), RouterError> {
        self.apply(route, RouteChange::Reset).await.map(drop)
    }
}

/// Why a routing operation failed.
#[derive(thiserror::Error, Debug)]
pub enum RouterError {
    /// The requested split is invalid; nothing was written.
    #[error("invalid traffic split")]
    InvalidWeights(#[from] WeightError),
    /// The mesh cannot do what was asked; nothing was written.
    #[error("{provider} routing does not support {feature}")]
    Unsupported {
        /// The mesh.
        provider: MeshProvider,
        /// What it lacks.
        feature: Feature,
    },
    /// The routing object exists but has no primary/canary route (someone removed it).
    #[error("{kind} {namespace}/{name} has no route to {service}")]
    MissingRoute {
        /// Kind of the routing object.
        kind: String,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The service a route was expected for.
        service: String,
    },
    /// The routing object does not exist.
    #[error("{kind} {namespace}/{name} not found")]
    NotFound {
        /// Kind of the routing object.
        kind: String,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// A request to the API server failed.
    #[error("{verb} {kind} {namespace}/{name} failed")]
    Api {
        /// `get` or `apply`.
        verb: &'static str,
        /// Kind of the routing object.
        kind: String,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The client's error.
        #[source]
        source: Box<kube::Error>,
    },
}

impl RouterError {
    /// The `kind` object of `route` lacks the route to `<app>-primary`.
    pub(crate) fn missing_route(kind: &str, route: &Route) -> Self {
        Self::MissingRoute {
            kind: kind.to_owned(),
            namespace: route.namespace.clone(),
            name: route.app.clone(),
            service: route.primary_service(),
        }
    }

    /// Whether this error came from the requested change itself (invalid or unsupported), so retrying
    /// the same call cannot succeed.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::InvalidWeights(_) | Self::Unsupported { .. })
    }
}

/// Rejects changes `router` does not support, before anything is written.
pub(crate) fn check_supported(
    router: &dyn TrafficRouter,
    change: &RouteChange,
) -> Result<(), RouterError> {
    let needed = match change {
        RouteChange::Matches(m) if !m.is_empty() => Some(Feature::RequestMatching),
        RouteChange::Mirror(Some(_)) => Some(Feature::Mirroring),
        _ => None,
    };
    match needed {
        Some(feature) if !router.supports(feature) => Err(RouterError::Unsupported {
            provider: router.provider(),
            feature,
        }),
        _ => Ok(()),
    }
}
