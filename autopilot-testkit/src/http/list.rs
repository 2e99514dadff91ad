//! Lists (and gets at a resourceVersion): which state a list is served from (`resourceVersion`,
//! `resourceVersionMatch`, `continue`, as the API server reads them), selection, paging, and the list
//! body in each representation.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::Response;
use base64::Engine;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::negotiate::{self, Representation};
use super::resources::{Call, encoded, selection};
use super::{Query, json_bytes};
use crate::conversion::to_view;
use crate::registry::ResourceType;
use crate::status::{ApiError, Named};
use crate::store::{Key, Page, Store, Stored};
use crate::validation::{FieldError, FieldErrorKind};

/// How long a list waits for a resourceVersion the store has not reached yet, as the watch cache does.
const FRESHNESS_WAIT: Duration = Duration::from_secs(3);

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: u64,
    start: Key,
}

/// Which state a list is served from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The current state (no resourceVersion, or one the store has reached for `NotOlderThan`).
    Latest,
    /// Whatever the server holds (`resourceVersion=0`); the watch cache ignores `limit` then.
    Any,
    /// At least this resourceVersion.
    NotOlderThan(u64),
    /// Exactly at this resourceVersion (`Exact`, a legacy paged list, or a continued one).
    Exact(u64),
}

/// The list options of one request.
struct ListOptions {
    source: Source,
    limit: Option<usize>,
    start_after: Option<Key>,
}

/// `ListOptions.meta.k8s.io`, the subject of invalid list options.
struct ListOptionsKind;

impl Named for ListOptionsKind {
    fn group(&self) -> &str {
        "meta.k8s.io"
    }
    fn plural(&self) -> &str {
        ""
    }
    fn kind(&self) -> &str {
        "ListOptions"
    }
}

fn forbidden(detail: &str) -> FieldError {
    FieldError::new(
        "resourceVersionMatch",
        FieldErrorKind::Forbidden,
        None,
        detail,
    )
}

/// 422 for list options the server refuses (`ValidateListOptions`).
fn check_match(query: &Query, watch: bool) -> Result<(), ApiError> {
    let get = |name: &str| query.get(name).map_or("", String::as_str);
    let (rv, rv_match) = (get("resourceVersion"), get("resourceVersionMatch"));
    let initial_events = query.contains_key("sendInitialEvents");
    let continued = !get("continue").is_empty();
    let not_supported = |supported: &str| {
        FieldError::new(
            "resourceVersionMatch",
            FieldErrorKind::NotSupported,
            Some(&Value::from(rv_match)),
            &format!("supported values: {supported}"),
        )
    };
    let mut errors = Vec::new();
    if watch {
        if initial_events && rv_match != "NotOlderThan" {
            errors.push(forbidden(
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        if !rv_match.is_empty() {
            if !initial_events {
                errors.push(forbidden(
                    "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                ));
            }
            if rv_match != "NotOlderThan" {
                errors.push(not_supported("\"NotOlderThan\""));
            }
            if continued {
                errors.push(forbidden(
                    "resourceVersionMatch is forbidden when continue is provided",
                ));
            }
        }
    } else {
        if !rv_match.is_empty() {
            if rv.is_empty() {
                errors.push(forbidden(
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                ));
            }
            if continued {
                errors.push(forbidden(
                    "resourceVersionMatch is forbidden when continue is provided",
                ));
            }
            if rv_match != "Exact" && rv_match != "NotOlderThan" {
                errors.push(not_supported("\"Exact\", \"NotOlderThan\", \"\""));
            }
            if rv_match == "Exact" && rv == "0" {
                errors.push(forbidden(
                    "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                ));
            }
        }
        if initial_events {
            errors.push(FieldError::new(
                "sendInitialEvents",
                FieldErrorKind::Forbidden,
                None,
                "sendInitialEvents is forbidden for list",
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(&ListOptionsKind, "", errors))
    }
}

/// Refuses the `resourceVersionMatch` and `sendInitialEvents` combinations a watch may not use.
pub fn check_watch(query: &Query) -> Result<(), ApiError> {
    check_match(query, true)
}

/// A resourceVersion the storage layer cannot parse: the server answers with its raw parse error.
fn parse_rv(rv: &str) -> Result<u64, ApiError> {
    rv.parse().map_err(|_| {
        ApiError::new(
            500,
            "",
            format!("resourceVersion: Invalid value: {rv:?}: strconv.ParseUint: parsing {rv:?}: invalid syntax"),
        )
    })
}

fn parse(query: &Query, store: &Store) -> Result<ListOptions, ApiError> {
    check_match(query, false)?;
    let get = |name: &str| query.get(name).map_or("", String::as_str);
    let limit = match get("limit") {
        "" => None,
        limit => Some(
            limit
                .parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {limit:?}")))?,
        )
        .filter(|l| *l > 0),
    };
    let rv = get("resourceVersion");
    let token = get("continue");
    if !token.is_empty() {
        if !rv.is_empty() && rv != "0" {
            return Err(ApiError::bad_request(
                "specifying resource version is not allowed when using continue",
            ));
        }
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|raw| serde_json::from_slice::<ContinueToken>(&raw).ok())
            .ok_or_else(|| ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"))?;
        if store.is_compacted(token.rv) {
            return Err(ApiError::expired(
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
            ));
        }
        return Ok(ListOptions {
            source: Source::Exact(token.rv),
            limit,
            start_after: Some(token.start),
        });
    }
    let source = match (get("resourceVersionMatch"), rv) {
        (_, "") => Source::Latest,
        (_, "0") => Source::Any,
        ("Exact", rv) => Source::Exact(parse_rv(rv)?),
        ("NotOlderThan", rv) => Source::NotOlderThan(parse_rv(rv)?),
        // Without a match, a paged list is exact and an unpaged one not older.
        (_, rv) if limit.is_some() => Source::Exact(parse_rv(rv)?),
        (_, rv) => Source::NotOlderThan(parse_rv(rv)?),
    };
    Ok(ListOptions {
        source,
        limit: limit.filter(|_| source != Source::Any),
        start_after: None,
    })
}

/// Waits (briefly) until the store reaches `rv`; 504 `ResourceVersionTooLarge` when it does not.
async fn reach(store: &Store, rv: u64) -> Result<(), ApiError> {
    let mut changes = store.changes();
    let deadline = tokio::time::Instant::now() + FRESHNESS_WAIT;
    loop {
        let current = store.resource_version();
        if current >= rv {
            return Ok(());
        }
        match tokio::time::timeout_at(deadline, changes.recv()).await {
            Ok(Ok(_) | Err(RecvError::Lagged(_))) => {}
            Ok(Err(RecvError::Closed)) | Err(_) => {
                return Err(ApiError::new(
                    504,
                    "Timeout",
                    format!("Timeout: Too large resource version: {rv}, current: {current}"),
                )
                .with_details(json!({
                    "causes": [{ "reason": "ResourceVersionTooLarge", "message": "Too large resource version" }],
                    "retryAfterSeconds": 1,
                })));
            }
        }
    }
}

/// A get's `resourceVersion`: the object as of at least that version, waiting briefly for the store to
/// reach it (504 when it does not); none or `0` means any.
pub async fn reach_get_version(query: &Query, store: &Store) -> Result<(), ApiError> {
    match query.get("resourceVersion").map(String::as_str) {
        None | Some("" | "0") => Ok(()),
        Some(rv) => reach(store, parse_rv(rv)?).await,
    }
}

/// The page of a past state: matching objects after `start_after`, at most `limit`.
fn page_of(
    objects: Vec<Stored>,
    options: &ListOptions,
    rv: u64,
    matches: impl Fn(&Stored) -> bool,
) -> Page {
    let mut page = Page {
        items: Vec::new(),
        rv,
        next: None,
        remaining: 0,
    };
    let limit = options.limit.unwrap_or(usize::MAX);
    let after = |stored: &Stored| {
        options
            .start_after
            .as_ref()
            .is_none_or(|start| crate::store::key_of(stored.object()) > *start)
    };
    for stored in objects.into_iter().filter(after) {
        if !matches(&stored) {
            continue;
        }
        if page.items.len() < limit {
            page.items.push(stored);
        } else {
            page.remaining += 1;
        }
    }
    if page.remaining > 0 {
        page.next = page.items.last().map(|s| crate::store::key_of(s.object()));
    }
    page
}

/// Serves a list.
pub async fn serve(
    call: &Call<'_>,
    resource: &ResourceType,
    representation: Representation,
) -> Result<Response, ApiError> {
    let filter = selection(call.query, resource)?;
    let store = &call.state.cluster.store;
    let options = parse(call.query, store)?;
    let namespace = call.path.namespace.as_deref();
    // Objects are decoded only when a selector has to look inside them.
    let matches = |stored: &Stored| {
        filter.is_everything() || filter.matches(&to_view(resource, stored.object()))
    };
    let page = match options.source {
        Source::NotOlderThan(rv) | Source::Exact(rv) if rv > store.resource_version() => {
            reach(store, rv).await?;
            store.list(&resource.storage, namespace, None, options.limit, matches)
        }
        Source::Exact(rv) if rv < store.resource_version() => {
            let objects = crate::past::objects_at(store, &resource.storage, namespace, rv)?;
            page_of(objects, &options, rv, matches)
        }
        _ => store.list(
            &resource.storage,
            namespace,
            options.start_after.as_ref(),
            options.limit,
            matches,
        ),
    };
    let rv = match options.source {
        Source::Exact(rv) => rv,
        _ => page.rv,
    };
    let next = page.next.clone().map(|start| {
        let raw = serde_json::to_vec(&ContinueToken { rv, start }).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    });
    // The count of what follows is only given when nothing is filtered out.
    let selected = ["labelSelector", "fieldSelector"]
        .iter()
        .any(|p| call.query.get(*p).is_some_and(|s| !s.is_empty()));
    let remaining = (!selected).then_some(page.remaining);
    if representation != Representation::Object {
        let mut list_meta = json!({ "resourceVersion": rv.to_string() });
        if let Some(next) = next {
            list_meta["continue"] = json!(next);
            if let Some(remaining) = remaining {
                list_meta["remainingItemCount"] = json!(remaining);
            }
        }
        let views: Vec<_> = page
            .items
            .iter()
            .map(|s| to_view(resource, s.object()))
            .collect();
        let objects: Vec<&Value> = views.iter().map(|v| &**v).collect();
        let body = match representation {
            Representation::Table(include) => {
                negotiate::table(resource, &objects, include, list_meta)
            }
            _ => negotiate::partial_metadata_list(&objects, list_meta),
        };
        let mut response = super::json(StatusCode::OK, &body);
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, representation.content_type(true));
        return Ok(response);
    }
    let items: Vec<Bytes> = page.items.iter().map(|s| encoded(resource, s)).collect();
    Ok(json_bytes(
        StatusCode::OK,
        list_body(resource, rv, next, remaining, &items),
    ))
}

/// A `<Kind>List` body around already-encoded items.
pub fn list_body(
    resource: &ResourceType,
    rv: u64,
    next: Option<String>,
    remaining: Option<usize>,
    items: &[Bytes],
) -> Bytes {
    let mut metadata = json!({ "resourceVersion": rv.to_string() });
    if let Some(next) = next {
        metadata["continue"] = json!(next);
        if let Some(remaining) = remaining {
            metadata["remainingItemCount"] = json!(remaining);
        }
    }
    let head = format!(
        "{{\"kind\":{},\"apiVersion\":{},\"metadata\":{},\"items\":[",
        json!(resource.list_kind()),
        json!(resource.api_version()),
        metadata
    );
    let size = head.len() + items.iter().map(|i| i.len() + 1).sum::<usize>() + 2;
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(head.as_bytes());
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(item);
    }
    body.extend_from_slice(b"]}");
    Bytes::from(body)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Query {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn source(pairs: &[(&str, &str)]) -> Result<Source, ApiError> {
        parse(&query(pairs), &Store::new(10)).map(|o| o.source)
    }

    #[test]
    fn resource_versions_read_as_the_server_reads_them() {
        assert_eq!(source(&[]).unwrap(), Source::Latest);
        assert_eq!(source(&[("resourceVersion", "0")]).unwrap(), Source::Any);
        assert_eq!(
            source(&[("resourceVersion", "7")]).unwrap(),
            Source::NotOlderThan(7)
        );
        assert_eq!(
            source(&[("resourceVersion", "7"), ("limit", "5")]).unwrap(),
            Source::Exact(7)
        );
        assert_eq!(
            source(&[("resourceVersion", "7"), ("resourceVersionMatch", "Exact")]).unwrap(),
            Source::Exact(7)
        );
        assert_eq!(
            source(&[
                ("resourceVersion", "0"),
                ("resourceVersionMatch", "NotOlderThan")
            ])
            .unwrap(),
            Source::Any
        );
        let any = parse(
            &query(&[("resourceVersion", "0"), ("limit", "2")]),
            &Store::new(10),
        )
        .unwrap();
        assert_eq!(any.limit, None, "the watch cache ignores limit for rv=0");
        assert_eq!(source(&[("resourceVersion", "x")]).unwrap_err().code, 500);
    }

    #[test]
    fn invalid_combinations_are_refused_with_the_servers_words() {
        let error = source(&[("resourceVersionMatch", "Exact")]).unwrap_err();
        assert_eq!((error.code, error.reason), (422, "Invalid"));
        assert_eq!(
            error.message,
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"
        );
        let error =
            source(&[("resourceVersion", "0"), ("resourceVersionMatch", "Exact")]).unwrap_err();
        assert!(error.message.ends_with(
            "resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\""
        ));
        let error =
            source(&[("resourceVersion", "1"), ("resourceVersionMatch", "Newest")]).unwrap_err();
        assert!(error.message.ends_with(
            "resourceVersionMatch: Unsupported value: \"Newest\": supported values: \"Exact\", \"NotOlderThan\", \"\""
        ));
        let error = source(&[("resourceVersion", "1"), ("continue", "abc")]).unwrap_err();
        assert_eq!(
            (error.code, error.message.as_str()),
            (
                400,
                "specifying resource version is not allowed when using continue"
            )
        );
        let watch = check_watch(&query(&[("resourceVersionMatch", "NotOlderThan")])).unwrap_err();
        assert!(watch.message.ends_with(
            "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"
        ));
        let streaming = [
            ("sendInitialEvents", "true"),
            ("resourceVersionMatch", "NotOlderThan"),
        ];
        assert!(check_watch(&query(&streaming)).is_ok());
        let error = check_watch(&query(&[("sendInitialEvents", "true")])).unwrap_err();
        assert!(
            error.message.ends_with(
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"
            )
        );
        let error = source(&[("sendInitialEvents", "true")]).unwrap_err();
        assert!(
            error
                .message
                .ends_with("sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list")
        );
    }
}
