//! `autopilot manifests`: the install manifests of an operator from its CRD files and the kinds it touches.

use std::{
    fmt,
    io::Read,
    path::{Path, PathBuf},
    str::FromStr,
};

use autopilot::manifests::{Access, ManifestError, OperatorManifests};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

use clap::Args;

use crate::names;

/// Errors rendering the manifests.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// A CRD file could not be read.
    #[error("cannot read {}", .path.display())]
    Read {
        /// The file (`-` for stdin).
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A CRD file is not YAML.
    #[error("{} is not valid YAML", .path.display())]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: Box<serde_saphyr::Error>,
    },
    /// A document of kind CustomResourceDefinition does not have a CRD's shape.
    #[error("{}: document {index} is not a valid CustomResourceDefinition", .path.display())]
    Crd {
        /// The file.
        path: PathBuf,
        /// The document's position in the file (1-based).
        index: usize,
        /// What does not fit.
        #[source]
        source: serde_json::Error,
    },
    /// A CRD file has no CRD in it.
    #[error("{} contains no CustomResourceDefinition", .0.display())]
    NoCrd(PathBuf),
    /// The manifests could not be rendered.
    #[error(transparent)]
    Render(#[from] ManifestError),
}

/// A kind of resource, as `GROUP/RESOURCE` (`apps/deployments`); `core/configmaps` or just `configmaps` for
/// the core API group; a subresource may follow (`apps/deployments/scale`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupResource {
    group: String,
    resource: String,
}

impl FromStr for GroupResource {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split('/').collect();
        let (group, resource) = match parts[..] {
            [resource] => ("", resource.to_owned()),
            [group, resource] => (group, resource.to_owned()),
            [group, resource, sub] => (group, format!("{resource}/{sub}")),
            _ => {
                return Err(format!(
                    "`{text}` has too many `/`; expected GROUP/RESOURCE, e.g. `apps/deployments`"
                ));
            }
        };
        let group = if group == "core" { "" } else { group };
        for label in group.split('.').filter(|_| !group.is_empty()) {
            names::dns_label(label).map_err(|problem| format!("group of `{text}`: {problem}"))?;
        }
        for part in resource.split('/') {
            names::dns_label(part).map_err(|problem| {
                format!("resource of `{text}` (expected GROUP/RESOURCE, e.g. `apps/deployments`): {problem}")
            })?;
        }
        Ok(Self {
            group: group.to_owned(),
            resource,
        })
    }
}

impl fmt::Display for GroupResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        write!(f, "{group}/{}", self.resource)
    }
}

// What `autopilot manifests` is asked for. No doc comment: clap would show it instead of the subcommand's.
#[derive(Args, Clone, Debug)]
#[command(
    after_help = "Example:\n  my-operator manifests --crd-only > crd.yaml\n  \
                        autopilot manifests --name my-operator --namespace operators --image ghcr.io/acme/op:1.0 \\\n      \
                        --crd crd.yaml --read apps/deployments --write networking.istio.io/virtualservices"
)]
pub struct Install {
    /// The operator's name (Deployment, ServiceAccount, ClusterRole).
    #[arg(long, value_parser = dns_label)]
    pub name: String,
    /// The namespace the operator runs in.
    #[arg(long, value_parser = dns_label)]
    pub namespace: String,
    /// The operator's container image.
    #[arg(long, value_parser = image)]
    pub image: String,
    /// A YAML file with the operator's CRDs (`-` reads stdin); other documents in it are skipped. Grants
    /// full access to each CRD's resource, its status and finalizers. Repeatable.
    #[arg(long = "crd", value_name = "FILE.yaml")]
    pub crds: Vec<PathBuf>,
    /// A kind the operator watches: GROUP/RESOURCE (`apps/deployments`; `configmaps` for the core group).
    /// Grants get, list, watch. Repeatable.
    #[arg(long, value_name = "GROUP/RESOURCE")]
    pub read: Vec<GroupResource>,
    /// A kind the operator writes: GROUP/RESOURCE. Grants reading and every write. Repeatable.
    #[arg(long, value_name = "GROUP/RESOURCE")]
    pub write: Vec<GroupResource>,
    /// How many replicas run (one leads, the others stand by).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(i32).range(0..))]
    pub replicas: i32,
}

fn dns_label(text: &str) -> Result<String, String> {
    names::dns_label(text).map(|()| text.to_owned())
}

fn image(text: &str) -> Result<String, String> {
    if text.is_empty() || text.contains(char::is_whitespace) {
        Err(format!(
            "`{text}` is not an image reference (e.g. ghcr.io/acme/operator:1.0)"
        ))
    } else {
        Ok(text.to_owned())
    }
}

impl Install {
    /// The manifests as one multi-document YAML stream.
    ///
    /// # Errors
    /// See [`InstallError`].
    pub fn to_yaml(&self) -> Result<String, InstallError> {
        let mut manifests = OperatorManifests::new(&self.name, &self.namespace, &self.image)
            .replicas(self.replicas);
        for path in &self.crds {
            for crd in read_crds(path)? {
                manifests = manifests.crd(crd);
            }
        }
        for kind in &self.read {
            manifests = manifests.access(Access::read(&kind.group, &kind.resource));
        }
        for kind in &self.write {
            manifests = manifests.access(Access::read_write(&kind.group, &kind.resource));
        }
        Ok(manifests.to_yaml()?)
    }
}

/// The CRDs in a YAML file; other documents (an operator's own RBAC and Deployment) are skipped.
fn read_crds(path: &Path) -> Result<Vec<CustomResourceDefinition>, InstallError> {
    let read_error = |source| InstallError::Read {
        path: path.to_owned(),
        source,
    };
    let text = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(read_error)?;
        text
    } else {
        std::fs::read_to_string(path).map_err(read_error)?
    };
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(&text).map_err(|source| InstallError::Yaml {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
    let mut crds = Vec::new();
    for (index, document) in documents.into_iter().enumerate() {
        if document.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
            continue;
        }
        let crd = serde_json::from_value(document).map_err(|source| InstallError::Crd {
            path: path.to_owned(),
            index: index + 1,
            source,
        })?;
        crds.push(crd);
    }
    if crds.is_empty() {
        return Err(InstallError::NoCrd(path.to_owned()));
    }
    Ok(crds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_resources_parse_with_the_core_group_optional() {
        let apps: GroupResource = "apps/deployments".parse().unwrap();
        assert_eq!(
            (apps.group.as_str(), apps.resource.as_str()),
            ("apps", "deployments")
        );
        for core in ["configmaps", "core/configmaps", "/configmaps"] {
            let parsed: GroupResource = core.parse().unwrap();
            assert_eq!(parsed.group, "", "{core}");
            assert_eq!(parsed.to_string(), "core/configmaps");
        }
        let scale: GroupResource = "apps/deployments/scale".parse().unwrap();
        assert_eq!(scale.resource, "deployments/scale");
        let istio: GroupResource = "networking.istio.io/virtualservices".parse().unwrap();
        assert_eq!(istio.group, "networking.istio.io");
    }

    #[test]
    fn bad_group_resources_say_what_is_wrong() {
        for (text, says) in [
            ("a/b/c/d", "too many `/`"),
            ("apps/Deployments", "contains `D`"),
            ("apps/", "resource of `apps/`"),
            ("Apps/deployments", "group of `Apps/deployments`"),
        ] {
            let err = text.parse::<GroupResource>().unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
