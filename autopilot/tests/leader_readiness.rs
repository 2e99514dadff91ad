//! /readyz with leader election: a standby is ready once it has read the Lease; the leader once synced.

mod observability_support;

use std::time::Duration;

use autopilot::leader::{LeaderElectionConfig, LeaderElector};
use autopilot::observability::{Health, Metrics};
use observability_support::{Server, get};

#[tokio::test]
async fn with_leader_election_a_standby_is_ready_and_a_leader_waits_for_sync() {
    let api = autopilot_testkit::TestCluster::start().await.unwrap();
    let config = |identity: &str| LeaderElectionConfig {
        identity: identity.to_owned(),
        lease_duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(200),
        ..LeaderElectionConfig::new("ready-lock", api.namespace())
    };
    let leader = LeaderElector::new(api.client(), config("first"))
        .unwrap()
        .spawn();
    let mut leading = leader.leadership();
    tokio::time::timeout(Duration::from_secs(60), leading.wait_until_leader())
        .await
        .unwrap();

    let standby = LeaderElector::new(api.client(), config("second"))
        .unwrap()
        .spawn();
    let standby_health = Health::with_leadership(standby.leadership());
    let leader_health = Health::with_leadership(leader.leadership());
    let standby_server = Server::start(Metrics::new(), standby_health).await;
    let leader_server = Server::start(Metrics::new(), leader_health.clone()).await;

    // Ready once the standby has seen the Lease held by someone else.
    let mut standby_status = standby.leadership();
    tokio::time::timeout(Duration::from_secs(60), async {
        while standby_status.status() != autopilot::leader::LeaderStatus::Standby {
            standby_status.changed().await;
        }
    })
    .await
    .unwrap();
    let (status, body) = get(&standby_server.url("/readyz")).await;
    assert_eq!((status, body.as_str()), (200, "ok: standby"));

    assert_eq!(get(&leader_server.url("/readyz")).await.0, 503);
    leader_health.set_caches_synced(true);
    assert_eq!(get(&leader_server.url("/readyz")).await.0, 200);
}
