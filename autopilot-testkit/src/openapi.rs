//! OpenAPI documents: `/openapi/v2` (Swagger 2.0) and `/openapi/v3` (an index of per-group-version
//! documents), with paths for every served resource and schemas for built-in kinds (from k8s-openapi) and
//! custom resources (from their CRDs). `kubectl apply` reads them to validate and to find patch strategies.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use k8s_openapi::api::{apps, coordination, core, events, rbac};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

use crate::discovery;
use crate::registry::{Registry, ResourceType};

/// Which OpenAPI dialect a document is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Swagger2,
    OpenApi3,
}

impl Dialect {
    fn generator(self) -> SchemaGenerator {
        match self {
            Self::OpenApi3 => SchemaSettings::openapi3().into_generator(),
            Self::Swagger2 => SchemaSettings::openapi3()
                .with(|s| s.definitions_path = "/definitions".into())
                .into_generator(),
        }
    }

    fn reference(self, name: &str) -> String {
        match self {
            Self::OpenApi3 => format!("#/components/schemas/{name}"),
            Self::Swagger2 => format!("#/definitions/{name}"),
        }
    }

    fn query_parameter(self, name: &str) -> Value {
        match self {
            Self::OpenApi3 => {
                json!({ "name": name, "in": "query", "schema": { "type": "string", "uniqueItems": true } })
            }
            Self::Swagger2 => {
                json!({ "name": name, "in": "query", "type": "string", "uniqueItems": true })
            }
        }
    }
}

/// Adds the schema of a built-in kind to the generator; returns its definition name.
fn builtin(generator: &mut SchemaGenerator, group: &str, kind: &str) -> Option<String> {
    fn add<T: schemars::JsonSchema>(generator: &mut SchemaGenerator) -> String {
        generator.subschema_for::<T>();
        T::schema_name().into_owned()
    }
    Some(match (group, kind) {
        ("", "Namespace") => add::<core::v1::Namespace>(generator),
        ("", "Pod") => add::<core::v1::Pod>(generator),
        ("", "Service") => add::<core::v1::Service>(generator),
        ("", "ConfigMap") => add::<core::v1::ConfigMap>(generator),
        ("", "Secret") => add::<core::v1::Secret>(generator),
        ("", "ServiceAccount") => add::<core::v1::ServiceAccount>(generator),
        ("", "Event") => add::<core::v1::Event>(generator),
        ("apps", "Deployment") => add::<apps::v1::Deployment>(generator),
        ("apps", "ReplicaSet") => add::<apps::v1::ReplicaSet>(generator),
        ("coordination.k8s.io", "Lease") => add::<coordination::v1::Lease>(generator),
        ("events.k8s.io", "Event") => add::<events::v1::Event>(generator),
        ("rbac.authorization.k8s.io", "Role") => add::<rbac::v1::Role>(generator),
        ("rbac.authorization.k8s.io", "RoleBinding") => add::<rbac::v1::RoleBinding>(generator),
        ("rbac.authorization.k8s.io", "ClusterRole") => add::<rbac::v1::ClusterRole>(generator),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            add::<rbac::v1::ClusterRoleBinding>(generator)
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            add::<CustomResourceDefinition>(generator)
        }
        _ => return None,
    })
}

/// The definition name of a custom kind, in the server's reverse-domain style (`com.example.v1.Widget`).
fn custom_name(resource: &ResourceType) -> String {
    let reversed: Vec<&str> = resource.group.split('.').rev().collect();
    format!(
        "{}.{}.{}",
        reversed.join("."),
        resource.version,
        resource.kind
    )
}

struct Document {
    dialect: Dialect,
    generator: SchemaGenerator,
    extra: Map<String, Value>,
    kinds: BTreeMap<String, Value>,
    paths: Map<String, Value>,
}

impl Document {
    fn new(dialect: Dialect) -> Self {
        Self {
            dialect,
            generator: dialect.generator(),
            extra: Map::new(),
            kinds: BTreeMap::new(),
            paths: Map::new(),
        }
    }

    fn add(&mut self, resource: &ResourceType) {
        let gvk =
            json!({ "group": resource.group, "version": resource.version, "kind": resource.kind });
        let name = if resource.custom {
            let name = custom_name(resource);
            let mut schema = resource
                .schema
                .clone()
                .unwrap_or_else(|| json!({ "type": "object" }));
            schema["x-kubernetes-group-version-kind"] = json!([gvk]);
            self.extra.insert(name.clone(), schema);
            name
        } else {
            match builtin(&mut self.generator, &resource.group, &resource.kind) {
                Some(name) => name,
                None => return,
            }
        };
        self.kinds.insert(name.clone(), gvk.clone());
        self.add_paths(resource, &name, &gvk);
    }

    fn operation(&self, action: &str, name: &str, gvk: &Value, params: &[&str]) -> Value {
        let reference = json!({ "$ref": self.dialect.reference(name) });
        let response = match self.dialect {
            Dialect::OpenApi3 => {
                json!({ "description": "OK", "content": { "application/json": { "schema": reference } } })
            }
            Dialect::Swagger2 => json!({ "description": "OK", "schema": reference }),
        };
        let parameters: Vec<Value> = params
            .iter()
            .map(|p| self.dialect.query_parameter(p))
            .collect();
        json!({
            "operationId": format!("{action}{}", gvk["kind"].as_str().unwrap_or_default()),
            "parameters": parameters,
            "responses": { "200": response },
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
        })
    }

    fn add_paths(&mut self, resource: &ResourceType, name: &str, gvk: &Value) {
        let prefix = if resource.group.is_empty() {
            format!("/api/{}", resource.version)
        } else {
            format!("/apis/{}/{}", resource.group, resource.version)
        };
        let scope = if resource.namespaced {
            "/namespaces/{namespace}"
        } else {
            ""
        };
        let collection = format!("{prefix}{scope}/{}", resource.plural);
        let write = ["dryRun", "fieldManager", "fieldValidation"];
        let patch = ["dryRun", "fieldManager", "fieldValidation", "force"];
        self.paths.insert(
            collection.clone(),
            json!({
                "get": self.operation("list", name, gvk, &["labelSelector", "fieldSelector", "limit", "continue", "watch"]),
                "post": self.operation("post", name, gvk, &write),
                "delete": self.operation("deletecollection", name, gvk, &["labelSelector", "fieldSelector"]),
            }),
        );
        let mut item = json!({
            "get": self.operation("get", name, gvk, &[]),
            "put": self.operation("put", name, gvk, &write),
            "patch": self.operation("patch", name, gvk, &patch),
            "delete": self.operation("delete", name, gvk, &["dryRun"]),
        });
        if let Some(map) = item.as_object_mut() {
            self.paths
                .insert(format!("{collection}/{{name}}"), Value::Object(map.clone()));
            if resource.status_subresource {
                map.remove("delete");
                self.paths.insert(
                    format!("{collection}/{{name}}/status"),
                    Value::Object(map.clone()),
                );
            }
        }
    }

    fn finish(mut self) -> Value {
        let mut schemas = self.generator.take_definitions(true);
        schemas.extend(self.extra);
        for (name, gvk) in &self.kinds {
            if let Some(schema) = schemas.get_mut(name).and_then(Value::as_object_mut) {
                schema.insert("x-kubernetes-group-version-kind".into(), json!([gvk]));
            }
        }
        let (major, minor) = discovery::KUBERNETES_VERSION;
        let info = json!({ "title": "Kubernetes", "version": format!("v{major}.{minor}.0") });
        match self.dialect {
            Dialect::OpenApi3 => json!({
                "openapi": "3.0.0",
                "info": info,
                "paths": self.paths,
                "components": { "schemas": schemas },
            }),
            Dialect::Swagger2 => json!({
                "swagger": "2.0",
                "info": info,
                "paths": self.paths,
                "definitions": schemas,
            }),
        }
    }
}

/// The OpenAPI v3 schemas of the built-in kinds, with every definition they refer to.
#[derive(Debug)]
pub struct BuiltinSchemas {
    /// Every definition by name (`io.k8s.api.apps.v1.Deployment`), as `$ref`s name them.
    pub definitions: Map<String, Value>,
    names: BTreeMap<(String, String), String>,
}

impl BuiltinSchemas {
    /// The schema of the built-in kind `kind` of `group`.
    pub fn schema(&self, group: &str, kind: &str) -> Option<&Value> {
        self.names
            .get(&(group.to_string(), kind.to_string()))
            .and_then(|name| self.definitions.get(name))
    }
}

/// The schemas of the built-in kinds, built once, on first use.
pub fn builtin_schemas() -> &'static BuiltinSchemas {
    static SCHEMAS: std::sync::OnceLock<BuiltinSchemas> = std::sync::OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let mut generator = Dialect::OpenApi3.generator();
        let mut names = BTreeMap::new();
        for resource in crate::registry::builtins() {
            if let Some(name) = builtin(&mut generator, &resource.group, &resource.kind) {
                names.insert((resource.group, resource.kind), name);
            }
        }
        BuiltinSchemas {
            definitions: generator.take_definitions(true),
            names,
        }
    })
}

/// `/openapi/v2`: every served resource in one Swagger 2.0 document.
pub fn v2(registry: &Registry) -> Value {
    let mut document = Document::new(Dialect::Swagger2);
    for resource in registry.all() {
        document.add(&resource);
    }
    document.finish()
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/{group}/{version}`.
pub fn v3(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let served = discovery::served(registry, group, version);
    if served.is_empty() {
        return None;
    }
    let mut document = Document::new(Dialect::OpenApi3);
    for resource in &served {
        document.add(resource);
    }
    Some(document.finish())
}

fn hash(document: &Value) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    document.to_string().hash(&mut hasher);
    format!("{:016X}", hasher.finish())
}

/// `/openapi/v3`: where each group-version's document is, with a hash that changes with its content (kubectl
/// caches documents by it).
pub fn v3_index(registry: &Registry) -> Value {
    let mut versions: Vec<(String, String)> = vec![(String::new(), "v1".to_string())];
    for (group, group_versions) in discovery::groups(registry) {
        versions.extend(group_versions.into_iter().map(|v| (group.clone(), v)));
    }
    let mut paths = Map::new();
    for (group, version) in versions {
        let Some(document) = v3(registry, &group, &version) else {
            continue;
        };
        let path = if group.is_empty() {
            format!("api/{version}")
        } else {
            format!("apis/{group}/{version}")
        };
        let url = format!("/openapi/v3/{path}?hash={}", hash(&document));
        paths.insert(path, json!({ "serverRelativeURL": url }));
    }
    json!({ "paths": paths })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_carry_built_in_schemas_with_their_kind() {
        let registry = Registry::new();
        let Some(apps) = v3(&registry, "apps", "v1") else {
            panic!("apps/v1 is served");
        };
        let deployment = &apps["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            deployment["x-kubernetes-group-version-kind"][0]["kind"],
            "Deployment"
        );
        assert!(
            apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
                .is_object()
        );
        let index = v3_index(&registry);
        let url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap_or_default();
        assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="), "{url}");
        assert!(v2(&registry)["definitions"]["io.k8s.api.core.v1.ConfigMap"].is_object());
    }
}
