//! Writes: create, update, patch and delete with the API server's rules (preconditions, status subresource,
//! finalizers, generation, managedFields, dry runs).

mod patch;
mod rules;

use serde_json::{Value, json};

use crate::cluster::{Cluster, key};
use crate::meta::{self, Part};
use crate::registry::ResourceType;
use crate::status::{ApiError, field};
use crate::store::{Decision, EventType, Key, Stored, View};
use crate::{conversion, crd};

pub use patch::{Patch, PatchKind, apply_json_patch};
pub use rules::check_kind;
use rules::{
    check_name, check_namespace, check_namespace_lifecycle, held, record, settle, validate,
};

/// Options every write accepts.
#[derive(Debug, Clone, Default)]
pub struct WriteParams {
    /// `dryRun=All`: validate and answer, store nothing.
    pub dry_run: bool,
    /// The field manager recorded in `managedFields` ("" records nothing).
    pub field_manager: String,
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

/// What a create or update needs besides the object.
struct Context<'a> {
    resource: &'a ResourceType,
    manager: &'a str,
    now: String,
}

impl Context<'_> {
    /// The object to store for a create.
    fn create(
        &self,
        cluster: &Cluster,
        view: &View<'_>,
        key: &Key,
        mut object: Value,
        record_fields: bool,
    ) -> Result<Value, ApiError> {
        let resource = self.resource;
        check_namespace_lifecycle(cluster, view, resource, key)?;
        meta::prepare_create(resource, &mut object, &self.now);
        settle(resource, &mut object, None, &self.now, Part::Main);
        validate(resource, &object, None)?;
        if record_fields {
            record(
                resource,
                None,
                &mut object,
                self.manager,
                Part::Main,
                &self.now,
            );
        }
        Ok(object)
    }

    /// What to do with an update of `old` into `new`.
    fn update(
        &self,
        old: &Value,
        mut new: Value,
        part: Part,
        record_fields: bool,
    ) -> Result<Decision, ApiError> {
        let resource = self.resource;
        let name = meta::meta_str(old, "name").to_string();
        let sent_rv = meta::meta_str(&new, "resourceVersion");
        if !sent_rv.is_empty() && sent_rv != meta::meta_str(old, "resourceVersion") {
            return Err(ApiError::stale(resource, &name));
        }
        if sent_rv.is_empty() && !resource.unconditional_update {
            let error = crate::validation::FieldError {
                field: "metadata.resourceVersion".into(),
                kind: crate::validation::FieldErrorKind::Invalid,
                message: "Invalid value: 0x0: must be specified for an update".into(),
            };
            return Err(ApiError::invalid(resource, &name, vec![error]));
        }
        meta::prepare_update(resource, old, &mut new, part)
            .map_err(|error| ApiError::invalid(resource, &name, vec![error]))?;
        settle(resource, &mut new, Some(old), &self.now, part);
        validate(resource, &new, Some(old))?;
        if record_fields {
            record(resource, Some(old), &mut new, self.manager, part, &self.now);
        }
        if meta::is_noop(old, &new) {
            return Ok(Decision::Unchanged);
        }
        if meta::is_deleting(&new) && !held(resource, &new) {
            return Ok(Decision::Remove(new));
        }
        Ok(Decision::Put(new))
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
        check_kind(&self.registry, resource, &mut object)?;
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
                    let error =
                        field::required("metadata.name", "name or generateName is required");
                    return Err(ApiError::invalid(resource, "", vec![error]));
                }
            }
        }
        let key = key(resource, namespace, meta::meta_str(&object, "name"));
        let object = conversion::to_storage(resource, object);
        let context = Context {
            resource,
            manager: &params.field_manager,
            now: meta::now(),
        };
        let decide = |view: &View<'_>, current: Option<&Stored>| -> Result<Value, ApiError> {
            if current.is_some() {
                return Err(ApiError::already_exists(resource, &key.1));
            }
            context.create(self, view, &key, object.clone(), true)
        };
        self.commit(resource, &key, params, |view, current| {
            decide(view, current).map(Decision::Put)
        })
    }

    /// Runs `decide` against the stored object and stores the result (or, for dry runs, only answers it).
    fn commit(
        &self,
        resource: &ResourceType,
        key: &Key,
        params: &WriteParams,
        mut decide: impl FnMut(&View<'_>, Option<&Stored>) -> Result<Decision, ApiError>,
    ) -> Result<Stored, ApiError> {
        if params.dry_run {
            return self.store.inspect(&resource.storage, key, |view, current| {
                let fallback = current.cloned();
                decide(view, current).map(|decision| match decision {
                    Decision::Put(object) | Decision::Remove(object) => Stored::unstored(object),
                    Decision::Unchanged => {
                        fallback.unwrap_or_else(|| Stored::unstored(Value::Null))
                    }
                })
            });
        }
        let outcome = self.store.mutate(&resource.storage, key, decide)?;
        if outcome.event == Some(EventType::Deleted) {
            self.after_remove(resource, &outcome.stored);
        } else {
            self.after_write(resource, &outcome.stored);
        }
        Ok(outcome.stored)
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
        check_kind(&self.registry, resource, &mut object)?;
        check_namespace(resource, namespace, &mut object)?;
        check_name(&object, name)?;
        self.replace(resource, namespace, name, part, params, |_| {
            Ok(object.clone())
        })
    }

    /// A PUT: replaces the object, or creates it when it is missing and the kind allows that. Returns
    /// whether it was created.
    pub fn put(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        object: Value,
        params: &WriteParams,
    ) -> Result<(Stored, bool), ApiError> {
        let missing = self
            .store
            .get(&resource.storage, &key(resource, namespace, name))
            .is_none();
        if missing && resource.create_on_update {
            let mut object = object;
            check_name(&object, name)?;
            meta::metadata_mut(&mut object).remove("resourceVersion");
            return self
                .create(resource, namespace, object, params)
                .map(|stored| (stored, true));
        }
        self.update(resource, namespace, name, object, Part::Main, params)
            .map(|stored| (stored, false))
    }

    /// The shared update path: `change` turns the current object into the requested one.
    fn replace(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        part: Part,
        params: &WriteParams,
        change: impl Fn(&Value) -> Result<Value, ApiError>,
    ) -> Result<Stored, ApiError> {
        let key = key(resource, namespace, name);
        let context = Context {
            resource,
            manager: &params.field_manager,
            now: meta::now(),
        };
        self.commit(resource, &key, params, |_, current| {
            let current = current.ok_or_else(|| ApiError::not_found(resource, name))?;
            let view = conversion::to_view(resource, current.object());
            let new = conversion::to_storage(resource, change(&view)?);
            context.update(current.object(), new, part, true)
        })
    }

    /// Changes an object with `edit` (used by the built-in controllers).
    pub(crate) fn edit(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        edit: impl Fn(&mut Value),
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
            let old = current.object();
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
        let name = meta::meta_str(stored.object(), "name");
        if meta::is_deleting(stored.object()) {
            return;
        }
        self.registry
            .set_custom(name, crd::resource_types(stored.object()));
    }

    /// Stops serving the kinds of a removed CRD and drops their objects.
    pub(crate) fn after_remove(&self, resource: &ResourceType, stored: &Stored) {
        if resource.custom || resource.kind != "CustomResourceDefinition" {
            return;
        }
        let name = meta::meta_str(stored.object(), "name");
        if let Some(storage) = crd::resource_types(stored.object())
            .first()
            .map(|t| t.storage.clone())
        {
            self.registry.remove_custom(name);
            self.drop_collection(&storage);
        }
    }
}
