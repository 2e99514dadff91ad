//! Object metadata rules shared by every kind: names, uid, timestamps, generation, and what create and update
//! may change.

use serde_json::{Map, Value, json};

use crate::registry::{GenerationPolicy, ResourceType};
use crate::status::field;
use crate::validation::FieldError;

/// The current time as Kubernetes writes timestamps (RFC 3339, whole seconds, UTC).
pub fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The metadata map of an object (created when missing).
pub fn metadata_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    match object.get_mut("metadata").and_then(Value::as_object_mut) {
        Some(meta) => meta,
        None => unreachable!("metadata was just made an object"),
    }
}

/// A metadata string field, or "".
pub fn meta_str<'a>(object: &'a Value, field: &str) -> &'a str {
    object
        .get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The object's finalizers.
pub fn finalizers(object: &Value) -> Vec<String> {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(ToString::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the object is being deleted (has a deletionTimestamp).
pub fn is_deleting(object: &Value) -> bool {
    object
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

const NAME_CHARS: &str = "bcdfghjklmnpqrstvwxz2456789";

/// `generateName` plus five random characters, as the API server does.
pub fn generate_name(prefix: &str) -> String {
    let chars: Vec<char> = NAME_CHARS.chars().collect();
    let suffix: String = (0..5)
        .map(|_| chars[fastrand::usize(..chars.len())])
        .collect();
    format!("{prefix}{suffix}")
}

/// Sets the fields the server owns on a new object: uid, creationTimestamp, generation; drops
/// deletion fields and, when `status` is a subresource, the status.
pub fn prepare_create(resource: &ResourceType, object: &mut Value, now: &str) {
    if resource.status_subresource
        && let Some(map) = object.as_object_mut()
    {
        map.remove("status");
    }
    let meta = metadata_mut(object);
    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), json!(now));
    for field in [
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "resourceVersion",
        "selfLink",
    ] {
        meta.remove(field);
    }
    if !resource.namespaced {
        meta.remove("namespace");
    }
    if resource.generation == GenerationPolicy::None {
        meta.remove("generation");
    } else {
        meta.insert("generation".into(), json!(1));
    }
}

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The main endpoint: everything except a status subresource.
    Main,
    /// The `status` subresource: only the status.
    Status,
}

/// Carries over from `old` what an update may not change and recomputes the generation.
pub fn prepare_update(
    resource: &ResourceType,
    old: &Value,
    new: &mut Value,
    part: Part,
) -> Result<(), FieldError> {
    if part == Part::Status {
        let status = new.as_object_mut().and_then(|map| map.remove("status"));
        let managed = metadata_mut(new).remove("managedFields");
        *new = old.clone();
        match (status, new.as_object_mut()) {
            (Some(status), Some(map)) => {
                map.insert("status".into(), status);
            }
            (None, Some(map)) => {
                map.remove("status");
            }
            _ => {}
        }
        if let Some(managed) = managed {
            metadata_mut(new).insert("managedFields".into(), managed);
        }
        return Ok(());
    }
    if resource.status_subresource
        && let Some(map) = new.as_object_mut()
    {
        match old.get("status") {
            Some(status) => map.insert("status".into(), status.clone()),
            None => map.remove("status"),
        };
    }
    let no_meta = Value::Null;
    let old_meta = old.get("metadata").unwrap_or(&no_meta);
    if is_deleting(old) {
        let old_finalizers = finalizers(old);
        if let Some(added) = finalizers(new)
            .into_iter()
            .find(|f| !old_finalizers.contains(f))
        {
            return Err(field::forbidden(
                "metadata.finalizers",
                &format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{added:?}}}"
                ),
            ));
        }
    }
    let meta = metadata_mut(new);
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match old_meta.get(field) {
            Some(value) => meta.insert(field.into(), value.clone()),
            None => meta.remove(field),
        };
    }
    meta.remove("selfLink");
    if generation_changed(resource, old, new)
        && let Some(generation) = old_meta.get("generation").and_then(Value::as_i64)
    {
        metadata_mut(new).insert("generation".into(), json!(generation + 1));
    }
    Ok(())
}

fn generation_changed(resource: &ResourceType, old: &Value, new: &Value) -> bool {
    match resource.generation {
        GenerationPolicy::None => false,
        GenerationPolicy::Spec => old.get("spec") != new.get("spec"),
        GenerationPolicy::SpecAndAnnotations => {
            old.get("spec") != new.get("spec")
                || old.pointer("/metadata/annotations") != new.pointer("/metadata/annotations")
        }
        GenerationPolicy::Content => {
            fn content(
                object: &Value,
                status_apart: bool,
            ) -> impl Iterator<Item = (&String, &Value)> {
                object
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(move |(key, _)| {
                        *key != "metadata" && !(status_apart && *key == "status")
                    })
            }
            let status_apart = resource.status_subresource;
            !content(old, status_apart).eq(content(new, status_apart))
        }
    }
}

/// Whether an update changes nothing (apart from the resourceVersion the client sent).
pub fn is_noop(old: &Value, new: &Value) -> bool {
    const IGNORED: [&str; 2] = ["resourceVersion", "managedFields"];
    fn same_except<'a>(
        a: &'a Map<String, Value>,
        b: &'a Map<String, Value>,
        ignored: &[&str],
        inner: Option<&str>,
    ) -> bool {
        let keys =
            |m: &'a Map<String, Value>| m.iter().filter(|(k, _)| !ignored.contains(&k.as_str()));
        keys(a).count() == keys(b).count()
            && keys(a).all(|(k, v)| match (inner, v, b.get(k)) {
                (Some(nested), Value::Object(x), Some(Value::Object(y))) if k == nested => {
                    same_except(x, y, &IGNORED, None)
                }
                (_, x, Some(y)) => x == y,
                (_, _, None) => false,
            })
    }
    match (old.as_object(), new.as_object()) {
        (Some(a), Some(b)) => same_except(a, b, &[], Some("metadata")),
        _ => old == new,
    }
}

/// Marks an object as being deleted: deletionTimestamp, a zero grace period, and a generation bump.
pub fn mark_deleting(object: &mut Value, now: &str) {
    if is_deleting(object) {
        return;
    }
    let meta = metadata_mut(object);
    if let Some(generation) = meta.get("generation").and_then(Value::as_i64) {
        meta.insert("generation".into(), json!(generation + 1));
    }
    meta.insert("deletionTimestamp".into(), json!(now));
    meta.insert("deletionGracePeriodSeconds".into(), json!(0));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::builtins;

    fn deployment_type() -> ResourceType {
        builtins()
            .into_iter()
            .find(|r| r.kind == "Deployment")
            .unwrap()
    }

    #[test]
    fn noop_ignores_only_resource_version_and_managed_fields() {
        let old = json!({ "metadata": { "name": "a", "resourceVersion": "1", "managedFields": [1] }, "data": { "k": "v" } });
        let same =
            json!({ "metadata": { "name": "a", "resourceVersion": "7" }, "data": { "k": "v" } });
        assert!(is_noop(&old, &same));
        let relabelled =
            json!({ "metadata": { "name": "a", "labels": { "x": "y" } }, "data": { "k": "v" } });
        assert!(!is_noop(&old, &relabelled));
        let changed = json!({ "metadata": { "name": "a" }, "data": { "k": "w" } });
        assert!(!is_noop(&old, &changed));
    }

    #[test]
    fn status_writes_keep_the_generation() {
        let resource = deployment_type();
        let mut old = json!({ "metadata": { "name": "d" }, "spec": { "replicas": 1 } });
        prepare_create(&resource, &mut old, "2026-01-01T00:00:00Z");
        let mut new = old.clone();
        new["status"] = json!({ "replicas": 1 });
        new["spec"]["replicas"] = json!(5);
        prepare_update(&resource, &old, &mut new, Part::Status).unwrap();
        assert_eq!(new["metadata"]["generation"], 1);
        assert_eq!(
            new["spec"]["replicas"], 1,
            "status writes leave the spec alone"
        );
        assert_eq!(new["status"]["replicas"], 1);
    }

    #[test]
    fn spec_changes_bump_the_generation_and_main_writes_keep_status() {
        let resource = deployment_type();
        let mut old = json!({ "metadata": { "name": "d" }, "spec": { "replicas": 1 } });
        prepare_create(&resource, &mut old, "2026-01-01T00:00:00Z");
        old["status"] = json!({ "replicas": 1 });
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(2);
        new["status"] = json!({ "replicas": 9 });
        prepare_update(&resource, &old, &mut new, Part::Main).unwrap();
        assert_eq!(new["metadata"]["generation"], 2);
        assert_eq!(new["status"]["replicas"], 1);
    }
}
