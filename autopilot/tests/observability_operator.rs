//! A running operator on the in-process API server: its metrics page and readiness, scraped over HTTP
//! while Drills go through their phases, and its log lines.

mod observability_support;

use std::time::Duration;

use autopilot::Operator;
use autopilot::config::OperatorConfig;
use autopilot::observability::{Health, LogConfig, LogFormat, Metrics, subscriber};
use autopilot::shutdown::OperatorProcess;
use autopilot_testkit::{Backend, TestCluster};
use observability_support::drill::{
    Drill, DrillSpec, Journal, Recorder, create, eventually, install_on, phase,
};
use observability_support::{Server, assert_sample, get, sum};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn metrics_count_what_the_handlers_did_and_readyz_follows_the_cache() {
    let api = TestCluster::start().await.unwrap();
    let client = api.client();
    let drills = install_on(&api).await;
    let (metrics, health) = (Metrics::new(), Health::new());
    let server = Server::start(metrics.clone(), health.clone()).await;
    assert_eq!(
        get(&server.url("/readyz")).await.0,
        503,
        "ready before any cache synced"
    );

    let journal = Journal::default();
    let operator = Operator::<Drill>::new(
        client.clone(),
        // The test's namespace only: the tests of a binary share a real server.
        OperatorConfig {
            watch_namespace: Some(api.namespace().to_owned()),
            ..OperatorConfig::default()
        },
        Recorder::new("only", &journal).handlers(),
    );
    let process = OperatorProcess {
        metrics_address: None,
        leader_election: None,
        grace_period: Duration::from_secs(10),
    };
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(operator.run_process(
        process,
        metrics.clone(),
        health.clone(),
        shutdown.clone(),
    ));
    eventually("/readyz answers 200", || async {
        get(&server.url("/readyz")).await.0 == 200
    })
    .await;

    create(
        &drills,
        "steady",
        DrillSpec {
            rounds: 2,
            fail_first: false,
        },
    )
    .await;
    create(
        &drills,
        "shaky",
        DrillSpec {
            rounds: 3,
            fail_first: true,
        },
    )
    .await;
    for name in ["steady", "shaky"] {
        eventually(&format!("{name} is Done"), || async {
            phase(&drills, name).await.as_deref() == Some("Done")
        })
        .await;
    }
    // Reconciles triggered by the final status writes may still be running; wait until none is.
    let page = || async { get(&server.url("/metrics")).await.1 };
    eventually("no reconcile runs", || async {
        observability_support::sample(
            &page().await,
            r#"controller_runtime_active_workers{controller="drill"}"#,
        ) == Some(0.0)
    })
    .await;
    let text = page().await;

    // Handler durations: one observation per handler run, failed runs included.
    assert_eq!(journal.count("Starting"), 2);
    // steady: 2 runs; shaky: a failing run, then runs 2 and 3.
    assert_eq!(journal.count("Working"), 2 + 3);
    assert_sample(
        &text,
        r#"autopilot_phase_handler_duration_seconds_count{controller="drill",phase="Starting"}"#,
        2.0,
    );
    assert_sample(
        &text,
        r#"autopilot_phase_handler_duration_seconds_count{controller="drill",phase="Working"}"#,
        5.0,
    );
    // Transitions written to status.
    assert_sample(
        &text,
        r#"autopilot_phase_transitions_total{controller="drill",from="Starting",to="Working"}"#,
        2.0,
    );
    assert_sample(
        &text,
        r#"autopilot_phase_transitions_total{controller="drill",from="Working",to="Done"}"#,
        2.0,
    );
    // The one failing run is the one reconcile error.
    assert_sample(
        &text,
        r#"controller_runtime_reconcile_errors_total{controller="drill"}"#,
        1.0,
    );
    assert_sample(
        &text,
        r#"controller_runtime_reconcile_total{controller="drill",result="error"}"#,
        1.0,
    );
    // Every reconcile is counted once by result and once in the duration histogram. Each handler run is
    // one reconcile, except that a move to the next phase runs that phase's handler in the same reconcile:
    // 7 runs, 2 of them right after Starting → Working.
    let reconciles = sum(
        &text,
        "controller_runtime_reconcile_total",
        &[("controller", "drill")],
    );
    assert!(
        reconciles >= 5.0,
        "{reconciles} reconciles for 7 handler runs, 2 chained"
    );
    assert_sample(
        &text,
        r#"controller_runtime_reconcile_time_seconds_count{controller="drill"}"#,
        reconciles,
    );
    // Objects per phase, from the operator's cache.
    assert_sample(
        &text,
        r#"autopilot_objects{controller="drill",phase="Done"}"#,
        2.0,
    );
    assert_sample(
        &text,
        r#"autopilot_objects{controller="drill",phase="Working"}"#,
        0.0,
    );
    assert_sample(
        &text,
        r#"autopilot_objects{controller="drill",phase="Starting"}"#,
        0.0,
    );

    shutdown.cancel();
    running.await.unwrap().unwrap();
    assert_eq!(
        get(&server.url("/readyz")).await.0,
        503,
        "ready after the controllers stopped"
    );
}

#[tokio::test]
async fn a_running_operator_logs_handler_lines_inside_the_reconcile_span() {
    let out = observability_support::Captured::default();
    let writer = out.clone();
    let config = LogConfig {
        format: LogFormat::Json,
        filter: "info".to_owned(),
    };
    // A current-thread test runtime: every task of the operator logs through this default.
    let _default =
        tracing::subscriber::set_default(subscriber(&config, move || writer.clone()).unwrap());

    let api = TestCluster::start().await.unwrap();
    let drills = install_on(&api).await;
    let operator = Operator::<Drill>::new(
        api.client(),
        // The test's namespace only: the tests of a binary share a real server.
        OperatorConfig {
            watch_namespace: Some(api.namespace().to_owned()),
            ..OperatorConfig::default()
        },
        Recorder::new("only", &Journal::default()).handlers(),
    );
    let process = OperatorProcess {
        metrics_address: None,
        leader_election: None,
        grace_period: Duration::from_secs(10),
    };
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(operator.run_process(
        process,
        Metrics::new(),
        Health::new(),
        shutdown.clone(),
    ));
    create(
        &drills,
        "logged",
        DrillSpec {
            rounds: 1,
            fail_first: false,
        },
    )
    .await;
    eventually("logged is Done", || async {
        phase(&drills, "logged").await.as_deref() == Some("Done")
    })
    .await;
    shutdown.cancel();
    running.await.unwrap().unwrap();

    let text = out.text();
    let working: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|line| line["fields"]["message"] == "working")
        .collect();
    assert_eq!(working.len(), 1, "{text}");
    let span = &working[0]["span"];
    assert_eq!(span["name"], "reconcile");
    assert_eq!(span["kind"], "Drill");
    assert_eq!(span["object"], format!("{}/logged", api.namespace()));
    assert_eq!(span["generation"], 1);
    assert_eq!(span["phase"], "Working");
}

#[tokio::test]
async fn readyz_stays_unready_while_the_first_list_fails() {
    // Faults can be injected only into the in-process server.
    let api = TestCluster::start_on(Backend::InProcess).await.unwrap();
    install_on(&api).await;
    let (metrics, health) = (Metrics::new(), Health::new());
    let server = Server::start(metrics.clone(), health.clone()).await;
    let operator = Operator::<Drill>::new(
        api.client(),
        // The test's namespace only: the tests of a binary share a real server.
        OperatorConfig {
            watch_namespace: Some(api.namespace().to_owned()),
            ..OperatorConfig::default()
        },
        Recorder::new("only", &Journal::default()).handlers(),
    );
    let process = OperatorProcess {
        metrics_address: None,
        leader_election: None,
        grace_period: Duration::from_secs(10),
    };
    // Only the operator talks to the API server from here on: its first lists get these errors.
    api.in_process().unwrap().faults().fail_next(3, 500);
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(operator.run_process(process, metrics, health, shutdown.clone()));

    let mut answers = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let status = get(&server.url("/readyz")).await.0;
        // Failures are used up in order, so while some are left no list has succeeded yet.
        answers.push((
            status,
            api.in_process().unwrap().faults().pending_failures(),
        ));
        if status == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never ready: {answers:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        answers
            .iter()
            .all(|&(status, left)| status == 503 || left == 0),
        "ready before the cache could sync: {answers:?}"
    );
    assert!(
        answers.iter().any(|&(status, _)| status == 503),
        "never seen unready: {answers:?}"
    );
    shutdown.cancel();
    running.await.unwrap().unwrap();
}
