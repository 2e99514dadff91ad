//! The canary operator end to end: the in-process API server, a real Prometheus scraping the
//! synthetic data plane, and each mesh's routing objects.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use autopilot_examples::canary::demo::{APP, DemoOptions, Environment, demo_canary};
use autopilot_examples::canary::spec::{Canary, CanaryPhase};
use autopilot_examples::traffic::Health;
use autopilot_mesh::MeshProvider;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;

const INTERVAL: Duration = Duration::from_millis(1500);
const TIMEOUT: Duration = Duration::from_secs(240);
const HEALTHY: Health = Health {
    error_rate: 0.0,
    latency_ms: 30.0,
};
const FAULTY: Health = Health {
    error_rate: 0.3,
    latency_ms: 30.0,
};

fn phase(canary: &Canary) -> String {
    canary
        .status
        .as_ref()
        .and_then(|s| s.phase.as_ref())
        .map(|phase| phase.as_str().to_owned())
        .unwrap_or_default()
}

/// Starts everything and waits until the Canary is initialised.
async fn initialised(provider: MeshProvider, canary: Canary) -> Environment {
    let env = Environment::start(provider)
        .await
        .expect("environment starts");
    env.canaries()
        .create(&PostParams::default(), &canary)
        .await
        .unwrap();
    env.wait_for(CanaryPhase::Waiting, TIMEOUT, |_| {})
        .await
        .unwrap();
    assert_eq!(env.weights().await.unwrap().canary(), 0);
    env
}

/// Rolls out a healthy revision and checks the weights stepped 20 → 40 → 60 before promotion.
async fn healthy_rollout(provider: MeshProvider) {
    let env = initialised(provider, demo_canary(INTERVAL).unwrap()).await;
    env.release("6.0.1", HEALTHY).await.unwrap();
    let mut weights = Vec::new();
    let done = env
        .wait_for(CanaryPhase::Succeeded, TIMEOUT, |canary| {
            let weight = canary.status.as_ref().map_or(0, |s| s.fields.canary_weight);
            if weights.last() != Some(&weight) {
                weights.push(weight);
            }
        })
        .await
        .unwrap();
    let steps: Vec<u8> = weights.into_iter().filter(|w| *w > 0).collect();
    assert_eq!(
        steps,
        [20, 40, 60],
        "{provider:?}: weights stepped as configured"
    );
    let failed = done.status.unwrap().fields.failed_checks;
    assert!(
        failed < 2,
        "{provider:?}: promoted with {failed} failed checks (threshold 2)"
    );
    assert!(
        env.primary_image().await.unwrap().ends_with(":6.0.1"),
        "the primary runs the new spec"
    );
    let split = env.weights().await.unwrap();
    assert_eq!((split.primary(), split.canary()), (100, 0));
    env.stop().await.unwrap();
}

#[tokio::test]
async fn istio_healthy_rollout_is_promoted() {
    healthy_rollout(MeshProvider::Istio).await;
}

#[tokio::test]
async fn linkerd_healthy_rollout_is_promoted() {
    healthy_rollout(MeshProvider::Linkerd).await;
}

#[tokio::test]
async fn gateway_api_healthy_rollout_is_promoted() {
    healthy_rollout(MeshProvider::GatewayApi).await;
}

#[tokio::test]
async fn istio_failing_metrics_roll_back_after_threshold_checks() {
    failing_rollout(MeshProvider::Istio).await;
}

#[tokio::test]
async fn linkerd_failing_metrics_roll_back_after_threshold_checks() {
    failing_rollout(MeshProvider::Linkerd).await;
}

#[tokio::test]
async fn gateway_api_failing_metrics_roll_back_after_threshold_checks() {
    failing_rollout(MeshProvider::GatewayApi).await;
}

#[tokio::test]
async fn the_demo_runs_both_rollouts_to_completion() {
    let mut output = Vec::new();
    let options = DemoOptions {
        interval: INTERVAL,
        ..DemoOptions::default()
    };
    autopilot_examples::canary::demo::run(options, &mut output)
        .await
        .unwrap();
    let output = String::from_utf8(output).unwrap();
    let rollout_1 = output.find("rollout 1").expect("first rollout announced");
    let succeeded = output.find("Succeeded").expect("first rollout promoted");
    let rollout_2 = output.find("rollout 2").expect("second rollout announced");
    let failed = output.rfind("Failed").expect("second rollout rolled back");
    assert!(
        rollout_1 < succeeded && succeeded < rollout_2 && rollout_2 < failed,
        "{output}"
    );
    assert!(
        output.contains(
            "the primary runs ghcr.io/stefanprodan/podinfo:6.0.1; traffic 100% primary / 0% canary"
        ),
        "{output}"
    );
}

#[tokio::test]
async fn without_prometheus_the_demo_uses_the_labelled_simulated_source() {
    let mut output = Vec::new();
    let options = DemoOptions {
        interval: INTERVAL,
        simulate_metrics: true,
        ..DemoOptions::default()
    };
    autopilot_examples::canary::demo::run(options, &mut output)
        .await
        .unwrap();
    let output = String::from_utf8(output).unwrap();
    assert!(output.contains("metrics are SIMULATED"), "{output}");
    assert!(
        output.contains("Succeeded") && output.contains("rolled back"),
        "{output}"
    );
}

async fn failing_rollout(provider: MeshProvider) {
    let env = initialised(provider, demo_canary(INTERVAL).unwrap()).await;
    env.release("6.0.2", FAULTY).await.unwrap();
    let failed = env
        .wait_for(CanaryPhase::Failed, TIMEOUT, |_| {})
        .await
        .unwrap();
    let status = failed.status.unwrap();
    assert_eq!(
        status.fields.failed_checks, 2,
        "rolled back after `threshold` failed checks"
    );
    assert!(status.message.unwrap_or_default().contains("rolled back"));
    let rate = status
        .fields
        .measurements
        .get("request-success-rate")
        .copied();
    assert!(
        rate.is_some_and(|r| r < 99.0),
        "the failing success rate was measured: {rate:?}"
    );
    let split = env.weights().await.unwrap();
    assert_eq!(
        (split.primary(), split.canary()),
        (100, 0),
        "routing back to the primary"
    );
    assert!(
        env.primary_image().await.unwrap().ends_with(":6.0.0"),
        "the primary keeps the old spec"
    );
    let target = env.deployments().get(APP).await.unwrap();
    assert_eq!(target.spec.replicas, Some(0), "the canary is scaled down");
    env.stop().await.unwrap();
}

/// A loopback webhook receiver answering with the status in `status`.
async fn webhook_server(status: Arc<AtomicU16>) -> String {
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(move || {
            let code = status.load(Ordering::SeqCst);
            async move { axum::http::StatusCode::from_u16(code).unwrap() }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}/")
}

fn with_webhook(kind: &str, url: &str) -> Canary {
    let mut canary = demo_canary(INTERVAL).unwrap();
    canary.spec.analysis.webhooks = vec![
        serde_json::from_value(json!({"name": "gate", "type": kind, "url": url, "timeout": "5s"}))
            .unwrap(),
    ];
    canary
}

#[tokio::test]
async fn a_webhook_answering_500_counts_as_a_failed_check() {
    let status = Arc::new(AtomicU16::new(500));
    let url = webhook_server(status).await;
    let env = initialised(MeshProvider::Istio, with_webhook("rollout", &url)).await;
    env.release("6.0.1", HEALTHY).await.unwrap();
    let failed = env
        .wait_for(CanaryPhase::Failed, TIMEOUT, |_| {})
        .await
        .unwrap();
    let status = failed.status.unwrap();
    assert_eq!(status.fields.failed_checks, 2);
    assert!(status.message.unwrap_or_default().contains("answered 500"));
    env.stop().await.unwrap();
}

#[tokio::test]
async fn confirm_promotion_holds_until_the_gate_opens() {
    let gate = Arc::new(AtomicU16::new(403));
    let url = webhook_server(gate.clone()).await;
    let env = initialised(MeshProvider::Istio, with_webhook("confirm-promotion", &url)).await;
    env.release("6.0.1", HEALTHY).await.unwrap();
    // Held at the maximum weight while the gate refuses.
    env.wait_for(CanaryPhase::Progressing, TIMEOUT, |_| {})
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let canary = env.canaries().get(APP).await.unwrap();
        let status = canary.status.clone().unwrap_or_default();
        if status
            .message
            .as_deref()
            .is_some_and(|m| m.contains("waiting for promotion approval"))
        {
            assert_eq!(status.fields.canary_weight, 60);
            break;
        }
        assert_ne!(
            phase(&canary),
            "Promoting",
            "promoted through a closed gate"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "never reached the gate"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Still held a few intervals later.
    tokio::time::sleep(INTERVAL * 3).await;
    assert_eq!(
        phase(&env.canaries().get(APP).await.unwrap()),
        "Progressing"
    );
    gate.store(200, Ordering::SeqCst);
    env.wait_for(CanaryPhase::Succeeded, TIMEOUT, |_| {})
        .await
        .unwrap();
    assert!(env.primary_image().await.unwrap().ends_with(":6.0.1"));
    env.stop().await.unwrap();
}

#[tokio::test]
async fn a_new_revision_during_analysis_restarts_it() {
    let env = initialised(MeshProvider::Istio, demo_canary(INTERVAL).unwrap()).await;
    env.release("6.0.1", HEALTHY).await.unwrap();
    // Wait until traffic has shifted, then publish another revision.
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while env
        .canaries()
        .get(APP)
        .await
        .unwrap()
        .status
        .map_or(0, |s| s.fields.canary_weight)
        < 40
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "analysis never progressed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    env.release("6.0.3", HEALTHY).await.unwrap();
    let mut restarted = false;
    env.wait_for(CanaryPhase::Succeeded, TIMEOUT, |canary| {
        let status = canary.status.clone().unwrap_or_default();
        restarted |= status
            .message
            .as_deref()
            .is_some_and(|m| m.contains("analysis restarted"));
    })
    .await
    .unwrap();
    assert!(restarted, "the analysis restarted for the new revision");
    assert!(
        env.primary_image().await.unwrap().ends_with(":6.0.3"),
        "the latest revision was promoted"
    );
    env.stop().await.unwrap();
}

#[tokio::test]
async fn deleting_the_canary_cleans_up_what_it_created() {
    let env = initialised(MeshProvider::Istio, demo_canary(INTERVAL).unwrap()).await;
    env.canaries()
        .delete(APP, &DeleteParams::default())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let canary_gone = env.canaries().get_opt(APP).await.unwrap().is_none();
        let primary_gone = env
            .deployments()
            .get_opt(&format!("{APP}-primary"))
            .await
            .unwrap()
            .is_none();
        let routing_gone = env.weights().await.is_err();
        if canary_gone && primary_gone && routing_gone {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "left behind: canary {canary_gone}, primary {primary_gone}, routing {routing_gone}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The app keeps running on its own Deployment.
    let target = env.deployments().get(APP).await.unwrap();
    assert!(
        target.spec.replicas.unwrap_or(0) > 0,
        "the target was scaled back up"
    );
    env.stop().await.unwrap();
}

#[tokio::test]
async fn an_invalid_spec_becomes_a_status_message_and_an_event() {
    let env = Environment::start(MeshProvider::Istio).await.unwrap();
    let mut canary = demo_canary(INTERVAL).unwrap();
    canary.spec.analysis.step_weight = None;
    env.canaries()
        .create(&PostParams::default(), &canary)
        .await
        .unwrap();
    let failed = env
        .wait_for(CanaryPhase::Failed, TIMEOUT, |_| {})
        .await
        .unwrap();
    let message = failed.status.unwrap().message.unwrap_or_default();
    assert!(
        message.contains("invalid spec") && message.contains("stepWeight"),
        "{message}"
    );
    // It stays failed: nothing was created, and no analysis starts.
    tokio::time::sleep(INTERVAL * 2).await;
    let canary = env.canaries().get(APP).await.unwrap();
    assert_eq!(phase(&canary), "Failed");
    let primary = format!("{APP}-primary");
    assert!(env.deployments().get_opt(&primary).await.unwrap().is_none());
    env.stop().await.unwrap();
}
