//! Schema checks: the OpenAPI value validations, embedded-resource and list-type checks.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::{FieldError, FieldErrorKind, go_float};

/// A position in the object, rendered two ways: the OpenAPI validator joins map keys with dots
/// (`spec.labels.foo`), apimachinery field paths put them in brackets (`spec.labels[foo]`).
///
/// Children share their parent's segments, so descending costs one small allocation and a path is only
/// rendered when an error names it.
#[derive(Debug, Clone, Default)]
pub(super) struct Path(Option<Arc<(Path, Segment)>>);

#[derive(Debug, Clone)]
enum Segment {
    Field(String),
    Index(usize),
    Key(String),
}

impl Path {
    pub(super) fn field(&self, name: &str) -> Path {
        self.with(Segment::Field(name.to_string()))
    }

    pub(super) fn index(&self, i: usize) -> Path {
        self.with(Segment::Index(i))
    }

    pub(super) fn key(&self, key: &str) -> Path {
        self.with(Segment::Key(key.to_string()))
    }

    fn with(&self, segment: Segment) -> Path {
        Path(Some(Arc::new((self.clone(), segment))))
    }

    fn render_into(&self, keys_in_brackets: bool, out: &mut String) {
        let Some(node) = &self.0 else { return };
        let (parent, segment) = &**node;
        parent.render_into(keys_in_brackets, out);
        match segment {
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
            Segment::Key(k) if keys_in_brackets => out.push_str(&format!("[{k}]")),
            Segment::Field(name) | Segment::Key(name) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(name);
            }
        }
    }

    fn render(&self, keys_in_brackets: bool) -> String {
        let mut out = String::new();
        self.render_into(keys_in_brackets, &mut out);
        out
    }

    /// The OpenAPI validator's rendering, used in its messages and error fields.
    pub(super) fn openapi(&self) -> String {
        self.render(false)
    }

    /// apimachinery's `field.Path` rendering.
    pub(super) fn fields(&self) -> String {
        self.render(true)
    }

    /// The OpenAPI rendering, produced only when formatted.
    fn shown(&self) -> Shown<'_> {
        Shown(self)
    }
}

/// A path in messages, rendered on demand.
struct Shown<'a>(&'a Path);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.openapi())
    }
}

/// Validates a custom resource (or any value) against a structural OpenAPI v3 schema.
///
/// Checks run in the server's order: the OpenAPI value validations, then embedded-resource
/// `apiVersion`/`kind`, then `x-kubernetes-list-type` uniqueness.
///
/// ```
/// use autopilot_testkit::validation::validate;
/// use serde_json::json;
///
/// let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
///     "required": ["replicas"], "properties": {"replicas": {"type": "integer"}}}}});
/// let errors = validate(&schema, &json!({"spec": {"replicas": "two"}}));
/// assert_eq!(errors[0].to_string(),
///     r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#);
/// assert_eq!(validate(&schema, &json!({"spec": {}}))[0].to_string(), "spec.replicas: Required value");
/// ```
pub fn validate(schema: &Value, object: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    check(schema, object, &Path::default(), &mut errors);
    walk_structural(
        schema,
        object,
        &Path::default(),
        &mut |schema, value, path| {
            check_embedded(schema, value, path, &mut errors);
        },
    );
    walk_structural(
        schema,
        object,
        &Path::default(),
        &mut |schema, value, path| {
            check_list_type(schema, value, path, &mut errors);
        },
    );
    errors
}

fn flag(schema: &Value, name: &str) -> bool {
    schema.get(name).and_then(Value::as_bool).unwrap_or(false)
}

fn number(schema: &Value, name: &str) -> Option<f64> {
    schema.get(name).and_then(Value::as_f64)
}

fn count(schema: &Value, name: &str) -> Option<u64> {
    schema.get(name).and_then(Value::as_u64)
}

/// The OpenAPI type name of a JSON value, as the validator names it in messages.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The type(s) a schema allows, joined by `,` as in messages; `None` allows anything.
fn schema_type(schema: &Value) -> Option<&str> {
    if flag(schema, "x-kubernetes-int-or-string") {
        return Some("integer,string");
    }
    schema.get("type").and_then(Value::as_str)
}

fn type_matches(allowed: &str, value: &Value) -> bool {
    let actual = type_name(value);
    allowed.split(',').any(|t| {
        t == actual
            // An integral float is an integer and every integer is a number.
            || (t == "integer" && value.as_f64().is_some_and(|f| f.fract() == 0.0) && value.is_number())
            || (t == "number" && actual == "integer")
    })
}

/// Equality as the validator compares decoded JSON: numbers by value.
pub(super) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn invalid(path: &Path, value: &Value, detail: String) -> FieldError {
    FieldError::new(
        &path.openapi(),
        FieldErrorKind::Invalid,
        Some(value),
        &detail,
    )
}

/// The OpenAPI value validations of one node and, recursively, its children.
fn check(schema: &Value, value: &Value, path: &Path, errors: &mut Vec<FieldError>) {
    let p = path.shown();
    if value.is_null() {
        if let Some(allowed) = schema_type(schema).filter(|_| !flag(schema, "nullable")) {
            errors.push(type_error(&p.to_string(), allowed, "null"));
        }
        return;
    }
    // A value of the wrong type gets no further checks except the enumeration.
    if let Some(allowed) = schema_type(schema)
        && !type_matches(allowed, value)
    {
        errors.push(type_error(&p.to_string(), allowed, type_name(value)));
        check_enum(schema, value, path, errors);
        return;
    }
    check_combinators(schema, value, path, errors);
    match value {
        Value::String(s) => check_string(schema, s, value, path, errors),
        Value::Number(_) => check_number(schema, value, path, errors),
        Value::Array(items) => check_array(schema, items, path, errors),
        _ => {}
    }
    check_enum(schema, value, path, errors);
    if let Value::Object(map) = value {
        check_object(schema, map, path, errors);
    }
}

fn check_enum(schema: &Value, value: &Value, path: &Path, errors: &mut Vec<FieldError>) {
    let Some(allowed) = schema.get("enum").and_then(Value::as_array) else {
        return;
    };
    if allowed.iter().any(|a| json_eq(a, value)) {
        return;
    }
    let supported: Vec<String> = allowed
        .iter()
        .map(|a| match a {
            Value::String(s) => super::go_quote(s),
            other => super::go_quote(&other.to_string()),
        })
        .collect();
    let detail = format!("supported values: {}", supported.join(", "));
    errors.push(FieldError::new(
        &path.openapi(),
        FieldErrorKind::NotSupported,
        Some(value),
        &detail,
    ));
}

fn type_error(path: &str, allowed: &str, actual: &str) -> FieldError {
    FieldError::new(
        path,
        FieldErrorKind::TypeInvalid,
        Some(&Value::String(actual.to_string())),
        &format!("{path} in body must be of type {allowed}: \"{actual}\""),
    )
}

fn sub_errors(schema: &Value, value: &Value, path: &Path) -> Vec<FieldError> {
    let mut errors = Vec::new();
    check(schema, value, path, &mut errors);
    errors
}

/// `allOf`, `anyOf`, `oneOf` and `not`, which structural schemas allow for value checks.
fn check_combinators(schema: &Value, value: &Value, path: &Path, errors: &mut Vec<FieldError>) {
    let p = path.shown();
    let list = |name: &str| {
        schema
            .get(name)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    for sub in list("allOf") {
        errors.extend(sub_errors(&sub, value, path));
    }
    let any_of = list("anyOf");
    if !any_of.is_empty() {
        let results: Vec<Vec<FieldError>> =
            any_of.iter().map(|s| sub_errors(s, value, path)).collect();
        if results.iter().all(|r| !r.is_empty()) {
            errors.push(invalid(
                path,
                &Value::String(String::new()),
                format!("{p} in body must validate at least one schema (anyOf)"),
            ));
            errors.extend(results.into_iter().next().unwrap_or_default());
        }
    }
    let one_of = list("oneOf");
    if !one_of.is_empty() {
        let passing = one_of
            .iter()
            .filter(|s| sub_errors(s, value, path).is_empty())
            .count();
        if passing != 1 {
            errors.push(invalid(
                path,
                &Value::String(String::new()),
                format!("{p} in body must validate one and only one schema (oneOf)"),
            ));
        }
    }
    if let Some(not) = schema.get("not")
        && sub_errors(not, value, path).is_empty()
    {
        errors.push(invalid(
            path,
            &Value::String(String::new()),
            format!("{p} in body must not validate the schema (not)"),
        ));
    }
}

fn check_string(schema: &Value, s: &str, value: &Value, path: &Path, errors: &mut Vec<FieldError>) {
    let p = path.shown();
    let chars = s.chars().count() as u64;
    if let Some(max) = count(schema, "maxLength")
        && chars > max
    {
        let unit = if max == 1 { "byte" } else { "bytes" };
        let detail = format!("may not be more than {max} {unit}");
        errors.push(FieldError::new(
            &p.to_string(),
            FieldErrorKind::TooLong,
            Some(value),
            &detail,
        ));
    }
    if let Some(min) = count(schema, "minLength")
        && chars < min
    {
        errors.push(invalid(
            path,
            value,
            format!("{p} in body should be at least {min} chars long"),
        ));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
        && let Ok(re) = regex::Regex::new(pattern)
        && !re.is_match(s)
    {
        errors.push(invalid(
            path,
            value,
            format!("{p} in body should match '{pattern}'"),
        ));
    }
    if let Some(format) = schema.get("format").and_then(Value::as_str)
        && !format_ok(format, s)
    {
        let detail = format!(
            "{p} in body must be of type {format}: {}",
            super::go_quote(s)
        );
        errors.push(FieldError::new(
            &p.to_string(),
            FieldErrorKind::TypeInvalid,
            Some(value),
            &detail,
        ));
    }
}

fn matches_pattern(pattern: &str, s: &str) -> bool {
    regex::Regex::new(pattern).is_ok_and(|re| re.is_match(s))
}

/// `net.ParseMAC`: 6, 8 or 20 octets as `a:b:…`/`a-b-…` pairs or `abcd.ef01.…` groups.
fn is_mac(s: &str) -> bool {
    let octets = |parts: Vec<&str>, width: usize| {
        parts
            .iter()
            .all(|p| p.len() == width && p.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| parts.len() * width / 2)
    };
    let count = if s.contains(':') {
        octets(s.split(':').collect(), 2)
    } else if s.contains('-') {
        octets(s.split('-').collect(), 2)
    } else {
        octets(s.split('.').collect(), 4)
    };
    matches!(count, Some(6 | 8 | 20))
}

/// The string formats apiextensions checks; others (and numeric formats) are not checked.
fn format_ok(format: &str, s: &str) -> bool {
    const HEX_UUID: &str = "(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$";
    const HOSTNAME: &str = r"^([a-zA-Z0-9\p{S}\p{L}]((-?[a-zA-Z0-9\p{S}\p{L}]{0,62})?)|([a-zA-Z0-9\p{S}\p{L}](([a-zA-Z0-9-\p{S}\p{L}]{0,61}[a-zA-Z0-9\p{S}\p{L}])?)(\.)){1,}([a-zA-Z\p{L}]){2,63})$";
    match format {
        "date-time" | "datetime" => {
            chrono::DateTime::parse_from_rfc3339(s).is_ok()
                || chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").is_ok()
        }
        "date" => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
        "uuid" => matches_pattern(HEX_UUID, s),
        "uuid3" | "uuid4" | "uuid5" => {
            let version = &format[4..];
            matches_pattern(HEX_UUID, s) && s.replace('-', "").get(12..13) == Some(version)
        }
        "ipv4" => s.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<std::net::Ipv6Addr>().is_ok(),
        "cidr" => s.split_once('/').is_some_and(|(ip, bits)| {
            let max = if ip.contains(':') { 128 } else { 32 };
            ip.parse::<std::net::IpAddr>().is_ok() && bits.parse::<u8>().is_ok_and(|b| b <= max)
        }),
        "mac" => is_mac(s),
        "hostname" => s.len() <= 255 && matches_pattern(HOSTNAME, s),
        "byte" => is_base64(s),
        _ => true,
    }
}

/// Standard padded base64, as Go's `base64.StdEncoding` accepts it.
fn is_base64(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    let padding = s.len() - body.len();
    s.len().is_multiple_of(4)
        && padding <= 2
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

fn check_number(schema: &Value, value: &Value, path: &Path, errors: &mut Vec<FieldError>) {
    let p = path.shown();
    let Some(n) = value.as_f64() else { return };
    if let Some(multiple) = number(schema, "multipleOf")
        && multiple != 0.0
        && (n / multiple).fract() != 0.0
    {
        errors.push(invalid(
            path,
            value,
            format!("{p} in body should be a multiple of {}", go_float(multiple)),
        ));
    }
    if let Some(max) = number(schema, "maximum") {
        if flag(schema, "exclusiveMaximum") && n >= max {
            errors.push(invalid(
                path,
                value,
                format!("{p} in body should be less than {}", go_float(max)),
            ));
        } else if n > max {
            errors.push(invalid(
                path,
                value,
                format!(
                    "{p} in body should be less than or equal to {}",
                    go_float(max)
                ),
            ));
        }
    }
    if let Some(min) = number(schema, "minimum") {
        if flag(schema, "exclusiveMinimum") && n <= min {
            errors.push(invalid(
                path,
                value,
                format!("{p} in body should be greater than {}", go_float(min)),
            ));
        } else if n < min {
            errors.push(invalid(
                path,
                value,
                format!(
                    "{p} in body should be greater than or equal to {}",
                    go_float(min)
                ),
            ));
        }
    }
}

fn check_array(schema: &Value, items: &[Value], path: &Path, errors: &mut Vec<FieldError>) {
    let p = path.shown();
    let len = items.len() as u64;
    if let Some(max) = count(schema, "maxItems")
        && len > max
    {
        let unit = if max == 1 { "item" } else { "items" };
        errors.push(FieldError::new(
            &p.to_string(),
            FieldErrorKind::TooMany,
            Some(&Value::from(len)),
            &format!("must have at most {max} {unit}"),
        ));
    }
    if let Some(min) = count(schema, "minItems")
        && len < min
    {
        errors.push(invalid(
            path,
            &Value::from(len),
            format!("{p} in body should have at least {min} items"),
        ));
    }
    if flag(schema, "uniqueItems")
        && items
            .iter()
            .enumerate()
            .any(|(i, a)| items[..i].iter().any(|b| json_eq(a, b)))
    {
        errors.push(invalid(
            path,
            &Value::String(String::new()),
            format!("{p} in body shouldn't contain duplicates"),
        ));
    }
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            check(item_schema, item, &path.index(i), errors);
        }
    }
}

fn check_object(
    schema: &Value,
    map: &Map<String, Value>,
    path: &Path,
    errors: &mut Vec<FieldError>,
) {
    let p = path.shown();
    let len = map.len() as u64;
    if let Some(min) = count(schema, "minProperties")
        && len < min
    {
        errors.push(invalid(
            path,
            &Value::from(len),
            format!("{p} in body should have at least {min} properties"),
        ));
    }
    if let Some(max) = count(schema, "maxProperties")
        && len > max
    {
        let unit = if max == 1 { "item" } else { "items" };
        errors.push(FieldError::new(
            &p.to_string(),
            FieldErrorKind::TooMany,
            Some(&Value::from(len)),
            &format!("must have at most {max} {unit}"),
        ));
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    for (key, child) in map {
        match properties.and_then(|props| props.get(key)) {
            Some(child_schema) => check(child_schema, child, &path.field(key), errors),
            None => {
                if let Some(additional) = additional {
                    check(additional, child, &path.key(key), errors);
                }
            }
        }
    }
    for name in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(name) = name.as_str()
            && !map.contains_key(name)
        {
            errors.push(FieldError::new(
                &path.field(name).openapi(),
                FieldErrorKind::Required,
                None,
                "",
            ));
        }
    }
}

/// Visits every value with the structural schema that describes it (properties,
/// additionalProperties and items), parents before children.
pub(super) fn walk_structural(
    schema: &Value,
    value: &Value,
    path: &Path,
    visit: &mut dyn FnMut(&Value, &Value, &Path),
) {
    visit(schema, value, path);
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (key, child) in map {
                if let Some(child_schema) = properties.and_then(|props| props.get(key)) {
                    walk_structural(child_schema, child, &path.field(key), visit);
                } else if let Some(additional) = additional {
                    walk_structural(additional, child, &path.key(key), visit);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    walk_structural(item_schema, item, &path.index(i), visit);
                }
            }
        }
        _ => {}
    }
}

/// An embedded resource needs `apiVersion` and `kind`.
fn check_embedded(schema: &Value, value: &Value, path: &Path, errors: &mut Vec<FieldError>) {
    if !flag(schema, "x-kubernetes-embedded-resource") {
        return;
    }
    let Value::Object(map) = value else { return };
    for name in ["apiVersion", "kind"] {
        if map
            .get(name)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            errors.push(FieldError::new(
                &path.field(name).fields(),
                FieldErrorKind::Required,
                None,
                "must not be empty",
            ));
        }
    }
}

/// `x-kubernetes-list-type: set` items and `map` keys must be unique.
fn check_list_type(schema: &Value, value: &Value, path: &Path, errors: &mut Vec<FieldError>) {
    let Value::Array(items) = value else { return };
    match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => {
            for (i, item) in items.iter().enumerate() {
                if items[..i].iter().any(|earlier| json_eq(earlier, item)) {
                    errors.push(FieldError::new(
                        &path.index(i).fields(),
                        FieldErrorKind::Duplicate,
                        Some(item),
                        "",
                    ));
                }
            }
        }
        Some("map") => {
            if let Some(i) = items
                .iter()
                .position(|item| !item.is_object() && !item.is_null())
            {
                errors.push(FieldError::new(
                    &path.index(i).fields(),
                    FieldErrorKind::Invalid,
                    Some(&items[i]),
                    "must be an object for an array of list-type map",
                ));
                return;
            }
            let keys: Vec<&str> = schema
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let key_of = |item: &Value| -> BTreeMap<String, Value> {
                keys.iter()
                    .filter_map(|k| item.get(*k).map(|v| (k.to_string(), v.clone())))
                    .collect()
            };
            for (i, item) in items.iter().enumerate() {
                let key = key_of(item);
                if items[..i].iter().any(|earlier| key_of(earlier) == key) {
                    let shown = Value::Object(key.into_iter().collect());
                    errors.push(FieldError::new(
                        &path.index(i).fields(),
                        FieldErrorKind::Duplicate,
                        Some(&shown),
                        "",
                    ));
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
