//! A test operator (`Canary`) and helpers shared by the runtime's end-to-end tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // tests may unwrap; not every test uses every helper

use std::{
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use autopilot::{Autopilot, Operator, backoff::Backoff, config::OperatorConfig};
use autopilot_testkit::TestCluster;
use k8s_openapi::api::events::v1::Event;
use kube::{Api, Client, CustomResource, api::ListParams};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::{sync::oneshot, task::JoinHandle, time::Instant};

/// Generous bound for anything to happen on a loaded machine; only bounds hangs.
pub const PATIENCE: Duration = Duration::from_secs(60);

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryFields {
    #[serde(default)]
    pub canary_weight: u8,
}

#[derive(CustomResource, Autopilot, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "e2e.autopilot.rs",
    version = "v1",
    kind = "Canary",
    namespaced,
    status = "CanaryStatus"
)]
#[autopilot(
    phases(Initializing(initial), Waiting, Evaluating, Succeeded(final), Failed(failure), Terminating(finalizer)),
    fields = CanaryFields
)]
pub struct CanarySpec {
    pub target: String,
}

pub fn canary(name: &str, target: &str) -> Canary {
    Canary::new(
        name,
        CanarySpec {
            target: target.to_owned(),
        },
    )
}

/// Counts and timestamps of handler calls, per phase.
#[derive(Default)]
pub struct Calls {
    calls: Mutex<Vec<(CanaryPhase, String, Instant)>>,
}

impl Calls {
    pub fn record(&self, phase: CanaryPhase, name: &str) {
        self.calls
            .lock()
            .unwrap()
            .push((phase, name.to_owned(), Instant::now()));
    }

    pub fn count(&self, phase: CanaryPhase, name: &str) -> usize {
        self.times(phase, name).len()
    }

    pub fn times(&self, phase: CanaryPhase, name: &str) -> Vec<Instant> {
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .filter(|(p, n, _)| *p == phase && n == name)
            .map(|(_, _, t)| *t)
            .collect()
    }
}

/// A test cluster (the backend `AUTOPILOT_TEST_APISERVER` chooses) with the Canary CRD installed, and a
/// client whose default namespace is the test's own.
pub async fn server() -> (TestCluster, Client) {
    let cluster = TestCluster::start().await.expect("test cluster starts");
    cluster
        .install_crd(&autopilot::crd::<Canary>())
        .await
        .expect("CRD installs");
    let client = cluster.client();
    (cluster, client)
}

/// The operator's configuration for tests: the client's namespace only (the tests of a binary share a
/// real server), a short work interval, default everything else.
pub fn config(client: &Client) -> OperatorConfig {
    OperatorConfig {
        watch_namespace: Some(client.default_namespace().to_owned()),
        work_interval: Duration::from_millis(200),
        ..OperatorConfig::default()
    }
}

/// A fast backoff for tests (100 ms doubling up to 2 s), without jitter so gaps are predictable.
pub fn fast_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(100), Duration::from_secs(2)).with_jitter(0.0)
}

/// A running operator; stop it with [`Running::stop`] (graceful) or drop it (abort, like a crash).
pub struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Running {
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(PATIENCE, &mut self.task)
            .await
            .expect("operator stops")
            .expect("operator task ends cleanly");
    }

    /// Kills the operator mid-flight, as a crash would.
    pub fn crash(self) {
        self.task.abort();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn spawn<K: Autopilot>(operator: Operator<K>) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        operator
            .run_until(async move {
                let _ = stopped.await;
            })
            .await
            .expect("operator runs");
    });
    Running {
        stop: Some(stop),
        task,
    }
}

/// Polls `probe` until it returns `Some`, for at most [`PATIENCE`].
pub async fn wait_for<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until the Canary `name` satisfies `check`, returning it.
pub async fn wait_for_canary(
    client: &Client,
    name: &str,
    what: &str,
    check: impl Fn(&Canary) -> bool,
) -> Canary {
    let api: Api<Canary> = Api::default_namespaced(client.clone());
    wait_for(what, || {
        let api = api.clone();
        let check = &check;
        async move { api.get(name).await.ok().filter(|c| check(c)) }
    })
    .await
}

pub fn phase_of(canary: &Canary) -> Option<CanaryPhase> {
    canary
        .status
        .as_ref()
        .and_then(|s| s.recorded_phase().ok().flatten())
}

/// `(type, reason, note)` of the Events about the Canary `name`.
pub async fn events(client: &Client, name: &str) -> Vec<(String, String, String)> {
    let api: Api<Event> = Api::default_namespaced(client.clone());
    let mut list: Vec<Event> = api
        .list(&ListParams::default())
        .await
        .expect("events list")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .collect();
    list.sort_by(|a, b| a.event_time.cmp(&b.event_time));
    list.into_iter()
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.note.unwrap_or_default(),
            )
        })
        .collect()
}

/// Waits for an Event about the Canary `name` with this type and reason whose note contains `note_part`;
/// returns the note.
pub async fn wait_for_event(
    client: &Client,
    name: &str,
    (type_, reason, note_part): (&str, &str, &str),
) -> String {
    let what = format!("a {type_} {reason} event about {name} saying {note_part:?}");
    wait_for(&what, || async {
        events(client, name)
            .await
            .into_iter()
            .find(|(t, r, n)| t == type_ && r == reason && n.contains(note_part))
            .map(|(_, _, note)| note)
    })
    .await
}

/// A shared counter.
#[derive(Default, Clone)]
pub struct Counter(Arc<AtomicUsize>);

impl Counter {
    pub fn bump(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    pub fn drop_one(&self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
