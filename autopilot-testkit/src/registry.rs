//! The resource kinds the server serves: the built-ins and those registered by CustomResourceDefinitions.

use std::sync::{Arc, RwLock};

use serde_json::Value;

use crate::status::Named;
use crate::validation::RBAC_GROUP;

/// When `metadata.generation` is bumped on update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenerationPolicy {
    /// The kind has no generation (ConfigMap, Secret, ...).
    None,
    /// Bumped when `spec` changes.
    Spec,
    /// Bumped when `spec` or `metadata.annotations` change (Deployment).
    SpecAndAnnotations,
    /// Bumped on any change outside `metadata` (and outside `status` when that is a subresource): custom resources.
    Content,
}

/// Where a `scale` subresource reads and writes replica counts (CRD `subresources.scale`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalePaths {
    /// JSON path of the desired replicas, e.g. `.spec.replicas`.
    pub spec_replicas: String,
    /// JSON path of the observed replicas, e.g. `.status.replicas`.
    pub status_replicas: String,
    /// JSON path of the label selector string, if any.
    pub label_selector: Option<String>,
}

/// One served group/version/resource.
#[derive(Debug, Clone)]
pub struct ResourceType {
    /// API group, "" for core.
    pub group: String,
    /// Version, e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `ConfigMap`.
    pub kind: String,
    /// Plural resource name, e.g. `configmaps`.
    pub plural: String,
    /// Singular resource name, e.g. `configmap`.
    pub singular: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Short names (`cm`).
    pub short_names: Vec<String>,
    /// Categories (`all`).
    pub categories: Vec<String>,
    /// Whether `status` is a subresource.
    pub status_subresource: bool,
    /// The `scale` subresource, if any.
    pub scale: Option<ScalePaths>,
    /// Generation policy.
    pub generation: GenerationPolicy,
    /// Whether a PUT without `metadata.resourceVersion` is accepted.
    pub unconditional_update: bool,
    /// Whether a PUT of a missing object creates it (Lease, Service, Event, the RBAC kinds).
    pub create_on_update: bool,
    /// Whether a delete answers with the deleted object (otherwise a `Status`).
    pub returns_deleted_object: bool,
    /// The OpenAPI v3 schema (custom resources).
    pub schema: Option<Value>,
    /// CRD `additionalPrinterColumns`.
    #[allow(dead_code, reason = "read by server-side table printing")]
    pub printer_columns: Vec<Value>,
    /// Extra field selector paths (CRD `selectableFields`).
    pub selectable_fields: Vec<String>,
    /// How objects differ from their stored form.
    pub conversion: crate::conversion::Conversion,
    /// Whether the kind comes from a CRD.
    pub custom: bool,
    /// Name of the CRD that defines the kind.
    pub crd_name: Option<String>,
    /// Key of the object collection shared by all versions of the resource (`group/plural`).
    pub storage: Arc<str>,
}

impl Named for ResourceType {
    fn group(&self) -> &str {
        &self.group
    }
    fn plural(&self) -> &str {
        &self.plural
    }
    fn kind(&self) -> &str {
        &self.kind
    }
}

impl ResourceType {
    /// `apiVersion` of objects served by this type.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Whether `api_version` names this type's group and version (without building the string).
    pub fn is_api_version(&self, api_version: &str) -> bool {
        if self.group.is_empty() {
            return api_version == self.version;
        }
        api_version
            .split_once('/')
            .is_some_and(|(group, version)| group == self.group && version == self.version)
    }

    /// Kind of lists of this type.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Key of the object collection (shared by every version of a resource).
    pub fn storage_key(group: &str, plural: &str) -> Arc<str> {
        Arc::from(format!("{group}/{plural}"))
    }

    fn builtin(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Self {
        Self {
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
            plural: plural.to_string(),
            singular: kind.to_lowercase(),
            namespaced,
            short_names: Vec::new(),
            categories: Vec::new(),
            status_subresource: false,
            scale: None,
            generation: GenerationPolicy::None,
            unconditional_update: true,
            create_on_update: false,
            returns_deleted_object: false,
            schema: None,
            printer_columns: Vec::new(),
            selectable_fields: Vec::new(),
            conversion: crate::conversion::Conversion::Identity,
            custom: false,
            crd_name: None,
            storage: Self::storage_key(group, plural),
        }
    }

    fn short(mut self, names: &[&str]) -> Self {
        self.short_names = names.iter().map(ToString::to_string).collect();
        self
    }

    fn in_all(mut self) -> Self {
        self.categories = vec!["all".to_string()];
        self
    }

    fn with_status(mut self) -> Self {
        self.status_subresource = true;
        self
    }

    fn with_replicas(mut self) -> Self {
        self.scale = Some(ScalePaths {
            spec_replicas: ".spec.replicas".to_string(),
            status_replicas: ".status.replicas".to_string(),
            // The built-in workloads' Scale shows their spec's selector.
            label_selector: Some(".spec.selector".to_string()),
        });
        self
    }

    fn stored_as_core_events(mut self) -> Self {
        self.conversion = crate::conversion::Conversion::EventsV1;
        self.storage = Self::storage_key("", &self.plural);
        self
    }

    fn generation(mut self, policy: GenerationPolicy) -> Self {
        self.generation = policy;
        self
    }

    fn created_by_put(mut self) -> Self {
        self.create_on_update = true;
        self
    }

    fn returning_object(mut self) -> Self {
        self.returns_deleted_object = true;
        self
    }
}

/// The built-in kinds every fresh server serves, in discovery order.
pub fn builtins() -> Vec<ResourceType> {
    use GenerationPolicy::{Spec, SpecAndAnnotations};
    let core = |kind, plural, namespaced| ResourceType::builtin("", "v1", kind, plural, namespaced);
    // As in Kubernetes: no short names or categories, and a PUT may create (policy reconcilers rely on it).
    let rbac = |kind, plural, namespaced| {
        ResourceType::builtin(RBAC_GROUP, "v1", kind, plural, namespaced).created_by_put()
    };
    let mut crd = ResourceType::builtin(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
    )
    .short(&["crd", "crds"])
    .with_status()
    .generation(Spec)
    .returning_object();
    crd.categories = vec!["api-extensions".to_string()];
    crd.unconditional_update = false;
    vec![
        core("Namespace", "namespaces", false)
            .short(&["ns"])
            .with_status()
            .returning_object(),
        core("Pod", "pods", true)
            .short(&["po"])
            .in_all()
            .with_status()
            .generation(Spec)
            .returning_object(),
        core("Service", "services", true)
            .created_by_put()
            .short(&["svc"])
            .in_all()
            .with_status()
            .returning_object(),
        core("ConfigMap", "configmaps", true).short(&["cm"]),
        core("Secret", "secrets", true),
        core("ServiceAccount", "serviceaccounts", true)
            .short(&["sa"])
            .returning_object(),
        core("Event", "events", true)
            .short(&["ev"])
            .created_by_put(),
        ResourceType::builtin("apps", "v1", "Deployment", "deployments", true)
            .short(&["deploy"])
            .in_all()
            .with_status()
            .with_replicas()
            .generation(SpecAndAnnotations)
            .returning_object(),
        ResourceType::builtin("apps", "v1", "ReplicaSet", "replicasets", true)
            .short(&["rs"])
            .in_all()
            .with_status()
            .with_replicas()
            .generation(Spec)
            .returning_object(),
        ResourceType::builtin("coordination.k8s.io", "v1", "Lease", "leases", true)
            .created_by_put(),
        ResourceType::builtin("events.k8s.io", "v1", "Event", "events", true)
            .short(&["ev"])
            .created_by_put()
            .stored_as_core_events(),
        rbac("Role", "roles", true),
        rbac("RoleBinding", "rolebindings", true),
        rbac("ClusterRole", "clusterroles", false),
        rbac("ClusterRoleBinding", "clusterrolebindings", false),
        crd,
    ]
}

/// The set of served resource types; CRDs add and remove entries at run time.
#[derive(Debug)]
pub struct Registry {
    inner: RwLock<Vec<Arc<ResourceType>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// A registry holding the built-in kinds.
    pub fn new() -> Self {
        Self {
            inner: RwLock::new(builtins().into_iter().map(Arc::new).collect()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<ResourceType>>> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Arc<ResourceType>>> {
        self.inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The type served at `group/version/plural`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.read()
            .iter()
            .find(|r| r.plural == plural && r.version == version && r.group == group)
            .cloned()
    }

    /// The type of objects with this `apiVersion` and `kind`.
    pub fn find_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceType>> {
        let (group, version) = split_api_version(api_version);
        self.read()
            .iter()
            .find(|r| r.kind == kind && r.version == version && r.group == group)
            .cloned()
    }

    /// Every served type, built-ins first.
    pub fn all(&self) -> Vec<Arc<ResourceType>> {
        self.read().clone()
    }

    /// Replaces the types defined by the CRD `crd_name` with `types`.
    pub fn set_custom(&self, crd_name: &str, types: Vec<ResourceType>) {
        let mut inner = self.write();
        inner.retain(|r| r.crd_name.as_deref() != Some(crd_name));
        inner.extend(types.into_iter().map(Arc::new));
    }

    /// Stops serving the types defined by the CRD `crd_name`.
    pub fn remove_custom(&self, crd_name: &str) {
        self.write()
            .retain(|r| r.crd_name.as_deref() != Some(crd_name));
    }
}

/// Splits `group/version` (or a core `version`) into its parts.
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.rsplit_once('/').unwrap_or(("", api_version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_types_come_and_go_with_their_crd() {
        let registry = Registry::new();
        let mut widget = ResourceType::builtin("example.com", "v1", "Widget", "widgets", true);
        widget.crd_name = Some("widgets.example.com".to_string());
        registry.set_custom("widgets.example.com", vec![widget]);
        assert!(registry.find("example.com", "v1", "widgets").is_some());
        assert!(registry.find_kind("example.com/v1", "Widget").is_some());
        registry.remove_custom("widgets.example.com");
        assert!(registry.find("example.com", "v1", "widgets").is_none());
        assert!(registry.find("apps", "v1", "deployments").is_some());
    }
}
