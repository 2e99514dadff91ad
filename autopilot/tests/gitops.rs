//! The GitOps sink against real local repositories.

use std::path::Path;
use std::process::Command;

use autopilot::sinks::git::{GitSink, GitSinkConfig, GitSinkError};
use serde_json::{Value, json};

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A bare repository with one commit on `main` holding a README.
fn remote(root: &Path) -> String {
    let bare = root.join("fleet.git");
    let seed = root.join("seed");
    git(
        root,
        &[
            "init",
            "--quiet",
            "--bare",
            "--initial-branch=main",
            bare.to_str().unwrap(),
        ],
    );
    git(
        root,
        &[
            "clone",
            "--quiet",
            bare.to_str().unwrap(),
            seed.to_str().unwrap(),
        ],
    );
    std::fs::write(seed.join("README.md"), "fleet\n").unwrap();
    git(&seed, &["add", "README.md"]);
    git(
        &seed,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "--quiet",
            "-m",
            "seed",
        ],
    );
    git(&seed, &["push", "--quiet", "origin", "HEAD:main"]);
    bare.to_str().unwrap().to_owned()
}

fn show(bare: &str, path: &str) -> Option<String> {
    let output = Command::new("git")
        .args(["--git-dir", bare, "show", &format!("main:{path}")])
        .output()
        .unwrap();
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

fn route(weight: u8) -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "podinfo", "namespace": "demo", "resourceVersion": "12"},
        "spec": {"hosts": ["podinfo"], "http": [{"route": [
            {"destination": {"host": "podinfo-primary"}, "weight": 100 - weight},
            {"destination": {"host": "podinfo-canary"}, "weight": weight}
        ]}]}
    })
}

#[tokio::test]
async fn writes_a_flux_layout_and_commits_only_changes() {
    let root = tempfile::tempdir().unwrap();
    let bare = remote(root.path());
    let sink = GitSink::clone(GitSinkConfig::new(&bare, "apps/demo"))
        .await
        .unwrap();

    let commit = sink.write(&[route(10)], "route 10%").await.unwrap();
    assert!(commit.is_some());
    let file =
        show(&bare, "apps/demo/demo/virtualservice-podinfo.yaml").expect("manifest committed");
    assert!(
        file.contains("weight: 90") && file.contains("weight: 10"),
        "{file}"
    );
    assert!(!file.contains("resourceVersion"), "{file}");
    let kustomization = show(&bare, "apps/demo/kustomization.yaml").unwrap();
    assert!(
        kustomization.contains("demo/virtualservice-podinfo.yaml"),
        "{kustomization}"
    );
    assert_eq!(
        show(&bare, "README.md").as_deref(),
        Some("fleet\n"),
        "other files untouched"
    );

    assert_eq!(
        sink.write(&[route(10)], "again").await.unwrap(),
        None,
        "no empty commits"
    );
    assert!(
        sink.write(&[route(20)], "route 20%")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        show(&bare, "apps/demo/demo/virtualservice-podinfo.yaml")
            .unwrap()
            .contains("weight: 80")
    );

    assert!(
        sink.remove(&[route(0)], "remove route")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        show(&bare, "apps/demo/demo/virtualservice-podinfo.yaml"),
        None
    );
    let log = Command::new("git")
        .args(["--git-dir", &bare, "log", "--format=%s", "main"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&log.stdout)
            .lines()
            .collect::<Vec<_>>(),
        ["remove route", "route 20%", "route 10%", "seed"]
    );
}

#[tokio::test]
async fn starts_the_branch_in_an_empty_repository() {
    let root = tempfile::tempdir().unwrap();
    let bare = root.path().join("empty.git");
    git(
        root.path(),
        &["init", "--quiet", "--bare", bare.to_str().unwrap()],
    );
    let bare = bare.to_str().unwrap().to_owned();
    let sink = GitSink::clone(GitSinkConfig::new(&bare, "apps").branch("main"))
        .await
        .unwrap();
    sink.write(&[route(0)], "first").await.unwrap();
    assert!(show(&bare, "apps/demo/virtualservice-podinfo.yaml").is_some());
}

/// Makes `sink`'s next pushes lose a race: its pre-push hook first pushes another writer's commit.
fn install_racing_writer(sink: &GitSink, bare: &str, root: &Path, races: u32) {
    let other = root.join("other");
    git(root, &["clone", "--quiet", bare, other.to_str().unwrap()]);
    let counter = root.join("races-left");
    std::fs::write(&counter, races.to_string()).unwrap();
    let hook = sink.checkout_dir().join(".git/hooks/pre-push");
    let script = format!(
        r#"#!/bin/sh
left=$(cat {counter})
[ "$left" -gt 0 ] || exit 0
echo $((left - 1)) > {counter}
cd {other} && git pull --quiet --rebase origin main
echo "race $left" > {other}/other-$left.txt
git add . && git -c user.name=o -c user.email=o@o commit --quiet -m "other writer $left"
git push --quiet origin HEAD:main
"#,
        counter = counter.display(),
        other = other.display(),
    );
    std::fs::write(&hook, script).unwrap();
    Command::new("chmod").arg("+x").arg(&hook).status().unwrap();
}

#[tokio::test]
async fn a_rejected_push_is_retried_on_the_new_tip() {
    let root = tempfile::tempdir().unwrap();
    let bare = remote(root.path());
    let sink = GitSink::clone(GitSinkConfig::new(&bare, "apps/demo"))
        .await
        .unwrap();
    install_racing_writer(&sink, &bare, root.path(), 2);

    sink.write(&[route(30)], "route 30%")
        .await
        .unwrap()
        .expect("committed");

    // Both of the other writer's commits survive, and ours sits on top of them.
    assert_eq!(show(&bare, "other-2.txt").as_deref(), Some("race 2\n"));
    assert_eq!(show(&bare, "other-1.txt").as_deref(), Some("race 1\n"));
    assert!(
        show(&bare, "apps/demo/demo/virtualservice-podinfo.yaml")
            .unwrap()
            .contains("weight: 30")
    );
    let log = Command::new("git")
        .args(["--git-dir", &bare, "log", "--format=%s", "main"])
        .output()
        .unwrap();
    let subjects: Vec<_> = String::from_utf8_lossy(&log.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        subjects[..3],
        ["route 30%", "other writer 1", "other writer 2"]
    );
}

#[tokio::test]
async fn gives_up_after_max_attempts_without_losing_the_remote() {
    let root = tempfile::tempdir().unwrap();
    let bare = remote(root.path());
    let mut config = GitSinkConfig::new(&bare, "apps/demo");
    config.max_attempts = 2;
    let sink = GitSink::clone(config).await.unwrap();
    install_racing_writer(&sink, &bare, root.path(), 5);

    let error = sink.write(&[route(40)], "route 40%").await.unwrap_err();
    assert!(
        matches!(error, GitSinkError::Rejected { attempts: 2, .. }),
        "{error}"
    );
    assert_eq!(show(&bare, "other-5.txt").as_deref(), Some("race 5\n"));
    assert_eq!(show(&bare, "other-4.txt").as_deref(), Some("race 4\n"));
    assert_eq!(
        show(&bare, "apps/demo/demo/virtualservice-podinfo.yaml"),
        None
    );
}
