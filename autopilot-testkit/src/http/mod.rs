//! The HTTP face of the server: routing, request bodies, fault injection and `Status` error responses.

mod list;
mod negotiate;
mod path;
mod resources;
mod scale;
mod watch;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::sync::watch as signal;

use crate::cluster::Cluster;
use crate::status::ApiError;
use crate::{discovery, openapi};
use path::Route;

/// What every request handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The cluster state.
    pub cluster: Arc<Cluster>,
    /// Becomes `true` when the listener stops; open watches end.
    pub stopping: signal::Receiver<bool>,
    /// `host:port` the server listens on.
    pub address: String,
}

/// The router serving the Kubernetes API.
pub fn router(state: AppState) -> Router {
    Router::new().fallback(dispatch).with_state(state)
}

/// Query parameters, last value wins.
pub type Query = HashMap<String, String>;

fn query_of(request: &Request) -> Query {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(request.uri())
        .map(|q| q.0.into_iter().collect())
        .unwrap_or_default()
}

async fn dispatch(State(state): State<AppState>, request: Request) -> Response {
    let route = path::route(request.uri().path());
    let method = request.method().clone();
    if let Route::Resource(path) = route {
        return serve_resource(state, path, request).await;
    }
    if method != Method::GET && method != Method::HEAD {
        return error(&ApiError::method_not_allowed());
    }
    let cluster = &state.cluster;
    let document = match route.clone() {
        Route::Version => Some(discovery::version()),
        Route::Health => return (StatusCode::OK, "ok").into_response(),
        Route::CoreVersions | Route::Groups => {
            let core = route == Route::CoreVersions;
            if let Some(version) = aggregated_version(request.headers()) {
                let document = discovery::aggregated(&cluster.registry, core, version);
                let mut response = json(StatusCode::OK, &document);
                let content_type = format!(
                    "application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"
                );
                if let Ok(value) = HeaderValue::from_str(&content_type) {
                    response.headers_mut().insert(header::CONTENT_TYPE, value);
                }
                return response;
            }
            Some(if core {
                discovery::core_versions(&state.address)
            } else {
                discovery::group_list(&cluster.registry)
            })
        }
        Route::Group(group) => discovery::group(&cluster.registry, &group),
        Route::OpenApiV2 => Some(openapi::v2(&cluster.registry)),
        Route::OpenApiV3Index => Some(openapi::v3_index(&cluster.registry)),
        Route::OpenApiV3(group, version) => openapi::v3(&cluster.registry, &group, &version),
        Route::GroupVersion(group, version) => {
            discovery::resource_list(&cluster.registry, &group, &version)
        }
        _ => None,
    };
    match document {
        Some(document) => json(StatusCode::OK, &document),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            crate::status::PAGE_NOT_FOUND,
        )
            .into_response(),
    }
}

/// The aggregated discovery version the client prefers, if it asks for one (`v2` or `v2beta1`).
fn aggregated_version(headers: &HeaderMap) -> Option<&'static str> {
    let accept = headers.get(header::ACCEPT)?.to_str().ok()?;
    for item in accept.split(',') {
        let params: Vec<&str> = item.split(';').map(str::trim).collect();
        if params.first() != Some(&"application/json") {
            continue;
        }
        let has = |p: &str| params.contains(&p);
        if !has("as=APIGroupDiscoveryList") || !has("g=apidiscovery.k8s.io") {
            if params.len() == 1 {
                return None;
            }
            continue;
        }
        if has("v=v2") {
            return Some("v2");
        }
        if has("v=v2beta1") {
            return Some("v2beta1");
        }
    }
    None
}

async fn serve_resource(state: AppState, path: path::ResourcePath, request: Request) -> Response {
    let faults = &state.cluster.faults;
    let latency = faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(code) = faults.take_failure() {
        return error(&injected(code, &path));
    }
    let query = query_of(&request);
    let (parts, body) = request.into_parts();
    let body = match read_body(&parts.headers, body, state.cluster.settings.max_body_bytes).await {
        Ok(body) => body,
        Err(e) => return error(&e),
    };
    let call = resources::Call {
        state: &state,
        method: &parts.method,
        headers: &parts.headers,
        query: &query,
        path: &path,
        body,
    };
    match resources::handle(call).await {
        Ok(response) => response,
        Err(e) => error(&e),
    }
}

fn injected(code: u16, path: &path::ResourcePath) -> ApiError {
    match code {
        429 => ApiError::too_many_requests(),
        409 => ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                path.plural,
                path.name.as_deref().unwrap_or_default()
            ),
        ),
        500 => ApiError::internal("injected fault"),
        other => ApiError::new(other, "", format!("injected fault ({other})")),
    }
}

async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(ApiError::too_large(limit));
    }
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::too_large(limit))
}

/// A JSON response.
pub fn json(status: StatusCode, value: &Value) -> Response {
    json_bytes(
        status,
        Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
    )
}

/// A response with a JSON body already encoded.
pub fn json_bytes(status: StatusCode, body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The `Status` response for a failure.
pub fn error(error: &ApiError) -> Response {
    if error.is_page_not_found() {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            crate::status::PAGE_NOT_FOUND,
        )
            .into_response();
    }
    let status = StatusCode::from_u16(error.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json(status, &error.to_status());
    if let Some(seconds) = error.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}
