//! A real Prometheus server on loopback, for tests and demos that need metrics.
//!
//! [`PrometheusServer::start`] runs the `prometheus` binary (Debian's `prometheus` package, or any
//! Prometheus 2.x on `PATH`) with a temporary data directory, a generated scrape configuration and a
//! free `127.0.0.1` port, waits until it answers `/-/ready`, and kills it when dropped.
//!
//! ```no_run
//! # async fn demo() -> Result<(), autopilot_testkit::prometheus::PrometheusError> {
//! use std::time::Duration;
//! use autopilot_testkit::prometheus::{PrometheusServer, ScrapeTarget};
//!
//! let prometheus = PrometheusServer::builder()
//!     .scrape(ScrapeTarget::new("demo-app", "127.0.0.1:9090"))
//!     .scrape_interval(Duration::from_secs(1))
//!     .start()
//!     .await?;
//! println!("query it at {}", prometheus.url());
//! # Ok(()) }
//! ```

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::programs::{free_loopback_port, log_tail};

/// Why a Prometheus server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum PrometheusError {
    /// The binary is not installed.
    #[error(
        "`{binary}` was not found on PATH; install Debian's `prometheus` package (apt-get install prometheus)"
    )]
    NotInstalled {
        /// The program that was looked for.
        binary: String,
    },
    /// Writing the configuration or creating the data directory failed.
    #[error("preparing the Prometheus working directory failed")]
    Workdir(#[source] std::io::Error),
    /// The process could not be spawned.
    #[error("starting `{binary}` failed")]
    Spawn {
        /// The program that was run.
        binary: String,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The process exited or never became ready.
    #[error("Prometheus did not become ready within {waited:?}: {log}")]
    NotReady {
        /// How long readiness was awaited.
        waited: Duration,
        /// The tail of Prometheus' own log.
        log: String,
    },
}

/// One scrape job: a name and the `host:port` addresses Prometheus scrapes `/metrics` from.
#[derive(Clone, Debug)]
pub struct ScrapeTarget {
    job: String,
    addresses: Vec<String>,
    metrics_path: String,
}

impl ScrapeTarget {
    /// A job scraping `address` (`host:port`) at `/metrics`.
    pub fn new(job: impl Into<String>, address: impl Into<String>) -> Self {
        Self {
            job: job.into(),
            addresses: vec![address.into()],
            metrics_path: "/metrics".to_owned(),
        }
    }

    /// Scrapes another path than `/metrics`.
    #[must_use]
    pub fn metrics_path(mut self, path: impl Into<String>) -> Self {
        self.metrics_path = path.into();
        self
    }
}

/// Settings for [`PrometheusServer`]; see [`PrometheusServer::builder`].
#[derive(Clone, Debug)]
pub struct PrometheusBuilder {
    binary: String,
    targets: Vec<ScrapeTarget>,
    scrape_interval: Duration,
    data_dir: Option<PathBuf>,
    ready_timeout: Duration,
}

impl PrometheusBuilder {
    /// Adds a scrape job.
    #[must_use]
    pub fn scrape(mut self, target: ScrapeTarget) -> Self {
        self.targets.push(target);
        self
    }

    /// How often every job is scraped (default 1 s, so tests see data quickly).
    #[must_use]
    pub fn scrape_interval(mut self, interval: Duration) -> Self {
        self.scrape_interval = interval;
        self
    }

    /// Uses an existing TSDB directory (e.g. blocks made with `promtool tsdb create-blocks-from`)
    /// instead of an empty temporary one.
    #[must_use]
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Runs another binary than `prometheus` from `PATH`.
    #[must_use]
    pub fn binary(mut self, binary: impl Into<String>) -> Self {
        self.binary = binary.into();
        self
    }

    /// Starts Prometheus and waits until it is ready.
    ///
    /// # Errors
    /// When the binary is missing, cannot be started, or does not become ready in time.
    pub async fn start(self) -> Result<PrometheusServer, PrometheusError> {
        if which(&self.binary).is_none() {
            return Err(PrometheusError::NotInstalled {
                binary: self.binary,
            });
        }
        let mut workdir = tempfile::tempdir().map_err(PrometheusError::Workdir)?;
        let config = workdir.path().join("prometheus.yml");
        std::fs::write(&config, self.config_file()).map_err(PrometheusError::Workdir)?;
        let data_dir = self
            .data_dir
            .clone()
            .unwrap_or_else(|| workdir.path().join("data"));
        let log_path = workdir.path().join("prometheus.log");

        // Another process may take the port between our probe and Prometheus' bind: try a few.
        let mut last_error = None;
        for _ in 0..5 {
            let address = free_loopback_port().map_err(PrometheusError::Workdir)?;
            let child = self.spawn(&config, &data_dir, &log_path, address)?;
            let mut server = PrometheusServer {
                child,
                address,
                workdir,
                log_path: log_path.clone(),
            };
            match server.wait_ready(self.ready_timeout).await {
                Ok(()) => return Ok(server),
                Err(error) => {
                    last_error = Some(error);
                    workdir = server.shut_down().await;
                }
            }
        }
        Err(last_error.unwrap_or(PrometheusError::NotReady {
            waited: self.ready_timeout,
            log: String::new(),
        }))
    }

    fn spawn(
        &self,
        config: &Path,
        data_dir: &Path,
        log_path: &Path,
        address: SocketAddr,
    ) -> Result<Child, PrometheusError> {
        let log = std::fs::File::create(log_path).map_err(PrometheusError::Workdir)?;
        let log_err = log.try_clone().map_err(PrometheusError::Workdir)?;
        Command::new(&self.binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data_dir.display()))
            .arg(format!("--web.listen-address={address}"))
            // Backfilled blocks may be older than the default retention window.
            .arg("--storage.tsdb.retention.time=100y")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| PrometheusError::Spawn {
                binary: self.binary.clone(),
                source,
            })
    }

    fn config_file(&self) -> String {
        let interval = format!("{}ms", self.scrape_interval.as_millis().max(1));
        let mut yaml = format!(
            "global:\n  scrape_interval: {interval}\n  evaluation_interval: {interval}\nscrape_configs:\n"
        );
        for target in &self.targets {
            let addresses = target
                .addresses
                .iter()
                .map(|address| format!("{address:?}"))
                .collect::<Vec<_>>()
                .join(", ");
            let _ = write!(
                yaml,
                "  - job_name: {job:?}\n    metrics_path: {path:?}\n    static_configs:\n      - targets: [{addresses}]\n",
                job = target.job,
                path = target.metrics_path,
            );
        }
        yaml
    }
}

/// A running Prometheus server, killed when dropped.
#[derive(Debug)]
pub struct PrometheusServer {
    child: Child,
    address: SocketAddr,
    workdir: tempfile::TempDir,
    log_path: PathBuf,
}

impl PrometheusServer {
    /// Settings for a new server: no scrape jobs, 1 s scrape interval, a temporary data directory.
    #[must_use]
    pub fn builder() -> PrometheusBuilder {
        PrometheusBuilder {
            binary: "prometheus".to_owned(),
            targets: Vec::new(),
            scrape_interval: Duration::from_secs(1),
            data_dir: None,
            ready_timeout: Duration::from_secs(60),
        }
    }

    /// Whether a `prometheus` binary is on `PATH`.
    #[must_use]
    pub fn is_installed() -> bool {
        which("prometheus").is_some()
    }

    /// The base URL of its HTTP API, e.g. `http://127.0.0.1:40123`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The address it listens on.
    #[must_use]
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The working directory holding its configuration, log and (by default) data.
    #[must_use]
    pub fn workdir(&self) -> &Path {
        self.workdir.path()
    }

    async fn wait_ready(&mut self, timeout: Duration) -> Result<(), PrometheusError> {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            if http_status(self.address, "/-/ready").await == Some(200) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(PrometheusError::NotReady {
            waited: timeout,
            log: log_tail(&self.log_path, 2000),
        })
    }

    async fn shut_down(mut self) -> tempfile::TempDir {
        let _ = self.child.kill().await;
        self.workdir
    }
}

fn which(binary: &str) -> Option<PathBuf> {
    if binary.contains('/') {
        return Some(PathBuf::from(binary)).filter(|path| path.is_file());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(binary))
            .find(|path| path.is_file())
    })
}

/// The status code of a bare HTTP/1.0 GET, or `None` when nothing answers.
async fn http_status(address: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(address).await.ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut head = [0_u8; 12];
    stream.read_exact(&mut head).await.ok()?;
    std::str::from_utf8(head.get(9..12)?).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_lists_every_job() {
        let yaml = PrometheusServer::builder()
            .scrape(ScrapeTarget::new("app", "127.0.0.1:1234"))
            .scrape(ScrapeTarget::new("other", "127.0.0.1:5678").metrics_path("/stats"))
            .scrape_interval(Duration::from_millis(500))
            .config_file();
        assert!(yaml.contains("scrape_interval: 500ms"), "{yaml}");
        assert!(yaml.contains("job_name: \"app\""), "{yaml}");
        assert!(yaml.contains("targets: [\"127.0.0.1:5678\"]"), "{yaml}");
        assert!(yaml.contains("metrics_path: \"/stats\""), "{yaml}");
    }

    #[tokio::test]
    async fn missing_binary_is_a_clear_error() {
        let error = PrometheusServer::builder()
            .binary("/nonexistent/prometheus")
            .start()
            .await
            .expect_err("no such binary");
        assert!(matches!(error, PrometheusError::NotInstalled { .. }));
        assert!(error.to_string().contains("apt-get install prometheus"));
    }
}
