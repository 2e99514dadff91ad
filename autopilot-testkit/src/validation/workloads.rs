//! The checks the API server runs on the `apps` workload kinds (Deployment, ReplicaSet, StatefulSet,
//! DaemonSet) beyond metadata: a non-empty selector that the pod template's labels match, and a pod
//! template with named containers that say which image they run.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{FieldError, go_quote};
use crate::selector::LabelSelector;
use crate::status::field::invalid_literal;

/// The workload kinds of the `apps` group these checks apply to.
pub const WORKLOAD_KINDS: [&str; 4] = ["Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"];

fn required(field: &str) -> FieldError {
    crate::status::field::required(field, "")
}

/// Go's `%#v` of a `map[string]string`, as the server prints template labels.
fn go_string_map(labels: Option<&BTreeMap<String, String>>) -> String {
    match labels {
        None => "map[string]string(nil)".to_owned(),
        Some(labels) => {
            let entries: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{}:{}", go_quote(k), go_quote(v)))
                .collect();
            format!("map[string]string{{{}}}", entries.join(", "))
        }
    }
}

/// Field errors of an `apps/v1` workload of `kind`; none for other kinds.
///
/// ```
/// use autopilot_testkit::validation::validate_workload;
/// use serde_json::json;
///
/// let deployment = json!({"spec": {"selector": {}, "template": {"spec": {}}}});
/// let lines: Vec<String> = validate_workload("Deployment", &deployment).iter().map(|e| e.to_string()).collect();
/// assert_eq!(lines, [
///     "spec.selector: Invalid value: {}: empty selector is invalid for deployment",
///     "spec.template.spec.containers: Required value",
/// ]);
/// ```
#[must_use]
pub fn validate_workload(kind: &str, object: &Value) -> Vec<FieldError> {
    if !WORKLOAD_KINDS.contains(&kind) {
        return Vec::new();
    }
    let spec = object.get("spec").unwrap_or(&Value::Null);
    let mut errors = Vec::new();
    let selector = spec.get("selector").filter(|s| !s.is_null());
    let parsed = match selector {
        None => {
            errors.push(required("spec.selector"));
            None
        }
        Some(selector) => {
            let parsed = LabelSelector::from_label_selector(Some(selector)).ok();
            if parsed.as_ref().is_none_or(LabelSelector::is_empty) {
                errors.push(invalid_literal(
                    "spec.selector",
                    "{}",
                    "empty selector is invalid for deployment",
                ));
            }
            parsed
        }
    };
    // The template is a struct, not a pointer: a missing one is validated as an empty one.
    let empty = Value::Object(serde_json::Map::new());
    let template = spec
        .get("template")
        .filter(|t| !t.is_null())
        .unwrap_or(&empty);
    let labels: Option<BTreeMap<String, String>> = template
        .pointer("/metadata/labels")
        .and_then(|labels| serde_json::from_value(labels.clone()).ok());
    if let Some(selector) = parsed.filter(|s| !s.is_empty())
        && !selector.matches(&labels.clone().unwrap_or_default())
    {
        errors.push(invalid_literal(
            "spec.template.metadata.labels",
            &go_string_map(labels.as_ref()),
            "`selector` does not match template `labels`",
        ));
    }
    let containers = template
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if containers.is_empty() {
        errors.push(required("spec.template.spec.containers"));
    }
    for (index, container) in containers.iter().enumerate() {
        for field in ["name", "image"] {
            if container
                .get(field)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .is_empty()
            {
                errors.push(required(&format!(
                    "spec.template.spec.containers[{index}].{field}"
                )));
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lines(errors: &[FieldError]) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_valid_deployment_passes() {
        let deployment = json!({"spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web", "tier": "front"}},
                         "spec": {"containers": [{"name": "web", "image": "web:1"}]}}}});
        assert!(validate_workload("Deployment", &deployment).is_empty());
        assert!(validate_workload("ConfigMap", &json!({})).is_empty());
    }

    #[test]
    fn template_labels_must_match_the_selector() {
        let deployment = json!({"spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "api"}},
                         "spec": {"containers": [{"name": "web"}]}}}});
        assert_eq!(
            lines(&validate_workload("ReplicaSet", &deployment)),
            [
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"api\"}: `selector` does not match template `labels`",
                "spec.template.spec.containers[0].image: Required value",
            ]
        );
    }

    #[test]
    fn a_missing_selector_is_required() {
        assert_eq!(
            lines(&validate_workload("StatefulSet", &json!({"spec": {}}))),
            [
                "spec.selector: Required value",
                "spec.template.spec.containers: Required value"
            ]
        );
    }
}
