//! The columns the server prints for RoleBindings and ClusterRoleBindings: the role they grant and,
//! for `-o wide`, their users, groups and service accounts.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{AGE, Cells, Column, NAME, age, name, text};

const ROLE_BINDING_REF: &str = "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error.";
const CLUSTER_ROLE_BINDING_REF: &str = "RoleRef can only reference a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error.";

/// The printer of `RoleBinding` or `ClusterRoleBinding`.
pub(super) fn binding_printer(kind: &str) -> (Vec<Column>, Cells) {
    let (role, users, groups, accounts): (&'static str, _, _, _) = if kind == "RoleBinding" {
        (
            ROLE_BINDING_REF,
            "Users in the roleBinding",
            "Groups in the roleBinding",
            "ServiceAccounts in the roleBinding",
        )
    } else {
        (
            CLUSTER_ROLE_BINDING_REF,
            "Users in the clusterRoleBinding",
            "Groups in the clusterRoleBinding",
            "ServiceAccounts in the clusterRoleBinding",
        )
    };
    (
        vec![
            NAME,
            ("Role", "string", 0, role),
            AGE,
            ("Users", "string", 1, users),
            ("Groups", "string", 1, groups),
            ("ServiceAccounts", "string", 1, accounts),
        ],
        binding_cells,
    )
}

fn binding_cells(binding: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let role = format!(
        "{}/{}",
        text(binding, "/roleRef/kind"),
        text(binding, "/roleRef/name")
    );
    let (mut users, mut groups, mut accounts) = (Vec::new(), Vec::new(), Vec::new());
    let subjects = binding.get("subjects").and_then(Value::as_array);
    for subject in subjects.into_iter().flatten() {
        let subject_name = text(subject, "/name").to_string();
        match text(subject, "/kind") {
            "ServiceAccount" => {
                accounts.push(format!("{}/{subject_name}", text(subject, "/namespace")));
            }
            "User" => users.push(subject_name),
            "Group" => groups.push(subject_name),
            _ => {}
        }
    }
    vec![
        name(binding),
        Value::from(role),
        age(binding, now),
        Value::from(users.join(", ")),
        Value::from(groups.join(", ")),
        Value::from(accounts.join(", ")),
    ]
}
