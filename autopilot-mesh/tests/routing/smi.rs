use autopilot_mesh::resources::smi::TrafficSplit;
use autopilot_mesh::{
    Feature, LinkerdBackend, MeshProvider, MirrorShare, RequestMatch, RouteChange, RouterOptions,
    Weights,
};
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::cluster::{
    APP, assert_invalid_weights_write_nothing, assert_unsupported_writes_nothing, routed,
    shift_weights, weights,
};

#[tokio::test]
async fn smi_shifts_weights_keeps_user_fields_and_is_collected_with_its_owner() {
    let (c, router) = routed(MeshProvider::Smi, RouterOptions::default()).await;
    let (primary, canary) = (c.route.primary_service(), c.route.canary_service());

    assert_eq!(router.ensure(&c.route).await.unwrap(), Weights::PRIMARY);
    let split = c.json::<TrafficSplit>(APP).await;
    assert_eq!(split["apiVersion"], "split.smi-spec.io/v1alpha2");
    assert_eq!(
        split["spec"],
        json!({"service": APP, "backends": [
            {"service": primary, "weight": 100},
            {"service": canary, "weight": 0},
        ]})
    );
    c.assert_owned::<TrafficSplit>(APP).await;

    shift_weights(&*router, &c.route).await;

    let matches = json!([{"kind": "HTTPRouteGroup", "name": "ab-test"}]);
    c.user_edit::<TrafficSplit>(APP, json!({"spec": {"matches": matches}}))
        .await;
    assert_eq!(
        router.set_weights(&c.route, 30, 70).await.unwrap(),
        weights(30, 70)
    );
    let split = c.json::<TrafficSplit>(APP).await;
    assert_eq!(split["spec"]["matches"], matches);
    assert_eq!(
        split["spec"]["backends"][1],
        json!({"service": canary, "weight": 70})
    );

    assert_invalid_weights_write_nothing::<TrafficSplit>(&c, &*router).await;

    // No request matching or mirroring on TrafficSplit.
    let cookie = vec![RequestMatch::cookie("canary", "always")];
    let (matches_change, mirror) = (
        RouteChange::Matches(cookie),
        RouteChange::Mirror(Some(MirrorShare::ALL)),
    );
    assert_unsupported_writes_nothing::<TrafficSplit>(
        &c,
        &*router,
        matches_change,
        Feature::RequestMatching,
    )
    .await;
    assert_unsupported_writes_nothing::<TrafficSplit>(&c, &*router, mirror, Feature::Mirroring)
        .await;

    router.reset(&c.route).await.unwrap();
    assert_eq!(router.weights(&c.route).await.unwrap(), Weights::PRIMARY);
    assert_eq!(
        c.json::<TrafficSplit>(APP).await["spec"]["matches"],
        matches
    );

    c.delete_owner().await;
    c.wait_until_collected::<TrafficSplit>(&[APP.to_owned()])
        .await;
}

#[tokio::test]
async fn linkerd_can_route_with_a_traffic_split() {
    let options = RouterOptions::default().with_linkerd(LinkerdBackend::TrafficSplit);
    let (c, router) = routed(MeshProvider::Linkerd, options).await;
    assert_eq!(router.provider(), MeshProvider::Linkerd);
    shift_weights(&*router, &c.route).await;
    let split = c.json::<TrafficSplit>(APP).await;
    assert_eq!(split["spec"]["backends"][1]["weight"], 100);
}

#[tokio::test]
async fn weight_changes_racing_user_edits_all_land_and_lose_nothing() {
    let (c, router) = routed(MeshProvider::Smi, RouterOptions::default()).await;
    router.ensure(&c.route).await.unwrap();

    let api = c.api::<TrafficSplit>();
    let user = tokio::spawn(async move {
        for i in 0..20 {
            let patch = json!({"metadata": {"annotations": {format!("edit-{i}"): "done"}}});
            api.patch(APP, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap();
        }
    });
    // Each apply carries the resourceVersion it read; a stale one is retried, never lost.
    for canary in (0..=100).step_by(5) {
        router
            .set_weights(&c.route, 100 - canary, canary)
            .await
            .unwrap();
    }
    user.await.unwrap();

    assert_eq!(router.weights(&c.route).await.unwrap(), Weights::CANARY);
    let split = c.api::<TrafficSplit>().get(APP).await.unwrap();
    assert_eq!(split.metadata.annotations.unwrap().len(), 20);
}
