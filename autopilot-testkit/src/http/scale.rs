//! The `autoscaling/v1` `Scale` subresource: a view of an object's replica counts, linked both ways to
//! the paths the kind (or its CRD) declares.

use std::sync::Arc;

use serde_json::{Value, json};

use super::resources::Call;
use crate::meta::Part;
use crate::registry::ResourceType;
use crate::status::{ApiError, field};
use crate::store::Stored;
use crate::write::{Patch, PatchKind, WriteParams};

fn pointer(json_path: &str) -> String {
    json_path
        .trim_start_matches('.')
        .split('.')
        .fold(String::new(), |acc, part| format!("{acc}/{part}"))
}

/// The `autoscaling/v1` Scale view of an object.
pub fn scale_of(resource: &ResourceType, object: &Value) -> Value {
    let Some(paths) = &resource.scale else {
        return Value::Null;
    };
    let meta = &object["metadata"];
    let mut scale = json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {},
        "status": { "replicas": object.pointer(&pointer(&paths.status_replicas)).cloned().unwrap_or(json!(0)) },
    });
    // `spec.replicas` is `omitempty` in the Scale type: zero is left out.
    let desired = object.pointer(&pointer(&paths.spec_replicas)).cloned();
    if let Some(desired) = desired.filter(|r| r.as_i64() != Some(0) && !r.is_null()) {
        scale["spec"]["replicas"] = desired;
    }
    if let Some(selector) = paths
        .label_selector
        .as_ref()
        .and_then(|p| object.pointer(&pointer(p)))
    {
        let text = match selector {
            Value::String(s) => s.clone(),
            Value::Object(map) => map
                .get("matchLabels")
                .and_then(Value::as_object)
                .map(|labels| {
                    labels
                        .iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default(),
            _ => String::new(),
        };
        scale["status"]["selector"] = json!(text);
    }
    scale
}

/// Writes the desired replicas of a Scale document into the object.
pub fn write_scale(
    call: &Call<'_>,
    resource: &Arc<ResourceType>,
    name: &str,
    scale: Value,
    params: &WriteParams,
) -> Result<Stored, ApiError> {
    let Some(paths) = &resource.scale else {
        return Err(ApiError::unknown_resource());
    };
    let replicas = scale.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
    if replicas.as_i64().is_none_or(|r| r < 0) {
        return Err(ApiError::invalid(
            &**resource,
            name,
            vec![field::invalid(
                "spec.replicas",
                &replicas,
                "must be greater than or equal to 0",
            )],
        ));
    }
    let sent_rv = scale
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let target = pointer(&paths.spec_replicas);
    let namespace = call.path.namespace.as_deref();
    let mut operations = vec![json!({ "op": "add", "path": target, "value": replicas })];
    if !sent_rv.is_empty() {
        operations.insert(
            0,
            json!({ "op": "add", "path": "/metadata/resourceVersion", "value": sent_rv }),
        );
    }
    let patch = Value::Array(operations);
    call.state.cluster.patch(
        resource,
        namespace,
        name,
        Patch {
            kind: PatchKind::Json,
            body: &patch,
        },
        Part::Main,
        params,
    )
}
