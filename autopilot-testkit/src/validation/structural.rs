//! Pruning of unknown fields and defaulting, the structural-schema steps apiextensions runs
//! before validation.

use serde_json::{Map, Value};

use super::check::Path;

/// The `ObjectMeta` fields a resource's `metadata` keeps; anything else is dropped.
const OBJECT_META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

fn flag(schema: &Value, name: &str) -> bool {
    schema.get(name).and_then(Value::as_bool).unwrap_or(false)
}

/// Drops every field the schema does not specify, as the server does on create, update and
/// patch of a custom resource.
///
/// Unknown fields survive only under `x-kubernetes-preserve-unknown-fields: true`. At the root
/// (and in `x-kubernetes-embedded-resource` objects) `apiVersion` and `kind` are kept and
/// `metadata` keeps only the `ObjectMeta` fields.
///
/// ```
/// use autopilot_testkit::validation::prune;
/// use serde_json::json;
///
/// let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
///     "properties": {"replicas": {"type": "integer"}}}}});
/// let mut object = json!({"apiVersion": "a/v1", "kind": "K", "metadata": {"name": "x", "bogus": 1},
///     "spec": {"replicas": 1, "typo": true}, "extra": {}});
/// prune(&schema, &mut object);
/// assert_eq!(object, json!({"apiVersion": "a/v1", "kind": "K", "metadata": {"name": "x"},
///     "spec": {"replicas": 1}}));
/// ```
pub fn prune(schema: &Value, object: &mut Value) {
    prune_reporting(schema, object);
}

/// [`prune`], returning the paths of the dropped fields (e.g. `spec.typo`), from which the
/// server builds its `unknown field "spec.typo"` warnings.
pub fn prune_reporting(schema: &Value, object: &mut Value) -> Vec<String> {
    let mut pruned = Vec::new();
    prune_value(schema, object, &Path::default(), true, &mut pruned);
    pruned
}

fn prune_value(
    schema: &Value,
    value: &mut Value,
    path: &Path,
    resource: bool,
    pruned: &mut Vec<String>,
) {
    match value {
        Value::Object(map) => prune_object(schema, map, path, resource, pruned),
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                let resource = flag(item_schema, "x-kubernetes-embedded-resource");
                for (i, item) in items.iter_mut().enumerate() {
                    prune_value(item_schema, item, &path.index(i), resource, pruned);
                }
            }
        }
        _ => {}
    }
}

fn prune_object(
    schema: &Value,
    map: &mut Map<String, Value>,
    path: &Path,
    resource: bool,
    pruned: &mut Vec<String>,
) {
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties");
    let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields")
        || additional.is_some_and(|a| a == &Value::Bool(true));
    let mut unknown = Vec::new();
    for (key, child) in map.iter_mut() {
        if resource && (key == "apiVersion" || key == "kind") {
            continue;
        }
        if resource && key == "metadata" {
            prune_metadata(child, &path.field(key), pruned);
            continue;
        }
        if let Some(child_schema) = properties.and_then(|props| props.get(key)) {
            let embedded = flag(child_schema, "x-kubernetes-embedded-resource");
            prune_value(child_schema, child, &path.field(key), embedded, pruned);
        } else if let Some(additional) = additional.filter(|a| a.is_object()) {
            let embedded = flag(additional, "x-kubernetes-embedded-resource");
            prune_value(additional, child, &path.key(key), embedded, pruned);
        } else if !preserve {
            unknown.push(key.clone());
        }
    }
    for key in unknown {
        map.remove(&key);
        pruned.push(path.field(&key).fields());
    }
}

fn prune_metadata(metadata: &mut Value, path: &Path, pruned: &mut Vec<String>) {
    let Value::Object(map) = metadata else { return };
    let unknown: Vec<String> = map
        .keys()
        .filter(|k| !OBJECT_META_FIELDS.contains(&k.as_str()))
        .cloned()
        .collect();
    for key in unknown {
        map.remove(&key);
        pruned.push(path.field(&key).fields());
    }
}

fn default_of(schema: &Value) -> Option<&Value> {
    schema.get("default")
}

/// A `null` where the schema does not allow one is treated as absent.
fn non_nullable_null(value: &Value, schema: &Value) -> bool {
    value.is_null() && !flag(schema, "nullable")
}

/// Fills in `default`s where a field is absent (or a non-nullable `null`), recursively, as the
/// server does when decoding a custom resource from a request or from storage.
///
/// Defaults are applied top-down, so a defaulted object receives its children's defaults too.
/// Non-nullable `null`s without a default are dropped, as apiextensions does before defaulting.
///
/// ```
/// use autopilot_testkit::validation::apply_defaults;
/// use serde_json::json;
///
/// let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "default": {},
///     "properties": {"replicas": {"type": "integer", "default": 1},
///                    "mode": {"type": "string"}}}}});
/// let mut object = json!({"metadata": {"name": "x"}});
/// apply_defaults(&schema, &mut object);
/// assert_eq!(object["spec"], json!({"replicas": 1}));
/// let mut object = json!({"spec": {"replicas": 3, "mode": null}});
/// apply_defaults(&schema, &mut object);
/// assert_eq!(object["spec"], json!({"replicas": 3}));
/// ```
pub fn apply_defaults(schema: &Value, object: &mut Value) {
    match object {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            for (key, prop) in properties.into_iter().flatten() {
                let missing = map.get(key).is_none_or(|v| non_nullable_null(v, prop));
                if !missing {
                    continue;
                }
                match default_of(prop) {
                    Some(default) => {
                        map.insert(key.clone(), default.clone());
                    }
                    None => {
                        map.remove(key);
                    }
                }
            }
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let mut dropped = Vec::new();
            for (key, child) in map.iter_mut() {
                if let Some(prop) = properties.and_then(|props| props.get(key)) {
                    apply_defaults(prop, child);
                } else if let Some(additional) = additional {
                    if non_nullable_null(child, additional) {
                        match default_of(additional) {
                            Some(default) => *child = default.clone(),
                            None => {
                                dropped.push(key.clone());
                                continue;
                            }
                        }
                    }
                    apply_defaults(additional, child);
                }
            }
            for key in dropped {
                map.remove(&key);
            }
        }
        Value::Array(items) => {
            let Some(item_schema) = schema.get("items") else {
                return;
            };
            for item in items.iter_mut() {
                if non_nullable_null(item, item_schema)
                    && let Some(default) = default_of(item_schema)
                {
                    *item = default.clone();
                }
                apply_defaults(item_schema, item);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prunes_unknown_fields_recursively_and_reports_them() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
            "labels": {"type": "object", "additionalProperties": {"type": "object", "properties": {"v": {"type": "string"}}}},
            "empty": {"type": "object"}
        }}}});
        let mut object = json!({
            "apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n", "labels": {"a": "b"}, "clusterName": "c"},
            "spec": {"items": [{"name": "a", "junk": 1}], "labels": {"k": {"v": "1", "w": "2"}}, "empty": {"a": 1}},
            "status": {"x": 1}
        });
        let pruned = prune_reporting(&schema, &mut object);
        assert_eq!(
            object,
            json!({
                "apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n", "labels": {"a": "b"}},
                "spec": {"items": [{"name": "a"}], "labels": {"k": {"v": "1"}}, "empty": {}}
            })
        );
        assert_eq!(
            pruned,
            vec![
                "metadata.clusterName",
                "spec.empty.a",
                "spec.items[0].junk",
                "spec.labels[k].w",
                "status"
            ]
        );
    }

    #[test]
    fn preserve_unknown_fields_keeps_unknowns_but_prunes_known_children() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
            "properties": {"known": {"type": "object", "properties": {"a": {"type": "string"}}}}}}});
        let mut object = json!({"spec": {"free": {"deep": [1]}, "known": {"a": "x", "b": "y"}}});
        prune(&schema, &mut object);
        assert_eq!(
            object,
            json!({"spec": {"free": {"deep": [1]}, "known": {"a": "x"}}})
        );
    }

    #[test]
    fn embedded_resources_keep_type_meta_and_object_meta() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}}});
        let mut object = json!({"spec": {"template": {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "weird": 1}, "spec": {"containers": []}, "other": 1}}});
        prune(&schema, &mut object);
        assert_eq!(
            object,
            json!({"spec": {"template": {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p"}, "spec": {"containers": []}}}})
        );
        // Only the root and embedded resources keep apiVersion/kind.
        let mut nested = json!({"spec": {"kind": "x"}});
        prune(
            &json!({"type": "object", "properties": {"spec": {"type": "object"}}}),
            &mut nested,
        );
        assert_eq!(nested, json!({"spec": {}}));
    }

    #[test]
    fn defaults_apply_top_down_in_objects_maps_and_lists() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "default": {}, "properties": {
            "replicas": {"type": "integer", "default": 1},
            "strategy": {"type": "object", "default": {"type": "Rolling"}, "properties": {
                "type": {"type": "string"}, "maxSurge": {"type": "integer", "default": 25}}},
            "ports": {"type": "array", "items": {"type": "object", "properties": {"protocol": {"type": "string", "default": "TCP"}}}},
            "limits": {"type": "object", "additionalProperties": {"type": "object", "properties": {"unit": {"type": "string", "default": "m"}}}},
            "untouched": {"type": "string"}
        }}}});
        let mut object =
            json!({"spec": {"ports": [{"protocol": "UDP"}, {}], "limits": {"cpu": {}}}});
        apply_defaults(&schema, &mut object);
        assert_eq!(
            object,
            json!({"spec": {
                "replicas": 1,
                "strategy": {"type": "Rolling", "maxSurge": 25},
                "ports": [{"protocol": "UDP"}, {"protocol": "TCP"}],
                "limits": {"cpu": {"unit": "m"}}
            }})
        );
        let mut absent = json!({});
        apply_defaults(&schema, &mut absent);
        assert_eq!(absent["spec"]["replicas"], json!(1));
    }

    #[test]
    fn defaults_keep_given_values_and_handle_nulls() {
        let schema = json!({"type": "object", "properties": {
            "a": {"type": "integer", "default": 1},
            "b": {"type": "string"},
            "c": {"type": "string", "nullable": true, "default": "d"},
            "m": {"type": "object", "additionalProperties": {"type": "string"}},
            "l": {"type": "array", "items": {"type": "string", "default": "z"}}
        }});
        let mut object =
            json!({"a": null, "b": null, "c": null, "m": {"k": null}, "l": [null, "y"]});
        apply_defaults(&schema, &mut object);
        assert_eq!(object, json!({"a": 1, "c": null, "m": {}, "l": ["z", "y"]}));
        let mut given = json!({"a": 7});
        apply_defaults(&schema, &mut given);
        assert_eq!(given, json!({"a": 7, "c": "d"}));
    }
}
