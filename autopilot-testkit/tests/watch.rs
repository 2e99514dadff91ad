//! Watches through the real kube client and kube-runtime's watcher: ordering, bookmarks, 410 Expired and
//! re-listing after compaction.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, WatchEvent, WatchParams};
use kube::runtime::watcher;
use serde_json::json;

use autopilot_testkit::{ApiServer, ServerOptions};

mod common;

use common::{DEADLINE, created, next};

fn rv(cm: &ConfigMap) -> String {
    cm.metadata.resource_version.clone().unwrap()
}

#[tokio::test]
async fn a_watch_from_a_resource_version_sees_later_changes_in_order() {
    let server = ApiServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let first = created(&api, "a").await;
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { "n": "1" } })),
    )
    .await
    .unwrap();
    created(&api, "b").await;
    api.delete("a", &DeleteParams::default()).await.unwrap();

    let mut stream = api
        .watch(&WatchParams::default().timeout(30), &rv(&first))
        .await
        .unwrap()
        .boxed();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let event = next(&mut stream).await.unwrap();
        seen.push(match event {
            WatchEvent::Added(cm) => format!("ADDED {}", cm.metadata.name.unwrap()),
            WatchEvent::Modified(cm) => format!("MODIFIED {}", cm.metadata.name.unwrap()),
            WatchEvent::Deleted(cm) => format!("DELETED {}", cm.metadata.name.unwrap()),
            other => panic!("unexpected {other:?}"),
        });
    }
    assert_eq!(seen, vec!["MODIFIED a", "ADDED b", "DELETED a"]);
}

#[tokio::test]
async fn bookmarks_carry_the_latest_resource_version() {
    let options = ServerOptions::default().bookmark_interval(Duration::from_millis(50));
    let server = ApiServer::start_with(options).await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let first = created(&api, "a").await;
    let mut stream = api
        .watch(&WatchParams::default().timeout(30), &rv(&first))
        .await
        .unwrap()
        .boxed();
    let event = next(&mut stream).await.unwrap();
    match event {
        WatchEvent::Bookmark(bookmark) => {
            assert_eq!(bookmark.metadata.resource_version, rv(&first))
        }
        other => panic!("expected a bookmark, got {other:?}"),
    }
}

#[tokio::test]
async fn a_watch_ends_after_its_timeout() {
    let server = ApiServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let first = created(&api, "a").await;
    let mut stream = api
        .watch(&WatchParams::default().timeout(1), &rv(&first))
        .await
        .unwrap()
        .boxed();
    let end = next(&mut stream).await;
    assert!(end.is_none(), "the stream ends without events: {end:?}");
}

#[tokio::test]
async fn a_watch_from_a_compacted_resource_version_gets_410_expired() {
    let server = ApiServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let first = created(&api, "a").await;
    created(&api, "b").await;
    server.faults().compact();
    let mut stream = api
        .watch(&WatchParams::default(), &rv(&first))
        .await
        .unwrap()
        .boxed();
    match next(&mut stream).await.unwrap() {
        WatchEvent::Error(status) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
}

#[tokio::test]
async fn kube_runtime_watcher_relists_after_410_and_carries_on() {
    let server = ApiServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    created(&api, "before").await;
    let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
    let mut relisted = 0;
    let mut saw_after = false;
    let mut errors = 0;
    let until = tokio::time::Instant::now() + DEADLINE;
    let mut cut = false;
    while !saw_after {
        let next = tokio::time::timeout_at(until, events.next())
            .await
            .expect("watcher stalled")
            .unwrap();
        match next {
            Ok(watcher::Event::InitDone) => {
                relisted += 1;
                if !cut {
                    // The watcher now watches from the list's resourceVersion: make that history vanish
                    // while it is disconnected, so its resumed watch gets 410 Expired.
                    cut = true;
                    created(&api, "during").await;
                    server.faults().compact();
                    server.faults().cut_watches();
                } else {
                    created(&api, "after").await;
                }
            }
            Ok(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm)) => {
                if cm.metadata.name.as_deref() == Some("after") {
                    saw_after = true;
                }
            }
            Ok(_) => {}
            Err(_) => errors += 1,
        }
    }
    assert!(
        relisted >= 2,
        "the watcher re-listed after the 410 (lists: {relisted})"
    );
    assert!(errors >= 1, "the 410 surfaced as a watcher error");
}

#[tokio::test]
async fn streaming_lists_send_initial_events_then_a_marked_bookmark() {
    let server = ApiServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    created(&api, "a").await;
    let mut events = watcher(api.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut initial = Vec::new();
    loop {
        match next(&mut events).await.unwrap() {
            watcher::Event::InitApply(cm) => initial.push(cm.metadata.name.unwrap()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(initial, vec!["a", "kube-root-ca.crt"]);
    created(&api, "b").await;
    loop {
        if let watcher::Event::Apply(cm) = next(&mut events).await.unwrap() {
            assert_eq!(cm.metadata.name.as_deref(), Some("b"));
            break;
        }
    }
}
