//! Strategic merge patch (`application/strategic-merge-patch+json`) as the API server applies it.
//!
//! Maps merge key by key and `null` deletes a key. Lists whose Go type declares
//! `patchStrategy:"merge"` merge item by item: lists of objects by their merge key (containers by
//! `name`, container ports by `containerPort`, Service ports by `port`, …), lists of scalars as a
//! union; every other list is replaced. The directives the server honours:
//!
//! - `$patch: replace` in a map replaces the map; `$patch: delete` empties it. In a merge list,
//!   an item `{"$patch": "replace"}` replaces the list with the patch's other items and
//!   `{"<key>": v, "$patch": "delete"}` deletes the item with that key. `$patch: merge` is
//!   rejected, as the server does.
//! - `$retainKeys: [..]` clears the keys of the live map that are not listed.
//! - `$deleteFromPrimitiveList/<field>: [..]` removes values from a list of scalars (the result
//!   comes back de-duplicated and sorted, as the server returns it).
//! - `$setElementOrder/<field>: [..]` orders the merged list: listed items in the given order,
//!   live-only items kept where they were relative to them.
//!
//! Custom resources have no strategy: the server answers 415, [`StrategicMergeError::UnsupportedMediaType`].

use serde_json::{Map, Value};

use crate::apply::is_builtin_api_version;

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";

/// Why a strategic merge patch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StrategicMergeError {
    /// The resource has no merge strategy (custom resources): HTTP 415.
    #[error(
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    )]
    UnsupportedMediaType,
    /// The patch is not a JSON object: HTTP 400.
    #[error("json: cannot unmarshal {found} into Go value of type map[string]interface {{}}")]
    NotAnObject {
        /// The Go name of the JSON type that was sent.
        found: &'static str,
    },
    /// A `$retainKeys` list is malformed or omits a key the patch sets: HTTP 400.
    #[error("invalid patch format of retainKeys")]
    BadRetainKeys,
    /// A `$deleteFromPrimitiveList/` directive is malformed: HTTP 400.
    #[error("invalid patch format of primitive list")]
    BadPrimitiveList,
    /// A `$setElementOrder/` directive is malformed or contradicts the patch: HTTP 400.
    #[error("invalid patch format of setElementOrder list")]
    BadSetElementOrder,
    /// Any other patch the server refuses (an unknown `$patch`, a missing merge key…): HTTP 500.
    #[error("{message}")]
    Invalid {
        /// The server's message, e.g. `unknown patch type: merge in map: map[$patch:merge]`.
        message: String,
    },
}

impl StrategicMergeError {
    /// The HTTP status the API server answers with for this error.
    pub fn status_code(&self) -> u16 {
        match self {
            Self::UnsupportedMediaType => 415,
            Self::NotAnObject { .. }
            | Self::BadRetainKeys
            | Self::BadPrimitiveList
            | Self::BadSetElementOrder => 400,
            Self::Invalid { .. } => 500,
        }
    }
}

fn invalid(message: String) -> StrategicMergeError {
    StrategicMergeError::Invalid { message }
}

/// How a list field merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListStrategy {
    /// Replaced by the patch's list.
    Replace,
    /// Scalars: union of live and patch.
    Union,
    /// Objects: merged item by item, matched on this key.
    MergeKey(&'static str),
}

const CONTAINER_LISTS: &[&str] = &["containers", "initContainers", "ephemeralContainers"];

/// The `patchStrategy`/`patchMergeKey` the built-in Go types declare for a list field.
fn list_strategy(kind: &str, fields: &[String]) -> ListStrategy {
    let (last, parent) = match fields {
        [.., parent, last] => (last.as_str(), Some(parent.as_str())),
        [last] => (last.as_str(), None),
        [] => return ListStrategy::Replace,
    };
    let in_container = parent.is_some_and(|p| CONTAINER_LISTS.contains(&p));
    match (parent, last) {
        (Some("metadata"), "finalizers") => ListStrategy::Union,
        (Some("metadata"), "ownerReferences") => ListStrategy::MergeKey("uid"),
        (Some("spec"), l) if CONTAINER_LISTS.contains(&l) => ListStrategy::MergeKey("name"),
        (Some("spec"), "volumes" | "imagePullSecrets" | "schedulingGates" | "resourceClaims") => {
            ListStrategy::MergeKey("name")
        }
        (Some("spec"), "hostAliases") => ListStrategy::MergeKey("ip"),
        (Some("spec"), "topologySpreadConstraints") => ListStrategy::MergeKey("topologyKey"),
        (_, "ports") if in_container => ListStrategy::MergeKey("containerPort"),
        (Some("spec"), "ports") if kind == "Service" && fields.len() == 2 => {
            ListStrategy::MergeKey("port")
        }
        (_, "env") if in_container => ListStrategy::MergeKey("name"),
        (_, "volumeMounts") if in_container => ListStrategy::MergeKey("mountPath"),
        (_, "volumeDevices") if in_container => ListStrategy::MergeKey("devicePath"),
        (Some("status"), "conditions") => ListStrategy::MergeKey("type"),
        _ => ListStrategy::Replace,
    }
}

/// Applies a strategic merge patch to `target` in place, for an object of the given
/// `apiVersion` and `kind`. On error `target` is left unchanged.
///
/// ```
/// use autopilot_testkit::strategic::strategic_merge;
/// use serde_json::json;
///
/// let mut pod = json!({"spec": {"containers": [
///     {"name": "app", "image": "app:1"}, {"name": "proxy", "image": "envoy"}]}});
/// let patch = json!({"spec": {"containers": [{"name": "app", "image": "app:2"}]}});
/// strategic_merge(&mut pod, &patch, "v1", "Pod").unwrap();
/// assert_eq!(pod["spec"]["containers"], json!([
///     {"name": "app", "image": "app:2"}, {"name": "proxy", "image": "envoy"}]));
///
/// let err = strategic_merge(&mut pod, &patch, "demo.io/v1", "Canary").unwrap_err();
/// assert_eq!(err.status_code(), 415);
/// ```
pub fn strategic_merge(
    target: &mut Value,
    patch: &Value,
    api_version: &str,
    kind: &str,
) -> Result<(), StrategicMergeError> {
    if !is_builtin_api_version(api_version) {
        return Err(StrategicMergeError::UnsupportedMediaType);
    }
    let Value::Object(patch) = patch else {
        return Err(StrategicMergeError::NotAnObject {
            found: go_type(patch),
        });
    };
    let original = target.as_object().cloned().unwrap_or_default();
    let merger = Merger { kind };
    let merged = merger.merge_map(original, patch.clone(), &mut Vec::new())?;
    *target = Value::Object(merged);
    Ok(())
}

fn go_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Prints a value as Go's `%v` prints decoded JSON: `map[a:1 b:[x y]]`.
fn go_v(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            format!("[{}]", items.iter().map(go_v).collect::<Vec<_>>().join(" "))
        }
        Value::Object(map) => format!(
            "map[{}]",
            map.iter()
                .map(|(k, v)| format!("{k}:{}", go_v(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Value::Number(n) if n.is_f64() => {
            crate::validation::go_float(n.as_f64().unwrap_or_default())
        }
        other => other.to_string(),
    }
}

/// A value the patch adds where the live object has none: nulls in maps are discarded (the
/// server ignores unmatched nulls) and directive keys dropped (decoding into the typed object
/// drops them).
fn clean_new_value(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, v)| !k.starts_with('$') && !v.is_null())
                .map(|(k, v)| (k, clean_new_value(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(clean_new_value).collect()),
        other => other,
    }
}

/// A list the patch adds alongside `$setElementOrder`: items carrying `$patch` are dropped.
fn without_directive_items(items: Vec<Value>) -> Vec<Value> {
    items
        .into_iter()
        .filter(|item| item.get(DIRECTIVE).is_none())
        .map(clean_new_value)
        .collect()
}

struct Merger<'a> {
    kind: &'a str,
}

impl Merger<'_> {
    fn merge_map(
        &self,
        mut original: Map<String, Value>,
        mut patch: Map<String, Value>,
        fields: &mut Vec<String>,
    ) -> Result<Map<String, Value>, StrategicMergeError> {
        if let Some(directive) = patch.get(DIRECTIVE) {
            return match directive.as_str() {
                Some("replace") => {
                    patch.remove(DIRECTIVE);
                    Ok(patch)
                }
                Some("delete") => Ok(Map::new()),
                _ => Err(invalid(format!(
                    "unknown patch type: {} in map: {}",
                    go_v(directive),
                    go_v(&Value::Object(patch.clone()))
                ))),
            };
        }
        apply_retain_keys(&mut original, &mut patch)?;
        self.apply_element_orders(&mut original, &mut patch, fields)?;
        for (key, patch_value) in patch {
            let (key, delete_list) = match key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
                Some(rest) => match rest.strip_prefix('/') {
                    Some(field) => (field.to_string(), true),
                    None => return Err(StrategicMergeError::BadPrimitiveList),
                },
                None => (key, false),
            };
            if patch_value.is_null() {
                original.remove(&key);
                continue;
            }
            let Some(live) = original.remove(&key) else {
                if !delete_list {
                    original.insert(key, clean_new_value(patch_value));
                }
                continue;
            };
            fields.push(key.clone());
            let merged = match (live, patch_value) {
                (Value::Object(live), Value::Object(patch)) => {
                    Value::Object(self.merge_map(live, patch, fields)?)
                }
                (Value::Array(live), Value::Array(patch)) => {
                    Value::Array(self.merge_list(live, patch, fields, delete_list)?)
                }
                (live, _) if delete_list => live,
                (_, patch) => clean_new_value(patch),
            };
            fields.pop();
            original.insert(key, merged);
        }
        Ok(original)
    }

    fn merge_list(
        &self,
        original: Vec<Value>,
        patch: Vec<Value>,
        fields: &[String],
        delete_list: bool,
    ) -> Result<Vec<Value>, StrategicMergeError> {
        match list_strategy(self.kind, fields) {
            ListStrategy::Replace => Ok(patch),
            ListStrategy::Union => {
                if original.is_empty() && patch.is_empty() {
                    return Ok(original);
                }
                if delete_list {
                    let remaining: Vec<Value> = original
                        .into_iter()
                        .filter(|v| !patch.contains(v))
                        .collect();
                    return Ok(uniqify_and_sort(remaining));
                }
                let mut both = original;
                both.extend(patch);
                Ok(uniqify(both))
            }
            ListStrategy::MergeKey(key) => self.merge_keyed(original, patch, key, fields),
        }
    }

    fn merge_keyed(
        &self,
        mut original: Vec<Value>,
        patch: Vec<Value>,
        key: &str,
        fields: &[String],
    ) -> Result<Vec<Value>, StrategicMergeError> {
        if original.is_empty() && patch.is_empty() {
            return Ok(original);
        }
        let mut items = Vec::new();
        let mut replace = false;
        for item in patch {
            let Some(directive) = item.get(DIRECTIVE) else {
                items.push(item);
                continue;
            };
            match directive.as_str() {
                Some("delete") => {
                    let Some(value) = item.get(key) else {
                        return Err(invalid(
                            "delete patch type with no merge key defined".into(),
                        ));
                    };
                    original.retain(|o| o.get(key) != Some(value));
                }
                Some("replace") => replace = true,
                Some("merge") => {
                    return Err(invalid(
                        "merging lists cannot yet be specified in the patch".into(),
                    ));
                }
                _ => {
                    return Err(invalid(format!(
                        "unknown patch type: {} in map: {}",
                        go_v(directive),
                        go_v(&item)
                    )));
                }
            }
        }
        if replace {
            return Ok(items);
        }
        let mut fields = fields.to_vec();
        for item in items {
            let Value::Object(item) = item else {
                return Err(invalid(format!("value for key {key} is not a map.")));
            };
            let Some(value) = item.get(key).cloned() else {
                return Err(invalid(format!(
                    "map: {} does not contain declared merge key: {key}",
                    go_v(&Value::Object(item))
                )));
            };
            match original.iter().position(|o| o.get(key) == Some(&value)) {
                Some(i) => {
                    let live = original[i].as_object().cloned().unwrap_or_default();
                    original[i] = Value::Object(self.merge_map(live, item, &mut fields)?);
                }
                None => {
                    original.push(clean_new_value(Value::Object(item)));
                }
            }
        }
        Ok(original)
    }

    /// Handles `$setElementOrder/<field>` together with the patch's `<field>` list.
    fn apply_element_orders(
        &self,
        original: &mut Map<String, Value>,
        patch: &mut Map<String, Value>,
        fields: &mut Vec<String>,
    ) -> Result<(), StrategicMergeError> {
        let directives: Vec<String> = patch
            .keys()
            .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
            .cloned()
            .collect();
        for directive in directives {
            let order = patch.remove(&directive).unwrap_or(Value::Null);
            let Some(field) = directive
                .strip_prefix(SET_ELEMENT_ORDER)
                .and_then(|r| r.strip_prefix('/'))
            else {
                return Err(StrategicMergeError::BadSetElementOrder);
            };
            let field = field.to_string();
            let Value::Array(order) = order else {
                return Err(StrategicMergeError::BadSetElementOrder);
            };
            let live = match original.get(&field) {
                Some(Value::Array(items)) => Some(items.clone()),
                Some(_) => return Err(StrategicMergeError::BadSetElementOrder),
                None => None,
            };
            let patch_list = match patch.remove(&field) {
                Some(Value::Array(items)) => Some(items),
                Some(_) => return Err(StrategicMergeError::BadSetElementOrder),
                None => None,
            };
            fields.push(field.clone());
            let strategy = list_strategy(self.kind, fields);
            let key = match strategy {
                ListStrategy::MergeKey(key) => Some(key),
                _ => None,
            };
            if let Some(patch_list) = &patch_list {
                check_order(patch_list, &order, key)?;
            }
            let merged = match (live.clone(), patch_list) {
                (Some(live), None) => live,
                (None, Some(patch_list)) => without_directive_items(patch_list),
                (Some(live), Some(patch_list)) => {
                    self.merge_list(live, patch_list, fields, false)?
                }
                (None, None) => {
                    fields.pop();
                    continue;
                }
            };
            fields.pop();
            let identity = |item: &Value| -> Value {
                match key {
                    Some(key) => item.get(key).cloned().unwrap_or(Value::Null),
                    None => item.clone(),
                }
            };
            let position = |list: &[Value], item: &Value| {
                list.iter().position(|o| identity(o) == identity(item))
            };
            let (mut patched, mut server_only): (Vec<Value>, Vec<Value>) = merged
                .into_iter()
                .partition(|item| position(&order, item).is_some());
            let live = live.unwrap_or_default();
            patched.sort_by_key(|item| position(&order, item));
            server_only.sort_by_key(|item| position(&live, item));
            original.insert(
                field,
                Value::Array(interleave(server_only, patched, &live, &position)),
            );
        }
        Ok(())
    }
}

/// Inserts live-only items among the ordered patch items where the live order puts them.
fn interleave(
    left: Vec<Value>,
    right: Vec<Value>,
    live: &[Value],
    position: &dyn Fn(&[Value], &Value) -> Option<usize>,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let (mut left, mut right) = (left.into_iter().peekable(), right.into_iter().peekable());
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => return out,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => {
                matches!((position(live, l), position(live, r)), (Some(li), Some(ri)) if li < ri)
            }
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
}

/// The patch list's items must appear in `$setElementOrder` in the same relative order.
fn check_order(
    patch: &[Value],
    order: &[Value],
    key: Option<&str>,
) -> Result<(), StrategicMergeError> {
    let identity = |item: &Value| -> Option<Value> {
        match key {
            Some(key) => item.get(key).cloned(),
            None => Some(item.clone()),
        }
    };
    let items: Vec<&Value> = patch
        .iter()
        .filter(|i| i.get(DIRECTIVE).is_none())
        .collect();
    let mut next = 0;
    for wanted in order {
        if next < items.len() && identity(items[next]) == identity(wanted) {
            next += 1;
        }
    }
    if next < items.len() {
        return Err(StrategicMergeError::BadSetElementOrder);
    }
    Ok(())
}

/// `$retainKeys`: drop live keys not listed; every key the patch sets must be listed.
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<(), StrategicMergeError> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(StrategicMergeError::BadRetainKeys);
    };
    let listed = |k: &str| retain.iter().any(|r| r.as_str() == Some(k));
    for (key, value) in patch.iter() {
        let directive =
            key.starts_with(DELETE_FROM_PRIMITIVE_LIST) || key.starts_with(SET_ELEMENT_ORDER);
        if !value.is_null() && !directive && !listed(key) {
            return Err(StrategicMergeError::BadRetainKeys);
        }
    }
    original.retain(|k, _| listed(k));
    Ok(())
}

/// De-duplicates scalars the way the server does (a later duplicate is replaced by the last item).
fn uniqify(mut items: Vec<Value>) -> Vec<Value> {
    let mut i = 0;
    while i + 1 < items.len() {
        let mut j = i + 1;
        while j < items.len() {
            if items[i] == items[j] {
                items.swap_remove(j);
            } else {
                j += 1;
            }
        }
        i += 1;
    }
    items
}

fn uniqify_and_sort(items: Vec<Value>) -> Vec<Value> {
    let mut items = uniqify(items);
    items.sort_by_key(go_v);
    items
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
