//! Writes: create, update, patch and delete with the API server's rules (preconditions, status subresource,
//! finalizers, generation, dry runs).

use serde_json::{Value, json};

use crate::cluster::{Cluster, key};
use crate::meta::{self, Part};
use crate::registry::ResourceType;
use crate::status::{ApiError, Cause};
use crate::store::{Decision, EventType, Stored, View};
use crate::{crd, defaults};

/// Options every write accepts.
#[derive(Debug, Clone, Default)]
pub struct WriteParams {
    /// `dryRun=All`: validate and answer, store nothing.
    pub dry_run: bool,
}

/// The patch formats the server understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// RFC 6902 JSON patch.
    Json,
    /// RFC 7386 JSON merge patch.
    Merge,
}

/// A patch and its format.
#[derive(Debug, Clone, Copy)]
pub struct Patch<'a> {
    /// The format.
    pub kind: PatchKind,
    /// The patch document.
    pub body: &'a Value,
}

/// How dependents are treated when their owner is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    /// Owner goes at once; the garbage collector deletes dependents afterwards.
    #[default]
    Background,
    /// Owner stays (finalizer `foregroundDeletion`) until its blocking dependents are gone.
    Foreground,
    /// Dependents are kept and lose their owner reference (finalizer `orphan`).
    Orphan,
}

/// Parsed `DeleteOptions`.
#[derive(Debug, Clone, Default)]
pub struct DeleteParams {
    /// The propagation policy.
    pub propagation: Propagation,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
}

/// The result of a delete.
#[derive(Debug, Clone)]
pub struct Deleted {
    /// The object's last state.
    pub stored: Stored,
    /// Whether it is gone (false when finalizers keep it).
    pub removed: bool,
}

/// Checks that a request body is an object of the kind the path addresses.
pub fn check_kind(resource: &ResourceType, body: &mut Value) -> Result<(), ApiError> {
    let Some(map) = body.as_object_mut() else {
        return Err(ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {}): couldn't get version/kind; json parse error: json: cannot unmarshal {} into Go value of type struct {{ APIVersion string \"json:\\\"apiVersion,omitempty\\\"\"; Kind string \"json:\\\"kind,omitempty\\\"\" }}",
            resource.kind,
            json_type(body)
        )));
    };
    let expected = resource.api_version();
    let kind = map
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let api_version = map
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if kind.is_empty() && resource.custom {
        return Err(ApiError::bad_request(format!(
            "Object 'Kind' is missing in '{body}'"
        )));
    }
    if !kind.is_empty() && kind != resource.kind {
        let version = api_version.rsplit('/').next().unwrap_or_default();
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {}: no kind \"{kind}\" is registered for version \"{expected}\"",
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

/// Applies an RFC 6902 patch the way the API server does: a `test` against `null` passes when the path is
/// absent (kube-runtime's finalizer helper relies on this).
pub fn apply_json_patch(object: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let operations: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    for operation in &operations.0 {
        if let json_patch::PatchOperation::Test(test) = operation
            && test.value.is_null()
        {
            let path = test.path.to_string();
            if object.pointer(&path).is_none_or(Value::is_null) {
                continue;
            }
            return Err(ApiError::new(
                422,
                "Invalid",
                format!("testing value {path} failed: test failed"),
            ));
        }
        json_patch::patch(object, std::slice::from_ref(operation))
            .map_err(|e| ApiError::new(422, "Invalid", e.to_string()))?;
    }
    Ok(())
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Null => "null",
        Value::Object(_) => "object",
    }
}

/// Checks that the body's namespace (if any) is the one in the path.
fn check_namespace(
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

/// Whether something still holds the object back from removal.
fn held(resource: &ResourceType, object: &Value) -> bool {
    let namespace_finalizers = !resource.custom
        && resource.kind == "Namespace"
        && object
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
    !meta::finalizers(object).is_empty() || namespace_finalizers
}

fn validate(resource: &ResourceType, object: &Value) -> Result<(), ApiError> {
    let name = meta::meta_str(object, "name");
    let mut causes: Vec<Cause> = meta::validate_name(resource, name).into_iter().collect();
    if !resource.custom && resource.kind == "CustomResourceDefinition" {
        causes.extend(crd::validate(object));
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(resource, name, causes))
    }
}

/// Server-side rules for objects of a kind, applied on every write of the main endpoint.
fn settle(resource: &ResourceType, object: &mut Value, old: Option<&Value>, now: &str) {
    if resource.custom {
        return;
    }
    defaults::apply(&resource.group, &resource.kind, object);
    if resource.kind == "CustomResourceDefinition" {
        crd::settle(object, old, now);
    }
}

fn check_namespace_lifecycle(
    cluster: &Cluster,
    view: &View<'_>,
    resource: &ResourceType,
    key: &(String, String),
) -> Result<(), ApiError> {
    if !resource.namespaced {
        return Ok(());
    }
    let Some(namespaces) = cluster.builtin("", "namespaces") else {
        return Ok(());
    };
    match view.get(&namespaces.storage, &(String::new(), key.0.clone())) {
        None => Err(ApiError::not_found(&*namespaces, &key.0)),
        Some(ns) if meta::is_deleting(&ns.object) => Err(ApiError::forbidden(
            resource,
            &key.1,
            &format!(
                "unable to create new content in namespace {} because it is being terminated",
                key.0
            ),
        )
        .with_details(json!({ "name": key.1, "kind": resource.plural, "causes": [{ "reason": "NamespaceTerminating", "message": format!("namespace {} is being terminated", key.0), "field": "metadata.namespace" }] }))),
        Some(_) => Ok(()),
    }
}

impl Cluster {
    /// Creates an object of `resource` in `namespace`.
    pub fn create(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        mut object: Value,
        params: &WriteParams,
    ) -> Result<Stored, ApiError> {
        check_kind(resource, &mut object)?;
        check_namespace(resource, namespace, &mut object)?;
        let meta = meta::metadata_mut(&mut object);
        if meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .is_empty()
        {
            match meta.get("generateName").and_then(Value::as_str) {
                Some(prefix) if !prefix.is_empty() => {
                    let name = meta::generate_name(prefix);
                    meta.insert("name".into(), json!(name));
                }
                _ => {
                    return Err(ApiError::invalid(
                        resource,
                        "",
                        vec![Cause::required(
                            "metadata.name",
                            "name or generateName is required",
                        )],
                    ));
                }
            }
        }
        let key = key(resource, namespace, meta::meta_str(&object, "name"));
        let now = meta::now();
        let decide = |view: &View<'_>, current: Option<&Stored>| -> Result<Value, ApiError> {
            if current.is_some() {
                return Err(ApiError::already_exists(resource, &key.1));
            }
            check_namespace_lifecycle(self, view, resource, &key)?;
            let mut object = object.clone();
            meta::prepare_create(resource, &mut object, &now);
            settle(resource, &mut object, None, &now);
            validate(resource, &object)?;
            Ok(object)
        };
        let stored = if params.dry_run {
            self.store
                .inspect(&resource.storage, &key, |view, current| {
                    decide(view, current)
                })
                .map(Stored::unstored)?
        } else {
            self.store
                .mutate(&resource.storage, &key, |view, current| {
                    decide(view, current).map(Decision::Put)
                })?
                .stored
        };
        if !params.dry_run {
            self.after_write(resource, &stored);
        }
        Ok(stored)
    }

    /// Replaces an object (or, for `Part::Status`, its status).
    pub fn update(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        mut object: Value,
        part: Part,
        params: &WriteParams,
    ) -> Result<Stored, ApiError> {
        check_kind(resource, &mut object)?;
        check_namespace(resource, namespace, &mut object)?;
        let body_name = meta::meta_str(&object, "name");
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        self.replace(resource, namespace, name, part, params, |_| Ok(object))
    }

    /// Applies a patch to an object (or, for `Part::Status`, to its status).
    pub fn patch(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        patch: Patch<'_>,
        part: Part,
        params: &WriteParams,
    ) -> Result<Stored, ApiError> {
        self.replace(resource, namespace, name, part, params, |current| {
            let mut object = current.clone();
            match patch.kind {
                PatchKind::Merge => {
                    if !patch.body.is_object() {
                        return Err(ApiError::bad_request(format!(
                            "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                            json_type(patch.body)
                        )));
                    }
                    json_patch::merge(&mut object, patch.body);
                }
                PatchKind::Json => apply_json_patch(&mut object, patch.body)?,
            }
            check_kind(resource, &mut object)?;
            if meta::meta_str(&object, "name") != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({}) does not match the name on the URL ({name})",
                    meta::meta_str(&object, "name")
                )));
            }
            Ok(object)
        })
    }

    /// The shared update path: `change` turns the current object into the requested one.
    fn replace(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        part: Part,
        params: &WriteParams,
        change: impl FnOnce(&Value) -> Result<Value, ApiError>,
    ) -> Result<Stored, ApiError> {
        let key = key(resource, namespace, name);
        let now = meta::now();
        let decide = |current: Option<&Stored>| -> Result<Decision, ApiError> {
            let current = current.ok_or_else(|| ApiError::not_found(resource, name))?;
            let old = &*current.object;
            let mut new = change(old)?;
            let sent_rv = meta::meta_str(&new, "resourceVersion");
            if !sent_rv.is_empty() && sent_rv != meta::meta_str(old, "resourceVersion") {
                return Err(ApiError::stale(resource, name));
            }
            if sent_rv.is_empty() && !resource.unconditional_update {
                return Err(ApiError::invalid(
                    resource,
                    name,
                    vec![Cause::invalid(
                        "metadata.resourceVersion",
                        &json!("0x0"),
                        "must be specified for an update",
                    )],
                ));
            }
            meta::prepare_update(resource, old, &mut new, part)
                .map_err(|cause| ApiError::invalid(resource, name, vec![cause]))?;
            if part == Part::Main {
                settle(resource, &mut new, Some(old), &now);
            }
            validate(resource, &new)?;
            if meta::is_noop(old, &new) {
                return Ok(Decision::Unchanged);
            }
            if meta::is_deleting(&new) && !held(resource, &new) {
                return Ok(Decision::Remove(new));
            }
            Ok(Decision::Put(new))
        };
        let stored = if params.dry_run {
            self.store.inspect(&resource.storage, &key, |_, current| {
                let fallback = current.cloned();
                decide(current).map(|decision| match decision {
                    Decision::Put(object) | Decision::Remove(object) => Stored::unstored(object),
                    Decision::Unchanged => {
                        fallback.unwrap_or_else(|| Stored::unstored(Value::Null))
                    }
                })
            })?
        } else {
            let outcome = self
                .store
                .mutate(&resource.storage, &key, |_, current| decide(current))?;
            if outcome.event == Some(EventType::Deleted) {
                self.after_remove(resource, &outcome.stored);
            } else {
                self.after_write(resource, &outcome.stored);
            }
            outcome.stored
        };
        Ok(stored)
    }

    /// Changes an object with `edit` (used by the built-in controllers).
    pub(crate) fn edit(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        edit: impl FnOnce(&mut Value),
    ) -> Result<Stored, ApiError> {
        self.replace(
            resource,
            namespace,
            name,
            Part::Main,
            &WriteParams::default(),
            |current| {
                let mut object = current.clone();
                edit(&mut object);
                Ok(object)
            },
        )
    }

    /// Deletes an object: at once, or by marking it deleting while finalizers hold it.
    pub fn delete(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        options: &DeleteParams,
        params: &WriteParams,
    ) -> Result<Deleted, ApiError> {
        let key = key(resource, namespace, name);
        let now = meta::now();
        let decide = |current: Option<&Stored>| -> Result<Decision, ApiError> {
            let current = current.ok_or_else(|| ApiError::not_found(resource, name))?;
            let old = &*current.object;
            if let Some(uid) = &options.uid
                && uid != meta::meta_str(old, "uid")
            {
                return Err(ApiError::conflict(
                    resource,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        meta::meta_str(old, "uid")
                    ),
                ));
            }
            if let Some(rv) = &options.resource_version
                && rv != meta::meta_str(old, "resourceVersion")
            {
                return Err(ApiError::conflict(
                    resource,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        meta::meta_str(old, "resourceVersion")
                    ),
                ));
            }
            let mut object = old.clone();
            let finalizer = match options.propagation {
                Propagation::Background => None,
                Propagation::Foreground => Some("foregroundDeletion"),
                Propagation::Orphan => Some("orphan"),
            };
            if let Some(finalizer) = finalizer
                && !meta::finalizers(&object).iter().any(|f| f == finalizer)
            {
                let meta = meta::metadata_mut(&mut object);
                let list = meta.entry("finalizers").or_insert_with(|| json!([]));
                if let Some(list) = list.as_array_mut() {
                    list.push(json!(finalizer));
                }
            }
            if !held(resource, &object) {
                return Ok(Decision::Remove(object));
            }
            meta::mark_deleting(&mut object, &now);
            if !resource.custom && resource.kind == "Namespace" {
                object["status"]["phase"] = json!("Terminating");
            }
            if object == *old {
                return Ok(Decision::Unchanged);
            }
            Ok(Decision::Put(object))
        };
        let (stored, removed) = if params.dry_run {
            self.store.inspect(&resource.storage, &key, |_, current| {
                let fallback = current.cloned();
                decide(current).map(|decision| match decision {
                    Decision::Remove(object) => (Stored::unstored(object), true),
                    Decision::Put(object) => (Stored::unstored(object), false),
                    Decision::Unchanged => (
                        fallback.unwrap_or_else(|| Stored::unstored(Value::Null)),
                        false,
                    ),
                })
            })?
        } else {
            let outcome = self
                .store
                .mutate(&resource.storage, &key, |_, current| decide(current))?;
            let removed = outcome.event == Some(EventType::Deleted);
            (outcome.stored, removed)
        };
        if removed && !params.dry_run {
            self.after_remove(resource, &stored);
        }
        Ok(Deleted { stored, removed })
    }

    /// Keeps the served kinds in step with stored CRDs.
    fn after_write(&self, resource: &ResourceType, stored: &Stored) {
        if resource.custom || resource.kind != "CustomResourceDefinition" {
            return;
        }
        let name = meta::meta_str(&stored.object, "name");
        if meta::is_deleting(&stored.object) {
            return;
        }
        self.registry
            .set_custom(name, crd::resource_types(&stored.object));
    }

    /// Stops serving the kinds of a removed CRD and drops their objects.
    pub(crate) fn after_remove(&self, resource: &ResourceType, stored: &Stored) {
        if resource.custom || resource.kind != "CustomResourceDefinition" {
            return;
        }
        let name = meta::meta_str(&stored.object, "name");
        if let Some(storage) = crd::resource_types(&stored.object)
            .first()
            .map(|t| t.storage.clone())
        {
            self.registry.remove_custom(name);
            self.drop_collection(&storage);
        }
    }
}
