//! The state behind one API server: stored objects, served kinds and settings. It outlives restarts of the
//! HTTP listener, which is how a restarted server keeps its state.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::faults::FaultState;
use crate::registry::{Registry, ResourceType};
use crate::store::{Decision, Key, Store};

/// Settings that shape the server's behaviour.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How many changes are kept for watches to resume from.
    pub history_limit: usize,
    /// Largest accepted request body in bytes.
    pub max_body_bytes: usize,
    /// How often an idle watch that asked for bookmarks gets one.
    pub bookmark_interval: Duration,
}

/// Stored objects, served kinds, settings and injected faults.
#[derive(Debug)]
pub struct Cluster {
    /// The objects.
    pub store: Store,
    /// The served kinds.
    pub registry: Registry,
    /// Settings.
    pub settings: Settings,
    /// Injected faults.
    pub faults: Arc<FaultState>,
}

/// The namespaces and objects a fresh cluster has.
const BOOTSTRAP_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

impl Cluster {
    /// A cluster holding what a fresh Kubernetes cluster holds.
    pub fn new(settings: Settings) -> Self {
        let cluster = Self {
            store: Store::new(settings.history_limit),
            registry: Registry::new(),
            settings,
            faults: Arc::new(FaultState::default()),
        };
        cluster.bootstrap();
        cluster
    }

    fn bootstrap(&self) {
        let params = crate::write::WriteParams::default();
        let namespaces = self.builtin("", "namespaces");
        let services = self.builtin("", "services");
        for name in BOOTSTRAP_NAMESPACES {
            let namespace =
                json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": name } });
            if let Some(namespaces) = &namespaces
                && let Err(error) = self.create(namespaces, None, namespace, &params)
            {
                tracing::error!(%error, name, "cannot create a bootstrap namespace");
            }
        }
        let kubernetes = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": { "name": "kubernetes", "labels": { "component": "apiserver", "provider": "kubernetes" } },
            "spec": {
                "clusterIP": "10.96.0.1",
                "clusterIPs": ["10.96.0.1"],
                "ports": [{ "name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443 }],
            },
        });
        if let Some(services) = &services
            && let Err(error) = self.create(services, Some("default"), kubernetes, &params)
        {
            tracing::error!(%error, "cannot create the kubernetes service");
        }
        crate::controllers::cluster_roles::bootstrap(self);
    }

    /// A built-in resource type by group and plural (always served).
    pub fn builtin(&self, group: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.registry
            .all()
            .into_iter()
            .find(|r| !r.custom && r.group == group && r.plural == plural)
    }

    /// Removes every custom object of a storage (when its CRD goes away).
    pub fn drop_collection(&self, storage: &Arc<str>) {
        for key in self.store.keys(storage, None) {
            let result = self.store.mutate(storage, &key, |_, current| {
                Ok(match current {
                    Some(stored) => Decision::Remove(stored.object().clone()),
                    None => Decision::Unchanged,
                })
            });
            if let Err(error) = result {
                tracing::debug!(%error, ?key, "object already gone");
            }
        }
    }
}

/// The key of an object of `resource` named `name` in `namespace`.
pub fn key(resource: &ResourceType, namespace: Option<&str>, name: &str) -> Key {
    let namespace = if resource.namespaced {
        namespace.unwrap_or_default()
    } else {
        ""
    };
    (namespace.to_string(), name.to_string())
}
