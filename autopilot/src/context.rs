//! [`Context`]: what a phase handler receives besides the object.

use std::{
    any::{Any, TypeId, type_name},
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex, PoisonError},
};

use autopilot_mesh::TrafficRouter;
use autopilot_metrics::PrometheusClient;
use k8s_openapi::{NamespaceResourceScope, api::core::v1::ObjectReference};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::events::{Event, EventType},
};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    Autopilot, PhaseEnum, config::OperatorConfig, events::Recorder, sources::ExternalEvent,
};

/// Errors of [`Context`] helpers.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// [`Context::require`] found no value of the asked type.
    #[error("no {0} was registered with the operator (Operator::with_extension)")]
    MissingExtension(&'static str),
    /// [`Context::apply_output`] was given an object without a name.
    #[error("output {0} has no metadata.name")]
    UnnamedOutput(&'static str),
    /// The API server refused an output.
    #[error("applying {kind} {name}")]
    Apply {
        /// The output's kind.
        kind: String,
        /// The output's name.
        name: String,
        /// What the API server said.
        #[source]
        source: kube::Error,
    },
    /// The API server refused an Event.
    #[error("publishing event {reason}")]
    Event {
        /// The Event's reason.
        reason: String,
        /// What the API server said.
        #[source]
        source: kube::Error,
    },
}

/// Values registered with the operator and looked up by type (clients for metrics, the mesh, ...).
///
/// ```
/// use autopilot::context::Extensions;
///
/// struct Threshold(f64);
/// let mut ext = Extensions::default();
/// ext.insert(Threshold(99.0));
/// assert_eq!(ext.get::<Threshold>().map(|t| t.0), Some(99.0));
/// assert!(ext.get::<String>().is_none());
/// ```
#[derive(Default, Clone)]
pub struct Extensions {
    values: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl Extensions {
    /// Stores `value`, replacing any earlier value of the same type.
    pub fn insert<T: Any + Send + Sync>(&mut self, value: T) {
        self.values.insert(TypeId::of::<T>(), Arc::new(value));
    }

    /// The value of type `T`, if one was stored.
    #[must_use]
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.values
            .get(&TypeId::of::<T>())
            .and_then(|v| v.downcast_ref::<T>())
    }
}

impl fmt::Debug for Extensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Extensions")
            .field("len", &self.values.len())
            .finish()
    }
}

/// What every handler of one operator shares.
pub(crate) struct Shared {
    pub client: Client,
    pub recorder: Recorder,
    pub config: Arc<OperatorConfig>,
    pub extensions: Extensions,
    pub field_manager: String,
}

/// What a [`Phase`](crate::Phase) handler gets besides the object: the kube client, an Event recorder for the
/// object, the operator's configuration, registered extensions, and a way to update the handler's own
/// status fields (written together with the phase, after the handler returns).
///
/// Cheap to clone.
///
/// ```
/// use std::sync::Arc;
/// use autopilot::{Context, Transition};
/// use k8s_openapi::api::core::v1::ConfigMap;
/// # use autopilot::__doc::*;
///
/// struct MinReplicas(i32);
///
/// async fn waiting(rollout: Arc<Rollout>, ctx: Context<Rollout>) -> anyhow::Result<Transition<RolloutPhase>> {
///     // Typed values registered with `Operator::with_extension`.
///     let min = ctx.require::<MinReplicas>()?.0;
///     // The handler's own status fields, written with the phase.
///     ctx.update_status(|fields: &mut RolloutFields| fields.checks += 1);
///     // Outputs: server-side apply, owned by the object.
///     let mut cm = ConfigMap::default();
///     cm.metadata.name = Some(format!("{}-state", ctx.name()));
///     ctx.apply_output(&cm).await?;
///     ctx.publish("Checked", format!("{} replicas wanted", rollout.spec.replicas)).await?;
///     if rollout.spec.replicas >= min {
///         return Ok(Transition::next(RolloutPhase::Done));
///     }
///     Ok(Transition::recheck())
/// }
/// # let _ = waiting;
/// ```
pub struct Context<K: Autopilot> {
    shared: Arc<Shared>,
    object: Arc<K>,
    phase: K::Phase,
    fields: Arc<Mutex<Option<K::Fields>>>,
    events: Option<Arc<[ExternalEvent]>>,
}

impl<K: Autopilot> Clone for Context<K> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            object: Arc::clone(&self.object),
            phase: self.phase,
            fields: Arc::clone(&self.fields),
            events: self.events.clone(),
        }
    }
}

impl<K: Autopilot> fmt::Debug for Context<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("object", &self.name())
            .field("namespace", &self.namespace())
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl<K: Autopilot> Context<K> {
    pub(crate) fn new(shared: Arc<Shared>, object: Arc<K>, phase: K::Phase) -> Self {
        Self {
            shared,
            object,
            phase,
            fields: Arc::new(Mutex::new(None)),
            events: None,
        }
    }

    /// Shows the handler these external events.
    pub(crate) fn with_events(mut self, events: Option<Arc<[ExternalEvent]>>) -> Self {
        self.events = events;
        self
    }

    /// The kube client the operator runs with.
    #[must_use]
    pub fn client(&self) -> &Client {
        &self.shared.client
    }

    /// The operator's configuration.
    #[must_use]
    pub fn config(&self) -> &OperatorConfig {
        &self.shared.config
    }

    /// The object's name.
    #[must_use]
    pub fn name(&self) -> &str {
        self.object.meta().name.as_deref().unwrap_or_default()
    }

    /// The object's namespace (`None` for cluster-scoped kinds).
    #[must_use]
    pub fn namespace(&self) -> Option<&str> {
        self.object.meta().namespace.as_deref()
    }

    /// The phase whose handler is running.
    #[must_use]
    pub fn phase(&self) -> K::Phase {
        self.phase
    }

    /// The external events mapped to this object (see
    /// [`Operator::reconcile_on`](crate::Operator::reconcile_on)) that no successful handler run has seen
    /// yet, oldest first; empty when the object was woken by anything else.
    ///
    /// An event is removed only once a handler run that saw it has returned `Ok` and the status is stored:
    /// after a handler error or panic, or a failed status write, the retry sees it again (together with any
    /// that arrived since). Events live in the operator's memory and do not survive a restart. Handlers
    /// should act idempotently on them, as on everything else.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use autopilot::{Context, Transition};
    /// # use autopilot::__doc::*;
    ///
    /// async fn waiting(_: Arc<Rollout>, ctx: Context<Rollout>) -> anyhow::Result<Transition<RolloutPhase>> {
    ///     // A CI pipeline reported a finished build of the target.
    ///     if ctx.events().iter().any(|e| e.kind == "com.example.build.finished") {
    ///         return Ok(Transition::next(RolloutPhase::Done));
    ///     }
    ///     Ok(Transition::stay_for(std::time::Duration::from_secs(3600)))
    /// }
    /// # let _ = waiting;
    /// ```
    #[must_use]
    pub fn events(&self) -> &[ExternalEvent] {
        self.events.as_deref().unwrap_or_default()
    }

    /// A reference to the object, as Events use it.
    #[must_use]
    pub fn object_ref(&self) -> ObjectReference {
        self.object.object_ref(&())
    }

    /// The value of type `T` registered with the operator, if any.
    #[must_use]
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.shared.extensions.get::<T>()
    }

    /// The value of type `T` registered with the operator.
    ///
    /// # Errors
    /// [`ContextError::MissingExtension`] when none was registered.
    pub fn require<T: Any + Send + Sync>(&self) -> Result<&T, ContextError> {
        self.get::<T>()
            .ok_or(ContextError::MissingExtension(type_name::<T>()))
    }

    /// The Prometheus client registered with
    /// [`Operator::with_metrics`](crate::Operator::with_metrics).
    ///
    /// # Errors
    /// [`ContextError::MissingExtension`] when none was registered.
    pub fn metrics(&self) -> Result<&PrometheusClient, ContextError> {
        self.require::<PrometheusClient>()
    }

    /// The traffic router registered with [`Operator::with_mesh`](crate::Operator::with_mesh).
    ///
    /// # Errors
    /// [`ContextError::MissingExtension`] when none was registered.
    pub fn mesh(&self) -> Result<&dyn TrafficRouter, ContextError> {
        self.require::<Arc<dyn TrafficRouter>>().map(AsRef::as_ref)
    }

    /// An [`Api`] for `T` in the object's namespace (the default namespace for cluster-scoped kinds).
    #[must_use]
    pub fn api<T>(&self) -> Api<T>
    where
        T: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client().clone(), self.namespace().unwrap_or("default"))
    }

    /// The handler's status fields as they will be written: the stored ones plus any updates so far.
    #[must_use]
    pub fn status_fields(&self) -> K::Fields {
        let updated = self.fields.lock().unwrap_or_else(PoisonError::into_inner);
        updated.clone().unwrap_or_else(|| self.stored_fields())
    }

    /// Updates the handler's own status fields; they are written together with the phase once the handler
    /// returns successfully (and dropped if it fails).
    pub fn update_status(&self, update: impl FnOnce(&mut K::Fields)) {
        let mut slot = self.fields.lock().unwrap_or_else(PoisonError::into_inner);
        let fields = slot.get_or_insert_with(|| self.stored_fields());
        update(fields);
    }

    /// Publishes a Normal Event about the object.
    ///
    /// # Errors
    /// [`ContextError::Event`] when the API server refuses it.
    pub async fn publish(
        &self,
        reason: impl Into<String>,
        note: impl Into<String>,
    ) -> Result<(), ContextError> {
        self.event(EventType::Normal, reason.into(), Some(note.into()))
            .await
    }

    /// Publishes an Event of the given type about the object.
    ///
    /// # Errors
    /// [`ContextError::Event`] when the API server refuses it.
    pub async fn event(
        &self,
        type_: EventType,
        reason: String,
        note: Option<String>,
    ) -> Result<(), ContextError> {
        let event = Event {
            type_,
            action: self.phase.name().to_owned(),
            reason,
            note,
            secondary: None,
        };
        self.shared
            .recorder
            .publish(&event, &self.object_ref())
            .await
            .map_err(|source| ContextError::Event {
                reason: event.reason.clone(),
                source,
            })
    }

    /// Writes an output object with server-side apply under the operator's field manager, owned by (and
    /// garbage-collected with) this object, in its namespace unless the output names one. Fields other
    /// managers own are left alone. Returns the object as stored.
    ///
    /// # Errors
    /// [`ContextError::UnnamedOutput`] without `metadata.name`; [`ContextError::Apply`] when refused.
    pub async fn apply_output<T>(&self, output: &T) -> Result<T, ContextError>
    where
        T: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + Serialize
            + DeserializeOwned
            + fmt::Debug,
    {
        let name = output
            .meta()
            .name
            .clone()
            .ok_or(ContextError::UnnamedOutput(type_name::<T>()))?;
        let mut output = output.clone();
        let namespace = output
            .namespace()
            .or_else(|| self.namespace().map(str::to_owned))
            .unwrap_or_else(|| "default".to_owned());
        output.meta_mut().namespace = Some(namespace.clone());
        if let Some(owner) = self.object.controller_owner_ref(&()) {
            let owners = output.owner_references_mut();
            owners.retain(|o| o.uid != owner.uid);
            owners.push(owner);
        }
        // Apply bodies must not carry server-managed metadata.
        output.meta_mut().managed_fields = None;
        output.meta_mut().resource_version = None;
        let api: Api<T> = Api::namespaced(self.client().clone(), &namespace);
        let params = PatchParams::apply(&self.shared.field_manager).force();
        api.patch(&name, &params, &Patch::Apply(&output))
            .await
            .map_err(|source| ContextError::Apply {
                kind: T::kind(&()).into_owned(),
                name,
                source,
            })
    }

    /// The fields updated by the handler, if it updated any.
    pub(crate) fn take_updated_fields(&self) -> Option<K::Fields> {
        self.fields
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    fn stored_fields(&self) -> K::Fields {
        self.object
            .status()
            .map(|s| s.fields.clone())
            .unwrap_or_default()
    }
}
