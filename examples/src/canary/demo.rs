//! The canary operator on the in-process API server, with a synthetic mesh data plane scraped by a
//! real Prometheus: the embedded demo and the end-to-end tests share it.
//!
//! [`Environment::start`] brings up the API server (with the Deployment status helper), the CRDs,
//! the `podinfo` app in namespace `demo`, the traffic, Prometheus and the operator. [`run`] then
//! rolls out a healthy revision (promoted: `Succeeded`) and a faulty one (rolled back: `Failed`),
//! printing every step.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use autopilot::Operator;
use autopilot::config::OperatorConfig;
use autopilot_mesh::{
    GatewayRef, MeshProvider, Route, RouterOptions, TrafficRouter, Weights, router_for,
};
use autopilot_metrics::{ClientOptions, PrometheusClient};
use autopilot_testkit::prometheus::{PrometheusServer, ScrapeTarget};
use autopilot_testkit::{Backend, TestCluster};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::task::JoinHandle;

use super::phases::{Deps, handlers};
use super::spec::{Canary, CanaryPhase};
use super::{http_client, operator};
use crate::traffic::{Health, TrafficSimulator, Workload};

/// The demo app's Deployment (and the Canary's name).
pub const APP: &str = "podinfo";
/// The app's port.
pub const PORT: u16 = 9898;

/// How the demo runs.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// The mesh whose routing objects are written.
    pub provider: MeshProvider,
    /// Time between analysis steps.
    pub interval: Duration,
    /// Give up on a rollout after this long.
    pub rollout_timeout: Duration,
    /// Use the simulated metrics source even when Prometheus is installed.
    pub simulate_metrics: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            provider: MeshProvider::Istio,
            interval: Duration::from_secs(2),
            rollout_timeout: Duration::from_secs(180),
            simulate_metrics: false,
        }
    }
}

/// Everything the canary operator needs, running in this process.
pub struct Environment {
    /// The API server (in-process, or real when `AUTOPILOT_TEST_APISERVER=real`) and the namespace the
    /// app, its Canary and routing objects live in.
    pub cluster: TestCluster,
    /// A client of it, whose default namespace is the app's.
    pub client: Client,
    /// The router of the mesh in use.
    pub router: Arc<dyn TrafficRouter>,
    /// The Prometheus scraping the synthetic data plane; `None` when none is installed and the
    /// metrics come from [`crate::simulated`].
    pub prometheus: Option<PrometheusServer>,
    /// Where the metrics are queried.
    pub metrics_url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    operator: Option<JoinHandle<Result<(), autopilot::runtime::RuntimeError>>>,
    background: Vec<JoinHandle<()>>,
}

impl Environment {
    /// Starts the API server, the app, the traffic, Prometheus and the operator for `provider`.
    ///
    /// # Errors
    /// When a part cannot start (Prometheus not installed, among others).
    pub async fn start(provider: MeshProvider) -> anyhow::Result<Self> {
        Self::start_with(provider, !PrometheusServer::is_installed()).await
    }

    /// Like [`start`](Self::start), choosing the metrics source: the simulated one, or a real
    /// Prometheus.
    ///
    /// # Errors
    /// When a part cannot start.
    pub async fn start_with(
        provider: MeshProvider,
        simulate_metrics: bool,
    ) -> anyhow::Result<Self> {
        let cluster = TestCluster::start().await?;
        let operator_client = cluster.client();
        Self::start_in(cluster, operator_client, provider, simulate_metrics).await
    }

    /// Like [`start_with`](Self::start_with), on `cluster`, with the operator talking through
    /// `operator_client` (e.g. as its ServiceAccount, to prove its RBAC) while the rest of the
    /// environment keeps the cluster's own client.
    ///
    /// # Errors
    /// When a part cannot start.
    pub async fn start_in(
        cluster: TestCluster,
        operator_client: Client,
        provider: MeshProvider,
        simulate_metrics: bool,
    ) -> anyhow::Result<Self> {
        let client = cluster.client();
        let namespace = cluster.namespace().to_owned();
        let mut background = vec![autopilot_testkit::spawn_deployment_status(client.clone())];
        cluster.install::<Canary>().await?;
        for crd in autopilot_mesh::crds::all() {
            cluster.install_crd(&crd).await?;
        }
        create_app(&client).await?;

        // Gateway API routes attach to a Gateway; the demo names one (no Gateway controller runs here).
        let options = RouterOptions::default().with_gateway(GatewayRef::new(&namespace, "public"));
        let router = router_for(provider, operator_client.clone(), options)?;
        let traffic = TrafficSimulator::new(&namespace, 200).with_port(PORT);
        let (exporter, exporter_task) = traffic.serve(([127, 0, 0, 1], 0).into()).await?;
        background.push(exporter_task);
        background.push(tokio::spawn(drive_traffic(
            client.clone(),
            router.clone(),
            traffic.clone(),
        )));
        // A real Prometheus when one is installed; otherwise the labelled simulated source.
        let (prometheus, metrics_url) = if !simulate_metrics {
            let prometheus = PrometheusServer::builder()
                .scrape(ScrapeTarget::new("mesh", exporter.to_string()))
                .scrape_interval(Duration::from_millis(500))
                .start()
                .await?;
            let url = prometheus.url();
            (Some(prometheus), url)
        } else {
            let (address, tasks) =
                crate::simulated::serve(traffic.clone(), ([127, 0, 0, 1], 0).into()).await?;
            background.extend(tasks);
            (None, format!("http://{address}"))
        };
        let metrics = PrometheusClient::new(&metrics_url, ClientOptions::default())?;
        if prometheus.is_some() {
            first_scrape(&metrics).await?;
        }
        let deps = Deps {
            router: router.clone(),
            prometheus: metrics,
            queries: provider.metrics_provider(),
            http: http_client()?,
        };
        let config = OperatorConfig {
            mesh_provider: provider.as_str().parse().map_err(anyhow::Error::msg)?,
            // Tests of one binary share a real API server: each operator keeps to its namespace.
            watch_namespace: Some(namespace),
            ..OperatorConfig::default()
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let operator = operator(Operator::new(operator_client, config, handlers()), deps);
        let operator = tokio::spawn(operator.run_until(async move {
            let _ = stopped.await;
        }));
        Ok(Self {
            cluster,
            client,
            router,
            prometheus,
            metrics_url,
            stop: Some(stop),
            operator: Some(operator),
            background,
        })
    }

    /// The namespace of the app.
    #[must_use]
    pub fn namespace(&self) -> &str {
        self.cluster.namespace()
    }

    /// The Canaries of the app's namespace.
    #[must_use]
    pub fn canaries(&self) -> Api<Canary> {
        Api::default_namespaced(self.client.clone())
    }

    /// The Deployments of the app's namespace.
    #[must_use]
    pub fn deployments(&self) -> Api<Deployment> {
        Api::default_namespaced(self.client.clone())
    }

    /// The current traffic split of the app.
    ///
    /// # Errors
    /// When the routing objects cannot be read.
    pub async fn weights(&self) -> anyhow::Result<Weights> {
        Ok(self
            .router
            .weights(&Route::new(self.namespace(), APP, PORT))
            .await?)
    }

    /// Publishes a new revision of the app: its version (image tag) and how it behaves.
    ///
    /// # Errors
    /// When the API server refuses the change.
    pub async fn release(&self, version: &str, health: Health) -> anyhow::Result<()> {
        let mut patch = app_deployment(version, health);
        // Only the template changes; the operator owns the replica count.
        if let Some(spec) = patch["spec"].as_object_mut() {
            spec.remove("replicas");
        }
        self.deployments()
            .patch(APP, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    /// The image the primary runs.
    ///
    /// # Errors
    /// When the primary cannot be read.
    pub async fn primary_image(&self) -> anyhow::Result<String> {
        let primary = self.deployments().get(&format!("{APP}-primary")).await?;
        Ok(primary
            .spec
            .template
            .spec
            .and_then(|pod| pod.containers.first().and_then(|c| c.image.clone()))
            .unwrap_or_default())
    }

    /// Polls the Canary until it is in `wanted`, calling `seen` with every new state.
    ///
    /// # Errors
    /// When it is not there within `timeout`.
    pub async fn wait_for(
        &self,
        wanted: CanaryPhase,
        timeout: Duration,
        mut seen: impl FnMut(&Canary),
    ) -> anyhow::Result<Canary> {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        loop {
            if let Some(canary) = self.canaries().get_opt(APP).await? {
                let status = canary.status.clone();
                if last.as_ref() != Some(&status) {
                    seen(&canary);
                    last = Some(status.clone());
                }
                if status
                    .and_then(|s| s.phase)
                    .is_some_and(|p| p.as_str() == wanted.to_string())
                {
                    return Ok(canary);
                }
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the canary did not reach {wanted} within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the operator (letting in-flight handlers finish) and everything else.
    ///
    /// # Errors
    /// When the operator ended with an error.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(operator) = self.operator.take() {
            operator.await??;
        }
        Ok(())
    }
}

impl Drop for Environment {
    fn drop(&mut self) {
        for task in &self.background {
            task.abort();
        }
        if let Some(operator) = &self.operator {
            operator.abort();
        }
    }
}

/// Waits until Prometheus has scraped the data plane once (its first scrape comes a few seconds
/// after start), so the first analysis does not read an empty database.
async fn first_scrape(prometheus: &PrometheusClient) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while prometheus
        .query_value("up{job=\"mesh\"}", None)
        .await
        .ok()
        .flatten()
        != Some(1.0)
    {
        anyhow::ensure!(
            Instant::now() < deadline,
            "Prometheus did not scrape the data plane within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// A Canary for the demo app: steps of 20 % up to 60 %, rollback after 2 failed checks, the mesh's
/// success-rate (≥ 99 %) and p99 latency (≤ 500 ms) checks.
///
/// # Errors
/// Never in practice: the manifest is fixed.
pub fn demo_canary(interval: Duration) -> anyhow::Result<Canary> {
    let window = format!("{}s", (interval.as_secs() * 3).max(5));
    Ok(serde_json::from_value(json!({
        "apiVersion": "delivery.autopilot.rs/v1",
        "kind": "Canary",
        "metadata": {"name": APP},
        "spec": {
            "targetRef": {"name": APP},
            "service": {"port": PORT},
            "analysis": {
                "interval": format!("{}ms", interval.as_millis()),
                "threshold": 2,
                "stepWeight": 20,
                "maxWeight": 60,
                "metrics": [
                    {"name": "request-success-rate", "interval": window, "thresholdRange": {"min": 99.0}},
                    {"name": "request-duration", "interval": window, "thresholdRange": {"max": 500.0}}
                ]
            }
        }
    }))?)
}

/// Runs the demo, writing its progress to `out`.
///
/// # Errors
/// When a part cannot start, or a rollout does not end as expected in time.
pub async fn run(options: DemoOptions, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let mut log = Log {
        out,
        started: Instant::now(),
    };
    let server = match Backend::from_env()? {
        Backend::InProcess => "the in-process Kubernetes API server",
        Backend::Real => "a real kube-apiserver and etcd",
    };
    log.say(&format!(
        "no cluster configured: starting {server} and a synthetic {} data plane",
        options.provider.as_str()
    ));
    let simulate = options.simulate_metrics || !PrometheusServer::is_installed();
    let env = Environment::start_with(options.provider, simulate).await?;
    match &env.prometheus {
        Some(prometheus) => log.say(&format!(
            "Prometheus at {}; creating Canary {}/{APP}",
            prometheus.url(),
            env.namespace()
        )),
        None => log.say(&format!(
            "no `prometheus` binary found: metrics are SIMULATED from the synthetic data plane at {} \
             (install Debian's `prometheus` for the real thing); creating Canary {}/{APP}",
            env.metrics_url,
            env.namespace()
        )),
    }
    env.canaries()
        .create(&PostParams::default(), &demo_canary(options.interval)?)
        .await?;
    env.wait_for(CanaryPhase::Waiting, options.rollout_timeout, |c| {
        log.progress(c)
    })
    .await?;

    log.say("== rollout 1: podinfo 6.0.1, healthy ==");
    env.release(
        "6.0.1",
        Health {
            error_rate: 0.0,
            latency_ms: 30.0,
        },
    )
    .await?;
    env.wait_for(CanaryPhase::Succeeded, options.rollout_timeout, |c| {
        log.progress(c)
    })
    .await?;

    log.say("== rollout 2: podinfo 6.0.2, answers 30% of requests with HTTP 500 ==");
    env.release(
        "6.0.2",
        Health {
            error_rate: 0.3,
            latency_ms: 30.0,
        },
    )
    .await?;
    env.wait_for(CanaryPhase::Failed, options.rollout_timeout, |c| {
        log.progress(c)
    })
    .await?;

    let weights = env.weights().await?;
    let image = env.primary_image().await?;
    log.say(&format!(
        "done: the primary runs {image}; traffic {}% primary / {}% canary",
        weights.primary(),
        weights.canary()
    ));
    env.stop().await
}

/// Timestamped lines on the demo's output; a failed write (a closed pipe) only loses the line.
struct Log<'a> {
    out: &'a mut (dyn Write + Send),
    started: Instant,
}

impl Log<'_> {
    fn say(&mut self, line: &str) {
        let _ = writeln!(
            self.out,
            "[{:>5.1}s] {line}",
            self.started.elapsed().as_secs_f64()
        );
        let _ = self.out.flush();
    }

    fn progress(&mut self, canary: &Canary) {
        self.say(&progress_line(canary));
    }
}

/// One line a person can follow: phase, weight, measurements, failed checks, message.
#[must_use]
pub fn progress_line(canary: &Canary) -> String {
    let status = canary.status.clone().unwrap_or_default();
    let phase = status.phase.as_ref().map_or("-", |phase| phase.as_str());
    let fields = &status.fields;
    let measure = |name: &str, unit: &str| {
        fields.measurements.get(name).map_or_else(
            || "    -  ".to_owned(),
            |value| format!("{value:6.1}{unit}"),
        )
    };
    format!(
        "{phase:<12} weight {:>3}%  success {}  p99 {}  failed checks {}/{}  {}",
        fields.canary_weight,
        measure("request-success-rate", "%"),
        measure("request-duration", "ms"),
        fields.failed_checks,
        canary.spec.analysis.threshold,
        status.message.unwrap_or_default(),
    )
}

/// Creates the app's Deployment in the client's namespace.
async fn create_app(client: &Client) -> anyhow::Result<()> {
    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    deployments
        .create(
            &PostParams::default(),
            &serde_json::from_value(app_deployment("6.0.0", Health::default()))?,
        )
        .await?;
    Ok(())
}

fn app_deployment(version: &str, health: Health) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": APP, "labels": {"app": APP}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": APP}},
            "template": {
                "metadata": {"labels": {"app": APP}},
                "spec": {"containers": [{
                    "name": APP,
                    "image": format!("ghcr.io/stefanprodan/podinfo:{version}"),
                    "ports": [{"containerPort": PORT}],
                    "env": [
                        {"name": "DEMO_ERROR_RATE", "value": health.error_rate.to_string()},
                        {"name": "DEMO_LATENCY_MS", "value": health.latency_ms.to_string()}
                    ]
                }]}
            }
        }
    })
}

/// The health a Deployment's pods show, read from the demo's environment variables.
fn health_of(deployment: &Deployment) -> Health {
    let env = deployment
        .spec
        .template
        .spec
        .as_ref()
        .and_then(|pod| pod.containers.first())
        .and_then(|container| container.env.clone())
        .unwrap_or_default();
    let value = |name: &str| {
        env.iter()
            .find(|var| var.name == name)
            .and_then(|var| var.value.as_deref())
            .and_then(|value| value.parse::<f64>().ok())
    };
    let defaults = Health::default();
    Health {
        error_rate: value("DEMO_ERROR_RATE").unwrap_or(defaults.error_rate),
        latency_ms: value("DEMO_LATENCY_MS").unwrap_or(defaults.latency_ms),
    }
}

/// Sends requests every 100 ms, split as the mesh's routing objects say, each workload answering
/// as its Deployment's pod template says.
async fn drive_traffic(client: Client, router: Arc<dyn TrafficRouter>, traffic: TrafficSimulator) {
    let route = Route::new(client.default_namespace(), APP, PORT);
    let deployments: Api<Deployment> = Api::default_namespaced(client);
    let health = |name: String| {
        let deployments = deployments.clone();
        async move {
            deployments
                .get_opt(&name)
                .await
                .ok()
                .flatten()
                .map_or_else(Health::default, |d| health_of(&d))
        }
    };
    let mut ticks = tokio::time::interval(Duration::from_millis(100));
    loop {
        ticks.tick().await;
        let (primary_share, canary_share) = router
            .weights(&route)
            .await
            .map_or((100, 0), |weights| (weights.primary(), weights.canary()));
        let primary = format!("{APP}-primary");
        traffic.tick(&[
            Workload::new(
                primary.clone(),
                percent(primary_share),
                health(primary.clone()).await,
            )
            .behind_service(primary),
            Workload::new(APP, percent(canary_share), health(APP.to_owned()).await)
                .behind_service(format!("{APP}-canary")),
        ]);
    }
}

fn percent(share: u32) -> u8 {
    u8::try_from(share.min(100)).unwrap_or(100)
}
