use autopilot_mesh::resources::gateway::HttpRoute;
use autopilot_mesh::{
    GatewayRef, MeshProvider, MirrorShare, RequestMatch, RouterOptions, ValueMatch, Weights,
};
use serde_json::json;

use crate::cluster::{APP, assert_invalid_weights_write_nothing, routed, shift_weights, weights};

fn behind_gateway() -> RouterOptions {
    RouterOptions::default().with_gateway(GatewayRef::new("ingress", "public"))
}

/// A backend as the cluster stores it: with the schema's defaults for `group` and `kind`.
fn backend(name: &str, weight: u32) -> serde_json::Value {
    json!({"group": "", "kind": "Service", "name": name, "port": 9898, "weight": weight})
}

/// The match a rule without matches gets by default: every path.
fn any_path() -> serde_json::Value {
    json!({"type": "PathPrefix", "value": "/"})
}

#[tokio::test]
async fn gateway_api_shifts_weights_keeps_user_fields_and_is_collected_with_its_owner() {
    let (c, router) = routed(MeshProvider::GatewayApi, behind_gateway()).await;
    let (primary, canary) = (c.route.primary_service(), c.route.canary_service());

    assert_eq!(router.ensure(&c.route).await.unwrap(), Weights::PRIMARY);
    let route = c.json::<HttpRoute>(APP).await;
    assert_eq!(
        route["spec"]["parentRefs"],
        json!([{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "public", "namespace": "ingress"}])
    );
    assert_eq!(
        route["spec"]["rules"],
        json!([{"matches": [{"path": any_path()}], "backendRefs": [backend(&primary, 100), backend(&canary, 0)]}])
    );
    c.assert_owned::<HttpRoute>(APP).await;

    shift_weights(&*router, &c.route).await;

    // A user applies timeouts on our rule, a rule of their own, and hostnames.
    let mut rules = c.json::<HttpRoute>(APP).await["spec"]["rules"].clone();
    rules[0]["timeouts"] = json!({"request": "10s"});
    let docs = json!({"matches": [{"path": {"type": "PathPrefix", "value": "/docs"}}],
        "backendRefs": [{"name": "docs", "port": 80}]});
    let rules = json!([rules[0], docs]);
    c.user_apply::<HttpRoute>(
        APP,
        json!({"rules": rules, "hostnames": ["shop.example.com"]}),
    )
    .await;

    assert_eq!(
        router.set_weights(&c.route, 60, 40).await.unwrap(),
        weights(60, 40)
    );
    let route = c.json::<HttpRoute>(APP).await;
    assert_eq!(
        route["spec"]["rules"][0]["timeouts"],
        json!({"request": "10s"})
    );
    assert_eq!(
        route["spec"]["rules"][0]["backendRefs"],
        json!([backend(&primary, 60), backend(&canary, 40)])
    );
    // The user's rule, as stored: with the schema's defaults for its backend.
    let mut stored_docs = docs.clone();
    stored_docs["backendRefs"] =
        json!([{"group": "", "kind": "Service", "name": "docs", "port": 80, "weight": 1}]);
    assert_eq!(route["spec"]["rules"][1], stored_docs);
    assert_eq!(route["spec"]["hostnames"], json!(["shop.example.com"]));

    assert_invalid_weights_write_nothing::<HttpRoute>(&c, &*router).await;

    // Mirroring is a RequestMirror filter on our rule, next to the user's own filters.
    let header_filter = json!({"type": "RequestHeaderModifier",
        "requestHeaderModifier": {"set": [{"name": "x-env", "value": "prod"}]}});
    let mut rules = c.json::<HttpRoute>(APP).await["spec"]["rules"].clone();
    rules[0]["filters"] = json!([header_filter]);
    c.user_edit::<HttpRoute>(APP, json!({"spec": {"rules": rules}}))
        .await;
    let share = MirrorShare::new(12.5).unwrap();
    router.set_mirror(&c.route, Some(share)).await.unwrap();
    let filters = &c.json::<HttpRoute>(APP).await["spec"]["rules"][0]["filters"];
    assert_eq!(
        filters,
        &json!([header_filter, {"type": "RequestMirror", "requestMirror": {
            "backendRef": {"group": "", "kind": "Service", "name": canary, "port": 9898},
            "fraction": {"numerator": 1250, "denominator": 10000},
        }}])
    );
    router
        .set_mirror(&c.route, Some(MirrorShare::new(30.0).unwrap()))
        .await
        .unwrap();
    let filters = &c.json::<HttpRoute>(APP).await["spec"]["rules"][0]["filters"];
    assert_eq!(filters[1]["requestMirror"]["percent"], 30);
    assert_eq!(filters.as_array().unwrap().len(), 2);

    router.reset(&c.route).await.unwrap();
    assert_eq!(router.weights(&c.route).await.unwrap(), Weights::PRIMARY);
    assert_eq!(
        c.json::<HttpRoute>(APP).await["spec"]["rules"][0]["timeouts"]["request"],
        "10s"
    );

    c.delete_owner().await;
    c.wait_until_collected::<HttpRoute>(&[APP.to_owned()]).await;
}

#[tokio::test]
async fn gateway_api_routes_matching_requests_to_the_canary() {
    let (c, router) = routed(MeshProvider::GatewayApi, behind_gateway()).await;
    let (primary, canary) = (c.route.primary_service(), c.route.canary_service());

    let matches = [
        RequestMatch::header("x-canary", ValueMatch::Exact("insider".into())),
        RequestMatch::cookie("canary", "always"),
    ];
    router.set_matches(&c.route, &matches).await.unwrap();
    router.set_weights(&c.route, 90, 10).await.unwrap();
    let route = c.json::<HttpRoute>(APP).await;
    assert_eq!(
        route["spec"]["rules"],
        json!([
            {
                "matches": [{"headers": [
                    {"type": "Exact", "name": "x-canary", "value": "insider"},
                    {"type": "RegularExpression", "name": "cookie", "value": "^(.*?;\\s*)?(canary=always)(;.*)?$"},
                ], "path": any_path()}],
                "backendRefs": [backend(&canary, 100)],
            },
            {"matches": [{"path": any_path()}], "backendRefs": [backend(&primary, 90), backend(&canary, 10)]},
        ])
    );

    router.set_matches(&c.route, &[]).await.unwrap();
    let route = c.json::<HttpRoute>(APP).await;
    assert_eq!(
        route["spec"]["rules"],
        json!([{"matches": [{"path": any_path()}], "backendRefs": [backend(&primary, 90), backend(&canary, 10)]}])
    );
}
