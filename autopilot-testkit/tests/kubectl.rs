//! `kubectl` against the `autopilot-apiserver` binary: apply a CRD and a custom resource from YAML,
//! `get -o json`, `patch --type=merge`, `label`, `get --watch` seeing a change, and `delete`; apply an
//! operator's install manifests (CRD, ServiceAccount, RBAC, Deployment); unknown fields refused by
//! kubectl's default strict validation, or dropped with warnings; `kubectl create` of typed objects
//! (protobuf bodies).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(60);

const CRD: &str = r"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
              color: {type: string}
";

const WIDGET: &str = r"
apiVersion: example.com/v1
kind: Widget
metadata:
  name: w1
spec:
  size: 3
  color: blue
";

/// The server binary, stopped when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(kubeconfig: &Path) -> Server {
    let mut server = Server(
        Command::new(env!("CARGO_BIN_EXE_autopilot-apiserver"))
            .args(["--port", "0", "--kubeconfig"])
            .arg(kubeconfig)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // The binary prints its URL once it serves (after writing the kubeconfig); a failed check here still
    // stops it, as `server` is dropped.
    let mut line = String::new();
    BufReader::new(server.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("http://127.0.0.1:"), "{line}");
    server
}

struct Kubectl {
    kubeconfig: std::path::PathBuf,
    cache: std::path::PathBuf,
}

impl Kubectl {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("kubectl");
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args);
        command
    }

    fn run(&self, args: &[&str]) -> String {
        let output = self.command(args).output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        assert!(
            output.status.success(),
            "kubectl {args:?} failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// Runs a kubectl command that must fail; returns what it printed on stderr.
    fn fail(&self, args: &[&str]) -> String {
        let output = self.command(args).output().unwrap();
        assert!(!output.status.success(), "kubectl {args:?} succeeded");
        String::from_utf8_lossy(&output.stderr).to_string()
    }

    /// Writes `yaml` to `dir/name` and returns the file's path.
    fn file(dir: &Path, name: &str, yaml: &str) -> String {
        let file = dir.join(name);
        std::fs::write(&file, yaml).unwrap();
        file.to_str().unwrap().to_string()
    }

    fn apply(&self, dir: &Path, name: &str, yaml: &str) -> String {
        let file = dir.join(name);
        std::fs::write(&file, yaml).unwrap();
        self.run(&["apply", "-f", file.to_str().unwrap()])
    }

    fn widget(&self) -> serde_json::Value {
        serde_json::from_str(&self.run(&["get", "widget", "w1", "-o", "json"])).unwrap()
    }
}

/// Fails the test, saying what to install, when kubectl cannot run here: a test never passes by skipping.
fn require_kubectl() {
    let runs = Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok();
    assert!(
        runs,
        "kubectl is not on PATH: install it (apt-get install kubernetes-client; scripts/test does)"
    );
}

/// A fresh server binary and a kubectl talking to it, with their files under `dir`.
fn kubectl_against_binary(dir: &Path) -> (Server, Kubectl) {
    let kubeconfig = dir.join("kubeconfig");
    let server = start_server(&kubeconfig);
    let kubectl = Kubectl {
        kubeconfig,
        cache: dir.join("cache"),
    };
    (server, kubectl)
}

#[test]
fn kubectl_manages_custom_resources_against_the_binary() {
    require_kubectl();
    let dir = tempfile::tempdir().unwrap();
    let (_server, kubectl) = kubectl_against_binary(dir.path());

    assert!(
        kubectl
            .apply(dir.path(), "crd.yaml", CRD)
            .contains("created")
    );
    assert!(
        kubectl
            .apply(dir.path(), "widget.yaml", WIDGET)
            .contains("widget.example.com/w1 created")
    );
    let widget = kubectl.widget();
    assert_eq!(widget["spec"]["size"], 3);
    assert!(widget["metadata"]["uid"].is_string());

    // Server-side printing: the CRD's printer column.
    let table = kubectl.run(&["get", "widgets"]);
    assert!(table.contains("SIZE") && table.contains("w1"), "{table}");

    kubectl.run(&[
        "patch",
        "widget",
        "w1",
        "--type=merge",
        "-p",
        r#"{"spec":{"size":5}}"#,
    ]);
    assert_eq!(kubectl.widget()["spec"]["size"], 5);
    kubectl.run(&["label", "widget", "w1", "tier=gold"]);
    assert_eq!(kubectl.widget()["metadata"]["labels"]["tier"], "gold");
    let selected = kubectl.run(&["get", "widgets", "-l", "tier=gold", "-o", "name"]);
    assert_eq!(selected.trim(), "widget.example.com/w1");

    // A watching kubectl sees a change made by another.
    let mut watch = kubectl
        .command(&[
            "get",
            "widgets",
            "--watch",
            "-o",
            "jsonpath={.spec.size}{\"\\n\"}",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    assert_eq!(
        lines.next().unwrap().unwrap(),
        "5",
        "the watch starts with the current state"
    );
    kubectl.run(&[
        "patch",
        "widget",
        "w1",
        "--type=merge",
        "-p",
        r#"{"spec":{"size":8}}"#,
    ]);
    let started = Instant::now();
    let seen = lines.next().unwrap().unwrap();
    assert!(started.elapsed() < DEADLINE);
    assert_eq!(seen, "8", "the watch sees the change");
    let _ = watch.kill();
    let _ = watch.wait();

    assert!(kubectl.run(&["delete", "widget", "w1"]).contains("deleted"));
    let remaining = kubectl.run(&["get", "widgets", "-o", "name"]);
    assert!(remaining.trim().is_empty(), "{remaining}");
}

#[derive(
    kube::CustomResource, serde::Serialize, serde::Deserialize, Clone, Debug, schemars::JsonSchema,
)]
#[kube(
    group = "example.com",
    version = "v1",
    kind = "Gadget",
    namespaced,
    status = "GadgetStatus"
)]
struct GadgetSpec {
    size: i32,
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, schemars::JsonSchema)]
struct GadgetStatus {
    phase: String,
}

#[test]
fn kubectl_applies_an_operators_install_manifests() {
    use autopilot::manifests::{Access, OperatorManifests};
    use kube::CustomResourceExt;

    require_kubectl();
    let dir = tempfile::tempdir().unwrap();
    let (_server, kubectl) = kubectl_against_binary(dir.path());
    let manifests =
        OperatorManifests::new("gadget-operator", "operators", "ghcr.io/example/gadget:1.0")
            .crd(Gadget::crd())
            .resource("example.com", "gadgets")
            .access(Access::read_write("apps", "deployments"))
            .to_yaml()
            .unwrap();
    kubectl.run(&["create", "namespace", "operators"]);

    let applied = kubectl.apply(dir.path(), "install.yaml", &manifests);
    for object in [
        "customresourcedefinition.apiextensions.k8s.io/gadgets.example.com created",
        "serviceaccount/gadget-operator created",
        "clusterrole.rbac.authorization.k8s.io/gadget-operator created",
        "clusterrolebinding.rbac.authorization.k8s.io/gadget-operator created",
        "deployment.apps/gadget-operator created",
    ] {
        assert!(applied.contains(object), "{object} missing from: {applied}");
    }
    // Applying the same manifests again changes nothing.
    let again = kubectl.apply(dir.path(), "install.yaml", &manifests);
    assert_eq!(again.matches("unchanged").count(), 5, "{again}");

    let roles = kubectl.run(&["get", "clusterroles"]);
    let header = roles.lines().next().unwrap_or_default();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["NAME", "CREATED", "AT"],
        "{roles}"
    );
    assert!(roles.contains("gadget-operator"), "{roles}");
    let binding = kubectl.run(&["get", "clusterrolebinding", "gadget-operator", "-o", "wide"]);
    assert!(
        binding.contains("ClusterRole/gadget-operator")
            && binding.contains("operators/gadget-operator"),
        "{binding}"
    );
    let role: serde_json::Value = serde_json::from_str(&kubectl.run(&[
        "get",
        "clusterrole",
        "gadget-operator",
        "-o",
        "json",
    ]))
    .unwrap();
    let resources: Vec<&str> = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["resources"].as_array().unwrap())
        .filter_map(serde_json::Value::as_str)
        .collect();
    assert!(resources.contains(&"gadgets/status"), "{role}");
}

const DEPLOYMENT: &str = r"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx}]
";

#[test]
fn kubectl_validation_refuses_or_drops_unknown_fields() {
    require_kubectl();
    let dir = tempfile::tempdir().unwrap();
    let (_server, kubectl) = kubectl_against_binary(dir.path());
    let typo = DEPLOYMENT.replace("replicas: 1", "replicas: 1\n  replica: 2");
    let file = Kubectl::file(dir.path(), "typo.yaml", &typo);

    // kubectl validates strictly by default: the server refuses the unknown field.
    let refused = kubectl.fail(&["apply", "-f", &file]);
    let expected = r#"Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: unknown field "spec.replica""#;
    assert!(refused.contains(expected), "{refused}");

    // Warned about: created without it.
    let output = kubectl
        .command(&["apply", "--validate=warn", "-f", &file])
        .output()
        .unwrap();
    assert!(output.status.success());
    let warnings = String::from_utf8_lossy(&output.stderr);
    let expected = r#"Warning: unknown field "spec.replica""#;
    assert!(warnings.contains(expected), "{warnings}");
    let stored: serde_json::Value =
        serde_json::from_str(&kubectl.run(&["get", "deployment", "web", "-o", "json"])).unwrap();
    assert!(stored["spec"].get("replica").is_none(), "{stored}");

    // Applying again patches the object: still strict.
    let container_typo = typo.replace("image: nginx}", "image: nginx, imageTag: latest}");
    let file = Kubectl::file(dir.path(), "typo.yaml", &container_typo);
    let refused = kubectl.fail(&["apply", "-f", &file]);
    let expected = r#"unknown field "spec.template.spec.containers[0].imageTag""#;
    assert!(
        refused.contains("The request is invalid: patch: Invalid value: ")
            && refused.contains(expected),
        "{refused}"
    );

    // Custom resources are held to their CRD's schema.
    kubectl.apply(dir.path(), "crd.yaml", CRD);
    let colour = WIDGET.replace("color: blue", "colour: blue");
    let file = Kubectl::file(dir.path(), "widget.yaml", &colour);
    let refused = kubectl.fail(&["apply", "-f", &file]);
    let expected = r#"Widget in version "v1" cannot be handled as a Widget: strict decoding error: unknown field "spec.colour""#;
    assert!(refused.contains(expected), "{refused}");
}

#[test]
fn kubectl_creates_typed_objects() {
    require_kubectl();
    let dir = tempfile::tempdir().unwrap();
    let (_server, kubectl) = kubectl_against_binary(dir.path());
    let created = [
        vec!["namespace", "team"],
        vec![
            "configmap",
            "settings",
            "-n",
            "team",
            "--from-literal=mode=fast",
        ],
        vec![
            "secret",
            "generic",
            "token",
            "-n",
            "team",
            "--from-literal=value=s3cret",
        ],
        vec!["serviceaccount", "bot", "-n", "team"],
        vec![
            "role",
            "reader",
            "-n",
            "team",
            "--verb=get,list",
            "--resource=pods,deployments.apps",
        ],
        vec![
            "rolebinding",
            "readers",
            "-n",
            "team",
            "--role=reader",
            "--serviceaccount=team:bot",
        ],
        vec![
            "clusterrole",
            "metrics",
            "--verb=get",
            "--non-resource-url=/metrics",
        ],
        vec![
            "clusterrolebinding",
            "metrics",
            "--clusterrole=metrics",
            "--user=jane",
        ],
        vec![
            "deployment",
            "web",
            "-n",
            "team",
            "--image=nginx:1.27",
            "--port=8080",
            "--replicas=0",
        ],
        vec![
            "service",
            "clusterip",
            "web",
            "-n",
            "team",
            "--tcp=80:8080",
            "--tcp=443:https",
        ],
    ];
    for args in created {
        let mut command = vec!["create"];
        command.extend(args);
        assert!(kubectl.run(&command).contains("created"), "{command:?}");
    }
    let get = |args: &[&str]| -> serde_json::Value {
        let mut command = vec!["get"];
        command.extend(args);
        command.extend(["-o", "json"]);
        serde_json::from_str(&kubectl.run(&command)).unwrap()
    };
    assert_eq!(
        get(&["configmap", "settings", "-n", "team"])["data"]["mode"],
        "fast"
    );
    assert_eq!(
        get(&["secret", "token", "-n", "team"])["data"]["value"],
        "czNjcmV0"
    );
    let role = get(&["role", "reader", "-n", "team"]);
    assert_eq!(role["rules"][1]["apiGroups"][0], "apps");
    assert_eq!(
        role["rules"][0]["verbs"],
        serde_json::json!(["get", "list"])
    );
    let binding = get(&["rolebinding", "readers", "-n", "team"]);
    assert_eq!(binding["subjects"][0]["name"], "bot");
    assert_eq!(binding["roleRef"]["kind"], "Role");
    let cluster_role = get(&["clusterrole", "metrics"]);
    assert_eq!(cluster_role["rules"][0]["nonResourceURLs"][0], "/metrics");
    let deployment = get(&["deployment", "web", "-n", "team"]);
    assert_eq!(
        deployment["spec"]["replicas"], 0,
        "an explicit zero is kept"
    );
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "nginx:1.27");
    assert_eq!(container["ports"][0]["containerPort"], 8080);
    let service = get(&["service", "web", "-n", "team"]);
    assert_eq!(service["spec"]["ports"][0]["targetPort"], 8080);
    assert_eq!(service["spec"]["ports"][1]["targetPort"], "https");
    let cluster_binding = get(&["clusterrolebinding", "metrics"]);
    assert_eq!(
        cluster_binding["subjects"][0]["apiGroup"],
        "rbac.authorization.k8s.io"
    );
}
