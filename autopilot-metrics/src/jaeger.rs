//! A Jaeger query client: find a service's recent traces and see which failed.
//!
//! [`JaegerClient::find_traces`] asks the v3 API (`/api/v3/traces`, OTLP JSON) first and falls back
//! to the v1 search (`/api/traces`) on servers that do not have it. Both answers become the same
//! [`Trace`]s, whose spans say whether they failed (OTLP status `ERROR`, an `error=true` tag, or an
//! HTTP status of 500 or more).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::{Duration, SystemTime};
//! use autopilot_metrics::ClientOptions;
//! use autopilot_metrics::jaeger::{JaegerClient, TraceQuery};
//!
//! let jaeger = JaegerClient::new("http://jaeger-query.observability:16686", ClientOptions::default())?;
//! let now = SystemTime::now();
//! let traces = jaeger.find_traces(&TraceQuery::new("checkout", now - Duration::from_secs(60), now)).await?;
//! let failed = traces.iter().filter(|trace| trace.has_error()).count();
//! println!("{failed} of {} traces failed", traces.len());
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use url::Url;

use crate::client::{base_url_of, http_client, snippet, transport_error};
use crate::{Auth, ClientOptions, ConfigError, QueryError};

/// Which traces to look for.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceQuery {
    /// The service whose traces are wanted.
    pub service: String,
    /// Only traces with a span of this operation.
    pub operation: Option<String>,
    /// Traces that started at or after this time.
    pub start_min: SystemTime,
    /// Traces that started at or before this time.
    pub start_max: SystemTime,
    /// At most this many traces.
    pub limit: u32,
}

impl TraceQuery {
    /// Up to 100 traces of `service` that started between `start_min` and `start_max`.
    pub fn new(service: impl Into<String>, start_min: SystemTime, start_max: SystemTime) -> Self {
        Self {
            service: service.into(),
            operation: None,
            start_min,
            start_max,
            limit: 100,
        }
    }
}

/// One span of a trace.
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    /// Its id (hex).
    pub span_id: String,
    /// The service that recorded it.
    pub service: String,
    /// The operation (span name).
    pub operation: String,
    /// When it started.
    pub start: SystemTime,
    /// How long it took.
    pub duration: Duration,
    /// Whether it failed.
    pub error: bool,
}

/// A trace: its id and spans.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    /// The trace id (hex).
    pub trace_id: String,
    /// Its spans, in the order the server gave them.
    pub spans: Vec<Span>,
}

impl Trace {
    /// Whether any span failed.
    #[must_use]
    pub fn has_error(&self) -> bool {
        self.spans.iter().any(|span| span.error)
    }

    /// From the first span's start to the last span's end.
    #[must_use]
    pub fn duration(&self) -> Duration {
        let start = self.spans.iter().map(|span| span.start).min();
        let end = self
            .spans
            .iter()
            .map(|span| span.start + span.duration)
            .max();
        match (start, end) {
            (Some(start), Some(end)) => end.duration_since(start).unwrap_or_default(),
            _ => Duration::ZERO,
        }
    }
}

/// Queries one Jaeger server; cheap to clone.
#[derive(Clone, Debug)]
pub struct JaegerClient {
    http: reqwest::Client,
    base: Url,
    auth: Auth,
    timeout: Duration,
}

impl JaegerClient {
    /// A client for the Jaeger query service at `base_url` (a path prefix is kept).
    ///
    /// # Errors
    /// When the URL or the options are invalid.
    pub fn new(base_url: &str, options: ClientOptions) -> Result<Self, ConfigError> {
        Ok(Self {
            http: http_client(&options)?,
            base: base_url_of(base_url)?,
            auth: options.auth,
            timeout: options.timeout,
        })
    }

    /// The traces matching `query`; an empty list when there are none.
    ///
    /// # Errors
    /// When the server cannot be reached, answers an error, or sends something undecodable.
    pub async fn find_traces(&self, query: &TraceQuery) -> Result<Vec<Trace>, QueryError> {
        let mut params = vec![
            ("query.service_name", query.service.clone()),
            ("query.start_time_min", rfc3339(query.start_min)),
            ("query.start_time_max", rfc3339(query.start_max)),
            ("query.num_traces", query.limit.to_string()),
        ];
        if let Some(operation) = &query.operation {
            params.push(("query.operation_name", operation.clone()));
        }
        match self.get("api/v3/traces", &params).await? {
            // A v3 server says "no traces" with a 404 carrying a JSON error.
            Answer::Json(status, body) if status == 404 && body.get("error").is_some() => {
                Ok(Vec::new())
            }
            Answer::Json(status, body) if status < 300 => Ok(v3_traces(&body)),
            // No v3 API here: an older server.
            Answer::Json(404, _) | Answer::Other(404, _) => self.find_traces_v1(query).await,
            Answer::Json(status, body) => Err(http_status(status, body.to_string().as_bytes())),
            Answer::Other(status, body) => Err(http_status(status, &body)),
        }
    }

    async fn find_traces_v1(&self, query: &TraceQuery) -> Result<Vec<Trace>, QueryError> {
        let mut params = vec![
            ("service", query.service.clone()),
            ("start", unix_micros(query.start_min).to_string()),
            ("end", unix_micros(query.start_max).to_string()),
            ("limit", query.limit.to_string()),
        ];
        if let Some(operation) = &query.operation {
            params.push(("operation", operation.clone()));
        }
        match self.get("api/traces", &params).await? {
            Answer::Json(status, body) if status < 300 => Ok(v1_traces(&body)),
            Answer::Json(status, body) => Err(http_status(status, body.to_string().as_bytes())),
            Answer::Other(status, body) => Err(http_status(status, &body)),
        }
    }

    async fn get(&self, path: &str, params: &[(&str, String)]) -> Result<Answer, QueryError> {
        let url = self.base.join(path).map_err(|source| QueryError::Decode {
            status: reqwest::StatusCode::BAD_REQUEST,
            body: path.to_owned(),
            source: <serde_json::Error as serde::de::Error>::custom(source),
        })?;
        let mut request = self.http.get(url.clone()).query(params);
        if let Auth::Basic { username, password } = &self.auth {
            request = request.basic_auth(username, password.as_deref());
        }
        let transport = |source| transport_error(&url, self.timeout, source);
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(transport)?;
        Ok(match serde_json::from_slice::<Value>(&body) {
            Ok(json) => Answer::Json(status, json),
            Err(_) => Answer::Other(status, body.to_vec()),
        })
    }
}

enum Answer {
    Json(u16, Value),
    Other(u16, Vec<u8>),
}

fn http_status(status: u16, body: &[u8]) -> QueryError {
    QueryError::HttpStatus {
        status: reqwest::StatusCode::from_u16(status).unwrap_or(reqwest::StatusCode::BAD_GATEWAY),
        body: snippet(body),
    }
}

/// OTLP JSON (`{"result": {"resourceSpans": [...]}}`), grouped by trace id.
fn v3_traces(body: &Value) -> Vec<Trace> {
    let mut traces: BTreeMap<String, Vec<Span>> = BTreeMap::new();
    let resources = body["result"]["resourceSpans"]
        .as_array()
        .into_iter()
        .flatten();
    for resource in resources {
        let service = otlp_attributes(&resource["resource"]["attributes"])
            .get("service.name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let spans = resource["scopeSpans"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|scope| scope["spans"].as_array().into_iter().flatten());
        for span in spans {
            let attributes = otlp_attributes(&span["attributes"]);
            let start = nanos(&span["startTimeUnixNano"]);
            let end = nanos(&span["endTimeUnixNano"]).max(start);
            let status = &span["status"]["code"];
            let error = status == 2 || status == "STATUS_CODE_ERROR" || failed(&attributes);
            traces
                .entry(span["traceId"].as_str().unwrap_or_default().to_owned())
                .or_default()
                .push(Span {
                    span_id: span["spanId"].as_str().unwrap_or_default().to_owned(),
                    service: service.clone(),
                    operation: span["name"].as_str().unwrap_or_default().to_owned(),
                    start: UNIX_EPOCH + Duration::from_nanos(start),
                    duration: Duration::from_nanos(end - start),
                    error,
                });
        }
    }
    traces
        .into_iter()
        .map(|(trace_id, spans)| Trace { trace_id, spans })
        .collect()
}

/// The v1 search answer (`{"data": [{traceID, spans, processes}]}`).
fn v1_traces(body: &Value) -> Vec<Trace> {
    let data = body["data"].as_array().into_iter().flatten();
    data.map(|trace| {
        let spans = trace["spans"].as_array().into_iter().flatten();
        Trace {
            trace_id: trace["traceID"].as_str().unwrap_or_default().to_owned(),
            spans: spans
                .map(|span| {
                    let tags: BTreeMap<String, Value> = span["tags"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|tag| {
                            Some((tag["key"].as_str()?.to_owned(), tag["value"].clone()))
                        })
                        .collect();
                    let process = span["processID"].as_str().unwrap_or_default();
                    Span {
                        span_id: span["spanID"].as_str().unwrap_or_default().to_owned(),
                        service: trace["processes"][process]["serviceName"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        operation: span["operationName"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        start: UNIX_EPOCH
                            + Duration::from_micros(span["startTime"].as_u64().unwrap_or(0)),
                        duration: Duration::from_micros(span["duration"].as_u64().unwrap_or(0)),
                        error: failed(&tags),
                    }
                })
                .collect(),
        }
    })
    .collect()
}

/// OTLP `[{key, value: {stringValue | intValue | boolValue | doubleValue}}]` as plain JSON values.
fn otlp_attributes(attributes: &Value) -> BTreeMap<String, Value> {
    attributes
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|attribute| {
            let key = attribute["key"].as_str()?.to_owned();
            let value = attribute["value"].as_object()?.values().next()?.clone();
            Some((key, value))
        })
        .collect()
}

/// `error=true`, or an HTTP status of 500 or more (numbers may come as strings).
fn failed(attributes: &BTreeMap<String, Value>) -> bool {
    let error = attributes.get("error");
    if error == Some(&Value::Bool(true)) || error.and_then(Value::as_str) == Some("true") {
        return true;
    }
    ["http.status_code", "http.response.status_code"]
        .iter()
        .filter_map(|key| attributes.get(*key))
        .filter_map(|value| value.as_u64().or_else(|| value.as_str()?.parse().ok()))
        .any(|code| code >= 500)
}

/// OTLP times are decimal strings of nanoseconds (or numbers).
fn nanos(value: &Value) -> u64 {
    value
        .as_u64()
        .or_else(|| value.as_str()?.parse().ok())
        .unwrap_or(0)
}

fn unix_micros(time: SystemTime) -> u128 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros()
}

/// RFC 3339 with nanoseconds, in UTC, as the v3 API's query parameters want.
fn rfc3339(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats_rfc3339_in_utc() {
        let time = UNIX_EPOCH + Duration::new(1_764_064_800, 5);
        assert_eq!(rfc3339(time), "2025-11-25T10:00:00.000000005Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000000000Z"
        );
    }

    #[test]
    fn reads_otlp_spans_and_their_errors() {
        let body = json!({"result": {"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
            "scopeSpans": [{"spans": [
                {"traceId": "aa", "spanId": "1", "name": "GET /", "startTimeUnixNano": "1000000000",
                 "endTimeUnixNano": "1250000000", "status": {"code": 2}},
                {"traceId": "bb", "spanId": "2", "name": "GET /", "startTimeUnixNano": "1000000000",
                 "endTimeUnixNano": "1010000000", "status": {},
                 "attributes": [{"key": "http.response.status_code", "value": {"intValue": "503"}}]},
                {"traceId": "cc", "spanId": "3", "name": "GET /", "startTimeUnixNano": "1000000000",
                 "endTimeUnixNano": "1010000000",
                 "attributes": [{"key": "http.response.status_code", "value": {"intValue": "200"}}]}
            ]}]
        }]}});
        let traces = v3_traces(&body);
        let errors: Vec<_> = traces
            .iter()
            .map(|t| (t.trace_id.as_str(), t.has_error()))
            .collect();
        assert_eq!(errors, [("aa", true), ("bb", true), ("cc", false)]);
        assert_eq!(traces[0].spans[0].service, "checkout");
        assert_eq!(traces[0].duration(), Duration::from_millis(250));
    }

    #[test]
    fn reads_v1_traces_and_error_tags() {
        let body = json!({"data": [{
            "traceID": "aa",
            "spans": [{"spanID": "1", "operationName": "GET /", "startTime": 1_000_000, "duration": 2000,
                       "processID": "p1", "tags": [{"key": "error", "type": "bool", "value": true}]}],
            "processes": {"p1": {"serviceName": "checkout"}}
        }]});
        let traces = v1_traces(&body);
        assert!(traces[0].has_error());
        assert_eq!(traces[0].spans[0].service, "checkout");
        assert_eq!(traces[0].spans[0].duration, Duration::from_millis(2));
    }
}
