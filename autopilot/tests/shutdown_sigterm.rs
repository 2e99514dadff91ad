//! SIGTERM to a real operator process in the middle of a phase: the handler finishes (or is cut off at the
//! grace period), the Lease is released, and the process exits with code 0.
//!
//! The operator process is this test binary run again with `operator_process` selected and the API
//! server's URL in the environment.

mod observability_support;

use std::process::Stdio;
use std::time::Duration;

use autopilot::Operator;
use autopilot::config::OperatorConfig;
use autopilot::leader::LeaderElectionConfig;
use autopilot::observability::{LogConfig, LogFormat, init_logging};
use autopilot_testkit::ApiServer;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use observability_support::drill::{Drill, DrillSpec, Journal, Recorder, create, install, phase};
use observability_support::{assert_sample, get};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::mpsc;

const API_URL: &str = "AUTOPILOT_SIGTERM_TEST_API_URL";
const WORK_SECONDS: &str = "AUTOPILOT_SIGTERM_TEST_WORK_SECONDS";
const GRACE_SECONDS: &str = "AUTOPILOT_SIGTERM_TEST_GRACE_SECONDS";
const LEASE: &str = "sigterm-operator";

/// The operator process: runs a Drill operator with leader election until SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "started as a child process by the SIGTERM tests"]
async fn operator_process() {
    let Ok(url) = std::env::var(API_URL) else {
        return;
    };
    let seconds = |name| Duration::from_secs(std::env::var(name).unwrap().parse().unwrap());
    // JSON logs on stderr: the parent reads the address the probe server bound from them.
    let log = LogConfig {
        format: LogFormat::Json,
        filter: "info".to_owned(),
    };
    init_logging(&log).unwrap();
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let config = OperatorConfig {
        metrics_address: "127.0.0.1:0".parse().unwrap(),
        shutdown_grace_period: seconds(GRACE_SECONDS),
        leader_election_enabled: true,
        leader_election: LeaderElectionConfig {
            identity: "child".to_owned(),
            ..LeaderElectionConfig::new(LEASE, "default")
        },
        ..OperatorConfig::default()
    };
    let mut recorder = Recorder::new("child", &Journal::default());
    recorder.work = seconds(WORK_SECONDS);
    recorder.announce = true;
    Operator::<Drill>::new(client, config, recorder.handlers())
        .run()
        .await
        .unwrap();
    println!("exited cleanly");
}

struct OperatorProcess {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    seen: Vec<String>,
    /// The child's JSON log lines, in order.
    log: mpsc::UnboundedReceiver<serde_json::Value>,
}

impl OperatorProcess {
    fn spawn(api: &ApiServer, work_seconds: u64, grace_seconds: u64) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "operator_process",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(API_URL, api.url())
            .env(WORK_SECONDS, work_seconds.to_string())
            .env(GRACE_SECONDS, grace_seconds.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (log_tx, log) = mpsc::unbounded_channel();
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stderr.next_line().await {
                if let Ok(entry) = serde_json::from_str(&line) {
                    let _ = log_tx.send(entry);
                }
            }
        });
        Self {
            child,
            lines,
            log,
            seen: Vec::new(),
        }
    }

    /// Reads output lines until one ends with `line`.
    async fn wait_for_line(&mut self, line: &str) {
        let found = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(next) = self.lines.next_line().await.unwrap() {
                self.seen.push(next.clone());
                // The test harness prints its own `test ... ` prefix on the first line.
                if next.ends_with(line) {
                    return;
                }
            }
            panic!("output ended without {line:?}: {:?}", self.seen);
        });
        found
            .await
            .unwrap_or_else(|_| panic!("no {line:?} within a minute: {:?}", self.seen));
    }

    /// Reads the child's log until a line with `message`, and returns that line.
    async fn wait_for_log(&mut self, message: &str) -> serde_json::Value {
        let found = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(entry) = self.log.recv().await {
                if entry["fields"]["message"] == message {
                    return entry;
                }
            }
            panic!("log ended without {message:?}");
        });
        found
            .await
            .unwrap_or_else(|_| panic!("no {message:?} logged within a minute"))
    }

    /// The base URL of the child's probe server, from its log.
    async fn probe_url(&mut self) -> String {
        let entry = self
            .wait_for_log("serving /metrics, /healthz and /readyz")
            .await;
        format!("http://{}", entry["fields"]["address"].as_str().unwrap())
    }

    fn terminate(&self) {
        let pid = self.child.id().unwrap().to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the exit (a minute bounds hangs) and returns its status and the rest of the output.
    async fn exit(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("still running a minute after SIGTERM")
            .unwrap();
        while let Some(line) = self.lines.next_line().await.unwrap() {
            self.seen.push(line);
        }
        (status, self.seen)
    }
}

async fn holder(api: &ApiServer) -> Option<String> {
    let leases = Api::<Lease>::namespaced(api.client(), "default");
    leases
        .get(LEASE)
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity
}

#[tokio::test]
async fn sigterm_mid_phase_lets_the_handler_finish_releases_the_lease_and_exits_zero() {
    let api = ApiServer::start().await.unwrap();
    let drills = install(&api.client()).await;
    // A grace period far beyond the test's patience: exiting in time means the drain ended with the handler.
    let mut operator = OperatorProcess::spawn(&api, 5, 600);
    create(
        &drills,
        "slow",
        DrillSpec {
            rounds: 1,
            fail_first: false,
        },
    )
    .await;
    operator.wait_for_line("started slow").await;
    assert_eq!(holder(&api).await.as_deref(), Some("child"));

    // Mid-phase, the operator process reports itself over HTTP.
    let probes = operator.probe_url().await;
    assert_eq!(get(&format!("{probes}/healthz")).await.0, 200);
    // Readiness follows the cache sync, which the process notices within a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ready = get(&format!("{probes}/readyz")).await;
        if ready == (200, "ok".to_owned()) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never ready: {ready:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, text) = get(&format!("{probes}/metrics")).await;
    assert_sample(
        &text,
        r#"leader_election_master_status{name="sigterm-operator"}"#,
        1.0,
    );
    assert_sample(
        &text,
        r#"controller_runtime_active_workers{controller="drill"}"#,
        1.0,
    );
    assert_sample(
        &text,
        r#"autopilot_objects{controller="drill",phase="Working"}"#,
        1.0,
    );
    assert_sample(
        &text,
        r#"autopilot_phase_transitions_total{controller="drill",from="Starting",to="Working"}"#,
        1.0,
    );

    operator.terminate();
    operator.wait_for_log("shutting down").await;
    // New work after the signal is not taken: a Drill created now is left alone. The margin lets the
    // signal reach the controller before the Drill's watch event does; the handler in hand runs on.
    tokio::time::sleep(Duration::from_secs(1)).await;
    create(
        &drills,
        "late",
        DrillSpec {
            rounds: 1,
            fail_first: false,
        },
    )
    .await;
    let (status, output) = operator.exit().await;
    assert!(status.success(), "{status}: {output:?}");
    assert_eq!(
        phase(&drills, "late").await,
        None,
        "a Drill created after SIGTERM was reconciled"
    );
    let position = |line: &str| output.iter().position(|l| l.ends_with(line));
    let finished = position("finished slow").expect("the in-flight handler finished");
    assert!(
        finished < position("exited cleanly").expect("run() returned Ok"),
        "{output:?}"
    );
    // The handler's transition was written before the exit.
    assert_eq!(phase(&drills, "slow").await.as_deref(), Some("Done"));
    assert_eq!(holder(&api).await, None, "the lease is released");
}

#[tokio::test]
async fn a_handler_outliving_the_grace_period_is_cut_off_and_the_lease_still_released() {
    let api = ApiServer::start().await.unwrap();
    let drills = install(&api.client()).await;
    let mut operator = OperatorProcess::spawn(&api, 600, 1);
    create(
        &drills,
        "stuck",
        DrillSpec {
            rounds: 1,
            fail_first: false,
        },
    )
    .await;
    operator.wait_for_line("started stuck").await;

    operator.terminate();
    let (status, output) = operator.exit().await;
    assert!(status.success(), "{status}: {output:?}");
    assert!(
        !output.iter().any(|l| l.ends_with("finished stuck")),
        "{output:?}"
    );
    assert!(
        output.iter().any(|l| l.ends_with("exited cleanly")),
        "{output:?}"
    );
    assert_eq!(phase(&drills, "stuck").await.as_deref(), Some("Working"));
    assert_eq!(holder(&api).await, None, "the lease is released");
}
