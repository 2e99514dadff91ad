//! The autopilot runtime against a hand-written kube-runtime controller doing the same work: N custom
//! resources through three phases (Queued → Running → Done) on the in-process API server. Both write the same
//! status (phase, observedGeneration, conditions, history, lastTransitionTime) and one Event per phase entered.
//!
//! Each run happens in a child process so peak memory is measured per variant. Settings (environment):
//! `AUTOPILOT_BENCH_N` objects (default 10000), `AUTOPILOT_BENCH_RUNS` per variant (default 3),
//! `AUTOPILOT_BENCH_CONCURRENCY` (default 16).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly

use std::{
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use autopilot::{
    Autopilot, Context, Operator, Transition,
    config::OperatorConfig,
    runtime::{ObjectKey, ObserveHooks},
};
use autopilot_benches::cpu_time;
use autopilot_testkit::ApiServer;
use futures::{StreamExt, stream};
use k8s_openapi::{
    api::events::v1::Event as K8sEvent,
    apimachinery::pkg::apis::meta::v1::{Condition, MicroTime, ObjectMeta, Time},
    jiff::Timestamp,
};
use kube::{
    Api, Client, CustomResource, CustomResourceExt, Resource, ResourceExt,
    api::{ListParams, Patch, PatchParams, PostParams},
    runtime::{
        Controller,
        controller::{Action, Config},
        watcher,
    },
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Notify;

// Both variants share the process allocator; glibc's malloc is a fifth of the CPU otherwise.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(CustomResource, Autopilot, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "bench.autopilot.rs",
    version = "v1",
    kind = "Task",
    namespaced,
    status = "TaskStatus"
)]
#[autopilot(phases(Queued(initial), Running, Done(final)))]
pub struct TaskSpec {
    pub size: u32,
}

const NS: &str = "default";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Resident and peak memory of this process, in KiB (Linux).
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Counts objects that reached Done; wakes the waiter at `n`.
struct Finish {
    done: AtomicUsize,
    n: usize,
    all: Notify,
}

impl Finish {
    fn one(&self) {
        if self.done.fetch_add(1, Ordering::SeqCst) + 1 == self.n {
            self.all.notify_one();
        }
    }
}

impl ObserveHooks for Finish {
    fn transitioned(&self, _: &ObjectKey<'_>, _: Option<&str>, to: &'static str) {
        if to == "Done" {
            self.one();
        }
    }
}

async fn framework(client: Client, finish: Arc<Finish>, concurrency: u16) {
    let handlers = TaskHandlers {
        queued: |_: Arc<Task>, _: Context<Task>| async {
            Ok::<_, std::io::Error>(Transition::next(TaskPhase::Running))
        },
        running: |_: Arc<Task>, _: Context<Task>| async {
            Ok::<_, std::io::Error>(Transition::next(TaskPhase::Done))
        },
    };
    let config = OperatorConfig {
        watch_namespace: Some(NS.into()),
        concurrency,
        ..OperatorConfig::default()
    };
    let operator = Operator::<Task>::new(client, config, handlers).observe(finish.clone());
    let done = async move { finish.all.notified().await };
    operator.run_until(done).await.unwrap();
}

/// What a careful hand-written controller does for the same three phases.
struct Manual {
    client: Client,
    finish: Arc<Finish>,
}

#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct ManualError(#[from] kube::Error);

fn condition(type_: &str, status: bool, reason: &str, generation: Option<i64>) -> Condition {
    Condition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: String::new(),
        observed_generation: generation,
        last_transition_time: Time(Timestamp::now()),
    }
}

async fn manual_reconcile(task: Arc<Task>, m: Arc<Manual>) -> Result<Action, ManualError> {
    let phase = task
        .status
        .as_ref()
        .and_then(|s| s.phase.as_ref())
        .map(|p| p.as_str().to_owned());
    let generation = task.metadata.generation;
    let (entered, next): (Vec<&str>, &str) = match phase.as_deref() {
        None => (vec!["Queued", "Running"], "Running"),
        Some("Running") => (vec!["Done"], "Done"),
        _ => return Ok(Action::await_change()),
    };
    let now = Time(Timestamp::now());
    let mut history = task
        .status
        .as_ref()
        .map(|s| serde_json::to_value(&s.history).unwrap())
        .unwrap_or(json!([]));
    for phase in &entered {
        history
            .as_array_mut()
            .unwrap()
            .push(json!({"phase": phase, "enteredAt": now, "message": null}));
    }
    let done = next == "Done";
    let status = json!({
        "phase": next,
        "observedGeneration": generation,
        "lastTransitionTime": now,
        "message": null,
        "history": history,
        "conditions": [
            condition("Ready", done, next, generation),
            condition("Progressing", !done, next, generation),
            condition("Degraded", false, "AsExpected", generation),
        ],
    });
    let api: Api<Task> = Api::namespaced(m.client.clone(), NS);
    let params = PatchParams {
        field_manager: Some("task-manual".into()),
        ..PatchParams::default()
    };
    api.patch_status(
        &task.name_any(),
        &params,
        &Patch::Merge(json!({ "status": status })),
    )
    .await?;
    if done {
        m.finish.one();
    }
    // One Event per phase entered, created directly (nothing repeats here, so no series bookkeeping).
    let events: Api<K8sEvent> = Api::namespaced(m.client.clone(), NS);
    let reference = task.object_ref(&());
    for phase in entered {
        let now = Timestamp::now();
        let event = K8sEvent {
            metadata: ObjectMeta {
                name: Some(format!("{}.{:x}", task.name_any(), now.as_nanosecond())),
                ..ObjectMeta::default()
            },
            type_: Some("Normal".into()),
            reason: Some(phase.into()),
            action: Some("Transition".into()),
            note: Some(format!("→ {phase}")),
            event_time: Some(MicroTime(now)),
            regarding: Some(reference.clone()),
            reporting_controller: Some("task-manual".into()),
            reporting_instance: Some("task-manual".into()),
            ..K8sEvent::default()
        };
        if let Err(e) = events.create(&PostParams::default(), &event).await {
            eprintln!("event: {e}");
        }
    }
    Ok(Action::await_change())
}

async fn manual(client: Client, finish: Arc<Finish>, concurrency: u16) {
    let api: Api<Task> = Api::namespaced(client.clone(), NS);
    let ctx = Arc::new(Manual {
        client,
        finish: Arc::clone(&finish),
    });
    Controller::new(api, watcher::Config::default().any_semantic())
        .with_config(Config::default().concurrency(concurrency))
        .graceful_shutdown_on(async move { finish.all.notified().await })
        .run(
            manual_reconcile,
            |_, _, _| Action::requeue(Duration::from_secs(1)),
            ctx,
        )
        .for_each(|_| async {})
        .await;
}

/// One measured run in this (child) process; prints `variant seconds rss_kib peak_kib`.
async fn child(variant: &str, n: usize, concurrency: u16) {
    let server = ApiServer::start().await.unwrap();
    let client = server.client();
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    crds.create(&PostParams::default(), &Task::crd())
        .await
        .unwrap();
    let api: Api<Task> = Api::namespaced(client.clone(), NS);
    while api.list(&ListParams::default().limit(1)).await.is_err() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stream::iter(0..n)
        .for_each_concurrent(64, |i| {
            let api = api.clone();
            async move {
                api.create(
                    &PostParams::default(),
                    &Task::new(&format!("task-{i}"), TaskSpec { size: 1 }),
                )
                .await
                .unwrap();
            }
        })
        .await;
    let (rss_before, _) = memory_kib();
    let finish = Arc::new(Finish {
        done: AtomicUsize::new(0),
        n,
        all: Notify::new(),
    });
    let cpu_before = cpu_time().as_secs_f64();
    let started = Instant::now();
    match variant {
        "framework" => framework(client, finish, concurrency).await,
        _ => manual(client, finish, concurrency).await,
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_time().as_secs_f64() - cpu_before;
    let (rss_after, peak) = memory_kib();
    println!("RESULT {variant} {elapsed:.4} {rss_before} {rss_after} {peak} {cpu:.3}");
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let n = env_or("AUTOPILOT_BENCH_N", 10_000);
    let runs = env_or("AUTOPILOT_BENCH_RUNS", 3);
    let concurrency = u16::try_from(env_or("AUTOPILOT_BENCH_CONCURRENCY", 16)).unwrap_or(16);
    if let Ok(variant) = std::env::var("AUTOPILOT_BENCH_CHILD") {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(child(&variant, n, concurrency));
        return;
    }
    let exe = std::env::current_exe().unwrap();
    // (variant, wall seconds, memory growth KiB, CPU seconds)
    let mut results: Vec<(String, f64, f64, f64)> = Vec::new();
    for run in 0..runs {
        // Alternate the order so neither variant always runs on a warmer machine.
        let order = if run % 2 == 0 {
            ["manual", "framework"]
        } else {
            ["framework", "manual"]
        };
        for variant in order {
            let out = Command::new(&exe)
                .env("AUTOPILOT_BENCH_CHILD", variant)
                .env("AUTOPILOT_BENCH_N", n.to_string())
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            let line = text
                .lines()
                .find(|l| l.starts_with("RESULT"))
                .unwrap_or_else(|| {
                    panic!(
                        "{variant} run failed: {}",
                        String::from_utf8_lossy(&out.stderr)
                    )
                });
            let f: Vec<&str> = line.split_whitespace().collect();
            let secs: f64 = f[2].parse().unwrap();
            let (before, peak): (f64, f64) = (f[3].parse().unwrap(), f[5].parse().unwrap());
            let cpu: f64 = f[6].parse().unwrap();
            eprintln!(
                "{variant}: {secs:.3} s wall, {cpu:.3} s CPU, {:.0} KiB",
                peak - before
            );
            results.push((variant.to_owned(), secs, peak - before, cpu));
        }
    }
    let pick = |variant: &str, field: fn(&(String, f64, f64, f64)) -> f64| {
        median(
            results
                .iter()
                .filter(|r| r.0 == variant)
                .map(field)
                .collect(),
        )
    };
    let (t_fw, t_hand) = (pick("framework", |r| r.1), pick("manual", |r| r.1));
    let (m_fw, m_hand) = (pick("framework", |r| r.2), pick("manual", |r| r.2));
    let (c_fw, c_hand) = (pick("framework", |r| r.3), pick("manual", |r| r.3));
    #[allow(clippy::cast_precision_loss)] // object counts are far below 2^52
    let per = |x: f64| x * 1024.0 / n as f64;
    println!("{n} objects through 3 phases, concurrency {concurrency}, median of {runs} runs each");
    println!(
        "| variant | time (s) | CPU (s) | time per object (µs) | memory growth (KiB) | memory per object (B) |"
    );
    println!("|---|---|---|---|---|---|");
    #[allow(clippy::cast_precision_loss)]
    for (name, t, c, m) in [
        ("hand-written kube-runtime", t_hand, c_hand, m_hand),
        ("autopilot", t_fw, c_fw, m_fw),
    ] {
        let micros = t * 1e6 / n as f64;
        println!(
            "| {name} | {t:.3} | {c:.3} | {micros:.1} | {m:.0} | {:.0} |",
            per(m)
        );
    }
    println!(
        "overhead: {:.3}× time, {:.3}× CPU, {:+.0} B memory per object",
        t_fw / t_hand,
        c_fw / c_hand,
        per(m_fw - m_hand)
    );
}
