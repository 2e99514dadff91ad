//! The common update: a manager changes fields it already owns and no one else owns. Only its entry's
//! `time` moves, so the entries are edited in place instead of being decoded and encoded again.

use serde_json::Value;

use super::fieldset::{Comparison, FieldPath};

/// Whether a `fieldsV1` tree lists `path` as a member (a leaf, or a node marked with `.`).
fn owns(fields: &Value, path: &FieldPath) -> bool {
    let mut node = fields;
    for element in path {
        match node.get(element) {
            Some(child) => node = child,
            None => return false,
        }
    }
    node.as_object()
        .is_some_and(|children| children.is_empty() || children.contains_key("."))
}

fn text<'a>(entry: &'a Value, key: &str) -> Option<&'a str> {
    entry.get(key).and_then(Value::as_str)
}

/// Whether `entry` is `manager`'s Update entry for `api_version` and `subresource`.
fn is_own(entry: &Value, manager: &str, api_version: &str, subresource: Option<&str>) -> bool {
    text(entry, "manager") == Some(manager)
        && text(entry, "operation").unwrap_or("Update") == "Update"
        && text(entry, "apiVersion").unwrap_or_default() == api_version
        && text(entry, "subresource").filter(|s| !s.is_empty()) == subresource
}

/// The stored order of entries: operation, time, manager, API version, subresource.
fn order_key(entry: &Value) -> (&str, Option<&str>, &str, &str, Option<&str>) {
    (
        text(entry, "operation").unwrap_or("Update"),
        text(entry, "time"),
        text(entry, "manager").unwrap_or_default(),
        text(entry, "apiVersion").unwrap_or_default(),
        text(entry, "subresource").filter(|s| !s.is_empty()),
    )
}

/// `entries` after an update that moves no field between owners: unchanged when the update takes no
/// fields, else with `manager`'s entry (which already owns every taken field) stamped `now`. `None` when
/// the full bookkeeping is needed.
pub(super) fn touch(
    entries: &[Value],
    comparison: &Comparison,
    taken: &[&FieldPath],
    own: (&str, &str, Option<&str>),
    now: &str,
) -> Option<Vec<Value>> {
    let (manager, api_version, subresource) = own;
    let changed = || comparison.added.0.iter().chain(&comparison.modified.0);
    let mine = if taken.is_empty() {
        None
    } else {
        Some(
            entries
                .iter()
                .position(|e| is_own(e, manager, api_version, subresource))?,
        )
    };
    for (i, entry) in entries.iter().enumerate() {
        let fields = entry.get("fieldsV1").unwrap_or(&Value::Null);
        let loses = if Some(i) == mine {
            // Fields it owns and the update changes without taking them, or removes.
            !taken.iter().all(|path| owns(fields, path))
                || changed()
                    .filter(|path| !taken.contains(path))
                    .chain(&comparison.removed.0)
                    .any(|path| owns(fields, path))
        } else {
            changed()
                .chain(&comparison.removed.0)
                .any(|path| owns(fields, path))
        };
        if loses {
            return None;
        }
    }
    let mut entries = entries.to_vec();
    if let Some(Value::Object(entry)) = mine.and_then(|i| entries.get_mut(i)) {
        entry.insert("time".into(), Value::String(now.to_string()));
        entries.sort_by(|a, b| order_key(a).cmp(&order_key(b)));
    }
    Some(entries)
}
