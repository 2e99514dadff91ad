use super::*;
use serde_json::json;

const T0: &str = "2024-01-01T00:00:00Z";
const T1: &str = "2024-01-01T00:01:00Z";

fn request<'a>(
    live: Option<&'a Value>,
    applied: &'a Value,
    manager: &'a str,
    force: bool,
) -> ApplyRequest<'a> {
    ApplyRequest {
        live,
        applied,
        manager,
        force,
        subresource: None,
        now: T1,
        api_version: "apps/v1",
        kind: "Deployment",
    }
}

fn deployment(spec: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
}

fn entries(object: &Value) -> Vec<Value> {
    object["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn entry<'a>(object: &'a Value, manager: &str, operation: &str) -> Option<&'a Value> {
    object["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == operation)
}

fn created_by_update(spec: Value, manager: &str) -> Value {
    let mut object = deployment(spec);
    record_update(None, &mut object, manager, None, T0, "apps/v1");
    object
}

#[test]
fn apply_creates_with_an_apply_entry() {
    let config = deployment(
        json!({"replicas": 2, "template": {"spec": {"containers": [{"name": "app", "image": "nginx"}]}}}),
    );
    let created = apply(ApplyRequest {
        now: T0,
        ..request(None, &config, "kubectl", false)
    })
    .unwrap();
    assert_eq!(created["spec"], config["spec"]);
    assert_eq!(
        entries(&created),
        vec![json!({
            "manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1", "time": T0, "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}}
        })]
    );
}

#[test]
fn reapplying_without_a_field_removes_it() {
    let first = deployment(json!({"replicas": 2, "paused": true}));
    let live = apply(request(None, &first, "ci", false)).unwrap();
    let second = deployment(json!({"replicas": 2}));
    let after = apply(request(Some(&live), &second, "ci", false)).unwrap();
    assert_eq!(after["spec"], json!({"replicas": 2}));
    let mut third = deployment(json!({}));
    third.as_object_mut().unwrap().remove("spec");
    let empty = apply(request(Some(&after), &third, "ci", false)).unwrap();
    assert!(
        empty.get("spec").is_none(),
        "a struct nobody owns anything in goes too: {empty}"
    );
    assert!(entries(&empty).is_empty());
    assert_eq!(empty["metadata"]["name"], "web");
}

#[test]
fn fields_another_manager_owns_survive_removal_from_the_config() {
    let first = deployment(json!({"replicas": 2, "paused": true}));
    let live = apply(request(None, &first, "ci", false)).unwrap();
    let same = deployment(json!({"paused": true}));
    let shared = apply(request(Some(&live), &same, "other", false)).unwrap();
    let dropped = deployment(json!({"replicas": 2}));
    let after = apply(request(Some(&shared), &dropped, "ci", false)).unwrap();
    assert_eq!(after["spec"]["paused"], true);
    assert_eq!(
        entry(&after, "other", "Apply").unwrap()["fieldsV1"],
        json!({"f:spec": {"f:paused": {}}})
    );
}

#[test]
fn conflict_with_an_updater_names_it_and_its_version() {
    let live = created_by_update(json!({"replicas": 1}), "kubectl");
    let config = deployment(json!({"replicas": 3}));
    let err = apply(request(Some(&live), &config, "ci", false)).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "kubectl" using apps/v1: .spec.replicas"#
    );
    let ApplyError::Conflict { conflicts } = err else {
        panic!("not a conflict")
    };
    assert_eq!(conflicts[0].manager, "kubectl");
    assert_eq!(conflicts[0].field, ".spec.replicas");
    assert_eq!(
        conflicts[0].cause_message(),
        r#"conflict with "kubectl" using apps/v1"#
    );
}

#[test]
fn same_value_is_shared_without_conflict() {
    let live = created_by_update(json!({"replicas": 1}), "kubectl");
    let config = deployment(json!({"replicas": 1}));
    let after = apply(request(Some(&live), &config, "ci", false)).unwrap();
    assert_eq!(
        entry(&after, "kubectl", "Update").unwrap()["fieldsV1"],
        json!({"f:spec": {"f:replicas": {}}})
    );
    assert_eq!(
        entry(&after, "ci", "Apply").unwrap()["fieldsV1"],
        json!({"f:spec": {"f:replicas": {}}})
    );
    assert_eq!(
        entry(&after, "kubectl", "Update").unwrap()["time"],
        T0,
        "unchanged entries keep their time"
    );
}

#[test]
fn force_moves_ownership() {
    let live = created_by_update(json!({"replicas": 1, "paused": false}), "kubectl");
    let config = deployment(json!({"replicas": 3}));
    let after = apply(request(Some(&live), &config, "ci", true)).unwrap();
    assert_eq!(after["spec"]["replicas"], 3);
    assert_eq!(
        entry(&after, "kubectl", "Update").unwrap()["fieldsV1"],
        json!({"f:spec": {"f:paused": {}}})
    );
    assert_eq!(
        entry(&after, "ci", "Apply").unwrap()["fieldsV1"],
        json!({"f:spec": {"f:replicas": {}}})
    );
    // The forced field is now the applier's: the updater no longer conflicts with it.
    let again = deployment(json!({"replicas": 4}));
    assert!(apply(request(Some(&after), &again, "ci", false)).is_ok());
}

#[test]
fn several_conflicts_are_listed_per_manager() {
    let mut live = created_by_update(json!({"replicas": 1, "paused": false}), "kubectl");
    let applied = apply(request(
        Some(&live),
        &deployment(json!({"minReadySeconds": 5})),
        "argo",
        false,
    ))
    .unwrap();
    live = applied;
    let config = deployment(json!({"replicas": 3, "paused": true, "minReadySeconds": 9}));
    let err = apply(request(Some(&live), &config, "ci", false)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 3 conflicts: conflicts with \"argo\":\n- .spec.minReadySeconds\nconflicts with \"kubectl\" using apps/v1:\n- .spec.paused\n- .spec.replicas"
    );
}

#[test]
fn containers_merge_by_name_and_keep_other_managers_items() {
    let config =
        deployment(json!({"template": {"spec": {"containers": [{"name": "app", "image": "v1"}]}}}));
    let live = apply(request(None, &config, "ci", false)).unwrap();
    let mut injected = live.clone();
    injected["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "sidecar", "image": "proxy"}));
    record_update(Some(&live), &mut injected, "injector", None, T1, "apps/v1");
    assert_eq!(
        entry(&injected, "injector", "Update").unwrap()["fieldsV1"],
        json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"sidecar\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}})
    );
    let upgrade =
        deployment(json!({"template": {"spec": {"containers": [{"name": "app", "image": "v2"}]}}}));
    let after = apply(request(Some(&injected), &upgrade, "ci", false)).unwrap();
    assert_eq!(
        after["spec"]["template"]["spec"]["containers"],
        json!([{"name": "app", "image": "v2"}, {"name": "sidecar", "image": "proxy"}])
    );
}

#[test]
fn status_subresource_is_tracked_separately() {
    let live = apply(request(
        None,
        &deployment(json!({"replicas": 1})),
        "ci",
        false,
    ))
    .unwrap();
    let mut status = deployment(json!({"replicas": 99}));
    status["status"] = json!({"readyReplicas": 1});
    let after = apply(ApplyRequest {
        subresource: Some("status"),
        ..request(Some(&live), &status, "controller", false)
    })
    .unwrap();
    assert_eq!(
        after["spec"]["replicas"], 1,
        "the status endpoint ignores spec"
    );
    assert_eq!(after["status"]["readyReplicas"], 1);
    let entry = entry(&after, "controller", "Apply").unwrap();
    assert_eq!(entry["subresource"], "status");
    assert_eq!(
        entry["fieldsV1"],
        json!({"f:status": {"f:readyReplicas": {}}})
    );
}

#[test]
fn noop_apply_keeps_the_entry_time() {
    let config = deployment(json!({"replicas": 1}));
    let live = apply(ApplyRequest {
        now: T0,
        ..request(None, &config, "ci", false)
    })
    .unwrap();
    let again = apply(request(Some(&live), &config, "ci", false)).unwrap();
    assert_eq!(again, live);
    // Dropping a field someone else still owns changes ownership only: the time moves on.
    let both = deployment(json!({"replicas": 1, "paused": true}));
    let live2 = apply(ApplyRequest {
        now: T0,
        ..request(Some(&live), &both, "ci", false)
    })
    .unwrap();
    let paused = deployment(json!({"paused": true}));
    let shared = apply(ApplyRequest {
        now: T0,
        ..request(Some(&live2), &paused, "other", false)
    })
    .unwrap();
    let after = apply(request(Some(&shared), &config, "ci", false)).unwrap();
    assert_eq!(after["spec"], shared["spec"]);
    assert_eq!(entry(&after, "ci", "Apply").unwrap()["time"], T1);
    assert_eq!(entry(&after, "other", "Apply").unwrap()["time"], T0);
    let mut labels = deployment(json!({"replicas": 1}));
    labels["metadata"]["labels"] = json!({"a": "b"});
    let relabelled = apply(request(Some(&live), &labels, "ci", false)).unwrap();
    assert_eq!(entry(&relabelled, "ci", "Apply").unwrap()["time"], T1);
}

#[test]
fn bad_configurations_are_rejected_with_server_messages() {
    let mut with_fields = deployment(json!({}));
    with_fields["metadata"]["managedFields"] = json!([]);
    assert_eq!(
        apply(request(None, &with_fields, "ci", false)).unwrap_err(),
        ApplyError::ManagedFieldsNotNil
    );
    let mut other_version = deployment(json!({}));
    other_version["apiVersion"] = json!("apps/v1beta1");
    assert_eq!(
        apply(request(None, &other_version, "ci", false))
            .unwrap_err()
            .to_string(),
        "Incorrect version specified in apply patch. Specified patch version: apps/v1beta1, expected: apps/v1"
    );
    assert!(matches!(
        apply(request(None, &json!([1]), "ci", false)),
        Err(ApplyError::NotAnObject { found: "array" })
    ));
}

#[test]
fn first_apply_to_untracked_object_credits_before_first_apply() {
    let live = deployment(json!({"replicas": 1, "paused": true}));
    let err = apply(request(
        Some(&live),
        &deployment(json!({"replicas": 2})),
        "ci",
        false,
    ))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "before-first-apply" using apps/v1: .spec.replicas"#
    );
}

#[test]
fn update_on_create_tracks_new_maps_with_dot() {
    let mut cr = json!({"apiVersion": "demo.io/v1", "kind": "Canary", "metadata": {"name": "c", "labels": {"a": "b"}},
        "spec": {"steps": [1, 2]}});
    record_update(None, &mut cr, "kubectl-create", None, T0, "demo.io/v1");
    assert_eq!(
        entries(&cr),
        vec![json!({
            "manager": "kubectl-create", "operation": "Update", "apiVersion": "demo.io/v1", "time": T0, "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:a": {}}}, "f:spec": {".": {}, "f:steps": {}}}
        })]
    );
    let created = created_by_update(json!({"replicas": 1}), "kubectl");
    assert_eq!(
        entry(&created, "kubectl", "Update").unwrap()["fieldsV1"],
        json!({"f:spec": {"f:replicas": {}}}),
        "built-in structs exist in the empty object"
    );
}

#[test]
fn updates_accumulate_per_manager_and_version() {
    let live = created_by_update(json!({"replicas": 1}), "kubectl");
    let mut next = live.clone();
    next["spec"]["paused"] = json!(true);
    record_update(Some(&live), &mut next, "kubectl", None, T1, "apps/v1");
    let entry = entry(&next, "kubectl", "Update").unwrap();
    assert_eq!(
        entry["fieldsV1"],
        json!({"f:spec": {"f:replicas": {}, "f:paused": {}}})
    );
    assert_eq!(entry["time"], T1);
    // A write that changes nothing leaves the entries alone.
    let mut same = next.clone();
    record_update(
        Some(&next),
        &mut same,
        "other",
        None,
        "2030-01-01T00:00:00Z",
        "apps/v1",
    );
    assert_eq!(same, next);
}

#[test]
fn updates_take_fields_from_other_managers_and_removals_drop_ownership() {
    let live = apply(request(
        None,
        &deployment(json!({"replicas": 1, "paused": true})),
        "ci",
        false,
    ))
    .unwrap();
    let mut next = live.clone();
    next["spec"]["replicas"] = json!(5);
    next["spec"].as_object_mut().unwrap().remove("paused");
    record_update(Some(&live), &mut next, "hpa", None, T1, "autoscaling/v2");
    assert!(entry(&next, "ci", "Apply").is_none(), "ci lost both fields");
    assert_eq!(
        entry(&next, "hpa", "Update").unwrap()["apiVersion"],
        "autoscaling/v2"
    );
}

#[test]
fn managed_fields_sent_by_the_client_win_and_can_be_reset() {
    let live = created_by_update(json!({"replicas": 1}), "kubectl");
    let mut reset = live.clone();
    reset["metadata"]["managedFields"] = json!([{}]);
    reset["spec"]["replicas"] = json!(2);
    record_update(Some(&live), &mut reset, "editor", None, T1, "apps/v1");
    assert_eq!(entries(&reset).len(), 1);
    assert_eq!(entries(&reset)[0]["manager"], "editor");
    // Through a subresource the request's managedFields are ignored.
    let mut status = live.clone();
    status["metadata"]["managedFields"] = json!([{}]);
    status["status"] = json!({"replicas": 1});
    record_update(
        Some(&live),
        &mut status,
        "controller",
        Some("status"),
        T1,
        "apps/v1",
    );
    assert_eq!(
        entry(&status, "kubectl", "Update").unwrap()["fieldsV1"],
        json!({"f:spec": {"f:replicas": {}}})
    );
    assert_eq!(
        entry(&status, "controller", "Update").unwrap()["subresource"],
        "status"
    );
}

#[test]
fn finalizers_are_a_set_and_owner_references_keyed_by_uid() {
    let mut config = deployment(json!({}));
    config["metadata"]["finalizers"] = json!(["a.io/x"]);
    config["metadata"]["ownerReferences"] =
        json!([{"apiVersion": "v1", "kind": "X", "name": "o", "uid": "u1"}]);
    let created = apply(request(None, &config, "ci", false)).unwrap();
    let fields = &entry(&created, "ci", "Apply").unwrap()["fieldsV1"]["f:metadata"];
    assert_eq!(fields["f:finalizers"], json!({"v:\"a.io/x\"": {}}));
    assert_eq!(
        fields["f:ownerReferences"]["k:{\"uid\":\"u1\"}"]["."],
        json!({})
    );
    let mut other = deployment(json!({}));
    other["metadata"]["finalizers"] = json!(["b.io/y"]);
    let both = apply(request(Some(&created), &other, "gc", false)).unwrap();
    assert_eq!(both["metadata"]["finalizers"], json!(["a.io/x", "b.io/y"]));
}

#[test]
fn custom_resource_lists_follow_the_schema() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "routes": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["host"],
            "items": {"type": "object", "properties": {"host": {"type": "string"}, "weight": {"type": "integer"}}}}}}}});
    let cr = |routes: Value| json!({"apiVersion": "demo.io/v1", "kind": "Route", "metadata": {"name": "r"}, "spec": {"routes": routes}});
    let req = |live, applied, manager| ApplyRequest {
        live,
        applied,
        manager,
        force: false,
        subresource: None,
        now: T0,
        api_version: "demo.io/v1",
        kind: "Route",
    };
    let a = cr(json!([{"host": "a", "weight": 1}]));
    let live = apply_with_schema(req(None, &a, "team-a"), Some(&schema)).unwrap();
    let b = cr(json!([{"host": "b", "weight": 2}]));
    let both = apply_with_schema(req(Some(&live), &b, "team-b"), Some(&schema)).unwrap();
    assert_eq!(
        both["spec"]["routes"],
        json!([{"host": "a", "weight": 1}, {"host": "b", "weight": 2}])
    );
    // Without the schema the list is atomic: team-b would replace it and conflict.
    let atomic = apply(req(None, &a, "team-a")).unwrap();
    assert_eq!(
        entry(&atomic, "team-a", "Apply").unwrap()["fieldsV1"],
        json!({"f:spec": {"f:routes": {}}})
    );
    let err = apply(req(Some(&atomic), &b, "team-b")).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "team-a": .spec.routes"#
    );
}

#[test]
fn old_updaters_merge_into_ancient_changes() {
    let mut live = created_by_update(json!({"replicas": 1}), "m00");
    for i in 1..=11 {
        let mut next = live.clone();
        next["spec"][format!("f{i}")] = json!(i);
        let time = format!("2024-01-01T00:{i:02}:00Z");
        record_update(
            Some(&live),
            &mut next,
            &format!("m{i:02}"),
            None,
            &time,
            "apps/v1",
        );
        live = next;
    }
    let managers: Vec<String> = entries(&live)
        .iter()
        .map(|e| e["manager"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(managers.len(), 10, "{managers:?}");
    let ancient = entry(&live, "ancient-changes", "Update").unwrap();
    assert_eq!(
        ancient["fieldsV1"],
        json!({"f:spec": {"f:replicas": {}, "f:f1": {}, "f:f2": {}}})
    );
    assert_eq!(ancient["time"], "2024-01-01T00:02:00Z");
    assert!(!managers.contains(&"m00".to_string()) && !managers.contains(&"m02".to_string()));
    assert!(managers.contains(&"m11".to_string()));
}

#[test]
fn list_items_without_their_key_are_refused() {
    let config = deployment(
        json!({"template": {"spec": {"containers": [{"name": "a"}, {"image": "x",
        "ports": [{"containerPort": 80}]}]}}}),
    );
    let err = apply(request(None, &config, "ci", false)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed to create typed patch object (apps/v1, Kind=Deployment): .spec.template.spec.containers: element 1: associative list with keys has an element that omits key field \"name\" (and doesn't have default value)"
    );
    assert_eq!(err.status_code(), 500);
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "a", "ports": [{"protocol": "UDP"}]}]}});
    let req = ApplyRequest {
        api_version: "v1",
        kind: "Pod",
        ..request(None, &pod, "ci", false)
    };
    assert_eq!(
        apply(req).unwrap_err().to_string(),
        "failed to create typed patch object (/v1, Kind=Pod): .spec.containers[name=\"a\"].ports: element 0: associative list with keys has an element that omits key field \"containerPort\" (and doesn't have default value)"
    );
}

/// Every update the in-place path answers must come out as the full bookkeeping would have it.
#[test]
fn steady_updates_match_the_full_bookkeeping() {
    let config_map = |data: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"}, "data": data});
    let record =
        |old: Option<&Value>, mut new: Value, manager: &str, sub: Option<&str>, now: &str| {
            let mut full = new.clone();
            record_update(old, &mut new, manager, sub, now, "v1");
            let shape = shape("v1", "ConfigMap", None);
            let empty = empty_like(&full, true);
            let comparison = compare(Some(old.unwrap_or(&empty)), Some(&full), &shape);
            let sent = full.pointer("/metadata/managedFields").cloned();
            record_update_in_full(
                old,
                &mut full,
                sent.as_ref(),
                &comparison,
                (manager, "v1", sub),
                now,
            );
            assert_eq!(new, full, "{manager} writing at {now}");
            new
        };
    let with_entries = |object: &Value, data: Value| {
        let mut next = config_map(data);
        next["metadata"]["managedFields"] = object["metadata"]["managedFields"].clone();
        next
    };
    let created = record(
        None,
        config_map(json!({"a": "1", "b": "1"})),
        "ctl",
        None,
        T0,
    );
    // The creator changes its own field: only its time moves.
    let own = record(
        Some(&created),
        with_entries(&created, json!({"a": "2", "b": "1"})),
        "ctl",
        None,
        T1,
    );
    assert_eq!(entry(&own, "ctl", "Update").unwrap()["time"], T1);
    // Another manager takes a field, then the creator changes the field it kept.
    let taken = record(
        Some(&own),
        with_entries(&own, json!({"a": "3", "b": "1"})),
        "other",
        None,
        "2024-01-01T00:02:00Z",
    );
    assert_eq!(entries(&taken).len(), 2);
    let kept = record(
        Some(&taken),
        with_entries(&taken, json!({"a": "3", "b": "2"})),
        "ctl",
        None,
        "2024-01-01T00:03:00Z",
    );
    assert_eq!(
        entries(&kept)[1]["manager"],
        "ctl",
        "the latest writer sorts last"
    );
    // A no-op write, a removal of an owned field, and a subresource write.
    let same = record(
        Some(&kept),
        with_entries(&kept, json!({"a": "3", "b": "2"})),
        "ctl",
        None,
        "2024-01-01T00:04:00Z",
    );
    assert_eq!(entries(&same), entries(&kept));
    let removed = record(
        Some(&same),
        with_entries(&same, json!({"a": "3"})),
        "ctl",
        None,
        "2024-01-01T00:05:00Z",
    );
    assert!(
        entries(&removed)
            .iter()
            .all(|e| e["fieldsV1"]["f:data"].get("f:b").is_none())
    );
    let mut status = with_entries(&removed, json!({"a": "3"}));
    status["status"] = json!({"ready": true});
    record(
        Some(&removed),
        status,
        "ctl",
        Some("status"),
        "2024-01-01T00:06:00Z",
    );
}
