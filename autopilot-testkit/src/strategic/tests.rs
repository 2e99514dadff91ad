use super::*;
use serde_json::json;

fn patched(target: Value, patch: Value, kind: &str) -> Value {
    let mut target = target;
    let api_version = if kind == "Deployment" {
        "apps/v1"
    } else {
        "v1"
    };
    strategic_merge(&mut target, &patch, api_version, kind).unwrap();
    target
}

fn error(target: Value, patch: Value) -> StrategicMergeError {
    let mut target = target;
    strategic_merge(&mut target, &patch, "v1", "Pod").unwrap_err()
}

#[test]
fn maps_merge_and_null_deletes() {
    let out = patched(
        json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "data": {"x": "1"}}),
        json!({"metadata": {"labels": {"a": null, "c": "3"}}, "data": {"y": "2"}, "missing": null}),
        "ConfigMap",
    );
    assert_eq!(
        out,
        json!({"metadata": {"labels": {"b": "2", "c": "3"}}, "data": {"x": "1", "y": "2"}})
    );
}

#[test]
fn lists_without_strategy_are_replaced() {
    let out = patched(
        json!({"spec": {"containers": [{"name": "a", "args": ["x", "y"]}], "tolerations": [{"key": "k"}]}}),
        json!({"spec": {"containers": [{"name": "a", "args": ["z"]}], "tolerations": [{"key": "j"}]}}),
        "Pod",
    );
    assert_eq!(out["spec"]["containers"][0]["args"], json!(["z"]));
    assert_eq!(out["spec"]["tolerations"], json!([{"key": "j"}]));
}

#[test]
fn keyed_lists_merge_by_their_keys() {
    let pod = json!({"spec": {"containers": [{"name": "app", "image": "1",
        "env": [{"name": "A", "value": "1"}], "ports": [{"containerPort": 80, "name": "http"}],
        "volumeMounts": [{"mountPath": "/a", "name": "v"}]}],
        "volumes": [{"name": "v", "emptyDir": {}}], "imagePullSecrets": [{"name": "s"}]}});
    let out = patched(
        pod,
        json!({"spec": {"containers": [{"name": "app",
        "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "3"}],
        "ports": [{"containerPort": 80, "protocol": "TCP"}],
        "volumeMounts": [{"mountPath": "/b", "name": "w"}]}],
        "volumes": [{"name": "w", "configMap": {"name": "c"}}], "imagePullSecrets": [{"name": "t"}]}}),
        "Pod",
    );
    let app = &out["spec"]["containers"][0];
    assert_eq!(app["image"], "1");
    assert_eq!(
        app["env"],
        json!([{"name": "A", "value": "3"}, {"name": "B", "value": "2"}])
    );
    assert_eq!(
        app["ports"],
        json!([{"containerPort": 80, "name": "http", "protocol": "TCP"}])
    );
    assert_eq!(app["volumeMounts"].as_array().unwrap().len(), 2);
    assert_eq!(out["spec"]["volumes"].as_array().unwrap().len(), 2);
    assert_eq!(
        out["spec"]["imagePullSecrets"],
        json!([{"name": "s"}, {"name": "t"}])
    );
}

#[test]
fn deployment_template_and_service_ports() {
    let out = patched(
        json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]}}}}),
        json!({"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "2"}]}}}}),
        "Deployment",
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "a", "image": "1"}, {"name": "b", "image": "2"}])
    );
    let svc = patched(
        json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}}),
        json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}),
        "Service",
    );
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"port": 80, "targetPort": 9090}, {"port": 443}])
    );
}

#[test]
fn conditions_owner_references_and_finalizers() {
    let out = patched(
        json!({"metadata": {"finalizers": ["a", "b"], "ownerReferences": [{"uid": "1", "name": "x"}]},
               "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Available", "status": "True"}]}}),
        json!({"metadata": {"finalizers": ["c", "a"], "ownerReferences": [{"uid": "2", "name": "y"}]},
               "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
        "Deployment",
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["a", "b", "c"]));
    assert_eq!(
        out["metadata"]["ownerReferences"].as_array().unwrap().len(),
        2
    );
    assert_eq!(
        out["status"]["conditions"],
        json!([{"type": "Ready", "status": "True"}, {"type": "Available", "status": "True"}])
    );
}

#[test]
fn union_dedupes_like_the_server() {
    assert_eq!(
        uniqify(vec![json!("a"), json!("a"), json!("b"), json!("c")]),
        vec![json!("a"), json!("c"), json!("b")]
    );
    assert_eq!(
        uniqify(vec![json!("a"), json!("b"), json!("a"), json!("c")]),
        vec![json!("a"), json!("b"), json!("c")]
    );
}

#[test]
fn patch_directives_in_maps() {
    let target = json!({"spec": {"selector": {"a": "1", "b": "2"}, "affinity": {"x": 1}}});
    let out = patched(
        target.clone(),
        json!({"spec": {"selector": {"$patch": "replace", "c": "3"}}}),
        "Pod",
    );
    assert_eq!(out["spec"]["selector"], json!({"c": "3"}));
    let out = patched(
        target.clone(),
        json!({"spec": {"affinity": {"$patch": "delete"}}}),
        "Pod",
    );
    assert_eq!(out["spec"]["affinity"], json!({}));
    let err = error(target, json!({"spec": {"selector": {"$patch": "merge"}}}));
    assert_eq!(
        err.to_string(),
        "unknown patch type: merge in map: map[$patch:merge]"
    );
    assert_eq!(err.status_code(), 500);
}

#[test]
fn patch_directives_in_lists() {
    let pod = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}});
    let out = patched(
        pod.clone(),
        json!({"spec": {"containers": [{"name": "b", "$patch": "delete"}]}}),
        "Pod",
    );
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "a"}, {"name": "c"}])
    );
    let out = patched(
        pod.clone(),
        json!({"spec": {"containers": [{"$patch": "replace"}, {"name": "z"}]}}),
        "Pod",
    );
    assert_eq!(out["spec"]["containers"], json!([{"name": "z"}]));
    assert_eq!(
        error(
            pod.clone(),
            json!({"spec": {"containers": [{"$patch": "merge"}]}})
        )
        .to_string(),
        "merging lists cannot yet be specified in the patch"
    );
    assert_eq!(
        error(pod, json!({"spec": {"containers": [{"image": "x"}]}})).to_string(),
        "map: map[image:x] does not contain declared merge key: name"
    );
}

#[test]
fn retain_keys_clears_unlisted_live_keys() {
    let deployment =
        json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
    let out = patched(
        deployment.clone(),
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
        "Deployment",
    );
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    let mut target = deployment;
    let err = strategic_merge(
        &mut target,
        &json!({"spec": {"strategy": {"$retainKeys": ["type"], "other": 1}}}),
        "apps/v1",
        "Deployment",
    )
    .unwrap_err();
    assert_eq!(err, StrategicMergeError::BadRetainKeys);
    assert_eq!(err.status_code(), 400);
}

#[test]
fn delete_from_primitive_list() {
    let out = patched(
        json!({"metadata": {"finalizers": ["z", "b", "a", "b"]}}),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"], "$deleteFromPrimitiveList/absent": ["x"]}}),
        "Pod",
    );
    assert_eq!(out, json!({"metadata": {"finalizers": ["a", "z"]}}));
    assert_eq!(
        error(
            json!({}),
            json!({"$deleteFromPrimitiveListfinalizers": ["b"]})
        ),
        StrategicMergeError::BadPrimitiveList
    );
}

#[test]
fn set_element_order_orders_the_merged_list() {
    let pod =
        json!({"spec": {"containers": [{"name": "a"}, {"name": "live-only"}, {"name": "b"}]}});
    let out = patched(
        pod,
        json!({"spec": {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "c"}, {"name": "a"}],
            "containers": [{"name": "c", "image": "new"}]
        }}),
        "Pod",
    );
    // Live-only items go before the first listed item that follows them in the live list.
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "live-only"}, {"name": "b"}, {"name": "c", "image": "new"}, {"name": "a"}])
    );
    let out = patched(
        json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "live-only"}]}}),
        json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}}),
        "Pod",
    );
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "b"}, {"name": "a"}, {"name": "live-only"}])
    );
    let out = patched(
        json!({"metadata": {"finalizers": ["x", "y"]}}),
        json!({"metadata": {"$setElementOrder/finalizers": ["y", "x", "z"], "finalizers": ["z"]}}),
        "Pod",
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["y", "x", "z"]));
    assert_eq!(
        error(
            json!({"spec": {}}),
            json!({"spec": {"$setElementOrder/containers": [{"name": "a"}], "containers": [{"name": "b"}]}})
        ),
        StrategicMergeError::BadSetElementOrder
    );
}

#[test]
fn new_values_lose_nulls_and_directives() {
    let out = patched(
        json!({}),
        json!({"spec": {"a": null, "b": {"c": null, "d": 1, "$patch": "replace"}}}),
        "Pod",
    );
    assert_eq!(out, json!({"spec": {"b": {"d": 1}}}));
    // Items of a list the live object lacks are taken as they are, minus directive keys.
    let out = patched(
        json!({"spec": {}}),
        json!({"spec": {"containers": [{"name": "x", "$patch": "delete"}]}}),
        "Pod",
    );
    assert_eq!(out["spec"]["containers"], json!([{"name": "x"}]));
    // ... unless ordered by $setElementOrder, which drops directive items.
    let out = patched(
        json!({"spec": {}}),
        json!({"spec": {"$setElementOrder/containers": [{"name": "y"}],
        "containers": [{"name": "x", "$patch": "delete"}, {"name": "y"}]}}),
        "Pod",
    );
    assert_eq!(out["spec"]["containers"], json!([{"name": "y"}]));
}

#[test]
fn custom_resources_and_non_objects_are_refused() {
    let mut cr = json!({"spec": {}});
    let err = strategic_merge(
        &mut cr,
        &json!({"spec": {"a": 1}}),
        "demo.autopilot.rs/v1",
        "Canary",
    )
    .unwrap_err();
    assert_eq!(err, StrategicMergeError::UnsupportedMediaType);
    assert_eq!(err.status_code(), 415);
    assert!(
        err.to_string()
            .starts_with("the body of the request was in an unknown format")
    );
    let err = strategic_merge(&mut cr, &json!([1]), "v1", "Pod").unwrap_err();
    assert_eq!(
        err.to_string(),
        "json: cannot unmarshal array into Go value of type map[string]interface {}"
    );
    assert_eq!(cr, json!({"spec": {}}), "target untouched on error");
}
