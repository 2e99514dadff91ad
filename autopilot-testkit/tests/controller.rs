//! A kube-runtime `Controller` running against the server, reacting to creates, updates and deletes.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::{finalizer, watcher};
use serde_json::json;
use tokio::sync::mpsc;

use autopilot_testkit::ApiServer;

mod common;

use common::{DEADLINE, eventually};

const FINALIZER: &str = "example.com/mirror";

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Failure(String);

struct Context {
    api: Api<ConfigMap>,
    seen: mpsc::UnboundedSender<String>,
}

/// Mirrors `data.value` of every config map labelled `mirror=yes` into `<name>-mirror`, and deletes the
/// mirror (via a finalizer) when the source goes.
async fn reconcile(
    source: Arc<ConfigMap>,
    ctx: Arc<Context>,
) -> Result<Action, finalizer::Error<Failure>> {
    let labelled = source
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("mirror"))
        .is_some_and(|v| v == "yes");
    if !labelled {
        return Ok(Action::await_change());
    }
    finalizer(&ctx.api, FINALIZER, source, |event| async {
        match event {
            finalizer::Event::Apply(source) => {
                let name = source.metadata.name.clone().unwrap_or_default();
                let value = source.data.as_ref().and_then(|d| d.get("value")).cloned().unwrap_or_default();
                let mirror = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": format!("{name}-mirror") }, "data": { "value": value } });
                ctx.api
                    .patch(&format!("{name}-mirror"), &PatchParams::default(), &Patch::Merge(&mirror))
                    .await
                    .or(ctx.api.create(&PostParams::default(), &serde_json::from_value(mirror).unwrap()).await)
                    .map_err(|e| Failure(e.to_string()))?;
                let _ = ctx.seen.send(format!("apply {name} {value}"));
                Ok(Action::await_change())
            }
            finalizer::Event::Cleanup(source) => {
                let name = source.metadata.name.clone().unwrap_or_default();
                match ctx.api.delete(&format!("{name}-mirror"), &DeleteParams::default()).await {
                    Ok(_) | Err(kube::Error::Api(_)) => {}
                    Err(e) => return Err(Failure(e.to_string())),
                }
                let _ = ctx.seen.send(format!("cleanup {name}"));
                Ok(Action::await_change())
            }
        }
    })
    .await
}

fn error_policy(_: Arc<ConfigMap>, _: &finalizer::Error<Failure>, _: Arc<Context>) -> Action {
    Action::requeue(Duration::from_millis(100))
}

async fn wait_for(seen: &mut mpsc::UnboundedReceiver<String>, expected: &str) {
    let until = tokio::time::Instant::now() + DEADLINE;
    loop {
        let next = tokio::time::timeout_at(until, seen.recv()).await;
        match next {
            Ok(Some(line)) if line == expected => return,
            Ok(Some(_)) => {}
            other => panic!("never saw {expected:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_controller_reacts_to_creates_updates_and_deletes() {
    let server = ApiServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let (tx, mut seen) = mpsc::unbounded_channel();
    let ctx = Arc::new(Context {
        api: api.clone(),
        seen: tx,
    });
    let controller = Controller::new(api.clone(), watcher::Config::default().labels("mirror=yes"))
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {});
    let controller = tokio::spawn(controller);

    let source: ConfigMap = serde_json::from_value(
        json!({ "metadata": { "name": "src", "labels": { "mirror": "yes" } }, "data": { "value": "one" } }),
    )
    .unwrap();
    api.create(&PostParams::default(), &source).await.unwrap();
    wait_for(&mut seen, "apply src one").await;
    assert_eq!(
        api.get("src-mirror").await.unwrap().data.unwrap()["value"],
        "one"
    );

    api.patch(
        "src",
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { "value": "two" } })),
    )
    .await
    .unwrap();
    wait_for(&mut seen, "apply src two").await;
    assert_eq!(
        api.get("src-mirror").await.unwrap().data.unwrap()["value"],
        "two"
    );

    api.delete("src", &DeleteParams::default()).await.unwrap();
    wait_for(&mut seen, "cleanup src").await;
    eventually(
        "the source is released once the finalizer is removed",
        || async { api.get_opt("src").await.unwrap().is_none() },
    )
    .await;
    assert!(api.get_opt("src-mirror").await.unwrap().is_none());
    controller.abort();
}
