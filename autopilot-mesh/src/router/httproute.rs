//! Gateway API routing: an HTTPRoute `<app>` whose weighted rule splits between the Services
//! `<app>-primary` and `<app>-canary`, attached to a Gateway or (Linkerd) to the apex Service.

use async_trait::async_trait;
use kube::Client;
use serde_json::json;

use super::{Feature, RouteChange, RouterError, TrafficRouter, Writer, check_supported};
use crate::provider::{GatewayRef, MeshProvider};
use crate::resources::gateway::{
    HttpBackendRef, HttpHeaderMatch, HttpRoute, HttpRouteFilter, HttpRouteMatch, HttpRouteRule,
    HttpRouteSpec, ParentReference,
};
use crate::route::{MirrorShare, RequestMatch, Route, ValueMatch, Weights};

/// What the HTTPRoute attaches to.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Parent {
    /// A Gateway (north-south traffic).
    Gateway(GatewayRef),
    /// The apex Service itself (mesh traffic, as Linkerd ≥ 2.12 routes it).
    ApexService,
}

/// Routes with a `gateway.networking.k8s.io/v1` HTTPRoute.
///
/// It writes `parentRefs` (adding its parent) and `rules`; `hostnames` and other fields stay with
/// whoever set them. Within `rules` it manages the weighted rule (the one with a backend
/// `<app>-primary`, appended when missing) and the A/B rule (header matches, all traffic to
/// `<app>-canary`); other rules, and other fields of its own rules (`timeouts`, `filters`, ...), are
/// carried over unchanged. Attached to a Gateway it mirrors with a `RequestMirror` filter on the
/// weighted rule (percentage-based mirroring, Gateway API ≥ 1.3); Linkerd does not mirror.
///
/// For a Gateway:
///
/// ```no_run
/// # async fn demo(client: kube::Client) -> Result<(), Box<dyn std::error::Error>> {
/// use autopilot_mesh::{GatewayRef, HttpRouteRouter, RequestMatch, Route, TrafficRouter, ValueMatch};
///
/// let router = HttpRouteRouter::gateway(client, "autopilot", GatewayRef::new("ingress", "public"));
/// let route = Route::new("shop", "podinfo", 9898);
/// router.ensure(&route).await?;
/// router.set_matches(&route, &[RequestMatch::header("x-canary", ValueMatch::Exact("yes".into()))]).await?;
/// router.set_weights(&route, 90, 10).await?;
/// # Ok(())
/// # }
/// ```
///
/// For Linkerd, attached to the apex Service `podinfo`:
///
/// ```no_run
/// # async fn demo(client: kube::Client) -> Result<(), Box<dyn std::error::Error>> {
/// use autopilot_mesh::{HttpRouteRouter, Route, TrafficRouter};
///
/// let router = HttpRouteRouter::linkerd(client, "autopilot");
/// let route = Route::new("shop", "podinfo", 9898);
/// router.set_weights(&route, 75, 25).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct HttpRouteRouter {
    writer: Writer,
    parent: Parent,
}

impl HttpRouteRouter {
    /// A router attaching routes to `gateway`, applying as `field_manager`.
    pub fn gateway(client: Client, field_manager: impl Into<String>, gateway: GatewayRef) -> Self {
        Self {
            writer: Writer::new(client, field_manager),
            parent: Parent::Gateway(gateway),
        }
    }

    /// A router for Linkerd, attaching routes to the app's apex Service, applying as `field_manager`.
    pub fn linkerd(client: Client, field_manager: impl Into<String>) -> Self {
        Self {
            writer: Writer::new(client, field_manager),
            parent: Parent::ApexService,
        }
    }

    fn parent_ref(&self, route: &Route) -> ParentReference {
        match &self.parent {
            Parent::Gateway(gateway) => ParentReference {
                name: gateway.name.clone(),
                namespace: gateway.namespace.clone(),
                section_name: gateway.section_name.clone(),
                ..Default::default()
            },
            // Linkerd documents `core` as the group of a Service parent.
            Parent::ApexService => ParentReference {
                group: Some("core".into()),
                kind: Some("Service".into()),
                name: route.apex_service().to_owned(),
                port: Some(route.port.into()),
                ..Default::default()
            },
        }
    }
}

#[async_trait]
impl TrafficRouter for HttpRouteRouter {
    fn provider(&self) -> MeshProvider {
        match self.parent {
            Parent::Gateway(_) => MeshProvider::GatewayApi,
            Parent::ApexService => MeshProvider::Linkerd,
        }
    }

    fn supports(&self, feature: Feature) -> bool {
        match feature {
            Feature::RequestMatching => true,
            Feature::Mirroring => matches!(self.parent, Parent::Gateway(_)),
        }
    }

    async fn weights(&self, route: &Route) -> Result<Weights, RouterError> {
        let object: HttpRoute = self.writer.get_existing(route, &route.app).await?;
        read_weights(&object, route)
    }

    async fn apply(&self, route: &Route, change: RouteChange) -> Result<Weights, RouterError> {
        check_supported(self, &change)?;
        let parent = self.parent_ref(route);
        let applied = self
            .writer
            .apply(route, &route.app, |current: Option<&HttpRoute>| {
                let spec = edit(current.map(|r| &r.spec), route, &parent, &change);
                HttpRoute::new(&route.app, spec)
            })
            .await?;
        read_weights(&applied, route)
    }
}

/// The part of the HTTPRoute we apply: `parentRefs` and `rules` after `change`.
fn edit(
    current: Option<&HttpRouteSpec>,
    route: &Route,
    parent: &ParentReference,
    change: &RouteChange,
) -> HttpRouteSpec {
    let mut parent_refs = current.map(|s| s.parent_refs.clone()).unwrap_or_default();
    if !parent_refs.iter().any(|p| same_parent(p, parent)) {
        parent_refs.push(parent.clone());
    }
    let mut rules = current.map(|s| s.rules.clone()).unwrap_or_default();
    if !rules.iter().any(|r| is_weighted(r, route)) {
        rules.push(HttpRouteRule {
            backend_refs: split(&[], route, Weights::PRIMARY),
            ..Default::default()
        });
    }
    let mut new_matches = None;
    for weighted in rules.iter_mut().filter(|r| is_weighted(r, route)) {
        match change {
            RouteChange::Weights(w) => {
                weighted.backend_refs = split(&weighted.backend_refs, route, *w);
            }
            RouteChange::Matches(conditions) => new_matches = Some(conditions.as_slice()),
            RouteChange::Mirror(share) => set_mirror(weighted, route, *share),
            RouteChange::Reset => {
                weighted.backend_refs = split(&weighted.backend_refs, route, Weights::PRIMARY);
                set_mirror(weighted, route, None);
                new_matches = Some(&[]);
            }
            RouteChange::Ensure => {}
        }
    }
    if let Some(conditions) = new_matches {
        rules.retain(|r| !is_match_rule(r, route));
        if !conditions.is_empty() {
            // Rules are ranked by match specificity, not order; in front only for readability.
            let at = rules
                .iter()
                .position(|r| is_weighted(r, route))
                .unwrap_or(0);
            rules.insert(at, match_rule(conditions, route));
        }
    }
    HttpRouteSpec {
        parent_refs,
        rules,
        ..Default::default()
    }
}

fn read_weights(object: &HttpRoute, route: &Route) -> Result<Weights, RouterError> {
    let weighted = object
        .spec
        .rules
        .iter()
        .find(|r| is_weighted(r, route))
        .ok_or_else(|| RouterError::missing_route("HTTPRoute", route))?;
    // Weights are relative and default to 1; a lone backend takes everything.
    let weight_of = |service: &str| -> i64 {
        weighted
            .backend_refs
            .iter()
            .filter(|b| is_service(b, service))
            .map(|b| match weighted.backend_refs.len() {
                1 => 1,
                _ => b.weight.unwrap_or(1).into(),
            })
            .sum()
    };
    Ok(Weights::from_relative(
        weight_of(&route.primary_service()),
        weight_of(&route.canary_service()),
    )?)
}

/// Backends `<app>-primary` and `<app>-canary` with `weights`, keeping what `existing` refs to them
/// carry (per-backend filters); other backends are dropped.
fn split(existing: &[HttpBackendRef], route: &Route, weights: Weights) -> Vec<HttpBackendRef> {
    [
        (route.primary_service(), weights.primary()),
        (route.canary_service(), weights.canary()),
    ]
    .into_iter()
    .map(|(service, weight)| {
        let mut backend = existing
            .iter()
            .find(|b| is_service(b, &service))
            .cloned()
            .unwrap_or_else(|| backend(&service, route));
        backend.weight = Some(weight as i32);
        backend
    })
    .collect()
}

/// Replaces our `RequestMirror` filter (the one copying to `<app>-canary`) by one for `share`, or
/// removes it.
fn set_mirror(weighted: &mut HttpRouteRule, route: &Route, share: Option<MirrorShare>) {
    let canary = route.canary_service();
    weighted.filters.retain(|f| {
        let target = f
            .extra
            .get("requestMirror")
            .and_then(|m| m.pointer("/backendRef/name"));
        !(f.filter_type == "RequestMirror" && target.and_then(|t| t.as_str()) == Some(&canary))
    });
    if let Some(share) = share {
        let percent = share.percent();
        let amount = if percent.fract() == 0.0 {
            ("percent", json!(percent as u32))
        } else {
            // Fractions of a percent need the fraction form (basis points here).
            let numerator = (percent * 100.0).round() as u32;
            (
                "fraction",
                json!({"numerator": numerator, "denominator": 10000}),
            )
        };
        let mut mirror = serde_json::Map::new();
        mirror.insert(
            "backendRef".into(),
            json!({"name": canary, "port": route.port}),
        );
        mirror.insert(amount.0.into(), amount.1);
        weighted.filters.push(HttpRouteFilter {
            filter_type: "RequestMirror".into(),
            extra: [("requestMirror".to_owned(), mirror.into())].into(),
        });
    }
}

/// The A/B rule: requests matching all `conditions` go to the canary.
fn match_rule(conditions: &[RequestMatch], route: &Route) -> HttpRouteRule {
    let headers = conditions
        .iter()
        .map(|c| {
            let (name, value) = c.as_header();
            let (match_type, value) = match value {
                ValueMatch::Exact(v) => ("Exact", v),
                // Gateway API has no prefix match for headers.
                other => ("RegularExpression", other.to_regex()),
            };
            HttpHeaderMatch {
                match_type: Some(match_type.into()),
                name,
                value,
            }
        })
        .collect();
    let mut canary = backend(&route.canary_service(), route);
    canary.weight = Some(100);
    HttpRouteRule {
        matches: vec![HttpRouteMatch {
            headers,
            ..Default::default()
        }],
        backend_refs: vec![canary],
        ..Default::default()
    }
}

fn backend(service: &str, route: &Route) -> HttpBackendRef {
    HttpBackendRef {
        name: service.to_owned(),
        port: Some(route.port.into()),
        ..Default::default()
    }
}

fn is_service(backend: &HttpBackendRef, service: &str) -> bool {
    backend.name == service
        && backend.kind.as_deref().unwrap_or("Service") == "Service"
        && is_core(backend.group.as_deref())
}

/// Whether `group` names the core API group (empty, unset, or `core` as Linkerd writes it).
fn is_core(group: Option<&str>) -> bool {
    matches!(group, None | Some("" | "core"))
}

fn is_weighted(rule: &HttpRouteRule, route: &Route) -> bool {
    let primary = route.primary_service();
    rule.backend_refs.iter().any(|b| is_service(b, &primary))
}

fn is_match_rule(rule: &HttpRouteRule, route: &Route) -> bool {
    let canary = route.canary_service();
    !rule.matches.iter().all(|m| m.headers.is_empty())
        && !rule.backend_refs.is_empty()
        && rule.backend_refs.iter().all(|b| is_service(b, &canary))
}

/// Whether two parent references name the same parent, reading unset fields as the API server
/// defaults them (kind `Gateway` in group `gateway.networking.k8s.io`).
fn same_parent(a: &ParentReference, b: &ParentReference) -> bool {
    fn kind_and_group(p: &ParentReference) -> (&str, &str) {
        let kind = p.kind.as_deref().unwrap_or("Gateway");
        let group = match p.group.as_deref() {
            None if kind == "Gateway" => "gateway.networking.k8s.io",
            Some(group) if !is_core(Some(group)) => group,
            _ => "",
        };
        (kind, group)
    }
    a.name == b.name
        && a.namespace == b.namespace
        && kind_and_group(a) == kind_and_group(b)
        && a.section_name == b.section_name
        && a.port == b.port
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn route() -> Route {
        Route::new("shop", "podinfo", 9898)
    }

    fn gateway() -> ParentReference {
        ParentReference {
            name: "public".into(),
            namespace: Some("ingress".into()),
            ..Default::default()
        }
    }

    #[test]
    fn weights_change_only_our_backends_and_keep_other_rules_and_parents() {
        let current: HttpRouteSpec = serde_json::from_value(json!({
            "parentRefs": [{"name": "internal"}],
            "hostnames": ["shop.example.com"],
            "rules": [
                {"matches": [{"path": {"type": "PathPrefix", "value": "/docs"}}], "backendRefs": [{"name": "docs", "port": 80}]},
                {"backendRefs": [
                    {"name": "podinfo-primary", "port": 9898, "filters": [{"type": "RequestHeaderModifier"}]},
                    {"name": "podinfo-canary", "port": 9898},
                ], "timeouts": {"request": "10s"}},
            ],
        }))
        .unwrap();
        let change = RouteChange::Weights(Weights::new(30, 70).unwrap());
        let edited = edit(Some(&current), &route(), &gateway(), &change);
        assert_eq!(edited.parent_refs.len(), 2);
        assert!(
            edited.hostnames.is_empty(),
            "hostnames are not ours to send"
        );
        assert_eq!(edited.rules[0], current.rules[0]);
        let ours = &edited.rules[1];
        assert_eq!(ours.timeouts, current.rules[1].timeouts);
        assert!(ours.backend_refs[0].extra.contains_key("filters"));
        let weights: Vec<_> = ours.backend_refs.iter().map(|b| b.weight).collect();
        assert_eq!(weights, [Some(30), Some(70)]);
        // Unset weights count as 1 each, so the stored split reads as half and half.
        let object = HttpRoute::new("podinfo", current);
        assert_eq!(
            read_weights(&object, &route()).unwrap(),
            Weights::new(50, 50).unwrap()
        );
    }

    #[test]
    fn references_defaulted_by_the_server_are_recognised() {
        let stored: HttpRouteSpec = serde_json::from_value(json!({
            "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "public", "namespace": "ingress"}],
            "rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "backendRefs": [
                    {"group": "", "kind": "Service", "name": "podinfo-primary", "port": 9898, "weight": 80},
                    {"group": "", "kind": "Service", "name": "podinfo-canary", "port": 9898, "weight": 20},
                ],
            }],
        }))
        .unwrap();
        let edited = edit(Some(&stored), &route(), &gateway(), &RouteChange::Ensure);
        assert_eq!(edited.parent_refs, stored.parent_refs);
        assert_eq!(edited.rules, stored.rules);
        let service_parent = |group: Option<&str>| ParentReference {
            group: group.map(Into::into),
            kind: Some("Service".into()),
            name: "podinfo".into(),
            ..Default::default()
        };
        assert!(same_parent(
            &service_parent(Some("core")),
            &service_parent(Some(""))
        ));
        assert!(!same_parent(&service_parent(None), &gateway()));
    }

    #[test]
    fn prefix_header_matches_become_regular_expressions() {
        let change = RouteChange::Matches(vec![RequestMatch::header(
            "x-group",
            ValueMatch::Prefix("beta".into()),
        )]);
        let edited = edit(None, &route(), &gateway(), &change);
        assert!(is_match_rule(&edited.rules[0], &route()));
        let header = &edited.rules[0].matches[0].headers[0];
        assert_eq!(header.match_type.as_deref(), Some("RegularExpression"));
        assert_eq!(header.value, "^beta.*");
        let reset = edit(Some(&edited), &route(), &gateway(), &RouteChange::Reset);
        assert_eq!(reset.rules.len(), 1);
    }
}
