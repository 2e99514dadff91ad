//! The cluster's ClusterRoles: the bootstrap `cluster-admin` role and its binding to `system:masters`
//! (created at start-up, as the API server's bootstrap policy does), and aggregation: a ClusterRole with
//! an `aggregationRule` holds the rules of every other ClusterRole its selectors pick, in name order, each
//! rule once (kube-controller-manager's clusterrole-aggregation controller).

use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::meta;
use crate::selector::LabelSelector;
use crate::store::{Change, Stored};
use crate::validation::RBAC_GROUP;
use crate::write::WriteParams;

const CLUSTER_ROLES: &str = "clusterroles";

/// Creates `cluster-admin` and its binding.
pub(crate) fn bootstrap(cluster: &Cluster) {
    let defaults = || {
        json!({
            "name": "cluster-admin",
            "labels": { "kubernetes.io/bootstrapping": "rbac-defaults" },
            "annotations": { "rbac.authorization.kubernetes.io/autoupdate": "true" },
        })
    };
    let role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": defaults(),
        "rules": [
            { "apiGroups": ["*"], "resources": ["*"], "verbs": ["*"] },
            { "nonResourceURLs": ["*"], "verbs": ["*"] },
        ],
    });
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": defaults(),
        "roleRef": { "apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "cluster-admin" },
        "subjects": [{ "apiGroup": RBAC_GROUP, "kind": "Group", "name": "system:masters" }],
    });
    for (plural, object) in [(CLUSTER_ROLES, role), ("clusterrolebindings", binding)] {
        let Some(resource) = cluster.builtin(RBAC_GROUP, plural) else {
            continue;
        };
        if let Err(error) = cluster.create(&resource, None, object, &WriteParams::default()) {
            tracing::error!(%error, plural, "cannot create the bootstrap cluster-admin policy");
        }
    }
}

pub(super) fn on_change(cluster: &Cluster, change: &Change) {
    if change.storage.strip_prefix(RBAC_GROUP) == Some("/clusterroles") {
        sweep(cluster);
    }
}

/// Brings every aggregated ClusterRole up to date.
pub(super) fn sweep(cluster: &Cluster) {
    let Some(roles) = cluster.builtin(RBAC_GROUP, CLUSTER_ROLES) else {
        return;
    };
    // In name order, as the controller sorts them.
    let all = cluster
        .store
        .list(&roles.storage, None, None, None, |_| true)
        .items;
    for role in &all {
        let Some(rules) = aggregated_rules(role, &all) else {
            continue;
        };
        let current = role.object().get("rules").and_then(Value::as_array);
        if current.map_or(rules.is_empty(), |current| same_rules(current, &rules)) {
            continue;
        }
        let name = meta::meta_str(role.object(), "name");
        if let Err(error) = cluster.edit(&roles, None, name, |object| {
            object["rules"] = Value::Array(rules.clone());
        }) {
            tracing::debug!(%error, name, "cannot aggregate a cluster role");
        }
    }
}

/// The rules an aggregated role should hold; `None` when it has no `aggregationRule`.
fn aggregated_rules(role: &Stored, all: &[Stored]) -> Option<Vec<Value>> {
    let selectors = role
        .object()
        .get("aggregationRule")
        .filter(|rule| !rule.is_null())?
        .get("clusterRoleSelectors")
        .and_then(Value::as_array);
    let name = meta::meta_str(role.object(), "name");
    let mut rules: Vec<Value> = Vec::new();
    for selector in selectors.into_iter().flatten() {
        let Ok(selector) = LabelSelector::from_label_selector(Some(selector)) else {
            continue;
        };
        let picked = all.iter().filter(|other| {
            meta::meta_str(other.object(), "name") != name
                && selector.matches_object(other.object())
        });
        for other in picked {
            let other_rules = other.object().get("rules").and_then(Value::as_array);
            for rule in other_rules.into_iter().flatten() {
                if !rules.iter().any(|r| same_rule(r, rule)) {
                    rules.push(rule.clone());
                }
            }
        }
    }
    Some(rules)
}

/// Rules compare as Go's semantic equality does: an empty list is the same as none.
fn same_rule(a: &Value, b: &Value) -> bool {
    let field = |rule: &Value, key: &str| {
        rule.get(key)
            .filter(|v| v.as_array().is_none_or(|items| !items.is_empty()) && !v.is_null())
            .cloned()
    };
    [
        "verbs",
        "apiGroups",
        "resources",
        "resourceNames",
        "nonResourceURLs",
    ]
    .iter()
    .all(|key| field(a, key) == field(b, key))
}

fn same_rules(a: &[Value], b: &[Value]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_rule(x, y))
}
