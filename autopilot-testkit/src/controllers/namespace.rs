//! Namespace lifecycle: a deleted namespace's content is deleted, then its `kubernetes` finalizer is
//! removed and the namespace goes away.

use serde_json::json;

use super::resource_of;
use crate::cluster::Cluster;
use crate::store::{Change, EventType};
use crate::write::{DeleteParams, WriteParams};

pub(super) fn on_change(cluster: &Cluster, change: &Change) {
    let namespace_change = &*change.storage == "/namespaces";
    if !namespace_change && (change.event != EventType::Deleted || change.key.0.is_empty()) {
        return;
    }
    let Some(namespaces) = cluster.builtin("", "namespaces") else {
        return;
    };
    if change.storage == namespaces.storage {
        if change.event != EventType::Deleted && change.summary().deleting {
            terminate(cluster, &change.key.1);
        }
    } else if change.event == EventType::Deleted && !change.key.0.is_empty() {
        let namespace = &change.key.0;
        let terminating = cluster
            .store
            .get(&namespaces.storage, &(String::new(), namespace.clone()))
            .is_some_and(|ns| ns.summary.deleting);
        if terminating {
            terminate(cluster, namespace);
        }
    }
}

pub(super) fn sweep(cluster: &Cluster) {
    let Some(namespaces) = cluster.builtin("", "namespaces") else {
        return;
    };
    for (_, name) in cluster.store.keys(&namespaces.storage, None) {
        let deleting = cluster
            .store
            .get(&namespaces.storage, &(String::new(), name.clone()))
            .is_some_and(|ns| ns.summary.deleting);
        if deleting {
            terminate(cluster, &name);
        }
    }
}

/// Deletes what is left in `namespace`; once it is empty, finalizes the namespace.
fn terminate(cluster: &Cluster, namespace: &str) {
    let storages = cluster.store.storages_with_objects_in(namespace);
    for storage in &storages {
        let Some(resource) = resource_of(cluster, storage) else {
            continue;
        };
        for (ns, name) in cluster.store.keys(storage, Some(namespace)) {
            let deleting = cluster
                .store
                .get(storage, &(ns.clone(), name.clone()))
                .is_some_and(|o| o.summary.deleting);
            if deleting {
                continue;
            }
            if let Err(error) = cluster.delete(
                &resource,
                Some(&ns),
                &name,
                &DeleteParams::default(),
                &WriteParams::default(),
            ) {
                tracing::debug!(%error, namespace, name, "cannot delete namespace content");
            }
        }
    }
    if !cluster.store.storages_with_objects_in(namespace).is_empty() {
        return;
    }
    let Some(namespaces) = cluster.builtin("", "namespaces") else {
        return;
    };
    let result = cluster.edit(&namespaces, None, namespace, |object| {
        object["spec"]["finalizers"] = json!([]);
    });
    if let Err(error) = result {
        tracing::debug!(%error, namespace, "cannot finalize namespace");
    }
}
