//! `Drill`: a small custom resource whose handlers record every run, for the operator-level tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use autopilot::{Autopilot, Context, Phase, Transition};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::PostParams;
use kube::{Api, Client, CustomResource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Goes Starting → Working (for `rounds` runs) → Done.
#[derive(CustomResource, Autopilot, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "ops.autopilot.rs",
    version = "v1",
    kind = "Drill",
    namespaced,
    status = "DrillStatus"
)]
#[autopilot(phases(Starting(initial), Working, Done(final)))]
#[serde(rename_all = "camelCase")]
pub struct DrillSpec {
    /// Working runs this many times before Done.
    pub rounds: u32,
    /// The first Working run of each object fails.
    #[serde(default)]
    pub fail_first: bool,
}

/// One handler run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    pub instance: String,
    pub object: String,
    pub phase: &'static str,
}

#[derive(Default)]
struct Book {
    runs: Vec<Run>,
    in_flight: HashMap<String, usize>,
    overlaps: usize,
}

/// Every handler run of every instance in this process, and whether two ever overlapped on one object.
#[derive(Clone, Default)]
pub struct Journal(Arc<Mutex<Book>>);

impl Journal {
    fn enter(&self, instance: &str, object: &str, phase: &'static str) -> InFlight {
        let mut book = self.0.lock().unwrap();
        let running = book.in_flight.entry(object.to_owned()).or_default();
        *running += 1;
        if *running > 1 {
            book.overlaps += 1;
        }
        book.runs.push(Run {
            instance: instance.to_owned(),
            object: object.to_owned(),
            phase,
        });
        InFlight {
            journal: self.clone(),
            object: object.to_owned(),
        }
    }

    pub fn runs(&self) -> Vec<Run> {
        self.0.lock().unwrap().runs.clone()
    }

    pub fn count(&self, phase: &str) -> usize {
        self.runs().iter().filter(|r| r.phase == phase).count()
    }

    /// Times a handler started on an object while another run on it had not ended.
    pub fn overlaps(&self) -> usize {
        self.0.lock().unwrap().overlaps
    }
}

/// Ends a run when dropped (also when the run is cancelled).
struct InFlight {
    journal: Journal,
    object: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut book = self.journal.0.lock().unwrap();
        if let Some(running) = book.in_flight.get_mut(&self.object) {
            *running -= 1;
        }
    }
}

/// A handler that records its runs, works for a while, and moves on as the spec says.
#[derive(Clone)]
pub struct Recorder {
    pub instance: String,
    pub journal: Journal,
    /// How long each Working run takes.
    pub work: Duration,
    /// Print `started <object>` / `finished <object>` lines (for a parent process to follow).
    pub announce: bool,
    /// Working runs only end in Done once this is set (it starts set unless a test holds it).
    pub go: Arc<AtomicBool>,
}

impl Recorder {
    pub fn new(instance: &str, journal: &Journal) -> Self {
        Self {
            instance: instance.to_owned(),
            journal: journal.clone(),
            work: Duration::from_millis(20),
            announce: false,
            go: Arc::new(AtomicBool::new(true)),
        }
    }

    pub fn handlers(&self) -> DrillHandlers<Starting, Working> {
        DrillHandlers {
            starting: Starting(self.clone()),
            working: Working(self.clone()),
        }
    }
}

pub struct Starting(Recorder);
pub struct Working(Recorder);

#[derive(Debug, thiserror::Error)]
#[error("the first run of {0} fails")]
pub struct FirstRunFails(String);

impl Phase<Drill> for Starting {
    type Error = Infallible;

    async fn run(
        &self,
        drill: Arc<Drill>,
        _: Context<Drill>,
    ) -> Result<Transition<DrillPhase>, Infallible> {
        let _run = self
            .0
            .journal
            .enter(&self.0.instance, &drill.name_any(), "Starting");
        Ok(Transition::next(DrillPhase::Working))
    }
}

impl Phase<Drill> for Working {
    type Error = FirstRunFails;

    async fn run(
        &self,
        drill: Arc<Drill>,
        _: Context<Drill>,
    ) -> Result<Transition<DrillPhase>, FirstRunFails> {
        let name = drill.name_any();
        let recorder = &self.0;
        let _run = recorder.journal.enter(&recorder.instance, &name, "Working");
        let runs = recorder
            .journal
            .runs()
            .iter()
            .filter(|r| r.object == name && r.phase == "Working")
            .count();
        if drill.spec.fail_first && runs == 1 {
            return Err(FirstRunFails(name));
        }
        tracing::info!(run = runs, "working");
        if recorder.announce {
            println!("started {name}");
        }
        tokio::time::sleep(recorder.work).await;
        if recorder.announce {
            println!("finished {name}");
        }
        let rounds = usize::try_from(drill.spec.rounds).unwrap();
        Ok(if runs >= rounds && recorder.go.load(Ordering::SeqCst) {
            Transition::next(DrillPhase::Done)
        } else {
            Transition::stay_for(Duration::from_millis(50))
        })
    }
}

/// Installs the Drill CRD and returns the Drills of `default`.
/// Installs the Drill CRD on a test cluster; the Drills of the test's namespace.
pub async fn install_on(cluster: &autopilot_testkit::TestCluster) -> Api<Drill> {
    cluster.install::<Drill>().await.unwrap();
    Api::default_namespaced(cluster.client())
}

pub async fn install(client: &Client) -> Api<Drill> {
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    crds.create(&PostParams::default(), &autopilot::crd::<Drill>())
        .await
        .unwrap();
    Api::namespaced(client.clone(), "default")
}

pub async fn create(drills: &Api<Drill>, name: &str, spec: DrillSpec) {
    drills
        .create(&PostParams::default(), &Drill::new(name, spec))
        .await
        .unwrap();
}

/// `status.phase` of a Drill, if set.
pub async fn phase(drills: &Api<Drill>, name: &str) -> Option<String> {
    let drill = drills.get(name).await.unwrap();
    serde_json::to_value(&drill).unwrap()["status"]["phase"]
        .as_str()
        .map(str::to_owned)
}

/// Polls until `check` holds, failing after a minute (which only bounds hangs).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
