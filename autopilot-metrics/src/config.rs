//! The Prometheus section of an operator's configuration file, turned into a client.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::client::{ClientOptions, PrometheusClient};
use crate::error::ConfigError;
use crate::template::PromDuration;

/// Where Prometheus is and how to reach it, as an operator's configuration spells it (camelCase keys).
/// Secrets can come from files, the way Kubernetes mounts them.
///
/// ```
/// use autopilot_metrics::PrometheusConfig;
///
/// let config: PrometheusConfig = serde_json::from_str(
///     r#"{"url": "http://prometheus.monitoring:9090", "timeout": "5s", "headers": {"X-Scope-OrgID": "team-a"}}"#,
/// )?;
/// let client = config.client()?;
/// assert_eq!(client.base_url().as_str(), "http://prometheus.monitoring:9090/");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrometheusConfig {
    /// Base URL, path prefix included.
    pub url: String,
    /// Request timeout (a PromQL-style duration such as `10s`); 10 s when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<PromDuration>,
    /// A bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<String>,
    /// A file holding the bearer token (read when the client is built; surrounding whitespace trimmed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<PathBuf>,
    /// Basic-auth user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Basic-auth password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Extra headers for every request.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// A PEM file of CA certificates to trust instead of the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Skip TLS certificate verification (test setups only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_skip_verify: bool,
}

impl fmt::Debug for PrometheusConfig {
    /// Never prints secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |secret: &Option<String>| secret.as_ref().map(|_| "<redacted>");
        f.debug_struct("PrometheusConfig")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .field("bearer_token", &redacted(&self.bearer_token))
            .field("bearer_token_file", &self.bearer_token_file)
            .field("username", &self.username)
            .field("password", &redacted(&self.password))
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("ca_file", &self.ca_file)
            .field("insecure_skip_verify", &self.insecure_skip_verify)
            .finish()
    }
}

impl PrometheusConfig {
    /// Just a URL, everything else default.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }

    /// The client options this configuration describes, reading the files it names.
    pub fn options(&self) -> Result<ClientOptions, ConfigError> {
        let mut options = ClientOptions::default();
        if let Some(timeout) = self.timeout {
            options = options.timeout(timeout.as_duration());
        }
        let token = match (&self.bearer_token, &self.bearer_token_file) {
            (Some(_), Some(_)) => return Err(ConfigError::ConflictingAuth),
            (Some(token), None) => Some(token.clone()),
            (None, Some(path)) => Some(read(path)?.trim().to_owned()),
            (None, None) => None,
        };
        match (token, &self.username) {
            (Some(_), Some(_)) => return Err(ConfigError::ConflictingAuth),
            (Some(token), None) => options = options.bearer_token(token),
            (None, Some(user)) => options = options.basic_auth(user.clone(), self.password.clone()),
            (None, None) => {}
        }
        for (name, value) in &self.headers {
            options = options.header(name.clone(), value.clone());
        }
        match (&self.ca_file, self.insecure_skip_verify) {
            (Some(_), true) => return Err(ConfigError::ConflictingTls),
            (Some(path), false) => options = options.ca_pem(read(path)?),
            (None, true) => options = options.insecure_skip_tls_verify(),
            (None, false) => {}
        }
        Ok(options)
    }

    /// Builds the client.
    pub fn client(&self) -> Result<PrometheusClient, ConfigError> {
        PrometheusClient::new(&self.url, self.options()?)
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Auth;
    use std::time::Duration;

    #[test]
    fn reads_token_and_ca_files() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "abc\n").unwrap();
        let config = PrometheusConfig {
            timeout: Some("2s".parse().unwrap()),
            bearer_token_file: Some(token),
            ..PrometheusConfig::new("http://p:9090")
        };
        let options = config.options().unwrap();
        assert_eq!(options.auth, Auth::Bearer("abc".to_owned()));
        assert_eq!(options.timeout, Duration::from_secs(2));

        let missing = PrometheusConfig {
            ca_file: Some(dir.path().join("nope")),
            ..config.clone()
        };
        assert!(matches!(
            missing.options(),
            Err(ConfigError::ReadFile { .. })
        ));
    }

    #[test]
    fn conflicting_settings_are_refused() {
        let both = PrometheusConfig {
            bearer_token: Some("t".into()),
            username: Some("u".into()),
            ..PrometheusConfig::new("http://p")
        };
        assert!(matches!(both.options(), Err(ConfigError::ConflictingAuth)));
        let tls = PrometheusConfig {
            ca_file: Some("ca.pem".into()),
            insecure_skip_verify: true,
            ..PrometheusConfig::new("https://p")
        };
        assert!(matches!(tls.options(), Err(ConfigError::ConflictingTls)));
    }

    #[test]
    fn yaml_shaped_json_round_trips_and_debug_redacts() {
        let json = r#"{"url":"http://p","timeout":"1m30s","password":"pw","username":"u","insecureSkipVerify":true}"#;
        let config: PrometheusConfig = serde_json::from_str(json).unwrap();
        assert_eq!(
            config.timeout.unwrap().as_duration(),
            Duration::from_secs(90)
        );
        assert_eq!(
            serde_json::to_string(&config).unwrap(),
            json.replace(
                r#""password":"pw","username":"u""#,
                r#""username":"u","password":"pw""#
            )
        );
        assert!(!format!("{config:?}").contains("pw"));
        assert!(
            serde_json::from_str::<PrometheusConfig>(r#"{"url":"x","timeout":"soon"}"#).is_err()
        );
        assert!(serde_json::from_str::<PrometheusConfig>(r#"{"url":"x","tiemout":"1s"}"#).is_err());
    }
}
