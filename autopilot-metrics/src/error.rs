//! Errors: building a client, talking to Prometheus, and reading a single value out of an answer.

use std::fmt;
use std::time::Duration;

use reqwest::StatusCode;

use crate::template::TemplateError;

/// A [`PrometheusClient`](crate::PrometheusClient) could not be built from its options.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The base URL does not parse.
    #[error("invalid Prometheus URL `{url}`")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it does not parse.
        #[source]
        source: url::ParseError,
    },
    /// The base URL is not `http` or `https`, or cannot carry a path.
    #[error("Prometheus URL `{0}` must be an http:// or https:// URL")]
    UnsupportedUrl(String),
    /// An extra header has an invalid name.
    #[error("invalid header name `{name}`")]
    InvalidHeaderName {
        /// The name as given.
        name: String,
        /// Why it is invalid.
        #[source]
        source: reqwest::header::InvalidHeaderName,
    },
    /// An extra header or a credential has a value that cannot be sent in a header.
    #[error("invalid value for header `{name}`")]
    InvalidHeaderValue {
        /// The header the value was meant for.
        name: String,
        /// Why it is invalid.
        #[source]
        source: reqwest::header::InvalidHeaderValue,
    },
    /// The CA bundle is not PEM.
    #[error("invalid CA certificate PEM")]
    InvalidCaPem(#[source] rustls::pki_types::pem::Error),
    /// The CA bundle holds no certificate.
    #[error("the CA PEM holds no certificate")]
    EmptyCaPem,
    /// rustls refused the TLS settings (for example an unusable CA certificate).
    #[error("TLS setup failed")]
    Tls(#[source] rustls::Error),
    /// The certificate verifier could not be set up.
    #[error("TLS certificate verifier setup failed")]
    Verifier(#[source] rustls::server::VerifierBuilderError),
    /// The HTTP client could not be built.
    #[error("HTTP client setup failed")]
    Http(#[source] reqwest::Error),
    /// A file named in the configuration (token, CA) cannot be read.
    #[error("cannot read {}", path.display())]
    ReadFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// More than one way to authenticate was configured.
    #[error("configure either a bearer token (or token file) or basic auth, not both")]
    ConflictingAuth,
    /// A CA file and insecure mode were both configured.
    #[error("configure either a CA file or insecureSkipVerify, not both")]
    ConflictingTls,
}

/// The `errorType` of a Prometheus error answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorType {
    /// `bad_data`: the query or a parameter is invalid (for example a PromQL syntax error).
    BadData,
    /// `timeout`: the query ran longer than the server allows.
    Timeout,
    /// `canceled`: the query was canceled.
    Canceled,
    /// `execution`: the query failed while running.
    Execution,
    /// `internal`: the server failed.
    Internal,
    /// `unavailable`: the server cannot answer right now.
    Unavailable,
    /// `not_found`: the endpoint does not exist.
    NotFound,
    /// Any other `errorType`.
    Other(String),
}

impl ErrorType {
    pub(crate) fn parse(raw: &str) -> Self {
        match raw {
            "bad_data" => Self::BadData,
            "timeout" => Self::Timeout,
            "canceled" => Self::Canceled,
            "execution" => Self::Execution,
            "internal" => Self::Internal,
            "unavailable" => Self::Unavailable,
            "not_found" => Self::NotFound,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The wire name, as Prometheus spells it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::BadData => "bad_data",
            Self::Timeout => "timeout",
            Self::Canceled => "canceled",
            Self::Execution => "execution",
            Self::Internal => "internal",
            Self::Unavailable => "unavailable",
            Self::NotFound => "not_found",
            Self::Other(other) => other,
        }
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request to the Prometheus HTTP API failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// No connection could be made (refused, unresolvable host, TLS handshake failure).
    #[error("cannot connect to Prometheus at {url}")]
    Connect {
        /// The endpoint called.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// Prometheus did not answer within the client's timeout.
    #[error("Prometheus at {url} did not answer within {timeout:?}")]
    Timeout {
        /// The endpoint called.
        url: String,
        /// The configured timeout.
        timeout: Duration,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The request failed on the way (connection reset, body cut short, ...).
    #[error("request to Prometheus at {url} failed")]
    Transport {
        /// The endpoint called.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// Prometheus (or a proxy in front of it) answered with a non-success status and no API error body.
    #[error("Prometheus answered HTTP {status}: {body}")]
    HttpStatus {
        /// The HTTP status.
        status: StatusCode,
        /// The start of the body, for the log.
        body: String,
    },
    /// Prometheus answered `"status": "error"`.
    #[error("Prometheus rejected the query ({error_type}, HTTP {status}): {message}")]
    Prometheus {
        /// The `errorType` field.
        error_type: ErrorType,
        /// The `error` field.
        message: String,
        /// The HTTP status it came with.
        status: StatusCode,
    },
    /// The answer is not a Prometheus API response.
    #[error("cannot decode Prometheus' answer (HTTP {status}): {body}")]
    Decode {
        /// The HTTP status.
        status: StatusCode,
        /// The start of the body, for the log.
        body: String,
        /// Why it does not decode.
        #[source]
        source: serde_json::Error,
    },
}

/// Reading one value (for a check or a built-in query) failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The query could not be rendered from its template.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// Prometheus could not be asked, or refused.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The answer is a range vector or a string, not a single number.
    #[error("expected a scalar or an instant vector, got a {0}")]
    UnexpectedResultType(&'static str),
    /// The answer holds several series; the query should aggregate them (for example with `sum`).
    #[error("expected at most one series, got {0}; aggregate the query (e.g. with sum)")]
    AmbiguousResult(usize),
}
