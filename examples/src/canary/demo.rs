//! The embedded demo: a whole progressive delivery on the in-process API server, with a synthetic
//! mesh data plane scraped by a real Prometheus.
//!
//! It deploys `podinfo` in namespace `demo`, puts a `Canary` on it, then rolls out a healthy revision
//! (promoted: `Succeeded`) and a faulty one (rolled back: `Failed`), printing every step.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use autopilot::config::OperatorConfig;
use autopilot::Operator;
use autopilot_mesh::{MeshProvider, Route, RouterOptions, TrafficRouter, router_for};
use autopilot_metrics::{ClientOptions, PrometheusClient};
use autopilot_testkit::ApiServer;
use autopilot_testkit::prometheus::{PrometheusServer, ScrapeTarget};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;

use super::phases::Deps;
use super::spec::{Canary, CanaryPhase};
use super::{metrics_provider, operator};
use crate::traffic::{Health, TrafficSimulator, Workload};

const NAMESPACE: &str = "demo";
const APP: &str = "podinfo";
const PORT: u16 = 9898;

/// How the demo runs.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// The mesh whose routing objects are written.
    pub provider: MeshProvider,
    /// Time between analysis steps.
    pub interval: Duration,
    /// Give up on a rollout after this long.
    pub rollout_timeout: Duration,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            provider: MeshProvider::Istio,
            interval: Duration::from_secs(2),
            rollout_timeout: Duration::from_secs(180),
        }
    }
}

/// Runs the demo, writing its progress to `out`.
///
/// # Errors
/// When a part cannot start, or a rollout does not end as expected in time.
pub async fn run(options: DemoOptions, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let started = Instant::now();
    writeln!(out, "starting the in-process Kubernetes API server (no cluster configured)")?;
    let server = ApiServer::start().await?;
    let client = server.client();
    let _deployments = autopilot_testkit::spawn_deployment_status(client.clone());
    server.install::<Canary>().await?;
    for crd in autopilot_mesh::crds::all() {
        server.install_crd(&crd).await?;
    }
    create_app(&client).await?;

    let router = router_for(options.provider, client.clone(), RouterOptions::default())?;
    let traffic = TrafficSimulator::new(NAMESPACE, 200).with_port(PORT);
    let (exporter, _exporter_task) = traffic.serve(([127, 0, 0, 1], 0).into()).await?;
    let _traffic_task = tokio::spawn(drive_traffic(client.clone(), router.clone(), traffic));

    if !PrometheusServer::is_installed() {
        anyhow::bail!(
            "the demo reads its metrics from a real Prometheus: install Debian's `prometheus` package (scripts/test does)"
        );
    }
    let prometheus = PrometheusServer::builder()
        .scrape(ScrapeTarget::new("mesh", exporter.to_string()))
        .scrape_interval(Duration::from_millis(500))
        .start()
        .await?;
    writeln!(out, "Prometheus {} scrapes the synthetic {} data plane at {exporter}", prometheus.url(), options.provider.as_str())?;

    let deps = Deps {
        router: router.clone(),
        prometheus: PrometheusClient::new(&prometheus.url(), ClientOptions::default())?,
        queries: metrics_provider(options.provider),
        http: super::http_client()?,
    };
    let config = OperatorConfig {
        mesh_provider: options.provider.as_str().parse()?,
        ..OperatorConfig::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let operator = operator(Operator::new(client.clone(), config, super::phases::handlers()), deps);
    let operator_task = tokio::spawn(operator.run_until(async move {
        let _ = stopped.await;
    }));

    let canaries: Api<Canary> = Api::namespaced(client.clone(), NAMESPACE);
    canaries
        .create(&PostParams::default(), &demo_canary(options.interval)?)
        .await?;
    let mut progress = Progress::new(started);
    progress
        .until(&canaries, out, CanaryPhase::Waiting, options.rollout_timeout)
        .await?;

    writeln!(out, "\n== rollout 1: podinfo 6.0.1, healthy ==")?;
    release(&client, "6.0.1", Health { error_rate: 0.0, latency_ms: 30.0 }).await?;
    progress
        .until(&canaries, out, CanaryPhase::Succeeded, options.rollout_timeout)
        .await?;

    writeln!(out, "\n== rollout 2: podinfo 6.0.2, answers 30% of requests with 500 ==")?;
    release(&client, "6.0.2", Health { error_rate: 0.3, latency_ms: 30.0 }).await?;
    progress
        .until(&canaries, out, CanaryPhase::Failed, options.rollout_timeout)
        .await?;

    let primary: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let image = primary
        .get(&format!("{APP}-primary"))
        .await?
        .spec
        .template
        .spec
        .and_then(|pod| pod.containers.first().and_then(|c| c.image.clone()))
        .unwrap_or_default();
    let weights = router.weights(&Route::new(NAMESPACE, APP, PORT)).await?;
    writeln!(
        out,
        "\ndone in {:.1}s: the primary runs {image}; traffic {}% primary / {}% canary",
        started.elapsed().as_secs_f64(),
        weights.primary(),
        weights.canary()
    )?;
    let _ = stop.send(());
    operator_task.await??;
    Ok(())
}

async fn create_app(client: &Client) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": NAMESPACE}}))?)
        .await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    deployments
        .create(&PostParams::default(), &serde_json::from_value(app_deployment("6.0.0", Health::default()))?)
        .await?;
    Ok(())
}

fn app_deployment(version: &str, health: Health) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": APP, "namespace": NAMESPACE, "labels": {"app": APP}},
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

/// A new revision of the app: its image and how it behaves.
async fn release(client: &Client, version: &str, health: Health) -> anyhow::Result<()> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let mut patch = app_deployment(version, health);
    // Only the template changes; the operator owns the replica count.
    if let Some(spec) = patch["spec"].as_object_mut() {
        spec.remove("replicas");
    }
    deployments
        .patch(APP, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

fn demo_canary(interval: Duration) -> anyhow::Result<Canary> {
    let window = format!("{}s", (interval.as_secs() * 3).max(5));
    Ok(serde_json::from_value(json!({
        "apiVersion": "delivery.autopilot.rs/v1",
        "kind": "Canary",
        "metadata": {"name": APP, "namespace": NAMESPACE},
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

/// Sends requests every 100 ms, split as the mesh's routing objects say.
async fn drive_traffic(client: Client, router: Arc<dyn TrafficRouter>, traffic: TrafficSimulator) {
    let deployments: Api<Deployment> = Api::namespaced(client, NAMESPACE);
    let route = Route::new(NAMESPACE, APP, PORT);
    let mut ticks = tokio::time::interval(Duration::from_millis(100));
    loop {
        ticks.tick().await;
        let (primary_share, canary_share) = match router.weights(&route).await {
            Ok(weights) => (weights.primary(), weights.canary()),
            Err(_) => (100, 0),
        };
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
        let primary_health = health(format!("{APP}-primary")).await;
        let canary_health = health(APP.to_owned()).await;
        traffic.tick(&[
            Workload::new(format!("{APP}-primary"), u8::try_from(primary_share).unwrap_or(100), primary_health)
                .behind_service(format!("{APP}-primary")),
            Workload::new(APP, u8::try_from(canary_share).unwrap_or(0), canary_health)
                .behind_service(format!("{APP}-canary")),
        ]);
    }
}

/// Prints a line whenever the Canary's status changes.
struct Progress {
    started: Instant,
    last: String,
}

impl Progress {
    fn new(started: Instant) -> Self {
        Self {
            started,
            last: String::new(),
        }
    }

    async fn until(
        &mut self,
        canaries: &Api<Canary>,
        out: &mut (dyn Write + Send),
        wanted: CanaryPhase,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let canary = canaries.get(APP).await?;
            let status = canary.status.clone().unwrap_or_default();
            let phase = status.phase.as_ref().map(ToString::to_string).unwrap_or_else(|| "-".to_owned());
            let fields = &status.fields;
            let measure = |name: &str, unit: &str| {
                fields
                    .measurements
                    .get(name)
                    .map_or_else(|| "   -  ".to_owned(), |value| format!("{value:6.1}{unit}"))
            };
            let line = format!(
                "{phase:<12} weight {:>3}%  success {}  p99 {}  failed checks {}/{}  {}",
                fields.canary_weight,
                measure("request-success-rate", "%"),
                measure("request-duration", "ms"),
                fields.failed_checks,
                canary.spec.analysis.threshold,
                status.message.clone().unwrap_or_default(),
            );
            if line != self.last {
                writeln!(out, "[{:>5.1}s] {line}", self.started.elapsed().as_secs_f64())?;
                out.flush()?;
                self.last = line;
            }
            if phase == wanted.to_string() {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the canary did not reach {wanted} within {timeout:?} (it is {phase})"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
