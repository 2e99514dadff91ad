//! Choosing the router for the mesh named in the operator configuration.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use kube::Client;
use serde::{Deserialize, Serialize};

use crate::router::{FIELD_MANAGER, HttpRouteRouter, IstioRouter, SmiRouter, TrafficRouter};

/// The service mesh (or routing API) that carries the traffic, as named in the operator configuration.
///
/// ```
/// use autopilot_mesh::{ConfigError, MeshProvider};
///
/// assert_eq!("istio".parse::<MeshProvider>(), Ok(MeshProvider::Istio));
/// assert_eq!("GatewayAPI".parse::<MeshProvider>(), Ok(MeshProvider::GatewayApi));
/// assert_eq!("gateway-api".parse::<MeshProvider>(), Ok(MeshProvider::GatewayApi));
/// assert_eq!(MeshProvider::Linkerd.to_string(), "linkerd");
/// assert!(matches!("consul".parse::<MeshProvider>(), Err(ConfigError::UnknownProvider(p)) if p == "consul"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum MeshProvider {
    /// Istio: a VirtualService `<app>` and DestinationRules `<app>-primary`, `<app>-canary`.
    Istio,
    /// Linkerd ≥ 2.12: a Gateway API HTTPRoute `<app>` attached to the Service `<app>` (or an SMI
    /// TrafficSplit, see [`LinkerdBackend`]).
    Linkerd,
    /// Any SMI implementation: a TrafficSplit `<app>` (`split.smi-spec.io/v1alpha2`).
    Smi,
    /// A Gateway API implementation: an HTTPRoute `<app>` attached to the configured Gateway.
    #[serde(rename = "gatewayapi")]
    GatewayApi,
}

impl MeshProvider {
    /// Every provider, in the order the configuration documents them.
    pub const ALL: [MeshProvider; 4] = [Self::Istio, Self::Linkerd, Self::Smi, Self::GatewayApi];

    /// The configuration name: `istio`, `linkerd`, `smi` or `gatewayapi`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Istio => "istio",
            Self::Linkerd => "linkerd",
            Self::Smi => "smi",
            Self::GatewayApi => "gatewayapi",
        }
    }

    /// Whose telemetry the built-in success-rate and latency queries of `autopilot-metrics` read on
    /// this mesh; `None` for SMI, whose implementations export different metrics (configure queries
    /// yourself). Gateway API maps to the Envoy queries, which fit Envoy-based implementations.
    ///
    /// ```
    /// use autopilot_mesh::MeshProvider;
    /// use autopilot_metrics::{BuiltinMetric, Provider, Variables};
    ///
    /// let metrics = MeshProvider::Istio.metrics_provider().unwrap();
    /// assert_eq!(metrics, Provider::Istio);
    /// let query = metrics
    ///     .query(BuiltinMetric::RequestSuccessRate)
    ///     .render(&Variables::new().namespace("shop").target("podinfo").interval("1m"))?;
    /// assert!(query.contains("istio_requests_total"));
    /// assert_eq!(MeshProvider::Smi.metrics_provider(), None);
    /// # Ok::<(), autopilot_metrics::TemplateError>(())
    /// ```
    pub fn metrics_provider(&self) -> Option<autopilot_metrics::Provider> {
        use autopilot_metrics::Provider;
        match self {
            Self::Istio => Some(Provider::Istio),
            Self::Linkerd => Some(Provider::Linkerd),
            Self::GatewayApi => Some(Provider::Envoy),
            Self::Smi => None,
        }
    }
}

impl fmt::Display for MeshProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MeshProvider {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        // `gateway-api` is how the project itself spells it.
        let wanted = if wanted.eq_ignore_ascii_case("gateway-api") {
            "gatewayapi"
        } else {
            wanted
        };
        Self::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| ConfigError::UnknownProvider(s.to_owned()))
    }
}

impl TryFrom<String> for MeshProvider {
    type Error = ConfigError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// What Linkerd routing is written as.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LinkerdBackend {
    /// A `gateway.networking.k8s.io/v1` HTTPRoute whose parent is the apex Service (Linkerd ≥ 2.12;
    /// the only way without the linkerd-smi extension on current Linkerd, and it allows header
    /// matching).
    #[default]
    HttpRoute,
    /// An SMI TrafficSplit (needs the linkerd-smi extension on Linkerd ≥ 2.11).
    TrafficSplit,
}

/// The Gateway an HTTPRoute attaches to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GatewayRef {
    /// Gateway name.
    pub name: String,
    /// Gateway namespace; the route's own when `None`.
    pub namespace: Option<String>,
    /// Listener of the Gateway; all listeners when `None`.
    pub section_name: Option<String>,
}

impl GatewayRef {
    /// A Gateway in `namespace` named `name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            namespace: Some(namespace.into()),
            section_name: None,
        }
    }
}

/// Settings shared by all routers.
///
/// ```
/// use autopilot_mesh::{GatewayRef, RouterOptions};
///
/// let options = RouterOptions::default().with_gateway(GatewayRef::new("ingress", "public"));
/// assert_eq!(options.field_manager, "autopilot");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterOptions {
    /// Field manager of every server-side apply.
    pub field_manager: String,
    /// Gateway that HTTPRoutes attach to (required for [`MeshProvider::GatewayApi`]).
    pub gateway: Option<GatewayRef>,
    /// How Linkerd routing is written.
    pub linkerd: LinkerdBackend,
}

impl Default for RouterOptions {
    fn default() -> Self {
        Self {
            field_manager: FIELD_MANAGER.to_owned(),
            gateway: None,
            linkerd: LinkerdBackend::default(),
        }
    }
}

impl RouterOptions {
    /// The same options with HTTPRoutes attached to `gateway`.
    pub fn with_gateway(mut self, gateway: GatewayRef) -> Self {
        self.gateway = Some(gateway);
        self
    }

    /// The same options writing Linkerd routing as `backend`.
    pub fn with_linkerd(mut self, backend: LinkerdBackend) -> Self {
        self.linkerd = backend;
        self
    }
}

/// An invalid routing configuration.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The mesh provider string names no supported mesh.
    #[error("unknown mesh provider {0:?}: expected one of istio, linkerd, smi, gatewayapi")]
    UnknownProvider(String),
    /// The Gateway API provider needs a Gateway to attach routes to.
    #[error("the gatewayapi mesh provider needs a gateway to attach HTTPRoutes to")]
    MissingGateway,
}

/// The router for `provider`.
///
/// ```no_run
/// # async fn demo(client: kube::Client) -> Result<(), Box<dyn std::error::Error>> {
/// use autopilot_mesh::{GatewayRef, MeshProvider, RouterOptions, router_for};
///
/// let options = RouterOptions::default().with_gateway(GatewayRef::new("ingress", "public"));
/// let router = router_for(MeshProvider::GatewayApi, client, options)?;
/// assert_eq!(router.provider(), MeshProvider::GatewayApi);
/// # Ok(())
/// # }
/// ```
pub fn router_for(
    provider: MeshProvider,
    client: Client,
    options: RouterOptions,
) -> Result<Arc<dyn TrafficRouter>, ConfigError> {
    let manager = options.field_manager;
    Ok(match provider {
        MeshProvider::Istio => Arc::new(IstioRouter::new(client, manager)),
        MeshProvider::Smi => Arc::new(SmiRouter::new(client, manager, MeshProvider::Smi)),
        MeshProvider::Linkerd => match options.linkerd {
            LinkerdBackend::HttpRoute => Arc::new(HttpRouteRouter::linkerd(client, manager)),
            LinkerdBackend::TrafficSplit => {
                Arc::new(SmiRouter::new(client, manager, MeshProvider::Linkerd))
            }
        },
        MeshProvider::GatewayApi => {
            let gateway = options.gateway.ok_or(ConfigError::MissingGateway)?;
            Arc::new(HttpRouteRouter::gateway(client, manager, gateway))
        }
    })
}
