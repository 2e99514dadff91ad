//! Leader election on the in-process API server: contention, expiry take-over, release hand-over, step-down.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use autopilot::leader::{
    LeaderElectionConfig, LeaderElector, LeaderStatus, Leadership, LeaseGuard, run_while_leading,
};
use autopilot_testkit::{Backend, TestCluster};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::PostParams;
use tokio_util::sync::CancellationToken;

/// Bounds hangs only; the conditions are polled.
const PATIENCE: Duration = Duration::from_secs(60);

/// A Lease in the test's namespace (the tests of a binary share a real server).
fn config(
    api: &TestCluster,
    lease: &str,
    identity: &str,
    lease_duration: Duration,
) -> LeaderElectionConfig {
    LeaderElectionConfig {
        identity: identity.to_owned(),
        lease_duration,
        renew_deadline: lease_duration * 3 / 4,
        retry_period: Duration::from_millis(200),
        ..LeaderElectionConfig::new(lease, api.namespace())
    }
}

fn elect(api: &TestCluster, config: LeaderElectionConfig) -> LeaseGuard {
    LeaderElector::new(api.client(), config).unwrap().spawn()
}

async fn until_leader(leadership: &mut Leadership) {
    tokio::time::timeout(PATIENCE, leadership.wait_until_leader())
        .await
        .expect("never became leader");
}

async fn lease(api: &TestCluster, name: &str) -> Lease {
    Api::<Lease>::default_namespaced(api.client())
        .get(name)
        .await
        .unwrap()
}

fn holder(lease: &Lease) -> Option<String> {
    lease.spec.as_ref()?.holder_identity.clone()
}

fn micros(time: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime>) -> i64 {
    time.expect("timestamp set").0.as_microsecond()
}

/// Watches a set of leaderships and counts every moment more than one of them led.
fn watch_for_double_leaders(leaderships: Vec<Leadership>) -> (Arc<AtomicUsize>, CancellationToken) {
    let violations = Arc::new(AtomicUsize::new(0));
    let stop = CancellationToken::new();
    let (count, done) = (violations.clone(), stop.clone());
    tokio::spawn(async move {
        while !done.is_cancelled() {
            if leaderships.iter().filter(|l| l.is_leader()).count() > 1 {
                count.fetch_add(1, Ordering::SeqCst);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    (violations, stop)
}

#[tokio::test]
async fn of_many_contenders_exactly_one_leads_and_holds_the_lease() {
    let api = TestCluster::start().await.unwrap();
    let guards: Vec<LeaseGuard> = (0..4)
        .map(|i| {
            elect(
                &api,
                config(
                    &api,
                    "contended",
                    &format!("replica-{i}"),
                    Duration::from_secs(6),
                ),
            )
        })
        .collect();
    let leaderships: Vec<Leadership> = guards.iter().map(LeaseGuard::leadership).collect();
    let (violations, stop) = watch_for_double_leaders(leaderships.clone());

    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !leaderships.iter().any(Leadership::is_leader) {
        assert!(tokio::time::Instant::now() < deadline, "nobody leads");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let several renew rounds go by while everyone keeps contending.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let leaders: Vec<usize> = (0..4).filter(|&i| leaderships[i].is_leader()).collect();
    assert_eq!(leaders.len(), 1, "leaders: {leaders:?}");
    let standbys = leaderships
        .iter()
        .filter(|l| l.status() == LeaderStatus::Standby)
        .count();
    assert_eq!(standbys, 3);
    assert_eq!(
        holder(&lease(&api, "contended").await),
        Some(format!("replica-{}", leaders[0]))
    );
    stop.cancel();
    assert_eq!(
        violations.load(Ordering::SeqCst),
        0,
        "two replicas led at once"
    );
}

#[tokio::test]
async fn a_standby_takes_over_once_a_dropped_leader_lease_expires() {
    let api = TestCluster::start().await.unwrap();
    let lease_duration = Duration::from_secs(3);
    let first = elect(&api, config(&api, "expiry", "first", lease_duration));
    until_leader(&mut first.leadership()).await;
    let second = elect(&api, config(&api, "expiry", "second", lease_duration));
    let (violations, stop) =
        watch_for_double_leaders(vec![first.leadership(), second.leadership()]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!second.leadership().is_leader());

    drop(first); // a crash: no release
    let last_renewal = micros(
        lease(&api, "expiry")
            .await
            .spec
            .unwrap()
            .renew_time
            .as_ref(),
    );
    until_leader(&mut second.leadership()).await;

    let taken = lease(&api, "expiry").await.spec.unwrap();
    assert_eq!(taken.holder_identity.as_deref(), Some("second"));
    assert_eq!(taken.lease_transitions, Some(1));
    let gap = Duration::from_micros(
        u64::try_from(micros(taken.acquire_time.as_ref()) - last_renewal).unwrap(),
    );
    // Never before the lease expired; within lease duration + retry period (plus slack for a loaded host).
    assert!(
        gap >= lease_duration - Duration::from_millis(50),
        "took over after only {gap:?}"
    );
    assert!(
        gap <= lease_duration + Duration::from_millis(200) + Duration::from_secs(5),
        "took {gap:?}"
    );
    stop.cancel();
    assert_eq!(violations.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn release_hands_the_lease_over_without_waiting_for_expiry() {
    let api = TestCluster::start().await.unwrap();
    // Far longer than the wait below: only a release lets the standby in before it.
    let lease_duration = Duration::from_secs(120);
    let first = elect(&api, config(&api, "handover", "first", lease_duration));
    until_leader(&mut first.leadership()).await;
    let second = elect(&api, config(&api, "handover", "second", lease_duration));
    let mut standby = second.leadership();
    tokio::time::timeout(PATIENCE, async {
        while standby.status() != LeaderStatus::Standby {
            standby.changed().await;
        }
    })
    .await
    .unwrap();

    let mut first_view = first.leadership();
    assert!(first.release().await.unwrap(), "the leader wrote a release");
    assert!(!first_view.is_leader());
    // The election has ended: the view runs out of changes.
    tokio::time::timeout(PATIENCE, async {
        while first_view.changed().await.is_some() {}
    })
    .await
    .unwrap();
    let released = lease(&api, "handover").await;
    assert_eq!(holder(&released), None);

    tokio::time::timeout(Duration::from_secs(30), standby.wait_until_leader())
        .await
        .expect("the standby waited for expiry instead of taking the released lease");
    assert_eq!(
        holder(&lease(&api, "handover").await).as_deref(),
        Some("second")
    );
}

#[tokio::test]
async fn a_leader_steps_down_when_someone_else_holds_the_lease() {
    let api = TestCluster::start().await.unwrap();
    let guard = elect(
        &api,
        config(&api, "usurped", "first", Duration::from_secs(30)),
    );
    let mut leadership = guard.leadership();
    until_leader(&mut leadership).await;

    // An administrator (or a replica with a bug) hands the lease to someone else.
    let leases = Api::<Lease>::default_namespaced(api.client());
    let mut taken = leases.get("usurped").await.unwrap();
    taken.spec.as_mut().unwrap().holder_identity = Some("intruder".to_owned());
    leases
        .replace("usurped", &PostParams::default(), &taken)
        .await
        .unwrap();

    tokio::time::timeout(PATIENCE, leadership.wait_until_lost())
        .await
        .unwrap();
    assert_eq!(leadership.status(), LeaderStatus::Standby);
    // It does not release what it no longer holds.
    assert!(!guard.release().await.unwrap());
    assert_eq!(
        holder(&lease(&api, "usurped").await).as_deref(),
        Some("intruder")
    );
}

#[tokio::test]
async fn a_stale_write_loses_to_the_current_resource_version() {
    let api = TestCluster::start().await.unwrap();
    let mut first = LeaderElector::new(
        api.client(),
        config(&api, "race", "first", Duration::from_secs(30)),
    )
    .unwrap();
    let mut second = LeaderElector::new(
        api.client(),
        config(&api, "race", "second", Duration::from_secs(30)),
    )
    .unwrap();
    assert!(first.try_lead().await.unwrap());
    assert!(!second.try_lead().await.unwrap(), "held and unexpired");
    assert!(first.release().await.unwrap());
    // Both race for the released lease: exactly one wins.
    let (a, b) = tokio::join!(first.try_lead(), second.try_lead());
    assert_ne!(a.unwrap(), b.unwrap());
}

#[tokio::test]
async fn work_runs_only_on_the_leader_and_moves_with_the_lease() {
    let api = TestCluster::start().await.unwrap();
    let running = Arc::new(AtomicUsize::new(0));
    let overlaps = Arc::new(AtomicUsize::new(0));
    let starts = Arc::new(AtomicUsize::new(0));
    let shutdown = CancellationToken::new();
    let mut guards = Vec::new();
    let mut tasks = Vec::new();
    for name in ["first", "second"] {
        let guard = elect(&api, config(&api, "work", name, Duration::from_secs(4)));
        let (running, overlaps, starts) = (running.clone(), overlaps.clone(), starts.clone());
        let leadership = guard.leadership();
        let shutdown = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            run_while_leading(leadership, &shutdown, Duration::from_secs(5), move |stop| {
                let (running, overlaps) = (running.clone(), overlaps.clone());
                starts.fetch_add(1, Ordering::SeqCst);
                async move {
                    // Tracks how many replicas run work right now; dropped (or stopped) on losing the lease.
                    struct Running(Arc<AtomicUsize>);
                    impl Drop for Running {
                        fn drop(&mut self) {
                            self.0.fetch_sub(1, Ordering::SeqCst);
                        }
                    }
                    if running.fetch_add(1, Ordering::SeqCst) > 0 {
                        overlaps.fetch_add(1, Ordering::SeqCst);
                    }
                    let _running = Running(running);
                    stop.cancelled().await;
                    Ok::<(), std::convert::Infallible>(())
                }
            })
            .await
        }));
        guards.push(guard);
    }
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while running.load(Ordering::SeqCst) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no work started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let leader = usize::from(!guards[0].leadership().is_leader());
    drop(guards.remove(leader)); // the leader crashes: its lease expires, its work stops

    while starts.load(Ordering::SeqCst) < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the standby never started work"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(guards[0].leadership().is_leader());
    shutdown.cancel();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(running.load(Ordering::SeqCst), 0);
    assert_eq!(
        starts.load(Ordering::SeqCst),
        2,
        "each replica starts its work once"
    );
    assert_eq!(
        overlaps.load(Ordering::SeqCst),
        0,
        "work ran on two replicas at once"
    );
}

#[tokio::test]
async fn a_leader_that_cannot_renew_steps_down_and_leads_again_once_it_can() {
    // Faults can be injected only into the in-process server.
    let api = TestCluster::start_on(Backend::InProcess).await.unwrap();
    let guard = elect(&api, config(&api, "flaky", "first", Duration::from_secs(4)));
    let mut leadership = guard.leadership();
    until_leader(&mut leadership).await;

    api.in_process().unwrap().faults().fail_next(100_000, 500); // every request fails from now on
    tokio::time::timeout(PATIENCE, leadership.wait_until_lost())
        .await
        .expect("kept leading without renewing");
    assert_eq!(leadership.status(), LeaderStatus::Standby);

    api.in_process().unwrap().faults().clear();
    until_leader(&mut leadership).await;
    assert!(guard.release().await.unwrap());
}
