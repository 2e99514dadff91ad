//! End-to-end behaviour of the runtime on the in-process API server.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may unwrap

mod common;

use std::{
    future::{Ready, ready},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use autopilot::{BoxError, Context, Operator, Transition, status::condition};
use common::*;
use k8s_openapi::api::{
    apps::v1::{Deployment, DeploymentStatus},
    core::v1::ConfigMap,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use serde_json::json;

type Outcome = Result<Transition<CanaryPhase>, BoxError>;

/// A synchronous handler that records its calls, then answers with `answer`.
fn step(
    calls: &Arc<Calls>,
    phase: CanaryPhase,
    answer: impl Fn(&Canary, &Context<Canary>) -> Outcome + Send + Sync + 'static,
) -> impl Fn(Arc<Canary>, Context<Canary>) -> Ready<Outcome> + Send + Sync + 'static {
    let calls = Arc::clone(calls);
    move |canary, ctx| {
        calls.record(phase, &canary.name_any());
        ready(answer(&canary, &ctx))
    }
}

fn next(
    phase: CanaryPhase,
) -> impl Fn(&Canary, &Context<Canary>) -> Outcome + Send + Sync + 'static {
    move |_, _| Ok(Transition::next(phase))
}

/// Handlers that walk Initializing → Waiting → Evaluating → Succeeded, setting the canary weight.
fn straight_through(
    calls: &Arc<Calls>,
) -> CanaryHandlers<
    impl autopilot::Phase<Canary>,
    impl autopilot::Phase<Canary>,
    impl autopilot::Phase<Canary>,
    impl autopilot::Phase<Canary>,
> {
    CanaryHandlers {
        initializing: step(calls, CanaryPhase::Initializing, next(CanaryPhase::Waiting)),
        waiting: step(calls, CanaryPhase::Waiting, next(CanaryPhase::Evaluating)),
        evaluating: step(calls, CanaryPhase::Evaluating, |_, ctx| {
            ctx.update_status(|f| f.canary_weight = 50);
            Ok(Transition::next(CanaryPhase::Succeeded).with_message("success rate 100%"))
        }),
        terminating: step(
            calls,
            CanaryPhase::Terminating,
            next(CanaryPhase::Succeeded),
        ),
    }
}

/// Handlers where Waiting runs `waiting` and every other phase moves straight on.
fn around_waiting<W: autopilot::Phase<Canary>>(
    calls: &Arc<Calls>,
    waiting: W,
) -> CanaryHandlers<
    impl autopilot::Phase<Canary>,
    W,
    impl autopilot::Phase<Canary>,
    impl autopilot::Phase<Canary>,
> {
    CanaryHandlers {
        initializing: step(calls, CanaryPhase::Initializing, next(CanaryPhase::Waiting)),
        waiting,
        evaluating: step(calls, CanaryPhase::Evaluating, next(CanaryPhase::Succeeded)),
        terminating: step(
            calls,
            CanaryPhase::Terminating,
            next(CanaryPhase::Succeeded),
        ),
    }
}

fn condition_of<'a>(canary: &'a Canary, type_: &str) -> (&'a str, &'a str) {
    let c = canary
        .status
        .as_ref()
        .and_then(|s| s.condition(type_))
        .unwrap_or_else(|| panic!("condition {type_} is set"));
    (c.status.as_str(), c.reason.as_str())
}

fn history(canary: &Canary) -> Vec<String> {
    canary
        .status
        .as_ref()
        .unwrap()
        .history
        .iter()
        .map(|h| h.phase.as_str().to_owned())
        .collect()
}

async fn create(client: &Client, canary: &Canary) {
    let api: Api<Canary> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), canary)
        .await
        .expect("canary created");
}

/// A server, an operator with [`straight_through`] handlers, and the Canary `name` run to Succeeded.
struct Finished {
    _server: autopilot_testkit::TestCluster,
    client: Client,
    calls: Arc<Calls>,
    operator: Running,
    canary: Canary,
}

async fn run_to_success(name: &str, target: &str) -> Finished {
    let (server, client) = server().await;
    let calls = Arc::new(Calls::default());
    let operator = spawn(Operator::<Canary>::new(
        client.clone(),
        config(&client),
        straight_through(&calls),
    ));
    create(&client, &canary(name, target)).await;
    let canary = wait_for_canary(&client, name, "Succeeded", |c| {
        phase_of(c) == Some(CanaryPhase::Succeeded)
    })
    .await;
    Finished {
        _server: server,
        client,
        calls,
        operator,
        canary,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walks_from_the_initial_to_a_final_phase_with_status_conditions_and_events() {
    let Finished {
        _server,
        client,
        calls,
        operator,
        canary: done,
    } = run_to_success("web", "web").await;
    let status = done.status.as_ref().unwrap();
    assert_eq!(status.observed_generation, done.metadata.generation);
    assert_eq!(
        history(&done),
        ["Initializing", "Waiting", "Evaluating", "Succeeded"]
    );
    assert_eq!(
        status.fields.canary_weight, 50,
        "the handler's own field is written with the phase"
    );
    assert_eq!(status.message.as_deref(), Some("success rate 100%"));
    assert!(status.last_transition_time.is_some());
    assert_eq!(condition_of(&done, condition::READY), ("True", "Succeeded"));
    assert_eq!(
        condition_of(&done, condition::PROGRESSING),
        ("False", "Succeeded")
    );
    assert_eq!(condition_of(&done, condition::DEGRADED).0, "False");
    // The finalizer is in place for the cleanup phase.
    assert!(
        done.finalizers()
            .iter()
            .any(|f| f == "e2e.autopilot.rs/autopilot-cleanup")
    );

    // One Event per transition, reason = the phase entered.
    let reasons = wait_for("four transition events", || {
        let client = client.clone();
        async move {
            let events = events(&client, "web").await;
            let reasons: Vec<String> = events.into_iter().map(|(_, reason, _)| reason).collect();
            (reasons.len() >= 4).then_some(reasons)
        }
    })
    .await;
    assert_eq!(
        reasons,
        ["Initializing", "Waiting", "Evaluating", "Succeeded"]
    );

    // Each handler ran once; the final phase runs nothing.
    for phase in [
        CanaryPhase::Initializing,
        CanaryPhase::Waiting,
        CanaryPhase::Evaluating,
    ] {
        assert_eq!(calls.count(phase, "web"), 1, "{phase} ran once");
    }
    operator.stop().await;
}

/// A valid Deployment (the API server refuses one without a selector and containers).
fn deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "app:1"}]},
            },
        },
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_of_a_watched_input_wakes_the_object() {
    let (_server, client) = server().await;
    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    let mut spec = deployment("api");
    spec.metadata.labels = Some([("app".to_owned(), "api".to_owned())].into());
    deployments
        .create(&PostParams::default(), &spec)
        .await
        .unwrap();

    let calls = Arc::new(Calls::default());
    let waiting = {
        let calls = Arc::clone(&calls);
        move |canary: Arc<Canary>, ctx: Context<Canary>| {
            let calls = Arc::clone(&calls);
            async move {
                calls.record(CanaryPhase::Waiting, &canary.name_any());
                let target: Deployment = ctx.api().get(&canary.spec.target).await?;
                let ready = target.status.and_then(|s| s.ready_replicas).unwrap_or(0);
                // No timer: only a change of the Deployment can bring this handler back.
                Ok::<_, BoxError>(if ready > 0 {
                    Transition::next(CanaryPhase::Succeeded)
                } else {
                    Transition::wait_for_change().with_message("waiting for a ready replica")
                })
            }
        }
    };
    let handlers = around_waiting(&calls, waiting);
    let operator = spawn(
        Operator::<Canary>::new(client.clone(), config(&client), handlers)
            .watches_input::<Deployment, _>(|canary| Some(canary.spec.target.clone())),
    );
    create(&client, &canary("api-canary", "api")).await;
    create(&client, &canary("other-canary", "other")).await;
    wait_for_canary(&client, "api-canary", "Waiting with a message", |c| {
        phase_of(c) == Some(CanaryPhase::Waiting)
            && c.status.as_ref().unwrap().message.as_deref() == Some("waiting for a ready replica")
    })
    .await;
    let waited = calls.count(CanaryPhase::Waiting, "api-canary");

    let status = DeploymentStatus {
        ready_replicas: Some(1),
        replicas: Some(1),
        ..DeploymentStatus::default()
    };
    deployments
        .patch_status(
            "api",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
        .unwrap();
    wait_for_canary(
        &client,
        "api-canary",
        "Succeeded after the input changed",
        |c| phase_of(c) == Some(CanaryPhase::Succeeded),
    )
    .await;
    assert!(calls.count(CanaryPhase::Waiting, "api-canary") > waited);
    // The other object does not read this Deployment, so it was not woken by it: it still waits for `other`.
    let other: Api<Canary> = Api::default_namespaced(client.clone());
    let other = other.get("other-canary").await.unwrap();
    assert_eq!(phase_of(&other), Some(CanaryPhase::Waiting));
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_change_restarts_at_the_initial_phase() {
    let Finished {
        _server,
        client,
        calls,
        operator,
        canary: first,
    } = run_to_success("shop", "shop-v1").await;
    assert_eq!(first.status.as_ref().unwrap().observed_generation, Some(1));

    let api: Api<Canary> = Api::default_namespaced(client.clone());
    api.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"target": "shop-v2"}})),
    )
    .await
    .unwrap();
    let second = wait_for_canary(&client, "shop", "second run", |c| {
        phase_of(c) == Some(CanaryPhase::Succeeded)
            && c.status.as_ref().unwrap().observed_generation == Some(2)
    })
    .await;
    assert_eq!(
        history(&second),
        [
            "Initializing",
            "Waiting",
            "Evaluating",
            "Succeeded",
            "Initializing",
            "Waiting",
            "Evaluating",
            "Succeeded"
        ]
    );
    assert_eq!(calls.count(CanaryPhase::Initializing, "shop"), 2);
    let restart = second.status.as_ref().unwrap().history[4]
        .message
        .clone()
        .unwrap_or_default();
    assert!(restart.contains("spec changed (generation 2)"), "{restart}");
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_error_backs_off_and_shows_a_condition_and_a_warning_event() {
    let (_server, client) = server().await;
    let calls = Arc::new(Calls::default());
    let broken = Arc::new(AtomicBool::new(true));
    let handlers = CanaryHandlers {
        initializing: step(
            &calls,
            CanaryPhase::Initializing,
            next(CanaryPhase::Waiting),
        ),
        waiting: step(&calls, CanaryPhase::Waiting, next(CanaryPhase::Evaluating)),
        evaluating: step(&calls, CanaryPhase::Evaluating, {
            let broken = Arc::clone(&broken);
            move |_, _| {
                if broken.load(Ordering::SeqCst) {
                    Err("prometheus unreachable".into())
                } else {
                    Ok(Transition::next(CanaryPhase::Succeeded))
                }
            }
        }),
        terminating: step(
            &calls,
            CanaryPhase::Terminating,
            next(CanaryPhase::Succeeded),
        ),
    };
    let operator = spawn(
        Operator::<Canary>::new(client.clone(), config(&client), handlers).backoff(fast_backoff()),
    );
    create(&client, &canary("flaky", "flaky")).await;

    let degraded = wait_for_canary(&client, "flaky", "Degraded=True", |c| {
        c.status
            .as_ref()
            .and_then(|s| s.condition(condition::DEGRADED))
            .is_some_and(|d| d.status == "True")
    })
    .await;
    let (_, reason) = condition_of(&degraded, condition::DEGRADED);
    assert_eq!(reason, condition::HANDLER_ERROR);
    let message = &degraded
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == condition::DEGRADED)
        .unwrap()
        .message;
    assert!(message.contains("prometheus unreachable"), "{message}");
    assert_eq!(phase_of(&degraded), Some(CanaryPhase::Evaluating));
    wait_for_event(
        &client,
        "flaky",
        ("Warning", "HandlerError", "prometheus unreachable"),
    )
    .await;

    // Retries keep coming, each later than the last: 100 ms, 200 ms, 400 ms, 800 ms apart at least.
    wait_for("five attempts", || async {
        (calls.count(CanaryPhase::Evaluating, "flaky") >= 5).then_some(())
    })
    .await;
    let times = calls.times(CanaryPhase::Evaluating, "flaky");
    for (i, pair) in times.windows(2).take(4).enumerate() {
        let gap = pair[1] - pair[0];
        let backoff = Duration::from_millis(100 << i);
        assert!(
            gap >= backoff,
            "attempt {} came after {gap:?}, before its backoff of {backoff:?}",
            i + 2
        );
    }

    // The repeated warnings fold into one Event whose series counts them.
    let folded = wait_for("the warning's series to count repeats", || {
        let events: Api<k8s_openapi::api::events::v1::Event> =
            Api::default_namespaced(client.clone());
        async move {
            let warnings: Vec<_> = events
                .list(&Default::default())
                .await
                .ok()?
                .items
                .into_iter()
                .filter(|e| e.reason.as_deref() == Some("HandlerError"))
                .collect();
            let count = warnings
                .first()
                .and_then(|e| e.series.as_ref())
                .map_or(1, |s| s.count);
            (count >= 2).then_some(warnings.len())
        }
    })
    .await;
    assert_eq!(folded, 1, "one Event for the same repeated error");

    // Once the handler recovers, the object moves on and the condition clears.
    broken.store(false, Ordering::SeqCst);
    let healed = wait_for_canary(&client, "flaky", "Succeeded", |c| {
        phase_of(c) == Some(CanaryPhase::Succeeded)
    })
    .await;
    assert_eq!(
        condition_of(&healed, condition::DEGRADED),
        ("False", condition::AS_EXPECTED)
    );
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_runs_the_finalizer_phase_once() {
    let Finished {
        _server,
        client,
        calls,
        operator,
        ..
    } = run_to_success("gone", "gone").await;

    let api: Api<Canary> = Api::default_namespaced(client.clone());
    api.delete("gone", &DeleteParams::default()).await.unwrap();
    wait_for("the object to go away", || {
        let api = api.clone();
        async move {
            matches!(api.get("gone").await, Err(kube::Error::Api(s)) if s.code == 404).then_some(())
        }
    })
    .await;
    assert_eq!(calls.count(CanaryPhase::Terminating, "gone"), 1);
    let reasons: Vec<String> = events(&client, "gone")
        .await
        .into_iter()
        .map(|(_, r, _)| r)
        .collect();
    assert!(reasons.iter().any(|r| r == "Terminating"), "{reasons:?}");
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_side_effect_and_status_write_reruns_the_handler() {
    let (_server, client) = server().await;
    let calls = Arc::new(Calls::default());
    let crash_once = Arc::new(AtomicBool::new(true));
    let side_effect_done = Arc::new(tokio::sync::Notify::new());
    let waiting = {
        let (calls, crash_once, side_effect_done) = (
            Arc::clone(&calls),
            Arc::clone(&crash_once),
            Arc::clone(&side_effect_done),
        );
        move |canary: Arc<Canary>, ctx: Context<Canary>| {
            let (calls, crash_once, side_effect_done) = (
                Arc::clone(&calls),
                Arc::clone(&crash_once),
                Arc::clone(&side_effect_done),
            );
            async move {
                calls.record(CanaryPhase::Waiting, &canary.name_any());
                // The side effect, written to be repeated safely: create the ConfigMap unless it exists.
                let mut cm = ConfigMap::default();
                cm.metadata.name = Some(format!("{}-routes", canary.name_any()));
                cm.metadata.owner_references = canary.controller_owner_ref(&()).map(|o| vec![o]);
                cm.data = Some([("weight".to_owned(), "10".to_owned())].into());
                match ctx
                    .api::<ConfigMap>()
                    .create(&PostParams::default(), &cm)
                    .await
                {
                    Err(kube::Error::Api(status)) if status.code == 409 => {} // done before the crash
                    other => drop(other?),
                }
                if crash_once.swap(false, Ordering::SeqCst) {
                    side_effect_done.notify_one();
                    // The process dies here, before the runtime records the transition.
                    std::future::pending::<()>().await;
                }
                Ok::<_, BoxError>(Transition::next(CanaryPhase::Succeeded))
            }
        }
    };
    let first = spawn(Operator::<Canary>::new(
        client.clone(),
        config(&client),
        around_waiting(&calls, waiting.clone()),
    ));
    create(&client, &canary("crashy", "crashy")).await;
    tokio::time::timeout(PATIENCE, side_effect_done.notified())
        .await
        .expect("side effect happens");
    first.crash();

    let api: Api<Canary> = Api::default_namespaced(client.clone());
    let before = api.get("crashy").await.unwrap();
    assert_eq!(
        phase_of(&before),
        Some(CanaryPhase::Waiting),
        "the transition was not recorded"
    );

    let second = spawn(Operator::<Canary>::new(
        client.clone(),
        config(&client),
        around_waiting(&calls, waiting),
    ));
    let done = wait_for_canary(&client, "crashy", "Succeeded after restart", |c| {
        phase_of(c) == Some(CanaryPhase::Succeeded)
    })
    .await;
    assert_eq!(
        calls.count(CanaryPhase::Waiting, "crashy"),
        2,
        "the handler re-ran in the same phase"
    );
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let cm = cms.get("crashy-routes").await.unwrap();
    let owner = &cm.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("Canary", done.uid().unwrap().as_str())
    );
    assert_eq!(owner.controller, Some(true));
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_are_applied_server_side_and_owned_by_the_object() {
    let (_server, client) = server().await;
    let calls = Arc::new(Calls::default());
    let waiting = |canary: Arc<Canary>, ctx: Context<Canary>| async move {
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some(format!("{}-routes", canary.name_any()));
        cm.data = Some([("target".to_owned(), canary.spec.target.clone())].into());
        ctx.apply_output(&cm).await?;
        Ok::<_, BoxError>(Transition::next(CanaryPhase::Succeeded))
    };
    let handlers = around_waiting(&calls, waiting);
    let operator = spawn(Operator::<Canary>::new(
        client.clone(),
        config(&client),
        handlers,
    ));
    create(&client, &canary("shop", "v1")).await;
    let done = wait_for_canary(&client, "shop", "Succeeded", |c| {
        phase_of(c) == Some(CanaryPhase::Succeeded)
    })
    .await;

    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let cm = cms.get("shop-routes").await.unwrap();
    assert_eq!(cm.data.as_ref().unwrap()["target"], "v1");
    let owner = &cm.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Canary", "shop")
    );
    assert_eq!(
        (owner.uid.as_str(), owner.controller),
        (done.uid().unwrap().as_str(), Some(true))
    );
    let managers: Vec<_> = cm
        .managed_fields()
        .iter()
        .map(|m| {
            (
                m.manager.clone().unwrap_or_default(),
                m.operation.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        managers.contains(&("canary-autopilot".into(), "Apply".into())),
        "{managers:?}"
    );

    // A field someone else owns survives the operator's next apply.
    let label = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shop-routes", "labels": {"team": "web"}}});
    cms.patch(
        "shop-routes",
        &PatchParams::apply("team-web"),
        &Patch::Apply(label),
    )
    .await
    .unwrap();
    let api: Api<Canary> = Api::default_namespaced(client.clone());
    api.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"target": "v2"}})),
    )
    .await
    .unwrap();
    let cm = wait_for("the output to follow the new spec", || {
        let cms = cms.clone();
        async move {
            cms.get("shop-routes")
                .await
                .ok()
                .filter(|cm| cm.data.as_ref().unwrap()["target"] == "v2")
        }
    })
    .await;
    assert_eq!(cm.labels().get("team").map(String::as_str), Some("web"));
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_enters_the_failure_phase_with_a_reason() {
    let (_server, client) = server().await;
    let calls = Arc::new(Calls::default());
    let handlers = CanaryHandlers {
        initializing: step(
            &calls,
            CanaryPhase::Initializing,
            next(CanaryPhase::Evaluating),
        ),
        waiting: step(&calls, CanaryPhase::Waiting, next(CanaryPhase::Evaluating)),
        evaluating: step(&calls, CanaryPhase::Evaluating, |_, _| {
            Ok(Transition::fail("success rate 91% < 99%"))
        }),
        terminating: step(
            &calls,
            CanaryPhase::Terminating,
            next(CanaryPhase::Succeeded),
        ),
    };
    let operator = spawn(Operator::<Canary>::new(
        client.clone(),
        config(&client),
        handlers,
    ));
    create(&client, &canary("bad", "bad")).await;
    let failed = wait_for_canary(&client, "bad", "Failed", |c| {
        phase_of(c) == Some(CanaryPhase::Failed)
    })
    .await;
    let status = failed.status.as_ref().unwrap();
    assert_eq!(status.message.as_deref(), Some("success rate 91% < 99%"));
    assert_eq!(
        condition_of(&failed, condition::DEGRADED),
        ("True", condition::FAILED)
    );
    assert_eq!(condition_of(&failed, condition::READY).0, "False");
    let warning = wait_for_event(&client, "bad", ("Warning", "Failed", "")).await;
    assert!(warning.contains("success rate 91% < 99%"), "{warning:?}");
    assert_eq!(
        calls.count(CanaryPhase::Evaluating, "bad"),
        1,
        "a failed object is final"
    );
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_bounds_the_handlers_running_at_once() {
    let (_server, client) = server().await;
    let running = Counter::default();
    let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let calls = Arc::new(Calls::default());
    let waiting = {
        let (running, peak) = (running.clone(), Arc::clone(&peak));
        move |_: Arc<Canary>, _: Context<Canary>| {
            let (running, peak) = (running.clone(), Arc::clone(&peak));
            async move {
                peak.fetch_max(running.bump(), Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                running.drop_one();
                Ok::<_, BoxError>(Transition::next(CanaryPhase::Succeeded))
            }
        }
    };
    let handlers = around_waiting(&calls, waiting);
    let operator =
        spawn(Operator::<Canary>::new(client.clone(), config(&client), handlers).concurrency(2));
    for i in 0..8 {
        create(&client, &canary(&format!("c{i}"), "t")).await;
    }
    for i in 0..8 {
        wait_for_canary(&client, &format!("c{i}"), "Succeeded", |c| {
            phase_of(c) == Some(CanaryPhase::Succeeded)
        })
        .await;
    }
    let peak = peak.load(Ordering::SeqCst);
    assert!(
        (1..=2).contains(&peak),
        "{peak} handlers ran at once with concurrency 2"
    );
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_is_an_error_not_a_crash() {
    let (_server, client) = server().await;
    let calls = Arc::new(Calls::default());
    let waiting = step(&calls, CanaryPhase::Waiting, {
        let calls = Arc::clone(&calls);
        move |canary, _| {
            assert!(
                calls.count(CanaryPhase::Waiting, &canary.name_any()) > 1,
                "index out of range"
            );
            Ok(Transition::next(CanaryPhase::Succeeded))
        }
    });
    let operator = spawn(
        Operator::<Canary>::new(
            client.clone(),
            config(&client),
            around_waiting(&calls, waiting),
        )
        .backoff(fast_backoff()),
    );
    create(&client, &canary("panicky", "p")).await;
    wait_for_event(
        &client,
        "panicky",
        ("Warning", "HandlerError", "panicked: index out of range"),
    )
    .await;
    // The operator survived and retried.
    let done = wait_for_canary(&client, "panicky", "Succeeded", |c| {
        phase_of(c) == Some(CanaryPhase::Succeeded)
    })
    .await;
    assert_eq!(condition_of(&done, condition::DEGRADED).0, "False");
    assert_eq!(calls.count(CanaryPhase::Waiting, "panicky"), 2);
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_update_while_staying_does_not_run_the_handler_again_early() {
    let (_server, client) = server().await;
    let calls = Arc::new(Calls::default());
    let waiting = step(&calls, CanaryPhase::Waiting, |canary, ctx| {
        if canary.spec.target == "through" {
            return Ok(Transition::next(CanaryPhase::Succeeded));
        }
        // One traffic step per hour: the write of the new weight must not bring the handler back.
        let weight = ctx.status_fields().canary_weight + 10;
        ctx.update_status(|f| f.canary_weight = weight);
        Ok(Transition::stay_for(Duration::from_secs(3600))
            .with_message(format!("weight {weight}%")))
    });
    let operator = spawn(Operator::<Canary>::new(
        client.clone(),
        config(&client),
        around_waiting(&calls, waiting),
    ));
    create(&client, &canary("steady", "steady")).await;
    wait_for_canary(&client, "steady", "the first step", |c| {
        c.status
            .as_ref()
            .is_some_and(|s| s.fields.canary_weight == 10)
    })
    .await;
    // Give the operator more work and let it finish, so the first object's own write has been seen.
    create(&client, &canary("other", "through")).await;
    wait_for_canary(&client, "other", "Succeeded", |c| {
        phase_of(c) == Some(CanaryPhase::Succeeded)
    })
    .await;
    let api: Api<Canary> = Api::default_namespaced(client.clone());
    let steady = api.get("steady").await.unwrap();
    assert_eq!(steady.status.as_ref().unwrap().fields.canary_weight, 10);
    assert_eq!(calls.count(CanaryPhase::Waiting, "steady"), 1);
    operator.stop().await;
}

/// Counts reconciles of one object.
#[derive(Default)]
struct Reconciles {
    of: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

impl Reconciles {
    fn count(&self, name: &str) -> usize {
        self.of.lock().unwrap().get(name).copied().unwrap_or(0)
    }
}

impl autopilot::runtime::ObserveHooks for Reconciles {
    fn reconcile_started(&self, key: &autopilot::runtime::ObjectKey<'_>) {
        *self
            .of
            .lock()
            .unwrap()
            .entry(key.name.to_owned())
            .or_default() += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phase_changes_continue_in_the_same_reconcile_up_to_a_bound() {
    let (_server, client) = server().await;
    let calls = Arc::new(Calls::default());
    let reconciles = Arc::new(Reconciles::default());
    // Waiting ⇄ Evaluating for ever: every handler run is a phase change.
    let handlers = CanaryHandlers {
        initializing: step(
            &calls,
            CanaryPhase::Initializing,
            next(CanaryPhase::Waiting),
        ),
        waiting: step(&calls, CanaryPhase::Waiting, next(CanaryPhase::Evaluating)),
        evaluating: step(&calls, CanaryPhase::Evaluating, next(CanaryPhase::Waiting)),
        terminating: step(
            &calls,
            CanaryPhase::Terminating,
            next(CanaryPhase::Succeeded),
        ),
    };
    let operator = spawn(
        Operator::<Canary>::new(client.clone(), config(&client), handlers)
            .observe(reconciles.clone()),
    );
    create(&client, &canary("cycle", "cycle")).await;
    let runs = || {
        calls.count(CanaryPhase::Waiting, "cycle") + calls.count(CanaryPhase::Evaluating, "cycle")
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while runs() < 40 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} runs",
            runs()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    operator.stop().await;
    let (runs, reconciles) = (runs(), reconciles.count("cycle"));
    // Several handlers per reconcile, but at most eight before the object goes back to the queue.
    assert!(reconciles < runs, "{reconciles} reconciles for {runs} runs");
    assert!(
        reconciles * 8 >= runs,
        "{reconciles} reconciles for {runs} runs"
    );
}
