//! A real Kubernetes API server for tests: etcd and kube-apiserver (and, when its binary is there,
//! kube-controller-manager running the garbage collector, namespace and service-account controllers) as
//! child processes on free loopback ports.
//!
//! The programs come from a folder laid out as envtest's `KUBEBUILDER_ASSETS` (`kube-apiserver`, `etcd`,
//! optionally `kube-controller-manager`); `scripts/kube-binaries` builds one from Go modules. The server
//! serves TLS with a certificate authority made for it, authorizes with RBAC, signs ServiceAccount tokens,
//! and hands out an admin kubeconfig (a bearer token in `system:masters`).
//!
//! Every process and the data folder go away when the [`RealApiServer`] is dropped, and also when the test
//! process ends without dropping it (a panic, `exit`, a kill): a small supervising bash holds the children
//! and stops them when its standard input, a pipe from this process, closes.
//!
//! ```no_run
//! # async fn demo() -> Result<(), autopilot_testkit::real::RealError> {
//! use autopilot_testkit::real::{Binaries, RealApiServer};
//!
//! let server = RealApiServer::start(Binaries::locate()?).await?;
//! let client = server.client()?;
//! # Ok(()) }
//! ```

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use kube::config::Kubeconfig;

use crate::programs::{free_loopback_port, log_tail};

/// The environment variable naming the folder with the server programs (envtest's convention).
pub const ASSETS_VARIABLE: &str = "KUBEBUILDER_ASSETS";

/// How long the server may take to become ready on a loaded two-core machine.
const READY_TIMEOUT: Duration = Duration::from_secs(180);

/// The controllers of kube-controller-manager that a fresh cluster's API semantics rely on: dependents
/// are garbage collected, deleted namespaces empty and go away, each namespace gets its `default`
/// ServiceAccount and `kube-root-ca.crt` ConfigMap.
const CONTROLLERS: &str = "garbage-collector-controller,namespace-controller,serviceaccount-controller,root-ca-certificate-publisher-controller";

/// Errors of finding and starting a real API server.
#[derive(Debug, thiserror::Error)]
pub enum RealError {
    /// No folder with the programs is configured.
    #[error(
        "{ASSETS_VARIABLE} is not set: point it at a folder holding kube-apiserver and etcd, e.g. \
         `export {ASSETS_VARIABLE}=$(scripts/kube-binaries)` (which builds them with Go), or run `scripts/test`"
    )]
    NoAssets,
    /// The folder lacks a program.
    #[error(
        "{ASSETS_VARIABLE}={folder} holds no executable {program}; `scripts/kube-binaries` builds one"
    )]
    MissingProgram {
        /// The folder searched.
        folder: PathBuf,
        /// The missing program.
        program: &'static str,
    },
    /// Files of the server (keys, certificates, configuration) could not be written.
    #[error("cannot prepare the server's files: {0}")]
    Files(#[from] std::io::Error),
    /// A key or certificate could not be made.
    #[error("cannot make the server's certificates: {0}")]
    Certificates(#[from] rcgen::Error),
    /// The supervisor could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// What was started.
        program: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The server did not answer `/readyz` in time.
    #[error("kube-apiserver was not ready after {waited:?}; its log ends with:\n{log}")]
    NotReady {
        /// How long it was given.
        waited: Duration,
        /// The end of kube-apiserver's and etcd's logs.
        log: String,
    },
    /// The kube client could not be built.
    #[error("cannot build a client for the server: {0}")]
    Client(#[from] kube::Error),
    /// The server URL did not parse.
    #[error("invalid server URL: {0}")]
    Url(#[from] http::uri::InvalidUri),
}

/// The programs a real server runs.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `kube-apiserver`.
    pub kube_apiserver: PathBuf,
    /// `etcd`.
    pub etcd: PathBuf,
    /// `kube-controller-manager`, run with the controllers in [`CONTROLLERS`] when present.
    pub kube_controller_manager: Option<PathBuf>,
}

impl Binaries {
    /// The programs in the folder named by `KUBEBUILDER_ASSETS`.
    ///
    /// # Errors
    /// [`RealError::NoAssets`] when the variable is unset, [`RealError::MissingProgram`] when
    /// `kube-apiserver` or `etcd` is not in the folder.
    pub fn locate() -> Result<Binaries, RealError> {
        let folder = std::env::var_os(ASSETS_VARIABLE)
            .filter(|value| !value.is_empty())
            .ok_or(RealError::NoAssets)?;
        Self::in_folder(Path::new(&folder))
    }

    /// The programs in `folder`.
    ///
    /// # Errors
    /// [`RealError::MissingProgram`] when `kube-apiserver` or `etcd` is not there.
    pub fn in_folder(folder: &Path) -> Result<Binaries, RealError> {
        let program = |name: &'static str| {
            let path = folder.join(name);
            path.is_file().then_some(path)
        };
        let required = |name: &'static str| {
            program(name).ok_or_else(|| RealError::MissingProgram {
                folder: folder.to_path_buf(),
                program: name,
            })
        };
        Ok(Binaries {
            kube_apiserver: required("kube-apiserver")?,
            etcd: required("etcd")?,
            kube_controller_manager: program("kube-controller-manager"),
        })
    }
}

/// A running etcd + kube-apiserver pair; stopped, with its data, when dropped.
pub struct RealApiServer {
    url: String,
    ca_pem: String,
    admin_token: String,
    dir: PathBuf,
    supervisor: Child,
    stdin: Option<ChildStdin>,
    startup: Duration,
    version: Option<String>,
}

impl std::fmt::Debug for RealApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealApiServer")
            .field("url", &self.url)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Key and certificate material of one server, all made fresh.
struct Credentials {
    ca_pem: String,
    serving_cert_pem: String,
    serving_key_pem: String,
    service_account_key_pem: String,
    service_account_public_pem: String,
    admin_token: String,
}

impl Credentials {
    fn generate() -> Result<Credentials, RealError> {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "autopilot-testkit-ca");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca_params.self_signed(&ca_key)?;
        let issuer = rcgen::Issuer::new(ca_params, ca_key);

        let serving_key = KeyPair::generate()?;
        let mut serving_params = CertificateParams::new(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "kubernetes".to_owned(),
            "kubernetes.default.svc".to_owned(),
        ])?;
        serving_params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        let serving = serving_params.signed_by(&serving_key, &issuer)?;

        let service_account_key = KeyPair::generate()?;
        Ok(Credentials {
            ca_pem: ca.pem(),
            serving_cert_pem: serving.pem(),
            serving_key_pem: serving_key.serialize_pem(),
            service_account_key_pem: service_account_key.serialize_pem(),
            service_account_public_pem: service_account_key.public_key_pem(),
            admin_token: format!("{:032x}", fastrand::u128(..)),
        })
    }
}

/// Quotes `value` for a POSIX shell.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

fn command_line(program: &Path, args: &[String]) -> String {
    std::iter::once(program.display().to_string())
        .chain(args.iter().cloned())
        .map(|part| shell_quote(&part))
        .collect::<Vec<_>>()
        .join(" ")
}

impl RealApiServer {
    /// Starts etcd and kube-apiserver (and kube-controller-manager when present) and waits until the
    /// server is ready.
    ///
    /// # Errors
    /// When files cannot be written, a program cannot be started, or the server is not ready in time
    /// (the error carries the end of its log).
    pub async fn start(binaries: Binaries) -> Result<RealApiServer, RealError> {
        let started = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("autopilot-kube-")
            .tempdir()?
            .keep();
        let credentials = Credentials::generate()?;
        let file = |name: &str, contents: &str| -> Result<String, RealError> {
            let path = dir.join(name);
            std::fs::write(&path, contents)?;
            Ok(path.display().to_string())
        };
        let ca_file = file("ca.crt", &credentials.ca_pem)?;
        let cert_file = file("apiserver.crt", &credentials.serving_cert_pem)?;
        let key_file = file("apiserver.key", &credentials.serving_key_pem)?;
        let sa_key_file = file("service-account.key", &credentials.service_account_key_pem)?;
        let sa_public_file = file(
            "service-account.pub",
            &credentials.service_account_public_pem,
        )?;
        let token_file = file(
            "tokens.csv",
            &format!(
                "{},admin,admin-uid,\"system:masters\"\n",
                credentials.admin_token
            ),
        )?;

        let etcd_port = free_loopback_port()?.port();
        let port = free_loopback_port()?.port();
        let url = format!("https://127.0.0.1:{port}");
        let kubeconfig = admin_kubeconfig(&url, &credentials.ca_pem, &credentials.admin_token);
        let kubeconfig_file = file(
            "admin.kubeconfig",
            &serde_json::to_string(&kubeconfig).unwrap_or_default(),
        )?;

        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let etcd_args = vec![
            format!("--data-dir={}", dir.join("etcd").display()),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            "--listen-peer-urls=http://127.0.0.1:0".to_owned(),
            "--unsafe-no-fsync=true".to_owned(),
            "--log-level=warn".to_owned(),
        ];
        let apiserver_args = vec![
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".to_owned(),
            "--advertise-address=127.0.0.1".to_owned(),
            // The `kubernetes` Service's endpoints may not be a loopback address: leave them out.
            "--endpoint-reconciler-type=none".to_owned(),
            format!("--secure-port={port}"),
            format!("--cert-dir={}", dir.join("certs").display()),
            format!("--tls-cert-file={cert_file}"),
            format!("--tls-private-key-file={key_file}"),
            format!("--client-ca-file={ca_file}"),
            format!("--token-auth-file={token_file}"),
            "--authorization-mode=RBAC".to_owned(),
            format!("--service-account-key-file={sa_public_file}"),
            format!("--service-account-signing-key-file={sa_key_file}"),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".to_owned(),
            "--service-cluster-ip-range=10.0.0.0/24".to_owned(),
            "--allow-privileged=true".to_owned(),
            "--profiling=false".to_owned(),
        ];
        // The supervisor keeps its standard input as fd 3 for a background `read`, then waits for
        // whichever ends first: that read (the test process closed the pipe, however it ended) or a server.
        // A server that ended on its own leaves the folder, whose logs say why, to this process. The data
        // is thrown away, so the servers are killed rather than drained (a drain waits for watches).
        let mut script = String::from("dir=$1\nexec 3<&0\n");
        let _ = writeln!(
            script,
            "{} >\"$dir/etcd.log\" 2>&1 </dev/null & etcd=$!",
            command_line(&binaries.etcd, &etcd_args)
        );
        let _ = writeln!(
            script,
            "{} >\"$dir/kube-apiserver.log\" 2>&1 </dev/null & apiserver=$!",
            command_line(&binaries.kube_apiserver, &apiserver_args)
        );
        let mut servers = "$apiserver $etcd".to_owned();
        if let Some(program) = &binaries.kube_controller_manager {
            let args = vec![
                format!("--kubeconfig={kubeconfig_file}"),
                format!("--controllers={CONTROLLERS}"),
                format!("--root-ca-file={ca_file}"),
                "--leader-elect=false".to_owned(),
                "--bind-address=127.0.0.1".to_owned(),
                "--secure-port=0".to_owned(),
            ];
            let _ = writeln!(
                script,
                "{} >\"$dir/kube-controller-manager.log\" 2>&1 </dev/null & manager=$!",
                command_line(program, &args)
            );
            servers.push_str(" $manager");
        }
        let _ = writeln!(
            script,
            "(read -r _ <&3 || :) & reader=$!\nwait -n $reader {servers}\n\
             if kill -0 $reader 2>/dev/null; then kill -9 $reader {servers} 2>/dev/null; wait; exit 1; fi\n\
             kill -9 {servers} 2>/dev/null\nwait\nrm -rf \"$dir\""
        );

        let mut supervisor = Command::new("bash")
            .arg("-c")
            .arg(&script)
            .arg("autopilot-kube")
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| RealError::Spawn {
                program: "bash (supervising etcd and kube-apiserver)".to_owned(),
                source,
            })?;
        let stdin = supervisor.stdin.take();
        let mut server = RealApiServer {
            url,
            ca_pem: credentials.ca_pem,
            admin_token: credentials.admin_token,
            dir,
            supervisor,
            stdin,
            startup: Duration::ZERO,
            version: None,
        };
        server.wait_ready().await?;
        server.startup = started.elapsed();
        Ok(server)
    }

    async fn wait_ready(&mut self) -> Result<(), RealError> {
        let client = self.client()?;
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.supervisor.try_wait() {
                break;
            }
            let ready = client
                .request_text(
                    http::Request::get("/readyz")
                        .body(Vec::new())
                        .unwrap_or_default(),
                )
                .await
                .is_ok();
            if ready {
                // The system namespaces are made by a controller in the server shortly after it is ready.
                let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
                    kube::Api::all(client.clone());
                if namespaces.get_opt("default").await.ok().flatten().is_some() {
                    self.version = client
                        .apiserver_version()
                        .await
                        .ok()
                        .map(|info| info.git_version);
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(RealError::NotReady {
            waited: READY_TIMEOUT,
            log: ["kube-apiserver.log", "etcd.log"]
                .iter()
                .map(|name| format!("== {name}\n{}", log_tail(&self.dir.join(name), 3000)))
                .collect::<Vec<_>>()
                .join("\n"),
        })
    }

    /// `https://127.0.0.1:PORT`.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The admin kubeconfig (a bearer token in `system:masters`, the server's CA).
    #[must_use]
    pub fn kubeconfig(&self) -> Kubeconfig {
        admin_kubeconfig(&self.url, &self.ca_pem, &self.admin_token)
    }

    /// The admin's client configuration, with `namespace` as the default namespace.
    ///
    /// # Errors
    /// When the server URL does not parse.
    pub fn config(&self, namespace: &str) -> Result<kube::Config, RealError> {
        let mut config = kube::Config::new(self.url.parse()?);
        config.default_namespace = namespace.to_owned();
        config.root_cert = Some(vec![pem_der(&self.ca_pem)]);
        config.auth_info.token = Some(self.admin_token.clone().into());
        Ok(config)
    }

    /// A kube client with the admin's rights, on the caller's tokio runtime.
    ///
    /// # Errors
    /// When the client cannot be built.
    pub fn client(&self) -> Result<kube::Client, RealError> {
        Ok(kube::Client::try_from(self.config("default")?)?)
    }

    /// How long start-up took, from spawning etcd to the first ready answer.
    #[must_use]
    pub fn startup(&self) -> Duration {
        self.startup
    }

    /// The version the server reports (`v1.37.2`).
    #[must_use]
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// The folder with the server's data, certificates and logs.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for RealApiServer {
    fn drop(&mut self) {
        // Closing the pipe tells the supervisor to stop the servers and remove their data.
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"\n");
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.supervisor.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.supervisor.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn admin_kubeconfig(url: &str, ca_pem: &str, token: &str) -> Kubeconfig {
    let name = "autopilot-testkit-real";
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let document = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": name, "cluster": { "server": url, "certificate-authority-data": ca } }],
        "users": [{ "name": "admin", "user": { "token": token } }],
        "contexts": [{ "name": name, "context": { "cluster": name, "user": "admin", "namespace": "default" } }],
        "current-context": name,
    });
    serde_json::from_value(document).unwrap_or_default()
}

/// The DER bytes of the first PEM block of `pem`.
fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem
        .lines()
        .skip_while(|line| !line.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|line| !line.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn missing_programs_are_named() {
        let folder = tempfile::tempdir().unwrap();
        let error = Binaries::in_folder(folder.path()).unwrap_err();
        assert!(
            error.to_string().contains("no executable kube-apiserver"),
            "{error}"
        );
    }

    #[test]
    fn credentials_are_pem() {
        let credentials = Credentials::generate().unwrap();
        assert!(
            credentials
                .ca_pem
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        assert!(!pem_der(&credentials.ca_pem).is_empty());
        assert!(credentials.service_account_key_pem.contains("PRIVATE KEY"));
    }
}
