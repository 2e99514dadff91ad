//! Garbage collection through ownerReferences: dependents of a removed owner are deleted (or lose the
//! reference when other owners remain); `orphan` and `foregroundDeletion` finalizers are honoured.

use std::sync::Arc;

use serde_json::{Value, json};

use super::resource_of;
use crate::cluster::Cluster;
use crate::meta;
use crate::store::{Change, EventType, Key};
use crate::write::{DeleteParams, Propagation, WriteParams};

const ORPHAN: &str = "orphan";
const FOREGROUND: &str = "foregroundDeletion";

pub(super) fn on_change(cluster: &Cluster, change: &Change) {
    // Most changes concern objects that are neither deleted nor owned: nothing to decode or do.
    let summary = change.summary();
    let relevant = match change.event {
        EventType::Deleted => true,
        EventType::Modified => summary.deleting,
        EventType::Added => summary.deleting || summary.owned,
    };
    if !relevant {
        return;
    }
    let stored = change.stored();
    let object = stored.object();
    let uid = meta::meta_str(object, "uid");
    match change.event {
        EventType::Deleted => {
            for dependent in cluster.store.dependents_of(uid) {
                collect(cluster, &dependent);
            }
            for owner in owner_uids(object) {
                if let Some(location) = cluster.store.locate(&owner) {
                    finish_foreground(cluster, &location);
                }
            }
        }
        EventType::Added | EventType::Modified => {
            if meta::is_deleting(object) {
                let finalizers = meta::finalizers(object);
                if finalizers.iter().any(|f| f == ORPHAN) {
                    orphan_dependents(cluster, &change.storage, &change.key, uid);
                }
                if finalizers.iter().any(|f| f == FOREGROUND) {
                    delete_dependents(cluster, &change.storage, &change.key, uid);
                }
            }
            if change.event == EventType::Added && !owner_uids(object).is_empty() {
                collect(cluster, &(change.storage.clone(), change.key.clone()));
            }
        }
    }
}

pub(super) fn sweep(cluster: &Cluster) {
    for dependent in cluster.store.orphaned() {
        collect(cluster, &dependent);
    }
}

fn owner_uids(object: &Value) -> Vec<String> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| {
            r.get("uid")
                .and_then(Value::as_str)
                .map(ToString::to_string)
        })
        .collect()
}

fn namespace_of(key: &Key) -> Option<&str> {
    (!key.0.is_empty()).then_some(key.0.as_str())
}

/// Deletes a dependent whose owners are all gone, or drops references to the owners that are gone.
fn collect(cluster: &Cluster, (storage, key): &(Arc<str>, Key)) {
    let Some(resource) = resource_of(cluster, storage) else {
        return;
    };
    let Some(stored) = cluster.store.get(storage, key) else {
        return;
    };
    let owners = owner_uids(stored.object());
    let alive: Vec<String> = owners
        .into_iter()
        .filter(|uid| cluster.store.uid_exists(uid))
        .collect();
    if alive.len() == owner_uids(stored.object()).len() {
        return;
    }
    let result = if alive.is_empty() {
        if meta::is_deleting(stored.object()) {
            return;
        }
        tracing::debug!(?key, kind = %resource.kind, "garbage collecting a dependent");
        let background = DeleteParams::default();
        cluster
            .delete(
                &resource,
                namespace_of(key),
                &key.1,
                &background,
                &WriteParams::default(),
            )
            .map(|_| ())
    } else {
        // The edit may run more than once when the object changes meanwhile: decide from what was read before.
        cluster
            .edit(&resource, namespace_of(key), &key.1, |object| {
                retain_owners(object, |uid| alive.iter().any(|a| a == uid));
            })
            .map(|_| ())
    };
    if let Err(error) = result {
        tracing::debug!(%error, ?key, "garbage collection skipped");
    }
}

fn retain_owners(object: &mut Value, keep: impl Fn(&str) -> bool) {
    if let Some(refs) = object
        .pointer_mut("/metadata/ownerReferences")
        .and_then(Value::as_array_mut)
    {
        refs.retain(|r| r.get("uid").and_then(Value::as_str).is_some_and(&keep));
    }
    if object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty)
        && let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut)
    {
        meta.remove("ownerReferences");
    }
}

fn remove_finalizer(cluster: &Cluster, storage: &str, key: &Key, finalizer: &str) {
    let Some(resource) = resource_of(cluster, storage) else {
        return;
    };
    let result = cluster.edit(&resource, namespace_of(key), &key.1, |object| {
        if let Some(list) = object
            .pointer_mut("/metadata/finalizers")
            .and_then(Value::as_array_mut)
        {
            list.retain(|f| f != &json!(finalizer));
        }
    });
    if let Err(error) = result {
        tracing::debug!(%error, ?key, finalizer, "cannot remove finalizer");
    }
}

fn orphan_dependents(cluster: &Cluster, storage: &Arc<str>, key: &Key, uid: &str) {
    for (dep_storage, dep_key) in cluster.store.dependents_of(uid) {
        let Some(resource) = resource_of(cluster, &dep_storage) else {
            continue;
        };
        let result = cluster.edit(&resource, namespace_of(&dep_key), &dep_key.1, |object| {
            retain_owners(object, |owner| owner != uid);
        });
        if let Err(error) = result {
            tracing::debug!(%error, ?dep_key, "cannot orphan a dependent");
        }
    }
    remove_finalizer(cluster, storage, key, ORPHAN);
}

fn delete_dependents(cluster: &Cluster, storage: &Arc<str>, key: &Key, uid: &str) {
    let foreground = DeleteParams {
        propagation: Propagation::Foreground,
        ..DeleteParams::default()
    };
    for (dep_storage, dep_key) in cluster.store.dependents_of(uid) {
        let Some(resource) = resource_of(cluster, &dep_storage) else {
            continue;
        };
        let Some(dependent) = cluster.store.get(&dep_storage, &dep_key) else {
            continue;
        };
        if meta::is_deleting(dependent.object()) {
            continue;
        }
        if let Err(error) = cluster.delete(
            &resource,
            namespace_of(&dep_key),
            &dep_key.1,
            &foreground,
            &WriteParams::default(),
        ) {
            tracing::debug!(%error, ?dep_key, "cannot delete a dependent");
        }
    }
    finish_foreground(cluster, &(storage.clone(), key.clone()));
}

/// Lets a foreground-deleted owner go once no dependent blocks it.
fn finish_foreground(cluster: &Cluster, (storage, key): &(Arc<str>, Key)) {
    let Some(owner) = cluster.store.get(storage, key) else {
        return;
    };
    if !meta::is_deleting(owner.object())
        || !meta::finalizers(owner.object())
            .iter()
            .any(|f| f == FOREGROUND)
    {
        return;
    }
    let uid = meta::meta_str(owner.object(), "uid");
    let blocking = cluster.store.dependents_of(uid).into_iter().any(|(s, k)| {
        cluster.store.get(&s, &k).is_some_and(|d| {
            d.object()
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|r| {
                    r.get("uid") == Some(&json!(uid))
                        && r.get("blockOwnerDeletion") == Some(&json!(true))
                })
        })
    });
    if !blocking {
        remove_finalizer(cluster, storage, key, FOREGROUND);
    }
}
