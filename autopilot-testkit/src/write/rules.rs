//! Checks and server-side changes every write goes through: body kind and namespace, namespace lifecycle,
//! defaults, custom resource pruning and defaulting, validation, and managedFields for updates.

use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::meta::{self, Part};
use crate::registry::{Registry, ResourceType};
use crate::status::ApiError;
use crate::store::View;
use crate::validation::{self, NameRule};
use crate::{apply, crd, defaults};

/// The Go name of a JSON value's type, as the server's decoding errors print it.
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Null => "null",
        Value::Object(_) => "object",
    }
}

/// Checks that a request body is an object of the kind the path addresses, and fills in `apiVersion`
/// and `kind` when a built-in body leaves them out.
pub fn check_kind(
    registry: &Registry,
    resource: &ResourceType,
    body: &mut Value,
) -> Result<(), ApiError> {
    let Some(map) = body.as_object_mut() else {
        return Err(ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {}): couldn't get version/kind; json parse error: json: cannot unmarshal {} into Go value of type struct {{ APIVersion string \"json:\\\"apiVersion,omitempty\\\"\"; Kind string \"json:\\\"kind,omitempty\\\"\" }}",
            resource.kind,
            json_type(body)
        )));
    };
    let expected = resource.api_version();
    let text = |field: &str| {
        map.get(field)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (kind, api_version) = (text("kind"), text("apiVersion"));
    if kind.is_empty() && resource.custom {
        return Err(ApiError::bad_request(format!(
            "Object 'Kind' is missing in '{body}'"
        )));
    }
    if !kind.is_empty() && kind != resource.kind {
        let version = api_version.rsplit('/').next().unwrap_or_default();
        // A kind the server knows fails in conversion to the path's internal type; another is unknown.
        let why = match registry.find_kind(&api_version, &kind) {
            Some(other) if !other.custom && !resource.custom => {
                let internal = match resource.group.split('.').next() {
                    Some("") | None => "core",
                    Some(first) => first,
                };
                format!(
                    "converting ({version}.{kind}) to ({internal}.{}): unknown conversion",
                    resource.kind
                )
            }
            _ => format!("no kind \"{kind}\" is registered for version \"{expected}\""),
        };
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {}: {why}",
            resource.kind
        )));
    }
    if !api_version.is_empty() && api_version != expected {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({expected})"
        )));
    }
    map.insert("apiVersion".into(), json!(expected));
    map.insert("kind".into(), json!(resource.kind));
    Ok(())
}

/// Checks that the body's namespace (if any) is the one in the path, and sets it.
pub fn check_namespace(
    resource: &ResourceType,
    namespace: Option<&str>,
    body: &mut Value,
) -> Result<(), ApiError> {
    if !resource.namespaced {
        return Ok(());
    }
    let path_namespace = namespace.unwrap_or_default();
    let meta = meta::metadata_mut(body);
    match meta.get("namespace").and_then(Value::as_str) {
        Some(given) if !given.is_empty() && given != path_namespace => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => {
            meta.insert("namespace".into(), json!(path_namespace));
            Ok(())
        }
    }
}

/// Checks that the body names the object of the URL.
pub fn check_name(body: &Value, name: &str) -> Result<(), ApiError> {
    let body_name = meta::meta_str(body, "name");
    if body_name == name {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )))
    }
}

/// Refuses new objects in namespaces that do not exist or are being deleted.
pub fn check_namespace_lifecycle(
    cluster: &Cluster,
    view: &View<'_>,
    resource: &ResourceType,
    key: &(String, String),
) -> Result<(), ApiError> {
    if !resource.namespaced {
        return Ok(());
    }
    let storage = ResourceType::storage_key("", "namespaces");
    match view.get(&storage, &(String::new(), key.0.clone())) {
        None => Err(match cluster.builtin("", "namespaces") {
            Some(namespaces) => ApiError::not_found(&*namespaces, &key.0),
            None => ApiError::unknown_resource(),
        }),
        Some(ns) if ns.summary.deleting => Err(ApiError::forbidden(
            resource,
            &key.1,
            &format!("unable to create new content in namespace {} because it is being terminated", key.0),
        )
        .with_details(json!({
            "name": key.1,
            "kind": resource.plural,
            "causes": [{ "reason": "NamespaceTerminating", "message": format!("namespace {} is being terminated", key.0), "field": "metadata.namespace" }],
        }))),
        Some(_) => Ok(()),
    }
}

/// Whether something still holds the object back from removal.
pub fn held(resource: &ResourceType, object: &Value) -> bool {
    let namespace_finalizers = !resource.custom
        && resource.kind == "Namespace"
        && object
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
    !meta::finalizers(object).is_empty() || namespace_finalizers
}

/// Server-side changes on write: custom resources are pruned and defaulted from their schema; built-ins
/// get their defaults (main endpoint only); CRDs get their status.
pub fn settle(
    resource: &ResourceType,
    object: &mut Value,
    old: Option<&Value>,
    now: &str,
    part: Part,
) {
    if let Some(schema) = &resource.schema {
        validation::prune(schema, object);
        validation::apply_defaults(schema, object);
    }
    if resource.custom || part != Part::Main {
        return;
    }
    defaults::apply(&resource.group, &resource.kind, object);
    if resource.kind == "CustomResourceDefinition" {
        crd::settle(object, old, now);
    }
}

/// Validates metadata, a custom resource's schema, a CRD's own rules and those of the RBAC kinds (`old`
/// is the stored object on update): 422 with every field error.
pub fn validate(
    resource: &ResourceType,
    object: &Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    let rule = if resource.custom {
        NameRule::DnsSubdomain
    } else {
        NameRule::for_kind(&resource.kind)
    };
    let metadata = object.get("metadata").unwrap_or(&Value::Null);
    let mut errors = validation::validate_object_meta(metadata, resource.namespaced, rule);
    if let Some(schema) = &resource.schema {
        errors.extend(validation::validate(schema, object));
    }
    if !resource.custom && resource.kind == "CustomResourceDefinition" {
        errors.extend(crd::validate(object, old));
    }
    if !resource.custom && resource.group == validation::RBAC_GROUP {
        errors.extend(validation::validate_rbac(&resource.kind, object, old));
    }
    if !resource.custom && resource.group == "apps" {
        errors.extend(validation::validate_workload(&resource.kind, object));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            resource,
            meta::meta_str(object, "name"),
            errors,
        ))
    }
}

/// Records in `managedFields` which fields an Update-type write (create, update, patch) changed.
pub fn record(
    resource: &ResourceType,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    part: Part,
    now: &str,
) {
    if manager.is_empty() {
        return;
    }
    let subresource = (part == Part::Status).then_some("status");
    apply::record_update_with_schema(
        old,
        new,
        manager,
        subresource,
        now,
        &resource.api_version(),
        resource.schema.as_ref(),
    );
}
