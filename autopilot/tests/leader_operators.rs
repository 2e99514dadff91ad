//! Two operator replicas on one in-process API server: only the leader runs handlers, a standby takes over
//! when the leader dies, and no object ever has a handler running on both at once.

mod observability_support;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use autopilot::Operator;
use autopilot::config::OperatorConfig;
use autopilot::leader::LeaderElectionConfig;
use autopilot::observability::{Health, Metrics, Readiness};
use autopilot::shutdown::{OperatorProcess, ProcessError};
use autopilot_testkit::TestCluster;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use observability_support::drill::{
    Drill, DrillSpec, Journal, Recorder, create, eventually, install_on, phase,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

struct Replica {
    name: &'static str,
    metrics: Metrics,
    health: Health,
    task: JoinHandle<Result<(), ProcessError>>,
}

fn start(
    api: &TestCluster,
    name: &'static str,
    recorder: &Recorder,
    shutdown: &CancellationToken,
) -> Replica {
    let recorder = Recorder {
        instance: name.to_owned(),
        ..recorder.clone()
    };
    // Each test keeps to its namespace: the tests of a binary share a real server.
    let config = OperatorConfig {
        watch_namespace: Some(api.namespace().to_owned()),
        ..OperatorConfig::default()
    };
    let operator = Operator::<Drill>::new(api.client(), config, recorder.handlers());
    let process = OperatorProcess {
        metrics_address: None,
        leader_election: Some(LeaderElectionConfig {
            identity: name.to_owned(),
            // Short for a quick test, long enough that a loaded machine still renews in time.
            lease_duration: Duration::from_secs(4),
            renew_deadline: Duration::from_secs(3),
            retry_period: Duration::from_millis(200),
            ..LeaderElectionConfig::new("drill-operator", api.namespace())
        }),
        grace_period: Duration::from_secs(5),
    };
    let (metrics, health) = (Metrics::new(), Health::new());
    let task = tokio::spawn(operator.run_process(
        process,
        metrics.clone(),
        health.clone(),
        shutdown.clone(),
    ));
    Replica {
        name,
        metrics,
        health,
        task,
    }
}

fn instances(runs: &[observability_support::drill::Run]) -> BTreeSet<String> {
    runs.iter().map(|r| r.instance.clone()).collect()
}

#[tokio::test]
async fn only_the_leader_runs_handlers_and_a_standby_takes_over_when_it_dies() {
    let api = TestCluster::start().await.unwrap();
    let drills = install_on(&api).await;
    let journal = Journal::default();
    let recorder = Recorder::new("", &journal);
    recorder.go.store(false, Ordering::SeqCst); // keep the Drills Working until the test lets go
    let shutdown = CancellationToken::new();
    let mut replicas = vec![
        start(&api, "replica-a", &recorder, &shutdown),
        start(&api, "replica-b", &recorder, &shutdown),
    ];
    for name in ["one", "two", "three"] {
        create(
            &drills,
            name,
            DrillSpec {
                rounds: 1,
                fail_first: false,
            },
        )
        .await;
    }

    eventually("every Drill is Working", || async {
        let runs = journal.runs();
        ["one", "two", "three"]
            .iter()
            .all(|n| runs.iter().any(|r| r.object == *n && r.phase == "Working"))
    })
    .await;
    let before = journal.runs();
    let leaders = instances(&before);
    assert_eq!(leaders.len(), 1, "handlers ran on {leaders:?}");
    let leader = leaders.into_iter().next().unwrap();
    let leases = Api::<Lease>::default_namespaced(api.client());
    let holder = leases
        .get("drill-operator")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity;
    assert_eq!(holder.as_deref(), Some(leader.as_str()));
    let gauge = |replica: &Replica| {
        let text = replica.metrics.encode().unwrap();
        observability_support::sample(
            &text,
            r#"leader_election_master_status{name="drill-operator"}"#,
        )
    };
    for replica in &replicas {
        let leads = replica.name == leader;
        assert_eq!(
            gauge(replica),
            Some(if leads { 1.0 } else { 0.0 }),
            "{}",
            replica.name
        );
        // Both become ready: the leader once its cache sync is reported, the standby as it waits its turn.
        let expected = Readiness::Ready(if leads { "ok" } else { "ok: standby" });
        eventually(&format!("{} is {expected:?}", replica.name), || async {
            replica.health.readiness() == expected
        })
        .await;
    }

    // The leader dies without releasing the Lease.
    let index = replicas.iter().position(|r| r.name == leader).unwrap();
    let dead = replicas.remove(index);
    dead.task.abort();
    assert!(dead.task.await.unwrap_err().is_cancelled());
    let died_at = journal.runs().len();
    let survivor = replicas.pop().unwrap();

    eventually("the standby runs handlers", || async {
        journal.runs()[died_at..]
            .iter()
            .any(|r| r.instance == survivor.name)
    })
    .await;
    recorder.go.store(true, Ordering::SeqCst);
    for name in ["one", "two", "three"] {
        eventually(&format!("{name} is Done"), || async {
            phase(&drills, name).await.as_deref() == Some("Done")
        })
        .await;
    }

    let after = journal.runs()[died_at..].to_vec();
    assert_eq!(
        instances(&after),
        BTreeSet::from([survivor.name.to_owned()]),
        "runs after the leader died"
    );
    assert_eq!(
        journal.overlaps(),
        0,
        "a handler ran on two replicas at once for one object"
    );
    assert_eq!(gauge(&survivor), Some(1.0));
    for name in ["one", "two", "three"] {
        let starts = journal
            .runs()
            .iter()
            .filter(|r| r.object == name && r.phase == "Starting")
            .count();
        assert_eq!(starts, 1, "Starting of {name} ran {starts} times");
    }

    shutdown.cancel();
    survivor.task.await.unwrap().unwrap();
    let released = leases.get("drill-operator").await.unwrap().spec.unwrap();
    assert_eq!(released.holder_identity, None, "released on shutdown");
}

#[tokio::test]
async fn a_replica_that_loses_the_lease_stops_its_handlers_and_exits() {
    let api = TestCluster::start().await.unwrap();
    let drills = install_on(&api).await;
    let journal = Journal::default();
    let recorder = Recorder::new("", &journal);
    recorder.go.store(false, Ordering::SeqCst);
    let shutdown = CancellationToken::new();
    let replica = start(&api, "replica-a", &recorder, &shutdown);
    create(
        &drills,
        "held",
        DrillSpec {
            rounds: 1,
            fail_first: false,
        },
    )
    .await;
    eventually("the Drill is Working", || async {
        journal.count("Working") > 0
    })
    .await;

    // Someone else takes the Lease (an administrator, or a replica that judged it expired).
    let leases = Api::<Lease>::default_namespaced(api.client());
    let mut lease = leases.get("drill-operator").await.unwrap();
    lease.spec.as_mut().unwrap().holder_identity = Some("intruder".to_owned());
    leases
        .replace("drill-operator", &Default::default(), &lease)
        .await
        .unwrap();

    let ended = tokio::time::timeout(Duration::from_secs(60), replica.task)
        .await
        .expect("kept running without the lease");
    assert!(matches!(ended.unwrap(), Err(ProcessError::LeadershipLost)));
    let runs = journal.runs().len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        journal.runs().len(),
        runs,
        "handlers ran after the replica stopped"
    );
    let holder = leases
        .get("drill-operator")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity;
    assert_eq!(
        holder.as_deref(),
        Some("intruder"),
        "it released a Lease it no longer held"
    );
}
