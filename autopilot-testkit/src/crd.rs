//! CustomResourceDefinitions: checking them, their status, and the resource types they make the server serve.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::registry::{GenerationPolicy, ResourceType, ScalePaths};
use crate::status::field;
use crate::validation::FieldError;

fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The annotation that CRDs in the groups the Kubernetes project protects must carry.
const API_APPROVED: &str = "api-approved.kubernetes.io";

/// Whether `group` is one of the Kubernetes project's own (`k8s.io`, `kubernetes.io` and their subdomains).
fn is_protected_group(group: &str) -> bool {
    ["k8s.io", "kubernetes.io"]
        .iter()
        .any(|domain| group == *domain || group.ends_with(&format!(".{domain}")))
}

/// The approval check of CRDs in protected groups: the annotation names a URL (the approving pull
/// request) or starts with `unapproved`. An update that keeps the approval state is never refused.
fn validate_api_approval(crd: &Value, old: Option<&Value>) -> Option<FieldError> {
    if !is_protected_group(text(crd, "/spec/group")) {
        return None;
    }
    let annotation = |crd: &Value| {
        crd.pointer("/metadata/annotations")
            .and_then(|a| a.get(API_APPROVED))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let state = |value: &str| {
        if value.is_empty() {
            "missing"
        } else if value.starts_with("unapproved") {
            "bypassed"
        } else if value.parse::<http::Uri>().is_ok_and(|uri| {
            uri.scheme().is_some() && uri.authority().is_some_and(|a| !a.host().is_empty())
        }) {
            "approved"
        } else {
            "invalid"
        }
    };
    let value = annotation(crd);
    let new_state = state(&value);
    if old.is_some_and(|old| state(&annotation(old)) == new_state) {
        return None;
    }
    let field_path = format!("metadata.annotations[{API_APPROVED}]");
    let see = "see https://github.com/kubernetes/enhancements/pull/1111";
    match new_state {
        "missing" => Some(field::required(
            &field_path,
            &format!("protected groups must have approval annotation \"{API_APPROVED}\", {see}"),
        )),
        "invalid" => Some(field::invalid(
            &field_path,
            &json!(value),
            &format!(
                "protected groups must have approval annotation \"{API_APPROVED}\" with either a URL or a reason \
                 starting with \"unapproved\", {see}"
            ),
        )),
        _ => None,
    }
}

/// Problems that make the API server reject a CRD.
pub fn validate(crd: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut causes = Vec::new();
    let group = text(crd, "/spec/group");
    let plural = text(crd, "/spec/names/plural");
    if group.is_empty() {
        causes.push(field::required("spec.group", ""));
    }
    if plural.is_empty() {
        causes.push(field::required("spec.names.plural", ""));
    }
    if text(crd, "/spec/names/kind").is_empty() {
        causes.push(field::required("spec.names.kind", ""));
    }
    let scope = text(crd, "/spec/scope");
    if scope != "Namespaced" && scope != "Cluster" {
        causes.push(field::not_supported(
            "spec.scope",
            &json!(scope),
            "supported values: \"Cluster\", \"Namespaced\"",
        ));
    }
    let name = text(crd, "/metadata/name");
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        causes.push(field::invalid(
            "metadata.name",
            &json!(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    let versions = crd.pointer("/spec/versions").and_then(Value::as_array);
    match versions {
        None => causes.push(field::required(
            "spec.versions",
            "must have exactly one version marked as storage version",
        )),
        Some(versions) => {
            let storage = versions
                .iter()
                .filter(|v| v.get("storage") == Some(&json!(true)))
                .count();
            if storage != 1 {
                causes.push(field::invalid(
                    "spec.versions",
                    &json!(
                        versions
                            .iter()
                            .map(|v| text(v, "/name"))
                            .collect::<Vec<_>>()
                    ),
                    "must have exactly one version marked as storage version",
                ));
            }
        }
    }
    causes.extend(validate_api_approval(crd, old));
    causes
}

/// Fills the CRD defaults and the status the apiextensions controllers would write: accepted names,
/// stored versions, and the `NamesAccepted` and `Established` conditions.
pub fn settle(crd: &mut Value, old: Option<&Value>, now: &str) {
    if crd.pointer("/spec/conversion").is_none() {
        crd["spec"]["conversion"] = json!({ "strategy": "None" });
    }
    let names = crd
        .pointer("/spec/names")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut accepted = names.clone();
    if accepted.get("singular").is_none() {
        accepted["singular"] = json!(text(&names, "/kind").to_lowercase());
    }
    if accepted.get("listKind").is_none() {
        accepted["listKind"] = json!(format!("{}List", text(&names, "/kind")));
    }
    crd["spec"]["names"] = accepted.clone();
    let storage = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .and_then(|versions| {
            versions
                .iter()
                .find(|v| v.get("storage") == Some(&json!(true)))
        })
        .map(|v| text(v, "/name").to_string())
        .unwrap_or_default();
    let mut stored: Vec<Value> = old
        .and_then(|o| o.pointer("/status/storedVersions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !stored.contains(&json!(storage)) {
        stored.push(json!(storage));
    }
    let since = |kind: &str| {
        old.and_then(|o| o.pointer("/status/conditions"))
            .and_then(Value::as_array)
            .and_then(|c| c.iter().find(|c| c.get("type") == Some(&json!(kind))))
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| json!(now))
    };
    crd["status"] = json!({
        "acceptedNames": accepted,
        "storedVersions": stored,
        "conditions": [
            { "type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": since("NamesAccepted") },
            { "type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": since("Established") },
        ],
    });
}

/// The resource types a CRD serves: one per served version.
pub fn resource_types(crd: &Value) -> Vec<ResourceType> {
    let group = text(crd, "/spec/group");
    let plural = text(crd, "/spec/names/plural");
    let kind = text(crd, "/spec/names/kind");
    let strings = |pointer: &str| -> Vec<String> {
        crd.pointer(pointer)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(ToString::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let singular = match text(crd, "/spec/names/singular") {
        "" => kind.to_lowercase(),
        given => given.to_string(),
    };
    let storage: Arc<str> = ResourceType::storage_key(group, plural);
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    versions
        .iter()
        .filter(|v| v.get("served") != Some(&json!(false)))
        .map(|v| {
            let scale = v.pointer("/subresources/scale").map(|s| ScalePaths {
                spec_replicas: text(s, "/specReplicasPath").to_string(),
                status_replicas: text(s, "/statusReplicasPath").to_string(),
                label_selector: s
                    .get("labelSelectorPath")
                    .and_then(Value::as_str)
                    .map(ToString::to_string),
            });
            ResourceType {
                group: group.to_string(),
                version: text(v, "/name").to_string(),
                kind: kind.to_string(),
                plural: plural.to_string(),
                singular: singular.clone(),
                namespaced: text(crd, "/spec/scope") == "Namespaced",
                short_names: strings("/spec/names/shortNames"),
                categories: strings("/spec/names/categories"),
                status_subresource: v.pointer("/subresources/status").is_some(),
                scale,
                generation: GenerationPolicy::Content,
                unconditional_update: false,
                create_on_update: false,
                returns_deleted_object: true,
                schema: v.pointer("/schema/openAPIV3Schema").cloned(),
                printer_columns: v
                    .get("additionalPrinterColumns")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
                selectable_fields: v
                    .get("selectableFields")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f.get("jsonPath").and_then(Value::as_str))
                    .map(|path| path.trim_start_matches('.').to_string())
                    .collect(),
                conversion: crate::conversion::Conversion::Identity,
                custom: true,
                crd_name: Some(text(crd, "/metadata/name").to_string()),
                storage: storage.clone(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn widget_crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": { "name": "widgets.example.com" },
            "spec": {
                "group": "example.com",
                "scope": "Namespaced",
                "names": { "plural": "widgets", "kind": "Widget", "shortNames": ["wd"] },
                "versions": [
                    { "name": "v1", "served": true, "storage": true, "subresources": { "status": {} },
                      "schema": { "openAPIV3Schema": { "type": "object" } } },
                    { "name": "v0", "served": false, "storage": false },
                ],
            },
        })
    }

    #[test]
    fn protected_groups_need_an_approval_annotation() {
        let mut crd = widget_crd();
        crd["spec"]["group"] = json!("widgets.k8s.io");
        crd["metadata"]["name"] = json!("widgets.widgets.k8s.io");
        let lines = |crd: &Value, old: Option<&Value>| -> Vec<String> {
            validate(crd, old).iter().map(ToString::to_string).collect()
        };
        assert_eq!(
            lines(&crd, None),
            [
                "metadata.annotations[api-approved.kubernetes.io]: Required value: protected groups must have \
              approval annotation \"api-approved.kubernetes.io\", see https://github.com/kubernetes/enhancements/pull/1111"
            ]
        );
        // An update that leaves the (missing) approval as it was is accepted.
        assert!(lines(&crd, Some(&crd)).is_empty());
        crd["metadata"]["annotations"] = json!({"api-approved.kubernetes.io": "soon"});
        assert!(
            lines(&crd, None)[0].contains("Invalid value: \"soon\": protected groups must have")
        );
        for accepted in [
            "https://github.com/kubernetes/kubernetes/pull/1",
            "unapproved, experimental",
        ] {
            crd["metadata"]["annotations"] = json!({"api-approved.kubernetes.io": accepted});
            assert!(lines(&crd, None).is_empty(), "{accepted}");
        }
        assert!(
            lines(&widget_crd(), None).is_empty(),
            "other groups need nothing"
        );
    }

    #[test]
    fn a_crd_serves_its_served_versions() {
        let types = resource_types(&widget_crd());
        assert_eq!(types.len(), 1);
        assert_eq!(types[0].api_version(), "example.com/v1");
        assert!(types[0].status_subresource);
        assert_eq!(types[0].singular, "widget");
        assert_eq!(types[0].short_names, vec!["wd"]);
    }

    #[test]
    fn settled_crds_are_established() {
        let mut crd = widget_crd();
        assert!(validate(&crd, None).is_empty());
        settle(&mut crd, None, "2026-01-01T00:00:00Z");
        assert_eq!(crd["status"]["conditions"][1]["type"], "Established");
        assert_eq!(crd["status"]["acceptedNames"]["listKind"], "WidgetList");
        assert_eq!(crd["status"]["storedVersions"], json!(["v1"]));
    }

    #[test]
    fn a_misnamed_crd_is_rejected() {
        let mut crd = widget_crd();
        crd["metadata"]["name"] = json!("gadgets.example.com");
        assert_eq!(validate(&crd, None)[0].field, "metadata.name");
    }
}
