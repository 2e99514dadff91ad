//! The checks the API server runs on the `rbac.authorization.k8s.io` kinds beyond metadata: policy
//! rules need verbs and a target, bindings need a valid `roleRef` (which never changes) and subjects.

use serde_json::Value;

use super::names::{dns1123_subdomain, path_segment};
use super::{FieldError, FieldErrorKind, go_quote};
use crate::status::field::{invalid_literal, required};

/// The RBAC API group.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn strings(value: &Value, key: &str) -> Vec<String> {
    value
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect()
}

fn entries<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn not_supported(field: &str, value: &str, supported: &[&str]) -> FieldError {
    let supported: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
    FieldError::new(
        field,
        FieldErrorKind::NotSupported,
        Some(&Value::from(value)),
        &format!("supported values: {}", supported.join(", ")),
    )
}

fn invalid(field: &str, value: &str, detail: &str) -> FieldError {
    FieldError::new(
        field,
        FieldErrorKind::Invalid,
        Some(&Value::from(value)),
        detail,
    )
}

/// The field errors of an RBAC object of `kind` (`Role`, `ClusterRole`, `RoleBinding`,
/// `ClusterRoleBinding`), on create (`old` is `None`) or update. Metadata is checked elsewhere.
///
/// ```
/// use autopilot_testkit::validation::validate_rbac;
/// use serde_json::json;
///
/// let role = json!({"rules": [{"apiGroups": [""], "resources": ["pods"]}]});
/// let errors = validate_rbac("Role", &role, None);
/// assert_eq!(errors[0].to_string(), "rules[0].verbs: Required value: verbs must contain at least one value");
///
/// let old = json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}});
/// let new = json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"}});
/// let errors = validate_rbac("ClusterRoleBinding", &new, Some(&old));
/// assert!(errors.last().unwrap().to_string().ends_with("cannot change roleRef"));
/// ```
pub fn validate_rbac(kind: &str, object: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let single = match kind {
        "Role" => rules(object, true),
        "ClusterRole" => {
            let mut errors = rules(object, false);
            let aggregation = object.get("aggregationRule").filter(|a| !a.is_null());
            if aggregation.is_some_and(|a| entries(a, "clusterRoleSelectors").is_empty()) {
                errors.push(required(
                    "aggregationRule.clusterRoleSelectors",
                    "at least one clusterRoleSelector required if aggregationRule is non-nil",
                ));
            }
            errors
        }
        "RoleBinding" => binding(object, true),
        "ClusterRoleBinding" => binding(object, false),
        _ => return Vec::new(),
    };
    let Some(old) = old else {
        return single;
    };
    // The server runs the create checks twice on update (once on their own, once inside the update
    // checks), so every cause appears twice; the message lists it once.
    let mut errors = single.clone();
    errors.extend(single);
    if kind.ends_with("Binding") {
        let role_ref = |o: &Value| {
            let r = o.get("roleRef").unwrap_or(&Value::Null);
            (
                text(r, "apiGroup").to_string(),
                text(r, "kind").to_string(),
                text(r, "name").to_string(),
            )
        };
        let current = role_ref(object);
        if role_ref(old) != current {
            let (group, ref_kind, name) = current;
            let literal = format!(
                "rbac.RoleRef{{APIGroup:{}, Kind:{}, Name:{}}}",
                go_quote(&group),
                go_quote(&ref_kind),
                go_quote(&name)
            );
            errors.push(invalid_literal(
                "roleRef",
                &literal,
                "cannot change roleRef",
            ));
        }
    }
    errors
}

/// `validatePolicyRule` for every rule of a Role (namespaced) or ClusterRole.
fn rules(role: &Value, namespaced: bool) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (i, rule) in entries(role, "rules").iter().enumerate() {
        let path = |field: &str| format!("rules[{i}].{field}");
        if strings(rule, "verbs").is_empty() {
            errors.push(required(
                &path("verbs"),
                "verbs must contain at least one value",
            ));
        }
        let urls = strings(rule, "nonResourceURLs");
        let (groups, resources, names) = (
            strings(rule, "apiGroups"),
            strings(rule, "resources"),
            strings(rule, "resourceNames"),
        );
        if !urls.is_empty() {
            let literal = format!(
                "[]string{{{}}}",
                urls.iter()
                    .map(|u| go_quote(u))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if namespaced {
                errors.push(invalid_literal(
                    &path("nonResourceURLs"),
                    &literal,
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if !groups.is_empty() || !resources.is_empty() || !names.is_empty() {
                errors.push(invalid_literal(
                    &path("nonResourceURLs"),
                    &literal,
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if groups.is_empty() {
            errors.push(required(
                &path("apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if resources.is_empty() {
            errors.push(required(
                &path("resources"),
                "resource rules must supply at least one resource",
            ));
        }
        if !names.is_empty() && resources.len() > 1 {
            errors.push(required(
                &path("resourceNames"),
                "resource names cannot apply to multiple resources",
            ));
        }
    }
    errors
}

/// `ValidateRoleBinding` / `ValidateClusterRoleBinding` without the metadata part.
fn binding(binding: &Value, namespaced: bool) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let role_ref = binding.get("roleRef").unwrap_or(&Value::Null);
    let group = text(role_ref, "apiGroup");
    if group != RBAC_GROUP {
        errors.push(not_supported("roleRef.apiGroup", group, &[RBAC_GROUP]));
    }
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    let kind = text(role_ref, "kind");
    if !kinds.contains(&kind) {
        errors.push(not_supported("roleRef.kind", kind, kinds));
    }
    let name = text(role_ref, "name");
    if name.is_empty() {
        errors.push(required("roleRef.name", ""));
    }
    for msg in path_segment(name).iter().filter(|_| !name.is_empty()) {
        errors.push(invalid("roleRef.name", name, msg));
    }
    for (i, subject) in entries(binding, "subjects").iter().enumerate() {
        errors.extend(subject_errors(subject, namespaced, i));
    }
    errors
}

fn subject_errors(subject: &Value, namespaced: bool, i: usize) -> Vec<FieldError> {
    let path = |field: &str| format!("subjects[{i}].{field}");
    let mut errors = Vec::new();
    let (name, group) = (text(subject, "name"), text(subject, "apiGroup"));
    if name.is_empty() {
        errors.push(required(&path("name"), ""));
    }
    match text(subject, "kind") {
        "ServiceAccount" => {
            if !name.is_empty() {
                for msg in dns1123_subdomain(name) {
                    errors.push(invalid(&path("name"), name, &msg));
                }
            }
            if !group.is_empty() {
                errors.push(not_supported(&path("apiGroup"), group, &[""]));
            }
            if !namespaced && text(subject, "namespace").is_empty() {
                errors.push(required(&path("namespace"), ""));
            }
        }
        kind @ ("User" | "Group") => {
            if name.is_empty() {
                let what = if kind == "User" { "user" } else { "group" };
                errors.push(invalid(
                    &path("name"),
                    name,
                    &format!("{what} name cannot be empty"),
                ));
            }
            if group != RBAC_GROUP {
                errors.push(not_supported(&path("apiGroup"), group, &[RBAC_GROUP]));
            }
        }
        other => errors.push(not_supported(
            &path("kind"),
            other,
            &["ServiceAccount", "User", "Group"],
        )),
    }
    errors
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lines(errors: &[FieldError]) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn rules_need_verbs_and_a_target() {
        let role = json!({"rules": [
            {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]},
            {"verbs": [], "resources": ["pods", "services"], "resourceNames": ["a"]},
            {"verbs": ["get"], "nonResourceURLs": ["/healthz"], "apiGroups": [""]}
        ]});
        assert_eq!(
            lines(&validate_rbac("Role", &role, None)),
            [
                "rules[1].verbs: Required value: verbs must contain at least one value",
                "rules[1].apiGroups: Required value: resource rules must supply at least one api group",
                "rules[1].resourceNames: Required value: resource names cannot apply to multiple resources",
                "rules[2].nonResourceURLs: Invalid value: []string{\"/healthz\"}: namespaced rules cannot apply to non-resource URLs",
                "rules[2].nonResourceURLs: Invalid value: []string{\"/healthz\"}: rules cannot apply to both regular resources and non-resource URLs",
            ]
        );
        let cluster_role = json!({"rules": [{"verbs": ["get"], "nonResourceURLs": ["/metrics"]}]});
        assert!(validate_rbac("ClusterRole", &cluster_role, None).is_empty());
        let aggregated = json!({"aggregationRule": {"clusterRoleSelectors": []}});
        assert_eq!(
            lines(&validate_rbac("ClusterRole", &aggregated, None)),
            [
                "aggregationRule.clusterRoleSelectors: Required value: at least one clusterRoleSelector required if aggregationRule is non-nil"
            ]
        );
    }

    #[test]
    fn bindings_check_role_ref_and_subjects() {
        let binding = json!({
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "a/b"},
            "subjects": [
                {"kind": "ServiceAccount", "name": "Op", "apiGroup": "x"},
                {"kind": "User", "name": "jane", "apiGroup": "rbac.authorization.k8s.io"},
                {"kind": "Robot", "name": "r2"}
            ]
        });
        assert_eq!(
            lines(&validate_rbac("ClusterRoleBinding", &binding, None)),
            [
                "roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\"",
                "roleRef.name: Invalid value: \"a/b\": may not contain '/'",
                "subjects[0].name: Invalid value: \"Op\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                "subjects[0].apiGroup: Unsupported value: \"x\": supported values: \"\"",
                "subjects[0].namespace: Required value",
                "subjects[2].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"",
            ]
        );
        assert_eq!(
            lines(&validate_rbac("RoleBinding", &json!({}), None)),
            [
                "roleRef.apiGroup: Unsupported value: \"\": supported values: \"rbac.authorization.k8s.io\"",
                "roleRef.kind: Unsupported value: \"\": supported values: \"Role\", \"ClusterRole\"",
                "roleRef.name: Required value",
            ]
        );
    }

    #[test]
    fn role_ref_never_changes() {
        let binding = |name: &str| {
            json!({"roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": name},
                "subjects": [{"kind": "Group", "name": "devs", "apiGroup": RBAC_GROUP}]})
        };
        assert!(validate_rbac("RoleBinding", &binding("view"), Some(&binding("view"))).is_empty());
        assert_eq!(
            lines(&validate_rbac(
                "RoleBinding",
                &binding("edit"),
                Some(&binding("view"))
            )),
            [
                "roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"ClusterRole\", Name:\"edit\"}: cannot change roleRef"
            ]
        );
    }
}
