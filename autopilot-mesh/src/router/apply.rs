//! Server-side apply of routing objects, with owner references and optimistic concurrency.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Duration;

use kube::api::{Patch, PatchParams};
use kube::core::NamespaceResourceScope;
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::RouterError;
use crate::route::Route;

/// The field manager routers apply with unless configured otherwise.
pub const FIELD_MANAGER: &str = "autopilot";

/// How often a read-modify-apply is tried when other writers keep changing the object in between.
const ATTEMPTS: u32 = 10;

/// Pause before the first retry; it doubles (with jitter) up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// Bounds of the routing objects a [`Writer`] handles.
pub(crate) trait RoutingObject:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
}

impl<K> RoutingObject for K where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static
{
}

/// Reads and applies routing objects in a route's namespace under one field manager.
#[derive(Clone)]
pub(crate) struct Writer {
    client: Client,
    field_manager: String,
}

impl Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("field_manager", &self.field_manager)
            .finish_non_exhaustive()
    }
}

impl Writer {
    pub(crate) fn new(client: Client, field_manager: impl Into<String>) -> Self {
        Self {
            client,
            field_manager: field_manager.into(),
        }
    }

    fn api<K: RoutingObject>(&self, route: &Route) -> Api<K> {
        Api::namespaced(self.client.clone(), &route.namespace)
    }

    /// The object, or `None` when it does not exist.
    pub(crate) async fn get<K: RoutingObject>(
        &self,
        route: &Route,
        name: &str,
    ) -> Result<Option<K>, RouterError> {
        self.api::<K>(route)
            .get_opt(name)
            .await
            .map_err(|source| api_error::<K>("get", route, name, source))
    }

    /// The object, or [`RouterError::NotFound`].
    pub(crate) async fn get_existing<K: RoutingObject>(
        &self,
        route: &Route,
        name: &str,
    ) -> Result<K, RouterError> {
        self.get(route, name)
            .await?
            .ok_or_else(|| RouterError::NotFound {
                kind: kind::<K>(),
                namespace: route.namespace.clone(),
                name: name.to_owned(),
            })
    }

    /// Applies the object `desired` builds, owned by the route's owner.
    ///
    /// `desired` receives the stored object (if any) so it can carry over list entries that others
    /// own: lists such as `http` or `rules` are atomic in the upstream CRDs, so applying only our entry
    /// would replace everybody else's. The stored resourceVersion goes along as a precondition, and
    /// the whole read-modify-apply is retried when another writer got in between.
    pub(crate) async fn apply<K, F>(
        &self,
        route: &Route,
        name: &str,
        desired: F,
    ) -> Result<K, RouterError>
    where
        K: RoutingObject,
        F: Fn(Option<&K>) -> K + Send + Sync,
    {
        let api = self.api::<K>(route);
        // We must own the fields we write even if a user edited them last (e.g. weights).
        let params = PatchParams::apply(&self.field_manager).force();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let current = self.get::<K>(route, name).await?;
            let mut object = desired(current.as_ref());
            *object.meta_mut() = owned_meta(route, name, current.as_ref());
            match api.patch(name, &params, &Patch::Apply(&object)).await {
                Ok(applied) => {
                    tracing::debug!(kind = %kind::<K>(), namespace = %route.namespace, name, "applied");
                    return Ok(applied);
                }
                Err(kube::Error::Api(status)) if status.is_conflict() && attempt < ATTEMPTS => {
                    tracing::debug!(kind = %kind::<K>(), namespace = %route.namespace, name, attempt, "changed concurrently, applying again");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(source) => return Err(api_error::<K>("apply", route, name, source)),
            }
        }
    }
}

/// The pause after `attempt` failed tries: doubling from [`FIRST_BACKOFF`], capped, with up to 50 %
/// jitter so racing writers fall out of step.
fn backoff(attempt: u32) -> Duration {
    let base = FIRST_BACKOFF
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
        .min(MAX_BACKOFF);
    base.mul_f64(0.5 + fastrand::f64() * 0.5)
}

/// Metadata of an applied object: identity, owner, our label, and the stored resourceVersion as a
/// precondition.
fn owned_meta<K: RoutingObject>(
    route: &Route,
    name: &str,
    current: Option<&K>,
) -> kube::api::ObjectMeta {
    kube::api::ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(route.namespace.clone()),
        labels: Some(BTreeMap::from([(
            "app.kubernetes.io/managed-by".to_owned(),
            FIELD_MANAGER.to_owned(),
        )])),
        owner_references: route.owner.clone().map(|owner| vec![owner]),
        resource_version: current.and_then(|c| c.meta().resource_version.clone()),
        ..Default::default()
    }
}

fn kind<K: RoutingObject>() -> String {
    K::kind(&()).into_owned()
}

fn api_error<K: RoutingObject>(
    verb: &'static str,
    route: &Route,
    name: &str,
    source: kube::Error,
) -> RouterError {
    RouterError::Api {
        verb,
        kind: kind::<K>(),
        namespace: route.namespace.clone(),
        name: name.to_owned(),
        source: Box::new(source),
    }
}
