//! YAML in the shape of each project's documentation → typed → YAML/JSON keeps every field.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use autopilot_mesh::resources::{gateway, istio, smi};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Parses `yaml` as `K`, writes it back as JSON and as YAML, and checks both equal the input.
fn round_trip<K: DeserializeOwned + Serialize>(yaml: &str) -> K {
    let original: Value = serde_saphyr::from_str(yaml).unwrap();
    let typed: K = serde_saphyr::from_str(yaml).unwrap();

    let as_json = serde_json::to_value(&typed).unwrap();
    assert_eq!(as_json, original, "JSON after the round-trip differs");

    let as_yaml = serde_saphyr::to_string(&typed).unwrap();
    let reparsed: Value = serde_saphyr::from_str(&as_yaml).unwrap();
    assert_eq!(
        reparsed, original,
        "YAML after the round-trip differs:\n{as_yaml}"
    );
    typed
}

#[test]
fn virtual_service_keeps_unknown_fields() {
    let vs: istio::VirtualService = round_trip(include_str!("fixtures/virtualservice.yaml"));
    let weighted = &vs.spec.http[1];
    assert_eq!(weighted.route[0].weight, Some(75));
    assert_eq!(weighted.retries.as_ref().unwrap().attempts, Some(3));
    assert_eq!(weighted.timeout.as_deref(), Some("10s"));
    assert_eq!(weighted.mirror_percentage.as_ref().unwrap().value, 50.5);
    // Modelled elsewhere than in the typed fields, still there:
    assert!(weighted.extra.contains_key("corsPolicy"));
    assert!(vs.spec.http[0].extra.contains_key("fault"));
    assert!(
        vs.spec.http[0].matches[0]
            .extra
            .contains_key("ignoreUriCase")
    );
    assert!(vs.spec.http[0].route[0].extra.contains_key("headers"));
    assert!(vs.spec.extra.contains_key("tcp"));
    assert!(vs.status.is_some());
}

#[test]
fn destination_rule_keeps_unknown_fields() {
    let dr: istio::DestinationRule = round_trip(include_str!("fixtures/destinationrule.yaml"));
    assert_eq!(dr.spec.host, "ratings.prod.svc.cluster.local");
    assert_eq!(dr.spec.subsets[0].labels["version"], "v3");
    assert!(dr.spec.extra.contains_key("workloadSelector"));
}

#[test]
fn traffic_split_v1alpha2_keeps_unknown_fields() {
    let split: smi::TrafficSplit = round_trip(include_str!("fixtures/trafficsplit-v1alpha2.yaml"));
    assert_eq!(split.spec.backends[0].weight, 90);
    assert!(split.spec.extra.contains_key("matches"));
}

#[test]
fn traffic_split_v1alpha1_reads_quantity_weights() {
    let split: smi::v1alpha1::TrafficSplit =
        round_trip(include_str!("fixtures/trafficsplit-v1alpha1.yaml"));
    assert_eq!(split.spec.backends[0].weight.0, "900m");
}

#[test]
fn http_route_keeps_unknown_fields() {
    let route: gateway::HttpRoute = round_trip(include_str!("fixtures/httproute.yaml"));
    let rules = &route.spec.rules;
    assert_eq!(rules[1].backend_refs[1].weight, Some(10));
    assert_eq!(
        rules[1].timeouts.as_ref().unwrap().request.as_deref(),
        Some("10s")
    );
    assert_eq!(rules[0].matches[0].headers[0].name, "x-canary");
    assert!(rules[0].matches[0].extra.contains_key("queryParams"));
    assert!(
        rules[0].filters[0]
            .extra
            .contains_key("requestHeaderModifier")
    );
    assert!(rules[0].backend_refs[0].extra.contains_key("filters"));
    assert!(rules[1].extra.contains_key("sessionPersistence"));
    assert_eq!(route.spec.parent_refs[1].kind.as_deref(), Some("Service"));
}

#[test]
fn typed_changes_leave_unknown_fields_in_place() {
    let mut vs: istio::VirtualService =
        serde_saphyr::from_str(include_str!("fixtures/virtualservice.yaml")).unwrap();
    vs.spec.http[1].route[0].weight = Some(50);
    vs.spec.http[1].route[1].weight = Some(50);
    let json = serde_json::to_value(&vs).unwrap();
    assert_eq!(json["spec"]["http"][1]["route"][1]["weight"], 50);
    assert_eq!(
        json["spec"]["http"][1]["corsPolicy"]["allowMethods"][0],
        "GET"
    );
    assert_eq!(
        json["spec"]["tcp"][0]["route"][0]["destination"]["port"]["number"],
        5555
    );
}
