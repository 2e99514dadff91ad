//! Connecting with the kubeconfig file the configuration names.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may unwrap

mod common;

use autopilot::{Operator, config::OperatorConfig};
use common::*;
use kube::{Api, api::PostParams};

#[tokio::test]
async fn the_configured_kubeconfig_reaches_its_cluster() {
    let (server, _) = server().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, serde_saphyr::to_string(server.kubeconfig()).unwrap()).unwrap();
    let namespace = server.namespace().to_owned();
    let env = |name: &str| match name {
        "AUTOPILOT_KUBECONFIG" => Some(path.display().to_string()),
        "AUTOPILOT_WATCH_NAMESPACE" => Some(namespace.clone()),
        _ => None,
    };
    let config = OperatorConfig::from_sources(None, env, ["op"]).unwrap();

    // A client from the file talks to this server: what it creates, the server's own client reads.
    let client = config.client().await.unwrap();
    let canaries: Api<Canary> = Api::default_namespaced(client);
    canaries
        .create(&PostParams::default(), &canary("via-file", "web"))
        .await
        .unwrap();
    let direct: Api<Canary> = Api::default_namespaced(server.client());
    assert!(direct.get_opt("via-file").await.unwrap().is_some());

    // And so does an operator built from the configuration alone.
    let handlers = CanaryHandlers {
        initializing: |_, _| async {
            Ok::<_, std::io::Error>(autopilot::Transition::next(CanaryPhase::Succeeded))
        },
        waiting: |_, _| async { Ok::<_, std::io::Error>(autopilot::Transition::recheck()) },
        evaluating: |_, _| async { Ok::<_, std::io::Error>(autopilot::Transition::recheck()) },
        terminating: |_, _| async { Ok::<_, std::io::Error>(autopilot::Transition::recheck()) },
    };
    let _running = spawn(
        Operator::<Canary>::try_default(config, handlers)
            .await
            .unwrap(),
    );
    wait_for_canary(
        &server.client(),
        "via-file",
        "the operator to finish it",
        |c| phase_of(c) == Some(CanaryPhase::Succeeded),
    )
    .await;
}
