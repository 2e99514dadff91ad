//! A collection as it was at an earlier resourceVersion, rebuilt from the current objects by undoing the
//! kept changes made after it: what `resourceVersionMatch=Exact` lists and continued pages serve.

use std::collections::BTreeMap;

use crate::status::ApiError;
use crate::store::{EventType, Key, Store, Stored, key_of};

/// The objects of `storage` (in `namespace` if given) at resourceVersion `rv`, in key order; 410 Expired when
/// the changes since then are no longer kept (as etcd answers after compaction).
pub fn objects_at(
    store: &Store,
    storage: &str,
    namespace: Option<&str>,
    rv: u64,
) -> Result<Vec<Stored>, ApiError> {
    let (current, changes) = store
        .current_and_changes_since(storage, namespace, rv)
        .ok_or_else(|| {
            ApiError::expired("The resourceVersion for the provided list is too old.")
        })?;
    let mut objects: BTreeMap<Key, Stored> = current
        .into_iter()
        .map(|stored| (key_of(stored.object()), stored))
        .collect();
    for change in changes.iter().rev() {
        if namespace.is_some_and(|ns| change.key.0 != ns) {
            continue;
        }
        match (change.event, change.previous()) {
            (EventType::Modified | EventType::Deleted, Some(previous)) => {
                objects.insert(change.key.clone(), previous);
            }
            _ => {
                objects.remove(&change.key);
            }
        }
    }
    Ok(objects.into_values().collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::store::Decision;

    fn write(store: &Store, storage: &Arc<str>, name: &str, value: Option<i64>) -> u64 {
        let key = ("ns".to_string(), name.to_string());
        store
            .mutate(storage, &key, |_, current| {
                Ok(match (value, current) {
                    (Some(v), _) => Decision::Put(
                        json!({"metadata": {"name": name, "namespace": "ns"}, "v": v}),
                    ),
                    (None, Some(stored)) => Decision::Remove(stored.object().clone()),
                    (None, None) => Decision::Unchanged,
                })
            })
            .unwrap();
        store.resource_version()
    }

    fn values(objects: &[Stored]) -> Vec<(String, i64)> {
        objects
            .iter()
            .map(|s| (key_of(s.object()).1, s.object()["v"].as_i64().unwrap()))
            .collect()
    }

    #[test]
    fn undoes_creates_updates_and_deletes_after_the_version() {
        let store = Store::new(100);
        let storage: Arc<str> = Arc::from("/configmaps");
        write(&store, &storage, "a", Some(1));
        let at = write(&store, &storage, "b", Some(1));
        write(&store, &storage, "a", Some(2));
        write(&store, &storage, "b", None);
        write(&store, &storage, "c", Some(1));
        let past = objects_at(&store, &storage, Some("ns"), at).unwrap();
        assert_eq!(values(&past), [("a".into(), 1), ("b".into(), 1)]);
        assert_eq!(past[0].object()["metadata"]["resourceVersion"], "1");
        let now = objects_at(&store, &storage, None, store.resource_version()).unwrap();
        assert_eq!(values(&now), [("a".into(), 2), ("c".into(), 1)]);
        assert!(
            objects_at(&store, &storage, Some("other"), at)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn compacted_history_is_too_old() {
        let store = Store::new(100);
        let storage: Arc<str> = Arc::from("/configmaps");
        let at = write(&store, &storage, "a", Some(1));
        write(&store, &storage, "a", Some(2));
        store.compact();
        let error = objects_at(&store, &storage, None, at).unwrap_err();
        assert_eq!((error.code, error.reason), (410, "Expired"));
        assert_eq!(
            error.message,
            "The resourceVersion for the provided list is too old."
        );
    }
}
