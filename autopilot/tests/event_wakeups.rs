//! External events wake the objects they concern through the operator, over real HTTP on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may unwrap

mod common;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use autopilot::{
    BoxError, Context, Operator, Phase, Transition,
    sources::{self, EventSender, ExternalEvent, cloudevents, github},
};
use common::*;
use kube::{Client, ResourceExt};
use serde_json::json;

/// Far beyond any test: a canary woken before this was woken by an event.
const AN_HOUR: Duration = Duration::from_secs(3600);

/// One run of the Waiting handler: which canary, the ids of the events it saw, and how it ended.
#[derive(Clone, Debug)]
struct Run {
    canary: String,
    events: Vec<ExternalEvent>,
    failed: bool,
}

/// The Waiting handler's runs; an event whose data says `"fail": "error"` (or `"panic"`) makes the first run
/// that sees it return an error (or panic).
#[derive(Default)]
struct Runs {
    runs: Mutex<Vec<Run>>,
    failures: Mutex<HashMap<String, usize>>,
}

impl Runs {
    fn of(&self, canary: &str) -> Vec<Run> {
        let runs = self.runs.lock().unwrap();
        runs.iter()
            .filter(|r| r.canary == canary)
            .cloned()
            .collect()
    }

    fn count(&self, canary: &str) -> usize {
        self.of(canary).len()
    }

    /// The runs of `canary` that saw the event `id`.
    fn saw(&self, canary: &str, id: &str) -> Vec<Run> {
        let runs = self.of(canary);
        runs.into_iter()
            .filter(|r| r.events.iter().any(|e| e.id == id))
            .collect()
    }

    /// Records a run; `Some((how, event id))` when it is to fail.
    fn waiting(&self, canary: &Canary, ctx: &Context<Canary>) -> Option<(String, String)> {
        let events = ctx.events().to_vec();
        let failing = events.iter().find_map(|e| {
            let how = e.data["fail"].as_str()?;
            let mut failures = self.failures.lock().unwrap();
            let seen = failures.entry(e.id.clone()).or_default();
            *seen += 1;
            (*seen == 1).then(|| (how.to_owned(), e.id.clone()))
        });
        self.runs.lock().unwrap().push(Run {
            canary: canary.name_any(),
            events,
            failed: failing.is_some(),
        });
        failing
    }
}

fn handlers(
    runs: &Arc<Runs>,
) -> CanaryHandlers<impl Phase<Canary>, impl Phase<Canary>, impl Phase<Canary>, impl Phase<Canary>>
{
    let runs = Arc::clone(runs);
    let moving_to = |phase: CanaryPhase| {
        move |_: Arc<Canary>, _: Context<Canary>| async move {
            Ok::<_, BoxError>(Transition::next(phase))
        }
    };
    CanaryHandlers {
        initializing: moving_to(CanaryPhase::Waiting),
        waiting: move |canary: Arc<Canary>, ctx: Context<Canary>| {
            let failing = runs.waiting(&canary, &ctx);
            async move {
                match failing {
                    Some((how, id)) if how == "panic" => panic!("cannot handle event {id}"),
                    Some((_, id)) => Err(format!("cannot handle event {id} yet").into()),
                    None => Ok::<_, BoxError>(Transition::stay_for(AN_HOUR)),
                }
            }
        },
        evaluating: moving_to(CanaryPhase::Succeeded),
        terminating: moving_to(CanaryPhase::Succeeded),
    }
}

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

/// An HTTP client; plain HTTP needs no TLS, but reqwest wants a crypto provider chosen.
fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// Creates the canaries `(name, target)` and waits until each has settled in Waiting for an hour.
async fn settled(client: &Client, runs: &Runs, canaries: &[(&str, &str)]) {
    for (name, target) in canaries {
        let api = kube::Api::<Canary>::default_namespaced(client.clone());
        api.create(&Default::default(), &canary(name, target))
            .await
            .unwrap();
    }
    for (name, _) in canaries {
        wait_for(&format!("{name} to run its Waiting handler"), || async {
            (runs.count(name) > 0).then_some(())
        })
        .await;
    }
}

/// Starts an operator woken by events on a new channel mapped with `map`; returns the channel's sender.
fn operator(
    client: &Client,
    runs: &Arc<Runs>,
    map: impl Fn(
        &ExternalEvent,
        &kube::runtime::reflector::Store<Canary>,
    ) -> Vec<kube::runtime::reflector::ObjectRef<Canary>>
    + Send
    + 'static,
) -> (EventSender, Running) {
    let (events, received) = sources::channel(64);
    let operator = Operator::new(client.clone(), config(client), handlers(runs))
        .backoff(fast_backoff())
        .reconcile_on(received, map);
    (events, spawn(operator))
}

#[tokio::test]
async fn a_cloudevent_wakes_exactly_the_canary_it_names() {
    let (_server, client) = server().await;
    let runs = Arc::new(Runs::default());
    let (events, _running) = operator(&client, &runs, sources::by_name());
    let url = serve(axum::Router::new().nest("/events", cloudevents::router(events))).await;
    settled(&client, &runs, &[("alpha", "web"), ("beta", "web")]).await;
    let (alpha_before, beta_before) = (runs.count("alpha"), runs.count("beta"));

    let ns = client.default_namespace().to_owned();
    let post = |id: &'static str, name: &str| {
        let subject = format!("{ns}/{name}");
        http()
            .post(format!("{url}/events"))
            .header("ce-specversion", "1.0")
            .header("ce-id", id)
            .header("ce-source", "/ci/pipeline")
            .header("ce-type", "com.example.build.finished")
            .header("ce-subject", subject.clone())
            .header("content-type", "application/json")
            .body(json!({"build": 7, "for": subject}).to_string())
            .send()
    };
    assert_eq!(post("ce-1", "alpha").await.unwrap().status(), 202);
    wait_for("alpha to see event ce-1", || async {
        (!runs.saw("alpha", "ce-1").is_empty()).then_some(())
    })
    .await;
    let seen = &runs.saw("alpha", "ce-1")[0].events;
    assert_eq!(seen.len(), 1, "only the event that woke it: {seen:?}");
    assert_eq!(seen[0].kind, "com.example.build.finished");
    assert_eq!(
        seen[0].data,
        json!({"build": 7, "for": format!("{ns}/alpha")})
    );

    // The next event wakes beta; events go through in order, so had ce-1 woken beta, it would have by now.
    assert_eq!(post("ce-2", "beta").await.unwrap().status(), 202);
    wait_for("beta to see event ce-2", || async {
        (!runs.saw("beta", "ce-2").is_empty()).then_some(())
    })
    .await;
    assert_eq!(
        runs.count("beta"),
        beta_before + 1,
        "beta woke once, for ce-2"
    );
    assert!(runs.saw("beta", "ce-1").is_empty());
    // Alpha woke once, and the event it handled was not shown again.
    assert_eq!(runs.count("alpha"), alpha_before + 1);
    assert!(runs.saw("alpha", "ce-2").is_empty());

    // An event naming no canary wakes none.
    assert_eq!(post("ce-3", "nobody").await.unwrap().status(), 202);
    assert_eq!(post("ce-4", "alpha").await.unwrap().status(), 202);
    wait_for("alpha to see event ce-4", || async {
        (!runs.saw("alpha", "ce-4").is_empty()).then_some(())
    })
    .await;
    assert_eq!(runs.count("beta"), beta_before + 1);
    assert!(
        runs.of("alpha")
            .iter()
            .all(|r| r.events.iter().all(|e| e.id != "ce-3"))
    );
}

#[tokio::test]
async fn a_signed_github_webhook_wakes_the_canary_of_its_repository_and_a_forged_one_nothing() {
    let (_server, client) = server().await;
    let runs = Arc::new(Runs::default());
    // A canary listens to the repository its target names.
    let by_repository = sources::by_key(|canary: &Canary| Some(canary.spec.target.clone()));
    let (events, _running) = operator(&client, &runs, by_repository);
    let secret = github::WebhookSecret::new("hush");
    let url =
        serve(axum::Router::new().nest("/webhooks/github", github::router(secret.clone(), events)))
            .await;
    settled(
        &client,
        &runs,
        &[("gamma", "team/app"), ("delta", "team/other")],
    )
    .await;
    let (gamma_before, delta_before) = (runs.count("gamma"), runs.count("delta"));

    let body =
        json!({"ref": "refs/heads/main", "repository": {"full_name": "team/app"}}).to_string();
    let post = |delivery: &'static str, signature: String| {
        http()
            .post(format!("{url}/webhooks/github"))
            .header("X-GitHub-Event", "push")
            .header("X-GitHub-Delivery", delivery)
            .header("X-Hub-Signature-256", signature)
            .body(body.clone())
            .send()
    };
    let forged = github::signature(&github::WebhookSecret::new("guess"), body.as_bytes());
    assert_eq!(post("d-forged", forged).await.unwrap().status(), 401);
    let signed = github::signature(&secret, body.as_bytes());
    assert_eq!(post("d-1", signed).await.unwrap().status(), 202);

    wait_for("gamma to see delivery d-1", || async {
        (!runs.saw("gamma", "d-1").is_empty()).then_some(())
    })
    .await;
    let seen = &runs.saw("gamma", "d-1")[0].events;
    assert_eq!(seen.len(), 1, "the forged delivery never arrived: {seen:?}");
    assert_eq!(
        (seen[0].source.as_str(), seen[0].kind.as_str()),
        ("github", "push")
    );
    assert_eq!(seen[0].data["ref"], "refs/heads/main");
    assert_eq!(
        runs.count("gamma"),
        gamma_before + 1,
        "one wake-up, for the signed delivery"
    );
    assert_eq!(
        runs.count("delta"),
        delta_before,
        "another repository's canary sleeps on"
    );
}

/// An event for epsilon (in `namespace`) whose data is `data`.
fn alert(namespace: &str, id: &str, data: serde_json::Value) -> ExternalEvent {
    ExternalEvent {
        source: "/alerts".into(),
        kind: "alert".into(),
        id: id.into(),
        subject: Some(format!("{namespace}/epsilon")),
        time: None,
        data,
    }
}

/// Waits until a run of epsilon that saw event `id` succeeded; returns whether each run that saw it failed.
async fn handled(runs: &Runs, id: &str) -> Vec<bool> {
    wait_for(&format!("a successful run to see event {id}"), || async {
        let saw = runs.saw("epsilon", id);
        saw.iter()
            .any(|r| !r.failed)
            .then(|| saw.iter().map(|r| r.failed).collect())
    })
    .await
}

#[tokio::test]
async fn an_event_the_handler_fails_on_is_seen_again_on_the_retry() {
    let (_server, client) = server().await;
    let runs = Arc::new(Runs::default());
    let (events, _running) = operator(&client, &runs, sources::by_name());
    settled(&client, &runs, &[("epsilon", "web")]).await;

    events
        .send(alert(
            client.default_namespace(),
            "a-1",
            json!({"fail": "error"}),
        ))
        .await
        .unwrap();
    assert_eq!(
        handled(&runs, "a-1").await,
        [true, false],
        "failed once, then seen again and handled"
    );

    // A panicking handler keeps its events too; the handled a-1 is not shown again.
    events
        .send(alert(
            client.default_namespace(),
            "a-2",
            json!({"fail": "panic"}),
        ))
        .await
        .unwrap();
    assert_eq!(
        handled(&runs, "a-2").await,
        [true, false],
        "panicked once, then seen again and handled"
    );
    for run in runs.saw("epsilon", "a-2") {
        let ids: Vec<&str> = run.events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["a-2"]);
    }
}
