//! A clearly labelled stand-in for Prometheus, for machines without a `prometheus` binary.
//!
//! It answers `/api/v1/query` for the two built-in canary queries of every mesh — request success
//! rate and p99 duration — computed from a [`TrafficSimulator`]'s counters over the query's window,
//! the way Prometheus' `rate` and `histogram_quantile` would. It understands nothing else: any
//! other query gets Prometheus' `bad_data` error. Every answer carries a warning saying the
//! numbers are simulated.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Form, Query, State};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::traffic::{BUCKETS_MS, TrafficSimulator, WorkloadTelemetry};

type History = Arc<Mutex<VecDeque<(Instant, BTreeMap<String, WorkloadTelemetry>)>>>;

/// How long counters are remembered (the longest window a query can use).
const KEPT: Duration = Duration::from_secs(600);

#[derive(Deserialize)]
struct Params {
    query: String,
}

/// Serves the simulated query API on `address`; returns the bound address and the tasks.
///
/// # Errors
/// When the address cannot be bound.
pub async fn serve(
    traffic: TrafficSimulator,
    address: SocketAddr,
) -> std::io::Result<(SocketAddr, Vec<tokio::task::JoinHandle<()>>)> {
    let history: History = Arc::default();
    let recorder = {
        let history = history.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_millis(250));
            loop {
                ticks.tick().await;
                let mut kept = history.lock().unwrap_or_else(PoisonError::into_inner);
                kept.push_back((Instant::now(), traffic.snapshot()));
                while kept.front().is_some_and(|(at, _)| at.elapsed() > KEPT) {
                    kept.pop_front();
                }
            }
        })
    };
    let app = axum::Router::new()
        .route(
            "/api/v1/query",
            get(
                |State(h): State<History>, Query(p): Query<Params>| async move {
                    axum::Json(answer(&h, &p.query))
                },
            )
            .post(
                |State(h): State<History>, Form(p): Form<Params>| async move {
                    axum::Json(answer(&h, &p.query))
                },
            ),
        )
        .with_state(history);
    let listener = tokio::net::TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((bound, vec![recorder, server]))
}

fn answer(history: &History, query: &str) -> Value {
    let warning = "simulated: computed from the synthetic data plane, not by Prometheus";
    let Some(window) = window(query) else {
        return json!({"status": "error", "errorType": "bad_data", "error": "simulated source: no [window] in query", "warnings": [warning]});
    };
    let kept = history.lock().unwrap_or_else(PoisonError::into_inner);
    let (Some((_, latest)), Some((_, oldest))) = (
        kept.back(),
        kept.iter().find(|(at, _)| at.elapsed() <= window),
    ) else {
        return json!({"status": "success", "data": {"resultType": "vector", "result": []}, "warnings": [warning]});
    };
    // The workload the query selects: named in quotes (Istio, Linkerd) or by its Service (Envoy).
    let selected = latest.iter().find(|(name, data)| {
        query.contains(&format!("\"{name}\"")) || query.contains(&format!("_{}_", data.service))
    });
    let Some((name, now)) = selected else {
        return json!({"status": "success", "data": {"resultType": "vector", "result": []}, "warnings": [warning]});
    };
    let before = oldest.get(name).cloned().unwrap_or_default();
    let total = now.total().saturating_sub(before.total());
    #[allow(clippy::cast_precision_loss)]
    let value = if query.contains("histogram_quantile") {
        quantile(now, &before, 0.99)
    } else if total == 0 {
        f64::NAN
    } else {
        now.ok.saturating_sub(before.ok) as f64 / total as f64 * 100.0
    };
    let time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    json!({
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": {}, "value": [time, value.to_string()]}]},
        "warnings": [warning]
    })
}

/// The `[30s]` / `[1m]` range of a query.
fn window(query: &str) -> Option<Duration> {
    let start = query.find('[')? + 1;
    let end = start + query[start..].find(']')?;
    let text = &query[start..end];
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
    let number: u64 = number.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(number)),
        "s" => Some(Duration::from_secs(number)),
        "m" => Some(Duration::from_secs(number * 60)),
        "h" => Some(Duration::from_secs(number * 3600)),
        _ => None,
    }
}

/// `histogram_quantile` over the bucket increases: linear within the bucket holding the rank.
#[allow(clippy::cast_precision_loss)]
fn quantile(now: &WorkloadTelemetry, before: &WorkloadTelemetry, q: f64) -> f64 {
    let counts: Vec<u64> = now
        .buckets
        .iter()
        .zip(&before.buckets)
        .map(|(n, b)| n.saturating_sub(*b))
        .collect();
    let total = counts.last().copied().unwrap_or(0);
    if total == 0 {
        return f64::NAN;
    }
    let rank = q * total as f64;
    let mut lower_bound = 0.0;
    let mut lower_count = 0.0;
    for (bound, count) in BUCKETS_MS.iter().zip(&counts) {
        let count = *count as f64;
        if count >= rank {
            return lower_bound
                + (bound - lower_bound) * (rank - lower_count)
                    / (count - lower_count).max(f64::MIN_POSITIVE);
        }
        lower_bound = *bound;
        lower_count = count;
    }
    lower_bound
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::{Health, Workload};

    #[test]
    fn windows_parse_like_promql_durations() {
        assert_eq!(window("rate(x[30s])"), Some(Duration::from_secs(30)));
        assert_eq!(window("rate(x[2m])"), Some(Duration::from_secs(120)));
        assert_eq!(window("x"), None);
    }

    #[test]
    fn success_rate_and_p99_follow_the_counters() {
        let traffic = TrafficSimulator::new("demo", 1000);
        let before = traffic.snapshot();
        traffic.tick(&[Workload::new(
            "app",
            100,
            Health {
                error_rate: 0.05,
                latency_ms: 100.0,
            },
        )]);
        let history: History = Arc::default();
        history.lock().unwrap().push_back((Instant::now(), before));
        history
            .lock()
            .unwrap()
            .push_back((Instant::now(), traffic.snapshot()));
        let rate = answer(
            &history,
            r#"sum(rate(istio_requests_total{destination_workload=~"app"}[1m]))"#,
        );
        assert_eq!(rate["data"]["result"][0]["value"][1], "95");
        assert!(
            rate["warnings"][0]
                .as_str()
                .unwrap()
                .starts_with("simulated")
        );
        let p99 = answer(
            &history,
            r#"histogram_quantile(0.99, sum(rate(response_latency_ms_bucket{deployment=~"app"}[1m])) by (le))"#,
        );
        let p99: f64 = p99["data"]["result"][0]["value"][1]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        // Latencies spread over 50..150 ms: the 99th percentile lies in the (100, 250] bucket.
        assert!((100.0..=250.0).contains(&p99), "{p99}");
        let unknown = answer(&history, "up");
        assert_eq!(unknown["errorType"], "bad_data");
    }
}
