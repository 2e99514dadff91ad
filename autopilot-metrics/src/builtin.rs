//! Built-in queries per mesh: request success rate (%) and p99 request duration (ms), with Flagger's
//! metric names and label shapes. Every query uses the variables `namespace`, `target` and `interval`.

use std::fmt;
use std::str::FromStr;

use crate::template::QueryTemplate;

/// Which telemetry the built-in queries read.
///
/// ```
/// use autopilot_metrics::Provider;
///
/// assert_eq!("istio".parse::<Provider>().unwrap(), Provider::Istio);
/// assert_eq!("gatewayapi".parse::<Provider>().unwrap(), Provider::Envoy);
/// assert!("consul".parse::<Provider>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum Provider {
    /// Istio sidecar metrics (`istio_requests_total`, `istio_request_duration_milliseconds`), reported by
    /// the destination workload.
    Istio,
    /// Linkerd proxy metrics (`response_total`, `response_latency_ms`), inbound to the deployment.
    Linkerd,
    /// Envoy cluster metrics (`envoy_cluster_upstream_rq`, `envoy_cluster_upstream_rq_time`) as exposed by
    /// Envoy-based Gateway API implementations, for the upstream cluster of `<target>-canary` in
    /// `<namespace>` (cluster names `<namespace>_<target>-canary_<port>`).
    Envoy,
}

impl Provider {
    /// Every provider.
    pub const ALL: [Provider; 3] = [Provider::Istio, Provider::Linkerd, Provider::Envoy];

    /// The canonical name (`istio`, `linkerd`, `envoy`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Istio => "istio",
            Self::Linkerd => "linkerd",
            Self::Envoy => "envoy",
        }
    }

    /// The query for a built-in metric.
    ///
    /// ```
    /// use autopilot_metrics::{BuiltinMetric, Provider, Variables};
    ///
    /// let query = Provider::Linkerd
    ///     .query(BuiltinMetric::RequestDuration)
    ///     .render(&Variables::new().namespace("shop").target("web").interval("1m"))?;
    /// assert!(query.starts_with("histogram_quantile(0.99, sum(rate(response_latency_ms_bucket{"));
    /// # Ok::<(), autopilot_metrics::TemplateError>(())
    /// ```
    pub fn query(self, metric: BuiltinMetric) -> QueryTemplate {
        use BuiltinMetric::{RequestDuration, RequestSuccessRate};
        QueryTemplate::from_static(match (self, metric) {
            (Self::Istio, RequestSuccessRate) => ISTIO_SUCCESS_RATE,
            (Self::Istio, RequestDuration) => ISTIO_DURATION,
            (Self::Linkerd, RequestSuccessRate) => LINKERD_SUCCESS_RATE,
            (Self::Linkerd, RequestDuration) => LINKERD_DURATION,
            (Self::Envoy, RequestSuccessRate) => ENVOY_SUCCESS_RATE,
            (Self::Envoy, RequestDuration) => ENVOY_DURATION,
        })
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown provider name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown metrics provider `{0}` (expected istio, linkerd, envoy or gatewayapi)")]
pub struct UnknownProvider(pub String);

impl TryFrom<String> for Provider {
    type Error = UnknownProvider;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Provider> for &'static str {
    fn from(provider: Provider) -> Self {
        provider.as_str()
    }
}

impl FromStr for Provider {
    type Err = UnknownProvider;

    /// Accepts `istio`, `linkerd`, and `envoy` / `gatewayapi` / `gateway-api` (any case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "istio" => Ok(Self::Istio),
            "linkerd" => Ok(Self::Linkerd),
            "envoy" | "gatewayapi" | "gateway-api" => Ok(Self::Envoy),
            _ => Err(UnknownProvider(s.to_owned())),
        }
    }
}

/// The built-in metrics, named as in Flagger's analysis (`request-success-rate`, `request-duration`).
///
/// ```
/// use autopilot_metrics::BuiltinMetric;
///
/// let metric: BuiltinMetric = "request-success-rate".parse().unwrap();
/// assert_eq!(metric, BuiltinMetric::RequestSuccessRate);
/// assert_eq!(metric.default_threshold().min, Some(99.0));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum BuiltinMetric {
    /// Percentage (0-100) of requests that did not fail with a 5xx (or a failure classification).
    RequestSuccessRate,
    /// 99th percentile of request duration, in milliseconds.
    RequestDuration,
}

impl BuiltinMetric {
    /// The metric's name (`request-success-rate` or `request-duration`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RequestSuccessRate => "request-success-rate",
            Self::RequestDuration => "request-duration",
        }
    }

    /// The customary thresholds: success rate at least 99 %, p99 duration at most 500 ms.
    pub fn default_threshold(self) -> crate::ThresholdRange {
        match self {
            Self::RequestSuccessRate => crate::ThresholdRange::at_least(99.0),
            Self::RequestDuration => crate::ThresholdRange::at_most(500.0),
        }
    }
}

impl fmt::Display for BuiltinMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown built-in metric name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown built-in metric `{0}` (expected request-success-rate or request-duration)")]
pub struct UnknownMetric(pub String);

impl TryFrom<String> for BuiltinMetric {
    type Error = UnknownMetric;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<BuiltinMetric> for &'static str {
    fn from(metric: BuiltinMetric) -> Self {
        metric.as_str()
    }
}

impl FromStr for BuiltinMetric {
    type Err = UnknownMetric;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "request-success-rate" => Ok(Self::RequestSuccessRate),
            "request-duration" => Ok(Self::RequestDuration),
            _ => Err(UnknownMetric(s.to_owned())),
        }
    }
}

const ISTIO_SUCCESS_RATE: &str = concat!(
    r#"sum(rate(istio_requests_total{reporter="destination", destination_workload_namespace="{{ namespace }}", "#,
    r#"destination_workload=~"{{ target }}", response_code!~"5.*"}[{{ interval }}])) / "#,
    r#"sum(rate(istio_requests_total{reporter="destination", destination_workload_namespace="{{ namespace }}", "#,
    r#"destination_workload=~"{{ target }}"}[{{ interval }}])) * 100"#,
);

const ISTIO_DURATION: &str = concat!(
    r#"histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{reporter="destination", "#,
    r#"destination_workload_namespace="{{ namespace }}", destination_workload=~"{{ target }}"}[{{ interval }}])) "#,
    r#"by (le))"#,
);

const LINKERD_SUCCESS_RATE: &str = concat!(
    r#"sum(rate(response_total{namespace="{{ namespace }}", deployment=~"{{ target }}", "#,
    r#"classification!="failure", direction="inbound"}[{{ interval }}])) / "#,
    r#"sum(rate(response_total{namespace="{{ namespace }}", deployment=~"{{ target }}", "#,
    r#"direction="inbound"}[{{ interval }}])) * 100"#,
);

const LINKERD_DURATION: &str = concat!(
    r#"histogram_quantile(0.99, sum(rate(response_latency_ms_bucket{namespace="{{ namespace }}", "#,
    r#"deployment=~"{{ target }}", direction="inbound"}[{{ interval }}])) by (le))"#,
);

const ENVOY_SUCCESS_RATE: &str = concat!(
    r#"sum(rate(envoy_cluster_upstream_rq{envoy_cluster_name=~"{{ namespace }}_{{ target }}-canary_[0-9a-zA-Z-]+", "#,
    r#"envoy_response_code!~"5.*"}[{{ interval }}])) / "#,
    r#"sum(rate(envoy_cluster_upstream_rq{envoy_cluster_name=~"{{ namespace }}_{{ target }}-canary_[0-9a-zA-Z-]+"}"#,
    r#"[{{ interval }}])) * 100"#,
);

const ENVOY_DURATION: &str = concat!(
    r#"histogram_quantile(0.99, sum(rate(envoy_cluster_upstream_rq_time_bucket{"#,
    r#"envoy_cluster_name=~"{{ namespace }}_{{ target }}-canary_[0-9a-zA-Z-]+"}[{{ interval }}])) by (le))"#,
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Variables;

    #[test]
    fn every_builtin_parses_and_uses_the_three_variables() {
        for provider in Provider::ALL {
            for metric in [
                BuiltinMetric::RequestSuccessRate,
                BuiltinMetric::RequestDuration,
            ] {
                let template = provider.query(metric);
                let parsed = QueryTemplate::new(template.source()).unwrap();
                let mut names = parsed.variables().unwrap();
                names.sort();
                assert_eq!(
                    names,
                    ["interval", "namespace", "target"],
                    "{provider} {metric}"
                );
            }
        }
    }

    #[test]
    fn istio_success_rate_renders_flaggers_shape() {
        let vars = Variables::new()
            .namespace("test")
            .target("podinfo")
            .interval("1m");
        let q = Provider::Istio
            .query(BuiltinMetric::RequestSuccessRate)
            .render(&vars)
            .unwrap();
        assert_eq!(
            q,
            "sum(rate(istio_requests_total{reporter=\"destination\", destination_workload_namespace=\"test\", \
             destination_workload=~\"podinfo\", response_code!~\"5.*\"}[1m])) / \
             sum(rate(istio_requests_total{reporter=\"destination\", destination_workload_namespace=\"test\", \
             destination_workload=~\"podinfo\"}[1m])) * 100"
        );
    }

    #[test]
    fn envoy_cluster_regex_escapes_only_the_values() {
        let vars = Variables::new()
            .namespace("te.st")
            .target("pod")
            .interval("30s");
        let q = Provider::Envoy
            .query(BuiltinMetric::RequestDuration)
            .render(&vars)
            .unwrap();
        assert!(
            q.contains(r#"envoy_cluster_name=~"te\\.st_pod-canary_[0-9a-zA-Z-]+""#),
            "{q}"
        );
    }

    #[test]
    fn names_round_trip() {
        for provider in Provider::ALL {
            assert_eq!(provider.as_str().parse::<Provider>().unwrap(), provider);
        }
        assert_eq!("Gateway-API".parse::<Provider>().unwrap(), Provider::Envoy);
        for metric in [
            BuiltinMetric::RequestSuccessRate,
            BuiltinMetric::RequestDuration,
        ] {
            assert_eq!(metric.as_str().parse::<BuiltinMetric>().unwrap(), metric);
        }
        assert!("latency".parse::<BuiltinMetric>().is_err());
        assert_eq!(
            serde_json::to_string(&Provider::Envoy).unwrap(),
            r#""envoy""#
        );
        assert_eq!(
            serde_json::from_str::<Provider>(r#""gatewayapi""#).unwrap(),
            Provider::Envoy
        );
        assert!(serde_json::from_str::<Provider>(r#""smi""#).is_err());
        assert_eq!(
            serde_json::from_str::<BuiltinMetric>(r#""request-duration""#).unwrap(),
            BuiltinMetric::RequestDuration
        );
    }
}
