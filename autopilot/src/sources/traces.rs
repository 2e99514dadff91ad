//! Jaeger as an event source: a failed request trace of a service wakes the objects it concerns.
//!
//! A [`TraceWatch`] asks Jaeger every few seconds for the service's traces since it last looked and
//! sends one `trace.error` event per new trace with a failed span (each trace once), carrying the
//! trace id, the failing operation and the trace's duration.
//!
//! ```no_run
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use autopilot::sources::{self, traces::TraceWatch};
//! use autopilot_metrics::ClientOptions;
//! use autopilot_metrics::jaeger::JaegerClient;
//!
//! let jaeger = JaegerClient::new("http://jaeger-query:16686", ClientOptions::default())?;
//! let (events, _received) = sources::channel(64);
//! TraceWatch::new(jaeger, "checkout").subject("shop/checkout").every(Duration::from_secs(15)).spawn(events);
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use autopilot_metrics::jaeger::{JaegerClient, Trace, TraceQuery};
use serde_json::json;

use super::{EventSender, ExternalEvent};

/// How many reported trace ids are remembered, so overlapping windows report a trace once.
const REMEMBERED_TRACES: usize = 4096;

/// Watches one service's traces; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct TraceWatch {
    client: JaegerClient,
    service: String,
    subject: Option<String>,
    every: Duration,
    lookback: Duration,
}

impl TraceWatch {
    /// Watches `service`, every 15 s, starting with the last minute.
    #[must_use]
    pub fn new(client: JaegerClient, service: impl Into<String>) -> Self {
        Self {
            client,
            service: service.into(),
            subject: None,
            every: Duration::from_secs(15),
            lookback: Duration::from_secs(60),
        }
    }

    /// Names what the events are about (e.g. `namespace/name` of the object to wake).
    #[must_use]
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// How often Jaeger is asked.
    #[must_use]
    pub fn every(mut self, every: Duration) -> Self {
        self.every = every.max(Duration::from_millis(10));
        self
    }

    /// How far back the first look goes.
    #[must_use]
    pub fn lookback(mut self, lookback: Duration) -> Self {
        self.lookback = lookback;
        self
    }

    /// Runs the watch until the event channel closes. Jaeger being unreachable is logged and
    /// retried at the next tick; the window then covers the gap.
    pub async fn run(self, events: EventSender) {
        let mut since = SystemTime::now() - self.lookback;
        let mut reported: VecDeque<String> = VecDeque::new();
        let mut ticks = tokio::time::interval(self.every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = events.closed() => return,
                _ = ticks.tick() => {}
            }
            let now = SystemTime::now();
            // Spans arrive late: look a little before the last window's end again.
            let query = TraceQuery::new(self.service.clone(), since - self.every, now);
            let traces = match self.client.find_traces(&query).await {
                Ok(traces) => traces,
                Err(error) => {
                    tracing::warn!(service = %self.service, %error, "Jaeger query failed");
                    continue;
                }
            };
            since = now;
            for trace in traces.iter().filter(|trace| trace.has_error()) {
                if reported.contains(&trace.trace_id) {
                    continue;
                }
                if reported.len() == REMEMBERED_TRACES {
                    reported.pop_front();
                }
                reported.push_back(trace.trace_id.clone());
                if events.send(self.event(trace)).await.is_err() {
                    return;
                }
            }
        }
    }

    /// Runs the watch on its own task.
    pub fn spawn(self, events: EventSender) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run(events))
    }

    fn event(&self, trace: &Trace) -> ExternalEvent {
        let failed = trace.spans.iter().find(|span| span.error);
        ExternalEvent {
            source: "jaeger".to_owned(),
            kind: "trace.error".to_owned(),
            id: trace.trace_id.clone(),
            subject: self.subject.clone(),
            time: failed.map(|span| span.start.into()),
            data: json!({
                "traceId": trace.trace_id,
                "service": self.service,
                "operation": failed.map(|span| span.operation.clone()),
                "durationMs": trace.duration().as_secs_f64() * 1000.0,
            }),
        }
    }
}
