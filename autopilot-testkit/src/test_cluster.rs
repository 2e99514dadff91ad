//! [`TestCluster`]: one API for end-to-end tests, on the in-process server or on a real kube-apiserver.
//!
//! The backend is chosen per run by `AUTOPILOT_TEST_APISERVER` (`in-process`, the default, or `real`), so
//! the same test files run on both. Each `TestCluster` is one test's view of a cluster: a namespace of its
//! own (its client's default namespace) and a kube `Client` on the caller's runtime. On the in-process
//! backend every test gets a fresh server (milliseconds); on the real backend the tests of one binary share
//! one etcd + kube-apiserver (seconds to start), told apart by their namespaces, as envtest users do.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use kube::api::{Api, PostParams};
//!
//! let cluster = autopilot_testkit::TestCluster::start().await?;
//! let config_maps: Api<ConfigMap> = Api::default_namespaced(cluster.client());
//! let mut settings = ConfigMap::default();
//! settings.metadata.name = Some("settings".into());
//! let created = config_maps.create(&PostParams::default(), &settings).await?;
//! assert_eq!(created.metadata.namespace.as_deref(), Some(cluster.namespace()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::Kubeconfig;
use kube::discovery::Discovery;
use kube::{Client, ResourceExt};
use serde_json::Value;
use tokio::sync::OnceCell;

use crate::real::{Binaries, RealApiServer, RealError};
use crate::server::ApiServer;

/// The environment variable that chooses the backend.
pub const BACKEND_VARIABLE: &str = "AUTOPILOT_TEST_APISERVER";

/// Field manager of what a test cluster installs.
const MANAGER: &str = "autopilot-testkit";

/// How long an installed CRD may take to be served.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Which API server a [`TestCluster`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// [`ApiServer`], in the test process.
    InProcess,
    /// etcd + kube-apiserver ([`RealApiServer`]).
    Real,
}

impl Backend {
    /// The backend `AUTOPILOT_TEST_APISERVER` names: unset, empty or `in-process` is
    /// [`Backend::InProcess`], `real` is [`Backend::Real`].
    ///
    /// # Errors
    /// [`ClusterError::UnknownBackend`] for any other value.
    ///
    /// ```
    /// use autopilot_testkit::Backend;
    /// assert_eq!("real".parse::<Backend>().unwrap(), Backend::Real);
    /// assert!("kind".parse::<Backend>().is_err());
    /// ```
    pub fn from_env() -> Result<Backend, ClusterError> {
        std::env::var(BACKEND_VARIABLE).unwrap_or_default().parse()
    }

    /// The name `AUTOPILOT_TEST_APISERVER` uses for it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::InProcess => "in-process",
            Backend::Real => "real",
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = ClusterError;

    fn from_str(value: &str) -> Result<Backend, ClusterError> {
        match value.trim() {
            "" | "in-process" => Ok(Backend::InProcess),
            "real" => Ok(Backend::Real),
            other => Err(ClusterError::UnknownBackend(other.to_owned())),
        }
    }
}

/// Errors of starting a [`TestCluster`] and installing objects into it.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// `AUTOPILOT_TEST_APISERVER` names no backend.
    #[error("{BACKEND_VARIABLE}={0:?} names no backend: use `in-process` (the default) or `real`")]
    UnknownBackend(String),
    /// The in-process server did not start.
    #[error(transparent)]
    InProcess(#[from] crate::server::Error),
    /// The real server did not start (the same error for every test of the binary).
    #[error("the real API server did not start: {0}")]
    Real(Arc<RealError>),
    /// A request to the cluster failed.
    #[error("{what}: {source}")]
    Api {
        /// What was being done.
        what: String,
        /// The client's error.
        source: kube::Error,
    },
    /// A YAML document could not be read.
    #[error("invalid YAML: {0}")]
    Yaml(#[from] serde_saphyr::Error),
    /// An object could not be encoded or decoded.
    #[error("invalid object: {0}")]
    Json(#[from] serde_json::Error),
    /// An object names a kind the cluster does not serve.
    #[error("the cluster serves no apiVersion {api_version:?} kind {kind:?}")]
    UnknownKind {
        /// `apiVersion`.
        api_version: String,
        /// `kind`.
        kind: String,
    },
    /// An installed CRD was not served in time.
    #[error("CRD {name} was not established within {INSTALL_TIMEOUT:?}")]
    NotEstablished {
        /// The CRD's name.
        name: String,
    },
}

fn api_error(what: impl Into<String>) -> impl FnOnce(kube::Error) -> ClusterError {
    let what = what.into();
    move |source| ClusterError::Api { what, source }
}

/// The real server shared by the tests of one test binary; it stops when the process ends.
static SHARED_REAL: OnceCell<Result<Arc<RealApiServer>, Arc<RealError>>> = OnceCell::const_new();

async fn shared_real() -> Result<Arc<RealApiServer>, ClusterError> {
    SHARED_REAL
        .get_or_init(|| async {
            let started = async { RealApiServer::start(Binaries::locate()?).await };
            match started.await {
                Ok(server) => {
                    tracing::info!(
                        url = server.url(),
                        version = server.version().unwrap_or("?"),
                        startup = ?server.startup(),
                        "real API server started"
                    );
                    Ok(Arc::new(server))
                }
                Err(error) => Err(Arc::new(error)),
            }
        })
        .await
        .clone()
        .map_err(ClusterError::Real)
}

/// One test's cluster: a namespace of its own on the chosen backend, and a client whose default namespace
/// it is.
pub struct TestCluster {
    backend: Backend,
    namespace: String,
    client: Client,
    kubeconfig: Kubeconfig,
    in_process: Option<ApiServer>,
    real: Option<Arc<RealApiServer>>,
}

impl std::fmt::Debug for TestCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCluster")
            .field("backend", &self.backend)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl TestCluster {
    /// A cluster on the backend `AUTOPILOT_TEST_APISERVER` chooses, with a fresh namespace.
    ///
    /// # Errors
    /// When the variable names no backend, the server does not start, or the namespace cannot be made.
    pub async fn start() -> Result<TestCluster, ClusterError> {
        Self::start_on(Backend::from_env()?).await
    }

    /// A cluster on `backend`, with a fresh namespace.
    ///
    /// # Errors
    /// When the server does not start or the namespace cannot be made.
    pub async fn start_on(backend: Backend) -> Result<TestCluster, ClusterError> {
        let namespace = format!("test-{}", random_suffix());
        let (config, mut kubeconfig, in_process, real) = match backend {
            Backend::InProcess => {
                let server = ApiServer::start().await?;
                let mut config =
                    kube::Config::new(server.url().parse().map_err(crate::server::Error::from)?);
                config.default_namespace.clone_from(&namespace);
                (config, server.kubeconfig(), Some(server), None)
            }
            Backend::Real => {
                let server = shared_real().await?;
                let config = server
                    .config(&namespace)
                    .map_err(|error| ClusterError::Real(Arc::new(error)))?;
                (config, server.kubeconfig(), None, Some(server))
            }
        };
        for context in &mut kubeconfig.contexts {
            if let Some(context) = context.context.as_mut() {
                context.namespace = Some(namespace.clone());
            }
        }
        let client = Client::try_from(config).map_err(api_error("cannot build a client"))?;
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let mut object = Namespace::default();
        object.metadata.name = Some(namespace.clone());
        namespaces
            .create(&PostParams::default(), &object)
            .await
            .map_err(api_error(format!("cannot create namespace {namespace}")))?;
        Ok(TestCluster {
            backend,
            namespace,
            client,
            kubeconfig,
            in_process,
            real,
        })
    }

    /// Which backend this cluster runs on.
    #[must_use]
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// This test's namespace (`test-` and a random suffix), the client's default namespace.
    #[must_use]
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A kube client with full rights; its default namespace is [`TestCluster::namespace`].
    #[must_use]
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// A kubeconfig for the same server and rights, with this test's namespace as its context's.
    #[must_use]
    pub fn kubeconfig(&self) -> &Kubeconfig {
        &self.kubeconfig
    }

    /// The in-process server, for what only it can do (fault injection, restarts); `None` on the real
    /// backend.
    #[must_use]
    pub fn in_process(&self) -> Option<&ApiServer> {
        self.in_process.as_ref()
    }

    /// The real server, `None` on the in-process backend.
    #[must_use]
    pub fn real(&self) -> Option<&RealApiServer> {
        self.real.as_deref()
    }

    /// Installs (or updates) a CRD by server-side apply and returns once its resources are served.
    ///
    /// # Errors
    /// When the server refuses the CRD or does not serve it in time.
    pub async fn install_crd(&self, crd: &CustomResourceDefinition) -> Result<(), ClusterError> {
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        let name = crd.name_any();
        let mut object = serde_json::to_value(crd)?;
        if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.remove("resourceVersion");
        }
        crds.patch(&name, &apply_params(), &Patch::Apply(object))
            .await
            .map_err(api_error(format!("cannot install CRD {name}")))?;
        let established = kube::runtime::wait::await_condition(
            crds,
            &name,
            kube::runtime::conditions::is_crd_established(),
        );
        match tokio::time::timeout(INSTALL_TIMEOUT, established).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(ClusterError::NotEstablished { name }),
        }
    }

    /// Installs the CRD of a kube `CustomResource` type.
    ///
    /// # Errors
    /// As [`TestCluster::install_crd`].
    pub async fn install<K: kube::CustomResourceExt>(&self) -> Result<(), ClusterError> {
        self.install_crd(&K::crd()).await
    }

    /// Applies every object of a multi-document YAML text (server-side, forced): CRDs first, namespaced
    /// objects without a namespace into this test's namespace.
    ///
    /// # Errors
    /// When a document is not an object of a served kind, or the server refuses it.
    pub async fn install_yaml(&self, yaml: &str) -> Result<(), ClusterError> {
        let (crds, others) = crate::server::crds_and_others(yaml)?;
        for crd in crds {
            self.install_crd(&serde_json::from_value(crd)?).await?;
        }
        if others.is_empty() {
            return Ok(());
        }
        let discovery = Discovery::new(self.client.clone())
            .run()
            .await
            .map_err(api_error("discovery failed"))?;
        for object in others {
            let text = |field: &str| {
                object
                    .get(field)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let (api_version, kind) = (text("apiVersion"), text("kind"));
            let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
            let (resource, capabilities) = discovery
                .groups()
                .find(|g| g.name() == group)
                .and_then(|g| {
                    g.versioned_resources(version)
                        .into_iter()
                        .find(|(resource, _)| resource.kind == kind)
                })
                .ok_or_else(|| ClusterError::UnknownKind {
                    api_version: api_version.clone(),
                    kind: kind.clone(),
                })?;
            let namespaced = capabilities.scope == kube::discovery::Scope::Namespaced;
            let parsed: DynamicObject = serde_json::from_value(object.clone())?;
            let namespace = parsed.namespace().unwrap_or_else(|| self.namespace.clone());
            let api = self.dynamic_api(&resource, namespaced.then_some(namespace.as_str()));
            let name = parsed.name_any();
            api.patch(&name, &apply_params(), &Patch::Apply(object))
                .await
                .map_err(api_error(format!("cannot apply {kind} {name}")))?;
        }
        Ok(())
    }

    fn dynamic_api(&self, resource: &ApiResource, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(namespace) => Api::namespaced_with(self.client.clone(), namespace, resource),
            None => Api::all_with(self.client.clone(), resource),
        }
    }
}

fn apply_params() -> PatchParams {
    PatchParams::apply(MANAGER).force()
}

/// Six lower-case letters and digits, enough to keep the namespaces of one run apart.
fn random_suffix() -> String {
    (0..6)
        .map(|_| {
            let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789";
            char::from(alphabet[fastrand::usize(..alphabet.len())])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_parse_by_name() {
        assert_eq!("".parse::<Backend>().unwrap(), Backend::InProcess);
        assert_eq!("in-process".parse::<Backend>().unwrap(), Backend::InProcess);
        assert_eq!("real".parse::<Backend>().unwrap(), Backend::Real);
        let error = "kind".parse::<Backend>().unwrap_err().to_string();
        assert!(error.contains("use `in-process`"), "{error}");
    }

    #[test]
    fn namespaces_are_dns_labels() {
        let suffix = random_suffix();
        assert_eq!(suffix.len(), 6);
        assert!(
            suffix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
    }
}
