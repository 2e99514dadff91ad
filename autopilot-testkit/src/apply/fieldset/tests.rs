use super::*;
use serde_json::json;

const POD: Shape<'static> = Shape {
    builtin: true,
    kind: "Pod",
    schema: None,
};

fn path(elements: &[&str]) -> FieldPath {
    elements.iter().map(|s| s.to_string()).collect()
}

#[test]
fn fields_v1_round_trips_with_dot_members() {
    let v1 = json!({
        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
        "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}}}
    });
    let set = FieldSet::from_fields_v1(&v1);
    assert!(set.0.contains(&path(&["f:metadata", "f:labels"])));
    assert!(set.0.contains(&path(&["f:metadata", "f:labels", "f:app"])));
    assert!(!set.0.contains(&path(&["f:metadata"])));
    assert!(
        set.0
            .contains(&path(&["f:spec", "f:containers", "k:{\"name\":\"app\"}"]))
    );
    assert_eq!(set.to_fields_v1(), v1);
}

#[test]
fn display_paths_like_the_server() {
    assert_eq!(
        display_path(&path(&["f:spec", "f:replicas"])),
        ".spec.replicas"
    );
    assert_eq!(
        display_path(&path(&[
            "f:spec",
            "f:ports",
            r#"k:{"port":80,"protocol":"TCP"}"#,
            "f:name"
        ])),
        r#".spec.ports[port=80,protocol="TCP"].name"#
    );
    assert_eq!(
        display_path(&path(&["f:metadata", "f:finalizers", r#"v:"a/b""#])),
        r#".metadata.finalizers[="a/b"]"#
    );
}

#[test]
fn field_set_of_a_pod() {
    let pod = json!({"metadata": {"labels": {"app": "x"}, "finalizers": ["f"]},
        "spec": {"containers": [{"name": "app", "image": "i", "ports": [{"containerPort": 80}], "args": ["a"]}],
                 "securityContext": {}}});
    let set = field_set(&pod, &POD);
    let v1 = set.to_fields_v1();
    assert_eq!(
        v1,
        json!({
            "f:metadata": {"f:labels": {"f:app": {}}, "f:finalizers": {"v:\"f\"": {}}},
            "f:spec": {
                "f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:name": {}, "f:image": {}, "f:args": {},
                    "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}}},
                "f:securityContext": {}
            }
        })
    );
}

#[test]
fn compare_reports_added_modified_removed() {
    let old = json!({"spec": {"a": 1, "b": 2, "containers": [{"name": "x", "image": "1"}]}});
    let new = json!({"spec": {"a": 1, "b": 3, "c": {"d": 1}, "containers": [{"name": "x", "image": "2"}, {"name": "y"}]}});
    let shape = POD;
    let c = compare(Some(&old), Some(&new), &shape);
    assert_eq!(
        c.modified.0,
        [
            path(&["f:spec", "f:b"]),
            path(&["f:spec", "f:containers", "k:{\"name\":\"x\"}", "f:image"])
        ]
        .into()
    );
    assert!(c.added.0.contains(&path(&["f:spec", "f:c"])));
    assert!(c.added.0.contains(&path(&["f:spec", "f:c", "f:d"])));
    assert!(
        c.added
            .0
            .contains(&path(&["f:spec", "f:containers", "k:{\"name\":\"y\"}"]))
    );
    let back = compare(Some(&new), Some(&old), &shape);
    assert!(back.removed.0.contains(&path(&["f:spec", "f:c"])));
    assert!(back.removed.0.contains(&path(&[
        "f:spec",
        "f:containers",
        "k:{\"name\":\"y\"}",
        "f:name"
    ])));
}

#[test]
fn merge_keeps_live_items_and_orders_like_the_field_manager() {
    let live = json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "side", "image": "s"}], "args": ["x"]}});
    let config = json!({"spec": {"containers": [{"name": "new", "image": "n"}, {"name": "a", "image": "2"}], "args": ["y"]}});
    let merged = merge(&live, &config, &POD);
    assert_eq!(
        merged,
        json!({"spec": {"containers": [
        {"name": "new", "image": "n"}, {"name": "a", "image": "2"}, {"name": "side", "image": "s"}
    ], "args": ["y"]}})
    );
}

#[test]
fn remove_path_finds_keyed_items() {
    let mut pod = json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b"}]}, "metadata": {"finalizers": ["x", "y"]}});
    remove_path(
        &mut pod,
        &path(&["f:spec", "f:containers", "k:{\"name\":\"a\"}", "f:image"]),
    );
    remove_path(
        &mut pod,
        &path(&["f:spec", "f:containers", "k:{\"name\":\"b\"}"]),
    );
    remove_path(&mut pod, &path(&["f:metadata", "f:finalizers", "v:\"x\""]));
    remove_path(&mut pod, &path(&["f:missing", "f:x"]));
    assert_eq!(
        pod,
        json!({"spec": {"containers": [{"name": "a"}]}, "metadata": {"finalizers": ["y"]}})
    );
}

#[test]
fn schema_declares_custom_resource_list_types() {
    let schema = json!({"properties": {"spec": {"properties": {"routes": {"type": "array",
        "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["host"], "items": {"type": "object"}}}}}});
    let shape = Shape {
        builtin: false,
        kind: "Route",
        schema: Some(&schema),
    };
    let routes = [
        TypeStep::Field("spec".into()),
        TypeStep::Field("routes".into()),
    ];
    assert_eq!(
        shape.list_kind(&routes),
        ListKind::Map(vec!["host".to_string()])
    );
    let plain = Shape {
        builtin: false,
        kind: "Route",
        schema: None,
    };
    assert_eq!(plain.list_kind(&routes), ListKind::Atomic);
    let finalizers = [
        TypeStep::Field("metadata".into()),
        TypeStep::Field("finalizers".into()),
    ];
    assert_eq!(plain.list_kind(&finalizers), ListKind::Set);
}
