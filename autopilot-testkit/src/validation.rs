//! Validation of custom resources against their CRD's structural OpenAPI v3 schema, as
//! apiextensions-apiserver does it, with field errors in the API server's wording.
//!
//! [`validate`] reports every violation as a [`FieldError`] whose text matches the real server's
//! (`spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer:
//! "string"`). [`prune`] drops fields the schema does not know and [`apply_defaults`] fills in
//! `default`s, the two steps the server runs before validating a write (and defaulting again on
//! read). [`validate_object_meta`] checks the `metadata` every object carries, and
//! [`invalid_message`] words the 422 the errors turn into.

mod check;
mod meta;
pub(crate) mod names;
mod rbac;
mod structural;
mod workloads;

use std::fmt;

use serde_json::Value;

pub use check::validate;
pub use meta::{NameRule, invalid_message, validate_object_meta};
pub use rbac::{RBAC_GROUP, validate_rbac};
pub use structural::{apply_defaults, prune, prune_reporting};
pub use workloads::{WORKLOAD_KINDS, validate_workload};

/// The kind of a field error, mirroring apimachinery's `field.ErrorType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldErrorKind {
    /// A required field is absent (`Required value`).
    Required,
    /// A value is malformed or out of range (`Invalid value`).
    Invalid,
    /// A value is not one of an enumeration (`Unsupported value`).
    NotSupported,
    /// A value has the wrong type (`Invalid value`, reason `FieldValueTypeInvalid`).
    TypeInvalid,
    /// A string is longer than allowed (`Too long`).
    TooLong,
    /// A list or map has more entries than allowed (`Too many`).
    TooMany,
    /// A list entry repeats another (`Duplicate value`).
    Duplicate,
    /// A field may not be set (`Forbidden`).
    Forbidden,
}

impl FieldErrorKind {
    /// The words the server prints for this kind, e.g. `Required value`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Required => "Required value",
            Self::Invalid | Self::TypeInvalid => "Invalid value",
            Self::NotSupported => "Unsupported value",
            Self::TooLong => "Too long",
            Self::TooMany => "Too many",
            Self::Duplicate => "Duplicate value",
            Self::Forbidden => "Forbidden",
        }
    }

    /// The `reason` of a `Status` cause for this kind, e.g. `FieldValueRequired`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Required => "FieldValueRequired",
            Self::Invalid => "FieldValueInvalid",
            Self::NotSupported => "FieldValueNotSupported",
            Self::TypeInvalid => "FieldValueTypeInvalid",
            Self::TooLong => "FieldValueTooLong",
            Self::TooMany => "FieldValueTooMany",
            Self::Duplicate => "FieldValueDuplicate",
            Self::Forbidden => "FieldValueForbidden",
        }
    }

    /// Kinds whose message never repeats the offending value.
    fn omits_value(self) -> bool {
        matches!(self, Self::Required | Self::Forbidden | Self::TooLong)
    }
}

/// One problem with one field: `Display` gives the server's `field: Reason: detail` line.
///
/// ```
/// use autopilot_testkit::validation::{FieldError, FieldErrorKind};
/// use serde_json::json;
///
/// let err = FieldError::new("spec.mode", FieldErrorKind::NotSupported, Some(&json!("x")),
///     "supported values: \"a\", \"b\"");
/// assert_eq!(err.to_string(), r#"spec.mode: Unsupported value: "x": supported values: "a", "b""#);
/// assert_eq!(err.message, r#"Unsupported value: "x": supported values: "a", "b""#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field path, e.g. `spec.items[0].name`.
    pub field: String,
    /// What is wrong.
    pub kind: FieldErrorKind,
    /// The message without the field path, as a `Status` cause carries it.
    pub message: String,
}

impl FieldError {
    /// Builds an error; `value` is the offending value (printed as Go prints it), `detail` the
    /// explanation appended after it.
    pub fn new(field: &str, kind: FieldErrorKind, value: Option<&Value>, detail: &str) -> Self {
        let mut message = kind.as_str().to_string();
        if let (Some(value), false) = (value, kind.omits_value()) {
            message.push_str(": ");
            message.push_str(&go_value(value, false));
        }
        if !detail.is_empty() {
            message.push_str(": ");
            message.push_str(detail);
        }
        Self {
            field: field.to_string(),
            kind,
            message,
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}

/// Joins errors as apimachinery's aggregate does: one error alone, several as `[a, b]`
/// (repeated messages collapse to one).
pub fn aggregate_message(errors: &[FieldError]) -> String {
    let mut seen = std::collections::BTreeSet::new();
    let lines: Vec<String> = errors
        .iter()
        .map(ToString::to_string)
        .filter(|line| seen.insert(line.clone()))
        .collect();
    match lines.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// Quotes a string the way Go's `%q` does.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Formats a float as Go's `%v` does: shortest digits, exponent form below 1e-4 or from 1e6 on
/// (`1e+06`, `1.5e-05`).
pub(crate) fn go_float(f: f64) -> String {
    if f == 0.0 || !f.is_finite() {
        return if f.is_nan() {
            "NaN".into()
        } else if f.is_infinite() {
            if f > 0.0 {
                "+Inf".into()
            } else {
                "-Inf".into()
            }
        } else {
            "0".into()
        };
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        return format!("{f}");
    }
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.abs())
}

/// Prints a JSON value as Go prints the decoded value in a field error: strings quoted,
/// numbers and booleans plain, maps and lists in `%#v` syntax.
fn go_value(value: &Value, nested: bool) -> String {
    match value {
        Value::Null if nested => "interface {}(nil)".to_string(),
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) if n.is_f64() => go_float(n.as_f64().unwrap_or_default()),
        Value::Number(n) => n.to_string(),
        Value::String(s) => go_quote(s),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(|v| go_value(v, true)).collect();
            format!("[]interface {{}}{{{}}}", items.join(", "))
        }
        Value::Object(map) => {
            let entries: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}:{}", go_quote(k), go_value(v, true)))
                .collect();
            format!("map[string]interface {{}}{{{}}}", entries.join(", "))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_error_lines_match_server_wording() {
        let required = FieldError::new("spec.replicas", FieldErrorKind::Required, None, "");
        assert_eq!(required.to_string(), "spec.replicas: Required value");
        let typed = FieldError::new(
            "spec.replicas",
            FieldErrorKind::TypeInvalid,
            Some(&json!("string")),
            r#"spec.replicas in body must be of type integer: "string""#,
        );
        assert_eq!(
            typed.to_string(),
            r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#
        );
        assert_eq!(typed.kind.reason(), "FieldValueTypeInvalid");
        let too_long = FieldError::new(
            "spec.name",
            FieldErrorKind::TooLong,
            Some(&json!("abcdef")),
            "may not be more than 5 bytes",
        );
        assert_eq!(
            too_long.to_string(),
            "spec.name: Too long: may not be more than 5 bytes"
        );
        let too_many = FieldError::new(
            "spec.items",
            FieldErrorKind::TooMany,
            Some(&json!(4)),
            "must have at most 3 items",
        );
        assert_eq!(
            too_many.to_string(),
            "spec.items: Too many: 4: must have at most 3 items"
        );
    }

    #[test]
    fn values_print_as_go_prints_them() {
        let dup = FieldError::new(
            "spec.ports[1]",
            FieldErrorKind::Duplicate,
            Some(&json!({"name": "a", "port": 80})),
            "",
        );
        assert_eq!(
            dup.to_string(),
            r#"spec.ports[1]: Duplicate value: map[string]interface {}{"name":"a", "port":80}"#
        );
        let list = FieldError::new(
            "x",
            FieldErrorKind::Invalid,
            Some(&json!(["a", null, true])),
            "",
        );
        assert_eq!(
            list.message,
            r#"Invalid value: []interface {}{"a", interface {}(nil), true}"#
        );
        let null = FieldError::new("x", FieldErrorKind::Invalid, Some(&Value::Null), "bad");
        assert_eq!(null.message, "Invalid value: null: bad");
        assert_eq!(go_quote("a\"b\\c\nd\u{1}"), r#""a\"b\\c\nd\x01""#);
    }

    #[test]
    fn floats_print_as_go_v() {
        assert_eq!(go_float(10.0), "10");
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(123456.0), "123456");
        assert_eq!(go_float(1_000_000.0), "1e+06");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_float(0.000015), "1.5e-05");
        assert_eq!(go_float(-2.5e21), "-2.5e+21");
        assert_eq!(go_float(0.0), "0");
    }

    #[test]
    fn aggregate_joins_several_and_collapses_repeats() {
        let a = FieldError::new("a", FieldErrorKind::Required, None, "");
        let b = FieldError::new("b", FieldErrorKind::Required, None, "");
        assert_eq!(
            aggregate_message(std::slice::from_ref(&a)),
            "a: Required value"
        );
        assert_eq!(
            aggregate_message(&[a.clone(), b, a]),
            "[a: Required value, b: Required value]"
        );
    }
}
