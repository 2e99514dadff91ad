//! Commit an operator's outputs to a Git repository that Flux (or Argo CD) applies: GitOps.
//!
//! A [`GitSink`] owns one directory of one branch. Each [`write`](GitSink::write) stores every object
//! as `<dir>/<namespace>/<kind>-<name>.yaml` (cluster-scoped objects under `_cluster/`), regenerates
//! `<dir>/kustomization.yaml` listing them, commits, and pushes. When the push is rejected because
//! someone else pushed first, the change is made again on top of the new tip and pushed again — the
//! sink owns its files, so this rebase never conflicts — up to [`GitSinkConfig::max_attempts`] times.
//! Point a Flux `Kustomization` at the directory (see [`flux_sync_objects`]).
//!
//! It drives the `git` command line, so credentials, SSH keys and proxies work as they do for users.
//!
//! ```no_run
//! # async fn demo() -> Result<(), autopilot::sinks::git::GitSinkError> {
//! use autopilot::sinks::git::{GitSink, GitSinkConfig};
//! use serde_json::json;
//!
//! let sink = GitSink::clone(GitSinkConfig::new("git@example.com:team/fleet.git", "apps/podinfo")).await?;
//! let route = json!({
//!     "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
//!     "metadata": { "name": "podinfo", "namespace": "demo" },
//!     "spec": { "hosts": ["podinfo"] }
//! });
//! sink.write(&[route], "podinfo: route 10% to the canary").await?;
//! # Ok(()) }
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tokio::process::Command;
use tokio::sync::Mutex;

/// What went wrong while writing to the repository.
#[derive(Debug, thiserror::Error)]
pub enum GitSinkError {
    /// A `git` command failed.
    #[error("`git {args}` failed ({status}): {stderr}")]
    Git {
        /// The arguments given to git.
        args: String,
        /// How it exited.
        status: std::process::ExitStatus,
        /// What it printed on standard error.
        stderr: String,
    },
    /// `git` could not be run at all.
    #[error("running git failed (is it installed?)")]
    Spawn(#[source] std::io::Error),
    /// Reading or writing the checkout failed.
    #[error("writing {path} failed")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// An object could not be rendered as YAML.
    #[error("object {0} cannot be rendered as YAML")]
    Render(String, #[source] serde_saphyr::SerializeError),
    /// An object lacks `kind` or `metadata.name`.
    #[error("object has no {0}; every output needs kind and metadata.name")]
    Incomplete(&'static str),
    /// Every push was rejected because the branch kept moving.
    #[error("push to {branch} rejected {attempts} times; the branch keeps moving")]
    Rejected {
        /// The branch pushed to.
        branch: String,
        /// How many times it was tried.
        attempts: u32,
    },
}

/// Where and how a [`GitSink`] commits.
#[derive(Clone, Debug)]
pub struct GitSinkConfig {
    /// The repository URL (anything `git clone` accepts, including a local path).
    pub url: String,
    /// The branch to commit to (created when the repository has none).
    pub branch: String,
    /// The directory inside the repository that this sink owns.
    pub dir: String,
    /// Commit author name.
    pub author_name: String,
    /// Commit author email.
    pub author_email: String,
    /// How many times a rejected push is rebased and tried again.
    pub max_attempts: u32,
}

impl GitSinkConfig {
    /// Commits to `main` under `dir`, as `autopilot <autopilot@localhost>`, trying a push 5 times.
    pub fn new(url: impl Into<String>, dir: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            branch: "main".to_owned(),
            dir: dir.into(),
            author_name: "autopilot".to_owned(),
            author_email: "autopilot@localhost".to_owned(),
            max_attempts: 5,
        }
    }

    /// Commits to another branch.
    #[must_use]
    pub fn branch(mut self, branch: impl Into<String>) -> Self {
        self.branch = branch.into();
        self
    }
}

/// A checkout of one branch whose directory [`GitSinkConfig::dir`] holds the operator's outputs.
#[derive(Debug)]
pub struct GitSink {
    config: GitSinkConfig,
    checkout: tempfile::TempDir,
    /// Serialises writers sharing this checkout.
    lock: Mutex<()>,
}

impl GitSink {
    /// Clones the repository into a temporary directory.
    ///
    /// # Errors
    /// When git is missing or the clone fails (unreachable URL, no access).
    pub async fn clone(config: GitSinkConfig) -> Result<Self, GitSinkError> {
        let checkout = tempfile::tempdir().map_err(|source| GitSinkError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
        let path = checkout.path().to_string_lossy().into_owned();
        git(None, &["clone", "--quiet", &config.url, &path]).await?;
        Ok(Self {
            config,
            checkout,
            lock: Mutex::new(()),
        })
    }

    /// The local checkout (for inspection; the sink resets it before every write).
    #[must_use]
    pub fn checkout_dir(&self) -> &Path {
        self.checkout.path()
    }

    /// Stores `objects` (adding or replacing their files), commits with `message` and pushes.
    /// Returns the new commit id, or `None` when the repository already held exactly these objects.
    ///
    /// # Errors
    /// When git fails, an object lacks kind or name, or every push attempt was rejected.
    pub async fn write(
        &self,
        objects: &[Value],
        message: &str,
    ) -> Result<Option<String>, GitSinkError> {
        let files = objects
            .iter()
            .map(|object| Ok((object_file(object)?, render(object)?)))
            .collect::<Result<Vec<_>, GitSinkError>>()?;
        self.commit_and_push(message, |dir| {
            for (file, yaml) in &files {
                let path = dir.join(file);
                if let Some(parent) = path.parent() {
                    create_dir(parent)?;
                }
                std::fs::write(&path, yaml).map_err(|source| GitSinkError::Io { path, source })?;
            }
            Ok(())
        })
        .await
    }

    /// Removes the files of `objects` (only `kind`, `metadata.name` and `metadata.namespace` are
    /// read), commits and pushes; `None` when none of them was there.
    ///
    /// # Errors
    /// As for [`write`](Self::write).
    pub async fn remove(
        &self,
        objects: &[Value],
        message: &str,
    ) -> Result<Option<String>, GitSinkError> {
        let files = objects
            .iter()
            .map(object_file)
            .collect::<Result<Vec<_>, _>>()?;
        self.commit_and_push(message, |dir| {
            for file in &files {
                let path = dir.join(file);
                match std::fs::remove_file(&path) {
                    Err(source) if source.kind() != std::io::ErrorKind::NotFound => {
                        return Err(GitSinkError::Io { path, source });
                    }
                    _ => {}
                }
            }
            Ok(())
        })
        .await
    }

    async fn commit_and_push(
        &self,
        message: &str,
        change: impl Fn(&Path) -> Result<(), GitSinkError>,
    ) -> Result<Option<String>, GitSinkError> {
        let _guard = self.lock.lock().await;
        let repo = Some(self.checkout.path());
        let branch = self.config.branch.as_str();
        let dir = self.checkout.path().join(&self.config.dir);
        let author_name = format!("user.name={}", self.config.author_name);
        let author_email = format!("user.email={}", self.config.author_email);
        for _ in 0..self.config.max_attempts.max(1) {
            // Start from the remote tip every time: a retry is our change made again on top of it.
            git(repo, &["fetch", "--quiet", "origin"]).await?;
            let remote = format!("refs/remotes/origin/{branch}");
            if git(repo, &["rev-parse", "--verify", "--quiet", &remote])
                .await
                .is_ok()
            {
                git(repo, &["checkout", "--quiet", "-B", branch, &remote]).await?;
                git(repo, &["reset", "--quiet", "--hard", &remote]).await?;
            } else {
                git(repo, &["checkout", "--quiet", "--orphan", branch]).await?;
            }
            create_dir(&dir)?;
            change(&dir)?;
            write_kustomization(&dir)?;
            git(repo, &["add", "--all", "--", &self.config.dir]).await?;
            if git(repo, &["diff", "--cached", "--quiet"]).await.is_ok() {
                return Ok(None);
            }
            git(
                repo,
                &[
                    "-c",
                    &author_name,
                    "-c",
                    &author_email,
                    "commit",
                    "--quiet",
                    "-m",
                    message,
                ],
            )
            .await?;
            let pushed = git(
                repo,
                &[
                    "push",
                    "--quiet",
                    "origin",
                    &format!("HEAD:refs/heads/{branch}"),
                ],
            )
            .await;
            match pushed {
                Ok(_) => return git(repo, &["rev-parse", "HEAD"]).await.map(Some),
                Err(GitSinkError::Git { stderr, .. }) if is_rejection(&stderr) => {
                    tracing::info!(
                        branch,
                        "push rejected, the branch moved; retrying on its new tip"
                    );
                }
                Err(error) => return Err(error),
            }
        }
        Err(GitSinkError::Rejected {
            branch: branch.to_owned(),
            attempts: self.config.max_attempts.max(1),
        })
    }
}

/// The Flux objects that apply a sink's directory to a cluster: a `GitRepository` source and a
/// `Kustomization` (kustomize.toolkit.fluxcd.io/v1) reconciling `config.dir` with pruning.
///
/// ```
/// use autopilot::sinks::git::{GitSinkConfig, flux_sync_objects};
///
/// let objects = flux_sync_objects(&GitSinkConfig::new("https://example.com/fleet.git", "apps/demo"), "flux-system", "fleet");
/// assert_eq!(objects[1]["spec"]["path"], "./apps/demo");
/// assert_eq!(objects[1]["spec"]["sourceRef"]["kind"], "GitRepository");
/// ```
#[must_use]
pub fn flux_sync_objects(config: &GitSinkConfig, namespace: &str, name: &str) -> [Value; 2] {
    [
        json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": { "name": name, "namespace": namespace },
            "spec": { "interval": "1m", "url": config.url, "ref": { "branch": config.branch } }
        }),
        json!({
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": { "name": name, "namespace": namespace },
            "spec": {
                "interval": "1m",
                "path": format!("./{}", config.dir.trim_start_matches("./")),
                "prune": true,
                "sourceRef": { "kind": "GitRepository", "name": name }
            }
        }),
    ]
}

/// `<namespace>/<kind>-<name>.yaml`, or `_cluster/...` for cluster-scoped objects.
fn object_file(object: &Value) -> Result<PathBuf, GitSinkError> {
    let kind = object["kind"]
        .as_str()
        .ok_or(GitSinkError::Incomplete("kind"))?;
    let name = object["metadata"]["name"]
        .as_str()
        .ok_or(GitSinkError::Incomplete("metadata.name"))?;
    let namespace = object["metadata"]["namespace"]
        .as_str()
        .unwrap_or("_cluster");
    Ok(Path::new(namespace).join(format!("{}-{name}.yaml", kind.to_lowercase())))
}

/// The object without the fields a server owns, so the file is what a person would write.
fn render(object: &Value) -> Result<String, GitSinkError> {
    let mut clean = object.clone();
    if let Some(metadata) = clean.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "managedFields",
        ] {
            metadata.remove(field);
        }
    }
    if let Some(fields) = clean.as_object_mut() {
        fields.remove("status");
    }
    serde_saphyr::to_string(&clean).map_err(|error| {
        GitSinkError::Render(
            object["metadata"]["name"]
                .as_str()
                .unwrap_or("?")
                .to_owned(),
            error,
        )
    })
}

/// Lists every manifest below `dir` in its `kustomization.yaml`, so Flux applies exactly those.
fn write_kustomization(dir: &Path) -> Result<(), GitSinkError> {
    let mut resources = BTreeSet::new();
    collect_manifests(dir, dir, &mut resources)?;
    let kustomization = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": resources,
    });
    let path = dir.join("kustomization.yaml");
    let yaml = serde_saphyr::to_string(&kustomization)
        .map_err(|error| GitSinkError::Render("kustomization.yaml".to_owned(), error))?;
    std::fs::write(&path, yaml).map_err(|source| GitSinkError::Io { path, source })
}

fn collect_manifests(
    root: &Path,
    dir: &Path,
    out: &mut BTreeSet<String>,
) -> Result<(), GitSinkError> {
    let entries = std::fs::read_dir(dir).map_err(|source| GitSinkError::Io {
        path: dir.to_owned(),
        source,
    })?;
    for entry in entries {
        let path = entry
            .map_err(|source| GitSinkError::Io {
                path: dir.to_owned(),
                source,
            })?
            .path();
        if path.is_dir() {
            collect_manifests(root, &path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "yaml")
            && path
                .file_name()
                .is_some_and(|name| name != "kustomization.yaml")
            && let Ok(relative) = path.strip_prefix(root)
        {
            out.insert(relative.to_string_lossy().into_owned());
        }
    }
    Ok(())
}

fn create_dir(path: &Path) -> Result<(), GitSinkError> {
    std::fs::create_dir_all(path).map_err(|source| GitSinkError::Io {
        path: path.to_owned(),
        source,
    })
}

fn is_rejection(stderr: &str) -> bool {
    [
        "[rejected]",
        "non-fast-forward",
        "fetch first",
        "failed to update ref",
        "cannot lock ref",
    ]
    .iter()
    .any(|needle| stderr.contains(needle))
}

/// Runs git (in `repo` when given) and returns its trimmed standard output.
async fn git(repo: Option<&Path>, args: &[&str]) -> Result<String, GitSinkError> {
    let mut command = Command::new("git");
    if let Some(repo) = repo {
        command.arg("-C").arg(repo);
    }
    // Never stop to ask for credentials: a sink runs unattended.
    command.env("GIT_TERMINAL_PROMPT", "0").args(args);
    let output = command.output().await.map_err(GitSinkError::Spawn)?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        Err(GitSinkError::Git {
            args: args.join(" "),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_named_by_namespace_kind_and_name() {
        let object =
            json!({"kind": "VirtualService", "metadata": {"name": "app", "namespace": "demo"}});
        assert_eq!(
            object_file(&object).unwrap(),
            Path::new("demo/virtualservice-app.yaml")
        );
        let cluster = json!({"kind": "Namespace", "metadata": {"name": "demo"}});
        assert_eq!(
            object_file(&cluster).unwrap(),
            Path::new("_cluster/namespace-demo.yaml")
        );
        assert!(matches!(
            object_file(&json!({"metadata": {"name": "x"}})),
            Err(GitSinkError::Incomplete("kind"))
        ));
    }

    #[test]
    fn rendering_drops_server_owned_fields() {
        let object = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "uid": "u", "resourceVersion": "7", "managedFields": []},
            "data": {"k": "v"}, "status": {"x": 1}
        });
        let yaml = render(&object).unwrap();
        assert!(yaml.contains("name: c"), "{yaml}");
        for gone in ["uid", "resourceVersion", "managedFields", "status"] {
            assert!(!yaml.contains(gone), "{gone} kept in {yaml}");
        }
    }
}
