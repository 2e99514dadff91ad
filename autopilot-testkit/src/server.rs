//! [`ApiServer`]: the cluster state served over HTTP on 127.0.0.1, with a ready kube `Client`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cluster::{Cluster, Settings};
use crate::faults::Faults;
use crate::http::{AppState, router};
use crate::write::WriteParams;

/// Errors of starting, restarting and seeding an [`ApiServer`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listening socket could not be opened.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The kube client could not be built.
    #[error("cannot build a kube client: {0}")]
    Client(#[source] kube::Error),
    /// The server rejected an object being installed.
    #[error("cannot install {what}: {source}")]
    Install {
        /// Which object.
        what: String,
        /// The server's answer.
        source: crate::status::ApiError,
    },
    /// The server URL could not be parsed.
    #[error("invalid server URL: {0}")]
    Url(#[from] http::uri::InvalidUri),
    /// A YAML document could not be read.
    #[error("invalid YAML: {0}")]
    Yaml(#[from] serde_saphyr::Error),
    /// An object could not be encoded as JSON.
    #[error("cannot encode object: {0}")]
    Json(#[from] serde_json::Error),
    /// An object names a kind the server does not serve.
    #[error("no resource serves apiVersion {api_version:?} kind {kind:?}")]
    UnknownKind {
        /// `apiVersion`.
        api_version: String,
        /// `kind`.
        kind: String,
    },
}

/// How to start an [`ApiServer`].
///
/// ```
/// use std::time::Duration;
/// let options = autopilot_testkit::ServerOptions::default()
///     .history_limit(100)
///     .bookmark_interval(Duration::from_secs(1));
/// assert_eq!(options.port, 0);
/// ```
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Port on 127.0.0.1; 0 lets the OS choose.
    pub port: u16,
    /// How many changes are kept for watches to resume from; older resourceVersions get 410 Expired.
    pub history_limit: usize,
    /// Largest request body accepted (the real server's limit is 3 MiB); larger bodies get 413.
    pub max_body_bytes: usize,
    /// How often watches that allow bookmarks get one.
    pub bookmark_interval: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            port: 0,
            history_limit: 10_000,
            max_body_bytes: 3 * 1024 * 1024,
            bookmark_interval: Duration::from_secs(10),
        }
    }
}

impl ServerOptions {
    /// Listens on this port.
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Keeps this many changes of history.
    #[must_use]
    pub fn history_limit(mut self, changes: usize) -> Self {
        self.history_limit = changes;
        self
    }

    /// Accepts bodies up to this many bytes.
    #[must_use]
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Sends watch bookmarks this often.
    #[must_use]
    pub fn bookmark_interval(mut self, interval: Duration) -> Self {
        self.bookmark_interval = interval;
        self
    }
}

struct Listener {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// A running in-process Kubernetes API server. It stops when dropped.
///
/// ```
/// # tokio_test_block(async {
/// use k8s_openapi::api::core::v1::ConfigMap;
/// use kube::api::{Api, PostParams};
///
/// let server = autopilot_testkit::ApiServer::start().await.unwrap();
/// let config_maps: Api<ConfigMap> = Api::namespaced(server.client(), "default");
/// let mut cm = ConfigMap::default();
/// cm.metadata.name = Some("settings".into());
/// let created = config_maps.create(&PostParams::default(), &cm).await.unwrap();
/// assert!(created.metadata.uid.is_some());
/// # });
/// # fn tokio_test_block(f: impl std::future::Future<Output = ()>) {
/// #     tokio::runtime::Runtime::new().unwrap().block_on(f)
/// # }
/// ```
pub struct ApiServer {
    cluster: Arc<Cluster>,
    address: SocketAddr,
    url: String,
    client: kube::Client,
    faults: Faults,
    listener: Option<Listener>,
    controllers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

async fn listen(address: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(address)
        .await
        .map_err(|source| Error::Bind { address, source })
}

fn serve(cluster: Arc<Cluster>, listener: TcpListener, address: SocketAddr) -> Listener {
    let (stop, stopping) = watch::channel(false);
    let state = AppState {
        cluster,
        stopping: stopping.clone(),
        address: address.to_string(),
    };
    let mut shutdown = stopping;
    let task = tokio::spawn(async move {
        let result = axum::serve(listener, router(state))
            .with_graceful_shutdown(async move {
                // Ends when the sender is dropped or signals.
                let _ = shutdown.changed().await;
            })
            .await;
        if let Err(error) = result {
            tracing::error!(%error, "API server stopped with an error");
        }
    });
    Listener { stop, task }
}

impl ApiServer {
    /// Starts a server on 127.0.0.1 with a port chosen by the OS.
    pub async fn start() -> Result<ApiServer, Error> {
        Self::start_with(ServerOptions::default()).await
    }

    /// Starts a server with `options`.
    pub async fn start_with(options: ServerOptions) -> Result<ApiServer, Error> {
        let listener = listen(SocketAddr::from(([127, 0, 0, 1], options.port))).await?;
        let address = listener.local_addr().map_err(|source| Error::Bind {
            address: SocketAddr::from(([127, 0, 0, 1], options.port)),
            source,
        })?;
        let cluster = Arc::new(Cluster::new(Settings {
            history_limit: options.history_limit,
            max_body_bytes: options.max_body_bytes,
            bookmark_interval: options.bookmark_interval,
        }));
        let url = format!("http://{address}");
        let config = kube::Config::new(url.parse()?);
        let client = kube::Client::try_from(config).map_err(Error::Client)?;
        let controllers = crate::controllers::spawn(cluster.clone());
        let listener = serve(cluster.clone(), listener, address);
        Ok(ApiServer {
            faults: Faults::new(cluster.clone()),
            cluster,
            address,
            url,
            client,
            listener: Some(listener),
            controllers,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// A kube client talking to this server.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// A kubeconfig for this server (context, cluster and user all named `autopilot-testkit`).
    pub fn kubeconfig(&self) -> kube::config::Kubeconfig {
        kubeconfig(&self.url)
    }

    /// How many objects are stored.
    pub fn object_count(&self) -> usize {
        self.cluster.store.len()
    }

    /// The fault injection handle.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Stops serving and starts again on the same port; stored objects and resourceVersions are kept, open
    /// connections and watches end.
    pub async fn restart(&mut self) -> Result<(), Error> {
        self.stop().await;
        let listener = listen(self.address).await?;
        self.listener = Some(serve(self.cluster.clone(), listener, self.address));
        Ok(())
    }

    async fn stop(&mut self) {
        if let Some(listener) = self.listener.take() {
            let _ = listener.stop.send(true);
            let mut task = listener.task;
            if tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                task.abort();
                let _ = task.await;
            }
        }
    }

    /// Installs a CRD and returns once its resources are served.
    pub async fn install_crd(&self, crd: &CustomResourceDefinition) -> Result<(), Error> {
        let object = serde_json::to_value(crd)?;
        self.install_object(object)?;
        Ok(())
    }

    /// Installs the CRD of a kube `CustomResource` type.
    pub async fn install<K: kube::CustomResourceExt>(&self) -> Result<(), Error> {
        self.install_crd(&K::crd()).await
    }

    /// Creates (or replaces) every object of a multi-document YAML text; CRDs are installed first, and
    /// namespaced objects without a namespace go to `default`.
    pub async fn install_yaml(&self, yaml: &str) -> Result<(), Error> {
        let (crds, others) = crds_and_others(yaml)?;
        for object in crds.into_iter().chain(others) {
            self.install_object(object)?;
        }
        Ok(())
    }

    fn install_object(&self, object: Value) -> Result<(), Error> {
        let text = |field: &str| {
            object
                .get(field)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let (api_version, kind) = (text("apiVersion"), text("kind"));
        let resource = self
            .cluster
            .registry
            .find_kind(&api_version, &kind)
            .ok_or_else(|| Error::UnknownKind {
                api_version,
                kind: kind.clone(),
            })?;
        let name = crate::meta::meta_str(&object, "name").to_string();
        let namespace = match crate::meta::meta_str(&object, "namespace") {
            "" if resource.namespaced => Some("default".to_string()),
            "" => None,
            given => Some(given.to_string()),
        };
        let what = format!("{kind} {name}");
        let params = WriteParams::default();
        match self
            .cluster
            .create(&resource, namespace.as_deref(), object.clone(), &params)
        {
            Ok(_) => Ok(()),
            Err(e) if e.reason == "AlreadyExists" => {
                let current = self
                    .cluster
                    .store
                    .get(
                        &resource.storage,
                        &crate::cluster::key(&resource, namespace.as_deref(), &name),
                    )
                    .map(|s| crate::meta::meta_str(s.object(), "resourceVersion").to_string())
                    .unwrap_or_default();
                let mut object = object;
                crate::meta::metadata_mut(&mut object)
                    .insert("resourceVersion".into(), json!(current));
                self.cluster
                    .update(
                        &resource,
                        namespace.as_deref(),
                        &name,
                        object,
                        crate::meta::Part::Main,
                        &params,
                    )
                    .map(|_| ())
                    .map_err(|source| Error::Install { what, source })
            }
            Err(source) => Err(Error::Install { what, source }),
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(listener) = self.listener.take() {
            let _ = listener.stop.send(true);
            listener.task.abort();
        }
        for controller in &self.controllers {
            controller.abort();
        }
    }
}

/// The objects of a multi-document YAML text, CRDs apart from the rest (they are installed first, so the
/// kinds they define can be created next).
pub(crate) fn crds_and_others(yaml: &str) -> Result<(Vec<Value>, Vec<Value>), serde_saphyr::Error> {
    let documents: Vec<Value> = serde_saphyr::from_multiple(yaml)?;
    Ok(documents
        .into_iter()
        .filter(Value::is_object)
        .partition(|d| d.get("kind") == Some(&json!("CustomResourceDefinition"))))
}

/// A kubeconfig pointing at `url`.
pub fn kubeconfig(url: &str) -> kube::config::Kubeconfig {
    let name = "autopilot-testkit";
    let document = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": name, "cluster": { "server": url } }],
        "users": [{ "name": name, "user": {} }],
        "contexts": [{ "name": name, "context": { "cluster": name, "user": name, "namespace": "default" } }],
        "current-context": name,
    });
    serde_json::from_value(document).unwrap_or_default()
}
