//! Prometheus as an event source: a watched check that reports when its verdict changes.
//!
//! A [`MetricWatch`] runs one [`MetricCheck`] every few seconds and sends an [`ExternalEvent`]
//! only when the verdict changes — `metric.breached` when a passing value leaves its range,
//! `metric.recovered` when it comes back, `metric.nodata` / `metric.error` when Prometheus has no
//! answer — so a handler waiting on a healthy metric is woken at once on a breach rather than at its
//! next scheduled re-check.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use autopilot::sources::{self, metrics::MetricWatch};
//! use autopilot_metrics::{ClientOptions, MetricCheck, PrometheusClient, Provider, Variables};
//!
//! let prometheus = PrometheusClient::new("http://prometheus:9090", ClientOptions::default())?;
//! let vars = Variables::new().namespace("shop").target("checkout").interval("1m");
//! let (events, _received) = sources::channel(64);
//! MetricWatch::new(prometheus, MetricCheck::success_rate(Provider::Istio, 99.0), vars)
//!     .subject("shop/checkout")
//!     .every(Duration::from_secs(5))
//!     .spawn(events);
//! # Ok(()) }
//! ```

use std::time::Duration;

use autopilot_metrics::{CheckResult, MetricCheck, PrometheusClient, Variables, Verdict};
use serde_json::json;

use super::{EventSender, ExternalEvent};

/// Watches one metric check; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct MetricWatch {
    client: PrometheusClient,
    check: MetricCheck,
    vars: Variables,
    subject: Option<String>,
    every: Duration,
}

impl MetricWatch {
    /// Watches `check`, rendered with `vars`, every 10 s.
    #[must_use]
    pub fn new(client: PrometheusClient, check: MetricCheck, vars: Variables) -> Self {
        Self {
            client,
            check,
            vars,
            subject: None,
            every: Duration::from_secs(10),
        }
    }

    /// Names what the events are about (e.g. `namespace/name` of the object to wake).
    #[must_use]
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// How often the check runs.
    #[must_use]
    pub fn every(mut self, every: Duration) -> Self {
        self.every = every.max(Duration::from_millis(10));
        self
    }

    /// Runs the watch until the event channel closes.
    pub async fn run(self, events: EventSender) {
        let mut last: Option<Verdict> = None;
        let mut ticks = tokio::time::interval(self.every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sequence = 0_u64;
        loop {
            tokio::select! {
                () = events.closed() => return,
                _ = ticks.tick() => {}
            }
            let result = self.check.run(&self.client, &self.vars, None).await;
            if last == Some(result.verdict) {
                continue;
            }
            // The first verdict is news only when it is bad: a healthy start wakes nobody.
            let news = last.is_some() || result.verdict != Verdict::Pass;
            last = Some(result.verdict);
            if news {
                sequence += 1;
                let event = self.event(&result, sequence);
                if events.send(event).await.is_err() {
                    return;
                }
            }
        }
    }

    /// Runs the watch on its own task.
    pub fn spawn(self, events: EventSender) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run(events))
    }

    fn event(&self, result: &CheckResult, sequence: u64) -> ExternalEvent {
        let kind = match result.verdict {
            Verdict::Pass => "metric.recovered",
            Verdict::Fail => "metric.breached",
            Verdict::NoData => "metric.nodata",
            Verdict::Error => "metric.error",
        };
        ExternalEvent {
            source: self.client.base_url().to_string(),
            kind: kind.to_owned(),
            id: format!("{}-{sequence}", self.check.name),
            subject: self.subject.clone(),
            time: Some(chrono::Utc::now()),
            data: json!({
                "check": result.name,
                "observed": result.observed.filter(|value| value.is_finite()),
                "reason": result.reason,
            }),
        }
    }
}
