use autopilot_mesh::resources::istio::{DestinationRule, VirtualService};
use autopilot_mesh::{
    MeshProvider, MirrorShare, RequestMatch, RouterError, RouterOptions, ValueMatch, Weights,
};
use serde_json::json;

use crate::cluster::{APP, assert_invalid_weights_write_nothing, routed, shift_weights, weights};

fn destination(host: &str, weight: u32) -> serde_json::Value {
    json!({"destination": {"host": host, "port": {"number": 9898}}, "weight": weight})
}

#[tokio::test]
async fn istio_shifts_weights_keeps_user_fields_and_is_collected_with_its_owner() {
    let (c, router) = routed(MeshProvider::Istio, RouterOptions::default()).await;
    let (primary, canary) = (c.route.primary_service(), c.route.canary_service());

    assert_eq!(router.ensure(&c.route).await.unwrap(), Weights::PRIMARY);
    let vs = c.json::<VirtualService>(APP).await;
    assert_eq!(vs["spec"]["hosts"], json!([APP]));
    assert_eq!(
        vs["spec"]["http"],
        json!([{"route": [destination(&primary, 100), destination(&canary, 0)]}])
    );
    for name in [&primary, &canary] {
        let dr = c.json::<DestinationRule>(name).await;
        assert_eq!(dr["spec"]["host"], json!(name));
        c.assert_owned::<DestinationRule>(name).await;
    }
    c.assert_owned::<VirtualService>(APP).await;

    shift_weights(&*router, &c.route).await;

    // A user adds retries to our route, a route of their own in front, gateways, and a traffic policy.
    let mut http = c.json::<VirtualService>(APP).await["spec"]["http"].clone();
    http[0]["retries"] = json!({"attempts": 3, "perTryTimeout": "2s"});
    let legacy = json!({"match": [{"uri": {"prefix": "/legacy"}}], "route": [{"destination": {"host": "legacy"}}]});
    let http = json!([legacy, http[0]]);
    c.user_edit::<VirtualService>(
        APP,
        json!({"spec": {"http": http, "gateways": ["mesh", "ingress/public"]}}),
    )
    .await;
    let policy = json!({"loadBalancer": {"simple": "LEAST_REQUEST"}});
    c.user_edit::<DestinationRule>(&primary, json!({"spec": {"trafficPolicy": policy}}))
        .await;

    assert_eq!(
        router.set_weights(&c.route, 70, 30).await.unwrap(),
        weights(70, 30)
    );
    router.ensure(&c.route).await.unwrap();
    let vs = c.json::<VirtualService>(APP).await;
    assert_eq!(vs["spec"]["http"][0], legacy);
    assert_eq!(
        vs["spec"]["http"][1]["retries"],
        json!({"attempts": 3, "perTryTimeout": "2s"})
    );
    assert_eq!(
        vs["spec"]["http"][1]["route"],
        json!([destination(&primary, 70), destination(&canary, 30)])
    );
    assert_eq!(vs["spec"]["gateways"], json!(["mesh", "ingress/public"]));
    assert_eq!(
        c.json::<DestinationRule>(&primary).await["spec"]["trafficPolicy"],
        policy
    );

    assert_invalid_weights_write_nothing::<VirtualService>(&c, &*router).await;

    router.reset(&c.route).await.unwrap();
    assert_eq!(router.weights(&c.route).await.unwrap(), Weights::PRIMARY);
    let vs = c.json::<VirtualService>(APP).await;
    assert_eq!(vs["spec"]["http"][1]["retries"]["attempts"], 3);

    c.delete_owner().await;
    c.wait_until_collected::<VirtualService>(&[APP.to_owned()])
        .await;
    c.wait_until_collected::<DestinationRule>(&[primary, canary])
        .await;
}

#[tokio::test]
async fn istio_routes_matching_requests_and_mirrors_to_the_canary() {
    let (c, router) = routed(MeshProvider::Istio, RouterOptions::default()).await;
    let (primary, canary) = (c.route.primary_service(), c.route.canary_service());

    let matches = [
        RequestMatch::cookie("canary", "always"),
        RequestMatch::header("X-User", ValueMatch::Prefix("beta-".into())),
    ];
    router.set_matches(&c.route, &matches).await.unwrap();
    router.set_weights(&c.route, 80, 20).await.unwrap();
    let vs = c.json::<VirtualService>(APP).await;
    assert_eq!(
        vs["spec"]["http"],
        json!([
            {
                "match": [{"headers": {
                    "cookie": {"regex": "^(.*?;\\s*)?(canary=always)(;.*)?$"},
                    "x-user": {"prefix": "beta-"},
                }}],
                "route": [destination(&canary, 100)],
            },
            {"route": [destination(&primary, 80), destination(&canary, 20)]},
        ])
    );
    assert_eq!(router.weights(&c.route).await.unwrap(), weights(80, 20));

    router
        .set_mirror(&c.route, Some(MirrorShare::new(25.0).unwrap()))
        .await
        .unwrap();
    let weighted = &c.json::<VirtualService>(APP).await["spec"]["http"][1];
    assert_eq!(
        weighted["mirror"],
        json!({"host": canary, "port": {"number": 9898}})
    );
    assert_eq!(weighted["mirrorPercentage"], json!({"value": 25.0}));

    router.set_mirror(&c.route, None).await.unwrap();
    let weighted = &c.json::<VirtualService>(APP).await["spec"]["http"][1];
    assert!(weighted.get("mirror").is_none() && weighted.get("mirrorPercentage").is_none());

    router
        .set_mirror(&c.route, Some(MirrorShare::ALL))
        .await
        .unwrap();
    router.reset(&c.route).await.unwrap();
    let vs = c.json::<VirtualService>(APP).await;
    assert_eq!(
        vs["spec"]["http"],
        json!([{"route": [destination(&primary, 100), destination(&canary, 0)]}])
    );
}

#[tokio::test]
async fn istio_reports_missing_objects_and_routes_and_restores_them() {
    let (c, router) = routed(MeshProvider::Istio, RouterOptions::default()).await;
    let error = router.weights(&c.route).await.unwrap_err();
    assert!(matches!(error, RouterError::NotFound { ref kind, .. } if kind == "VirtualService"));

    router.set_weights(&c.route, 90, 10).await.unwrap();
    // Someone replaces the routes with their own: reading says so, ensuring brings ours back.
    let theirs = json!([{"route": [{"destination": {"host": "legacy"}}]}]);
    c.user_edit::<VirtualService>(APP, json!({"spec": {"http": theirs}}))
        .await;
    let error = router.weights(&c.route).await.unwrap_err();
    assert!(
        matches!(error, RouterError::MissingRoute { ref service, .. } if service == "podinfo-primary")
    );
    assert_eq!(router.ensure(&c.route).await.unwrap(), Weights::PRIMARY);
    let http = &c.json::<VirtualService>(APP).await["spec"]["http"];
    assert_eq!(http[0], theirs[0]);
    assert_eq!(http.as_array().unwrap().len(), 2);
}
