use autopilot_mesh::resources::gateway::HttpRoute;
use autopilot_mesh::{
    Feature, MeshProvider, MirrorShare, RequestMatch, RouteChange, RouterOptions, ValueMatch,
    Weights,
};
use serde_json::json;

use crate::cluster::{
    APP, PORT, assert_invalid_weights_write_nothing, assert_unsupported_writes_nothing, routed,
    shift_weights,
};

#[tokio::test]
async fn linkerd_attaches_an_http_route_to_the_apex_service() {
    let (c, router) = routed(MeshProvider::Linkerd, RouterOptions::default()).await;
    assert_eq!(router.provider(), MeshProvider::Linkerd);

    assert_eq!(router.ensure(&c.route).await.unwrap(), Weights::PRIMARY);
    let route = c.json::<HttpRoute>(APP).await;
    assert_eq!(
        route["spec"]["parentRefs"],
        json!([{"group": "core", "kind": "Service", "name": APP, "port": PORT}])
    );
    c.assert_owned::<HttpRoute>(APP).await;

    shift_weights(&*router, &c.route).await;

    let mut rules = c.json::<HttpRoute>(APP).await["spec"]["rules"].clone();
    rules[0]["timeouts"] = json!({"request": "5s", "backendRequest": "1s"});
    c.user_edit::<HttpRoute>(APP, json!({"spec": {"rules": rules}}))
        .await;
    router
        .set_matches(
            &c.route,
            &[RequestMatch::header(
                "x-canary",
                ValueMatch::Regex("^(yes|1)$".into()),
            )],
        )
        .await
        .unwrap();
    router.set_weights(&c.route, 50, 50).await.unwrap();
    let route = c.json::<HttpRoute>(APP).await;
    let rules = route["spec"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0]["matches"][0]["headers"][0]["value"], "^(yes|1)$");
    assert_eq!(
        rules[1]["timeouts"],
        json!({"request": "5s", "backendRequest": "1s"})
    );
    assert_eq!(rules[1]["backendRefs"][1]["weight"], 50);

    assert_invalid_weights_write_nothing::<HttpRoute>(&c, &*router).await;

    // Linkerd has no request mirroring.
    let mirror = RouteChange::Mirror(Some(MirrorShare::ALL));
    assert_unsupported_writes_nothing::<HttpRoute>(&c, &*router, mirror, Feature::Mirroring).await;

    router.reset(&c.route).await.unwrap();
    let route = c.json::<HttpRoute>(APP).await;
    assert_eq!(route["spec"]["rules"].as_array().unwrap().len(), 1);
    assert_eq!(route["spec"]["rules"][0]["timeouts"]["request"], "5s");

    c.delete_owner().await;
    c.wait_until_collected::<HttpRoute>(&[APP.to_owned()]).await;
}
