//! The runtime: [`Operator`] drives objects through their phases on kube-runtime's `Controller`.
//!
//! Per reconcile of an object it:
//! 1. skips objects still backing off after a handler error, and cache entries older than its own last
//!    status write;
//! 2. on deletion, runs the `finalizer` phase's handler (if declared) and removes the finalizer;
//! 3. reads `status.phase`: none yet, or a new `metadata.generation` (spec change), starts at the initial
//!    phase; an unknown name sets `Degraded=True` (reason `UnknownPhase`) and waits for a spec change;
//! 4. runs the phase's handler, then writes phase, conditions, history, message and the handler's own fields
//!    in one status patch, emits one Event per transition (reason = the phase entered) and calls the
//!    [`ObserveHooks`];
//! 5. on a handler error: `Degraded=True` (reason `HandlerError`), a Warning Event, and a retry after a capped
//!    exponential backoff with jitter ([`Backoff`]).
//!
//! The status is written only after the handler returned: a crash in between re-runs the handler in the
//! same phase, so handlers must be idempotent.
//!
//! Objects are reconciled when they change, when a handler's re-check is due, when something they declared
//! as input changes ([`Operator::watches_input`]) and when an external event concerns them
//! ([`Operator::reconcile_on`]); the handler then sees that event in [`Context::events`](crate::Context::events).

mod hooks;
mod inbox;
mod reconcile;

use std::{
    future::Future,
    sync::{Arc, atomic::AtomicUsize},
};

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use kube::{
    Api, Client, Resource, ResourceExt,
    runtime::{
        Controller, WatchStreamExt, controller,
        events::Reporter,
        reflector::{self, ObjectRef, Store},
        utils::PredicateConfig,
        watcher::{self, watcher},
    },
};
use serde::de::DeserializeOwned;
use tracing::{debug, info, warn};

pub use hooks::{Census, ControllerInfo, ObjectKey, ObserveHooks, Outcome};
pub use inbox::INBOX_LIMIT;
pub use reconcile::{HandlerPanicked, ReconcileError};

use crate::{
    Autopilot, Handlers, PhaseEnum,
    backoff::{Backoff, Failures},
    config::OperatorConfig,
    context::{Extensions, Shared},
    events::Recorder,
    sources::{EventReceiver, ExternalEvent},
    status::HISTORY_LIMIT,
};
use hooks::Hooks;
use inbox::Inbox;
use reconcile::Reconciler;

/// Errors starting the operator.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No kube client could be built from the configuration's kubeconfig or the environment.
    #[error("connecting to the cluster")]
    Connect(#[source] crate::config::ConnectError),
    /// The production wrapper (probe server, leader election, signals) failed.
    #[error("operator process")]
    Process(#[source] Box<crate::shutdown::ProcessError>),
}

/// Builds and runs an operator for the custom resource `K`.
///
/// ```no_run
/// use autopilot::{Operator, config::OperatorConfig};
/// use k8s_openapi::api::apps::v1::Deployment;
/// # use autopilot::__doc::*;
/// # fn handlers() -> impl autopilot::Handlers<Rollout> { RolloutHandlers { starting: |_, _| async { Ok::<_, std::io::Error>(autopilot::Transition::recheck()) }, waiting: |_, _| async { Ok::<_, std::io::Error>(autopilot::Transition::recheck()) } } }
///
/// # async fn run() -> anyhow::Result<()> {
/// let config = OperatorConfig::load()?;
/// autopilot::observability::init_logging(&config.log)?;
/// Operator::<Rollout>::try_default(config, handlers())
///     .await?
///     // The Deployment a Rollout names wakes it when it changes.
///     .watches_input::<Deployment, _>(|rollout| Some(rollout.spec.target.clone()))
///     // ConfigMaps it owns wake it too.
///     .owns::<k8s_openapi::api::core::v1::ConfigMap>()
///     .run()
///     .await?;
/// # Ok(())
/// # }
/// ```
///
/// The same against the in-process API server of `autopilot-testkit`, until the object is done:
///
/// ```
/// use std::sync::Arc;
/// use autopilot::{Context, Operator, Transition, config::OperatorConfig};
/// use autopilot_testkit::ApiServer;
/// use kube::{Api, api::PostParams};
/// # use autopilot::__doc::*;
///
/// async fn next(_: Arc<Rollout>, ctx: Context<Rollout>) -> anyhow::Result<Transition<RolloutPhase>> {
///     Ok(Transition::next(match ctx.phase() {
///         RolloutPhase::Starting => RolloutPhase::Waiting,
///         _ => RolloutPhase::Done,
///     }))
/// }
///
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// let server = ApiServer::start().await?;
/// server.install_crd(&autopilot::crd::<Rollout>()).await?;
/// let client = server.client();
/// let handlers = RolloutHandlers { starting: next, waiting: next };
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let operator = Operator::<Rollout>::new(client.clone(), OperatorConfig::default(), handlers);
/// let running = tokio::spawn(operator.run_until(async move { let _ = stopped.await; }));
///
/// let rollouts: Api<Rollout> = Api::namespaced(client, "default");
/// let spec = RolloutSpec { target: "web".into(), replicas: 2 };
/// rollouts.create(&PostParams::default(), &Rollout::new("web", spec)).await?;
/// for attempt in 0.. {
///     assert!(attempt < 3000, "not done within a minute");
///     let rollout = rollouts.get("web").await?;
///     let phase = rollout.status.as_ref().and_then(|s| s.recorded_phase().ok().flatten());
///     if phase == Some(RolloutPhase::Done) {
///         let history: Vec<_> = rollout.status.unwrap().history.iter().map(|h| h.phase.as_str().to_owned()).collect();
///         assert_eq!(history, ["Starting", "Waiting", "Done"]);
///         break;
///     }
///     tokio::time::sleep(std::time::Duration::from_millis(20)).await;
/// }
/// stop.send(()).ok();
/// running.await??;
/// # Ok::<(), anyhow::Error>(())
/// # })?;
/// # Ok::<(), anyhow::Error>(())
/// ```
pub struct Operator<K: Autopilot> {
    controller: Controller<K>,
    client: Client,
    config: Arc<OperatorConfig>,
    handlers: Box<dyn Handlers<K>>,
    extensions: Extensions,
    hooks: Hooks,
    backoff: Backoff,
    history_limit: usize,
    field_manager: String,
    restart_on_spec_change: bool,
    concurrency: u16,
    inbox: Option<Arc<Inbox<K>>>,
    inbox_limit: usize,
}

impl<K: Autopilot> Operator<K> {
    /// An operator for `K` using `client`, watching the namespace the configuration names (or all).
    #[must_use]
    pub fn new(client: Client, config: OperatorConfig, handlers: impl Handlers<K>) -> Self {
        let api = K::api(client.clone(), config.watch_namespace.as_deref());
        // Status-only changes (our own writes above all) do not wake an object: a handler that asked
        // to be re-checked in a minute runs in a minute. Spec, metadata and deletion changes do.
        let (reader, writer) = reflector::store();
        let changes = watcher(api, watcher::Config::default().any_semantic())
            .default_backoff()
            .reflect(writer)
            .applied_objects()
            .predicate_filter(wakes_object::<K>, PredicateConfig::default());
        let controller = Controller::for_stream(changes, reader);
        Self {
            controller,
            client,
            concurrency: config.concurrency,
            config: Arc::new(config),
            handlers: Box::new(handlers),
            extensions: Extensions::default(),
            hooks: Hooks::default(),
            backoff: Backoff::default(),
            history_limit: HISTORY_LIMIT,
            field_manager: format!("{}-autopilot", K::kind(&()).to_lowercase()),
            restart_on_spec_change: true,
            inbox: None,
            inbox_limit: INBOX_LIMIT,
        }
    }

    /// An operator for `K` with a client for the cluster the configuration names
    /// ([`OperatorConfig::client`]: its kubeconfig file, or the environment).
    ///
    /// # Errors
    /// [`RuntimeError::Connect`] when no client can be configured.
    pub async fn try_default(
        config: OperatorConfig,
        handlers: impl Handlers<K>,
    ) -> Result<Self, RuntimeError> {
        let client = config.client().await.map_err(RuntimeError::Connect)?;
        Ok(Self::new(client, config, handlers))
    }

    /// Also reconciles `K` when an object it owns (through an owner reference) changes.
    #[must_use]
    pub fn owns<T>(mut self) -> Self
    where
        T: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug
            + Send
            + Sync
            + 'static,
    {
        let api = self.api::<T>();
        self.controller = self
            .controller
            .owns(api, watcher::Config::default().any_semantic());
        self
    }

    /// Also reconciles every `K` whose `input_of` names a changed `T` in the same namespace: declare what
    /// each object reads (e.g. its target Deployment) and changes to it wake the object.
    #[must_use]
    pub fn watches_input<T, I>(mut self, input_of: impl Fn(&K) -> I + Send + Sync + 'static) -> Self
    where
        T: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug
            + Send
            + Sync
            + 'static,
        I: IntoIterator<Item = String>,
    {
        let store: Store<K> = self.controller.store();
        let api = self.api::<T>();
        let mapper = move |input: T| {
            let name = input.name_any();
            let namespace = input.namespace();
            store
                .state()
                .into_iter()
                .filter(|obj| {
                    obj.namespace() == namespace && input_of(obj).into_iter().any(|n| n == name)
                })
                .map(|obj| ObjectRef::from_obj(&*obj))
                .collect::<Vec<_>>()
        };
        self.controller =
            self.controller
                .watches(api, watcher::Config::default().any_semantic(), mapper);
        self
    }

    /// Also reconciles the objects `mapper` returns for each change of a `T` (a kube-runtime `watches`).
    #[must_use]
    pub fn watches_input_with<T, I>(
        mut self,
        mapper: impl Fn(T) -> I + Send + Sync + 'static,
    ) -> Self
    where
        T: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug
            + Send
            + Sync
            + 'static,
        I: IntoIterator<Item = ObjectRef<K>> + 'static,
        I::IntoIter: Send,
    {
        let api = self.api::<T>();
        self.controller =
            self.controller
                .watches(api, watcher::Config::default().any_semantic(), mapper);
        self
    }

    /// Reconciles the objects each event from `events` concerns at once, instead of at their next re-check,
    /// and shows their handlers the event through [`Context::events`](crate::Context::events).
    ///
    /// `map` names the objects an event concerns, given the operator's cache; [`sources::by_name`],
    /// [`sources::by_label`] and [`sources::by_key`](crate::sources::by_key) cover the usual cases. Events
    /// are read once the cache is filled; objects the cache does not hold are skipped (the event is
    /// dropped for them). Each object keeps at most [`Operator::inbox_limit`] events not yet seen by a
    /// successful handler run, dropping the oldest with a warning. Call it once per source, or share one
    /// channel among sources.
    ///
    /// [`sources::by_name`]: crate::sources::by_name
    /// [`sources::by_label`]: crate::sources::by_label
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use autopilot::{Context, Operator, Transition, config::OperatorConfig, sources::{self, ExternalEvent}};
    /// use autopilot_testkit::ApiServer;
    /// use kube::{Api, api::PostParams};
    /// # use autopilot::__doc::*;
    ///
    /// // Waits an hour between checks, unless a build of its target finishes before that.
    /// async fn waiting(_: Arc<Rollout>, ctx: Context<Rollout>) -> anyhow::Result<Transition<RolloutPhase>> {
    ///     match ctx.events().iter().find(|e| e.kind == "build.finished") {
    ///         Some(build) => Ok(Transition::next(RolloutPhase::Done).with_message(format!("build {}", build.id))),
    ///         None => Ok(Transition::stay_for(Duration::from_secs(3600))),
    ///     }
    /// }
    /// async fn starting(_: Arc<Rollout>, _: Context<Rollout>) -> anyhow::Result<Transition<RolloutPhase>> {
    ///     Ok(Transition::next(RolloutPhase::Waiting))
    /// }
    ///
    /// # tokio::runtime::Runtime::new()?.block_on(async {
    /// let server = ApiServer::start().await?;
    /// server.install_crd(&autopilot::crd::<Rollout>()).await?;
    /// let client = server.client();
    /// let (events, received) = sources::channel(64);
    /// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    /// let operator = Operator::<Rollout>::new(client.clone(), OperatorConfig::default(), RolloutHandlers { starting, waiting })
    ///     // A CloudEvent with `subject: default/web` concerns the Rollout `web` in `default`.
    ///     .reconcile_on(received, sources::by_name());
    /// let running = tokio::spawn(operator.run_until(async move { let _ = stopped.await; }));
    ///
    /// let rollouts: Api<Rollout> = Api::namespaced(client, "default");
    /// rollouts.create(&PostParams::default(), &Rollout::new("web", RolloutSpec { target: "web".into(), replicas: 1 })).await?;
    /// let phase = |r: &Rollout| r.status.as_ref().and_then(|s| s.recorded_phase().ok().flatten());
    /// let mut sent = false;
    /// for attempt in 0.. {
    ///     assert!(attempt < 3000, "not done within a minute");
    ///     match phase(&rollouts.get("web").await?) {
    ///         Some(RolloutPhase::Waiting) if !sent => {
    ///             events.send(ExternalEvent {
    ///                 source: "/ci".into(), kind: "build.finished".into(), id: "b-7".into(),
    ///                 subject: Some("default/web".into()), time: None, data: serde_json::Value::Null,
    ///             }).await?;
    ///             sent = true;
    ///         }
    ///         Some(RolloutPhase::Done) => break,
    ///         _ => {}
    ///     }
    ///     tokio::time::sleep(Duration::from_millis(20)).await;
    /// }
    /// assert_eq!(rollouts.get("web").await?.status.unwrap().message.as_deref(), Some("build b-7"));
    /// stop.send(()).ok();
    /// running.await??;
    /// # Ok::<(), anyhow::Error>(())
    /// # })?;
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    #[must_use]
    pub fn reconcile_on<I>(
        mut self,
        events: EventReceiver,
        map: impl Fn(&ExternalEvent, &Store<K>) -> I + Send + 'static,
    ) -> Self
    where
        I: IntoIterator<Item = ObjectRef<K>>,
    {
        let store = self.controller.store();
        let limit = self.inbox_limit;
        let inbox = Arc::clone(
            self.inbox
                .get_or_insert_with(|| Arc::new(Inbox::new(store.clone(), limit))),
        );
        let cache = store.clone();
        let received = futures::stream::unfold((events, false), move |(mut events, ready)| {
            let cache = cache.clone();
            async move {
                // Before the first list, every object would look unknown.
                if !ready && !until_ready(&cache).await {
                    return None;
                }
                let event = events.recv().await?;
                Some((event, (events, true)))
            }
        });
        let triggers = received.flat_map(move |event| {
            let event = Arc::new(event);
            let woken: Vec<ObjectRef<K>> = map(&event, &store)
                .into_iter()
                .filter(|oref| inbox.deliver(oref, &event))
                .collect();
            debug!(source = %event.source, kind = %event.kind, id = %event.id, objects = woken.len(), "external event");
            futures::stream::iter(woken)
        });
        self.controller = self.controller.reconcile_on(triggers);
        self
    }

    /// How many external events each object keeps for its next handler run (default [`INBOX_LIMIT`]);
    /// beyond that the oldest are dropped with a warning.
    #[must_use]
    pub fn inbox_limit(mut self, limit: usize) -> Self {
        self.inbox_limit = limit.max(1);
        if let Some(inbox) = &self.inbox {
            inbox.set_limit(self.inbox_limit);
        }
        self
    }

    /// Makes `value` available to handlers through [`Context::get`](crate::Context::get).
    #[must_use]
    pub fn with_extension<T: std::any::Any + Send + Sync>(mut self, value: T) -> Self {
        self.extensions.insert(value);
        self
    }

    /// Makes the Prometheus client available to handlers through
    /// [`Context::metrics`](crate::Context::metrics).
    #[must_use]
    pub fn with_metrics(self, client: autopilot_metrics::PrometheusClient) -> Self {
        self.with_extension(client)
    }

    /// Makes the mesh's traffic router available to handlers through [`Context::mesh`](crate::Context::mesh)
    /// (build one with `autopilot_mesh::router_for(config.mesh_provider, ..)`).
    #[must_use]
    pub fn with_mesh(self, router: Arc<dyn autopilot_mesh::TrafficRouter>) -> Self {
        self.with_extension(router)
    }

    /// Registers hooks for metrics, health and leader election.
    #[must_use]
    pub fn observe(mut self, hooks: Arc<dyn ObserveHooks>) -> Self {
        self.hooks.0.push(hooks);
        self
    }

    /// The backoff after handler and API errors (default: 1 s doubling to 5 min, 20 % jitter).
    #[must_use]
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// At most this many objects are reconciled at once (default: the configuration's `concurrency`).
    #[must_use]
    pub fn concurrency(mut self, concurrency: u16) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// How many past phases `status.history` keeps (default [`HISTORY_LIMIT`]).
    #[must_use]
    pub fn history_limit(mut self, limit: usize) -> Self {
        self.history_limit = limit;
        self
    }

    /// The field manager of status writes and applied outputs (default `<kind>-autopilot`).
    #[must_use]
    pub fn field_manager(mut self, name: impl Into<String>) -> Self {
        self.field_manager = name.into();
        self
    }

    /// Keeps the current phase when the spec changes, instead of restarting at the initial phase.
    #[must_use]
    pub fn keep_phase_on_spec_change(mut self) -> Self {
        self.restart_on_spec_change = false;
        self
    }

    /// The cache of watched `K` objects (shared with the controller).
    #[must_use]
    pub fn store(&self) -> Store<K> {
        self.controller.store()
    }

    /// Runs as a production process until SIGTERM or Ctrl+C: serves `/metrics`, `/healthz` and `/readyz` on
    /// the configured address, runs handlers only while holding the Lease when leader election is enabled,
    /// and on the signal lets in-flight handlers finish within the grace period, then releases the Lease.
    /// See [`Operator::run_process`] for the parts.
    ///
    /// # Errors
    /// [`RuntimeError::Process`] when the server, the signal handlers or leader election fail, or the
    /// Lease is lost.
    pub async fn run(self) -> Result<(), RuntimeError> {
        use crate::{observability, shutdown};
        let process = shutdown::OperatorProcess::from_config(&self.config);
        let failed = |e| RuntimeError::Process(Box::new(e));
        let signal = shutdown::shutdown_on_signal().map_err(|e| failed(e.into()))?;
        self.run_process(
            process,
            observability::Metrics::new(),
            observability::Health::new(),
            signal,
        )
        .await
        .map_err(failed)
    }

    /// The client this operator talks to the API server with.
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// Runs until `shutdown` completes, then stops taking new work and lets in-flight handlers finish
    /// before returning. Leader election runs the operator this way, with "lost the lease" as shutdown.
    ///
    /// # Errors
    /// None yet; reserved for start-up failures.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), RuntimeError> {
        let kind = K::kind(&()).into_owned();
        let store = self.controller.store();
        let info = ControllerInfo {
            kind: kind.clone(),
            phases: K::Phase::NAMES,
            concurrency: self.concurrency,
            census: census(store.clone()),
        };
        self.hooks.each(|h| h.started(&info));
        let synced = {
            let hooks = self.hooks.clone();
            let kind = kind.clone();
            let store = store.clone();
            tokio::spawn(async move {
                if until_ready(&store).await {
                    hooks.each(|h| h.caches_synced(&kind));
                }
            })
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let stopper = tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(());
        });

        let reporter = Reporter {
            controller: self.field_manager.clone(),
            instance: std::env::var("POD_NAME").ok(),
        };
        let reconciler = Arc::new(Reconciler::<K> {
            shared: Arc::new(Shared {
                recorder: Recorder::new(self.client.clone(), reporter),
                client: self.client,
                config: Arc::clone(&self.config),
                extensions: self.extensions,
                field_manager: self.field_manager,
            }),
            handlers: self.handlers,
            hooks: self.hooks.clone(),
            failures: Failures::new(self.backoff),
            written: std::sync::Mutex::default(),
            history_limit: self.history_limit,
            restart_on_spec_change: self.restart_on_spec_change,
            work_interval: self.config.work_interval,
            finalizer: format!("{}/autopilot-cleanup", K::group(&())),
            kind: kind.clone(),
            store: store.clone(),
            reconciles: AtomicUsize::new(0),
            inbox: self.inbox,
        });
        info!(%kind, concurrency = self.concurrency, "operator starting");
        self.controller
            .with_config(controller::Config::default().concurrency(self.concurrency))
            .graceful_shutdown_on(async move {
                let _ = stop_rx.await;
            })
            .run(
                |obj, r: Arc<Reconciler<K>>| async move { r.reconcile(obj).await },
                |obj, error, r| controller::Action::requeue(r.error_delay(&obj, error)),
                reconciler,
            )
            .for_each(|result| async move {
                match result {
                    Ok((obj, _)) => debug!(name = %obj.name, "reconciled"),
                    Err(controller::Error::ReconcilerFailed(..)) => {} // logged by the error policy
                    Err(error) => warn!(error = %reconcile::error_chain(&error), "controller"),
                }
            })
            .await;
        synced.abort();
        stopper.abort();
        info!(%kind, "operator stopped");
        self.hooks.each(|h| h.stopped(&kind));
        Ok(())
    }

    fn api<T>(&self) -> Api<T>
    where
        T: Resource<DynamicType = (), Scope = NamespaceResourceScope>,
    {
        match &self.config.watch_namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        }
    }
}

/// Waits until `store` holds the first list; false when its writer stopped before that.
async fn until_ready<K: Autopilot>(store: &Store<K>) -> bool {
    // The store's ready signal wakes only its most recent waiter, and the controller waits on it too: poll
    // again now and then rather than rely on being woken.
    loop {
        let ready = store.wait_until_ready();
        match tokio::time::timeout(std::time::Duration::from_millis(100), ready).await {
            Ok(Ok(())) => return true,
            Ok(Err(_)) => return false,
            Err(_) => {}
        }
    }
}

/// What a change must touch to wake an object: anything but its status.
fn wakes_object<K: Resource>(obj: &K) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let meta = obj.meta();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    meta.generation.hash(&mut hasher);
    meta.deletion_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .hash(&mut hasher);
    meta.finalizers.hash(&mut hasher);
    meta.labels.hash(&mut hasher);
    meta.annotations.hash(&mut hasher);
    Some(hasher.finish())
}

fn census<K: Autopilot>(store: Store<K>) -> Census {
    Census::new(move || {
        let mut counts: Vec<(String, usize)> = K::Phase::NAMES
            .iter()
            .map(|n| ((*n).to_owned(), 0))
            .collect();
        for obj in store.state() {
            let name = obj
                .status()
                .and_then(|s| s.phase.as_ref())
                .map_or("", |p| p.as_str());
            match counts.iter_mut().find(|(n, _)| n == name) {
                Some((_, count)) => *count += 1,
                None => counts.push((name.to_owned(), 1)),
            }
        }
        counts
    })
}
