//! The canary example binary as a production operator: SIGTERM while a handler is in flight lets the
//! handler finish, releases the leader Lease and exits 0.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use autopilot_examples::canary::spec::Canary;
use autopilot_testkit::ApiServer;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::Notify;

const NS: &str = "demo";

/// The example binary: `cargo test` builds it next to this test; when only this test was built,
/// build it the same way.
fn canary_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let binary = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join("canary");
    if !binary.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let built = std::process::Command::new(cargo)
            .args(["build", "-p", "autopilot-examples", "--example", "canary"])
            .status()
            .unwrap();
        assert!(built.success(), "building the canary example failed");
    }
    binary
}

async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn sigterm_mid_handler_finishes_it_releases_the_lease_and_exits_zero() {
    let binary = canary_binary();
    assert!(
        binary.is_file(),
        "{} is built by `cargo test`",
        binary.display()
    );
    let server = ApiServer::start().await.unwrap();
    let client = server.client();
    let _deployments = autopilot_testkit::spawn_deployment_status(client.clone());
    server.install::<Canary>().await.unwrap();
    for crd in autopilot_mesh::crds::all() {
        server.install_crd(&crd).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        serde_saphyr::to_string(&server.kubeconfig()).unwrap(),
    )
    .unwrap();

    // A pre-rollout webhook that holds the handler for two seconds.
    let called = Arc::new(Notify::new());
    let answered = Arc::new(AtomicBool::new(false));
    let hook = {
        let (called, answered) = (called.clone(), answered.clone());
        axum::Router::new().route(
            "/",
            axum::routing::post(move || {
                let (called, answered) = (called.clone(), answered.clone());
                async move {
                    called.notify_one();
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    answered.store(true, Ordering::SeqCst);
                    "ok"
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, hook).await.unwrap() });

    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap(),
        )
        .await
        .unwrap();
    let app = |version: &str| {
        json!({"metadata": {"name": "app", "namespace": NS},
               "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "app"}},
                        "template": {"metadata": {"labels": {"app": "app"}},
                                     "spec": {"containers": [{"name": "app", "image": format!("app:{version}")}]}}}})
    };
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    deployments
        .create(
            &PostParams::default(),
            &serde_json::from_value(app("1")).unwrap(),
        )
        .await
        .unwrap();
    let canary: Canary = serde_json::from_value(json!({
        "metadata": {"name": "app", "namespace": NS},
        "spec": {"targetRef": {"name": "app"}, "service": {"port": 80},
                 "analysis": {"interval": "1s", "threshold": 2, "stepWeight": 50, "maxWeight": 50,
                              "webhooks": [{"name": "hold", "type": "pre-rollout", "url": hook_url, "timeout": "10s"}]}}
    }))
    .unwrap();
    let canaries: Api<Canary> = Api::namespaced(client.clone(), NS);
    canaries
        .create(&PostParams::default(), &canary)
        .await
        .unwrap();

    let mut child = tokio::process::Command::new(&binary)
        .args(["--kubeconfig", kubeconfig.to_str().unwrap()])
        .args([
            "--mesh-provider",
            "istio",
            "--prometheus-url",
            "http://127.0.0.1:9",
        ])
        .args([
            "--leader-election",
            "true",
            "--lease-name",
            "canary-operator",
            "--lease-namespace",
            "default",
        ])
        .args([
            "--metrics-address",
            "127.0.0.1:0",
            "--shutdown-grace-period",
            "20s",
        ])
        .env("POD_NAME", "canary-0")
        .env_remove("KUBECONFIG")
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let phase = |name: &'static str| {
        let canaries = canaries.clone();
        move || {
            let canaries = canaries.clone();
            async move {
                canaries
                    .get("app")
                    .await
                    .ok()
                    .and_then(|c| c.status)
                    .and_then(|s| s.phase)
                    .is_some_and(|p| p.as_str() == name)
            }
        }
    };
    wait_until("the canary to be initialised", phase("Waiting")).await;
    deployments
        .patch("app", &PatchParams::default(), &Patch::Merge(&app("2")))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(60), called.notified())
        .await
        .expect("the pre-rollout webhook is called");

    // Mid-handler: terminate.
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("exits within the grace period")
        .unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(
        answered.load(Ordering::SeqCst),
        "the in-flight handler finished"
    );
    let weight = canaries
        .get("app")
        .await
        .unwrap()
        .status
        .unwrap()
        .fields
        .canary_weight;
    assert_eq!(weight, 50, "the finished handler's status was written");
    let lease = Api::<Lease>::namespaced(client, "default")
        .get("canary-operator")
        .await
        .unwrap();
    let holder = lease.spec.and_then(|spec| spec.holder_identity);
    assert!(
        holder.as_deref().is_none_or(str::is_empty),
        "lease released, holder {holder:?}"
    );
}
