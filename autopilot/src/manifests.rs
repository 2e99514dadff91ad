//! The manifests that install an operator: its CRD, RBAC and Deployment.
//!
//! [`OperatorManifests`] derives least-privilege RBAC from what the operator touches — its own
//! resource (with `status` and `finalizers`), the kinds it watches and owns, Events, and the Lease
//! for leader election — and a Deployment with probes, metrics port, `POD_NAME` for the leader
//! identity, and two replicas. Render them with [`OperatorManifests::to_yaml`].
//!
//! ```
//! use autopilot::manifests::{Access, OperatorManifests};
//!
//! let manifests = OperatorManifests::new("canary-operator", "autopilot-system", "ghcr.io/acme/canary:1.0")
//!     .resource("demo.autopilot.rs", "canaries")
//!     .access(Access::read_write("apps", "deployments"));
//! let yaml = manifests.to_yaml().unwrap();
//! assert!(yaml.contains("canaries/status"));
//! assert!(yaml.contains("kind: ClusterRoleBinding"));
//! assert!(yaml.contains("path: /readyz"));
//! ```

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector, PodSpec,
    PodTemplateSpec, Probe, SecurityContext, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;
use std::collections::BTreeMap;

/// Rendering the manifests failed.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// An object could not be turned into JSON.
    #[error("manifest cannot be serialised")]
    Json(#[from] serde_json::Error),
    /// An object could not be turned into YAML.
    #[error("manifest cannot be rendered as YAML")]
    Yaml(#[from] serde_saphyr::SerializeError),
}

/// Access to one kind of resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    group: String,
    resource: String,
    verbs: Vec<&'static str>,
}

const READ: [&str; 3] = ["get", "list", "watch"];
const WRITE: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];

impl Access {
    /// get, list and watch: for kinds the operator watches as inputs.
    pub fn read(group: impl Into<String>, resource: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            resource: resource.into(),
            verbs: READ.to_vec(),
        }
    }

    /// Reading and every write: for kinds the operator owns (outputs).
    pub fn read_write(group: impl Into<String>, resource: impl Into<String>) -> Self {
        let mut access = Self::read(group, resource);
        access.verbs.extend(WRITE);
        access
    }

    fn rule(&self) -> PolicyRule {
        PolicyRule {
            api_groups: Some(vec![self.group.clone()]),
            resources: Some(vec![self.resource.clone()]),
            verbs: self.verbs.iter().map(|verb| (*verb).to_owned()).collect(),
            ..PolicyRule::default()
        }
    }
}

/// Everything needed to install an operator; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct OperatorManifests {
    name: String,
    namespace: String,
    image: String,
    replicas: i32,
    metrics_port: i32,
    crds: Vec<CustomResourceDefinition>,
    access: Vec<Access>,
}

impl OperatorManifests {
    /// An operator called `name`, running `image` in `namespace`.
    pub fn new(
        name: impl Into<String>,
        namespace: impl Into<String>,
        image: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            namespace: namespace.into(),
            image: image.into(),
            replicas: 2,
            metrics_port: 8080,
            crds: Vec::new(),
            access: vec![
                // Events are written through events.k8s.io; leader election needs its Lease.
                Access {
                    group: "events.k8s.io".to_owned(),
                    resource: "events".to_owned(),
                    verbs: vec!["create", "patch", "update"],
                },
                Access {
                    group: "coordination.k8s.io".to_owned(),
                    resource: "leases".to_owned(),
                    verbs: vec!["get", "list", "watch", "create", "update", "patch"],
                },
            ],
        }
    }

    /// Includes a CRD and grants full access to its resource (see [`resource`](Self::resource)).
    #[must_use]
    pub fn crd(mut self, crd: CustomResourceDefinition) -> Self {
        let group = crd.spec.group.clone();
        let plural = crd.spec.names.plural.clone();
        self.crds.push(crd);
        self.resource(group, plural)
    }

    /// Grants what a controller needs on its own resource: every verb, plus `status` and
    /// `finalizers`.
    #[must_use]
    pub fn resource(mut self, group: impl Into<String>, plural: impl Into<String>) -> Self {
        let (group, plural) = (group.into(), plural.into());
        self.access
            .push(Access::read_write(group.clone(), plural.clone()));
        for sub in ["status", "finalizers"] {
            self.access.push(Access {
                group: group.clone(),
                resource: format!("{plural}/{sub}"),
                verbs: vec!["get", "update", "patch"],
            });
        }
        self
    }

    /// Grants access to another kind (an input or an output).
    #[must_use]
    pub fn access(mut self, access: Access) -> Self {
        self.access.push(access);
        self
    }

    /// How many replicas run (default 2: one leads, one stands by).
    #[must_use]
    pub fn replicas(mut self, replicas: i32) -> Self {
        self.replicas = replicas;
        self
    }

    /// Every object, in the order to apply them (CRDs first).
    ///
    /// # Errors
    /// Only if an object cannot be serialised, which the types rule out in practice.
    pub fn objects(&self) -> Result<Vec<Value>, ManifestError> {
        let mut objects = Vec::new();
        for crd in &self.crds {
            objects.push(serde_json::to_value(crd)?);
        }
        objects.push(serde_json::to_value(self.service_account())?);
        objects.push(serde_json::to_value(self.cluster_role())?);
        objects.push(serde_json::to_value(self.cluster_role_binding())?);
        objects.push(serde_json::to_value(self.deployment())?);
        Ok(objects)
    }

    /// The objects as one multi-document YAML stream.
    ///
    /// # Errors
    /// As for [`objects`](Self::objects).
    pub fn to_yaml(&self) -> Result<String, ManifestError> {
        let mut yaml = String::new();
        for object in self.objects()? {
            yaml.push_str("---\n");
            yaml.push_str(&serde_saphyr::to_string(&object)?);
        }
        Ok(yaml)
    }

    fn metadata(&self, namespaced: bool) -> ObjectMeta {
        ObjectMeta {
            name: Some(self.name.clone()),
            namespace: namespaced.then(|| self.namespace.clone()),
            labels: Some(self.labels()),
            ..ObjectMeta::default()
        }
    }

    fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".to_owned(), self.name.clone()),
            (
                "app.kubernetes.io/managed-by".to_owned(),
                "autopilot".to_owned(),
            ),
        ])
    }

    fn service_account(&self) -> ServiceAccount {
        ServiceAccount {
            metadata: self.metadata(true),
            ..ServiceAccount::default()
        }
    }

    fn cluster_role(&self) -> ClusterRole {
        ClusterRole {
            metadata: self.metadata(false),
            rules: Some(self.access.iter().map(Access::rule).collect()),
            ..ClusterRole::default()
        }
    }

    fn cluster_role_binding(&self) -> ClusterRoleBinding {
        ClusterRoleBinding {
            metadata: self.metadata(false),
            role_ref: RoleRef {
                api_group: Some("rbac.authorization.k8s.io".to_owned()),
                kind: "ClusterRole".to_owned(),
                name: self.name.clone(),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".to_owned(),
                name: self.name.clone(),
                namespace: Some(self.namespace.clone()),
                ..Subject::default()
            }]),
        }
    }

    fn deployment(&self) -> Deployment {
        let probe = |path: &str| Probe {
            http_get: Some(HTTPGetAction {
                path: Some(path.to_owned()),
                port: IntOrString::String("metrics".to_owned()),
                ..HTTPGetAction::default()
            }),
            period_seconds: Some(10),
            ..Probe::default()
        };
        let container = Container {
            name: "operator".to_owned(),
            image: Some(self.image.clone()),
            args: Some(vec![
                "--leader-election=true".to_owned(),
                format!("--lease-namespace={}", self.namespace),
                format!("--metrics-address=0.0.0.0:{}", self.metrics_port),
            ]),
            env: Some(vec![EnvVar {
                name: "POD_NAME".to_owned(),
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        field_path: "metadata.name".to_owned(),
                        ..ObjectFieldSelector::default()
                    }),
                    ..EnvVarSource::default()
                }),
                ..EnvVar::default()
            }]),
            ports: Some(vec![ContainerPort {
                name: Some("metrics".to_owned()),
                container_port: self.metrics_port,
                ..ContainerPort::default()
            }]),
            liveness_probe: Some(probe("/healthz")),
            readiness_probe: Some(probe("/readyz")),
            security_context: Some(SecurityContext {
                allow_privilege_escalation: Some(false),
                read_only_root_filesystem: Some(true),
                run_as_non_root: Some(true),
                ..SecurityContext::default()
            }),
            ..Container::default()
        };
        Deployment {
            metadata: self.metadata(true),
            spec: DeploymentSpec {
                replicas: Some(self.replicas),
                selector: LabelSelector {
                    match_labels: Some(self.labels()),
                    ..LabelSelector::default()
                },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(self.labels()),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(PodSpec {
                        service_account_name: Some(self.name.clone()),
                        // Leave time to finish in-flight handlers and release the lease.
                        termination_grace_period_seconds: Some(40),
                        containers: vec![container],
                        ..PodSpec::default()
                    }),
                },
                ..DeploymentSpec::default()
            },
            ..Deployment::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(manifests: &OperatorManifests) -> Vec<(String, String, Vec<String>)> {
        manifests
            .cluster_role()
            .rules
            .unwrap_or_default()
            .into_iter()
            .map(|rule| {
                (
                    rule.api_groups.unwrap_or_default().join(","),
                    rule.resources.unwrap_or_default().join(","),
                    rule.verbs,
                )
            })
            .collect()
    }

    #[test]
    fn rbac_covers_the_resource_its_subresources_events_and_lease() {
        let manifests = OperatorManifests::new("op", "ops", "img").resource("demo.io", "canaries");
        let rules = rules(&manifests);
        let find = |resource: &str| {
            rules
                .iter()
                .find(|(_, r, _)| r == resource)
                .unwrap_or_else(|| panic!("no rule for {resource}: {rules:?}"))
        };
        assert_eq!(find("canaries").0, "demo.io");
        assert!(find("canaries").2.contains(&"watch".to_owned()));
        assert!(find("canaries/status").2.contains(&"patch".to_owned()));
        assert!(find("canaries/finalizers").2.contains(&"update".to_owned()));
        assert!(find("leases").2.contains(&"update".to_owned()));
        assert_eq!(find("events").0, "events.k8s.io");
    }

    #[test]
    fn inputs_are_read_only() {
        let manifests =
            OperatorManifests::new("op", "ops", "img").access(Access::read("apps", "deployments"));
        let rules = rules(&manifests);
        let deployments = rules.iter().find(|(_, r, _)| r == "deployments").unwrap();
        assert_eq!(deployments.2, ["get", "list", "watch"]);
    }

    #[test]
    fn deployment_runs_under_the_service_account_with_probes() {
        let manifests = OperatorManifests::new("op", "ops", "img:1");
        let objects = manifests.objects().unwrap();
        let deployment = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(pod["serviceAccountName"], "op");
        assert_eq!(deployment["spec"]["replicas"], 2);
        let container = &pod["containers"][0];
        assert_eq!(container["image"], "img:1");
        assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(
            container["env"][0]["valueFrom"]["fieldRef"]["fieldPath"],
            "metadata.name"
        );
        let binding = objects
            .iter()
            .find(|o| o["kind"] == "ClusterRoleBinding")
            .unwrap();
        assert_eq!(binding["subjects"][0]["namespace"], "ops");
    }
}
