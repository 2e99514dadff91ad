//! Resource endpoints: get, list, create, update, patch, delete, deletecollection, and the `status`, `scale`
//! and `finalize` subresources.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::negotiate::{self, Representation, negotiate};
use super::path::ResourcePath;
use super::scale::{scale_of, write_scale};
use super::{AppState, Query, json_bytes, list, watch};
use crate::cluster::key;
use crate::conversion::to_view;
use crate::field_validation;
use crate::filter::Filter;
use crate::meta::Part;
use crate::registry::ResourceType;
use crate::status::{self, ApiError};
use crate::store::Stored;
use crate::write::{DeleteParams, Patch, PatchKind, Propagation, WriteParams};

/// One resource request.
pub struct Call<'a> {
    /// Server state.
    pub state: &'a AppState,
    /// HTTP method.
    pub method: &'a Method,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// Query parameters.
    pub query: &'a Query,
    /// The parsed path.
    pub path: &'a ResourcePath,
    /// The request body.
    pub body: Bytes,
}

/// Which endpoint of an object the request addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Main,
    Status,
    Scale,
    Finalize,
}

/// Serves a resource request.
pub async fn handle(call: Call<'_>) -> Result<Response, ApiError> {
    let cluster = &call.state.cluster;
    let path = call.path;
    let resource = cluster
        .registry
        .find(&path.group, &path.version, &path.plural)
        .ok_or_else(ApiError::page_not_found)?;
    if path.namespace.is_some() && !resource.namespaced {
        return Err(ApiError::page_not_found());
    }
    let endpoint = match path.subresource.as_deref() {
        None => Endpoint::Main,
        Some("status") if resource.status_subresource => Endpoint::Status,
        Some("scale") if resource.scale.is_some() => Endpoint::Scale,
        Some("finalize") if !resource.custom && resource.kind == "Namespace" => Endpoint::Finalize,
        Some(_) => return Err(ApiError::unknown_resource()),
    };
    let representation = negotiate(call.headers, call.query)?;
    let params = WriteParams {
        dry_run: call.query.get("dryRun").is_some_and(|v| v == "All"),
        field_manager: field_manager(call.query, call.headers),
    };
    let namespace = path.namespace.as_deref();
    let watching = path.watch
        || call
            .query
            .get("watch")
            .is_some_and(|v| v == "true" || v == "1");
    match (call.method, path.name.as_deref()) {
        (&Method::GET, None) if endpoint == Endpoint::Main && watching => {
            list::check_watch(call.query)?;
            watch::serve(call.state, resource, namespace, call.query, representation)
        }
        (&Method::GET, None) if endpoint == Endpoint::Main => {
            list::serve(&call, &resource, representation).await
        }
        (&Method::GET, Some(name)) if !watching => {
            list::reach_get_version(call.query, &cluster.store).await?;
            let stored = cluster
                .store
                .get(&resource.storage, &key(&resource, namespace, name))
                .ok_or_else(|| ApiError::not_found(&*resource, name))?;
            if endpoint == Endpoint::Main && representation != Representation::Object {
                return Ok(represented(&resource, representation, &stored));
            }
            respond(&resource, endpoint, StatusCode::OK, &stored)
        }
        (&Method::POST, None)
            if endpoint == Endpoint::Main && (namespace.is_some() || !resource.namespaced) =>
        {
            let mut body = parse_body(call.headers, &call.body, &resource)?;
            let warnings = unknown_fields(call.query, &resource, &mut body, "CreateOptions")?;
            let stored = cluster.create(&resource, namespace, body, &params)?;
            respond(&resource, endpoint, StatusCode::CREATED, &stored)
                .map(|response| warn(response, &warnings))
        }
        (&Method::PUT, Some(name)) => {
            let mut body = parse_body(call.headers, &call.body, &resource)?;
            let warnings = unknown_fields(call.query, &resource, &mut body, "UpdateOptions")?;
            let stored = match endpoint {
                Endpoint::Main => {
                    let (stored, created) =
                        cluster.put(&resource, namespace, name, body, &params)?;
                    if created {
                        return respond(&resource, endpoint, StatusCode::CREATED, &stored)
                            .map(|response| warn(response, &warnings));
                    }
                    stored
                }
                Endpoint::Status => {
                    cluster.update(&resource, namespace, name, body, Part::Status, &params)?
                }
                Endpoint::Scale => write_scale(&call, &resource, name, body, &params)?,
                Endpoint::Finalize => finalize(&call, &resource, name, body, &params)?,
            };
            respond(&resource, endpoint, StatusCode::OK, &stored)
                .map(|response| warn(response, &warnings))
        }
        (&Method::PATCH, Some(name)) if endpoint != Endpoint::Finalize => {
            patch(&call, &resource, name, endpoint, &params)
        }
        (&Method::DELETE, Some(name)) if endpoint == Endpoint::Main => {
            let options = delete_params(call.query, &call.body)?;
            let deleted = cluster.delete(&resource, namespace, name, &options, &params)?;
            if deleted.removed && !resource.returns_deleted_object {
                let uid = crate::meta::meta_str(deleted.stored.object(), "uid");
                return Ok(super::json(
                    StatusCode::OK,
                    &status::success(&*resource, name, uid),
                ));
            }
            respond(&resource, endpoint, StatusCode::OK, &deleted.stored)
        }
        (&Method::DELETE, None) if endpoint == Endpoint::Main => {
            let options = delete_params(call.query, &call.body)?;
            let filter = selection(call.query, &resource)?;
            let mut items = Vec::new();
            let page = cluster
                .store
                .list(&resource.storage, namespace, None, None, |o| {
                    filter.matches(o.object())
                });
            for (ns, name) in page.items.iter().map(|s| crate::store::key_of(s.object())) {
                match cluster.delete(&resource, Some(&ns), &name, &options, &params) {
                    Ok(deleted) => items.push(encoded(&resource, &deleted.stored)),
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(json_bytes(
                StatusCode::OK,
                list::list_body(
                    &resource,
                    cluster.store.resource_version(),
                    None,
                    None,
                    &items,
                ),
            ))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// The label and field selectors of a request.
pub fn selection(query: &Query, resource: &ResourceType) -> Result<Filter, ApiError> {
    let get = |name: &str| query.get(name).map(String::as_str);
    Filter::parse(resource, get("labelSelector"), get("fieldSelector"))
}

/// Drops the body's unknown fields as the `fieldValidation` parameter asks (nothing when it is absent);
/// returns the warnings to send.
fn unknown_fields(
    query: &Query,
    resource: &ResourceType,
    body: &mut Value,
    options: &'static str,
) -> Result<Vec<String>, ApiError> {
    let value = query.get("fieldValidation").map(String::as_str);
    match field_validation::directive(value, options)? {
        Some(directive) => {
            field_validation::check(resource, body, directive, options == "PatchOptions")
        }
        None => Ok(Vec::new()),
    }
}

/// Adds a `Warning` header per message, as the server sends them.
fn warn(mut response: Response, warnings: &[String]) -> Response {
    for warning in warnings {
        if let Ok(value) = HeaderValue::from_str(&format!("299 - {warning:?}")) {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    response
}

/// The `fieldManager` parameter, or (as the server does) the user agent up to its first `/`.
fn field_manager(query: &Query, headers: &HeaderMap) -> String {
    if let Some(manager) = query.get("fieldManager").filter(|m| !m.is_empty()) {
        return manager.clone();
    }
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown");
    agent.split('/').next().unwrap_or("unknown").to_string()
}

fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map_or("", str::trim)
}

/// Decodes a JSON, YAML or (for the kinds kubectl creates) protobuf request body.
fn parse_body(
    headers: &HeaderMap,
    body: &Bytes,
    resource: &ResourceType,
) -> Result<Value, ApiError> {
    let summary = || {
        let shown: String = body.iter().take(30).map(|b| format!("{b:02x}")).collect();
        format!("{shown}{}", if body.len() > 30 { "..." } else { "" })
    };
    match content_type(headers) {
        "application/yaml" => serde_saphyr::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the object provided is unrecognized (must be of type {}): couldn't get version/kind; yaml parse error: {e}",
                resource.kind
            ))
        }),
        "application/json" | "" => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the object provided is unrecognized (must be of type {}): couldn't get version/kind; json parse error: {e} ({})",
                resource.kind,
                summary()
            ))
        }),
        // The typed kinds kubectl creates; anything else is refused as before.
        "application/vnd.kubernetes.protobuf" => crate::protobuf::decode(body).map_err(|error| {
            tracing::debug!(%error, kind = resource.kind, "protobuf body not decoded");
            ApiError::unsupported_media_type(
                "application/vnd.kubernetes.protobuf",
                &["application/json", "application/yaml"],
            )
        }),
        other => Err(ApiError::unsupported_media_type(other, &["application/json", "application/yaml"])),
    }
}

fn patch(
    call: &Call<'_>,
    resource: &Arc<ResourceType>,
    name: &str,
    endpoint: Endpoint,
    params: &WriteParams,
) -> Result<Response, ApiError> {
    let content_type = content_type(call.headers);
    let kind = match content_type {
        "application/json-patch+json" => PatchKind::Json,
        "application/merge-patch+json" => PatchKind::Merge,
        "application/strategic-merge-patch+json" => PatchKind::Strategic,
        "application/apply-patch+yaml" | "application/apply-patch+cbor" => PatchKind::Apply {
            force: call.query.get("force").is_some_and(|v| v == "true"),
        },
        other => {
            let mut accepted = vec![
                "application/json-patch+json",
                "application/merge-patch+json",
            ];
            if !resource.custom {
                accepted.push("application/strategic-merge-patch+json");
            }
            accepted.push("application/apply-patch+yaml");
            return Err(ApiError::unsupported_media_type(other, &accepted));
        }
    };
    let mut patch: Value = match kind {
        PatchKind::Apply { .. } => serde_json::from_slice(&call.body)
            .or_else(|_| serde_saphyr::from_slice(&call.body))
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?,
        _ => serde_json::from_slice(&call.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?,
    };
    let warnings = match kind {
        PatchKind::Merge | PatchKind::Strategic if endpoint == Endpoint::Main => {
            unknown_fields(call.query, resource, &mut patch, "PatchOptions")?
        }
        _ => Vec::new(),
    };
    let cluster = &call.state.cluster;
    let namespace = call.path.namespace.as_deref();
    let stored = match endpoint {
        Endpoint::Scale => {
            let current = cluster
                .store
                .get(&resource.storage, &key(resource, namespace, name))
                .ok_or_else(|| ApiError::not_found(&**resource, name))?;
            let mut scale = scale_of(resource, current.object());
            match kind {
                PatchKind::Json => crate::write::apply_json_patch(&mut scale, &patch)?,
                _ => json_patch::merge(&mut scale, &patch),
            }
            write_scale(call, resource, name, scale, params)?
        }
        _ => {
            let part = if endpoint == Endpoint::Status {
                Part::Status
            } else {
                Part::Main
            };
            // Apply takes its manager only from the parameter, never from the user agent.
            let mut params = params.clone();
            if matches!(kind, PatchKind::Apply { .. }) {
                params.field_manager = call.query.get("fieldManager").cloned().unwrap_or_default();
            }
            cluster.patch(
                resource,
                namespace,
                name,
                Patch { kind, body: &patch },
                part,
                &params,
            )?
        }
    };
    respond(resource, endpoint, StatusCode::OK, &stored).map(|response| warn(response, &warnings))
}

/// `PUT namespaces/{name}/finalize`: replaces `spec.finalizers`.
fn finalize(
    call: &Call<'_>,
    resource: &Arc<ResourceType>,
    name: &str,
    body: Value,
    params: &WriteParams,
) -> Result<Stored, ApiError> {
    let finalizers = body
        .pointer("/spec/finalizers")
        .cloned()
        .unwrap_or(json!([]));
    let patch = json!({ "spec": { "finalizers": finalizers } });
    call.state.cluster.patch(
        resource,
        None,
        name,
        Patch {
            kind: PatchKind::Merge,
            body: &patch,
        },
        Part::Main,
        params,
    )
}

fn respond(
    resource: &ResourceType,
    endpoint: Endpoint,
    code: StatusCode,
    stored: &Stored,
) -> Result<Response, ApiError> {
    if endpoint == Endpoint::Scale {
        return Ok(super::json(code, &scale_of(resource, stored.object())));
    }
    Ok(json_bytes(code, encoded(resource, stored)))
}

/// One object in a non-object representation (Table or metadata).
fn represented(
    resource: &ResourceType,
    representation: Representation,
    stored: &Stored,
) -> Response {
    let object = &*to_view(resource, stored.object());
    let body = match representation {
        Representation::Table(include) => {
            let rv = crate::meta::meta_str(object, "resourceVersion");
            negotiate::table(
                resource,
                &[object],
                include,
                json!({ "resourceVersion": rv }),
            )
        }
        _ => negotiate::partial_metadata(object),
    };
    let mut response = super::json(StatusCode::OK, &body);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, representation.content_type(false));
    response
}

/// The object's JSON as served at the request's version (custom resources are not converted beyond
/// their `apiVersion`).
pub fn encoded(resource: &ResourceType, stored: &Stored) -> Bytes {
    if crate::conversion::shown_as_stored(resource, &stored.summary.api_version) {
        return stored.json.clone();
    }
    let object = crate::conversion::to_view(resource, stored.object());
    Bytes::from(serde_json::to_vec(&*object).unwrap_or_default())
}

fn delete_params(query: &Query, body: &Bytes) -> Result<DeleteParams, ApiError> {
    let options: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?
    };
    let policy = query
        .get("propagationPolicy")
        .map(String::as_str)
        .or_else(|| options.get("propagationPolicy").and_then(Value::as_str));
    let orphan = options
        .get("orphanDependents")
        .and_then(Value::as_bool)
        .or_else(|| query.get("orphanDependents").map(|v| v == "true"));
    let propagation = match (policy, orphan) {
        (Some("Foreground"), _) => Propagation::Foreground,
        (Some("Orphan"), _) | (None, Some(true)) => Propagation::Orphan,
        (Some("Background") | None, _) => Propagation::Background,
        (Some(other), _) => {
            return Err(ApiError::bad_request(format!(
                "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
            )));
        }
    };
    let precondition = |field: &str| {
        options
            .pointer(&format!("/preconditions/{field}"))
            .and_then(Value::as_str)
            .map(ToString::to_string)
    };
    Ok(DeleteParams {
        propagation,
        uid: precondition("uid"),
        resource_version: precondition("resourceVersion"),
    })
}
