//! Defaults the API server fills into built-in kinds on write, so objects read back like a real cluster's.

use serde_json::{Value, json};

use crate::validation::RBAC_GROUP;

/// Fills defaults for the built-in kind `kind` of group `group`.
pub fn apply(group: &str, kind: &str, object: &mut Value) {
    match (group, kind) {
        ("", "Namespace") => namespace(object),
        ("", "Pod") => {
            if let Some(spec) = object.get_mut("spec") {
                pod_spec(spec);
            }
            if object.pointer("/status/phase").is_none() {
                object["status"] = json!({ "phase": "Pending", "qosClass": "BestEffort" });
            }
        }
        ("", "Service") => service(object),
        ("", "Secret") => secret(object),
        ("apps", "Deployment") => {
            workload(object);
            let spec = &mut object["spec"];
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(spec, "progressDeadlineSeconds", json!(600));
            set_default(
                spec,
                "strategy",
                json!({ "type": "RollingUpdate", "rollingUpdate": { "maxSurge": "25%", "maxUnavailable": "25%" } }),
            );
        }
        ("apps", "ReplicaSet") => workload(object),
        (RBAC_GROUP, "RoleBinding" | "ClusterRoleBinding") => binding(object),
        _ => {}
    }
}

fn set_default(target: &mut Value, field: &str, value: Value) {
    if let Some(map) = target.as_object_mut() {
        map.entry(field.to_string()).or_insert(value);
    }
}

fn namespace(object: &mut Value) {
    let name = object
        .pointer("/metadata/name")
        .cloned()
        .unwrap_or(Value::Null);
    let meta = crate::meta::metadata_mut(object);
    let labels = meta.entry("labels").or_insert_with(|| json!({}));
    set_default(labels, "kubernetes.io/metadata.name", name);
    if !object.get("spec").is_some_and(Value::is_object) {
        object["spec"] = json!({});
    }
    set_default(&mut object["spec"], "finalizers", json!(["kubernetes"]));
    if object.pointer("/status/phase").is_none() {
        object["status"] = json!({ "phase": "Active" });
    }
}

fn pod_spec(spec: &mut Value) {
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "securityContext", json!({}));
    if let Some(containers) = spec.get_mut("containers").and_then(Value::as_array_mut) {
        for container in containers {
            let image = container
                .get("image")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let tag = image.rsplit_once('/').map_or(image, |(_, last)| last);
            let pull = if tag.contains('@') || (tag.contains(':') && !tag.ends_with(":latest")) {
                "IfNotPresent"
            } else {
                "Always"
            };
            set_default(container, "imagePullPolicy", json!(pull));
            set_default(
                container,
                "terminationMessagePath",
                json!("/dev/termination-log"),
            );
            set_default(container, "terminationMessagePolicy", json!("File"));
            set_default(container, "resources", json!({}));
        }
    }
}

fn workload(object: &mut Value) {
    if !object.get("spec").is_some_and(Value::is_object) {
        object["spec"] = json!({});
    }
    let spec = &mut object["spec"];
    set_default(spec, "replicas", json!(1));
    if let Some(pod) = spec.pointer_mut("/template/spec") {
        pod_spec(pod);
    }
    // The status is a struct, not a pointer, in the Go types: a new object shows it empty.
    set_default(object, "status", json!({}));
}

fn service(object: &mut Value) {
    if !object.get("spec").is_some_and(Value::is_object) {
        object["spec"] = json!({});
    }
    let spec = &mut object["spec"];
    set_default(spec, "type", json!("ClusterIP"));
    set_default(spec, "sessionAffinity", json!("None"));
    set_default(spec, "internalTrafficPolicy", json!("Cluster"));
    set_default(spec, "ipFamilies", json!(["IPv4"]));
    set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
    if spec.get("clusterIP").is_none() {
        let ip = format!("10.96.{}.{}", fastrand::u8(..), fastrand::u8(1..255));
        spec["clusterIP"] = json!(ip);
        spec["clusterIPs"] = json!([ip]);
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports {
            set_default(port, "protocol", json!("TCP"));
            if let Some(number) = port.get("port").cloned() {
                set_default(port, "targetPort", number);
            }
        }
    }
    if object.get("status").is_none() {
        object["status"] = json!({ "loadBalancer": {} });
    }
}

fn secret(object: &mut Value) {
    use base64::Engine;
    set_default(object, "type", json!("Opaque"));
    let Some(strings) = object
        .as_object_mut()
        .and_then(|map| map.remove("stringData"))
    else {
        return;
    };
    let Some(strings) = strings.as_object() else {
        return;
    };
    if !object.get("data").is_some_and(Value::is_object) {
        object["data"] = json!({});
    }
    for (key, value) in strings {
        let text = value.as_str().unwrap_or_default();
        object["data"][key] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
}

/// Bindings: the `roleRef` API group, and that of `User` and `Group` subjects.
fn binding(object: &mut Value) {
    if let Some(role_ref) = object.get_mut("roleRef").filter(|r| r.is_object())
        && role_ref
            .get("apiGroup")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        role_ref["apiGroup"] = json!(RBAC_GROUP);
    }
    let subjects = object.get_mut("subjects").and_then(Value::as_array_mut);
    for subject in subjects.into_iter().flatten().filter(|s| s.is_object()) {
        let person = matches!(
            subject.get("kind").and_then(Value::as_str),
            Some("User" | "Group")
        );
        if person
            && subject
                .get("apiGroup")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        {
            subject["apiGroup"] = json!(RBAC_GROUP);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_string_data_is_folded_into_data() {
        let mut secret = json!({ "metadata": { "name": "s" }, "stringData": { "user": "admin" } });
        apply("", "Secret", &mut secret);
        assert_eq!(secret["data"]["user"], "YWRtaW4=");
        assert!(secret.get("stringData").is_none());
        assert_eq!(secret["type"], "Opaque");
    }

    #[test]
    fn deployments_get_one_replica_by_default() {
        let mut deployment = json!({ "metadata": { "name": "d" }, "spec": { "template": { "spec": { "containers": [{ "name": "c", "image": "nginx:1.27" }] } } } });
        apply("apps", "Deployment", &mut deployment);
        assert_eq!(deployment["spec"]["replicas"], 1);
        assert_eq!(
            deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
    }

    #[test]
    fn bindings_get_their_api_groups() {
        let mut binding = json!({"roleRef": {"kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": "jane"}, {"kind": "ServiceAccount", "name": "op", "namespace": "ns"}]});
        apply(RBAC_GROUP, "ClusterRoleBinding", &mut binding);
        assert_eq!(binding["roleRef"]["apiGroup"], RBAC_GROUP);
        assert_eq!(binding["subjects"][0]["apiGroup"], RBAC_GROUP);
        assert!(binding["subjects"][1].get("apiGroup").is_none());
    }
}
