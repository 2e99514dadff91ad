//! Patches: JSON patch, JSON merge patch, strategic merge patch and server-side apply.

use serde_json::{Value, json};

use super::rules::{check_kind, check_name, check_namespace, json_type};
use super::{Context, WriteParams};
use crate::apply::{self, ApplyError, ApplyRequest};
use crate::cluster::{Cluster, key};
use crate::conversion;
use crate::meta::{self, Part};
use crate::registry::ResourceType;
use crate::status::{ApiError, Named, field};
use crate::store::{Decision, Stored};
use crate::strategic::{self, StrategicMergeError};

/// The patch formats the server understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// RFC 6902 JSON patch (`application/json-patch+json`).
    Json,
    /// RFC 7386 JSON merge patch (`application/merge-patch+json`).
    Merge,
    /// Strategic merge patch (`application/strategic-merge-patch+json`), built-in kinds only.
    Strategic,
    /// Server-side apply (`application/apply-patch+yaml`).
    Apply {
        /// Take ownership of fields other managers own instead of failing with 409.
        force: bool,
    },
}

/// A patch and its format.
#[derive(Debug, Clone, Copy)]
pub struct Patch<'a> {
    /// The format.
    pub kind: PatchKind,
    /// The patch document.
    pub body: &'a Value,
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
        json_patch::patch(object, std::slice::from_ref(operation)).map_err(|e| {
            if matches!(operation, json_patch::PatchOperation::Test(_)) {
                // A failed test says only this, with empty details, on the real server.
                ApiError::new(
                    422,
                    "Invalid",
                    "the server rejected our request due to an error in our request",
                )
                .with_details(json!({}))
            } else {
                ApiError::new(422, "Invalid", e.to_string())
            }
        })?;
    }
    Ok(())
}

fn strategic_error(error: &StrategicMergeError) -> ApiError {
    match error.status_code() {
        415 => ApiError::unsupported_media_type(
            "application/strategic-merge-patch+json",
            &[
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/apply-patch+yaml",
            ],
        ),
        400 => ApiError::bad_request(error.to_string()),
        _ => ApiError::internal(error.to_string()),
    }
}

/// `current` with a JSON, merge or strategic patch applied.
fn patched(resource: &ResourceType, current: &Value, patch: Patch<'_>) -> Result<Value, ApiError> {
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
        PatchKind::Strategic => {
            strategic::strategic_merge(
                &mut object,
                patch.body,
                &resource.api_version(),
                &resource.kind,
            )
            .map_err(|e| strategic_error(&e))?;
        }
        PatchKind::Apply { .. } => return Err(ApiError::internal("apply is not a merge")),
    }
    Ok(object)
}

fn apply_error(error: ApplyError) -> ApiError {
    match &error {
        ApplyError::Conflict { conflicts } => {
            let causes: Vec<Value> = conflicts
                .iter()
                .map(|c| json!({ "reason": "FieldManagerConflict", "message": c.cause_message(), "field": c.field }))
                .collect();
            // The apply conflict names no object: its details carry only the causes.
            ApiError::new(409, "Conflict", error.to_string())
                .with_details(json!({ "causes": causes }))
        }
        _ => ApiError::bad_request(error.to_string()),
    }
}

impl Cluster {
    /// Applies a patch to an object (or, for `Part::Status`, to its status). Server-side apply creates
    /// the object when it does not exist.
    pub fn patch(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        patch: Patch<'_>,
        part: Part,
        params: &WriteParams,
    ) -> Result<Stored, ApiError> {
        if let PatchKind::Apply { force } = patch.kind {
            return self.server_side_apply(
                resource,
                namespace,
                name,
                patch.body.clone(),
                force,
                part,
                params,
            );
        }
        self.replace(resource, namespace, name, part, params, |current| {
            let mut object = patched(resource, current, patch)?;
            check_kind(&self.registry, resource, &mut object)?;
            check_name(&object, name)?;
            Ok(object)
        })
    }

    #[allow(clippy::too_many_arguments, reason = "the parts of one apply request")]
    fn server_side_apply(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        mut applied: Value,
        force: bool,
        part: Part,
        params: &WriteParams,
    ) -> Result<Stored, ApiError> {
        if params.field_manager.is_empty() {
            return Err(ApiError::invalid(
                &PatchOptions,
                "",
                vec![field::required(
                    "fieldManager",
                    "is required for apply patch",
                )],
            ));
        }
        if !applied.is_object() {
            return Err(apply_error(ApplyError::NotAnObject {
                found: json_type(&applied),
            }));
        }
        check_kind(&self.registry, resource, &mut applied)?;
        if !meta::meta_str(&applied, "name").is_empty() {
            check_name(&applied, name)?;
        }
        check_namespace(resource, namespace, &mut applied)?;
        meta::metadata_mut(&mut applied).insert("name".into(), json!(name));
        if part == Part::Main
            && resource.status_subresource
            && let Some(map) = applied.as_object_mut()
        {
            map.remove("status");
        }
        let key = key(resource, namespace, name);
        let context = Context {
            resource,
            manager: &params.field_manager,
            now: meta::now(),
        };
        let api_version = resource.api_version();
        let base = ApplyRequest {
            live: None,
            applied: &applied,
            manager: &params.field_manager,
            force,
            subresource: (part == Part::Status).then_some("status"),
            now: &context.now,
            api_version: &api_version,
            kind: &resource.kind,
        };
        self.commit(resource, &key, params, |view, current| {
            let schema = resource.schema.as_ref();
            match current {
                None if part == Part::Status => Err(ApiError::not_found(resource, name)),
                None => {
                    let object = apply::apply_with_schema(base, schema).map_err(apply_error)?;
                    let object = conversion::to_storage(resource, object);
                    context
                        .create(self, view, &key, object, false)
                        .map(Decision::Put)
                }
                Some(current) => {
                    let old = current.object();
                    let live = conversion::to_view(resource, old);
                    let new = apply::apply_with_schema(
                        ApplyRequest {
                            live: Some(&live),
                            ..base
                        },
                        schema,
                    )
                    .map_err(apply_error)?;
                    context.update(old, conversion::to_storage(resource, new), part, false)
                }
            }
        })
    }
}

/// Names used in the 422 for an apply without a field manager.
struct PatchOptions;

impl Named for PatchOptions {
    fn group(&self) -> &str {
        "meta.k8s.io"
    }
    fn plural(&self) -> &str {
        "patchoptions"
    }
    fn kind(&self) -> &str {
        "PatchOptions"
    }
}
