//! Unknown fields in a request body, found as the server's strict decoding finds them, for the
//! `fieldValidation` parameter kubectl sends: `Strict` refuses them (400), `Warn` drops them with a
//! `Warning` header each, `Ignore` drops them silently. Without the parameter nothing is checked, which
//! keeps the writes of clients that do not ask (the kube client) cheap.

use serde_json::{Map, Value};

use crate::registry::ResourceType;
use crate::status::{ApiError, Named};
use crate::validation::{FieldError, FieldErrorKind, prune_reporting};

/// What to do with unknown fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Directive {
    /// Drop them.
    Ignore,
    /// Drop them and warn about each.
    Warn,
    /// Refuse the request.
    Strict,
}

/// The options kind the parameter belongs to (`CreateOptions`, `UpdateOptions`, `PatchOptions`); the
/// nameless kind of a refused patch when empty.
struct OptionsKind(&'static str);

impl Named for OptionsKind {
    fn group(&self) -> &str {
        if self.0.is_empty() { "" } else { "meta.k8s.io" }
    }
    fn plural(&self) -> &str {
        ""
    }
    fn kind(&self) -> &str {
        self.0
    }
}

/// The `fieldValidation` parameter of a create (`CreateOptions`) or update (`UpdateOptions`); 422 for
/// values the server does not know.
pub fn directive(
    value: Option<&str>,
    options: &'static str,
) -> Result<Option<Directive>, ApiError> {
    match value {
        None | Some("") => Ok(None),
        Some("Ignore") => Ok(Some(Directive::Ignore)),
        Some("Warn") => Ok(Some(Directive::Warn)),
        Some("Strict") => Ok(Some(Directive::Strict)),
        Some(other) => {
            let error = FieldError::new(
                "fieldValidation",
                FieldErrorKind::NotSupported,
                Some(&Value::from(other)),
                "supported values: \"\", \"Ignore\", \"Strict\", \"Warn\"",
            );
            Err(ApiError::invalid(&OptionsKind(options), "", vec![error]))
        }
    }
}

/// Drops the fields of `object` its kind does not declare, as `directive` asks; returns the warnings to
/// send, or 400 `strict decoding error` under `Strict`.
///
/// ```
/// use autopilot_testkit::field_validation::{Directive, drop_unknown_fields};
/// use serde_json::json;
///
/// let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
///     "spec": {"containers": [{"name": "c", "image": "nginx", "imageTag": "1"}]}});
/// let warnings = drop_unknown_fields("", "Pod", None, &mut pod, Directive::Warn).unwrap();
/// assert_eq!(warnings, [r#"unknown field "spec.containers[0].imageTag""#]);
/// assert!(pod["spec"]["containers"][0].get("imageTag").is_none());
/// ```
pub fn drop_unknown_fields(
    group: &str,
    kind: &str,
    custom_schema: Option<&Value>,
    object: &mut Value,
    directive: Directive,
) -> Result<Vec<String>, ApiError> {
    let unknown = unknown_messages(group, kind, custom_schema, object, false);
    if directive == Directive::Strict && !unknown.is_empty() {
        let version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .and_then(|v| v.rsplit('/').next())
            .unwrap_or_default();
        return Err(ApiError::bad_request(format!(
            "{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {}",
            unknown.join(", ")
        )));
    }
    Ok(warnings(directive, unknown))
}

/// [`drop_unknown_fields`] for a merge or strategic merge patch: under `Strict`, 422 naming the patch.
pub fn drop_unknown_patch_fields(
    group: &str,
    kind: &str,
    custom_schema: Option<&Value>,
    patch: &mut Value,
    directive: Directive,
) -> Result<Vec<String>, ApiError> {
    let sent = patch.to_string();
    let unknown = unknown_messages(group, kind, custom_schema, patch, true);
    if directive == Directive::Strict && !unknown.is_empty() {
        let error = FieldError::new(
            "patch",
            FieldErrorKind::Invalid,
            Some(&Value::from(sent)),
            &format!("strict decoding error: {}", unknown.join(", ")),
        );
        return Err(ApiError::invalid(&OptionsKind(""), "", vec![error]));
    }
    Ok(warnings(directive, unknown))
}

fn warnings(directive: Directive, unknown: Vec<String>) -> Vec<String> {
    if directive == Directive::Warn {
        unknown
    } else {
        Vec::new()
    }
}

/// Drops the unknown fields of `object` and words each as the server does (`unknown field "spec.x"`).
fn unknown_messages(
    group: &str,
    kind: &str,
    custom_schema: Option<&Value>,
    object: &mut Value,
    patch: bool,
) -> Vec<String> {
    let unknown = match custom_schema {
        Some(schema) => prune_reporting(schema, object),
        None => {
            let schemas = crate::openapi::builtin_schemas();
            let Some(schema) = schemas.schema(group, kind) else {
                return Vec::new();
            };
            let definitions = &schemas.definitions;
            let mut unknown = Vec::new();
            drop_unknown(definitions, schema, object, "", patch, &mut unknown);
            unknown
        }
    };
    unknown
        .iter()
        .map(|path| format!("unknown field {path:?}"))
        .collect()
}

/// The schema a `$ref` (direct or as the single `allOf` entry k8s-openapi writes) points at.
fn resolve<'a>(definitions: &'a Map<String, Value>, schema: &'a Value) -> &'a Value {
    let reference = schema.get("$ref").or_else(|| {
        schema
            .get("allOf")
            .and_then(Value::as_array)
            .filter(|all| all.len() == 1)
            .and_then(|all| all[0].get("$ref"))
    });
    reference
        .and_then(Value::as_str)
        .and_then(|r| r.rsplit('/').next())
        .and_then(|name| definitions.get(name))
        .unwrap_or(schema)
}

/// Drops (and lists) the fields `schema` does not declare; in a `patch`, strategic merge directives
/// (`$patch`, `$setElementOrder/...`) and removals (`null`) are not fields.
fn drop_unknown(
    definitions: &Map<String, Value>,
    schema: &Value,
    value: &mut Value,
    path: &str,
    patch: bool,
    unknown: &mut Vec<String>,
) {
    let schema = resolve(definitions, schema);
    let child = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            if properties.is_none() && additional.is_none() {
                return; // free-form (FieldsV1, RawExtension)
            }
            map.retain(|key, field| {
                if patch && (key.starts_with('$') || field.is_null()) {
                    return true;
                }
                match properties.and_then(|p| p.get(key)).or(additional) {
                    Some(field_schema) => {
                        let path = child(key);
                        drop_unknown(definitions, field_schema, field, &path, patch, unknown);
                        true
                    }
                    None => {
                        unknown.push(child(key));
                        false
                    }
                }
            });
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    let path = format!("{path}[{i}]");
                    drop_unknown(definitions, item_schema, item, &path, patch, unknown);
                }
            }
        }
        _ => {}
    }
}

/// [`drop_unknown_fields`] (or, for a `patch`, [`drop_unknown_patch_fields`]) for a body sent to `resource`.
pub(crate) fn check(
    resource: &ResourceType,
    body: &mut Value,
    directive: Directive,
    patch: bool,
) -> Result<Vec<String>, ApiError> {
    let check = if patch {
        drop_unknown_patch_fields
    } else {
        drop_unknown_fields
    };
    check(
        &resource.group,
        &resource.kind,
        resource.schema.as_ref(),
        body,
        directive,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strict_refuses_unknown_fields_of_built_ins_in_document_order() {
        let mut deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"any": "label"}},
            "spec": {"bogus": 1, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx",
                        "ports": [{"containerPort": 80, "port": 80}]}]}}}});
        let error = drop_unknown_fields(
            "apps",
            "Deployment",
            None,
            &mut deployment,
            Directive::Strict,
        )
        .unwrap_err();
        assert_eq!(error.code, 400);
        assert_eq!(
            error.message,
            r#"Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: unknown field "spec.bogus", unknown field "spec.template.spec.containers[0].ports[0].port""#
        );
    }

    #[test]
    fn ignore_drops_silently_and_known_objects_pass() {
        let mut map = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c",
            "managedFields": [{"manager": "m", "fieldsV1": {"f:data": {"f:a": {}}}}]},
            "data": {"a": "1"}, "extra": true});
        let warnings =
            drop_unknown_fields("", "ConfigMap", None, &mut map, Directive::Ignore).unwrap();
        assert!(warnings.is_empty());
        assert!(map.get("extra").is_none());
        assert_eq!(
            map["metadata"]["managedFields"][0]["fieldsV1"]["f:data"]["f:a"],
            json!({})
        );
        let mut role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "r"}, "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]});
        let before = role.clone();
        drop_unknown_fields(
            "rbac.authorization.k8s.io",
            "ClusterRole",
            None,
            &mut role,
            Directive::Strict,
        )
        .unwrap();
        assert_eq!(role, before);
    }

    #[test]
    fn custom_resources_follow_their_schema() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
            "properties": {"size": {"type": "integer"}}}}});
        let mut widget = json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w"}, "spec": {"size": 1, "colour": "red"}});
        let error = drop_unknown_fields(
            "example.com",
            "Widget",
            Some(&schema),
            &mut widget,
            Directive::Strict,
        )
        .unwrap_err();
        assert_eq!(
            error.message,
            r#"Widget in version "v1" cannot be handled as a Widget: strict decoding error: unknown field "spec.colour""#
        );
        assert_eq!(
            directive(Some("Loose"), "CreateOptions")
                .unwrap_err()
                .message,
            r#"CreateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: "Loose": supported values: "", "Ignore", "Strict", "Warn""#
        );
    }

    #[test]
    fn patches_skip_directives_and_removals() {
        let mut patch = json!({"$setElementOrder/containers": [{"name": "web"}],
            "metadata": {"annotations": null},
            "spec": {"template": {"spec": {"containers": [{"name": "web", "$patch": "replace", "colour": "red"}]}},
                "gone": null}});
        let error =
            drop_unknown_patch_fields("", "Pod", None, &mut patch.clone(), Directive::Strict)
                .unwrap_err();
        assert_eq!((error.code, error.reason), (422, "Invalid"));
        assert!(
            error
                .message
                .starts_with(r#" "" is invalid: patch: Invalid value: "{"#),
            "{}",
            error.message
        );
        assert!(
            error
                .message
                .ends_with(r#": strict decoding error: unknown field "spec.template""#),
            "{}",
            error.message
        );
        let mut deployment_patch = patch.clone();
        let warnings = drop_unknown_patch_fields(
            "apps",
            "Deployment",
            None,
            &mut deployment_patch,
            Directive::Warn,
        )
        .unwrap();
        assert_eq!(
            warnings,
            [r#"unknown field "spec.template.spec.containers[0].colour""#]
        );
        patch["spec"]["template"]["spec"]["containers"][0]
            .as_object_mut()
            .unwrap()
            .remove("colour");
        assert_eq!(deployment_patch, patch);
    }
}
