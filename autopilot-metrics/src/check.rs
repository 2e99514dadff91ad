//! Threshold checks and the analysis that turns rounds of checks into promote / continue / roll back.

use std::fmt;
use std::time::SystemTime;

use futures::future::join_all;
use serde::{Deserialize, Serialize};

use crate::builtin::{BuiltinMetric, Provider, UnknownMetric};
use crate::client::PrometheusClient;
use crate::template::{PromDuration, QueryTemplate, TemplateError, Variables};

/// Accepted values: at least `min` and at most `max`, each bound optional and inclusive (Flagger's
/// `thresholdRange`). NaN is never inside a range.
///
/// ```
/// use autopilot_metrics::ThresholdRange;
///
/// let range = ThresholdRange { min: Some(99.0), max: None };
/// assert!(range.contains(99.0));
/// assert!(!range.contains(98.9));
/// assert!(!range.contains(f64::NAN));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ThresholdRange {
    /// Lowest accepted value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Highest accepted value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

impl ThresholdRange {
    /// Values of at least `min`.
    pub fn at_least(min: f64) -> Self {
        Self {
            min: Some(min),
            max: None,
        }
    }

    /// Values of at most `max`.
    pub fn at_most(max: f64) -> Self {
        Self {
            min: None,
            max: Some(max),
        }
    }

    /// Whether `value` is accepted.
    pub fn contains(&self, value: f64) -> bool {
        !value.is_nan()
            && self.min.is_none_or(|min| value >= min)
            && self.max.is_none_or(|max| value <= max)
    }
}

impl fmt::Display for ThresholdRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.min, self.max) {
            (Some(min), Some(max)) => write!(f, "[{min}, {max}]"),
            (Some(min), None) => write!(f, ">= {min}"),
            (None, Some(max)) => write!(f, "<= {max}"),
            (None, None) => f.write_str("any value"),
        }
    }
}

/// The outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Verdict {
    /// The value is inside the range.
    Pass,
    /// The value is outside the range.
    Fail,
    /// The query returned nothing, or NaN (for example no traffic): nothing to judge, so not a pass.
    NoData,
    /// The query could not be run (Prometheus down, timeout, invalid query, ...).
    Error,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::NoData => "no data",
            Self::Error => "error",
        })
    }
}

/// The result of running one check, with enough detail for a status message or an Event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The check's name.
    pub name: String,
    /// The outcome.
    pub verdict: Verdict,
    /// The value read, when there was one (may be ±Inf).
    pub observed: Option<f64>,
    /// One sentence saying why.
    pub reason: String,
}

impl CheckResult {
    /// Only [`Verdict::Pass`] passes.
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Pass
    }
}

/// A query whose single value must fall inside a [`ThresholdRange`].
///
/// ```
/// use autopilot_metrics::{MetricCheck, Provider, Verdict};
///
/// let check = MetricCheck::success_rate(Provider::Istio, 99.0);
/// assert_eq!(check.judge(Some(99.5)).verdict, Verdict::Pass);
/// assert_eq!(check.judge(Some(95.0)).verdict, Verdict::Fail);
/// assert_eq!(check.judge(Some(f64::NAN)).verdict, Verdict::NoData);
/// assert_eq!(check.judge(None).verdict, Verdict::NoData);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct MetricCheck {
    /// Shown in results (for example `request-success-rate`).
    pub name: String,
    /// The query, rendered with the analysis' variables.
    pub query: QueryTemplate,
    /// Accepted values.
    pub threshold: ThresholdRange,
    /// This check's own `interval`, overriding the one in the variables (Flagger's per-metric interval).
    pub interval: Option<PromDuration>,
}

/// A check described by name and optional query (as in a canary spec) does not resolve.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidCheck {
    /// No query was given and the name is not a built-in metric.
    #[error(transparent)]
    UnknownMetric(#[from] UnknownMetric),
    /// The query is not a valid template.
    #[error("invalid query for metric `{name}`")]
    Template {
        /// The check's name.
        name: String,
        /// What is wrong with the query.
        #[source]
        source: TemplateError,
    },
}

impl MetricCheck {
    /// A check of a user-defined query.
    pub fn new(name: impl Into<String>, query: QueryTemplate, threshold: ThresholdRange) -> Self {
        Self {
            name: name.into(),
            query,
            threshold,
            interval: None,
        }
    }

    /// A check as a canary spec describes one: with a `query`, a custom check under `name`; without, the
    /// built-in metric called `name` (`request-success-rate`, `request-duration`) of `provider`.
    ///
    /// ```
    /// use autopilot_metrics::{MetricCheck, Provider, ThresholdRange};
    ///
    /// let builtin = MetricCheck::from_spec(Provider::Istio, "request-duration", None, ThresholdRange::at_most(500.0))?;
    /// assert!(builtin.query.source().contains("istio_request_duration_milliseconds_bucket"));
    /// let custom = MetricCheck::from_spec(Provider::Istio, "errors", Some("sum(errors_total)"), ThresholdRange::at_most(0.0))?;
    /// assert_eq!(custom.query.source(), "sum(errors_total)");
    /// assert!(MetricCheck::from_spec(Provider::Istio, "latency", None, ThresholdRange::default()).is_err());
    /// # Ok::<(), autopilot_metrics::InvalidCheck>(())
    /// ```
    pub fn from_spec(
        provider: Provider,
        name: &str,
        query: Option<&str>,
        threshold: ThresholdRange,
    ) -> Result<Self, InvalidCheck> {
        match query {
            Some(query) => {
                let template =
                    QueryTemplate::new(query).map_err(|source| InvalidCheck::Template {
                        name: name.to_owned(),
                        source,
                    })?;
                Ok(Self::new(name, template, threshold))
            }
            None => Ok(Self::builtin(provider, name.parse()?, threshold)),
        }
    }

    /// Evaluates this check over its own window instead of the variables' `interval`.
    ///
    /// ```
    /// use autopilot_metrics::{MetricCheck, Provider};
    ///
    /// let check = MetricCheck::success_rate(Provider::Linkerd, 99.0).interval("5m".parse()?);
    /// assert_eq!(check.interval.map(|i| i.to_string()), Some("5m".to_owned()));
    /// # Ok::<(), autopilot_metrics::DurationError>(())
    /// ```
    #[must_use]
    pub fn interval(mut self, interval: PromDuration) -> Self {
        self.interval = Some(interval);
        self
    }

    /// A check of a built-in metric.
    pub fn builtin(provider: Provider, metric: BuiltinMetric, threshold: ThresholdRange) -> Self {
        Self::new(metric.as_str(), provider.query(metric), threshold)
    }

    /// Success rate (%) must be at least `min_percent`.
    pub fn success_rate(provider: Provider, min_percent: f64) -> Self {
        Self::builtin(
            provider,
            BuiltinMetric::RequestSuccessRate,
            ThresholdRange::at_least(min_percent),
        )
    }

    /// p99 request duration must be at most `max_ms` milliseconds.
    pub fn request_duration(provider: Provider, max_ms: f64) -> Self {
        Self::builtin(
            provider,
            BuiltinMetric::RequestDuration,
            ThresholdRange::at_most(max_ms),
        )
    }

    /// Judges a value already read: `None` (no series) and NaN are [`Verdict::NoData`].
    pub fn judge(&self, observed: Option<f64>) -> CheckResult {
        let (verdict, reason) = match observed {
            None => (
                Verdict::NoData,
                format!("{}: the query returned no data", self.name),
            ),
            Some(v) if v.is_nan() => (
                Verdict::NoData,
                format!(
                    "{}: the query returned NaN (no traffic in the interval?)",
                    self.name
                ),
            ),
            Some(v) if self.threshold.contains(v) => (
                Verdict::Pass,
                format!("{}: {v} is within {}", self.name, self.threshold),
            ),
            Some(v) => (
                Verdict::Fail,
                format!("{}: {v} is outside {}", self.name, self.threshold),
            ),
        };
        CheckResult {
            name: self.name.clone(),
            verdict,
            observed,
            reason,
        }
    }

    /// Renders the query, runs it at `time` (now when `None`) and judges the value. Every failure to get a
    /// value becomes [`Verdict::Error`] with the error in the reason, so a result is always returned.
    ///
    /// ```no_run
    /// # use autopilot_metrics::{MetricCheck, PrometheusClient, Provider, Variables};
    /// # async fn demo(client: PrometheusClient) {
    /// let vars = Variables::new().namespace("shop").target("checkout").interval("1m");
    /// let result = MetricCheck::request_duration(Provider::Envoy, 500.0).run(&client, &vars, None).await;
    /// println!("{:?}: {}", result.verdict, result.reason);
    /// # }
    /// ```
    pub async fn run(
        &self,
        client: &PrometheusClient,
        vars: &Variables,
        time: Option<SystemTime>,
    ) -> CheckResult {
        let overridden;
        let vars = match self.interval {
            Some(interval) => {
                overridden = vars.clone().interval(interval);
                &overridden
            }
            None => vars,
        };
        let value = match self.query.render(vars) {
            Ok(query) => client.query_value(&query, time).await,
            Err(e) => Err(e.into()),
        };
        match value {
            Ok(observed) => self.judge(observed),
            Err(error) => {
                tracing::warn!(check = %self.name, error = %error, "metric check could not run");
                CheckResult {
                    name: self.name.clone(),
                    verdict: Verdict::Error,
                    observed: None,
                    reason: format!("{}: {}", self.name, error_chain(&error)),
                }
            }
        }
    }
}

/// An error and its sources, joined, so the reason tells the whole story.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// What to do after a round of checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Decision {
    /// Enough healthy rounds: promote the canary.
    Promote,
    /// Keep going (advance traffic after a healthy round, hold after a failed one).
    Continue,
    /// Too many failed rounds: roll back.
    Rollback,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Promote => "promote",
            Self::Continue => "continue",
            Self::Rollback => "roll back",
        })
    }
}

/// Counters an analysis carries from round to round; keep them in the resource's status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// Rounds in which at least one check did not pass.
    pub failed_checks: u32,
    /// Rounds in which every check passed.
    pub iterations: u32,
}

/// The outcome of one analysis round.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Round {
    /// Every check's result, in the analysis' order.
    pub results: Vec<CheckResult>,
    /// The counters after this round.
    pub progress: Progress,
    /// What to do next.
    pub decision: Decision,
}

/// Several checks judged together, Flagger style: a round in which any check does not pass (fail, no
/// data or error) counts one failed check; at `threshold` failed checks the decision is to roll back; after
/// `iterations` healthy rounds it is to promote.
///
/// ```
/// use autopilot_metrics::{Analysis, Decision, MetricCheck, Progress, Provider};
///
/// let analysis = Analysis::new(2, 3)
///     .check(MetricCheck::success_rate(Provider::Linkerd, 99.0))
///     .check(MetricCheck::request_duration(Provider::Linkerd, 500.0));
///
/// let ok = vec![analysis.checks[0].judge(Some(99.9)), analysis.checks[1].judge(Some(120.0))];
/// let bad = vec![analysis.checks[0].judge(Some(99.9)), analysis.checks[1].judge(None)];
///
/// let round = analysis.decide(ok, Progress::default());
/// assert_eq!(round.decision, Decision::Continue);
/// let round = analysis.decide(bad.clone(), round.progress);
/// assert_eq!((round.decision, round.progress.failed_checks), (Decision::Continue, 1));
/// let round = analysis.decide(bad, round.progress);
/// assert_eq!(round.decision, Decision::Rollback);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Analysis {
    /// The checks run each round.
    pub checks: Vec<MetricCheck>,
    /// Failed rounds before rolling back (at least 1).
    pub threshold: u32,
    /// Healthy rounds before promoting.
    pub iterations: u32,
}

impl Analysis {
    /// An analysis without checks yet.
    pub fn new(threshold: u32, iterations: u32) -> Self {
        Self {
            checks: Vec::new(),
            threshold,
            iterations,
        }
    }

    /// Adds a check.
    pub fn check(mut self, check: MetricCheck) -> Self {
        self.checks.push(check);
        self
    }

    /// Runs every check (concurrently) at `time` (now when `None`) and decides. Results keep the checks' order.
    ///
    /// ```no_run
    /// # use autopilot_metrics::{Analysis, MetricCheck, PrometheusClient, Progress, Provider, Variables};
    /// # async fn demo(client: PrometheusClient, progress: Progress) {
    /// let analysis = Analysis::new(5, 10).check(MetricCheck::success_rate(Provider::Istio, 99.0));
    /// let vars = Variables::new().namespace("shop").target("checkout").interval("1m");
    /// let round = analysis.run(&client, &vars, None, progress).await;
    /// println!("{:?} after {:?}", round.decision, round.progress);
    /// # }
    /// ```
    pub async fn run(
        &self,
        client: &PrometheusClient,
        vars: &Variables,
        time: Option<SystemTime>,
        progress: Progress,
    ) -> Round {
        // Concurrently, so a slow Prometheus costs one timeout per round, not one per check.
        let results = join_all(
            self.checks
                .iter()
                .map(|check| check.run(client, vars, time)),
        )
        .await;
        self.decide(results, progress)
    }

    /// Decides from results already gathered.
    pub fn decide(&self, results: Vec<CheckResult>, mut progress: Progress) -> Round {
        let decision = if results.iter().all(CheckResult::passed) {
            progress.iterations = progress.iterations.saturating_add(1);
            if progress.iterations >= self.iterations {
                Decision::Promote
            } else {
                Decision::Continue
            }
        } else {
            progress.failed_checks = progress.failed_checks.saturating_add(1);
            if progress.failed_checks >= self.threshold.max(1) {
                Decision::Rollback
            } else {
                Decision::Continue
            }
        };
        Round {
            results,
            progress,
            decision,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check() -> MetricCheck {
        MetricCheck::new(
            "x",
            QueryTemplate::new("x").unwrap(),
            ThresholdRange {
                min: Some(1.0),
                max: Some(2.0),
            },
        )
    }

    #[test]
    fn range_bounds_are_inclusive_and_infinities_compare() {
        let range = ThresholdRange {
            min: Some(1.0),
            max: Some(2.0),
        };
        assert!(range.contains(1.0) && range.contains(2.0));
        assert!(!range.contains(0.999) && !range.contains(2.001));
        assert!(!ThresholdRange::at_most(500.0).contains(f64::INFINITY));
        assert!(ThresholdRange::default().contains(f64::INFINITY));
        assert!(!ThresholdRange::default().contains(f64::NAN));
    }

    #[test]
    fn judge_reasons_name_the_value_and_range() {
        let r = check().judge(Some(3.0));
        assert_eq!(r.verdict, Verdict::Fail);
        assert_eq!(r.reason, "x: 3 is outside [1, 2]");
        assert_eq!(r.observed, Some(3.0));
        assert!(check().judge(Some(f64::NAN)).reason.contains("NaN"));
        assert!(!check().judge(None).passed());
    }

    #[test]
    fn analysis_counts_rounds_not_checks() {
        let analysis = Analysis::new(2, 1).check(check()).check(check());
        let both_bad = vec![check().judge(None), check().judge(Some(9.0))];
        let round = analysis.decide(both_bad, Progress::default());
        assert_eq!(
            round.progress,
            Progress {
                failed_checks: 1,
                iterations: 0
            }
        );
        assert_eq!(round.decision, Decision::Continue);

        let ok = vec![check().judge(Some(1.5)), check().judge(Some(1.5))];
        let round = analysis.decide(ok, round.progress);
        assert_eq!(
            round.progress,
            Progress {
                failed_checks: 1,
                iterations: 1
            }
        );
        assert_eq!(round.decision, Decision::Promote);
    }

    #[test]
    fn zero_threshold_rolls_back_on_first_failure() {
        let analysis = Analysis::new(0, 10).check(check());
        let round = analysis.decide(vec![check().judge(None)], Progress::default());
        assert_eq!(round.decision, Decision::Rollback);
    }

    #[test]
    fn progress_serializes_camel_case() {
        let json = serde_json::to_string(&Progress {
            failed_checks: 2,
            iterations: 3,
        })
        .unwrap();
        assert_eq!(json, r#"{"failedChecks":2,"iterations":3}"#);
        let range: ThresholdRange = serde_json::from_str(r#"{"min": 99}"#).unwrap();
        assert_eq!(range, ThresholdRange::at_least(99.0));
    }
}
