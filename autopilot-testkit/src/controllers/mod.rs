//! Controllers a real control plane runs that the server's semantics depend on: the garbage collector
//! (ownerReferences, `orphan` and `foregroundDeletion` finalizers) and the namespace lifecycle.

mod gc;
mod namespace;

use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use crate::cluster::Cluster;
use crate::registry::ResourceType;

/// Starts the built-in controllers; they react to every committed change.
pub fn spawn(cluster: Arc<Cluster>) -> Vec<JoinHandle<()>> {
    vec![tokio::spawn(run(cluster))]
}

async fn run(cluster: Arc<Cluster>) {
    let mut changes = cluster.store.changes();
    sweep(&cluster);
    loop {
        match changes.recv().await {
            Ok(change) => {
                gc::on_change(&cluster, &change);
                namespace::on_change(&cluster, &change);
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
}

/// A type serving objects of `storage`.
fn resource_of(cluster: &Cluster, storage: &str) -> Option<Arc<ResourceType>> {
    cluster
        .registry
        .all()
        .into_iter()
        .find(|r| &*r.storage == storage)
}
