//! Operator configuration from a YAML file, `AUTOPILOT_*` environment variables and command-line flags.
//!
//! Later sources win: defaults < file < environment < flags. Every setting has one name per source, listed
//! by `--help`; a bad value fails at start with an error naming the setting and where it came from.
//!
//! ```
//! use autopilot::config::{MeshProvider, OperatorConfig};
//! use std::time::Duration;
//!
//! let file = "meshProvider: linkerd\nworkInterval: 10s\nleaderElection:\n  enabled: true\n";
//! let env = |name: &str| (name == "AUTOPILOT_WORK_INTERVAL").then(|| "20s".to_owned());
//! let config = OperatorConfig::from_sources(Some(file), env, ["operator", "--watch-namespace", "shop"])?;
//! assert_eq!(config.mesh_provider, MeshProvider::Linkerd);
//! assert_eq!(config.work_interval, Duration::from_secs(20)); // the environment beats the file
//! assert_eq!(config.watch_namespace.as_deref(), Some("shop"));
//! assert!(config.leader_election_enabled);
//!
//! let err = OperatorConfig::from_sources(None, |_| None, ["operator", "--work-interval", "soon"]).unwrap_err();
//! assert!(err.to_string().contains("workInterval"));
//! # Ok::<(), autopilot::config::ConfigError>(())
//! ```

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Arg, ArgAction, Command};
use kube::{
    Client,
    config::{KubeConfigOptions, Kubeconfig, KubeconfigError},
};

pub use autopilot_mesh::MeshProvider;

use crate::{
    leader::{LeaderElectionConfig, LeaderError},
    observability::{LogConfig, LogFormat},
};
use serde_json::Value;

/// Errors loading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A setting has a value that cannot be used.
    #[error("invalid {field} (from {source_name}): {problem}")]
    Invalid {
        /// The setting's name in the config file (`leaderElection.leaseName`).
        field: &'static str,
        /// Where the value came from (`--lease-name`, `AUTOPILOT_LEASE_NAME`, the file, the default).
        source_name: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The config file has a key this operator does not know.
    #[error("unknown setting `{0}` in the config file")]
    UnknownField(String),
    /// The config file could not be read.
    #[error("reading config file {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid YAML.
    #[error("parsing the config file")]
    Yaml(#[source] Box<serde_saphyr::Error>),
    /// The command line is malformed (or asks for `--help`).
    #[error(transparent)]
    Flags(#[from] clap::Error),
}

/// Errors connecting to the cluster the configuration names ([`OperatorConfig::client`]).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The kubeconfig file cannot be read or does not describe a usable cluster.
    #[error("using kubeconfig {}", path.display())]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: KubeconfigError,
    },
    /// No client could be built (from the file, or from the environment without one).
    #[error("connecting to the Kubernetes API")]
    Client(#[source] kube::Error),
}

/// The operator's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorConfig {
    /// The kubeconfig file to connect with; `None` uses the environment (`KUBECONFIG`, `~/.kube/config`,
    /// or the pod's service account).
    pub kubeconfig: Option<PathBuf>,
    /// The mesh whose routing is driven.
    pub mesh_provider: MeshProvider,
    /// Base URL of the Prometheus HTTP API.
    pub prometheus_url: String,
    /// Only watch this namespace (all namespaces when `None`).
    pub watch_namespace: Option<String>,
    /// How often a phase that asked for [`Transition::recheck`](crate::Transition::recheck) runs again.
    pub work_interval: Duration,
    /// At most this many objects are handled at once.
    pub concurrency: u16,
    /// Logging (install with [`init_logging`](crate::observability::init_logging)).
    pub log: LogConfig,
    /// Address of the `/metrics`, `/healthz` and `/readyz` server.
    pub metrics_address: SocketAddr,
    /// How long in-flight handlers may finish after SIGTERM before the Lease is released.
    pub shutdown_grace_period: Duration,
    /// Whether only the holder of the Lease below runs handlers.
    pub leader_election_enabled: bool,
    /// The Lease and its timings.
    pub leader_election: LeaderElectionConfig,
}

impl Default for OperatorConfig {
    fn default() -> Self {
        Self {
            kubeconfig: None,
            mesh_provider: MeshProvider::Istio,
            prometheus_url: "http://prometheus.istio-system:9090".into(),
            watch_namespace: None,
            work_interval: Duration::from_secs(30),
            concurrency: 16,
            log: LogConfig::default(),
            metrics_address: SocketAddr::from(([0, 0, 0, 0], 8080)),
            shutdown_grace_period: crate::shutdown::DEFAULT_GRACE_PERIOD,
            leader_election_enabled: false,
            leader_election: LeaderElectionConfig::new("autopilot", "default"),
        }
    }
}

/// Every setting, with its name in each source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Kubeconfig,
    MeshProvider,
    PrometheusUrl,
    WatchNamespace,
    WorkInterval,
    Concurrency,
    LogLevel,
    LogFormat,
    MetricsAddress,
    ShutdownGracePeriod,
    LeaderElection,
    LeaseName,
    LeaseNamespace,
    LeaseDuration,
    RenewDeadline,
    RetryPeriod,
}

impl Key {
    const ALL: [Self; 16] = [
        Self::Kubeconfig,
        Self::MeshProvider,
        Self::PrometheusUrl,
        Self::WatchNamespace,
        Self::WorkInterval,
        Self::Concurrency,
        Self::LogLevel,
        Self::LogFormat,
        Self::MetricsAddress,
        Self::ShutdownGracePeriod,
        Self::LeaderElection,
        Self::LeaseName,
        Self::LeaseNamespace,
        Self::LeaseDuration,
        Self::RenewDeadline,
        Self::RetryPeriod,
    ];

    /// (file path, flag, environment variable, help)
    fn names(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            Self::Kubeconfig => (
                "kubeconfig",
                "kubeconfig",
                "AUTOPILOT_KUBECONFIG",
                "kubeconfig file (default: KUBECONFIG, ~/.kube/config or in-cluster)",
            ),
            Self::MeshProvider => (
                "meshProvider",
                "mesh-provider",
                "AUTOPILOT_MESH_PROVIDER",
                "istio | linkerd | smi | gatewayapi",
            ),
            Self::PrometheusUrl => (
                "prometheusUrl",
                "prometheus-url",
                "AUTOPILOT_PROMETHEUS_URL",
                "base URL of the Prometheus HTTP API",
            ),
            Self::WatchNamespace => (
                "watchNamespace",
                "watch-namespace",
                "AUTOPILOT_WATCH_NAMESPACE",
                "only watch this namespace (default: all)",
            ),
            Self::WorkInterval => (
                "workInterval",
                "work-interval",
                "AUTOPILOT_WORK_INTERVAL",
                "re-check interval of waiting phases, e.g. 30s",
            ),
            Self::Concurrency => (
                "concurrency",
                "concurrency",
                "AUTOPILOT_CONCURRENCY",
                "objects handled at once",
            ),
            Self::LogLevel => (
                "log.level",
                "log-level",
                "AUTOPILOT_LOG_LEVEL",
                "tracing filter, e.g. info or autopilot=debug",
            ),
            Self::LogFormat => (
                "log.format",
                "log-format",
                "AUTOPILOT_LOG_FORMAT",
                "text | json",
            ),
            Self::MetricsAddress => (
                "metricsAddress",
                "metrics-address",
                "AUTOPILOT_METRICS_ADDRESS",
                "address of /metrics, /healthz and /readyz",
            ),
            Self::ShutdownGracePeriod => (
                "shutdownGracePeriod",
                "shutdown-grace-period",
                "AUTOPILOT_SHUTDOWN_GRACE_PERIOD",
                "time in-flight handlers get after SIGTERM, e.g. 30s",
            ),
            Self::LeaderElection => (
                "leaderElection.enabled",
                "leader-election",
                "AUTOPILOT_LEADER_ELECTION",
                "true | false",
            ),
            Self::LeaseName => (
                "leaderElection.leaseName",
                "lease-name",
                "AUTOPILOT_LEASE_NAME",
                "name of the leader election Lease",
            ),
            Self::LeaseNamespace => (
                "leaderElection.leaseNamespace",
                "lease-namespace",
                "AUTOPILOT_LEASE_NAMESPACE",
                "namespace of the leader election Lease",
            ),
            Self::LeaseDuration => (
                "leaderElection.leaseDuration",
                "lease-duration",
                "AUTOPILOT_LEASE_DURATION",
                "lease validity without renewal, e.g. 15s",
            ),
            Self::RenewDeadline => (
                "leaderElection.renewDeadline",
                "renew-deadline",
                "AUTOPILOT_RENEW_DEADLINE",
                "how long the leader tries to renew, e.g. 10s",
            ),
            Self::RetryPeriod => (
                "leaderElection.retryPeriod",
                "retry-period",
                "AUTOPILOT_RETRY_PERIOD",
                "how often to try to acquire or renew, e.g. 2s",
            ),
        }
    }

    fn field(self) -> &'static str {
        self.names().0
    }
}

/// A raw value and where it came from.
#[derive(Debug, Clone)]
struct Raw {
    value: String,
    source: String,
}

/// The raw values of every setting after layering.
#[derive(Debug, Default)]
struct Layers {
    values: Vec<(Key, Raw)>,
}

impl Layers {
    fn set(&mut self, key: Key, value: String, source: String) {
        self.values.retain(|(k, _)| *k != key);
        self.values.push((key, Raw { value, source }));
    }

    fn get(&self, key: Key) -> Option<&Raw> {
        self.values.iter().find(|(k, _)| *k == key).map(|(_, r)| r)
    }

    fn parse<T>(
        &self,
        key: Key,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        let Some(raw) = self.get(key) else {
            return Ok(None);
        };
        parse(raw.value.trim())
            .map(Some)
            .map_err(|problem| ConfigError::Invalid {
                field: key.field(),
                source_name: raw.source.clone(),
                problem,
            })
    }
}

impl OperatorConfig {
    /// Loads the configuration of this process: the file named by `--config` or `AUTOPILOT_CONFIG`, then the
    /// environment, then the command line. Prints help or the version and exits when asked to.
    ///
    /// # Errors
    /// See [`OperatorConfig::from_sources`]; also when the file cannot be read.
    pub fn load() -> Result<Self, ConfigError> {
        let args: Vec<String> = std::env::args().collect();
        let matches = match command().try_get_matches_from(&args) {
            Ok(m) => m,
            Err(e)
                if matches!(
                    e.kind(),
                    clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
                ) =>
            {
                e.exit()
            }
            Err(e) => return Err(e.into()),
        };
        let path = matches
            .get_one::<String>("config")
            .cloned()
            .or_else(|| std::env::var("AUTOPILOT_CONFIG").ok());
        let file = path
            .map(|path| {
                std::fs::read_to_string(&path).map_err(|source| ConfigError::Read { path, source })
            })
            .transpose()?;
        Self::from_sources(file.as_deref(), |name| std::env::var(name).ok(), args)
    }

    /// Builds the configuration from a YAML document, an environment lookup and command-line arguments
    /// (the first argument is the program name). Later sources win.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the setting, [`ConfigError::UnknownField`], [`ConfigError::Yaml`] or
    /// [`ConfigError::Flags`].
    pub fn from_sources<I, S>(
        file: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
        args: I,
    ) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: Into<std::ffi::OsString> + Clone,
    {
        let mut layers = Layers::default();
        if let Some(text) = file {
            read_file(&mut layers, text)?;
        }
        for key in Key::ALL {
            let (_, _, var, _) = key.names();
            if let Some(value) = env(var) {
                layers.set(key, value, var.to_owned());
            }
        }
        let matches = command().try_get_matches_from(args)?;
        for key in Key::ALL {
            let (_, flag, _, _) = key.names();
            if let Some(value) = matches.get_one::<String>(flag) {
                layers.set(key, value.clone(), format!("--{flag}"));
            }
        }
        Self::from_layers(&layers)
    }

    /// Builds the configuration from a YAML document alone.
    ///
    /// # Errors
    /// As [`OperatorConfig::from_sources`].
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        Self::from_sources(Some(text), |_| None, ["autopilot"])
    }

    fn from_layers(l: &Layers) -> Result<Self, ConfigError> {
        let mut c = Self::default();
        if let Some(v) = l.parse(Key::Kubeconfig, parse_path)? {
            c.kubeconfig = v;
        }
        if let Some(v) = l.parse(Key::MeshProvider, |s| {
            s.parse::<MeshProvider>().map_err(|e| e.to_string())
        })? {
            c.mesh_provider = v;
        }
        if let Some(v) = l.parse(Key::PrometheusUrl, parse_url)? {
            c.prometheus_url = v;
        }
        if let Some(v) = l.parse(Key::WatchNamespace, parse_optional_name)? {
            c.watch_namespace = v;
        }
        if let Some(v) = l.parse(Key::WorkInterval, parse_duration)? {
            c.work_interval = v;
        }
        if let Some(v) = l.parse(Key::Concurrency, parse_concurrency)? {
            c.concurrency = v;
        }
        if let Some(v) = l.parse(Key::LogLevel, parse_filter)? {
            c.log.filter = v;
        }
        if let Some(v) = l.parse(Key::LogFormat, parse_log_format)? {
            c.log.format = v;
        }
        if let Some(v) = l.parse(Key::MetricsAddress, |s| {
            s.parse().map_err(|e| format!("`{s}`: {e}"))
        })? {
            c.metrics_address = v;
        }
        if let Some(v) = l.parse(Key::ShutdownGracePeriod, parse_duration)? {
            c.shutdown_grace_period = v;
        }
        if let Some(v) = l.parse(Key::LeaderElection, parse_bool)? {
            c.leader_election_enabled = v;
        }
        let le = &mut c.leader_election;
        if let Some(v) = l.parse(Key::LeaseName, parse_name)? {
            le.lease_name = v;
        }
        if let Some(v) = l.parse(Key::LeaseNamespace, parse_name)? {
            le.lease_namespace = v;
        }
        if let Some(v) = l.parse(Key::LeaseDuration, parse_duration)? {
            le.lease_duration = v;
        }
        if let Some(v) = l.parse(Key::RenewDeadline, parse_duration)? {
            le.renew_deadline = v;
        }
        if let Some(v) = l.parse(Key::RetryPeriod, parse_duration)? {
            le.retry_period = v;
        }
        c.check_lease_timing(l)?;
        Ok(c)
    }

    /// A kube client for the cluster this configuration names: the [`kubeconfig`](Self::kubeconfig) file
    /// (its current context) when set, otherwise the environment as `kube::Client::try_default` reads it.
    ///
    /// ```
    /// use autopilot::config::{ConnectError, OperatorConfig};
    ///
    /// # tokio::runtime::Runtime::new()?.block_on(async {
    /// let config = OperatorConfig::from_sources(None, |_| None, ["op", "--kubeconfig", "/nowhere/config"])?;
    /// let Err(error) = config.client().await else { panic!("there is no such file") };
    /// assert!(matches!(&error, ConnectError::Kubeconfig { path, .. } if path.ends_with("nowhere/config")));
    /// # Ok::<(), anyhow::Error>(())
    /// # })?;
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`ConnectError::Kubeconfig`] when the file is unusable; [`ConnectError::Client`] when no client can
    /// be built.
    pub async fn client(&self) -> Result<Client, ConnectError> {
        let Some(path) = &self.kubeconfig else {
            return Client::try_default().await.map_err(ConnectError::Client);
        };
        let unusable = |source| ConnectError::Kubeconfig {
            path: path.clone(),
            source,
        };
        let kubeconfig = Kubeconfig::read_from(path).map_err(unusable)?;
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(unusable)?;
        Client::try_from(config).map_err(ConnectError::Client)
    }

    /// The Lease settings must be usable (retry period < renew deadline < lease duration).
    fn check_lease_timing(&self, l: &Layers) -> Result<(), ConfigError> {
        match self.leader_election.validate() {
            Err(LeaderError::InvalidConfig { field, reason }) => {
                let key = Key::ALL
                    .into_iter()
                    .find(|k| k.field() == format!("leaderElection.{field}"))
                    .unwrap_or(Key::LeaderElection);
                Err(ConfigError::Invalid {
                    field: key.field(),
                    source_name: l
                        .get(key)
                        .map_or_else(|| "the default".to_owned(), |r| r.source.clone()),
                    problem: reason,
                })
            }
            _ => Ok(()),
        }
    }
}

/// The command line: `--config` plus one flag per setting.
fn command() -> Command {
    let mut cmd = Command::new("autopilot-operator")
        .about("A Kubernetes operator built with autopilot")
        .version(env!("CARGO_PKG_VERSION"))
        .arg(
            Arg::new("config")
                .long("config")
                .value_name("FILE")
                .help("YAML config file (also AUTOPILOT_CONFIG)"),
        );
    for key in Key::ALL {
        let (field, flag, var, help) = key.names();
        cmd = cmd.arg(
            Arg::new(flag)
                .long(flag)
                .value_name("VALUE")
                .action(ArgAction::Set)
                .help(format!("{help} [file: {field}, env: {var}]")),
        );
    }
    cmd
}

fn read_file(layers: &mut Layers, text: &str) -> Result<(), ConfigError> {
    let doc: Value = serde_saphyr::from_str(text).map_err(|e| ConfigError::Yaml(Box::new(e)))?;
    let Value::Object(root) = doc else {
        if doc.is_null() {
            return Ok(());
        }
        return Err(ConfigError::UnknownField(
            "(the document is not a mapping)".into(),
        ));
    };
    flatten("", &Value::Object(root), &mut |path, value| {
        let key = Key::ALL
            .into_iter()
            .find(|k| k.field() == path)
            .ok_or_else(|| ConfigError::UnknownField(path.to_owned()))?;
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Null => return Ok(()),
            other => other.to_string(),
        };
        layers.set(key, text, format!("the config file ({path})"));
        Ok(())
    })
}

fn flatten(
    prefix: &str,
    value: &Value,
    visit: &mut impl FnMut(&str, &Value) -> Result<(), ConfigError>,
) -> Result<(), ConfigError> {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&path, v, visit)?;
            }
            Ok(())
        }
        scalar => visit(prefix, scalar),
    }
}

/// Parses `500ms`, `30s`, `5m`, `1h`, `1h30m` (a bare number means seconds).
///
/// # Errors
/// A message describing the accepted forms.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not a duration like 500ms, 30s, 5m or 1h30m");
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        total += unit.saturating_mul(u32::try_from(number).map_err(|_| bad())?);
        rest = &rest[unit_len..];
    }
    if total.is_zero() {
        return Err(format!("`{text}` must be longer than zero"));
    }
    Ok(total)
}

fn parse_path(text: &str) -> Result<Option<PathBuf>, String> {
    Ok((!text.is_empty()).then(|| PathBuf::from(text)))
}

fn parse_url(text: &str) -> Result<String, String> {
    let rest = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"))
        .ok_or_else(|| format!("`{text}` is not an http:// or https:// URL"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("`{text}` has no host"));
    }
    Ok(text.trim_end_matches('/').to_owned())
}

/// A DNS-1123 label, as namespaces and most names are.
fn parse_name(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.len() <= 63
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-');
    if ok {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "`{text}` is not a valid name (lowercase letters, digits and '-', at most 63)"
        ))
    }
}

fn parse_optional_name(text: &str) -> Result<Option<String>, String> {
    if text.is_empty() || text == "*" {
        return Ok(None);
    }
    parse_name(text).map(Some)
}

fn parse_concurrency(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("`{text}` is not a number between 1 and 65535")),
        Ok(n) => Ok(n),
    }
}

fn parse_filter(text: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(text)
        .map(|_| text.to_owned())
        .map_err(|e| format!("`{text}`: {e}"))
}

fn parse_log_format(text: &str) -> Result<LogFormat, String> {
    match text.to_ascii_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("`{text}` is not one of text, json")),
    }
}

fn parse_bool(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Ok(true),
        "false" | "no" | "0" | "off" => Ok(false),
        _ => Err(format!("`{text}` is not true or false")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> Result<OperatorConfig, ConfigError> {
        let mut all = vec!["op"];
        all.extend_from_slice(args);
        OperatorConfig::from_sources(None, |_| None, all)
    }

    #[test]
    fn defaults_are_valid() {
        let mut loaded = flags(&[]).unwrap();
        let defaults = OperatorConfig::default();
        // The replica identity is random unless POD_NAME is set.
        loaded
            .leader_election
            .identity
            .clone_from(&defaults.leader_election.identity);
        assert_eq!(loaded, defaults);
    }

    #[test]
    fn flags_beat_environment_which_beats_the_file() {
        let file = "meshProvider: smi\nprometheusUrl: http://file:9090\nlog:\n  level: debug\n  format: json\n";
        let env = |name: &str| match name {
            "AUTOPILOT_PROMETHEUS_URL" => Some("http://env:9090".to_owned()),
            "AUTOPILOT_MESH_PROVIDER" => Some("istio".to_owned()),
            _ => None,
        };
        let c =
            OperatorConfig::from_sources(Some(file), env, ["op", "--mesh-provider", "gatewayapi"])
                .unwrap();
        assert_eq!(c.mesh_provider, MeshProvider::GatewayApi);
        assert_eq!(c.prometheus_url, "http://env:9090");
        assert_eq!(c.log.filter, "debug");
        assert_eq!(c.log.format, LogFormat::Json);
    }

    #[test]
    fn every_setting_is_read_from_the_file() {
        let file = "
meshProvider: linkerd
prometheusUrl: https://prom.example:9090/
watchNamespace: shop
workInterval: 1m30s
concurrency: 4
log: {level: 'autopilot=debug,kube=warn', format: text}
metricsAddress: 127.0.0.1:9000
leaderElection:
  enabled: true
  leaseName: canary-operator
  leaseNamespace: ops
  leaseDuration: 20s
  renewDeadline: 15s
  retryPeriod: 500ms
";
        let c = OperatorConfig::from_yaml(file).unwrap();
        assert_eq!(c.prometheus_url, "https://prom.example:9090");
        assert_eq!(c.work_interval, Duration::from_secs(90));
        assert_eq!(c.concurrency, 4);
        assert_eq!(c.metrics_address, "127.0.0.1:9000".parse().unwrap());
        assert!(c.leader_election_enabled);
        let le = &c.leader_election;
        assert_eq!(
            (le.lease_name.as_str(), le.lease_namespace.as_str()),
            ("canary-operator", "ops")
        );
        assert_eq!(le.retry_period, Duration::from_millis(500));
    }

    #[test]
    fn errors_name_the_setting_and_its_source() {
        let err = flags(&["--mesh-provider", "consul"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("meshProvider") && err.contains("--mesh-provider"),
            "{err}"
        );

        let err = OperatorConfig::from_sources(
            None,
            |n| (n == "AUTOPILOT_CONCURRENCY").then(|| "0".into()),
            ["op"],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("concurrency") && err.contains("AUTOPILOT_CONCURRENCY"),
            "{err}"
        );

        let err = OperatorConfig::from_yaml("leaderElection:\n  leaseName: Bad_Name\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("leaderElection.leaseName") && err.contains("config file"),
            "{err}"
        );

        let err = flags(&["--renew-deadline", "20s"]).unwrap_err().to_string();
        assert!(err.contains("leaderElection.renewDeadline"), "{err}");

        let err = flags(&["--prometheus-url", "prom:9090"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("prometheusUrl"), "{err}");
    }

    #[test]
    fn unknown_file_keys_and_flags_are_rejected() {
        let err = OperatorConfig::from_yaml("meshProvder: istio\n").unwrap_err();
        assert!(
            matches!(&err, ConfigError::UnknownField(f) if f == "meshProvder"),
            "{err}"
        );
        assert!(matches!(
            flags(&["--mesh", "istio"]),
            Err(ConfigError::Flags(_))
        ));
    }

    #[test]
    fn the_kubeconfig_comes_from_every_source() {
        let file = "kubeconfig: /etc/file\n";
        let env = |name: &str| (name == "AUTOPILOT_KUBECONFIG").then(|| "/etc/env".to_owned());
        let path = |c: OperatorConfig| c.kubeconfig.map(|p| p.display().to_string());
        let from_file = OperatorConfig::from_yaml(file).unwrap();
        assert_eq!(path(from_file).as_deref(), Some("/etc/file"));
        let from_env = OperatorConfig::from_sources(Some(file), env, ["op"]).unwrap();
        assert_eq!(path(from_env).as_deref(), Some("/etc/env"));
        let from_flag =
            OperatorConfig::from_sources(Some(file), env, ["op", "--kubeconfig", "/etc/flag"])
                .unwrap();
        assert_eq!(path(from_flag).as_deref(), Some("/etc/flag"));
        assert_eq!(flags(&[]).unwrap().kubeconfig, None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("s").is_err());
    }
}
