//! Per-object inboxes: external events mapped to an object wait here for its next handler run.
//!
//! An event stays until a handler run that saw it has returned `Ok` and its status is stored, so an error
//! or a panic in between shows it again on the retry. Inboxes live in memory only. Each keeps at most
//! `limit` events (the oldest go first); inboxes of objects that left the cache are dropped, and so is an
//! inbox whose object was deleted and re-created under the same name (its events concerned the old one).

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, PoisonError},
};

use kube::{
    Resource, ResourceExt,
    runtime::reflector::{ObjectRef, Store},
};
use tracing::warn;

use crate::sources::ExternalEvent;

/// How many events an object's inbox keeps by default.
pub const INBOX_LIMIT: usize = 64;

/// The inboxes of all objects of one operator.
pub(crate) struct Inbox<K: Resource<DynamicType = ()> + Clone + 'static> {
    store: Store<K>,
    state: Mutex<State<K>>,
}

struct State<K: Resource<DynamicType = ()>> {
    limit: usize,
    /// Sequence number of the next event, so an acknowledgement removes only what was shown.
    next: u64,
    pending: HashMap<ObjectRef<K>, Pending>,
    /// Inboxes after the last sweep for objects that are gone; the next sweep runs when this doubles.
    swept_at: usize,
}

struct Pending {
    /// The object the events were delivered to.
    uid: Option<String>,
    events: VecDeque<(u64, Arc<ExternalEvent>)>,
}

/// The events one handler run is shown, and how far to acknowledge them once it has succeeded.
pub(crate) struct Delivery {
    pub events: Arc<[ExternalEvent]>,
    upto: u64,
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Inbox<K> {
    /// Inboxes for the objects of `store`, each keeping at most `limit` events.
    pub fn new(store: Store<K>, limit: usize) -> Self {
        Self {
            store,
            state: Mutex::new(State {
                limit: limit.max(1),
                next: 0,
                pending: HashMap::new(),
                swept_at: 0,
            }),
        }
    }

    pub fn set_limit(&self, limit: usize) {
        self.lock().limit = limit.max(1);
    }

    /// Keeps `event` for the object `oref`; false (and nothing kept) when the cache does not hold it.
    pub fn deliver(&self, oref: &ObjectRef<K>, event: &Arc<ExternalEvent>) -> bool {
        let Some(obj) = self.store.get(oref) else {
            return false;
        };
        let uid = obj.uid();
        let mut state = self.lock();
        if state.pending.len() > 2 * state.swept_at.max(16) {
            self.sweep_locked(&mut state);
        }
        let (seq, limit) = (state.next, state.limit);
        state.next += 1;
        let pending = state
            .pending
            .entry(oref.clone())
            .or_insert_with(|| Pending {
                uid: uid.clone(),
                events: VecDeque::new(),
            });
        if pending.uid != uid {
            pending.uid = uid;
            pending.events.clear();
        }
        while pending.events.len() >= limit {
            if let Some((_, dropped)) = pending.events.pop_front() {
                warn!(object = %oref, event = %dropped.id, source = %dropped.source, limit,
                    "event inbox full, dropping its oldest event");
            }
        }
        pending.events.push_back((seq, Arc::clone(event)));
        true
    }

    /// The events waiting for `obj`, oldest first; `None` when there are none.
    pub fn peek(&self, oref: &ObjectRef<K>, obj: &K) -> Option<Delivery> {
        let mut state = self.lock();
        let pending = state.pending.get(oref)?;
        if pending.uid != obj.uid() {
            state.pending.remove(oref);
            return None;
        }
        let upto = pending.events.back()?.0;
        let events = pending.events.iter().map(|(_, e)| (**e).clone()).collect();
        Some(Delivery { events, upto })
    }

    /// Removes the events `delivery` showed; later ones stay for the next run.
    pub fn acknowledge(&self, oref: &ObjectRef<K>, delivery: &Delivery) {
        let mut state = self.lock();
        if let Some(pending) = state.pending.get_mut(oref) {
            pending.events.retain(|(seq, _)| *seq > delivery.upto);
            if pending.events.is_empty() {
                state.pending.remove(oref);
            }
        }
    }

    /// Drops the inbox of an object that is gone.
    pub fn forget(&self, oref: &ObjectRef<K>) {
        self.lock().pending.remove(oref);
    }

    /// Drops the inboxes of objects no longer in the cache.
    pub fn sweep(&self) {
        self.sweep_locked(&mut self.lock());
    }

    fn sweep_locked(&self, state: &mut State<K>) {
        state
            .pending
            .retain(|oref, _| self.store.get(oref).is_some());
        state.swept_at = state.pending.len();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<K>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::{
        reflector::{self, store::Writer},
        watcher,
    };

    use super::*;

    fn event(id: &str) -> Arc<ExternalEvent> {
        Arc::new(ExternalEvent {
            source: "test".into(),
            kind: "ping".into(),
            id: id.into(),
            subject: None,
            time: None,
            data: serde_json::Value::Null,
        })
    }

    fn config_map(name: &str, uid: &str) -> ConfigMap {
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some(name.into());
        cm.metadata.namespace = Some("default".into());
        cm.metadata.uid = Some(uid.into());
        cm
    }

    fn cached(writer: &mut Writer<ConfigMap>, obj: &ConfigMap) -> ObjectRef<ConfigMap> {
        writer.apply_watcher_event(&watcher::Event::Apply(obj.clone()));
        ObjectRef::from_obj(obj)
    }

    fn ids(delivery: Option<Delivery>) -> Vec<String> {
        delivery.map_or_else(Vec::new, |d| {
            d.events.iter().map(|e| e.id.clone()).collect()
        })
    }

    #[test]
    fn acknowledging_removes_only_what_was_shown() {
        let (store, mut writer) = reflector::store();
        let cm = config_map("a", "u1");
        let oref = cached(&mut writer, &cm);
        let inbox = Inbox::new(store, 8);
        assert!(inbox.deliver(&oref, &event("1")));
        let shown = inbox.peek(&oref, &cm).unwrap();
        assert!(inbox.deliver(&oref, &event("2")));
        // Not acknowledged (the run failed): shown again, with what came since.
        assert_eq!(ids(inbox.peek(&oref, &cm)), ["1", "2"]);
        inbox.acknowledge(&oref, &shown);
        assert_eq!(ids(inbox.peek(&oref, &cm)), ["2"]);
        let rest = inbox.peek(&oref, &cm).unwrap();
        inbox.acknowledge(&oref, &rest);
        assert!(inbox.peek(&oref, &cm).is_none());
    }

    #[test]
    fn a_full_inbox_drops_its_oldest_events() {
        let (store, mut writer) = reflector::store();
        let cm = config_map("a", "u1");
        let oref = cached(&mut writer, &cm);
        let inbox = Inbox::new(store, 2);
        for id in ["1", "2", "3"] {
            inbox.deliver(&oref, &event(id));
        }
        assert_eq!(ids(inbox.peek(&oref, &cm)), ["2", "3"]);
    }

    #[test]
    fn events_for_objects_that_are_gone_are_dropped() {
        let (store, mut writer) = reflector::store();
        let old = config_map("a", "u1");
        let oref = cached(&mut writer, &old);
        let inbox = Inbox::new(store, 8);
        // Unknown to the cache: not kept.
        assert!(!inbox.deliver(&ObjectRef::new("b").within("default"), &event("0")));
        inbox.deliver(&oref, &event("1"));
        // Deleted and re-created under the same name: the new object does not see the old one's events.
        let new = config_map("a", "u2");
        cached(&mut writer, &new);
        assert!(inbox.peek(&oref, &new).is_none());
        inbox.deliver(&oref, &event("2"));
        assert_eq!(ids(inbox.peek(&oref, &new)), ["2"]);
        // Deleted: the sweep drops its inbox.
        writer.apply_watcher_event(&watcher::Event::Delete(new.clone()));
        inbox.sweep();
        assert!(inbox.peek(&oref, &new).is_none());
    }
}
