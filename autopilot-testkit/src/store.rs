//! Stored objects, the global resourceVersion counter, the change history and the change broadcast.
//!
//! One mutex guards everything so that every write gets the next resourceVersion and reaches the history and
//! the watchers in resourceVersion order. Objects are kept together with their JSON encoding, so lists and
//! watches copy bytes instead of serialising again.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use axum::body::Bytes;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::status::ApiError;

/// Identifies an object inside its collection: (namespace, name); the namespace is "" for cluster-scoped kinds.
pub type Key = (String, String);

/// A stored object: its JSON encoding, decoded on first use.
///
/// The store itself keeps only the JSON (a decoded object takes several times its size); copies handed out
/// decode when a caller looks inside, and keep that for their own lifetime.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The object encoded as JSON, with `metadata.resourceVersion` set.
    pub json: Bytes,
    /// What callers check most often, known without decoding.
    pub summary: Summary,
    object: OnceLock<Arc<Value>>,
}

/// The parts of a stored object that are read on every request and change, kept beside its JSON.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// `apiVersion`, which decides how the object is shown.
    pub api_version: Arc<str>,
    /// Whether `metadata.deletionTimestamp` is set.
    pub deleting: bool,
    /// Whether a `metadata.ownerReferences` entry names an owner uid.
    pub owned: bool,
}

impl Summary {
    fn of(object: &Value) -> Self {
        Self {
            api_version: Arc::from(
                object
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            ),
            deleting: crate::meta::is_deleting(object),
            owned: owner_uids(object).next().is_some(),
        }
    }
}

impl Stored {
    /// An object that is not (or not yet) in the store: the answer of a dry run.
    pub fn unstored(object: Value) -> Self {
        let json = serde_json::to_vec(&object).unwrap_or_default();
        Self::decoded(object, Bytes::from(json))
    }

    fn decoded(object: Value, json: Bytes) -> Self {
        Self {
            json,
            summary: Summary::of(&object),
            object: OnceLock::from(Arc::new(object)),
        }
    }

    fn from_json(json: Bytes, summary: Summary) -> Self {
        Self {
            json,
            summary,
            object: OnceLock::new(),
        }
    }

    /// The object.
    pub fn object(&self) -> &Value {
        self.object
            .get_or_init(|| Arc::new(serde_json::from_slice(&self.json).unwrap_or(Value::Null)))
    }

    /// A copy sharing the JSON but not the decoded object.
    fn undecoded(&self) -> Self {
        Self::from_json(self.json.clone(), self.summary.clone())
    }

    /// Whether both are the same stored version (not merely equal).
    fn same_version(&self, other: &Stored) -> bool {
        self.json.as_ptr() == other.json.as_ptr() && self.json.len() == other.json.len()
    }
}

/// The kind of a change, as named in watch events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// The object was created.
    Added,
    /// The object was changed.
    Modified,
    /// The object was removed.
    Deleted,
}

impl EventType {
    /// The watch event `type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One committed write.
///
/// The history keeps many changes, so a change holds its objects as JSON only and reaches the decoded object
/// through the store while it is still the live version (decoding it again otherwise).
#[derive(Debug)]
pub struct Change {
    /// The resourceVersion the write produced.
    pub rv: u64,
    /// What happened.
    pub event: EventType,
    /// Collection the object belongs to.
    pub storage: Arc<str>,
    /// The object's key.
    pub key: Key,
    /// The object after the write (its last state for deletions), as JSON.
    pub json: Bytes,
    summary: Summary,
    /// The object before the write (for modifications and deletions).
    previous: Option<Stored>,
    /// The watch event line most watchers send for this change, encoded once for all of them.
    line: OnceLock<Bytes>,
}

impl Change {
    /// What is known of the object after the write without decoding it.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// The object after the write.
    pub fn stored(&self) -> Stored {
        Stored::from_json(self.json.clone(), self.summary.clone())
    }

    /// The object before the write, for modifications and deletions.
    pub fn previous(&self) -> Option<Stored> {
        self.previous.as_ref().map(Stored::undecoded)
    }

    /// `{"type":…,"object":…}` plus newline, for a watcher that sees this change as `event` on the stored
    /// object as is.
    pub fn line(&self) -> Bytes {
        self.line
            .get_or_init(|| watch_line(self.event.as_str(), &self.json))
            .clone()
    }
}

/// One watch event as a line of JSON.
pub fn watch_line(kind: &str, object: &[u8]) -> Bytes {
    let mut line = Vec::with_capacity(object.len() + kind.len() + 22);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(kind.as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    line.extend_from_slice(object);
    line.extend_from_slice(b"}\n");
    Bytes::from(line)
}

/// What a [`Store::mutate`] closure decided.
#[derive(Debug)]
pub enum Decision {
    /// Store this object (create or replace).
    Put(Value),
    /// Remove the object; the value is its final state, reported to watchers.
    Remove(Value),
    /// Leave the stored object as it is (a no-op write).
    Unchanged,
}

/// The result of a [`Store::mutate`].
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The object as stored (or as last stored, for removals and no-ops).
    pub stored: Stored,
    /// The change that was recorded, if any.
    pub event: Option<EventType>,
}

/// One page of a list.
#[derive(Debug)]
pub struct Page {
    /// Matching objects, in key order.
    pub items: Vec<Stored>,
    /// The store's resourceVersion when the page was read.
    pub rv: u64,
    /// Key of the last returned item when more matching items remain.
    pub next: Option<Key>,
    /// How many matching items remain after this page.
    pub remaining: usize,
}

/// A new watch: what to replay, then live changes.
#[derive(Debug)]
pub struct Subscription {
    /// Current objects, when an initial state was asked for.
    pub snapshot: Vec<Stored>,
    /// Recorded changes after the requested resourceVersion, for this collection.
    pub backlog: Vec<Arc<Change>>,
    /// The store's resourceVersion when subscribing.
    pub rv: u64,
    /// Every change committed after subscribing.
    pub receiver: broadcast::Receiver<Arc<Change>>,
}

/// Read access to other objects inside a [`Store::mutate`] closure.
pub struct View<'a> {
    store: &'a Store,
}

impl View<'_> {
    /// The object stored under `key` in `storage`.
    pub fn get(&self, storage: &str, key: &Key) -> Option<Stored> {
        self.store.get(storage, key)
    }
}

#[derive(Debug, Default)]
struct Inner {
    rv: u64,
    collections: HashMap<Arc<str>, BTreeMap<Key, Stored>>,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    /// Changes at or below this resourceVersion are no longer in `history`.
    compacted: u64,
    uids: HashMap<String, (Arc<str>, Key)>,
    dependents: HashMap<String, BTreeSet<(Arc<str>, Key)>>,
    /// Each object's uid and owner uids, to update the two indexes above without decoding it again.
    links: HashMap<(Arc<str>, Key), Links>,
}

/// The object store.
#[derive(Debug)]
pub struct Store {
    inner: Mutex<Inner>,
    changes: broadcast::Sender<Arc<Change>>,
}

fn uid_of(object: &Value) -> Option<&str> {
    object.pointer("/metadata/uid").and_then(Value::as_str)
}

fn owner_uids(object: &Value) -> impl Iterator<Item = &str> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("uid").and_then(Value::as_str))
}

/// What the indexes know of one object.
#[derive(Debug, Default)]
struct Links {
    uid: Option<String>,
    owners: Vec<String>,
}

impl Inner {
    /// Updates the uid and owner indexes for the object under `key`, now `new` (`None`: removed).
    fn index(&mut self, storage: &Arc<str>, key: &Key, new: Option<&Value>) {
        let entry = (storage.clone(), key.clone());
        let old = self.links.remove(&entry).unwrap_or_default();
        for owner in &old.owners {
            if let Some(set) = self.dependents.get_mut(owner) {
                set.remove(&entry);
                if set.is_empty() {
                    self.dependents.remove(owner);
                }
            }
        }
        let Some(new) = new else {
            if let Some(uid) = &old.uid {
                self.uids.remove(uid);
            }
            return;
        };
        let links = Links {
            uid: uid_of(new).map(str::to_string),
            owners: owner_uids(new).map(str::to_string).collect(),
        };
        for owner in &links.owners {
            self.dependents
                .entry(owner.clone())
                .or_default()
                .insert(entry.clone());
        }
        if let Some(uid) = &links.uid
            && !self.uids.contains_key(uid)
        {
            self.uids.insert(uid.clone(), entry.clone());
        }
        self.links.insert(entry, links);
    }

    fn record(&mut self, change: Arc<Change>) {
        self.history.push_back(change);
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.rv;
            }
        }
    }
}

fn encode(mut object: Value, rv: u64) -> Result<Stored, ApiError> {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".to_string(), Value::String(rv.to_string()));
    }
    let json = serde_json::to_vec(&object).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Stored::decoded(object, Bytes::from(json)))
}

impl Store {
    /// An empty store keeping the last `history_limit` changes for watches to resume from.
    pub fn new(history_limit: usize) -> Self {
        let (changes, _) = broadcast::channel(history_limit.clamp(1024, 1 << 16));
        Self {
            inner: Mutex::new(Inner {
                history_limit,
                ..Inner::default()
            }),
            changes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The latest resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// The object stored under `key`.
    pub fn get(&self, storage: &str, key: &Key) -> Option<Stored> {
        self.lock()
            .collections
            .get(storage)
            .and_then(|c| c.get(key))
            .cloned()
    }

    /// Writes what `decide` makes of the object under `key`, as one atomic step.
    ///
    /// `decide` runs without the store's lock, so writes to different objects proceed in parallel; when the
    /// object changed meanwhile, `decide` runs again on the new state (the API server's optimistic update
    /// loop). Only the commit (resourceVersion, encoding, history, broadcast) is serialised.
    pub fn mutate(
        &self,
        storage: &Arc<str>,
        key: &Key,
        mut decide: impl FnMut(&View<'_>, Option<&Stored>) -> Result<Decision, ApiError>,
    ) -> Result<Outcome, ApiError> {
        loop {
            let current = self.get(storage, key);
            let decision = decide(&View { store: self }, current.as_ref())?;
            let mut inner = self.lock();
            let now = inner.collections.get(storage).and_then(|c| c.get(key));
            let unchanged = match (now, &current) {
                (None, None) => true,
                (Some(now), Some(read)) => now.same_version(read),
                _ => false,
            };
            if unchanged {
                return self.commit(&mut inner, storage, key, current, decision);
            }
        }
    }

    fn commit(
        &self,
        inner: &mut Inner,
        storage: &Arc<str>,
        key: &Key,
        current: Option<Stored>,
        decision: Decision,
    ) -> Result<Outcome, ApiError> {
        let (event, stored) = match decision {
            Decision::Unchanged => {
                let stored = current.ok_or_else(|| ApiError::internal("no object to keep"))?;
                return Ok(Outcome {
                    stored,
                    event: None,
                });
            }
            Decision::Put(object) => {
                let rv = inner.rv + 1;
                let stored = encode(object, rv)?;
                inner.rv = rv;
                let event = if current.is_some() {
                    EventType::Modified
                } else {
                    EventType::Added
                };
                inner.index(storage, key, Some(stored.object()));
                inner
                    .collections
                    .entry(storage.clone())
                    .or_default()
                    .insert(key.clone(), stored.undecoded());
                (event, stored)
            }
            Decision::Remove(object) => {
                if current.is_none() {
                    return Err(ApiError::internal("no object to remove"));
                }
                let rv = inner.rv + 1;
                let stored = encode(object, rv)?;
                inner.rv = rv;
                inner.index(storage, key, None);
                if let Some(collection) = inner.collections.get_mut(storage) {
                    collection.remove(key);
                }
                (EventType::Deleted, stored)
            }
        };
        let change = Arc::new(Change {
            rv: inner.rv,
            event,
            storage: storage.clone(),
            key: key.clone(),
            json: stored.json.clone(),
            summary: stored.summary.clone(),
            previous: current.map(|c| c.undecoded()),
            line: OnceLock::new(),
        });
        inner.record(change.clone());
        // No receivers is fine: nobody watches.
        let _ = self.changes.send(change);
        Ok(Outcome {
            stored,
            event: Some(event),
        })
    }

    /// Runs `decide` against the current state without writing anything (dry runs).
    pub fn inspect<R>(
        &self,
        storage: &str,
        key: &Key,
        decide: impl FnOnce(&View<'_>, Option<&Stored>) -> R,
    ) -> R {
        let current = self.get(storage, key);
        decide(&View { store: self }, current.as_ref())
    }

    /// Objects of `storage` (in `namespace` if given) after `start_after`, at most `limit`, that pass `filter`.
    pub fn list(
        &self,
        storage: &str,
        namespace: Option<&str>,
        start_after: Option<&Key>,
        limit: Option<usize>,
        filter: impl Fn(&Stored) -> bool,
    ) -> Page {
        let inner = self.lock();
        let mut page = Page {
            items: Vec::new(),
            rv: inner.rv,
            next: None,
            remaining: 0,
        };
        let Some(collection) = inner.collections.get(storage) else {
            return page;
        };
        let lower = match (start_after, namespace) {
            (Some(key), _) => Bound::Excluded(key.clone()),
            (None, Some(ns)) => Bound::Included((ns.to_string(), String::new())),
            (None, None) => Bound::Unbounded,
        };
        let limit = limit.unwrap_or(usize::MAX);
        for (key, stored) in collection.range((lower, Bound::Unbounded)) {
            if namespace.is_some_and(|ns| key.0 != ns) {
                break;
            }
            if !filter(stored) {
                continue;
            }
            if page.items.len() < limit {
                page.items.push(stored.clone());
            } else {
                page.remaining += 1;
            }
        }
        if page.remaining > 0 {
            page.next = page.items.last().map(|s| key_of(s.object()));
        }
        page
    }

    /// Starts a watch on `storage`: from the current state (`since = None`) or after the resourceVersion `since`.
    ///
    /// Fails with 410 Expired when changes after `since` are no longer kept.
    pub fn subscribe(&self, storage: &str, since: Option<u64>) -> Result<Subscription, ApiError> {
        let inner = self.lock();
        let receiver = self.changes.subscribe();
        let mut subscription = Subscription {
            snapshot: Vec::new(),
            backlog: Vec::new(),
            rv: inner.rv,
            receiver,
        };
        match since {
            None => {
                if let Some(collection) = inner.collections.get(storage) {
                    subscription.snapshot = collection.values().cloned().collect();
                }
            }
            Some(rv) if rv < inner.compacted => {
                return Err(ApiError::expired(format!(
                    "too old resource version: {rv} ({})",
                    inner.compacted + 1
                )));
            }
            Some(rv) => {
                let start = inner.history.partition_point(|c| c.rv <= rv);
                subscription.backlog = inner
                    .history
                    .range(start..)
                    .filter(|c| &*c.storage == storage)
                    .cloned()
                    .collect();
            }
        }
        Ok(subscription)
    }

    /// The objects of `storage` (in `namespace` if given) now, and the kept changes to the collection after
    /// `rv`, read at one instant; `None` when changes after `rv` are no longer kept.
    pub fn current_and_changes_since(
        &self,
        storage: &str,
        namespace: Option<&str>,
        rv: u64,
    ) -> Option<(Vec<Stored>, Vec<Arc<Change>>)> {
        let inner = self.lock();
        if rv < inner.compacted {
            return None;
        }
        let objects = inner
            .collections
            .get(storage)
            .into_iter()
            .flat_map(|c| c.iter())
            .filter(|(key, _)| namespace.is_none_or(|ns| key.0 == ns))
            .map(|(_, stored)| stored.clone())
            .collect();
        let start = inner.history.partition_point(|c| c.rv <= rv);
        let changes = inner
            .history
            .range(start..)
            .filter(|c| &*c.storage == storage)
            .cloned()
            .collect();
        Some((objects, changes))
    }

    /// Whether changes after `rv` are still kept (a list continued at `rv` is still consistent enough).
    pub fn is_compacted(&self, rv: u64) -> bool {
        rv < self.lock().compacted
    }

    /// Forgets the change history: watches from any earlier resourceVersion get 410 Expired.
    pub fn compact(&self) {
        let mut inner = self.lock();
        inner.history.clear();
        inner.compacted = inner.rv;
    }

    /// Objects whose ownerReferences name `owner_uid`.
    pub fn dependents_of(&self, owner_uid: &str) -> Vec<(Arc<str>, Key)> {
        self.lock()
            .dependents
            .get(owner_uid)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether an object with this uid exists.
    pub fn uid_exists(&self, uid: &str) -> bool {
        self.lock().uids.contains_key(uid)
    }

    /// Where the object with this uid is stored.
    pub fn locate(&self, uid: &str) -> Option<(Arc<str>, Key)> {
        self.lock().uids.get(uid).cloned()
    }

    /// Objects with an ownerReference to a uid that no longer exists.
    pub fn orphaned(&self) -> Vec<(Arc<str>, Key)> {
        let inner = self.lock();
        inner
            .dependents
            .iter()
            .filter(|(owner, _)| !inner.uids.contains_key(*owner))
            .flat_map(|(_, set)| set.iter().cloned())
            .collect()
    }

    /// Keys of every object in `storage` within `namespace` (all namespaces if `None`).
    pub fn keys(&self, storage: &str, namespace: Option<&str>) -> Vec<Key> {
        self.lock()
            .collections
            .get(storage)
            .map(|c| {
                c.keys()
                    .filter(|k| namespace.is_none_or(|ns| k.0 == ns))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Collections with at least one object in `namespace`.
    pub fn storages_with_objects_in(&self, namespace: &str) -> Vec<Arc<str>> {
        self.lock()
            .collections
            .iter()
            .filter(|(_, c)| c.keys().any(|k| k.0 == namespace))
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// Number of stored objects.
    #[allow(
        clippy::len_without_is_empty,
        reason = "a store is never empty: namespaces always exist"
    )]
    pub fn len(&self) -> usize {
        self.lock().collections.values().map(BTreeMap::len).sum()
    }

    /// A receiver of every change committed from now on.
    pub fn changes(&self) -> broadcast::Receiver<Arc<Change>> {
        self.changes.subscribe()
    }
}

/// The key of an object from its metadata.
pub fn key_of(object: &Value) -> Key {
    let field = |name: &str| {
        object
            .pointer(&format!("/metadata/{name}"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (field("namespace"), field("name"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn put(store: &Store, storage: &Arc<str>, name: &str) -> Outcome {
        let object = json!({ "metadata": { "name": name, "namespace": "ns", "uid": name } });
        store
            .mutate(storage, &("ns".into(), name.into()), |_, _| {
                Ok(Decision::Put(object.clone()))
            })
            .unwrap()
    }

    #[test]
    fn racing_writers_lose_no_update() {
        let store = Arc::new(Store::new(100));
        let storage: Arc<str> = Arc::from("/configmaps");
        let key: Key = ("ns".into(), "counter".into());
        let writers: Vec<_> = (0..4)
            .map(|_| {
                let (store, storage, key) = (store.clone(), storage.clone(), key.clone());
                std::thread::spawn(move || {
                    for _ in 0..250 {
                        store
                            .mutate(&storage, &key, |_, current| {
                                let count = current
                                    .and_then(|c| c.object()["data"]["count"].as_u64())
                                    .unwrap_or(0);
                                Ok(Decision::Put(json!({
                                    "metadata": { "name": "counter", "namespace": "ns", "uid": "u" },
                                    "data": { "count": count + 1 },
                                })))
                            })
                            .unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        let stored = store.get(&storage, &key).unwrap();
        assert_eq!(stored.object()["data"]["count"], 1000);
        assert_eq!(store.resource_version(), 1000);
    }

    #[test]
    fn every_write_gets_the_next_resource_version() {
        let store = Store::new(100);
        let storage: Arc<str> = Arc::from("/configmaps");
        put(&store, &storage, "a");
        let second = put(&store, &storage, "a");
        assert_eq!(second.event, Some(EventType::Modified));
        assert_eq!(second.stored.object()["metadata"]["resourceVersion"], "2");
        assert_eq!(store.resource_version(), 2);
    }

    #[test]
    fn watches_resume_from_history_until_compacted() {
        let store = Store::new(2);
        let storage: Arc<str> = Arc::from("/configmaps");
        for name in ["a", "b", "c"] {
            put(&store, &storage, name);
        }
        let resumed = store.subscribe(&storage, Some(1)).unwrap();
        assert_eq!(
            resumed.backlog.iter().map(|c| c.rv).collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert_eq!(store.subscribe(&storage, Some(0)).unwrap_err().code, 410);
        store.compact();
        assert_eq!(store.subscribe(&storage, Some(2)).unwrap_err().code, 410);
        assert!(
            store
                .subscribe(&storage, Some(3))
                .unwrap()
                .backlog
                .is_empty()
        );
    }

    #[test]
    fn pages_continue_after_the_last_key() {
        let store = Store::new(10);
        let storage: Arc<str> = Arc::from("/configmaps");
        for name in ["a", "b", "c"] {
            put(&store, &storage, name);
        }
        let first = store.list(&storage, Some("ns"), None, Some(2), |_| true);
        assert_eq!(first.items.len(), 2);
        assert_eq!(first.remaining, 1);
        let rest = store.list(&storage, Some("ns"), first.next.as_ref(), Some(2), |_| true);
        assert_eq!(rest.items.len(), 1);
        assert_eq!(rest.items[0].object()["metadata"]["name"], "c");
        assert!(rest.next.is_none());
    }
}
