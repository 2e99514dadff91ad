//! The `autopilot` binary as users run it: output, messages and exit codes.

use std::{
    io::Write,
    path::Path,
    process::{Command, Output, Stdio},
};

use serde_json::{Value, json};

fn autopilot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_autopilot"))
        .args(args)
        .output()
        .expect("the autopilot binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts the exit code and that stderr mentions every one of `mentions`.
fn assert_fails(output: &Output, code: i32, mentions: &[&str]) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(code), "stderr: {err}");
    for text in mentions {
        assert!(err.contains(text), "stderr should mention {text:?}: {err}");
    }
}

const CRD: &str = r#"
apiVersion: v1
kind: ServiceAccount
metadata:
  name: skipped
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: canaries.demo.example.com
spec:
  group: demo.example.com
  names: {kind: Canary, plural: canaries, singular: canary}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;

fn documents(stdout: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(stdout).expect("UTF-8 output");
    serde_saphyr::from_multiple(text).expect("the output is YAML")
}

fn kinds(docs: &[Value]) -> Vec<&str> {
    docs.iter().map(|d| d["kind"].as_str().unwrap()).collect()
}

fn find<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter().find(|d| d["kind"] == kind).unwrap()
}

fn rule(group: &str, resource: &str, verbs: &[&str]) -> Value {
    json!({"apiGroups": [group], "resources": [resource], "verbs": verbs})
}

#[test]
fn manifests_renders_crds_rbac_and_deployment() {
    let dir = tempfile::tempdir().unwrap();
    let crd = dir.path().join("crd.yaml");
    std::fs::write(&crd, CRD).unwrap();
    let output = autopilot(&[
        "manifests",
        "--name",
        "canary-operator",
        "--namespace",
        "operators",
        "--image",
        "ghcr.io/acme/canary:1.0",
        "--crd",
        crd.to_str().unwrap(),
        "--read",
        "apps/deployments",
        "--read",
        "configmaps",
        "--write",
        "networking.istio.io/virtualservices",
        "--replicas",
        "3",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let docs = documents(&output.stdout);
    assert_eq!(
        kinds(&docs),
        [
            "CustomResourceDefinition",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment"
        ]
    );
    assert_eq!(docs[0]["metadata"]["name"], "canaries.demo.example.com");
    assert_eq!(docs[1]["metadata"]["name"], "canary-operator");
    assert_eq!(docs[1]["metadata"]["namespace"], "operators");

    let rules = find(&docs, "ClusterRole")["rules"].as_array().unwrap();
    let read = ["get", "list", "watch"];
    let all = [
        "get",
        "list",
        "watch",
        "create",
        "update",
        "patch",
        "delete",
        "deletecollection",
    ];
    for expected in [
        rule("demo.example.com", "canaries", &all),
        rule(
            "demo.example.com",
            "canaries/status",
            &["get", "update", "patch"],
        ),
        rule(
            "demo.example.com",
            "canaries/finalizers",
            &["get", "update", "patch"],
        ),
        rule("apps", "deployments", &read),
        rule("", "configmaps", &read),
        rule("networking.istio.io", "virtualservices", &all),
    ] {
        assert!(rules.contains(&expected), "missing {expected} in {rules:?}");
    }

    let deployment = find(&docs, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 3);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "ghcr.io/acme/canary:1.0");
    let binding = find(&docs, "ClusterRoleBinding");
    assert_eq!(binding["subjects"][0]["namespace"], "operators");
}

#[test]
fn manifests_reads_crds_from_stdin() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_autopilot"))
        .args([
            "manifests",
            "--name",
            "op",
            "--namespace",
            "ops",
            "--image",
            "op:1",
        ])
        .args(["--crd", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(CRD.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let docs = documents(&output.stdout);
    assert_eq!(kinds(&docs)[0], "CustomResourceDefinition");
    // Without --replicas: one leader and one standby.
    assert_eq!(find(&docs, "Deployment")["spec"]["replicas"], 2);
}

#[test]
fn bad_manifests_arguments_are_usage_errors_naming_the_argument() {
    let base = ["manifests", "--namespace", "ops", "--image", "op:1"];
    for (extra, mentions) in [
        (&["--name", "Op_1"][..], &["--name", "contains `O`"][..]),
        (&["--name", "op", "--read", "Apps/x"], &["--read", "Apps/x"]),
        (
            &["--name", "op", "--write", "a/b/c/d"],
            &["--write", "too many `/`"],
        ),
        (&["--name", "op", "--replicas=-1"], &["--replicas", "-1"]),
    ] {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        assert_fails(&autopilot(&args), 2, mentions);
    }
    let missing = autopilot(&["manifests", "--name", "op"]);
    assert_fails(&missing, 2, &["--namespace", "--image"]);
    assert_fails(&autopilot(&["deploy"]), 2, &["deploy"]);
}

#[test]
fn unusable_crd_files_fail_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let base = [
        "manifests",
        "--name",
        "op",
        "--namespace",
        "ops",
        "--image",
        "op:1",
        "--crd",
    ];
    let run = |file: &Path| {
        let mut args = base.to_vec();
        args.push(file.to_str().unwrap());
        autopilot(&args)
    };
    let missing = dir.path().join("missing.yaml");
    assert_fails(&run(&missing), 1, &["cannot read", "missing.yaml"]);
    for (file, contents, says) in [
        (
            "rbac.yaml",
            "kind: ServiceAccount\napiVersion: v1\nmetadata: {name: x}\n",
            "contains no CustomResourceDefinition",
        ),
        (
            "broken.yaml",
            "kind: CustomResourceDefinition\nspec: [unclosed\n",
            "not valid YAML",
        ),
        (
            "misshapen.yaml",
            "kind: CustomResourceDefinition\nspec: {group: 7}\n",
            "document 1",
        ),
    ] {
        let path = dir.path().join(file);
        std::fs::write(&path, contents).unwrap();
        assert_fails(&run(&path), 1, &[file, says]);
    }
}

#[test]
fn new_refuses_bad_names_with_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("p");
    let target = target.to_str().unwrap();
    for (extra, mentions) in [
        (
            &["--kind", "rollout"][..],
            &["--kind", "UpperCamelCase", "`Rollout`"][..],
        ),
        (&["--group", "example"], &["--group", "at least one dot"]),
        (
            &["--phases", "Pending,Done(final)"],
            &["--phases", "no initial phase"],
        ),
        (
            &["--phases", "Pending(initial),Done(done)"],
            &["--phases", "unknown option `done` on phase `Done`"],
        ),
    ] {
        let mut args = vec!["new", "my-operator", "--dir", target];
        args.extend_from_slice(extra);
        assert_fails(&autopilot(&args), 2, mentions);
    }
    let bad_name = autopilot(&["new", "My_Operator", "--dir", target]);
    assert_fails(&bad_name, 2, &["<NAME>", "contains `M`"]);
    assert!(
        !Path::new(target).exists(),
        "nothing is written on a usage error"
    );
}

#[test]
fn new_refuses_a_non_empty_directory_and_a_wrong_checkout() {
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("notes.txt");
    std::fs::write(&keep, "mine").unwrap();
    let output = autopilot(&["new", "my-operator", "--dir", dir.path().to_str().unwrap()]);
    assert_fails(&output, 1, &["not empty", "refusing to overwrite"]);
    assert_eq!(std::fs::read_to_string(&keep).unwrap(), "mine");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    let target = dir.path().join("p");
    let not_checkout = dir.path().to_str().unwrap();
    let args = [
        "new",
        "my-operator",
        "--dir",
        target.to_str().unwrap(),
        "--autopilot-path",
        not_checkout,
    ];
    assert_fails(
        &autopilot(&args),
        1,
        &["--autopilot-path", "not an autopilot checkout"],
    );
    assert!(!target.exists());
}

#[test]
fn new_writes_a_project_on_the_published_crates() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("shop-operator");
    let output = autopilot(&[
        "new",
        "shop-operator",
        "--dir",
        target.to_str().unwrap(),
        "--kind",
        "Checkout",
        "--group",
        "shop.example.com",
        "--phases",
        "Queued(initial),Paying,Paid(final),Refund(finalizer),Rejected(failure)",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("Created shop-operator"), "{stdout}");
    for file in [
        "Cargo.toml",
        "src/lib.rs",
        "src/main.rs",
        "tests/e2e.rs",
        "README.md",
        "Dockerfile",
        ".gitignore",
        ".dockerignore",
    ] {
        assert!(target.join(file).is_file(), "{file}");
    }
    let cargo = std::fs::read_to_string(target.join("Cargo.toml")).unwrap();
    assert!(cargo.contains("name = \"shop-operator\""));
    assert!(cargo.contains("autopilot = \"0.1\""));
    assert!(!target.join("Cargo.lock").exists());
    let lib = std::fs::read_to_string(target.join("src/lib.rs")).unwrap();
    for phase in [
        "Queued(initial)",
        "Paying,",
        "Refund(finalizer)",
        "Rejected(final, failure)",
    ] {
        assert!(lib.contains(phase), "{phase} in {lib}");
    }
    assert!(lib.contains("kind = \"Checkout\""));
    assert!(lib.contains("async fn refund("));
    let readme = std::fs::read_to_string(target.join("README.md")).unwrap();
    assert!(readme.contains("apiVersion: shop.example.com/v1"));
    assert!(readme.contains("kubectl get checkout example -w"));
}
