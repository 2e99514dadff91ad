//! Event → mesh write latency: how long from a change an operator watches to the routing object
//! carrying the new weight, on the in-process API server.
//!
//! An autopilot operator watches a ConfigMap (its input); its handler reads the wanted canary weight
//! from it and sets it on an Istio VirtualService through `autopilot-mesh`. The bench writes the
//! ConfigMap and measures until a watch on the VirtualService sees the weight. The baseline in the
//! same run is the mesh write alone (set the weights directly, wait for the watch), so the
//! difference is what the framework adds: the input watch, the reconcile, the handler and its
//! status write. Settings: `AUTOPILOT_BENCH_EVENTS` (default 300).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly

use std::sync::Arc;
use std::time::{Duration, Instant};

use autopilot::{Autopilot, Context, Operator, Transition, config::OperatorConfig};
use autopilot_mesh::resources::istio::VirtualService;
use autopilot_mesh::{MeshProvider, Route, RouterOptions, TrafficRouter, router_for};
use autopilot_testkit::ApiServer;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{CustomResource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::mpsc;

#[derive(CustomResource, Autopilot, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "bench.autopilot.rs",
    version = "v1",
    kind = "Shift",
    namespaced,
    status = "ShiftStatus"
)]
#[autopilot(phases(Following(initial)))]
pub struct ShiftSpec {
    /// The ConfigMap whose `weight` the route follows.
    pub signal: String,
}

const NS: &str = "default";
const APP: &str = "app";

async fn following(
    shift: Arc<Shift>,
    ctx: Context<Shift>,
) -> anyhow::Result<Transition<ShiftPhase>> {
    let router = ctx.require::<Arc<dyn TrafficRouter>>()?;
    let signal: ConfigMap = ctx.api().get(&shift.spec.signal).await?;
    let weight: u32 = signal
        .data
        .as_ref()
        .and_then(|data| data.get("weight"))
        .and_then(|w| w.parse().ok())
        .unwrap_or(0);
    let route = Route::owned_by(&*shift, APP, 80)?;
    router.set_weights(&route, 100 - weight, weight).await?;
    Ok(Transition::wait_for_change())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn report(name: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p50 = percentile(&samples, 0.5);
    println!(
        "{name:<34} n={:<5} p50 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms",
        samples.len(),
        ms(p50),
        ms(percentile(&samples, 0.99)),
        ms(*samples.last().unwrap())
    );
    percentile(&samples, 0.99)
}

/// Sends the canary weight of the VirtualService each time a watch sees it change.
fn watch_weights(api: Api<VirtualService>) -> mpsc::UnboundedReceiver<u32> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut changes = watcher(api, watcher::Config::default())
            .applied_objects()
            .boxed();
        while let Some(Ok(vs)) = changes.next().await {
            let value = serde_json::to_value(&vs).unwrap();
            let routes = value["spec"]["http"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let canary = routes
                .iter()
                .flat_map(|r| r["route"].as_array().cloned().unwrap_or_default())
                .find(|d| {
                    d["destination"]["host"]
                        .as_str()
                        .is_some_and(|h| h.ends_with("-canary"))
                })
                .and_then(|d| d["weight"].as_u64())
                .unwrap_or(0);
            if tx.send(u32::try_from(canary).unwrap_or(0)).is_err() {
                return;
            }
        }
    });
    rx
}

async fn until_weight(seen: &mut mpsc::UnboundedReceiver<u32>, weight: u32) {
    let wait = async {
        while let Some(w) = seen.recv().await {
            if w == weight {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .expect("the route follows within 30 s");
}

#[tokio::main]
async fn main() {
    let events: usize = std::env::var("AUTOPILOT_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let server = ApiServer::start().await.unwrap();
    let client = server.client();
    server.install::<Shift>().await.unwrap();
    for crd in autopilot_mesh::crds::all() {
        server.install_crd(&crd).await.unwrap();
    }
    let router = router_for(
        MeshProvider::Istio,
        client.clone(),
        RouterOptions::default(),
    )
    .unwrap();
    let signals: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let signal: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "signal"}, "data": {"weight": "0"}}))
            .unwrap();
    signals
        .create(&PostParams::default(), &signal)
        .await
        .unwrap();
    let shifts: Api<Shift> = Api::namespaced(client.clone(), NS);
    let shift = shifts
        .create(
            &PostParams::default(),
            &Shift::new(
                "shift",
                ShiftSpec {
                    signal: "signal".to_owned(),
                },
            ),
        )
        .await
        .unwrap();

    let operator = Operator::<Shift>::new(
        client.clone(),
        OperatorConfig::default(),
        ShiftHandlers { following },
    )
    .with_extension(router.clone())
    .watches_input::<ConfigMap, _>(|shift| Some(shift.spec.signal.clone()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(operator.run_until(async move {
        let _ = stopped.await;
    }));
    let mut seen = watch_weights(Api::namespaced(client.clone(), NS));
    until_weight(&mut seen, 0).await;

    // Baseline: the mesh write alone.
    let route = Route::owned_by(&shift, APP, 80).unwrap();
    let mut direct = Vec::with_capacity(events);
    for i in 0..events {
        let weight = u32::try_from(i % 9 + 1).unwrap() * 10;
        let started = Instant::now();
        router
            .set_weights(&route, 100 - weight, weight)
            .await
            .unwrap();
        until_weight(&mut seen, weight).await;
        direct.push(started.elapsed());
    }
    router.set_weights(&route, 100, 0).await.unwrap();
    until_weight(&mut seen, 0).await;

    // Through the operator: input change → reconcile → handler → mesh write.
    let mut through = Vec::with_capacity(events);
    for i in 0..events {
        let weight = u32::try_from(i % 9 + 1).unwrap() * 10;
        let started = Instant::now();
        let patch = json!({"data": {"weight": weight.to_string()}});
        signals
            .patch("signal", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        until_weight(&mut seen, weight).await;
        through.push(started.elapsed());
    }

    println!("event → mesh write latency on the in-process API server ({events} events each)");
    let floor = report("mesh write alone (baseline)", direct);
    let p99 = report("input change → operator → route", through);
    println!(
        "framework adds {:.2} ms at p99; target p99 < 50 ms: {}",
        (p99.saturating_sub(floor)).as_secs_f64() * 1000.0,
        if p99 < Duration::from_millis(50) {
            "met"
        } else {
            "NOT met"
        }
    );
    let _ = stop.send(());
    running.await.unwrap().unwrap();
    drop(shift.name_any());
}
