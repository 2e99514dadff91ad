//! The columns the API server prints for common built-in kinds (what `kubectl get pods` and
//! friends show), computed from the objects as the server's printers compute them.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{CREATION_DESCRIPTION, IncludeObject, NAME_DESCRIPTION, age_of, row_object};
use crate::validation::RBAC_GROUP;

mod events;
mod rbac;

/// `(name, type, priority, description)` of one column.
type Column = (&'static str, &'static str, i32, &'static str);

/// Computes one row's cells.
type Cells = fn(&Value, DateTime<Utc>) -> Vec<Value>;

const NAME: Column = ("Name", "string", 0, NAME_DESCRIPTION);
const AGE: Column = ("Age", "string", 0, CREATION_DESCRIPTION);

fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn int(object: &Value, pointer: &str) -> i64 {
    object.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn len(object: &Value, pointer: &str) -> i64 {
    match object.pointer(pointer) {
        Some(Value::Object(map)) => map.len() as i64,
        Some(Value::Array(items)) => items.len() as i64,
        _ => 0,
    }
}

fn age(object: &Value, now: DateTime<Utc>) -> Value {
    Value::from(age_of(text(object, "/metadata/creationTimestamp"), now))
}

fn name(object: &Value) -> Value {
    Value::from(text(object, "/metadata/name"))
}

/// `a=b,c=d` for a label map or `matchLabels`/`matchExpressions` selector, `<none>` when empty.
fn selector_text(selector: Option<&Value>) -> String {
    let Some(selector) = selector.filter(|s| s.as_object().is_some_and(|m| !m.is_empty())) else {
        return "<none>".into();
    };
    let labels = selector
        .get("matchLabels")
        .or(Some(selector))
        .and_then(Value::as_object);
    let mut parts: Vec<String> = labels
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}")))
        .collect();
    for expression in selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = text(expression, "/key");
        let values: Vec<&str> = expression
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        parts.push(match text(expression, "/operator") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            _ => format!("!{key}"),
        });
    }
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

fn containers_and_images(object: &Value, pointer: &str) -> (String, String) {
    let containers = object
        .pointer(pointer)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = containers.iter().map(|c| text(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| text(c, "/image")).collect();
    (names.join(","), images.join(","))
}

/// A Pod's STATUS column: the phase, refined by container states and deletion.
fn pod_status(pod: &Value) -> String {
    let mut reason = match text(pod, "/status/reason") {
        "" => text(pod, "/status/phase").to_string(),
        r => r.to_string(),
    };
    let statuses = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut running = false;
    for status in statuses.iter().rev() {
        let waiting = text(status, "/state/waiting/reason");
        let terminated = text(status, "/state/terminated/reason");
        if !waiting.is_empty() {
            reason = waiting.to_string();
        } else if !terminated.is_empty() {
            reason = terminated.to_string();
        } else if let Some(state) = status.pointer("/state/terminated") {
            reason = match state.get("signal").and_then(Value::as_i64) {
                Some(signal) if signal != 0 => format!("Signal:{signal}"),
                _ => format!("ExitCode:{}", int(state, "/exitCode")),
            };
        } else if status.get("ready") == Some(&Value::Bool(true))
            && status.pointer("/state/running").is_some()
        {
            running = true;
        }
    }
    if reason == "Completed" && running {
        reason = "Running".into();
    }
    if pod
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        reason = if text(pod, "/status/reason") == "NodeLost" {
            "Unknown".into()
        } else {
            "Terminating".into()
        };
    }
    reason
}

fn pod_cells(pod: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let statuses = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let ready = statuses
        .iter()
        .filter(|s| s.get("ready") == Some(&Value::Bool(true)))
        .count();
    let restarts: i64 = statuses.iter().map(|s| int(s, "/restartCount")).sum();
    let gates = len(pod, "/spec/readinessGates");
    let or_none = |s: &str| {
        if s.is_empty() {
            "<none>".to_string()
        } else {
            s.to_string()
        }
    };
    vec![
        name(pod),
        Value::from(format!("{ready}/{}", len(pod, "/spec/containers"))),
        Value::from(pod_status(pod)),
        Value::from(restarts.to_string()),
        age(pod, now),
        Value::from(or_none(text(pod, "/status/podIP"))),
        Value::from(or_none(text(pod, "/spec/nodeName"))),
        Value::from(or_none(text(pod, "/status/nominatedNodeName"))),
        Value::from(if gates == 0 {
            "<none>".to_string()
        } else {
            format!("0/{gates}")
        }),
    ]
}

fn deployment_cells(deployment: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (containers, images) = containers_and_images(deployment, "/spec/template/spec/containers");
    let desired = deployment
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    vec![
        name(deployment),
        Value::from(format!(
            "{}/{desired}",
            int(deployment, "/status/readyReplicas")
        )),
        Value::from(int(deployment, "/status/updatedReplicas")),
        Value::from(int(deployment, "/status/availableReplicas")),
        age(deployment, now),
        Value::from(containers),
        Value::from(images),
        Value::from(selector_text(deployment.pointer("/spec/selector"))),
    ]
}

fn replica_set_cells(rs: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (containers, images) = containers_and_images(rs, "/spec/template/spec/containers");
    vec![
        name(rs),
        Value::from(
            rs.pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1),
        ),
        Value::from(int(rs, "/status/replicas")),
        Value::from(int(rs, "/status/readyReplicas")),
        age(rs, now),
        Value::from(containers),
        Value::from(images),
        Value::from(selector_text(rs.pointer("/spec/selector"))),
    ]
}

fn service_cells(service: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let kind = match text(service, "/spec/type") {
        "" => "ClusterIP",
        t => t,
    };
    let cluster_ip = match text(service, "/spec/clusterIP") {
        "" => "<none>",
        ip => ip,
    };
    let mut external: Vec<String> = service
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|i| match text(i, "/ip") {
            "" => text(i, "/hostname").to_string(),
            ip => ip.to_string(),
        })
        .collect();
    external.extend(
        service
            .pointer("/spec/externalIPs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|ip| ip.as_str().map(str::to_string)),
    );
    let external = match (kind, external.is_empty()) {
        ("ExternalName", _) => text(service, "/spec/externalName").to_string(),
        ("LoadBalancer", true) => "<pending>".into(),
        (_, true) => "<none>".into(),
        (_, false) => external.join(","),
    };
    let ports: Vec<String> = service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            let protocol = match text(p, "/protocol") {
                "" => "TCP",
                proto => proto,
            };
            match p.get("nodePort").and_then(Value::as_i64) {
                Some(node_port) => format!("{}:{node_port}/{protocol}", int(p, "/port")),
                None => format!("{}/{protocol}", int(p, "/port")),
            }
        })
        .collect();
    vec![
        name(service),
        Value::from(kind),
        Value::from(cluster_ip),
        Value::from(external),
        Value::from(if ports.is_empty() {
            "<none>".to_string()
        } else {
            ports.join(",")
        }),
        age(service, now),
        Value::from(selector_text(service.pointer("/spec/selector"))),
    ]
}

/// The columns and cell function the server uses for a built-in kind.
fn printer(api_version: &str, kind: &str) -> Option<(Vec<Column>, Cells)> {
    let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
    let printer: (Vec<Column>, Cells) = match (group, kind) {
        ("", "Pod") => (
            vec![
                NAME,
                (
                    "Ready",
                    "string",
                    0,
                    "The aggregate readiness state of this pod for accepting traffic.",
                ),
                (
                    "Status",
                    "string",
                    0,
                    "The aggregate status of the containers in this pod.",
                ),
                (
                    "Restarts",
                    "string",
                    0,
                    "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
                ),
                AGE,
                (
                    "IP",
                    "string",
                    1,
                    "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
                ),
                (
                    "Node",
                    "string",
                    1,
                    "NodeName indicates in which node this pod is scheduled.",
                ),
                (
                    "Nominated Node",
                    "string",
                    1,
                    "nominatedNodeName is set only when this pod preempts other pods on the node.",
                ),
                (
                    "Readiness Gates",
                    "string",
                    1,
                    "If specified, all readiness gates will be evaluated for pod readiness.",
                ),
            ],
            pod_cells,
        ),
        ("apps", "Deployment") => (
            vec![
                NAME,
                ("Ready", "string", 0, "Number of the pod with ready state"),
                (
                    "Up-to-date",
                    "string",
                    0,
                    "Total number of non-terminating pods targeted by this deployment that have the desired template spec.",
                ),
                (
                    "Available",
                    "string",
                    0,
                    "Total number of available non-terminating pods (ready for at least minReadySeconds) targeted by this deployment.",
                ),
                AGE,
                (
                    "Containers",
                    "string",
                    1,
                    "Names of each container in the template.",
                ),
                (
                    "Images",
                    "string",
                    1,
                    "Images referenced by each container in the template.",
                ),
                (
                    "Selector",
                    "string",
                    1,
                    "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
                ),
            ],
            deployment_cells,
        ),
        ("apps", "ReplicaSet") => (
            vec![
                NAME,
                (
                    "Desired",
                    "integer",
                    0,
                    "Replicas is the number of desired pods.",
                ),
                (
                    "Current",
                    "integer",
                    0,
                    "Replicas is the most recently observed number of non-terminating pods.",
                ),
                (
                    "Ready",
                    "integer",
                    0,
                    "The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition.",
                ),
                AGE,
                (
                    "Containers",
                    "string",
                    1,
                    "Names of each container in the template.",
                ),
                (
                    "Images",
                    "string",
                    1,
                    "Images referenced by each container in the template.",
                ),
                (
                    "Selector",
                    "string",
                    1,
                    "Selector is a label query over pods that should match the replica count.",
                ),
            ],
            replica_set_cells,
        ),
        ("", "Service") => (
            vec![
                NAME,
                (
                    "Type",
                    "string",
                    0,
                    "type determines how the Service is exposed.",
                ),
                (
                    "Cluster-IP",
                    "string",
                    0,
                    "clusterIP is the IP address of the service.",
                ),
                (
                    "External-IP",
                    "string",
                    0,
                    "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
                ),
                (
                    "Port(s)",
                    "string",
                    0,
                    "The list of ports that are exposed by this service.",
                ),
                AGE,
                (
                    "Selector",
                    "string",
                    1,
                    "Route service traffic to pods with label keys and values matching this selector.",
                ),
            ],
            service_cells,
        ),
        ("", "ConfigMap") => (
            vec![
                NAME,
                // The server declares the count a string column, with the field's whole description.
                (
                    "Data",
                    "string",
                    0,
                    "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', \
                     '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored \
                     in Data must not overlap with the keys in the BinaryData field, this is enforced during \
                     validation process.",
                ),
                AGE,
            ],
            |o, now| {
                vec![
                    name(o),
                    Value::from(len(o, "/data") + len(o, "/binaryData")),
                    age(o, now),
                ]
            },
        ),
        ("", "Secret") => (
            vec![
                NAME,
                (
                    "Type",
                    "string",
                    0,
                    "Used to facilitate programmatic handling of secret data.",
                ),
                (
                    "Data",
                    "string",
                    0,
                    "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or \
                     '.'. The serialized form of the secret data is a base64 encoded string, representing the \
                     arbitrary (possibly non-string) data value here. Described in \
                     https://tools.ietf.org/html/rfc4648#section-4",
                ),
                AGE,
            ],
            |o, now| {
                vec![
                    name(o),
                    Value::from(text(o, "/type")),
                    Value::from(len(o, "/data")),
                    age(o, now),
                ]
            },
        ),
        ("", "Namespace") => (
            vec![
                NAME,
                ("Status", "string", 0, "The status of the namespace"),
                AGE,
            ],
            |o, now| vec![name(o), Value::from(text(o, "/status/phase")), age(o, now)],
        ),
        ("", "ServiceAccount") => (
            vec![
                NAME,
                (
                    "Secrets",
                    "string",
                    0,
                    "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
                ),
                AGE,
            ],
            |o, now| vec![name(o), Value::from(len(o, "/secrets")), age(o, now)],
        ),
        ("coordination.k8s.io", "Lease") => (
            vec![
                NAME,
                ("Holder", "string", 0, "The holder of the lease"),
                AGE,
            ],
            |o, now| {
                vec![
                    name(o),
                    Value::from(text(o, "/spec/holderIdentity")),
                    age(o, now),
                ]
            },
        ),
        (RBAC_GROUP, "RoleBinding" | "ClusterRoleBinding") => rbac::binding_printer(kind),
        ("" | "events.k8s.io", "Event") => events::event_printer(),
        // Kinds without a printer of their own get the server's default columns.
        ("apiextensions.k8s.io", "CustomResourceDefinition")
        | (RBAC_GROUP, "Role" | "ClusterRole") => (
            vec![NAME, ("Created At", "date", 0, CREATION_DESCRIPTION)],
            |o, _| vec![name(o), Value::from(text(o, "/metadata/creationTimestamp"))],
        ),
        _ => return None,
    };
    Some(printer)
}

/// Renders objects of a built-in kind with the columns the API server prints for it (Pod,
/// Deployment, ReplicaSet, Service, ConfigMap, Secret, Namespace, ServiceAccount, Lease,
/// CustomResourceDefinition, the RBAC kinds, Event); `None` for other kinds, which get [`super::PrinterColumn::defaults`].
///
/// ```
/// use autopilot_testkit::table::{render_builtin_table, IncludeObject};
/// use serde_json::json;
///
/// let deployment = json!({"metadata": {"name": "web"}, "spec": {"replicas": 3},
///     "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
/// let table = render_builtin_table(&[&deployment], "apps/v1", "Deployment", IncludeObject::None, json!({})).unwrap();
/// assert_eq!(table["rows"][0]["cells"][1], "2/3");
/// ```
pub fn render_builtin_table(
    objects: &[&Value],
    api_version: &str,
    kind: &str,
    include_object: IncludeObject,
    list_meta: Value,
) -> Option<Value> {
    render_builtin_table_at(
        objects,
        api_version,
        kind,
        include_object,
        list_meta,
        Utc::now(),
    )
}

/// [`render_builtin_table`] with ages computed relative to `now`.
pub fn render_builtin_table_at(
    objects: &[&Value],
    api_version: &str,
    kind: &str,
    include_object: IncludeObject,
    list_meta: Value,
    now: DateTime<Utc>,
) -> Option<Value> {
    let (columns, cells) = printer(api_version, kind)?;
    let definitions: Vec<Value> = columns
        .iter()
        .map(|(name, type_, priority, description)| {
            let format = if *name == "Name" { "name" } else { "" };
            json!({"name": name, "type": type_, "format": format, "description": description, "priority": priority})
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| json!({"cells": cells(o, now), "object": row_object(o, include_object)}))
        .collect();
    Some(json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": if list_meta.is_object() { list_meta } else { json!({}) },
        "columnDefinitions": definitions,
        "rows": rows,
    }))
}

#[cfg(test)]
mod tests;
