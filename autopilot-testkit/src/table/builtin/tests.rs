//! The built-in printers' columns and cells, checked against what the server prints.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-06-10T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn cells(object: &Value, api_version: &str, kind: &str) -> Value {
    render_builtin_table_at(
        &[object],
        api_version,
        kind,
        IncludeObject::None,
        json!({}),
        now(),
    )
    .unwrap()["rows"][0]["cells"]
        .clone()
}

#[test]
fn pods() {
    let pod = json!({"metadata": {"name": "web-1", "creationTimestamp": "2024-06-10T11:00:00Z"},
        "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n1"},
        "status": {"phase": "Running", "podIP": "10.0.0.5", "containerStatuses": [
            {"name": "a", "ready": true, "restartCount": 1, "state": {"running": {}}},
            {"name": "b", "ready": false, "restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
    assert_eq!(
        cells(&pod, "v1", "Pod"),
        json!([
            "web-1",
            "1/2",
            "CrashLoopBackOff",
            "3",
            "60m",
            "10.0.0.5",
            "n1",
            "<none>",
            "<none>"
        ])
    );
    let mut deleting = pod.clone();
    deleting["metadata"]["deletionTimestamp"] = json!("2024-06-10T11:59:00Z");
    assert_eq!(cells(&deleting, "v1", "Pod")[2], "Terminating");
    let pending = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Pending"}});
    assert_eq!(
        cells(&pending, "v1", "Pod"),
        json!([
            "p",
            "0/1",
            "Pending",
            "0",
            "<unknown>",
            "<none>",
            "<none>",
            "<none>",
            "<none>"
        ])
    );
}

#[test]
fn workloads() {
    let deployment = json!({"metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"spec": {"containers": [{"name": "app", "image": "nginx:1"}]}}},
        "status": {"readyReplicas": 1, "updatedReplicas": 1, "availableReplicas": 1}});
    assert_eq!(
        cells(&deployment, "apps/v1", "Deployment"),
        json!(["web", "1/1", 1, 1, "<unknown>", "app", "nginx:1", "app=web"])
    );
    let rs = json!({"metadata": {"name": "web-1"}, "spec": {"replicas": 2, "selector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}}, "status": {"replicas": 2}});
    assert_eq!(
        cells(&rs, "apps/v1", "ReplicaSet"),
        json!(["web-1", 2, 2, 0, "<unknown>", "", "", "tier in (a,b)"])
    );
}

#[test]
fn services_and_simple_kinds() {
    let svc = json!({"metadata": {"name": "api"}, "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.10",
        "ports": [{"port": 80, "nodePort": 30080}, {"port": 53, "protocol": "UDP"}], "selector": {"app": "api"}}});
    assert_eq!(
        cells(&svc, "v1", "Service"),
        json!([
            "api",
            "LoadBalancer",
            "10.96.0.10",
            "<pending>",
            "80:30080/TCP,53/UDP",
            "<unknown>",
            "app=api"
        ])
    );
    let cm =
        json!({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": ""}});
    assert_eq!(cells(&cm, "v1", "ConfigMap"), json!(["c", 3, "<unknown>"]));
    let ns = json!({"metadata": {"name": "default"}, "status": {"phase": "Active"}});
    assert_eq!(
        cells(&ns, "v1", "Namespace"),
        json!(["default", "Active", "<unknown>"])
    );
    let crd = json!({"metadata": {"name": "canaries.demo.io", "creationTimestamp": "2024-01-01T00:00:00Z"}});
    assert_eq!(
        cells(&crd, "apiextensions.k8s.io/v1", "CustomResourceDefinition"),
        json!(["canaries.demo.io", "2024-01-01T00:00:00Z"])
    );
    assert!(
        render_builtin_table(
            &[&cm],
            "demo.io/v1",
            "Canary",
            IncludeObject::None,
            json!({})
        )
        .is_none()
    );
    let table = render_builtin_table_at(
        &[&cm],
        "v1",
        "ConfigMap",
        IncludeObject::Metadata,
        json!({"resourceVersion": "1"}),
        now(),
    )
    .unwrap();
    assert_eq!(table["columnDefinitions"][0]["format"], "name");
    // As kube-apiserver declares it: a string column, with the field's whole description.
    assert_eq!(table["columnDefinitions"][1]["type"], "string");
    assert!(
        table["columnDefinitions"][1]["description"]
            .as_str()
            .unwrap()
            .ends_with("this is enforced during validation process.")
    );
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
}

#[test]
fn rbac_kinds() {
    let role =
        json!({"metadata": {"name": "system:reader", "creationTimestamp": "2024-01-01T00:00:00Z"}});
    assert_eq!(
        cells(&role, "rbac.authorization.k8s.io/v1", "ClusterRole"),
        json!(["system:reader", "2024-01-01T00:00:00Z"])
    );
    let binding = json!({"metadata": {"name": "ops", "creationTimestamp": "2024-06-10T11:00:00Z"},
        "roleRef": {"kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "User", "name": "jane"}, {"kind": "Group", "name": "devs"},
            {"kind": "ServiceAccount", "name": "op", "namespace": "ops"}, {"kind": "User", "name": "joe"}]});
    assert_eq!(
        cells(&binding, "rbac.authorization.k8s.io/v1", "RoleBinding"),
        json!([
            "ops",
            "ClusterRole/edit",
            "60m",
            "jane, joe",
            "devs",
            "ops/op"
        ])
    );
    let table = render_builtin_table_at(
        &[&binding],
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        IncludeObject::None,
        json!({}),
        now(),
    )
    .unwrap();
    let names: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["Name", "Role", "Age", "Users", "Groups", "ServiceAccounts"]
    );
    assert_eq!(table["columnDefinitions"][3]["priority"], 1);
}

#[test]
fn events() {
    let core = json!({"metadata": {"name": "web.1"}, "type": "Warning", "reason": "BackOff",
        "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{app}"},
        "source": {"component": "kubelet", "host": "node-1"}, "message": "Back-off restarting ",
        "firstTimestamp": "2024-06-10T11:00:00Z", "lastTimestamp": "2024-06-10T11:55:00Z", "count": 4});
    assert_eq!(
        cells(&core, "v1", "Event"),
        json!([
            "5m",
            "Warning",
            "BackOff",
            "pod/web",
            "spec.containers{app}",
            "kubelet, node-1",
            "Back-off restarting",
            "60m",
            4,
            "web.1"
        ])
    );
    let new_api = json!({"metadata": {"name": "c.1"}, "type": "Normal", "reason": "Promoted",
        "regarding": {"kind": "Canary", "name": "c"}, "note": "done", "reportingController": "autopilot",
        "eventTime": "2024-06-10T11:58:00.000000Z"});
    assert_eq!(
        cells(&new_api, "events.k8s.io/v1", "Event"),
        json!([
            "2m",
            "Normal",
            "Promoted",
            "canary/c",
            "",
            "autopilot",
            "done",
            "2m",
            1,
            "c.1"
        ])
    );
}
