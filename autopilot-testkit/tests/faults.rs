//! Fault injection and restarts: failing requests, latency, cut watches, and state kept across a restart.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};

use autopilot_testkit::ApiServer;

mod common;

use common::{DEADLINE, api_error, config_map, created, eventually, next};

fn code(error: kube::Error) -> (u16, String) {
    let status = api_error(error);
    (status.code, status.reason)
}

#[tokio::test]
async fn the_next_requests_fail_with_the_injected_codes() {
    let server = ApiServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    server.faults().fail_next(1, 500);
    server.faults().fail_next(1, 409);
    assert_eq!(
        code(api.get("kubernetes").await.unwrap_err()),
        (500, "InternalError".into())
    );
    assert_eq!(
        code(
            api.create(&PostParams::default(), &config_map("a"))
                .await
                .unwrap_err()
        ),
        (409, "Conflict".into())
    );
    assert_eq!(server.faults().pending_failures(), 0);
    // The kube client honours 429 + Retry-After and retries on its own.
    server.faults().fail_next(1, 429);
    assert!(api.get_opt("kubernetes").await.unwrap().is_none());
    assert_eq!(server.faults().pending_failures(), 0);
    created(&api, "a").await;
}

#[tokio::test]
async fn cut_watches_end_and_watchers_resume_without_losing_events() {
    let server = ApiServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let first = created(&api, "a").await;
    let mut stream = api
        .watch(
            &WatchParams::default(),
            &first.metadata.resource_version.unwrap(),
        )
        .await
        .unwrap()
        .boxed();
    server.faults().cut_watches();
    let end = next(&mut stream).await;
    assert!(end.is_none(), "the cut stream ends: {end:?}");

    let (reader, writer) = reflector::store::<ConfigMap>();
    let reflect = watcher(api.clone(), watcher::Config::default())
        .reflect(writer)
        .applied_objects();
    let task = tokio::spawn(reflect.for_each(|_| async {}));
    reader.wait_until_ready().await.unwrap();
    for round in 0..5 {
        created(&api, &format!("r{round}")).await;
        server.faults().cut_watches();
    }
    eventually("the reflector saw every object", || async {
        let names: Vec<String> = reader
            .state()
            .iter()
            .filter_map(|cm| cm.metadata.name.clone())
            .collect();
        ["a", "r0", "r1", "r2", "r3", "r4"]
            .iter()
            .all(|name| names.iter().any(|n| n == name))
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn latency_delays_requests_but_they_succeed() {
    let server = ApiServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    server.faults().set_latency(Duration::from_millis(20));
    created(&api, "slow").await;
    server.faults().clear();
    assert!(api.get_opt("slow").await.unwrap().is_some());
}

#[tokio::test]
async fn a_restarted_server_keeps_its_state_and_port() {
    let mut server = ApiServer::start().await.unwrap();
    let url = server.url().to_string();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let kept_before = created(&api, "kept").await;
    let rv = kept_before.metadata.resource_version.clone().unwrap();
    let mut stream = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();

    server.restart().await.unwrap();
    assert_eq!(server.url(), url);
    let end = tokio::time::timeout(DEADLINE, stream.try_next())
        .await
        .unwrap();
    assert!(
        !matches!(end, Ok(Some(WatchEvent::Added(_)))),
        "open watches end on restart"
    );

    let kept = api.get("kept").await.unwrap();
    assert_eq!(kept.metadata.uid, kept_before.metadata.uid);
    let after = created(&api, "after").await;
    let number = |v: &Option<String>| v.as_deref().unwrap().parse::<u64>().unwrap();
    assert!(
        number(&after.metadata.resource_version) > number(&kept_before.metadata.resource_version)
    );
    // A watch resumed from before the restart still replays what happened since.
    let mut resumed = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match next(&mut resumed).await.unwrap() {
        WatchEvent::Added(cm) => assert_eq!(cm.metadata.name.as_deref(), Some("after")),
        other => panic!("{other:?}"),
    }
}
