//! One handler per phase. Each looks at the world as it is (level-triggered) and is safe to run
//! again: the runtime records the returned transition only after the handler returned.

use std::sync::Arc;
use std::time::Duration;

use autopilot::{Context, Transition};
use autopilot_mesh::{Route, TrafficRouter};
use autopilot_metrics::{
    BuiltinMetric, MetricCheck, PrometheusClient, Provider, QueryTemplate, ThresholdRange,
    Variables,
};
use kube::runtime::events::EventType;

use super::spec::{Canary, CanaryFields, CanaryHandlers, CanaryPhase, WebhookType};
use super::webhooks::{self, Payload};
use super::workloads;

/// How often a phase waiting on a Deployment rollout looks again.
const ROLLOUT_POLL: Duration = Duration::from_secs(1);

type Next = anyhow::Result<Transition<CanaryPhase>>;

/// What the handlers need besides the object: injected once into the operator.
#[derive(Clone, Debug)]
pub struct Deps {
    /// Routes traffic on the configured mesh.
    pub router: Arc<dyn TrafficRouter>,
    /// Answers metric queries.
    pub prometheus: PrometheusClient,
    /// Which built-in queries fit the mesh (`None`: every metric needs its own query).
    pub queries: Option<Provider>,
    /// Calls webhooks.
    pub http: reqwest::Client,
}

/// The handlers of every phase.
#[must_use]
pub fn handlers() -> impl autopilot::Handlers<Canary> {
    CanaryHandlers {
        initializing,
        initialized,
        waiting: await_revision,
        progressing,
        promoting,
        finalising,
        succeeded: await_revision,
        failed: await_revision,
        terminating,
    }
}

fn deps(ctx: &Context<Canary>) -> anyhow::Result<&Deps> {
    Ok(ctx.require::<Deps>()?)
}

fn route(canary: &Canary) -> anyhow::Result<Route> {
    let port = u16::try_from(canary.spec.service.port)?;
    Ok(Route::owned_by(
        canary,
        canary.spec.target_ref.name.clone(),
        port,
    )?)
}

fn interval(canary: &Canary) -> anyhow::Result<Duration> {
    autopilot::config::parse_duration(&canary.spec.analysis.interval)
        .map_err(|error| anyhow::anyhow!("analysis.interval: {error}"))
}

/// Problems with a spec that no retry can fix.
fn validate(canary: &Canary) -> Result<(), String> {
    let analysis = &canary.spec.analysis;
    interval(canary).map_err(|error| error.to_string())?;
    if analysis.step_weight.is_none() && analysis.step_weights.is_empty() {
        return Err("analysis: set stepWeight or stepWeights".to_owned());
    }
    if analysis.max_weight == 0 || analysis.max_weight > 100 {
        return Err(format!(
            "analysis.maxWeight: {} is not in 1..=100",
            analysis.max_weight
        ));
    }
    if let Some(step) = analysis.step_weights.iter().find(|step| **step > 100) {
        return Err(format!("analysis.stepWeights: {step} is over 100"));
    }
    if analysis.step_weight == Some(0) {
        return Err("analysis.stepWeight: must be at least 1".to_owned());
    }
    for metric in &analysis.metrics {
        if metric.query.is_none() && metric.name.parse::<BuiltinMetric>().is_err() {
            return Err(format!(
                "analysis.metrics: `{}` is not a built-in metric (request-success-rate, request-duration); give it a query",
                metric.name
            ));
        }
        autopilot::config::parse_duration(&metric.interval)
            .map_err(|error| format!("analysis.metrics[{}].interval: {error}", metric.name))?;
    }
    for hook in &analysis.webhooks {
        autopilot::config::parse_duration(&hook.timeout)
            .map_err(|error| format!("analysis.webhooks[{}].timeout: {error}", hook.name))?;
    }
    if u16::try_from(canary.spec.service.port).is_err() || canary.spec.service.port == 0 {
        return Err(format!(
            "service.port: {} is not a port",
            canary.spec.service.port
        ));
    }
    Ok(())
}

/// The weight after `current`: the next explicit step, or `current + stepWeight`, capped.
fn next_weight(canary: &Canary, current: u8) -> u8 {
    let analysis = &canary.spec.analysis;
    let next = if analysis.step_weights.is_empty() {
        current.saturating_add(analysis.step_weight.unwrap_or(analysis.max_weight))
    } else {
        analysis
            .step_weights
            .iter()
            .copied()
            .find(|step| *step > current)
            .unwrap_or(analysis.max_weight)
    };
    next.min(analysis.max_weight)
}

/// Create the primary, the Services and the routing, then hand the target's pods over.
async fn initializing(canary: Arc<Canary>, ctx: Context<Canary>) -> Next {
    if let Err(problem) = validate(&canary) {
        ctx.event(
            EventType::Warning,
            "InvalidSpec".to_owned(),
            Some(problem.clone()),
        )
        .await?;
        return Ok(
            Transition::next(CanaryPhase::Failed).with_message(format!("invalid spec: {problem}"))
        );
    }
    let deps = deps(&ctx)?;
    let target = workloads::target(&ctx, &canary).await?;
    workloads::apply_services(&ctx, &canary, &target).await?;
    let primary = match workloads::primary(&ctx, &canary).await? {
        Some(primary) => primary,
        None => {
            let replicas = target.spec.replicas.unwrap_or(1).max(1);
            workloads::apply_primary(&ctx, &canary, &target, &target.spec.template, replicas)
                .await?
        }
    };
    deps.router.ensure(&route(&canary)?).await?;
    if !workloads::is_ready(&primary) {
        return Ok(
            Transition::stay_for(ROLLOUT_POLL).with_message("waiting for the primary to be ready")
        );
    }
    workloads::scale_target(&ctx, &canary, 0).await?;
    let revision = workloads::revision(&target);
    ctx.update_status(|fields| {
        *fields = CanaryFields {
            last_applied_spec: Some(revision.clone()),
            canary_revision: Some(revision.clone()),
            ..CanaryFields::default()
        };
    });
    Ok(
        Transition::next(CanaryPhase::Initialized).with_message(format!(
            "{} serves all traffic",
            workloads::primary_name(&canary)
        )),
    )
}

async fn initialized(_: Arc<Canary>, _: Context<Canary>) -> Next {
    Ok(Transition::next(CanaryPhase::Waiting))
}

/// Waiting, Succeeded and Failed: nothing to do until the target gets a new revision.
async fn await_revision(canary: Arc<Canary>, ctx: Context<Canary>) -> Next {
    if ctx.status_fields().last_applied_spec.is_none() {
        // Failed before initialising (an invalid spec): only a spec change, which restarts at
        // Initializing, can help.
        return Ok(Transition::wait_for_change());
    }
    let target = workloads::target(&ctx, &canary).await?;
    let revision = workloads::revision(&target);
    if ctx.status_fields().canary_revision.as_deref() == Some(revision.as_str()) {
        // The target is a watched input: its next change wakes us.
        return Ok(Transition::wait_for_change());
    }
    start_analysis(&canary, &ctx, &revision).await?;
    Ok(Transition::next(CanaryPhase::Progressing)
        .with_message(format!("new revision {revision}: starting the analysis")))
}

/// Fresh counters for `revision`, the canary scaled up, all traffic still on the primary.
async fn start_analysis(
    canary: &Canary,
    ctx: &Context<Canary>,
    revision: &str,
) -> anyhow::Result<()> {
    let deps = deps(ctx)?;
    deps.router.set_weights(&route(canary)?, 100, 0).await?;
    let replicas = workloads::serving_replicas(ctx, canary).await?;
    workloads::scale_target(ctx, canary, replicas).await?;
    ctx.update_status(|fields| {
        fields.canary_revision = Some(revision.to_owned());
        fields.canary_weight = 0;
        fields.failed_checks = 0;
        fields.iterations = 0;
        fields.measurements.clear();
    });
    Ok(())
}

/// One analysis step per interval: check, then shift more traffic, promote, or roll back.
async fn progressing(canary: Arc<Canary>, ctx: Context<Canary>) -> Next {
    let deps = deps(&ctx)?;
    let every = interval(&canary)?;
    let target = workloads::target(&ctx, &canary).await?;
    let revision = workloads::revision(&target);
    let fields = ctx.status_fields();
    if fields.canary_revision.as_deref() != Some(revision.as_str()) {
        start_analysis(&canary, &ctx, &revision).await?;
        ctx.publish(
            "Restarted",
            format!("new revision {revision} during the analysis"),
        )
        .await?;
        return Ok(Transition::stay_for(every)
            .with_message(format!("new revision {revision}: analysis restarted")));
    }
    if !workloads::is_ready(&target) {
        return Ok(
            Transition::stay_for(ROLLOUT_POLL).with_message("waiting for the canary to be ready")
        );
    }

    let payload = Payload {
        name: &canary.metadata.name.clone().unwrap_or_default(),
        namespace: ctx.namespace().unwrap_or("default"),
        phase: "Progressing",
    };
    let hooks = &canary.spec.analysis.webhooks;
    let mut problems = Vec::new();
    if fields.canary_weight == 0 && fields.iterations == 0 {
        if let Err(error) =
            webhooks::call_all(&deps.http, hooks, WebhookType::PreRollout, &payload).await
        {
            problems.push(error.to_string());
        }
    } else {
        let (measured, failed) =
            run_checks(deps, &canary, ctx.namespace().unwrap_or("default")).await;
        problems.extend(failed);
        ctx.update_status(|fields| fields.measurements = measured);
        if let Err(error) =
            webhooks::call_all(&deps.http, hooks, WebhookType::Rollout, &payload).await
        {
            problems.push(error.to_string());
        }
    }

    if !problems.is_empty() {
        let failed = fields.failed_checks + 1;
        ctx.update_status(|fields| fields.failed_checks = failed);
        let summary = problems.join("; ");
        if failed >= canary.spec.analysis.threshold {
            return roll_back(&canary, &ctx, deps, &payload, &summary).await;
        }
        ctx.event(
            EventType::Warning,
            "CheckFailed".to_owned(),
            Some(format!(
                "check {failed}/{} failed: {summary}",
                canary.spec.analysis.threshold
            )),
        )
        .await?;
        return Ok(
            Transition::stay_for(every).with_message(format!("failed check {failed}: {summary}"))
        );
    }

    if fields.canary_weight >= canary.spec.analysis.max_weight {
        if let Err(error) =
            webhooks::call_all(&deps.http, hooks, WebhookType::ConfirmPromotion, &payload).await
        {
            return Ok(Transition::stay_for(every)
                .with_message(format!("waiting for promotion approval: {error}")));
        }
        return Ok(
            Transition::next(CanaryPhase::Promoting).with_message(format!(
                "analysis passed at {}% canary traffic",
                fields.canary_weight
            )),
        );
    }

    let weight = next_weight(&canary, fields.canary_weight);
    deps.router
        .set_weights(&route(&canary)?, u32::from(100 - weight), u32::from(weight))
        .await?;
    ctx.update_status(|fields| {
        fields.canary_weight = weight;
        fields.iterations += 1;
    });
    Ok(Transition::stay_for(every).with_message(format!("{weight}% of traffic to the canary")))
}

/// Runs every metric check; returns the values measured and the failures.
async fn run_checks(
    deps: &Deps,
    canary: &Canary,
    namespace: &str,
) -> (std::collections::BTreeMap<String, f64>, Vec<String>) {
    let mut measured = std::collections::BTreeMap::new();
    let mut failed = Vec::new();
    for metric in &canary.spec.analysis.metrics {
        let threshold = ThresholdRange {
            min: metric.threshold_range.min,
            max: metric.threshold_range.max,
        };
        let check = match (&metric.query, metric.name.parse::<BuiltinMetric>()) {
            (Some(query), _) => match QueryTemplate::new(query.clone()) {
                Ok(template) => MetricCheck::new(metric.name.clone(), template, threshold),
                Err(error) => {
                    failed.push(format!("{}: {error}", metric.name));
                    continue;
                }
            },
            (None, Ok(builtin)) => match deps.queries {
                Some(provider) => MetricCheck::builtin(provider, builtin, threshold),
                None => {
                    failed.push(format!(
                        "{}: this mesh has no built-in queries; give the metric a query",
                        metric.name
                    ));
                    continue;
                }
            },
            (None, Err(error)) => {
                failed.push(error.to_string());
                continue;
            }
        };
        let vars = Variables::new()
            .namespace(namespace)
            .target(canary.spec.target_ref.name.clone())
            .interval(metric.interval.clone());
        let result = check.run(&deps.prometheus, &vars, None).await;
        if let Some(value) = result.observed.filter(|value| value.is_finite()) {
            measured.insert(metric.name.clone(), value);
        }
        if !result.passed() {
            failed.push(result.reason);
        }
    }
    (measured, failed)
}

/// All traffic back to the primary, the canary scaled down, and the reason recorded.
async fn roll_back(
    canary: &Canary,
    ctx: &Context<Canary>,
    deps: &Deps,
    payload: &Payload<'_>,
    why: &str,
) -> Next {
    deps.router.set_weights(&route(canary)?, 100, 0).await?;
    workloads::scale_target(ctx, canary, 0).await?;
    ctx.update_status(|fields| fields.canary_weight = 0);
    if let Err(error) = webhooks::call_all(
        &deps.http,
        &canary.spec.analysis.webhooks,
        WebhookType::Rollback,
        payload,
    )
    .await
    {
        tracing::warn!(%error, "rollback webhook failed");
    }
    let reason = format!(
        "rolled back after {} failed checks: {why}",
        canary.spec.analysis.threshold
    );
    ctx.event(
        EventType::Warning,
        "RolledBack".to_owned(),
        Some(reason.clone()),
    )
    .await?;
    Ok(Transition::next(CanaryPhase::Failed).with_message(reason))
}

/// Copy the canary's pod template to the primary and wait for the primary to roll it out.
async fn promoting(canary: Arc<Canary>, ctx: Context<Canary>) -> Next {
    let target = workloads::target(&ctx, &canary).await?;
    let replicas = workloads::primary(&ctx, &canary)
        .await?
        .and_then(|primary| primary.spec.replicas)
        .unwrap_or(1);
    let primary =
        workloads::apply_primary(&ctx, &canary, &target, &target.spec.template, replicas).await?;
    if !workloads::is_ready(&primary) {
        return Ok(
            Transition::stay_for(ROLLOUT_POLL).with_message("waiting for the primary to roll out")
        );
    }
    Ok(Transition::next(CanaryPhase::Finalising))
}

/// Route everything to the promoted primary and scale the canary down.
async fn finalising(canary: Arc<Canary>, ctx: Context<Canary>) -> Next {
    let deps = deps(&ctx)?;
    deps.router.set_weights(&route(&canary)?, 100, 0).await?;
    workloads::scale_target(&ctx, &canary, 0).await?;
    let revision = ctx.status_fields().canary_revision;
    ctx.update_status(|fields| {
        fields.canary_weight = 0;
        fields.last_applied_spec = revision.clone();
    });
    let payload = Payload {
        name: &canary.metadata.name.clone().unwrap_or_default(),
        namespace: ctx.namespace().unwrap_or("default"),
        phase: "Finalising",
    };
    if let Err(error) = webhooks::call_all(
        &deps.http,
        &canary.spec.analysis.webhooks,
        WebhookType::PostRollout,
        &payload,
    )
    .await
    {
        tracing::warn!(%error, "post-rollout webhook failed");
    }
    Ok(
        Transition::next(CanaryPhase::Succeeded).with_message(format!(
            "promoted revision {}",
            revision.unwrap_or_default()
        )),
    )
}

/// On deletion: give the app back to its own Deployment before our objects are collected.
async fn terminating(canary: Arc<Canary>, ctx: Context<Canary>) -> Next {
    let deps = deps(&ctx)?;
    deps.router.reset(&route(&canary)?).await?;
    let replicas = workloads::serving_replicas(&ctx, &canary).await?;
    if workloads::target(&ctx, &canary).await.is_ok() {
        workloads::scale_target(&ctx, &canary, replicas).await?;
    }
    Ok(Transition::next(CanaryPhase::Terminating))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canary::spec::{Analysis, CanarySpec, ServicePort, TargetRef};

    fn canary(step_weight: Option<u8>, step_weights: Vec<u8>, max_weight: u8) -> Canary {
        Canary::new(
            "app",
            CanarySpec {
                target_ref: TargetRef {
                    api_version: "apps/v1".to_owned(),
                    kind: "Deployment".to_owned(),
                    name: "app".to_owned(),
                },
                service: ServicePort {
                    port: 80,
                    target_port: None,
                },
                analysis: Analysis {
                    interval: "10s".to_owned(),
                    threshold: 2,
                    step_weight,
                    step_weights,
                    max_weight,
                    metrics: Vec::new(),
                    webhooks: Vec::new(),
                },
            },
        )
    }

    #[test]
    fn weights_step_up_to_the_maximum() {
        let steady = canary(Some(20), Vec::new(), 50);
        assert_eq!(next_weight(&steady, 0), 20);
        assert_eq!(next_weight(&steady, 40), 50);
        let explicit = canary(None, vec![5, 10, 40, 80], 60);
        assert_eq!(next_weight(&explicit, 0), 5);
        assert_eq!(next_weight(&explicit, 10), 40);
        assert_eq!(next_weight(&explicit, 40), 60);
    }

    #[test]
    fn invalid_specs_are_named() {
        assert!(validate(&canary(Some(10), Vec::new(), 50)).is_ok());
        assert!(
            validate(&canary(None, Vec::new(), 50))
                .unwrap_err()
                .contains("stepWeight")
        );
        assert!(
            validate(&canary(Some(10), Vec::new(), 120))
                .unwrap_err()
                .contains("maxWeight")
        );
        let mut bad_interval = canary(Some(10), Vec::new(), 50);
        bad_interval.spec.analysis.interval = "soon".to_owned();
        assert!(validate(&bad_interval).unwrap_err().contains("interval"));
    }
}
