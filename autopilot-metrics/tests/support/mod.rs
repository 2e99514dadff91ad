//! Test helpers: a real Prometheus server on a free loopback port, deterministic data for it, and tiny
//! loopback HTTP servers for the failure modes a real Prometheus cannot produce on demand.
#![allow(dead_code)] // each test file uses a different subset

pub mod openmetrics;
pub mod servers;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use autopilot_metrics::{ClientOptions, PrometheusClient};

/// How long to wait for anything a loaded CI machine may be slow at.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// What to start Prometheus with.
#[derive(Default)]
pub struct Setup {
    /// OpenMetrics text (ending in `# EOF`) backfilled into the data directory before start.
    pub backfill: Option<String>,
    /// `host:port` targets scraped every second under the job `exporter`.
    pub scrape_targets: Vec<String>,
    /// Serve under this path prefix (for example `/prom`).
    pub route_prefix: Option<String>,
    /// Contents of a `--web.config.file` (TLS, auth).
    pub web_config: Option<String>,
}

/// A running Prometheus, killed when dropped.
pub struct Prometheus {
    child: Child,
    /// `http://127.0.0.1:PORT` plus the route prefix, if any.
    pub url: String,
    /// The port it listens on.
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Finds a program on PATH (or in /usr/bin), failing the test with a clear message when missing.
pub fn program(name: &str) -> PathBuf {
    let dirs = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&dirs)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not installed; these tests need a real Prometheus server \
                 (install Debian's `prometheus` package, e.g. `apt-get install prometheus`, or run scripts/test)"
            )
        })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Prometheus {
    /// Starts Prometheus and waits until its query API answers over plain HTTP.
    pub async fn start(setup: Setup) -> Self {
        let prometheus = Self::spawn(&setup);
        let client = prometheus.client(ClientOptions::default());
        prometheus.wait_ready(&client).await;
        prometheus
    }

    /// Starts Prometheus without waiting (for setups the default client cannot talk to, such as TLS).
    pub fn spawn(setup: &Setup) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        if let Some(openmetrics) = &setup.backfill {
            backfill(dir.path(), &data, openmetrics);
        }
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, config_yaml(&setup.scrape_targets)).unwrap();
        let web_config = setup.web_config.as_ref().map(|text| {
            let path = dir.path().join("web.yml");
            std::fs::write(&path, text).unwrap();
            path
        });

        // Another test may take the port between our probe and Prometheus' bind: retry with a new one.
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            let prefix = setup.route_prefix.clone().unwrap_or_default();
            let log_path = dir.path().join(format!("prometheus-{port}.log"));
            let log = std::fs::File::create(&log_path).unwrap();
            let mut command = Command::new(program("prometheus"));
            command
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", data.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg(format!(
                    "--web.external-url=http://127.0.0.1:{port}{prefix}/"
                ))
                .arg("--log.level=warn")
                .stdout(Stdio::null())
                .stderr(log);
            if let Some(path) = &web_config {
                command.arg(format!("--web.config.file={}", path.display()));
            }
            let mut child = command.spawn().expect("cannot start prometheus");
            if listening(&mut child, port) {
                return Self {
                    child,
                    url: format!("http://127.0.0.1:{port}{prefix}"),
                    port,
                    dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
        }
        panic!("prometheus did not start:\n{last_log}");
    }

    /// A client for this server.
    pub fn client(&self, options: ClientOptions) -> PrometheusClient {
        PrometheusClient::new(&self.url, options).unwrap()
    }

    /// Polls a trivial query until the API answers.
    pub async fn wait_ready(&self, client: &PrometheusClient) {
        let started = Instant::now();
        loop {
            match client.query("vector(1)", None).await {
                Ok(_) => return,
                Err(e) if started.elapsed() > DEADLINE => {
                    panic!("prometheus at {} not ready: {e}\n{}", self.url, self.log())
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Prometheus' log so far.
    pub fn log(&self) -> String {
        let path = self
            .dir
            .path()
            .join(format!("prometheus-{}.log", self.port));
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// The temporary directory (for certificate files and the like).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Waits until the process accepts connections on `port`; false if it exited (e.g. port taken) first.
fn listening(child: &mut Child, port: u16) -> bool {
    let started = Instant::now();
    while started.elapsed() < DEADLINE {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            // The port might belong to someone else: make sure our process is still alive.
            std::thread::sleep(Duration::from_millis(50));
            return child.try_wait().unwrap().is_none();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn config_yaml(targets: &[String]) -> String {
    let mut yaml = String::from("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n");
    if !targets.is_empty() {
        yaml.push_str("scrape_configs:\n  - job_name: exporter\n    scrape_interval: 1s\n    static_configs:\n      - targets:\n");
        for target in targets {
            yaml.push_str(&format!("          - \"{target}\"\n"));
        }
    }
    yaml
}

fn backfill(dir: &Path, data: &Path, openmetrics: &str) {
    let input = dir.join("backfill.om");
    std::fs::write(&input, openmetrics).unwrap();
    let output = Command::new(program("promtool"))
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(data)
        .output()
        .expect("cannot run promtool");
    assert!(
        output.status.success(),
        "promtool backfill failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
