//! Watch streams: ADDED/MODIFIED/DELETED events in resourceVersion order, bookmarks, timeouts, initial
//! events, and 410 Expired for resourceVersions older than the kept history.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch as signal};
use tokio::time::{Instant, Interval};

use super::negotiate::{self, Representation};
use super::resources::encoded;
use super::{AppState, Query};
use crate::conversion::{shown_as_stored, to_view};
use crate::filter::Filter;
use crate::registry::ResourceType;
use crate::status::ApiError;
use crate::store::{Change, EventType, Stored};

/// Server-side default when a client gives no `timeoutSeconds` (the real server picks 30-60 minutes).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

struct Stream {
    resource: Arc<ResourceType>,
    namespace: Option<String>,
    filter: Filter,
    representation: Representation,
    pending: VecDeque<Bytes>,
    receiver: broadcast::Receiver<Arc<Change>>,
    last_rv: u64,
    bookmarks: Option<Interval>,
    deadline: Instant,
    cuts: signal::Receiver<u64>,
    stopping: signal::Receiver<bool>,
    done: bool,
}

use crate::store::watch_line as event;

fn bookmark(resource: &ResourceType, rv: u64, initial_end: bool) -> Bytes {
    let mut metadata =
        json!({ "resourceVersion": rv.to_string(), "creationTimestamp": Value::Null });
    if initial_end {
        metadata["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
    }
    let object = json!({ "kind": resource.kind, "apiVersion": resource.api_version(), "metadata": metadata });
    event("BOOKMARK", object.to_string().as_bytes())
}

fn error_event(error: &ApiError) -> Bytes {
    event("ERROR", error.to_status().to_string().as_bytes())
}

impl Stream {
    /// The event this watcher gets for `change`, if any: objects entering the selection are ADDED,
    /// objects leaving it DELETED, as the real server reports them.
    fn event_for(&self, change: &Change) -> Option<Bytes> {
        let in_scope = *change.storage == *self.resource.storage
            && self
                .namespace
                .as_deref()
                .is_none_or(|ns| change.key.0 == ns);
        if !in_scope {
            return None;
        }
        let plain = self.representation == Representation::Object
            && shown_as_stored(&self.resource, &change.summary().api_version);
        // Objects shown as stored to a watcher of everything need no look inside.
        if plain && self.filter.is_everything() {
            return Some(change.line());
        }
        let stored = change.stored();
        let kind = if self.filter.is_everything() {
            change.event
        } else {
            let now = self
                .filter
                .matches(&to_view(&self.resource, stored.object()));
            let before = change
                .previous()
                .is_some_and(|p| self.filter.matches(&to_view(&self.resource, p.object())));
            match (change.event, before, now) {
                (EventType::Modified, true, true) => EventType::Modified,
                (EventType::Modified, false, true) | (EventType::Added, _, true) => {
                    EventType::Added
                }
                (EventType::Modified, true, false) | (EventType::Deleted, _, true) => {
                    EventType::Deleted
                }
                _ => return None,
            }
        };
        if kind == change.event && plain {
            return Some(change.line());
        }
        Some(event(kind.as_str(), &self.render(&stored)))
    }

    /// `first` followed by the events already waiting, in one chunk: under load this keeps the number of
    /// writes to the connection far below the number of events.
    fn with_queued(&mut self, first: Bytes) -> Bytes {
        const MAX_CHUNK: usize = 64 * 1024;
        let mut size = first.len();
        let mut lines = vec![first];
        while size < MAX_CHUNK {
            let change = match self.receiver.try_recv() {
                Ok(change) => change,
                Err(broadcast::error::TryRecvError::Empty) => break,
                // Lagged or closed: end after this chunk, the client resumes from its last resourceVersion.
                Err(_) => {
                    self.done = true;
                    break;
                }
            };
            self.last_rv = change.rv;
            if let Some(line) = self.event_for(&change) {
                size += line.len();
                lines.push(line);
            }
        }
        match lines.as_slice() {
            [only] => only.clone(),
            _ => Bytes::from(lines.concat()),
        }
    }

    /// An object as the client asked to see it.
    fn render(&self, stored: &Stored) -> Bytes {
        if self.representation == Representation::Object {
            return encoded(&self.resource, stored);
        }
        let object = &*to_view(&self.resource, stored.object());
        let value = match self.representation {
            Representation::Object => return encoded(&self.resource, stored),
            Representation::Table(include) => {
                let rv = crate::meta::meta_str(object, "resourceVersion");
                negotiate::table(
                    &self.resource,
                    &[object],
                    include,
                    json!({ "resourceVersion": rv }),
                )
            }
            Representation::Metadata => negotiate::partial_metadata(object),
        };
        Bytes::from(serde_json::to_vec(&value).unwrap_or_default())
    }

    fn wanted_object(&self, stored: &Stored) -> bool {
        if self.namespace.is_none() && self.filter.is_everything() {
            return true;
        }
        self.namespace
            .as_deref()
            .is_none_or(|ns| crate::meta::meta_str(stored.object(), "namespace") == ns)
            && self
                .filter
                .matches(&to_view(&self.resource, stored.object()))
    }

    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(line) = self.pending.pop_front() {
                return Some(line);
            }
            if self.done {
                return None;
            }
            let tick = async {
                match self.bookmarks.as_mut() {
                    Some(interval) => {
                        interval.tick().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                biased;
                received = self.receiver.recv() => match received {
                    Ok(change) => {
                        self.last_rv = change.rv;
                        if let Some(line) = self.event_for(&change) {
                            return Some(self.with_queued(line));
                        }
                    }
                    // A watcher too slow to keep up is closed, as the real server does; the client resumes
                    // from its last resourceVersion.
                    Err(_) => self.done = true,
                },
                () = tick => return Some(bookmark(&self.resource, self.last_rv, false)),
                () = tokio::time::sleep_until(self.deadline) => self.done = true,
                _ = self.cuts.changed() => self.done = true,
                _ = self.stopping.changed() => self.done = true,
            }
        }
    }
}

/// Starts a watch on `resource` (in `namespace`, or everywhere).
pub fn serve(
    state: &AppState,
    resource: Arc<ResourceType>,
    namespace: Option<&str>,
    query: &Query,
    representation: Representation,
) -> Result<Response, ApiError> {
    let filter = super::resources::selection(query, &resource)?;
    let flag = |name: &str| query.get(name).is_some_and(|v| v == "true" || v == "1");
    let since = match query.get("resourceVersion").map(String::as_str) {
        None | Some("" | "0") => None,
        Some(rv) => Some(rv.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!(
                "resourceVersion: Invalid value: {rv:?}: must be a non-negative integer"
            ))
        })?),
    };
    let timeout =
        match query.get("timeoutSeconds") {
            Some(seconds) => Duration::from_secs(seconds.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid timeoutSeconds {seconds:?}"))
            })?),
            None => DEFAULT_TIMEOUT,
        };
    let bookmarks = flag("allowWatchBookmarks");
    let initial_events = query.get("sendInitialEvents").map(|v| v == "true");
    let cluster = &state.cluster;
    let mut pending = VecDeque::new();
    let subscription = match cluster.store.subscribe(&resource.storage, since) {
        Ok(subscription) => subscription,
        Err(error) => {
            pending.push_back(error_event(&error));
            return Ok(respond(futures::stream::iter(
                pending.into_iter().map(Ok::<_, std::io::Error>),
            )));
        }
    };
    let mut stream = Stream {
        namespace: namespace.map(ToString::to_string),
        filter,
        representation,
        pending,
        receiver: subscription.receiver,
        last_rv: subscription.rv,
        bookmarks: None,
        deadline: Instant::now() + timeout,
        cuts: cluster.faults.cuts(),
        stopping: state.stopping.clone(),
        done: false,
        resource,
    };
    if since.is_none() && initial_events != Some(false) {
        let lines: Vec<Bytes> = subscription
            .snapshot
            .iter()
            .filter(|s| stream.wanted_object(s))
            .map(|s| event("ADDED", &stream.render(s)))
            .collect();
        stream.pending.extend(lines);
        if initial_events == Some(true) && bookmarks {
            stream
                .pending
                .push_back(bookmark(&stream.resource, subscription.rv, true));
        }
    }
    for change in &subscription.backlog {
        if let Some(line) = stream.event_for(change) {
            stream.pending.push_back(line);
        }
    }
    if bookmarks {
        let period = cluster.settings.bookmark_interval;
        stream.bookmarks = Some(tokio::time::interval_at(Instant::now() + period, period));
    }
    let body = futures::stream::unfold(stream, |mut stream| async move {
        stream
            .next()
            .await
            .map(|line| (Ok::<_, std::io::Error>(line), stream))
    });
    Ok(respond(body))
}

fn respond<S>(body: S) -> Response
where
    S: futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
{
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}
