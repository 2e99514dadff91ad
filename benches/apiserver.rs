//! The in-process API server under load, through the real kube client over loopback HTTP: create and update
//! throughput while 10 watchers follow every change, start-up time, and memory per stored object.
//!
//! Settings (environment): `APISERVER_BENCH_WRITES` per phase (default 20000), `APISERVER_BENCH_CONCURRENCY`
//! in-flight requests (default 32), `APISERVER_BENCH_WATCHERS` (default 10), `APISERVER_BENCH_OBJECTS` for the
//! memory measurement (default 50000).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use autopilot_benches::cpu_time;
use autopilot_testkit::{ApiServer, ServerOptions};
use futures::{AsyncBufReadExt, StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

// The allocator a deployed server would pick; glibc's malloc spends a quarter of the CPU here.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": { "name": name, "labels": { "app": "bench" } },
        "data": { "key": "value", "round": "0" },
    }))
    .unwrap()
}

/// Resident memory of this process in bytes.
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Watchers counting the events they receive.
struct Watchers {
    seen: Vec<Arc<AtomicUsize>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// How the watchers read their streams.
#[derive(Clone, Copy)]
enum Reading {
    /// Count event lines as they arrive (the server's cost alone).
    Raw,
    /// Decode every event into a `ConfigMap` with the kube client (adds the client's decoding to the same CPUs).
    Typed,
}

impl Watchers {
    async fn start(
        api: &Api<ConfigMap>,
        client: &kube::Client,
        count: usize,
        from: &str,
        reading: Reading,
    ) -> Self {
        let mut seen = Vec::new();
        let mut tasks = Vec::new();
        for _ in 0..count {
            let counter = Arc::new(AtomicUsize::new(0));
            let counted = counter.clone();
            let task = match reading {
                Reading::Typed => {
                    let mut events = api
                        .watch(&WatchParams::default().timeout(290), from)
                        .await
                        .unwrap()
                        .boxed();
                    tokio::spawn(async move {
                        while let Ok(Some(event)) = events.try_next().await {
                            if matches!(event, WatchEvent::Added(_) | WatchEvent::Modified(_)) {
                                counted.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    })
                }
                Reading::Raw => {
                    let path = format!(
                        "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=290&resourceVersion={from}"
                    );
                    let request = http::Request::get(path).body(Vec::new()).unwrap();
                    let mut lines = client.request_stream(request).await.unwrap().lines();
                    tokio::spawn(async move {
                        while let Some(Ok(line)) = lines.next().await {
                            if line.starts_with("{\"type\":\"ADDED\"")
                                || line.starts_with("{\"type\":\"MODIFIED\"")
                            {
                                counted.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    })
                }
            };
            tasks.push(task);
            seen.push(counter);
        }
        Self { seen, tasks }
    }

    async fn wait_for(&self, events: usize) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.seen.iter().any(|c| c.load(Ordering::Relaxed) < events) {
            assert!(Instant::now() < deadline, "watchers fell behind");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

impl Drop for Watchers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

struct Row {
    what: String,
    value: String,
    target: &'static str,
}

async fn write_all(api: &Api<ConfigMap>, writes: usize, concurrency: usize, round: usize) {
    stream::iter(0..writes)
        .map(|i| {
            let api = api.clone();
            async move {
                if round == 0 {
                    api.create(&PostParams::default(), &config_map(&format!("cm-{i}")))
                        .await
                        .unwrap();
                } else {
                    let patch = json!({ "data": { "round": round.to_string() } });
                    api.patch(
                        &format!("cm-{i}"),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await
                    .unwrap();
                }
            }
        })
        .buffer_unordered(concurrency)
        .for_each(|()| async {})
        .await;
}

async fn throughput(rows: &mut Vec<Row>, reading: Reading) {
    let writes = setting("APISERVER_BENCH_WRITES", 20_000);
    let concurrency = setting("APISERVER_BENCH_CONCURRENCY", 32);
    let watchers = setting("APISERVER_BENCH_WATCHERS", 10);
    let server = ApiServer::start_with(ServerOptions::default().history_limit(writes * 2 + 100))
        .await
        .unwrap();
    let client = server.client();
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let rv = api
        .list_metadata(&Default::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let watching = Watchers::start(&api, &client, watchers, &rv, reading).await;
    let how = match reading {
        Reading::Raw => "reading raw streams",
        Reading::Typed => "decoding with kube",
    };
    for (round, verb) in ["create", "update (merge patch)"].into_iter().enumerate() {
        let started = Instant::now();
        let cpu = cpu_time();
        write_all(&api, writes, concurrency, round).await;
        let written = started.elapsed();
        watching.wait_for(writes * (round + 1)).await;
        let delivered = started.elapsed();
        let cpu_per_write = (cpu_time() - cpu).as_secs_f64() * 1e6 / writes as f64;
        rows.push(Row {
            what: format!("{verb}, {watchers} watchers {how}"),
            value: format!(
                "{:.0} writes/s (watchers caught up at {:.0}/s; {cpu_per_write:.0} µs CPU/write)",
                rate(writes, written),
                rate(writes, delivered)
            ),
            target: ">= 20000 writes/s",
        });
    }
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

async fn startup(rows: &mut Vec<Row>) {
    let mut times = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let server = ApiServer::start().await.unwrap();
        let api: Api<ConfigMap> = Api::default_namespaced(server.client());
        api.get_opt("none").await.unwrap();
        times.push(started.elapsed());
    }
    times.sort();
    rows.push(Row {
        what: "start-up to first answered request (median of 20)".into(),
        value: format!(
            "{:.1} ms (max {:.1} ms)",
            ms(times[times.len() / 2]),
            ms(times[times.len() - 1])
        ),
        target: "< 50 ms",
    });
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

async fn memory(rows: &mut Vec<Row>) {
    let objects = setting("APISERVER_BENCH_OBJECTS", 50_000);
    let server = ApiServer::start_with(ServerOptions::default().history_limit(1000))
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let before = rss();
    stream::iter(0..objects)
        .map(|i| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &config_map(&format!("cm-{i}")))
                    .await
                    .unwrap()
            }
        })
        .buffer_unordered(32)
        .for_each(|_| async {})
        .await;
    let after = rss();
    let stored = server.object_count();
    let sample = serde_json::to_vec(&api.get("cm-0").await.unwrap())
        .unwrap()
        .len();
    rows.push(Row {
        what: format!("memory per stored ConfigMap ({stored} objects, {sample} B as JSON)"),
        value: format!("{} B", after.saturating_sub(before) / objects),
        target: "-",
    });
}

#[tokio::main]
async fn main() {
    let mut rows = Vec::new();
    // Memory first: later phases leave freed memory behind that would hide the growth.
    memory(&mut rows).await;
    startup(&mut rows).await;
    throughput(&mut rows, Reading::Raw).await;
    throughput(&mut rows, Reading::Typed).await;
    let width = rows.iter().map(|r| r.what.len()).max().unwrap_or(0);
    println!(
        "{:width$} | {:70} | target",
        "in-process API server", "measured"
    );
    println!("{}", "-".repeat(width + 87));
    for row in rows {
        println!("{:width$} | {:70} | {}", row.what, row.value, row.target);
    }
}
