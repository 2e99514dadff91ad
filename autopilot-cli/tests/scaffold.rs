//! The proof that `autopilot new` works: the project it generates passes its own tests.
//!
//! SLOW-ISH: this builds the generated project. It shares this workspace's `target/` directory (and starts
//! from its `Cargo.lock`), so only the project itself and the autopilot crates compile, not kube & co.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("autopilot-cli sits in the workspace")
        .to_owned()
}

/// Runs `cargo <command> --offline <args>` in `dir` on this workspace's target directory.
fn cargo(dir: &Path, command: &str, args: &[&str]) -> Output {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    Command::new(cargo)
        .args([command, "--offline"])
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", workspace().join("target"))
        .output()
        .expect("cargo runs")
}

fn describe(output: &Output) -> String {
    format!(
        "exit: {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn generated_project_passes_its_own_tests() {
    let workspace = workspace();
    // A fixed place under target/ rather than a fresh temporary directory: the project's path is part of
    // its artifacts' hashes, so each run replaces the previous run's artifacts instead of adding to them.
    let project = workspace.join("target/tests/autopilot-cli/rollout-operator");
    if project.exists() {
        std::fs::remove_dir_all(&project).unwrap();
    }
    let new = Command::new(env!("CARGO_BIN_EXE_autopilot"))
        .args(["new", "rollout-operator", "--dir"])
        .arg(&project)
        .arg("--autopilot-path")
        .arg(&workspace)
        .output()
        .unwrap();
    assert!(new.status.success(), "{}", describe(&new));
    // It starts formatted.
    let cargo_bin = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let fmt = Command::new(cargo_bin)
        .args(["fmt", "--check"])
        .current_dir(&project)
        .output()
        .unwrap();
    assert!(fmt.status.success(), "{}", describe(&fmt));

    let test = cargo(&project, "test", &[]);
    assert!(test.status.success(), "{}", describe(&test));
    let stdout = String::from_utf8_lossy(&test.stdout);
    assert!(
        stdout.contains("test a_new_rollout_goes_through_its_phases ... ok"),
        "{}",
        describe(&test)
    );

    // The operator binary prints its own install manifests.
    let args = ["--quiet", "--", "manifests", "--image", "ro:1"];
    let manifests = cargo(&project, "run", &args);
    assert!(manifests.status.success(), "{}", describe(&manifests));
    let yaml = String::from_utf8_lossy(&manifests.stdout);
    for expected in [
        "kind: CustomResourceDefinition",
        "name: rollouts.demo.example.com",
        "kind: ClusterRole",
        "- rollouts/status",
        "kind: Deployment",
        "image: ro:1",
    ] {
        assert!(yaml.contains(expected), "{expected} in\n{yaml}");
    }
}
