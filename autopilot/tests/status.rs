//! How the runtime treats status it did not write, and what `kubectl get` shows.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may unwrap

mod common;

use std::{future::ready, sync::Arc};

use autopilot::{Context, Operator, Transition, status::condition};
use common::*;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, CustomResourceExt,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;

fn handlers() -> CanaryHandlers<
    impl autopilot::Phase<Canary>,
    impl autopilot::Phase<Canary>,
    impl autopilot::Phase<Canary>,
    impl autopilot::Phase<Canary>,
> {
    let go = |to: CanaryPhase| {
        move |_: Arc<Canary>, _: Context<Canary>| {
            ready(Ok::<_, std::io::Error>(Transition::next(to)))
        }
    };
    CanaryHandlers {
        initializing: go(CanaryPhase::Waiting),
        waiting: go(CanaryPhase::Evaluating),
        evaluating: go(CanaryPhase::Succeeded),
        terminating: go(CanaryPhase::Succeeded),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_phase_in_status_is_reported_not_fatal() {
    let (_server, client) = server().await;
    // An older operator version wrote a phase this one no longer declares; simulate it with a CRD whose
    // schema does not (yet) limit the phase names.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut loose = serde_json::to_value(autopilot::crd::<Canary>()).unwrap();
    let phase = &mut loose["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
        ["properties"]["phase"];
    phase.as_object_mut().unwrap().remove("enum");
    let name = Canary::crd_name();
    let current = crds.get(name).await.unwrap();
    loose["metadata"]["resourceVersion"] = json!(current.metadata.resource_version);
    crds.replace(
        name,
        &PostParams::default(),
        &serde_json::from_value(loose).unwrap(),
    )
    .await
    .unwrap();

    let api: Api<Canary> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &canary("legacy", "legacy"))
        .await
        .unwrap();
    wait_for("the loose schema to accept an unknown phase", || {
        let api = api.clone();
        async move {
            let patch = json!({"status": {"phase": "Paused", "observedGeneration": 1}});
            api.patch_status("legacy", &PatchParams::default(), &Patch::Merge(patch))
                .await
                .ok()
        }
    })
    .await;

    let operator = spawn(Operator::<Canary>::new(
        client.clone(),
        config(&client),
        handlers(),
    ));
    let reported = wait_for_canary(&client, "legacy", "an UnknownPhase condition", |c| {
        c.status
            .as_ref()
            .and_then(|s| s.condition(condition::DEGRADED))
            .is_some_and(|d| d.status == "True" && d.reason == condition::UNKNOWN_PHASE)
    })
    .await;
    let status = reported.status.as_ref().unwrap();
    assert_eq!(
        status.phase.as_ref().map(autopilot::PhaseValue::as_str),
        Some("Paused"),
        "left as found"
    );
    let degraded = status.condition(condition::DEGRADED).unwrap();
    assert!(
        degraded.message.contains("`Paused`"),
        "{}",
        degraded.message
    );
    wait_for("an UnknownPhase warning event", || {
        let client = client.clone();
        async move {
            events(&client, "legacy")
                .await
                .into_iter()
                .find(|(t, r, _)| t == "Warning" && r == "UnknownPhase")
        }
    })
    .await;

    // The operator keeps serving other objects...
    api.create(&PostParams::default(), &canary("fresh", "fresh"))
        .await
        .unwrap();
    wait_for_canary(&client, "fresh", "another object to finish", |c| {
        phase_of(c) == Some(CanaryPhase::Succeeded)
    })
    .await;
    // ...and a spec change restarts the unknown one from the initial phase.
    api.patch(
        "legacy",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"target": "legacy-v2"}})),
    )
    .await
    .unwrap();
    let restarted = wait_for_canary(&client, "legacy", "restart after a spec change", |c| {
        phase_of(c) == Some(CanaryPhase::Succeeded)
    })
    .await;
    let degraded = restarted
        .status
        .as_ref()
        .unwrap()
        .condition(condition::DEGRADED)
        .unwrap();
    assert_eq!(degraded.status, "False");
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_shows_phase_and_age_columns() {
    let (server, client) = server().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = crds.get(Canary::crd_name()).await.unwrap();
    let columns = crd.spec.versions[0]
        .additional_printer_columns
        .clone()
        .unwrap_or_default();
    let shown: Vec<(&str, &str, &str)> = columns
        .iter()
        .map(|c| (c.name.as_str(), c.type_.as_str(), c.json_path.as_str()))
        .collect();
    assert_eq!(
        shown,
        [
            ("Phase", "string", ".status.phase"),
            ("Age", "date", ".metadata.creationTimestamp")
        ]
    );

    // What `kubectl get` prints for an object the operator finished.
    let operator = spawn(Operator::<Canary>::new(
        client.clone(),
        config(&client),
        handlers(),
    ));
    let api: Api<Canary> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &canary("web", "web"))
        .await
        .unwrap();
    wait_for_canary(&client, "web", "Succeeded", |c| {
        phase_of(c) == Some(CanaryPhase::Succeeded)
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        serde_json::to_vec(server.kubeconfig()).unwrap(),
    )
    .unwrap();
    let out = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["get", "canaries"])
        .output()
        .await
        .expect("kubectl runs (scripts/test installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["NAME", "PHASE", "AGE"], "{text}");
    assert_eq!(&lines[1][..2], ["web", "Succeeded"], "{text}");
    operator.stop().await;
}
