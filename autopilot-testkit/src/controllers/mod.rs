//! Controllers a real control plane runs that the server's semantics depend on: the garbage collector
//! (ownerReferences, `orphan` and `foregroundDeletion` finalizers), the namespace lifecycle, the
//! objects every namespace holds (the `default` ServiceAccount, the `kube-root-ca.crt` ConfigMap), and
//! ClusterRole aggregation.

pub(crate) mod cluster_roles;
mod gc;
mod namespace;
mod namespace_objects;

use std::sync::Arc;

use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use crate::cluster::Cluster;
use crate::registry::ResourceType;
use crate::store::Change;

/// Starts the built-in controllers; they react to every committed change. Their first pass runs before
/// this returns, so a fresh server already holds what they create (each namespace's default objects).
pub fn spawn(cluster: Arc<Cluster>) -> Vec<JoinHandle<()>> {
    let changes = cluster.store.changes();
    sweep(&cluster);
    vec![tokio::spawn(run(cluster, changes))]
}

async fn run(cluster: Arc<Cluster>, mut changes: Receiver<Arc<Change>>) {
    loop {
        match changes.recv().await {
            Ok(change) => {
                gc::on_change(&cluster, &change);
                namespace::on_change(&cluster, &change);
                namespace_objects::on_change(&cluster, &change);
                cluster_roles::on_change(&cluster, &change);
            }
            Err(RecvError::Lagged(_)) => sweep(&cluster),
            Err(RecvError::Closed) => return,
        }
    }
}

/// Catches up with everything, after missing changes.
fn sweep(cluster: &Cluster) {
    gc::sweep(cluster);
    namespace::sweep(cluster);
    namespace_objects::sweep(cluster);
    cluster_roles::sweep(cluster);
}

/// A type serving objects of `storage`.
fn resource_of(cluster: &Cluster, storage: &str) -> Option<Arc<ResourceType>> {
    cluster
        .registry
        .all()
        .into_iter()
        .find(|r| &*r.storage == storage)
}
