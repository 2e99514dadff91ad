//! Server-side printing: the `meta.k8s.io/v1` `Table` the API server returns for
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`, which `kubectl get` renders.
//!
//! Columns come from a CRD version's `additionalPrinterColumns` (after the `Name` column), or
//! `Name` and `Age` when it declares none. Cells are computed with the columns' JSONPaths and
//! typed as the server types them; `date` cells become ages in kubectl's wording (`5m`, `2d3h`).
//! Common built-in kinds get the columns the server's own printers produce
//! ([`render_builtin_table`]).

mod builtin;
mod jsonpath;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

pub use builtin::{render_builtin_table, render_builtin_table_at};
pub use jsonpath::json_path;

const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const CREATION_DESCRIPTION: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// One column of a table: its definition and the JSONPath that fills its cells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterColumn {
    /// The header, e.g. `Ready`.
    pub name: String,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    pub type_: String,
    /// The JSONPath of the cell value, e.g. `.status.replicas`.
    pub json_path: String,
    /// The column's description.
    pub description: String,
    /// 0 for columns shown by default, higher for `-o wide` only.
    pub priority: i32,
    /// An optional format hint, e.g. `name`.
    pub format: String,
}

impl PrinterColumn {
    /// The `Name` column every table starts with.
    pub fn name_column() -> Self {
        Self {
            name: "Name".into(),
            type_: "string".into(),
            json_path: ".metadata.name".into(),
            description: NAME_DESCRIPTION.into(),
            priority: 0,
            format: "name".into(),
        }
    }

    fn age_column() -> Self {
        Self {
            name: "Age".into(),
            type_: "date".into(),
            json_path: ".metadata.creationTimestamp".into(),
            description: CREATION_DESCRIPTION.into(),
            priority: 0,
            format: String::new(),
        }
    }

    /// The columns served for a resource without its own: `Name` and `Age`.
    pub fn defaults() -> Vec<PrinterColumn> {
        vec![Self::name_column(), Self::age_column()]
    }

    /// The columns the server prints for one version of a CRD (an element of
    /// `spec.versions`): `Name`, then its `additionalPrinterColumns`, or `Age` when none.
    ///
    /// ```
    /// use autopilot_testkit::table::PrinterColumn;
    /// use serde_json::json;
    ///
    /// let version = json!({"name": "v1", "additionalPrinterColumns": [
    ///     {"name": "Phase", "type": "string", "jsonPath": ".status.phase"}]});
    /// let columns = PrinterColumn::from_crd_version(&version);
    /// assert_eq!(columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["Name", "Phase"]);
    /// assert_eq!(columns[1].description, "Custom resource definition column (in JSONPath format): .status.phase");
    /// ```
    pub fn from_crd_version(version: &Value) -> Vec<PrinterColumn> {
        let declared = version
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .filter(|columns| !columns.is_empty());
        let Some(declared) = declared else {
            return Self::defaults();
        };
        let text = |c: &Value, k: &str| {
            c.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let mut columns = vec![Self::name_column()];
        for column in declared {
            let json_path = text(column, "jsonPath");
            let description = match text(column, "description") {
                d if d.is_empty() => {
                    format!("Custom resource definition column (in JSONPath format): {json_path}")
                }
                d => d,
            };
            columns.push(Self {
                name: text(column, "name"),
                type_: text(column, "type"),
                description,
                priority: column
                    .get("priority")
                    .and_then(Value::as_i64)
                    .and_then(|p| i32::try_from(p).ok())
                    .unwrap_or(0),
                format: text(column, "format"),
                json_path,
            });
        }
        columns
    }

    fn definition(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.type_,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }

    /// The cell for one object, typed as the server types it (`null` when the path is absent
    /// or the value does not fit the column type).
    fn cell(&self, object: &Value, now: DateTime<Utc>) -> Value {
        let Some(value) = json_path(object, &self.json_path) else {
            return Value::Null;
        };
        match (self.type_.as_str(), &value) {
            (_, Value::Null) => Value::Null,
            ("string", Value::String(_)) => value,
            ("string", Value::Array(_) | Value::Object(_)) => Value::String(value.to_string()),
            ("string", Value::Number(n)) if n.is_f64() => {
                Value::String(crate::validation::go_float(n.as_f64().unwrap_or_default()))
            }
            ("string", other) => Value::String(other.to_string()),
            ("integer", Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f.trunc() as i64))
                .map_or(Value::Null, Value::from),
            ("number", Value::Number(n)) => n.as_f64().map_or(Value::Null, json_number),
            ("boolean", Value::Bool(_)) => value,
            ("date", Value::String(s)) => Value::String(age_of(s, now)),
            _ => Value::Null,
        }
    }
}

/// A float as Go's JSON encoder writes it: integral values without a fraction.
fn json_number(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        Value::from(f as i64)
    } else {
        Value::from(f)
    }
}

/// The age of an RFC 3339 timestamp: `<unknown>` for an empty one, `<invalid>` for garbage.
fn age_of(timestamp: &str, now: DateTime<Utc>) -> String {
    if timestamp.is_empty() {
        return "<unknown>".into();
    }
    match DateTime::parse_from_rfc3339(timestamp) {
        Ok(then) => human_duration((now - then.with_timezone(&Utc)).num_seconds()),
        Err(_) => "<invalid>".into(),
    }
}

/// A duration in kubectl's succinct wording (about two significant figures): `45s`, `5m10s`,
/// `3h4m`, `2d3h`, `1y20d`; clock skew up to a second reads as `0s`, more as `<invalid>`.
///
/// ```
/// use autopilot_testkit::table::human_duration;
///
/// assert_eq!(human_duration(90), "90s");
/// assert_eq!(human_duration(5 * 60 + 10), "5m10s");
/// assert_eq!(human_duration((2 * 24 + 3) * 3600), "2d3h");
/// ```
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return match seconds % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{days}d"),
            h => format!("{days}d{h}h"),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        return match days % 365 {
            0 => format!("{years}y"),
            d => format!("{years}y{d}d"),
        };
    }
    format!("{years}y")
}

/// What each row carries besides its cells (the `includeObject` parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// No object (`"object": null`).
    None,
    /// The object's metadata as a `PartialObjectMetadata` (the server's default).
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` query parameter (`None`, `Metadata`, `Object`; empty means
    /// `Metadata`); `None` for anything else, which the server rejects with
    /// `unrecognized includeObject value: "<value>"` (400).
    pub fn from_query(value: &str) -> Option<Self> {
        match value {
            "None" => Some(Self::None),
            "" | "Metadata" => Some(Self::Metadata),
            "Object" => Some(Self::Object),
            _ => None,
        }
    }
}

/// Renders objects as a `meta.k8s.io/v1` `Table` with the given columns. `list_meta` becomes
/// the table's `metadata` (`resourceVersion`, `continue`, `remainingItemCount`).
///
/// ```
/// use autopilot_testkit::table::{render_table, IncludeObject, PrinterColumn};
/// use serde_json::json;
///
/// let pod = json!({"metadata": {"name": "web", "creationTimestamp": "2020-01-01T00:00:00Z"}});
/// let table = render_table(&[&pod], &PrinterColumn::defaults(), IncludeObject::Metadata,
///     json!({"resourceVersion": "7"}));
/// assert_eq!(table["kind"], "Table");
/// assert_eq!(table["columnDefinitions"][0]["name"], "Name");
/// assert_eq!(table["rows"][0]["cells"][0], "web");
/// assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
/// ```
pub fn render_table(
    objects: &[&Value],
    columns: &[PrinterColumn],
    include_object: IncludeObject,
    list_meta: Value,
) -> Value {
    render_table_at(objects, columns, include_object, list_meta, Utc::now())
}

/// [`render_table`] with ages computed relative to `now`.
pub fn render_table_at(
    objects: &[&Value],
    columns: &[PrinterColumn],
    include_object: IncludeObject,
    list_meta: Value,
    now: DateTime<Utc>,
) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let cells: Vec<Value> = columns.iter().map(|c| c.cell(object, now)).collect();
            json!({"cells": cells, "object": row_object(object, include_object)})
        })
        .collect();
    let metadata = match list_meta {
        Value::Object(map) => Value::Object(map),
        _ => Value::Object(Map::new()),
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns.iter().map(PrinterColumn::definition).collect::<Vec<_>>(),
        "rows": rows,
    })
}

fn row_object(object: &Value, include: IncludeObject) -> Value {
    match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Object => object.clone(),
        IncludeObject::Metadata => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-06-10T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn human_durations_follow_kubectl() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (130, "2m10s"),
            (600, "10m"),
            (179 * 60, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 60, "3h1m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (51 * 3600, "2d3h"),
            (8 * 24 * 3600, "8d"),
            (729 * 24 * 3600, "729d"),
            (730 * 24 * 3600, "2y"),
            (750 * 24 * 3600, "2y20d"),
            (8 * 365 * 24 * 3600, "8y"),
        ];
        for (seconds, expected) in cases {
            assert_eq!(human_duration(seconds), expected, "{seconds}s");
        }
    }

    #[test]
    fn crd_columns_and_defaults() {
        let version = json!({"name": "v1", "additionalPrinterColumns": [
            {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status", "description": "readiness"},
            {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas", "priority": 1},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
        ]});
        let columns = PrinterColumn::from_crd_version(&version);
        assert_eq!(columns.len(), 4);
        assert_eq!(columns[0], PrinterColumn::name_column());
        assert_eq!(columns[1].description, "readiness");
        assert_eq!(columns[2].priority, 1);
        assert_eq!(
            PrinterColumn::from_crd_version(&json!({"name": "v1"})),
            PrinterColumn::defaults()
        );
        assert_eq!(
            PrinterColumn::defaults()[1].json_path,
            ".metadata.creationTimestamp"
        );
    }

    #[test]
    fn cells_are_typed_like_the_server() {
        let column = |type_: &str, path: &str| PrinterColumn {
            name: "c".into(),
            type_: type_.into(),
            json_path: path.into(),
            description: String::new(),
            priority: 0,
            format: String::new(),
        };
        let object = json!({"metadata": {"creationTimestamp": "2024-06-10T11:55:00Z"},
            "spec": {"replicas": 3, "ratio": 2.0, "weight": 1.5, "paused": true, "tags": ["a"], "when": "garbage", "empty": ""}});
        let cell = |type_: &str, path: &str| column(type_, path).cell(&object, now());
        assert_eq!(cell("integer", ".spec.replicas"), json!(3));
        assert_eq!(cell("integer", ".spec.weight"), json!(1));
        assert_eq!(cell("number", ".spec.replicas"), json!(3));
        assert_eq!(cell("number", ".spec.weight"), json!(1.5));
        assert_eq!(cell("boolean", ".spec.paused"), json!(true));
        assert_eq!(cell("boolean", ".spec.replicas"), Value::Null);
        assert_eq!(cell("string", ".spec.replicas"), json!("3"));
        assert_eq!(cell("string", ".spec.ratio"), json!("2"));
        assert_eq!(cell("string", ".spec.tags"), json!("[\"a\"]"));
        assert_eq!(cell("string", ".spec.missing"), Value::Null);
        assert_eq!(cell("date", ".metadata.creationTimestamp"), json!("5m"));
        assert_eq!(cell("date", ".spec.when"), json!("<invalid>"));
        assert_eq!(cell("date", ".spec.empty"), json!("<unknown>"));
    }

    #[test]
    fn table_shape_and_include_object() {
        let canary = json!({"apiVersion": "demo.io/v1", "kind": "Canary",
            "metadata": {"name": "c1", "namespace": "ns", "creationTimestamp": "2024-06-08T09:00:00Z"},
            "status": {"phase": "Waiting"}});
        let columns = PrinterColumn::from_crd_version(&json!({"additionalPrinterColumns": [
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]}));
        let table = render_table_at(
            &[&canary],
            &columns,
            IncludeObject::Metadata,
            json!({"resourceVersion": "42"}),
            now(),
        );
        assert_eq!(table["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(table["metadata"], json!({"resourceVersion": "42"}));
        assert_eq!(
            table["columnDefinitions"][0],
            json!({"name": "Name", "type": "string", "format": "name", "description": NAME_DESCRIPTION, "priority": 0})
        );
        assert_eq!(
            table["columnDefinitions"][1]["description"],
            "Custom resource definition column (in JSONPath format): .status.phase"
        );
        assert_eq!(table["rows"][0]["cells"], json!(["c1", "Waiting", "2d3h"]));
        assert_eq!(
            table["rows"][0]["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": canary["metadata"]})
        );
        let full = render_table_at(
            &[&canary],
            &columns,
            IncludeObject::Object,
            Value::Null,
            now(),
        );
        assert_eq!(full["rows"][0]["object"], canary);
        assert_eq!(full["metadata"], json!({}));
        let bare = render_table_at(&[&canary], &columns, IncludeObject::None, json!({}), now());
        assert_eq!(bare["rows"][0]["object"], Value::Null);
        let empty = render_table_at(&[], &columns, IncludeObject::None, json!({}), now());
        assert_eq!(empty["rows"], json!([]));
    }

    #[test]
    fn include_object_query_values() {
        assert_eq!(IncludeObject::from_query(""), Some(IncludeObject::Metadata));
        assert_eq!(
            IncludeObject::from_query("Object"),
            Some(IncludeObject::Object)
        );
        assert_eq!(IncludeObject::from_query("None"), Some(IncludeObject::None));
        assert_eq!(IncludeObject::from_query("all"), None);
    }
}
