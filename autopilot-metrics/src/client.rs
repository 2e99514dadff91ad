//! The Prometheus HTTP API client: configuration, authentication, and the query endpoints.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use url::Url;

use crate::builtin::{BuiltinMetric, Provider};
use crate::error::{ConfigError, Error, ErrorType, QueryError};
use crate::response::{Envelope, QueryData, QueryResponse};
use crate::template::Variables;
use crate::tls::{self, TlsVerification};

/// How requests authenticate to Prometheus (or the proxy in front of it).
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Auth {
    /// No credentials.
    #[default]
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// HTTP basic authentication.
    Basic {
        /// The user name.
        username: String,
        /// The password, if any.
        password: Option<String>,
    },
}

impl fmt::Debug for Auth {
    /// Never prints secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Self::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .finish_non_exhaustive(),
        }
    }
}

/// How queries are sent: as a POST form (the default; no URL length limit) or as GET parameters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RequestMethod {
    /// `POST` with an `application/x-www-form-urlencoded` body.
    #[default]
    Post,
    /// `GET` with the parameters in the URL (for proxies that only allow reads).
    Get,
}

/// Options for [`PrometheusClient::new`]. Start from [`ClientOptions::default`] and chain setters.
///
/// ```
/// use autopilot_metrics::ClientOptions;
/// use std::time::Duration;
///
/// let options = ClientOptions::default()
///     .timeout(Duration::from_secs(5))
///     .bearer_token("s3cr3t")
///     .header("X-Scope-OrgID", "team-a");
/// assert_eq!(options.timeout, Duration::from_secs(5));
/// assert!(!format!("{options:?}").contains("s3cr3t"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// Bound on a whole request (connect, send, answer). Default 10 s.
    pub timeout: Duration,
    /// Credentials. Default none.
    pub auth: Auth,
    /// Extra headers sent with every request (for example a tenant header).
    pub headers: Vec<(String, String)>,
    /// Certificate verification for `https://` URLs.
    pub tls: TlsVerification,
    /// POST (default) or GET.
    pub method: RequestMethod,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            auth: Auth::None,
            headers: Vec::new(),
            tls: TlsVerification::Platform,
            method: RequestMethod::Post,
        }
    }
}

impl ClientOptions {
    /// Sets the request timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Authenticates with a bearer token.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.auth = Auth::Bearer(token.into());
        self
    }

    /// Authenticates with HTTP basic auth.
    pub fn basic_auth(mut self, username: impl Into<String>, password: Option<String>) -> Self {
        self.auth = Auth::Basic {
            username: username.into(),
            password,
        };
        self
    }

    /// Adds a header sent with every request.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Trusts only these CA certificates (PEM) for `https://` URLs.
    pub fn ca_pem(mut self, pem: impl Into<String>) -> Self {
        self.tls = TlsVerification::CaPem(pem.into());
        self
    }

    /// Skips TLS certificate verification. For test setups only.
    pub fn insecure_skip_tls_verify(mut self) -> Self {
        self.tls = TlsVerification::InsecureSkipVerify;
        self
    }

    /// Sends queries as GET instead of POST.
    pub fn method(mut self, method: RequestMethod) -> Self {
        self.method = method;
        self
    }
}

/// The evaluation window of a range query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeRange {
    /// First evaluation time.
    pub start: SystemTime,
    /// Last evaluation time (inclusive when on a step).
    pub end: SystemTime,
    /// Distance between evaluations.
    pub step: Duration,
}

/// A client for the Prometheus HTTP API. Cheap to clone (one `Arc`), so a shared context can hold it and
/// every handler can use it concurrently.
///
/// ```no_run
/// use autopilot_metrics::{ClientOptions, PrometheusClient, Provider, Variables};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let client = PrometheusClient::new("http://prometheus.monitoring:9090", ClientOptions::default())?;
/// let vars = Variables::new().namespace("shop").target("checkout").interval("1m");
/// match client.success_rate(Provider::Istio, &vars).await? {
///     Some(rate) if !rate.is_nan() => println!("success rate {rate:.2} %"),
///     _ => println!("no traffic yet"),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PrometheusClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    query_url: Url,
    range_url: Url,
    auth: Auth,
    method: RequestMethod,
    timeout: Duration,
}

impl fmt::Debug for PrometheusClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrometheusClient")
            .field("base", &self.inner.base.as_str())
            .field("auth", &self.inner.auth)
            .field("method", &self.inner.method)
            .field("timeout", &self.inner.timeout)
            .finish()
    }
}

impl PrometheusClient {
    /// Builds a client for the Prometheus at `base_url`. A path prefix is kept
    /// (`http://host/prometheus` queries `http://host/prometheus/api/v1/query`).
    ///
    /// ```
    /// use autopilot_metrics::{ClientOptions, PrometheusClient};
    ///
    /// let client = PrometheusClient::new("https://monitoring.example/prom", ClientOptions::default())?;
    /// assert_eq!(client.base_url().as_str(), "https://monitoring.example/prom/");
    /// assert!(PrometheusClient::new("ftp://example", ClientOptions::default()).is_err());
    /// # Ok::<(), autopilot_metrics::ConfigError>(())
    /// ```
    pub fn new(base_url: &str, options: ClientOptions) -> Result<Self, ConfigError> {
        let base = base_url_of(base_url)?;
        let join = |path: &str| {
            base.join(path).map_err(|source| ConfigError::InvalidUrl {
                url: base_url.to_owned(),
                source,
            })
        };
        let (query_url, range_url) = (join("api/v1/query")?, join("api/v1/query_range")?);
        let http = http_client(&options)?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                query_url,
                range_url,
                auth: options.auth,
                method: options.method,
                timeout: options.timeout,
            }),
        })
    }

    /// The base URL queries are sent under (always ends with `/`).
    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    /// Runs an instant query at `time` (Prometheus' "now" when `None`).
    ///
    /// ```no_run
    /// # use autopilot_metrics::{ClientOptions, PrometheusClient, QueryData};
    /// # async fn demo(client: PrometheusClient) -> Result<(), autopilot_metrics::QueryError> {
    /// let answer = client.query("up", None).await?;
    /// if let QueryData::Vector(series) = answer.data {
    ///     for s in series {
    ///         println!("{:?} = {}", s.metric.get("instance"), s.value.value);
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn query(
        &self,
        promql: &str,
        time: Option<SystemTime>,
    ) -> Result<QueryResponse, QueryError> {
        let mut params = vec![("query", promql.to_owned())];
        if let Some(time) = time {
            params.push(("time", unix_seconds(time)));
        }
        self.call(&self.inner.query_url, &params, promql).await
    }

    /// Runs a range query; the answer is a matrix.
    ///
    /// ```no_run
    /// # use autopilot_metrics::{PrometheusClient, TimeRange};
    /// # use std::time::{Duration, SystemTime};
    /// # async fn demo(client: PrometheusClient) -> Result<(), autopilot_metrics::QueryError> {
    /// let end = SystemTime::now();
    /// let range = TimeRange { start: end - Duration::from_secs(600), end, step: Duration::from_secs(60) };
    /// let answer = client.query_range("sum(rate(http_requests_total[1m]))", &range).await?;
    /// println!("{:?}", answer.data);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn query_range(
        &self,
        promql: &str,
        range: &TimeRange,
    ) -> Result<QueryResponse, QueryError> {
        let params = [
            ("query", promql.to_owned()),
            ("start", unix_seconds(range.start)),
            ("end", unix_seconds(range.end)),
            ("step", format!("{}", range.step.as_secs_f64())),
        ];
        self.call(&self.inner.range_url, &params, promql).await
    }

    /// Runs an instant query that should produce one number: `Ok(None)` when the result is an empty vector,
    /// `Ok(Some(v))` for a scalar or a one-series vector (`v` may be NaN or ±Inf). Several series, a matrix
    /// or a string are errors.
    ///
    /// ```no_run
    /// # use autopilot_metrics::PrometheusClient;
    /// # async fn demo(client: PrometheusClient) -> Result<(), autopilot_metrics::Error> {
    /// let value = client.query_value("sum(up)", None).await?;
    /// println!("{value:?}");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn query_value(
        &self,
        promql: &str,
        time: Option<SystemTime>,
    ) -> Result<Option<f64>, Error> {
        single_value(self.query(promql, time).await?.data)
    }

    /// The request success rate (%) of `target` in `namespace` over `interval`, from the provider's
    /// built-in query. `None` when there is no data; NaN when there was no traffic.
    pub async fn success_rate(
        &self,
        provider: Provider,
        vars: &Variables,
    ) -> Result<Option<f64>, Error> {
        self.builtin(provider, BuiltinMetric::RequestSuccessRate, vars, None)
            .await
    }

    /// The p99 request duration (ms) of `target` in `namespace` over `interval`, from the provider's
    /// built-in query. `None` when there is no data; NaN when there was no traffic.
    pub async fn request_duration_p99(
        &self,
        provider: Provider,
        vars: &Variables,
    ) -> Result<Option<f64>, Error> {
        self.builtin(provider, BuiltinMetric::RequestDuration, vars, None)
            .await
    }

    /// A built-in metric's value at `time` (now when `None`).
    ///
    /// ```no_run
    /// # use autopilot_metrics::{BuiltinMetric, PrometheusClient, Provider, Variables};
    /// # async fn demo(client: PrometheusClient) -> Result<(), autopilot_metrics::Error> {
    /// let vars = Variables::new().namespace("shop").target("checkout").interval("1m");
    /// let p99 = client.builtin(Provider::Linkerd, BuiltinMetric::RequestDuration, &vars, None).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn builtin(
        &self,
        provider: Provider,
        metric: BuiltinMetric,
        vars: &Variables,
        time: Option<SystemTime>,
    ) -> Result<Option<f64>, Error> {
        let query = provider.query(metric).render(vars)?;
        self.query_value(&query, time).await
    }

    async fn call(
        &self,
        url: &Url,
        params: &[(&str, String)],
        promql: &str,
    ) -> Result<QueryResponse, QueryError> {
        let inner = &self.inner;
        let request = match inner.method {
            RequestMethod::Post => inner.http.post(url.clone()).form(params),
            RequestMethod::Get => inner.http.get(url.clone()).query(params),
        };
        let request = match &inner.auth {
            Auth::Basic { username, password } => request.basic_auth(username, password.as_deref()),
            Auth::None | Auth::Bearer(_) => request,
        };
        let started = Instant::now();
        let transport = |source| transport_error(url, inner.timeout, source);
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let body = response.bytes().await.map_err(transport)?;
        tracing::debug!(query = promql, %status, elapsed = ?started.elapsed(), "prometheus query");

        let envelope = match serde_json::from_slice::<Envelope>(&body) {
            Ok(envelope) => envelope,
            Err(_) if !status.is_success() => {
                return Err(QueryError::HttpStatus {
                    status,
                    body: snippet(&body),
                });
            }
            Err(source) => {
                return Err(QueryError::Decode {
                    status,
                    body: snippet(&body),
                    source,
                });
            }
        };
        if envelope.status != "success" {
            return Err(QueryError::Prometheus {
                error_type: ErrorType::parse(envelope.error_type.as_deref().unwrap_or("")),
                message: envelope.error.unwrap_or_default(),
                status,
            });
        }
        if !status.is_success() {
            return Err(QueryError::HttpStatus {
                status,
                body: snippet(&body),
            });
        }
        let Some(data) = envelope.data else {
            let source = <serde_json::Error as serde::de::Error>::missing_field("data");
            return Err(QueryError::Decode {
                status,
                body: snippet(&body),
                source,
            });
        };
        for warning in &envelope.warnings {
            tracing::warn!(query = promql, warning = %warning, "prometheus warning");
        }
        Ok(QueryResponse {
            data,
            warnings: envelope.warnings,
        })
    }
}

/// Parses an `http(s)://` base URL and makes sure its path ends with `/`, so relative API paths
/// join under a path prefix instead of replacing its last segment.
pub(crate) fn base_url_of(base_url: &str) -> Result<Url, ConfigError> {
    let mut base = Url::parse(base_url).map_err(|source| ConfigError::InvalidUrl {
        url: base_url.to_owned(),
        source,
    })?;
    if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
        return Err(ConfigError::UnsupportedUrl(base_url.to_owned()));
    }
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    Ok(base)
}

/// The HTTP client the options describe: extra headers, bearer token, TLS and timeouts. Basic
/// auth is added per request.
pub(crate) fn http_client(options: &ClientOptions) -> Result<reqwest::Client, ConfigError> {
    let mut headers = HeaderMap::new();
    for (name, value) in &options.headers {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|source| {
            ConfigError::InvalidHeaderName {
                name: name.clone(),
                source,
            }
        })?;
        let value =
            HeaderValue::from_str(value).map_err(|source| ConfigError::InvalidHeaderValue {
                name: name.clone(),
                source,
            })?;
        headers.append(header, value);
    }
    if let Auth::Bearer(token) = &options.auth {
        let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|source| {
            ConfigError::InvalidHeaderValue {
                name: "authorization".to_owned(),
                source,
            }
        })?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls::client_config(&options.tls)?)
        .default_headers(headers)
        .timeout(options.timeout)
        .connect_timeout(options.timeout)
        .build()
        .map_err(ConfigError::Http)
}

/// Classifies a transport failure of a request to `url`.
pub(crate) fn transport_error(url: &Url, timeout: Duration, source: reqwest::Error) -> QueryError {
    let url = url.to_string();
    if source.is_timeout() {
        QueryError::Timeout {
            url,
            timeout,
            source,
        }
    } else if source.is_connect() {
        QueryError::Connect { url, source }
    } else {
        QueryError::Transport { url, source }
    }
}

/// Reads one number out of an instant query's result.
fn single_value(data: QueryData) -> Result<Option<f64>, Error> {
    match data {
        QueryData::Scalar(sample) => Ok(Some(sample.value)),
        QueryData::Vector(series) => match series.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one.value.value)),
            many => Err(Error::AmbiguousResult(many.len())),
        },
        other => Err(Error::UnexpectedResultType(other.result_type())),
    }
}

/// Unix seconds with millisecond precision, as the API accepts them.
fn unix_seconds(time: SystemTime) -> String {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => format!("{:.3}", d.as_secs_f64()),
        Err(before) => format!("-{:.3}", before.duration().as_secs_f64()),
    }
}

/// The start of a body, for error messages.
pub(crate) fn snippet(body: &[u8]) -> String {
    const MAX: usize = 512;
    let text = String::from_utf8_lossy(body);
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_can_live_in_a_shared_context() {
        fn shareable<T: Clone + Send + Sync + 'static>() {}
        shareable::<PrometheusClient>();
    }

    #[test]
    fn base_url_keeps_path_prefix() {
        let c = PrometheusClient::new("http://h:9090/prom", ClientOptions::default()).unwrap();
        assert_eq!(
            c.inner.query_url.as_str(),
            "http://h:9090/prom/api/v1/query"
        );
        assert_eq!(
            c.inner.range_url.as_str(),
            "http://h:9090/prom/api/v1/query_range"
        );
        let c = PrometheusClient::new("http://h:9090", ClientOptions::default()).unwrap();
        assert_eq!(c.inner.query_url.as_str(), "http://h:9090/api/v1/query");
    }

    #[test]
    fn bad_options_are_config_errors() {
        let bad_header = ClientOptions::default().header("bad header", "x");
        assert!(matches!(
            PrometheusClient::new("http://h", bad_header),
            Err(ConfigError::InvalidHeaderName { .. })
        ));
        let bad_value = ClientOptions::default().header("x-a", "line\nbreak");
        assert!(matches!(
            PrometheusClient::new("http://h", bad_value),
            Err(ConfigError::InvalidHeaderValue { .. })
        ));
        assert!(matches!(
            PrometheusClient::new("not a url", ClientOptions::default()),
            Err(ConfigError::InvalidUrl { .. })
        ));
        assert!(matches!(
            PrometheusClient::new("http://h", ClientOptions::default().ca_pem("no pem here")),
            Err(ConfigError::EmptyCaPem)
        ));
    }

    #[test]
    fn debug_hides_secrets() {
        let options = ClientOptions::default().basic_auth("me", Some("hunter2".into()));
        let client = PrometheusClient::new("http://h", options).unwrap();
        let shown = format!("{client:?}");
        assert!(
            shown.contains("me") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn unix_seconds_format() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_250);
        assert_eq!(unix_seconds(t), "1700000000.250");
    }

    #[test]
    fn single_value_shapes() {
        let vector = |n: usize| {
            QueryData::Vector(
                (0..n)
                    .map(|i| crate::InstantSample {
                        metric: [("i".to_owned(), i.to_string())].into(),
                        value: crate::Sample {
                            timestamp: 0.0,
                            value: 1.0,
                        },
                    })
                    .collect(),
            )
        };
        assert_eq!(single_value(vector(0)).unwrap(), None);
        assert_eq!(single_value(vector(1)).unwrap(), Some(1.0));
        assert!(matches!(
            single_value(vector(2)),
            Err(Error::AmbiguousResult(2))
        ));
        assert!(matches!(
            single_value(QueryData::Matrix(vec![])),
            Err(Error::UnexpectedResultType("matrix"))
        ));
    }
}
