//! The RBAC that the canary operator's manifests grant is enough, and needed: on the real API server (which
//! authorizes every request) the operator runs as its ServiceAccount under the generated ClusterRole,
//! rolls out a healthy and a failing revision, and without the rule for Services it stops at the first
//! write with the server's "forbidden" in its status.

use std::time::Duration;

use autopilot_examples::canary::demo::{APP, Environment, demo_canary};
use autopilot_examples::canary::manifests;
use autopilot_examples::canary::spec::CanaryPhase;
use autopilot_examples::traffic::Health;
use autopilot_mesh::MeshProvider;
use autopilot_testkit::{Backend, TestCluster};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use serde_json::Value;

const INTERVAL: Duration = Duration::from_millis(1500);
const TIMEOUT: Duration = Duration::from_secs(240);

/// Installs the operator's ServiceAccount and RBAC from its manifests (less the rules `keep` refuses) and
/// returns a client that authenticates as that ServiceAccount.
async fn operator_client(cluster: &TestCluster, keep: impl Fn(&Value) -> bool) -> kube::Client {
    let namespace = cluster.namespace();
    // Cluster-scoped names are shared by the tests of this binary: make them the test's own.
    let name = format!("canary-operator-{namespace}");
    let objects = manifests(&name, namespace, "unused:1", MeshProvider::Istio)
        .objects()
        .unwrap();
    let mut yaml = String::new();
    for mut object in objects {
        match object["kind"].as_str() {
            Some("ServiceAccount" | "ClusterRoleBinding") => {}
            Some("ClusterRole") => {
                let rules: Vec<Value> = object["rules"].as_array().unwrap().clone();
                object["rules"] = Value::from(rules.into_iter().filter(&keep).collect::<Vec<_>>());
            }
            // The CRD is installed by the environment; the Deployment would run an image.
            _ => continue,
        }
        yaml.push_str("---\n");
        yaml.push_str(&serde_saphyr::to_string(&object).unwrap());
    }
    cluster.install_yaml(&yaml).await.unwrap();

    let accounts: Api<ServiceAccount> = Api::default_namespaced(cluster.client());
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let token: TokenRequest = accounts
        .create_subresource("token", &name, &PostParams::default(), &request)
        .await
        .unwrap();
    let real = cluster.real().expect("the real backend");
    let mut config = real.config(namespace).unwrap();
    let token = token.status.and_then(|s| s.token).expect("a signed token");
    config.auth_info.token = Some(token.into());
    kube::Client::try_from(config).unwrap()
}

/// The environment with the operator running as its ServiceAccount.
async fn environment(keep: impl Fn(&Value) -> bool) -> Environment {
    let cluster = TestCluster::start_on(Backend::Real).await.unwrap();
    let client = operator_client(&cluster, keep).await;
    // A real Prometheus: starting fails, naming the missing program, where none is installed.
    Environment::start_in(cluster, client, MeshProvider::Istio, false)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_rbac_is_enough_for_both_rollouts() {
    let env = environment(|_| true).await;
    env.canaries()
        .create(&PostParams::default(), &demo_canary(INTERVAL).unwrap())
        .await
        .unwrap();
    env.wait_for(CanaryPhase::Waiting, TIMEOUT, |_| {})
        .await
        .unwrap();
    env.release(
        "6.0.1",
        Health {
            error_rate: 0.0,
            latency_ms: 30.0,
        },
    )
    .await
    .unwrap();
    env.wait_for(CanaryPhase::Succeeded, TIMEOUT, |_| {})
        .await
        .unwrap();
    env.release(
        "6.0.2",
        Health {
            error_rate: 0.3,
            latency_ms: 30.0,
        },
    )
    .await
    .unwrap();
    let failed = env
        .wait_for(CanaryPhase::Failed, TIMEOUT, |_| {})
        .await
        .unwrap();
    assert!(
        failed
            .status
            .unwrap()
            .message
            .unwrap_or_default()
            .contains("rolled back"),
        "the failing revision was rolled back by the operator itself"
    );
    env.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_rule_for_services_the_operator_says_it_is_forbidden() {
    let grants_services = |rule: &Value| {
        rule["resources"]
            .as_array()
            .is_some_and(|r| r.iter().any(|x| x == "services"))
    };
    let env = environment(|rule| !grants_services(rule)).await;
    env.canaries()
        .create(&PostParams::default(), &demo_canary(INTERVAL).unwrap())
        .await
        .unwrap();
    // Bounded by TIMEOUT so a missing condition fails the test instead of hanging it.
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let message = loop {
        let canary = env.canaries().get(APP).await.unwrap();
        let degraded = canary.status.as_ref().and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == "Degraded" && c.status == "True")
                .map(|c| c.message.clone())
        });
        if let Some(message) = degraded {
            break message;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the operator never reported Degraded: {:?}",
            canary.status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(message.contains("forbidden"), "{message}");
    assert!(message.contains("services"), "{message}");
    assert!(
        message.contains(&format!("system:serviceaccount:{}:", env.namespace())),
        "the request was made as the operator's ServiceAccount: {message}"
    );
    env.stop().await.unwrap();
}
