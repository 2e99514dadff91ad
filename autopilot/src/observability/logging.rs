//! Log output: text or JSON lines, filtered by `tracing-subscriber`'s env-filter directives.

use std::io::IsTerminal;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The default filter: everything at `info` (the operator's own handlers included).
pub const DEFAULT_LOG_FILTER: &str = "info";

/// Errors of logging set-up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The filter is not valid env-filter syntax.
    #[error("invalid log filter `{filter}`")]
    Filter {
        /// The rejected filter.
        filter: String,
        /// Why it was rejected.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// The format is neither `text` nor `json`.
    #[error("unknown log format `{0}` (expected `text` or `json`)")]
    Format(String),
    /// A global subscriber was already installed.
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled(#[source] tracing_subscriber::util::TryInitError),
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines, with the spans' fields (object, phase, generation) before the message.
    #[default]
    Text,
    /// One JSON object per line with `span` and `spans` holding the spans' fields, for log pipelines.
    Json,
}

impl FromStr for LogFormat {
    type Err = LoggingError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(LoggingError::Format(s.to_owned())),
        }
    }
}

/// Log settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogConfig {
    /// Text or JSON.
    pub format: LogFormat,
    /// env-filter directives, e.g. `info` or `warn,autopilot=debug,kube=info`.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: DEFAULT_LOG_FILTER.to_owned(),
        }
    }
}

/// Builds the subscriber for `config`, writing plain (uncoloured) lines to `writer` (a file, a test buffer).
///
/// ```
/// use autopilot::observability::{subscriber, LogConfig, LogFormat};
/// let config = LogConfig { format: LogFormat::Json, filter: "info".into() };
/// let subscriber = subscriber(&config, std::io::sink).unwrap();
/// tracing::subscriber::with_default(subscriber, || tracing::info!("hello"));
/// ```
pub fn subscriber<W>(
    config: &LogConfig,
    writer: W,
) -> Result<impl Subscriber + Send + Sync + 'static, LoggingError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    build(config, writer, false)
}

fn build<W>(
    config: &LogConfig,
    writer: W,
    ansi: bool,
) -> Result<impl Subscriber + Send + Sync + 'static, LoggingError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(&config.filter).map_err(|source| LoggingError::Filter {
        filter: config.filter.clone(),
        source,
    })?;
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi);
    let layer = match config.format {
        LogFormat::Text => tracing_subscriber::Layer::boxed(layer),
        LogFormat::Json => tracing_subscriber::Layer::boxed(
            layer.json().with_current_span(true).with_span_list(true),
        ),
    };
    Ok(tracing_subscriber::registry().with(filter).with(layer))
}

/// Installs the process-wide subscriber for `config`, writing to stderr (coloured text only on a terminal).
pub fn init_logging(config: &LogConfig) -> Result<(), LoggingError> {
    let ansi = config.format == LogFormat::Text && std::io::stderr().is_terminal();
    build(config, std::io::stderr, ansi)?
        .try_init()
        .map_err(LoggingError::AlreadyInstalled)
}
