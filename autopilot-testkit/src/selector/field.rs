//! Field selectors: `path=value`, `path==value` and `path!=value` terms with escaping.

use serde_json::Value;

use super::SelectorError;

/// One `field op value` term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldTerm {
    field: String,
    value: String,
    equal: bool,
}

/// A parsed field selector (the `fieldSelector` query parameter).
///
/// ```
/// use autopilot_testkit::selector::FieldSelector;
/// use serde_json::json;
///
/// let selector = FieldSelector::parse("metadata.name=web,status.phase!=Failed").unwrap();
/// assert_eq!(selector.fields(), vec!["metadata.name", "status.phase"]);
/// let pod = json!({"metadata": {"name": "web"}, "status": {"phase": "Running"}});
/// assert!(selector.matches(&pod));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

impl FieldSelector {
    /// Parses a selector expression; the empty string selects everything.
    pub fn parse(expr: &str) -> Result<Self, SelectorError> {
        let mut parts = split_terms(expr);
        parts.sort_unstable();
        let mut terms = Vec::new();
        for part in parts.into_iter().filter(|p| !p.is_empty()) {
            let Some((field, op, rhs)) = split_term(part) else {
                return Err(SelectorError::Field {
                    message: format!("invalid selector: '{expr}'; can't understand '{part}'"),
                });
            };
            terms.push(FieldTerm {
                field: field.to_string(),
                value: unescape_value(rhs)?,
                equal: op != "!=",
            });
        }
        Ok(Self { terms })
    }

    /// Whether the selector selects everything (no terms).
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The field paths the selector names, in term order (sorted), so the caller can reject
    /// paths its resource does not support (`field label not supported: <path>`).
    pub fn fields(&self) -> Vec<&str> {
        self.terms.iter().map(|t| t.field.as_str()).collect()
    }

    /// Rejects the selector if it names a field outside `supported`, with the server's
    /// `field label not supported: <path>` (a 400).
    ///
    /// ```
    /// use autopilot_testkit::selector::{FieldSelector, supported_field_labels};
    ///
    /// let selector = FieldSelector::parse("spec.nodeName=n1").unwrap();
    /// assert!(selector.check_supported(supported_field_labels("v1", "Pod")).is_ok());
    /// let err = selector.check_supported(supported_field_labels("v1", "ConfigMap")).unwrap_err();
    /// assert_eq!(err.to_string(), "field label not supported: spec.nodeName");
    /// ```
    pub fn check_supported<S: AsRef<str>>(&self, supported: &[S]) -> Result<(), SelectorError> {
        match self.unsupported(supported) {
            Some(field) => Err(SelectorError::Field {
                message: format!("field label not supported: {field}"),
            }),
            None => Ok(()),
        }
    }

    /// The first field path the selector names outside `supported`.
    pub fn unsupported<S: AsRef<str>>(&self, supported: &[S]) -> Option<&str> {
        let known = |field: &str| supported.iter().any(|s| s.as_ref() == field);
        self.terms
            .iter()
            .map(|t| t.field.as_str())
            .find(|field| !known(field))
    }

    /// The value a term requires (`=`/`==`) or excludes (`!=`) for a field path, if named.
    pub fn required_value(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == field && t.equal)
            .map(|t| t.value.as_str())
    }

    /// Whether every term holds for the object; absent fields read as `""`, scalars as text.
    pub fn matches(&self, object: &Value) -> bool {
        self.terms
            .iter()
            .all(|t| (field_value(object, &t.field) == t.value) == t.equal)
    }
}

const META: &[&str] = &["metadata.name", "metadata.namespace"];

/// The field selector paths the API server accepts for a built-in kind (every kind takes
/// `metadata.name` and `metadata.namespace`). Custom resources take those two (cluster-scoped
/// ones only `metadata.name`) plus their CRD version's `selectableFields`.
pub fn supported_field_labels(api_version: &str, kind: &str) -> &'static [&'static str] {
    let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
    match (group, kind) {
        ("", "Pod") => &[
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
        ],
        ("", "Event") => &[
            "metadata.name",
            "metadata.namespace",
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("", "Secret") => &["metadata.name", "metadata.namespace", "type"],
        ("", "Namespace") => &["metadata.name", "metadata.namespace", "status.phase"],
        ("", "Node") => &["metadata.name", "metadata.namespace", "spec.unschedulable"],
        ("", "ReplicationController") | ("apps", "ReplicaSet") => {
            &["metadata.name", "metadata.namespace", "status.replicas"]
        }
        ("batch", "Job") => &["metadata.name", "metadata.namespace", "status.successful"],
        ("certificates.k8s.io", "CertificateSigningRequest") => {
            &["metadata.name", "metadata.namespace", "spec.signerName"]
        }
        _ => META,
    }
}

/// The field selector paths the API server accepts for a custom resource of one CRD version
/// (an element of `spec.versions`): `metadata.name`, `metadata.namespace` when namespaced,
/// and the version's `selectableFields`.
///
/// ```
/// use autopilot_testkit::selector::crd_field_labels;
/// use serde_json::json;
///
/// let version = json!({"name": "v1", "selectableFields": [{"jsonPath": ".spec.color"}]});
/// assert_eq!(crd_field_labels(&version, true), ["metadata.name", "metadata.namespace", "spec.color"]);
/// ```
pub fn crd_field_labels(version: &Value, namespaced: bool) -> Vec<String> {
    let mut labels = vec!["metadata.name".to_string()];
    if namespaced {
        labels.push("metadata.namespace".into());
    }
    let selectable = version.get("selectableFields").and_then(Value::as_array);
    labels.extend(
        selectable
            .into_iter()
            .flatten()
            .filter_map(|f| f.get("jsonPath").and_then(Value::as_str))
            .map(|path| path.trim_start_matches('.').to_string()),
    );
    labels
}

/// Fields whose typed zero value the server's field sets hold when the object omits them.
const ZERO_FALSE: &[&str] = &["spec.hostNetwork", "spec.unschedulable"];
const ZERO_NUMBER: &[&str] = &["status.replicas", "status.successful"];

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The text of a dotted field path in an object, as the server's field sets hold it: scalars as
/// text, absent typed booleans and counts as `false` and `0`, lists (such as `status.podIPs`)
/// joined by commas, and Event's `source` as its component.
fn field_value(object: &Value, path: &str) -> String {
    let found = path
        .split('.')
        .try_fold(object, |value, segment| value.get(segment));
    let found = match (path, found) {
        ("source", Some(source)) => source.get("component"),
        ("reportingComponent", None) => object.get("reportingController"),
        (_, found) => found,
    };
    match found {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|item| scalar_text(item).or_else(|| item.get("ip").and_then(scalar_text)))
            .collect::<Vec<_>>()
            .join(","),
        Some(value) if !value.is_null() => scalar_text(value).unwrap_or_default(),
        _ if ZERO_FALSE.contains(&path) => "false".into(),
        _ if ZERO_NUMBER.contains(&path) => "0".into(),
        _ => String::new(),
    }
}

/// Splits on commas not preceded by a backslash escape.
fn split_terms(expr: &str) -> Vec<&str> {
    if expr.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in expr.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push(&expr[start..i]);
            start = i + 1;
        }
    }
    terms.push(&expr[start..]);
    terms
}

/// Splits a term at its first operator, trying `!=`, `==` then `=` at each position.
fn split_term(term: &str) -> Option<(&str, &str, &str)> {
    term.char_indices().find_map(|(i, _)| {
        ["!=", "==", "="]
            .into_iter()
            .find(|op| term[i..].starts_with(op))
            .map(|op| (&term[..i], op, &term[i + op.len()..]))
    })
}

fn unescape_value(value: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(value.len());
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(SelectorError::Field {
                    message: format!("invalid field selector: invalid escape sequence: \\{c}"),
                });
            }
            out.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if matches!(c, ',' | '=') {
            // Go prints the rune as its code point number.
            return Err(SelectorError::Field {
                message: format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                ),
            });
        } else {
            out.push(c);
        }
    }
    if escaped {
        return Err(SelectorError::Field {
            message: "invalid field selector: invalid escape sequence: \\".to_string(),
        });
    }
    Ok(out)
}

/// Escapes `\`, `,` and `=` so a value can be used in a field selector term.
pub fn escape_field_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_err(expr: &str) -> String {
        FieldSelector::parse(expr).unwrap_err().to_string()
    }

    #[test]
    fn field_selector_matches_dotted_paths() {
        let pod = json!({
            "metadata": {"name": "web-1", "namespace": "prod"},
            "spec": {"nodeName": "node-a", "hostNetwork": true},
            "status": {"phase": "Running"}
        });
        let matches = |expr: &str| FieldSelector::parse(expr).unwrap().matches(&pod);
        assert!(matches(""));
        assert!(matches("metadata.name=web-1"));
        assert!(matches("metadata.name==web-1,metadata.namespace=prod"));
        assert!(!matches("metadata.name=web-2"));
        assert!(matches("status.phase!=Failed"));
        assert!(!matches("status.phase!=Running"));
        assert!(matches("spec.nodeName=node-a"));
        assert!(matches("spec.hostNetwork=true"));
        // Absent fields read as the empty string.
        assert!(matches("spec.restartPolicy="));
        assert!(matches("spec.restartPolicy!=Always"));
    }

    #[test]
    fn field_selector_lists_fields_and_values() {
        let selector = FieldSelector::parse("status.phase!=Failed,metadata.name=a").unwrap();
        assert_eq!(selector.fields(), vec!["metadata.name", "status.phase"]);
        assert_eq!(selector.required_value("metadata.name"), Some("a"));
        assert_eq!(selector.required_value("status.phase"), None);
        assert!(FieldSelector::parse("").unwrap().is_empty());
        assert!(FieldSelector::parse(",").unwrap().is_empty());
    }

    #[test]
    fn field_selector_escapes() {
        let selector = FieldSelector::parse(r"metadata.name=a\,b\=c\\d").unwrap();
        assert!(selector.matches(&json!({"metadata": {"name": r"a,b=c\d"}})));
        assert_eq!(escape_field_value(r"a,b=c\d"), r"a\,b\=c\\d");
        let round =
            FieldSelector::parse(&format!("metadata.name={}", escape_field_value("x=,y"))).unwrap();
        assert_eq!(round.required_value("metadata.name"), Some("x=,y"));
    }

    #[test]
    fn field_selector_errors_use_server_wording() {
        assert_eq!(
            field_err("metadata.name"),
            "invalid selector: 'metadata.name'; can't understand 'metadata.name'"
        );
        assert_eq!(
            field_err(r"a=b\x"),
            r"invalid field selector: invalid escape sequence: \x"
        );
        assert_eq!(
            field_err(r"a=b\"),
            r"invalid field selector: invalid escape sequence: \"
        );
        assert_eq!(
            field_err("a=b=c"),
            "invalid field selector: unescaped character in value: 61"
        );
    }

    #[test]
    fn field_selector_operator_precedence() {
        // `!=` wins at the first position where any operator starts.
        let selector = FieldSelector::parse("a!=b").unwrap();
        assert!(selector.matches(&json!({"a": "c"})));
        assert!(!selector.matches(&json!({"a": "b"})));
        let selector = FieldSelector::parse("a==b").unwrap();
        assert!(selector.matches(&json!({"a": "b"})));
    }

    #[test]
    fn supported_labels_per_kind() {
        let selector = FieldSelector::parse("status.phase=Running,metadata.name=a").unwrap();
        assert!(
            selector
                .check_supported(supported_field_labels("v1", "Pod"))
                .is_ok()
        );
        assert_eq!(
            selector
                .check_supported(supported_field_labels("demo.io/v1", "Canary"))
                .unwrap_err()
                .to_string(),
            "field label not supported: status.phase"
        );
        assert!(supported_field_labels("v1", "Secret").contains(&"type"));
        assert!(supported_field_labels("apps/v1", "ReplicaSet").contains(&"status.replicas"));
        assert_eq!(
            supported_field_labels("apps/v1", "Deployment"),
            &["metadata.name", "metadata.namespace"]
        );
    }

    #[test]
    fn custom_resource_labels() {
        let version = json!({"selectableFields": [{"jsonPath": ".spec.color"}, {"jsonPath": ".status.phase"}]});
        let cluster = crd_field_labels(&version, false);
        assert_eq!(cluster, ["metadata.name", "spec.color", "status.phase"]);
        let selector = FieldSelector::parse("spec.color=red").unwrap();
        assert!(selector.check_supported(&cluster).is_ok());
        assert!(selector.matches(&json!({"spec": {"color": "red"}})));
        let namespace = FieldSelector::parse("metadata.namespace=a").unwrap();
        assert_eq!(
            namespace.check_supported(&cluster).unwrap_err().to_string(),
            "field label not supported: metadata.namespace"
        );
    }

    #[test]
    fn typed_field_values() {
        let pod = json!({"status": {"podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]}});
        let matches =
            |expr: &str, object: &Value| FieldSelector::parse(expr).unwrap().matches(object);
        assert!(matches(r"status.podIPs=10.0.0.1\,fd00::1", &pod));
        assert!(matches("spec.hostNetwork=false", &pod));
        assert!(matches("status.replicas=0", &json!({})));
        let event = json!({"source": {"component": "kubelet"}, "reportingController": "kubelet"});
        assert!(matches("source=kubelet,reportingComponent=kubelet", &event));
    }
}
