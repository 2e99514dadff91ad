//! Istio routing: a VirtualService `<app>` whose weighted route splits between the hosts
//! `<app>-primary` and `<app>-canary`, each with a DestinationRule of the same name.

use async_trait::async_trait;
use kube::Client;

use super::{Feature, RouteChange, RouterError, TrafficRouter, Writer, check_supported};
use crate::provider::MeshProvider;
use crate::resources::istio::{
    Destination, DestinationRule, DestinationRuleSpec, HttpMatchRequest, HttpRoute,
    HttpRouteDestination, Percent, PortSelector, StringMatch, VirtualService, VirtualServiceSpec,
};
use crate::route::{RequestMatch, Route, ValueMatch, Weights};

/// Routes with Istio `networking.istio.io/v1` objects.
///
/// Of the VirtualService it writes `hosts` (adding `<app>`) and `http`; other fields (`gateways`,
/// `tcp`, ...) stay with whoever set them. Within `http` it manages the weighted route (the one with
/// a destination `<app>-primary`, appended when missing) and the A/B route in front of it (matches,
/// all traffic to `<app>-canary`); other routes, and other fields of its own routes (`retries`,
/// `timeout`, `fault`, ...), are carried over unchanged. Of each DestinationRule it writes only `host`.
///
/// ```no_run
/// # async fn demo(client: kube::Client) -> Result<(), Box<dyn std::error::Error>> {
/// use autopilot_mesh::{IstioRouter, MirrorShare, RequestMatch, Route, TrafficRouter};
///
/// let router = IstioRouter::new(client, "autopilot");
/// let route = Route::new("shop", "podinfo", 9898);
/// router.ensure(&route).await?; // VirtualService podinfo, DestinationRules podinfo-{primary,canary}
/// router.set_mirror(&route, Some(MirrorShare::new(50.0)?)).await?;
/// router.set_matches(&route, &[RequestMatch::cookie("canary", "always")]).await?;
/// router.set_weights(&route, 80, 20).await?;
/// router.reset(&route).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct IstioRouter {
    writer: Writer,
}

impl IstioRouter {
    /// A router applying as `field_manager`.
    pub fn new(client: Client, field_manager: impl Into<String>) -> Self {
        Self {
            writer: Writer::new(client, field_manager),
        }
    }

    async fn ensure_destination_rules(&self, route: &Route) -> Result<(), RouterError> {
        for host in [route.primary_service(), route.canary_service()] {
            let spec = DestinationRuleSpec {
                host: host.clone(),
                ..Default::default()
            };
            self.writer
                .apply(route, &host, |_| DestinationRule::new(&host, spec.clone()))
                .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl TrafficRouter for IstioRouter {
    fn provider(&self) -> MeshProvider {
        MeshProvider::Istio
    }

    fn supports(&self, feature: Feature) -> bool {
        match feature {
            Feature::RequestMatching | Feature::Mirroring => true,
        }
    }

    async fn weights(&self, route: &Route) -> Result<Weights, RouterError> {
        let vs: VirtualService = self.writer.get_existing(route, &route.app).await?;
        read_weights(&vs, route)
    }

    async fn apply(&self, route: &Route, change: RouteChange) -> Result<Weights, RouterError> {
        check_supported(self, &change)?;
        let exists = self
            .writer
            .get::<VirtualService>(route, &route.app)
            .await?
            .is_some();
        if !exists || matches!(change, RouteChange::Ensure | RouteChange::Reset) {
            self.ensure_destination_rules(route).await?;
        }
        let applied = self
            .writer
            .apply(route, &route.app, |current: Option<&VirtualService>| {
                let spec = edit(current.map(|vs| &vs.spec), route, &change);
                VirtualService::new(&route.app, spec)
            })
            .await?;
        read_weights(&applied, route)
    }
}

/// The part of the VirtualService we apply: `hosts` and `http` after `change`.
pub(crate) fn edit(
    current: Option<&VirtualServiceSpec>,
    route: &Route,
    change: &RouteChange,
) -> VirtualServiceSpec {
    let mut hosts = current.map(|s| s.hosts.clone()).unwrap_or_default();
    if !hosts.iter().any(|h| is_host(h, &route.app)) {
        hosts.push(route.app.clone());
    }
    let mut http = current.map(|s| s.http.clone()).unwrap_or_default();
    if !http.iter().any(|r| is_weighted(r, route)) {
        http.push(HttpRoute {
            route: split(&[], route, Weights::PRIMARY),
            ..Default::default()
        });
    }
    let mut new_matches = None;
    for weighted in http.iter_mut().filter(|r| is_weighted(r, route)) {
        match change {
            RouteChange::Ensure => {}
            RouteChange::Weights(w) => weighted.route = split(&weighted.route, route, *w),
            RouteChange::Matches(conditions) => new_matches = Some(conditions.as_slice()),
            RouteChange::Mirror(share) => set_mirror(weighted, route, share.map(|s| s.percent())),
            RouteChange::Reset => {
                weighted.route = split(&weighted.route, route, Weights::PRIMARY);
                set_mirror(weighted, route, None);
                new_matches = Some(&[]);
            }
        }
    }
    if let Some(conditions) = new_matches {
        http.retain(|r| !is_match_route(r, route));
        if !conditions.is_empty() {
            // In front of the weighted route, so matching requests never reach the split.
            let at = http.iter().position(|r| is_weighted(r, route)).unwrap_or(0);
            http.insert(at, match_route(conditions, route));
        }
    }
    VirtualServiceSpec {
        hosts,
        http,
        ..Default::default()
    }
}

/// The split of the weighted route.
fn read_weights(vs: &VirtualService, route: &Route) -> Result<Weights, RouterError> {
    let weighted = vs
        .spec
        .http
        .iter()
        .find(|r| is_weighted(r, route))
        .ok_or_else(|| RouterError::missing_route("VirtualService", route))?;
    // A lone destination takes everything whatever its weight says.
    let weight_of = |host: &str| -> i64 {
        weighted
            .route
            .iter()
            .filter(|d| is_host(&d.destination.host, host))
            .map(|d| match (weighted.route.len(), d.weight) {
                (1, _) => 100,
                (_, weight) => weight.unwrap_or(0).into(),
            })
            .sum()
    };
    let weights = Weights::from_relative(
        weight_of(&route.primary_service()),
        weight_of(&route.canary_service()),
    )?;
    Ok(weights)
}

/// Destinations `<app>-primary` and `<app>-canary` with `weights`, keeping what `existing` entries for
/// them carry (subset, header changes); destinations of other hosts are dropped.
fn split(
    existing: &[HttpRouteDestination],
    route: &Route,
    weights: Weights,
) -> Vec<HttpRouteDestination> {
    [
        (route.primary_service(), weights.primary()),
        (route.canary_service(), weights.canary()),
    ]
    .into_iter()
    .map(|(host, weight)| {
        let mut entry = existing
            .iter()
            .find(|d| is_host(&d.destination.host, &host))
            .cloned()
            .unwrap_or_else(|| HttpRouteDestination {
                destination: destination(&host, route),
                ..Default::default()
            });
        entry.weight = Some(weight as i32);
        entry
    })
    .collect()
}

fn set_mirror(weighted: &mut HttpRoute, route: &Route, percent: Option<f64>) {
    match percent {
        Some(value) => {
            weighted.mirror = Some(destination(&route.canary_service(), route));
            weighted.mirror_percentage = Some(Percent { value });
        }
        None => {
            let ours = weighted
                .mirror
                .as_ref()
                .is_some_and(|m| is_host(&m.host, &route.canary_service()));
            if ours {
                weighted.mirror = None;
                weighted.mirror_percentage = None;
            }
        }
    }
}

/// The A/B route: requests matching all `conditions` go to the canary.
fn match_route(conditions: &[RequestMatch], route: &Route) -> HttpRoute {
    let headers = conditions
        .iter()
        .map(|c| {
            let (name, value) = c.as_header();
            let condition = match value {
                ValueMatch::Exact(v) => StringMatch {
                    exact: Some(v),
                    ..Default::default()
                },
                ValueMatch::Prefix(v) => StringMatch {
                    prefix: Some(v),
                    ..Default::default()
                },
                ValueMatch::Regex(v) => StringMatch {
                    regex: Some(v),
                    ..Default::default()
                },
            };
            (name, condition)
        })
        .collect();
    HttpRoute {
        matches: vec![HttpMatchRequest {
            headers,
            ..Default::default()
        }],
        route: vec![HttpRouteDestination {
            destination: destination(&route.canary_service(), route),
            weight: Some(100),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn destination(host: &str, route: &Route) -> Destination {
    Destination {
        host: host.to_owned(),
        subset: None,
        port: Some(PortSelector {
            number: route.port.into(),
        }),
    }
}

fn is_weighted(r: &HttpRoute, route: &Route) -> bool {
    let primary = route.primary_service();
    r.route
        .iter()
        .any(|d| is_host(&d.destination.host, &primary))
}

fn is_match_route(r: &HttpRoute, route: &Route) -> bool {
    let canary = route.canary_service();
    !r.matches.is_empty()
        && !r.route.is_empty()
        && r.route
            .iter()
            .all(|d| is_host(&d.destination.host, &canary))
}

/// Whether `host` names the service `service` (short name or any longer form of it).
fn is_host(host: &str, service: &str) -> bool {
    host == service
        || host
            .strip_prefix(service)
            .is_some_and(|rest| rest.starts_with('.'))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::route::MirrorShare;

    fn route() -> Route {
        Route::new("shop", "podinfo", 9898)
    }

    fn spec(value: serde_json::Value) -> VirtualServiceSpec {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_new_virtual_service_sends_everything_to_the_primary() {
        let spec = edit(None, &route(), &RouteChange::Ensure);
        assert_eq!(spec.hosts, ["podinfo"]);
        assert_eq!(spec.http.len(), 1);
        let weights: Vec<_> = spec.http[0].route.iter().map(|d| d.weight).collect();
        assert_eq!(weights, [Some(100), Some(0)]);
    }

    #[test]
    fn weights_change_only_our_destinations_and_keep_the_rest_in_place() {
        let current = spec(json!({
            "hosts": ["podinfo.shop.svc.cluster.local"],
            "gateways": ["mesh"],
            "http": [
                {"match": [{"uri": {"prefix": "/legacy"}}], "route": [{"destination": {"host": "legacy"}}]},
                {"route": [
                    {"destination": {"host": "podinfo-primary.shop.svc.cluster.local", "subset": "stable"}, "weight": 100},
                    {"destination": {"host": "podinfo-canary"}, "weight": 0},
                ], "retries": {"attempts": 3}, "fault": {"abort": {"httpStatus": 503}}},
            ],
        }));
        let weights = Weights::new(60, 40).unwrap();
        let edited = edit(Some(&current), &route(), &RouteChange::Weights(weights));
        // The FQDN names the apex service, so no short host is added; gateways are not ours to send.
        assert_eq!(edited.hosts, ["podinfo.shop.svc.cluster.local"]);
        assert!(edited.gateways.is_empty());
        assert_eq!(edited.http[0], current.http[0]);
        let ours = &edited.http[1];
        assert_eq!(ours.retries, current.http[1].retries);
        assert_eq!(ours.extra, current.http[1].extra);
        assert_eq!(ours.route[0].destination.subset.as_deref(), Some("stable"));
        assert_eq!(
            (ours.route[0].weight, ours.route[1].weight),
            (Some(60), Some(40))
        );
    }

    #[test]
    fn the_match_route_goes_in_front_and_reset_removes_it_and_the_mirror() {
        let r = route();
        let matches = RouteChange::Matches(vec![RequestMatch::header(
            "x-canary",
            ValueMatch::Exact("1".into()),
        )]);
        let with_match = edit(None, &r, &matches);
        assert!(is_match_route(&with_match.http[0], &r));
        assert!(is_weighted(&with_match.http[1], &r));

        let mirrored = edit(
            Some(&with_match),
            &r,
            &RouteChange::Mirror(Some(MirrorShare::ALL)),
        );
        assert_eq!(mirrored.http.len(), 2, "the match route is kept");
        assert_eq!(
            mirrored.http[1].mirror.as_ref().unwrap().host,
            "podinfo-canary"
        );

        let reset = edit(Some(&mirrored), &r, &RouteChange::Reset);
        assert_eq!(reset.http.len(), 1);
        assert!(reset.http[0].mirror.is_none());
    }

    #[test]
    fn hosts_match_short_and_qualified_names_only() {
        assert!(is_host("podinfo-primary", "podinfo-primary"));
        assert!(is_host("podinfo-primary.shop.svc", "podinfo-primary"));
        assert!(!is_host("podinfo-primary-old", "podinfo-primary"));
    }
}
