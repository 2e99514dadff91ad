//! `metadata` validation every write goes through (apimachinery's `ValidateObjectMeta`), and the
//! message of the resulting 422.

use serde_json::Value;

use super::names::{
    dns1035_label, dns1123_label, dns1123_subdomain, label_value, path_segment, qualified_name,
};
use super::{FieldError, FieldErrorKind, aggregate_message};

/// Annotations may hold at most this many bytes of keys and values together.
const ANNOTATIONS_LIMIT: usize = 256 * 1024;

/// Which rule a kind's object names follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// A DNS-1123 subdomain (most kinds, custom resources included).
    DnsSubdomain,
    /// A DNS-1123 label (Namespace).
    DnsLabel,
    /// A DNS-1035 label (Service).
    Dns1035Label,
    /// One URL path segment (the RBAC kinds).
    PathSegment,
}

impl NameRule {
    /// The rule the API server applies to names of a kind.
    pub fn for_kind(kind: &str) -> Self {
        match kind {
            "Namespace" => Self::DnsLabel,
            "Service" => Self::Dns1035Label,
            "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding" => Self::PathSegment,
            _ => Self::DnsSubdomain,
        }
    }

    /// The problems with a name; for a `generateName` prefix a trailing `-` is fine.
    fn check(self, name: &str, prefix: bool) -> Vec<String> {
        let name = if prefix {
            name.strip_suffix('-').map(|n| format!("{n}a"))
        } else {
            None
        }
        .unwrap_or_else(|| name.to_string());
        match self {
            Self::DnsSubdomain => dns1123_subdomain(&name),
            Self::DnsLabel => dns1123_label(&name),
            Self::Dns1035Label => dns1035_label(&name),
            Self::PathSegment => path_segment(&name),
        }
    }
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn invalid(field: &str, value: &Value, detail: &str) -> FieldError {
    FieldError::new(field, FieldErrorKind::Invalid, Some(value), detail)
}

/// Validates an object's `metadata` as the API server does on create and update: `name` (or
/// `generateName`) per `rule`, `namespace` present exactly when the kind is namespaced, a
/// non-negative `generation`, label keys and values, annotation keys and total size, owner
/// references and finalizers.
///
/// ```
/// use autopilot_testkit::validation::{validate_object_meta, NameRule};
/// use serde_json::json;
///
/// let errors = validate_object_meta(&json!({"name": "Web", "namespace": "default"}), true, NameRule::DnsSubdomain);
/// assert!(errors[0].to_string().starts_with(
///     r#"metadata.name: Invalid value: "Web": a lowercase RFC 1123 subdomain must consist of"#));
/// assert!(validate_object_meta(&json!({"name": "web", "namespace": "default"}), true, NameRule::DnsSubdomain).is_empty());
/// ```
pub fn validate_object_meta(metadata: &Value, namespaced: bool, rule: NameRule) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let generate_name = text(metadata, "generateName");
    if !generate_name.is_empty() {
        for msg in rule.check(generate_name, true) {
            errors.push(invalid(
                "metadata.generateName",
                &Value::from(generate_name),
                &msg,
            ));
        }
    }
    let name = text(metadata, "name");
    if name.is_empty() {
        errors.push(FieldError::new(
            "metadata.name",
            FieldErrorKind::Required,
            None,
            "name or generateName is required",
        ));
    } else {
        for msg in rule.check(name, false) {
            errors.push(invalid("metadata.name", &Value::from(name), &msg));
        }
    }
    let namespace = text(metadata, "namespace");
    match (namespaced, namespace.is_empty()) {
        (true, true) => errors.push(FieldError::new(
            "metadata.namespace",
            FieldErrorKind::Required,
            None,
            "",
        )),
        (true, false) => {
            for msg in dns1123_label(namespace) {
                errors.push(invalid("metadata.namespace", &Value::from(namespace), &msg));
            }
        }
        (false, false) => errors.push(FieldError::new(
            "metadata.namespace",
            FieldErrorKind::Forbidden,
            None,
            "not allowed on this type",
        )),
        (false, true) => {}
    }
    if let Some(generation) = metadata.get("generation").and_then(Value::as_i64)
        && generation < 0
    {
        errors.push(invalid(
            "metadata.generation",
            &Value::from(generation),
            "must be greater than or equal to 0",
        ));
    }
    validate_labels(metadata, &mut errors);
    validate_annotations(metadata, &mut errors);
    validate_owner_references(metadata, &mut errors);
    validate_finalizers(metadata, &mut errors);
    errors
}

fn validate_labels(metadata: &Value, errors: &mut Vec<FieldError>) {
    let Some(labels) = metadata.get("labels").and_then(Value::as_object) else {
        return;
    };
    for (key, value) in labels {
        for msg in qualified_name(key) {
            errors.push(invalid("metadata.labels", &Value::from(key.as_str()), &msg));
        }
        let value = value.as_str().unwrap_or_default();
        for msg in label_value(value) {
            errors.push(invalid("metadata.labels", &Value::from(value), &msg));
        }
    }
}

fn validate_annotations(metadata: &Value, errors: &mut Vec<FieldError>) {
    let Some(annotations) = metadata.get("annotations").and_then(Value::as_object) else {
        return;
    };
    let mut total = 0;
    for (key, value) in annotations {
        for msg in qualified_name(&key.to_lowercase()) {
            errors.push(invalid(
                "metadata.annotations",
                &Value::from(key.as_str()),
                &msg,
            ));
        }
        total += key.len() + value.as_str().map_or(0, str::len);
    }
    if total > ANNOTATIONS_LIMIT {
        errors.push(FieldError::new(
            "metadata.annotations",
            FieldErrorKind::TooLong,
            None,
            &format!("may not be more than {ANNOTATIONS_LIMIT} bytes"),
        ));
    }
}

fn validate_owner_references(metadata: &Value, errors: &mut Vec<FieldError>) {
    let Some(references) = metadata.get("ownerReferences").and_then(Value::as_array) else {
        return;
    };
    let path = "metadata.ownerReferences";
    let mut controller: Option<String> = None;
    for reference in references {
        let api_version = text(reference, "apiVersion");
        let version = api_version.rsplit('/').next().unwrap_or_default();
        let checks = [
            (
                "apiVersion",
                version.is_empty(),
                api_version,
                "version must not be empty",
            ),
            (
                "kind",
                text(reference, "kind").is_empty(),
                text(reference, "kind"),
                "kind must not be empty",
            ),
            (
                "name",
                text(reference, "name").is_empty(),
                text(reference, "name"),
                "name must not be empty",
            ),
            (
                "uid",
                text(reference, "uid").is_empty(),
                text(reference, "uid"),
                "uid must not be empty",
            ),
        ];
        for (field, missing, value, detail) in checks {
            if missing {
                errors.push(invalid(
                    &format!("{path}.{field}"),
                    &Value::from(value),
                    detail,
                ));
            }
        }
        if reference.get("controller").and_then(Value::as_bool) == Some(true) {
            let current = format!("{}/{}", text(reference, "kind"), text(reference, "name"));
            match &controller {
                Some(first) => errors.push(FieldError::new(
                    path,
                    FieldErrorKind::Invalid,
                    None,
                    &format!("Only one reference can have Controller set to true. Found \"true\" in references for {first} and {current}"),
                )),
                None => controller = Some(current),
            }
        }
    }
}

fn validate_finalizers(metadata: &Value, errors: &mut Vec<FieldError>) {
    let Some(finalizers) = metadata.get("finalizers").and_then(Value::as_array) else {
        return;
    };
    let names: Vec<&str> = finalizers.iter().filter_map(Value::as_str).collect();
    for name in &names {
        for msg in qualified_name(name) {
            errors.push(invalid("metadata.finalizers", &Value::from(*name), &msg));
        }
    }
    if names.contains(&"orphan") && names.contains(&"foregroundDeletion") {
        let listed: Vec<String> = names.iter().map(|n| super::go_quote(n)).collect();
        errors.push(FieldError {
            field: "metadata.finalizers".into(),
            kind: FieldErrorKind::Invalid,
            message: format!(
                "Invalid value: []string{{{}}}: finalizer orphan and foregroundDeletion cannot be both set",
                listed.join(", ")
            ),
        });
    }
}

/// The message of the server's 422 `Invalid` status: `Canary.demo.io "c1" is invalid: <errors>`
/// (`group` empty for the core group).
///
/// ```
/// use autopilot_testkit::validation::{invalid_message, FieldError, FieldErrorKind};
///
/// let errors = [FieldError::new("spec.replicas", FieldErrorKind::Required, None, "")];
/// assert_eq!(invalid_message("Canary", "demo.io", "c1", &errors),
///     r#"Canary.demo.io "c1" is invalid: spec.replicas: Required value"#);
/// ```
pub fn invalid_message(kind: &str, group: &str, name: &str, errors: &[FieldError]) -> String {
    let qualified = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    format!(
        "{qualified} {} is invalid: {}",
        super::go_quote(name),
        aggregate_message(errors)
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lines(metadata: Value, namespaced: bool, kind: &str) -> Vec<String> {
        validate_object_meta(&metadata, namespaced, NameRule::for_kind(kind))
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn names_and_namespaces() {
        assert_eq!(
            lines(json!({}), false, "Node"),
            vec!["metadata.name: Required value: name or generateName is required"]
        );
        assert!(
            lines(
                json!({"generateName": "web-", "namespace": "a"}),
                true,
                "Pod"
            )
            .len()
                == 1,
            "generateName alone still needs a name here"
        );
        assert!(
            lines(
                json!({"name": "x", "generateName": "web-", "namespace": "a"}),
                true,
                "Pod"
            )
            .is_empty()
        );
        assert_eq!(
            lines(json!({"name": "x"}), true, "Pod"),
            vec!["metadata.namespace: Required value"]
        );
        assert_eq!(
            lines(json!({"name": "x", "namespace": "a"}), false, "Node"),
            vec!["metadata.namespace: Forbidden: not allowed on this type"]
        );
        assert!(lines(json!({"name": "a.b"}), false, "Namespace")[0].contains("RFC 1123 label"));
        assert!(
            lines(json!({"name": "1svc", "namespace": "a"}), true, "Service")[0]
                .contains("DNS-1035 label")
        );
        assert!(lines(json!({"name": "a.b", "namespace": "a"}), true, "ConfigMap").is_empty());
        assert!(
            lines(json!({"name": "x", "namespace": "A"}), true, "Pod")[0].starts_with(
                r#"metadata.namespace: Invalid value: "A": a lowercase RFC 1123 label"#
            )
        );
    }

    #[test]
    fn labels_annotations_generation() {
        let errors = lines(
            json!({"name": "x", "generation": -1, "labels": {"ok": "-bad", "bad key": "v"},
            "annotations": {"Example.com/Fine": "x", "a/b/c": "y"}}),
            false,
            "Node",
        );
        assert_eq!(errors.len(), 4, "{errors:#?}");
        assert_eq!(
            errors[0],
            "metadata.generation: Invalid value: -1: must be greater than or equal to 0"
        );
        assert!(
            errors[1].starts_with(
                r#"metadata.labels: Invalid value: "bad key": name part must consist"#
            )
        );
        assert!(
            errors[2]
                .starts_with(r#"metadata.labels: Invalid value: "-bad": a valid label must be"#)
        );
        assert!(errors[3].starts_with(
            r#"metadata.annotations: Invalid value: "a/b/c": a qualified name must consist"#
        ));
        let big = json!({"name": "x", "annotations": {"k": "v".repeat(ANNOTATIONS_LIMIT)}});
        assert_eq!(
            lines(big, false, "Node"),
            vec!["metadata.annotations: Too long: may not be more than 262144 bytes"]
        );
    }

    #[test]
    fn owner_references_and_finalizers() {
        let errors = lines(
            json!({"name": "x", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "a", "uid": "1", "controller": true},
            {"apiVersion": "", "kind": "X", "name": "", "uid": "2", "controller": true}
        ], "finalizers": ["orphan", "foregroundDeletion", "bad/name/x"]}),
            false,
            "Node",
        );
        assert_eq!(
            errors[0],
            r#"metadata.ownerReferences.apiVersion: Invalid value: "": version must not be empty"#
        );
        assert_eq!(
            errors[1],
            r#"metadata.ownerReferences.name: Invalid value: "": name must not be empty"#
        );
        assert_eq!(
            errors[2],
            "metadata.ownerReferences: Invalid value: Only one reference can have Controller set to true. Found \"true\" in references for ReplicaSet/a and X/"
        );
        assert!(errors[3].starts_with(r#"metadata.finalizers: Invalid value: "bad/name/x""#));
        assert_eq!(
            errors[4],
            r#"metadata.finalizers: Invalid value: []string{"orphan", "foregroundDeletion", "bad/name/x"}: finalizer orphan and foregroundDeletion cannot be both set"#
        );
    }

    #[test]
    fn invalid_message_core_and_several_errors() {
        let errors = [
            FieldError::new("a", FieldErrorKind::Required, None, ""),
            FieldError::new("b", FieldErrorKind::Required, None, ""),
        ];
        assert_eq!(
            invalid_message("Pod", "", "p", &errors),
            r#"Pod "p" is invalid: [a: Required value, b: Required value]"#
        );
    }
}
