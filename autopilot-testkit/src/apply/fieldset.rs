//! Field paths and sets in the FieldsV1 spelling, and the walks over JSON objects that
//! server-side apply needs: field set of a value, comparison, merge and removal.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

/// A field path, one FieldsV1 element per step: `f:name`, `k:{"name":"a"}`, `v:"x"`, `i:0`.
pub(crate) type FieldPath = Vec<String>;

/// A set of field paths, as one `managedFields` entry owns them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSet(pub(crate) BTreeSet<FieldPath>);

impl FieldSet {
    /// Reads a `fieldsV1` object: `.` marks the enclosing path as a member, `{}` a leaf member.
    pub(crate) fn from_fields_v1(fields: &Value) -> Self {
        fn walk(node: &Map<String, Value>, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
            for (element, child) in node {
                if element == "." {
                    out.insert(path.clone());
                    continue;
                }
                path.push(element.clone());
                match child.as_object() {
                    Some(children) if !children.is_empty() => walk(children, path, out),
                    _ => {
                        out.insert(path.clone());
                    }
                }
                path.pop();
            }
        }
        let mut out = BTreeSet::new();
        if let Some(node) = fields.as_object() {
            walk(node, &mut Vec::new(), &mut out);
        }
        Self(out)
    }

    /// Writes the set as a `fieldsV1` object.
    pub(crate) fn to_fields_v1(&self) -> Value {
        let mut root = Map::new();
        for path in &self.0 {
            let mut node = &mut root;
            for element in path {
                let child = node
                    .entry(element.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                let Value::Object(child) = child else { break };
                node = child;
            }
        }
        // Members that also have children carry a `.` entry.
        fn mark(node: &mut Map<String, Value>, path: &mut FieldPath, set: &BTreeSet<FieldPath>) {
            for (element, child) in node.iter_mut() {
                path.push(element.clone());
                if let Value::Object(children) = child
                    && !children.is_empty()
                {
                    mark(children, path, set);
                    if set.contains(path) {
                        children.insert(".".to_string(), Value::Object(Map::new()));
                    }
                }
                path.pop();
            }
        }
        mark(&mut root, &mut Vec::new(), &self.0);
        Value::Object(root)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn union(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.union(&other.0).cloned().collect())
    }

    pub(crate) fn difference(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.difference(&other.0).cloned().collect())
    }

    pub(crate) fn intersection(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.intersection(&other.0).cloned().collect())
    }

    /// Adds every ancestor reached through a field name, so owning `.a.b` also owns `.a`.
    pub(crate) fn with_named_parents(&self) -> FieldSet {
        let mut out = self.0.clone();
        for path in &self.0 {
            for len in 1..path.len() {
                if path[len - 1].starts_with("f:") {
                    out.insert(path[..len].to_vec());
                }
            }
        }
        FieldSet(out)
    }
}

/// A path as the API server prints it in conflicts: `.spec.containers[name="app"].image`.
pub(crate) fn display_path(path: &FieldPath) -> String {
    let mut out = String::new();
    for element in path {
        let (prefix, rest) = element.split_at(element.len().min(2));
        match prefix {
            "f:" => {
                out.push('.');
                out.push_str(rest);
            }
            "k:" => {
                let keys = serde_json::from_str::<Map<String, Value>>(rest).unwrap_or_default();
                let parts: Vec<String> = keys
                    .iter()
                    .map(|(k, v)| format!("{k}={}", display_value(v)))
                    .collect();
                out.push_str(&format!("[{}]", parts.join(",")));
            }
            "v:" => {
                let value = serde_json::from_str::<Value>(rest).unwrap_or(Value::Null);
                out.push_str(&format!("[={}]", display_value(&value)));
            }
            _ => out.push_str(&format!("[{rest}]")),
        }
    }
    out
}

fn display_value(value: &Value) -> String {
    match value {
        Value::String(s) => crate::validation::go_quote(s),
        other => other.to_string(),
    }
}

/// How a list's items are identified, as its schema declares (`x-kubernetes-list-type`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListKind {
    /// Replaced as a whole and owned as one field.
    Atomic,
    /// Items are unique scalars, each owned on its own (`v:`).
    Set,
    /// Items are objects identified by these key fields (`k:`).
    Map(Vec<String>),
}

/// One step of the type path used to find a list's kind: a field or "an item of the list".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TypeStep {
    Field(String),
    Item,
}

/// What the walks know about the object's type: built-in list kinds or a CRD schema.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape<'a> {
    pub(crate) builtin: bool,
    pub(crate) kind: &'a str,
    pub(crate) schema: Option<&'a Value>,
}

const CONTAINER_LISTS: &[&str] = &["containers", "initContainers", "ephemeralContainers"];

impl Shape<'_> {
    pub(crate) fn list_kind(&self, path: &[TypeStep]) -> ListKind {
        let fields: Vec<&str> = path
            .iter()
            .filter_map(|s| match s {
                TypeStep::Field(f) => Some(f.as_str()),
                TypeStep::Item => None,
            })
            .collect();
        let (last, parent) = match fields.as_slice() {
            [.., parent, last] => (*last, Some(*parent)),
            [last] => (*last, None),
            [] => return ListKind::Atomic,
        };
        if parent == Some("metadata") {
            match last {
                "ownerReferences" => return ListKind::Map(keys(&["uid"])),
                "finalizers" => return ListKind::Set,
                _ => {}
            }
        }
        if let Some(schema) = self.schema {
            return schema_list_kind(schema, path);
        }
        if !self.builtin {
            return ListKind::Atomic;
        }
        let in_container = parent.is_some_and(|p| CONTAINER_LISTS.contains(&p));
        match (parent, last) {
            (Some("spec"), l) if CONTAINER_LISTS.contains(&l) => ListKind::Map(keys(&["name"])),
            (
                Some("spec"),
                "volumes" | "imagePullSecrets" | "schedulingGates" | "resourceClaims",
            ) => ListKind::Map(keys(&["name"])),
            (Some("spec"), "hostAliases") => ListKind::Map(keys(&["ip"])),
            (Some("spec"), "topologySpreadConstraints") => {
                ListKind::Map(keys(&["topologyKey", "whenUnsatisfiable"]))
            }
            (_, "ports") if in_container => ListKind::Map(keys(&["containerPort", "protocol"])),
            (Some("spec"), "ports") if self.kind == "Service" && fields.len() == 2 => {
                ListKind::Map(keys(&["port", "protocol"]))
            }
            (_, "env") if in_container => ListKind::Map(keys(&["name"])),
            (_, "volumeMounts") if in_container => ListKind::Map(keys(&["mountPath"])),
            (_, "volumeDevices") if in_container => ListKind::Map(keys(&["devicePath"])),
            (Some("status"), "conditions") => ListKind::Map(keys(&["type"])),
            _ => ListKind::Atomic,
        }
    }
}

/// The list kind a CRD schema declares at a type path (atomic when unspecified).
fn schema_list_kind(schema: &Value, path: &[TypeStep]) -> ListKind {
    let mut node = schema;
    for step in path {
        let next = match step {
            TypeStep::Field(name) => node
                .get("properties")
                .and_then(|p| p.get(name))
                .or_else(|| node.get("additionalProperties").filter(|a| a.is_object())),
            TypeStep::Item => node.get("items"),
        };
        match next {
            Some(next) => node = next,
            None => return ListKind::Atomic,
        }
    }
    match node.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => ListKind::Set,
        Some("map") => {
            let keys = node
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
            ListKind::Map(keys)
        }
        _ => ListKind::Atomic,
    }
}

fn keys(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// The FieldsV1 element naming an item of a set or map list.
pub(crate) fn item_element(kind: &ListKind, item: &Value) -> String {
    match kind {
        ListKind::Map(keys) => {
            let mut fields = Map::new();
            for key in keys {
                match item.get(key) {
                    Some(value) => {
                        fields.insert(key.to_string(), value.clone());
                    }
                    // The one key field the server defaults.
                    None if key == "protocol" => {
                        fields.insert(key.to_string(), Value::String("TCP".to_string()));
                    }
                    None => {}
                }
            }
            format!("k:{}", Value::Object(fields))
        }
        _ => format!("v:{item}"),
    }
}

/// Whether a list item is the one a `k:`/`v:`/`i:` element names.
fn item_matches(element: &str, index: usize, item: &Value) -> bool {
    if let Some(keys) = element.strip_prefix("k:") {
        let Ok(keys) = serde_json::from_str::<Map<String, Value>>(keys) else {
            return false;
        };
        let names: Vec<String> = keys.keys().cloned().collect();
        return item_element(&ListKind::Map(names), item) == element;
    }
    if let Some(value) = element.strip_prefix("v:") {
        return serde_json::from_str::<Value>(value).is_ok_and(|v| &v == item);
    }
    element
        .strip_prefix("i:")
        .and_then(|i| i.parse::<usize>().ok())
        == Some(index)
}

fn list_kind_at(shape: &Shape, types: &[TypeStep]) -> ListKind {
    shape.list_kind(types)
}

/// The first item of a map list that lacks one of the list's key fields (without a default),
/// in the field manager's words: `.spec.containers: element 0: associative list with keys has
/// an element that omits key field "name" (and doesn't have default value)`.
pub(crate) fn missing_list_key(value: &Value, shape: &Shape) -> Option<String> {
    fn walk(
        value: &Value,
        path: &mut Vec<String>,
        types: &mut Vec<TypeStep>,
        shape: &Shape,
    ) -> Option<String> {
        match value {
            Value::Object(map) => map.iter().find_map(|(key, child)| {
                path.push(format!(".{key}"));
                types.push(TypeStep::Field(key.clone()));
                let found = walk(child, path, types, shape);
                types.pop();
                path.pop();
                found
            }),
            Value::Array(items) => {
                let kind = shape.list_kind(types);
                if let ListKind::Map(keys) = &kind {
                    for (i, item) in items.iter().enumerate() {
                        let missing = keys
                            .iter()
                            .find(|k| item.get(k.as_str()).is_none() && *k != "protocol");
                        if let Some(key) = missing {
                            return Some(format!(
                                "{}: element {i}: associative list with keys has an element that omits key field \"{key}\" (and doesn't have default value)",
                                path.concat()
                            ));
                        }
                    }
                }
                if kind == ListKind::Atomic {
                    return None;
                }
                types.push(TypeStep::Item);
                let found = items.iter().find_map(|item| {
                    path.push(display_path(&vec![item_element(&kind, item)]));
                    let found = walk(item, path, types, shape);
                    path.pop();
                    found
                });
                types.pop();
                found
            }
            _ => None,
        }
    }
    walk(value, &mut Vec::new(), &mut Vec::new(), shape)
}

/// The field set a value claims when applied: leaves, set/map list items and empty objects.
pub(crate) fn field_set(value: &Value, shape: &Shape) -> FieldSet {
    fn walk(
        value: &Value,
        path: &mut FieldPath,
        types: &mut Vec<TypeStep>,
        shape: &Shape,
        out: &mut BTreeSet<FieldPath>,
    ) {
        match value {
            Value::Object(map) if !map.is_empty() || path.is_empty() => {
                for (key, child) in map {
                    path.push(format!("f:{key}"));
                    types.push(TypeStep::Field(key.clone()));
                    walk(child, path, types, shape, out);
                    types.pop();
                    path.pop();
                }
            }
            Value::Array(items) if list_kind_at(shape, types) != ListKind::Atomic => {
                let kind = list_kind_at(shape, types);
                types.push(TypeStep::Item);
                for item in items {
                    path.push(item_element(&kind, item));
                    out.insert(path.clone());
                    if kind != ListKind::Set {
                        walk(item, path, types, shape, out);
                    }
                    path.pop();
                }
                types.pop();
            }
            _ => {
                if !path.is_empty() {
                    out.insert(path.clone());
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(value, &mut Vec::new(), &mut Vec::new(), shape, &mut out);
    FieldSet(out)
}

/// Paths whose values were added, modified or removed between two versions of an object.
#[derive(Debug, Default)]
pub(crate) struct Comparison {
    pub(crate) added: FieldSet,
    pub(crate) modified: FieldSet,
    pub(crate) removed: FieldSet,
}

impl Comparison {
    pub(crate) fn changed(&self) -> FieldSet {
        self.added.union(&self.modified)
    }

    /// Added and modified paths, without building a set.
    pub(crate) fn changed_paths(&self) -> impl Iterator<Item = &FieldPath> {
        self.added.0.iter().chain(&self.modified.0)
    }
}

/// Compares two versions of an object path by path, as the field manager does for updates
/// (`metadata.managedFields` excluded).
pub(crate) fn compare(old: Option<&Value>, new: Option<&Value>, shape: &Shape) -> Comparison {
    let mut out = Comparison::default();
    compare_node(old, new, &mut Vec::new(), &mut Vec::new(), shape, &mut out);
    out
}

fn compare_node(
    old: Option<&Value>,
    new: Option<&Value>,
    path: &mut FieldPath,
    types: &mut Vec<TypeStep>,
    shape: &Shape,
    out: &mut Comparison,
) {
    let container = match (old, new) {
        (None, None) => return,
        // Identical subtrees hold no changes (the common case for most of an object).
        (Some(o), Some(n)) if o == n && !path.is_empty() => return,
        (Some(Value::Object(o)), Some(Value::Object(n))) => {
            compare_maps(Some(o), Some(n), path, types, shape, out);
            true
        }
        (None, Some(Value::Object(n))) => {
            compare_maps(None, Some(n), path, types, shape, out);
            true
        }
        (Some(Value::Object(o)), None) => {
            compare_maps(Some(o), None, path, types, shape, out);
            true
        }
        (o, n)
            if matches!(
                (o, n),
                (Some(Value::Array(_)) | None, Some(Value::Array(_)) | None)
            ) && list_kind_at(shape, types) != ListKind::Atomic =>
        {
            let kind = list_kind_at(shape, types);
            let empty = Vec::new();
            let old_items = o.and_then(Value::as_array).unwrap_or(&empty);
            let new_items = n.and_then(Value::as_array).unwrap_or(&empty);
            let index = |items: &[Value]| -> BTreeMap<String, Value> {
                items
                    .iter()
                    .rev()
                    .map(|i| (item_element(&kind, i), i.clone()))
                    .collect()
            };
            let (old_index, new_index) = (index(old_items), index(new_items));
            types.push(TypeStep::Item);
            let elements: BTreeSet<&String> = old_index.keys().chain(new_index.keys()).collect();
            for element in elements {
                path.push(element.clone());
                if kind == ListKind::Set {
                    match (
                        old_index.contains_key(element),
                        new_index.contains_key(element),
                    ) {
                        (false, true) => {
                            out.added.0.insert(path.clone());
                        }
                        (true, false) => {
                            out.removed.0.insert(path.clone());
                        }
                        _ => {}
                    }
                } else {
                    compare_node(
                        old_index.get(element),
                        new_index.get(element),
                        path,
                        types,
                        shape,
                        out,
                    );
                }
                path.pop();
            }
            types.pop();
            true
        }
        _ => false,
    };
    if path.is_empty() {
        return;
    }
    match (old, new) {
        (None, Some(_)) => {
            out.added.0.insert(path.clone());
        }
        (Some(_), None) => {
            out.removed.0.insert(path.clone());
        }
        (Some(o), Some(n)) if !container && !same_scalar(o, n) => {
            out.modified.0.insert(path.clone());
        }
        _ => {}
    }
}

/// Equal values, numbers compared by value (`1` and `1.0` are the same).
fn same_scalar(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn compare_maps(
    old: Option<&Map<String, Value>>,
    new: Option<&Map<String, Value>>,
    path: &mut FieldPath,
    types: &mut Vec<TypeStep>,
    shape: &Shape,
    out: &mut Comparison,
) {
    let keys: BTreeSet<&String> = old
        .into_iter()
        .flat_map(Map::keys)
        .chain(new.into_iter().flat_map(Map::keys))
        .collect();
    // The bookkeeping itself is never compared.
    let in_metadata = path.len() == 1 && path[0] == "f:metadata";
    for key in keys
        .into_iter()
        .filter(|k| !(in_metadata && *k == "managedFields"))
    {
        path.push(format!("f:{key}"));
        types.push(TypeStep::Field(key.clone()));
        compare_node(
            old.and_then(|m| m.get(key)),
            new.and_then(|m| m.get(key)),
            path,
            types,
            shape,
            out,
        );
        types.pop();
        path.pop();
    }
}

/// Merges an applied configuration into the live object: objects field by field, set and map
/// lists item by item (keeping the live order for live items and placing new ones where the
/// configuration puts them), everything else replaced.
pub(crate) fn merge(live: &Value, config: &Value, shape: &Shape) -> Value {
    merge_node(Some(live), config, &mut Vec::new(), shape)
}

fn merge_node(
    live: Option<&Value>,
    config: &Value,
    types: &mut Vec<TypeStep>,
    shape: &Shape,
) -> Value {
    match (live, config) {
        (Some(Value::Object(l)), Value::Object(c)) => {
            let mut out = l.clone();
            for (key, value) in c {
                types.push(TypeStep::Field(key.clone()));
                let merged = merge_node(l.get(key), value, types, shape);
                types.pop();
                out.insert(key.clone(), merged);
            }
            Value::Object(out)
        }
        (Some(Value::Array(l)), Value::Array(c))
            if list_kind_at(shape, types) != ListKind::Atomic =>
        {
            let kind = list_kind_at(shape, types);
            types.push(TypeStep::Item);
            let merged = merge_items(l, c, &kind, types, shape);
            types.pop();
            Value::Array(merged)
        }
        _ => config.clone(),
    }
}

/// The field manager's list merge: shared items are merged in the configuration's order,
/// live-only items keep their place, configuration-only items go where the configuration has them.
fn merge_items(
    live: &[Value],
    config: &[Value],
    kind: &ListKind,
    types: &mut Vec<TypeStep>,
    shape: &Shape,
) -> Vec<Value> {
    let live_keys: Vec<String> = live.iter().map(|i| item_element(kind, i)).collect();
    let config_keys: Vec<String> = config.iter().map(|i| item_element(kind, i)).collect();
    let live_by_key: BTreeMap<&String, &Value> = live_keys.iter().zip(live).rev().collect();
    let in_config: BTreeSet<&String> = config_keys.iter().collect();
    let mut shared = config_keys
        .iter()
        .filter(|k| live_by_key.contains_key(k))
        .peekable();
    let mut merged_config: BTreeSet<&String> = BTreeSet::new();
    let mut out = Vec::with_capacity(live.len().max(config.len()));
    let (mut li, mut ci) = (0, 0);
    let merge_one = |key: &String, item: &Value, types: &mut Vec<TypeStep>| match kind {
        ListKind::Set => item.clone(),
        _ => merge_node(live_by_key.get(key).copied(), item, types, shape),
    };
    while li < live.len() || ci < config.len() {
        if li < live.len() && ci < config.len() {
            let key = &live_keys[li];
            if *key == config_keys[ci] {
                merged_config.insert(key);
                out.push(merge_one(key, &config[ci], types));
                if shared.peek() == Some(&key) {
                    shared.next();
                }
                li += 1;
                ci += 1;
                continue;
            }
            if in_config.contains(key) && shared.peek().is_some_and(|next| *next != key) {
                li += 1;
                continue;
            }
        }
        if li < live.len() {
            let key = &live_keys[li];
            if !in_config.contains(key) {
                out.push(live[li].clone());
                li += 1;
                continue;
            }
            if merged_config.contains(key) {
                li += 1;
                continue;
            }
        }
        if ci < config.len() {
            let key = &config_keys[ci];
            merged_config.insert(key);
            out.push(merge_one(key, &config[ci], types));
            if shared.peek() == Some(&key) {
                shared.next();
            }
            ci += 1;
        }
    }
    out
}

/// Removes the value at a path (and everything beneath it); missing paths are ignored.
pub(crate) fn remove_path(value: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = value;
    for element in parents {
        let next = match node {
            Value::Object(map) => element.strip_prefix("f:").and_then(|k| map.get_mut(k)),
            Value::Array(items) => items
                .iter_mut()
                .enumerate()
                .find(|(i, item)| item_matches(element, *i, item))
                .map(|(_, item)| item),
            _ => None,
        };
        match next {
            Some(next) => node = next,
            None => return,
        }
    }
    match node {
        Value::Object(map) => {
            if let Some(key) = last.strip_prefix("f:") {
                map.remove(key);
            }
        }
        Value::Array(items) => {
            let mut index = 0;
            items.retain(|item| {
                let keep = !item_matches(last, index, item);
                index += 1;
                keep
            });
        }
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
