//! Discovery documents: `/version`, `/api`, `/apis`, `/apis/{group}`, and the resource list of a group/version.

use std::cmp::Ordering;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::registry::{Registry, ResourceType};

/// The Kubernetes version the server reports.
pub const KUBERNETES_VERSION: (&str, &str) = ("1", "34");

/// `/version`.
pub fn version() -> Value {
    let (major, minor) = KUBERNETES_VERSION;
    json!({
        "major": major,
        "minor": minor,
        "emulationMajor": major,
        "emulationMinor": minor,
        "gitVersion": format!("v{major}.{minor}.0"),
        "gitCommit": "autopilot-testkit",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `/api`.
pub fn core_versions(address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": address }],
    })
}

/// Orders versions as Kubernetes does: GA before beta before alpha, higher numbers first, others last.
pub fn version_priority(a: &str, b: &str) -> Ordering {
    fn parse(v: &str) -> Option<(u8, u32, u32)> {
        let rest = v.strip_prefix('v')?;
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let major: u32 = rest[..digits].parse().ok()?;
        let (stability, minor) = match &rest[digits..] {
            "" => (3, 0),
            tail if tail.starts_with("beta") => (2, tail[4..].parse().ok()?),
            tail if tail.starts_with("alpha") => (1, tail[5..].parse().ok()?),
            _ => return None,
        };
        Some((stability, major, minor))
    }
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => y.cmp(&x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// The groups served (core excluded), each with its versions in priority order.
pub fn groups(registry: &Registry) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for resource in registry.all() {
        if resource.group.is_empty() {
            continue;
        }
        match groups.iter_mut().find(|(g, _)| *g == resource.group) {
            Some((_, versions)) => {
                if !versions.contains(&resource.version) {
                    versions.push(resource.version.clone());
                }
            }
            None => groups.push((resource.group.clone(), vec![resource.version.clone()])),
        }
    }
    for (_, versions) in &mut groups {
        versions.sort_by(|a, b| version_priority(a, b));
    }
    groups
}

fn group_document(group: &str, versions: &[String]) -> Value {
    let entry = |v: &String| json!({ "groupVersion": format!("{group}/{v}"), "version": v });
    json!({
        "name": group,
        "versions": versions.iter().map(entry).collect::<Vec<_>>(),
        "preferredVersion": versions.first().map(entry).unwrap_or(Value::Null),
    })
}

/// `/apis`.
pub fn group_list(registry: &Registry) -> Value {
    let groups: Vec<Value> = groups(registry)
        .iter()
        .map(|(g, v)| group_document(g, v))
        .collect();
    json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
}

/// `/apis/{group}`.
pub fn group(registry: &Registry, name: &str) -> Option<Value> {
    groups(registry)
        .into_iter()
        .find(|(g, _)| g == name)
        .map(|(g, versions)| {
            let mut document = group_document(&g, &versions);
            document["kind"] = json!("APIGroup");
            document["apiVersion"] = json!("v1");
            document
        })
}

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const SUBRESOURCE_VERBS: [&str; 3] = ["get", "patch", "update"];

/// The discovery entries of one resource: the resource and its subresources.
pub fn resource_entries(resource: &ResourceType) -> Vec<Value> {
    let mut main = json!({
        "name": resource.plural,
        "singularName": resource.singular,
        "namespaced": resource.namespaced,
        "kind": resource.kind,
        "verbs": VERBS,
    });
    if !resource.short_names.is_empty() {
        main["shortNames"] = json!(resource.short_names);
    }
    if !resource.categories.is_empty() {
        main["categories"] = json!(resource.categories);
    }
    let mut entries = vec![main];
    let sub = |name: &str, kind: &str, verbs: &[&str]| json!({ "name": format!("{}/{name}", resource.plural), "singularName": "", "namespaced": resource.namespaced, "kind": kind, "verbs": verbs });
    if resource.status_subresource {
        entries.push(sub("status", &resource.kind, &SUBRESOURCE_VERBS));
    }
    if resource.scale.is_some() {
        let mut scale = sub("scale", "Scale", &SUBRESOURCE_VERBS);
        scale["group"] = json!("autoscaling");
        scale["version"] = json!("v1");
        entries.push(scale);
    }
    if !resource.custom && resource.kind == "Namespace" {
        entries.push(sub("finalize", "Namespace", &["update"]));
    }
    entries
}

/// The resources served at `group/version`.
pub fn served(registry: &Registry, group: &str, version: &str) -> Vec<Arc<ResourceType>> {
    registry
        .all()
        .into_iter()
        .filter(|r| r.group == group && r.version == version)
        .collect()
}

/// `/api/v1` or `/apis/{group}/{version}`.
pub fn resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let resources = served(registry, group, version);
    if resources.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let entries: Vec<Value> = resources.iter().flat_map(|r| resource_entries(r)).collect();
    Some(
        json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": entries }),
    )
}

fn aggregated_resource(resource: &ResourceType) -> Value {
    let kind = |group: &str, version: &str, kind: &str| json!({ "group": group, "version": version, "kind": kind });
    let own = kind(&resource.group, &resource.version, &resource.kind);
    let mut subresources = Vec::new();
    if resource.status_subresource {
        subresources.push(
            json!({ "subresource": "status", "responseKind": own, "verbs": SUBRESOURCE_VERBS }),
        );
    }
    if resource.scale.is_some() {
        subresources.push(json!({ "subresource": "scale", "responseKind": kind("autoscaling", "v1", "Scale"), "verbs": SUBRESOURCE_VERBS }));
    }
    let mut entry = json!({
        "resource": resource.plural,
        "responseKind": own,
        "scope": if resource.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": resource.singular,
        "verbs": VERBS,
    });
    if !resource.short_names.is_empty() {
        entry["shortNames"] = json!(resource.short_names);
    }
    if !resource.categories.is_empty() {
        entry["categories"] = json!(resource.categories);
    }
    if !subresources.is_empty() {
        entry["subresources"] = json!(subresources);
    }
    entry
}

/// Aggregated discovery (`as=APIGroupDiscoveryList`, `apidiscovery.k8s.io/{version}`): every group (or, for
/// `/api`, the core group) with its versions and resources in one document.
pub fn aggregated(registry: &Registry, core: bool, version: &str) -> Value {
    let listed = if core {
        vec![(String::new(), vec!["v1".to_string()])]
    } else {
        groups(registry)
    };
    let items: Vec<Value> = listed
        .iter()
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let resources: Vec<Value> =
                        served(registry, group, v).iter().map(|r| aggregated_resource(r)).collect();
                    json!({ "version": v, "resources": resources, "freshness": "Current" })
                })
                .collect();
            json!({ "metadata": { "name": group, "creationTimestamp": null }, "versions": versions })
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_like_kubernetes() {
        let mut versions = vec!["v1alpha1", "v2", "v1beta2", "v1", "foo", "v1beta1"];
        versions.sort_by(|a, b| version_priority(a, b));
        assert_eq!(
            versions,
            vec!["v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]
        );
    }

    #[test]
    fn apps_v1_lists_deployments_with_subresources() {
        let registry = Registry::new();
        let list = resource_list(&registry, "apps", "v1").unwrap();
        let names: Vec<&str> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"deployments") && names.contains(&"deployments/scale"));
        assert!(group(&registry, "coordination.k8s.io").is_some());
        assert!(resource_list(&registry, "apps", "v9").is_none());
    }
}
