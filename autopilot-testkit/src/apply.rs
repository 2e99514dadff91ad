//! Server-side apply and `managedFields` bookkeeping, following the API server's field manager.
//!
//! Every write records who set which fields in `metadata.managedFields`: one entry per manager,
//! operation (`Apply` or `Update`), API version (for updates) and subresource, each with a
//! FieldsV1 set (`f:` fields, `k:{...}` map-list items, `v:` set-list items, `.` for a member
//! that also has members beneath it) and the `time` of its last change.
//!
//! [`apply`] merges an applied configuration into the live object: fields it sets become owned
//! by the applier, fields it applied before but no longer mentions are removed unless another
//! manager still owns them, and changing a field another manager owns is a conflict unless
//! `force` moves the ownership. [`record_update`] does the bookkeeping for ordinary create,
//! update and patch requests: the fields a request changed move to its manager.
//!
//! Lists are associative where the type declares it (built-in merge keys such as containers by
//! `name`, container ports by `containerPort`+`protocol`; CRD `x-kubernetes-list-type`) and
//! atomic otherwise. `apiVersion`, `kind` and the server-maintained metadata (`name`,
//! `namespace`, `uid`, `resourceVersion`, `generation`, `creationTimestamp`, `managedFields`…)
//! are never owned.

mod fieldset;
mod steady;

use serde_json::{Map, Value};

use std::sync::LazyLock;

use fieldset::{
    Comparison, FieldPath, FieldSet, Shape, compare, display_path, field_set, merge, remove_path,
};

/// The manager that inherits an object's fields when it is first applied to without any
/// `managedFields`.
const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// Paths the field manager never records as owned.
const NEVER_OWNED: &[&[&str]] = &[
    &["f:apiVersion"],
    &["f:kind"],
    &["f:metadata"],
    &["f:metadata", "f:name"],
    &["f:metadata", "f:namespace"],
    &["f:metadata", "f:creationTimestamp"],
    &["f:metadata", "f:selfLink"],
    &["f:metadata", "f:uid"],
    &["f:metadata", "f:clusterName"],
    &["f:metadata", "f:generation"],
    &["f:metadata", "f:managedFields"],
    &["f:metadata", "f:resourceVersion"],
];

/// A server-side apply request (a `PATCH` with `application/apply-patch+yaml`).
#[derive(Debug, Clone, Copy)]
pub struct ApplyRequest<'a> {
    /// The stored object, or `None` when the apply creates it.
    pub live: Option<&'a Value>,
    /// The applied configuration (must not carry `metadata.managedFields`).
    pub applied: &'a Value,
    /// The `fieldManager` query parameter.
    pub manager: &'a str,
    /// The `force` query parameter: take ownership of conflicting fields instead of failing.
    pub force: bool,
    /// `Some("status")` when applying to the status subresource: only `.status` is applied.
    /// For the main resource the caller leaves `status` out of `applied` when the resource has
    /// a status subresource, as the server resets it there.
    pub subresource: Option<&'a str>,
    /// The timestamp to record (RFC 3339, e.g. `2024-05-01T10:00:00Z`).
    pub now: &'a str,
    /// The API version of the endpoint, e.g. `apps/v1`.
    pub api_version: &'a str,
    /// The kind of the object, e.g. `Deployment`.
    pub kind: &'a str,
}

/// One field owned by another manager that an apply would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager's name, e.g. `kubectl`.
    pub manager: String,
    /// The other manager's operation, `Apply` or `Update`.
    pub operation: String,
    /// The API version the other manager wrote with.
    pub api_version: String,
    /// The subresource the other manager wrote through, if any.
    pub subresource: Option<String>,
    /// The contested field, e.g. `.spec.replicas` or `.spec.containers[name="app"].image`.
    pub field: String,
}

impl Conflict {
    /// The manager as the server describes it: `"kubectl" using apps/v1` for updaters,
    /// `"kubectl"` for appliers, with ` with subresource "status"` where it applies.
    pub fn owner(&self) -> String {
        let mut owner = crate::validation::go_quote(&self.manager);
        if let Some(subresource) = &self.subresource {
            owner.push_str(&format!(
                " with subresource {}",
                crate::validation::go_quote(subresource)
            ));
        }
        if self.operation == "Update" {
            owner.push_str(&format!(" using {}", self.api_version));
        }
        owner
    }

    /// The `message` of this conflict's `Status` cause (type `FieldManagerConflict`).
    pub fn cause_message(&self) -> String {
        format!("conflict with {}", self.owner())
    }

    /// The identifier the server sorts managers by.
    fn identifier(&self) -> String {
        entry_identifier(
            &self.manager,
            &self.operation,
            &self.api_version,
            self.subresource.as_deref(),
        )
    }
}

/// Why an apply was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// Fields owned by other managers would change (HTTP 409, reason `Conflict`).
    #[error("{}", conflict_message(conflicts))]
    Conflict {
        /// Every contested field, sorted by manager then field.
        conflicts: Vec<Conflict>,
    },
    /// The configuration carries `metadata.managedFields` (HTTP 400).
    #[error("metadata.managedFields must be nil")]
    ManagedFieldsNotNil,
    /// The configuration's `apiVersion` differs from the endpoint's (HTTP 400).
    #[error(
        "Incorrect version specified in apply patch. Specified patch version: {specified}, expected: {expected}"
    )]
    VersionMismatch {
        /// The configuration's version.
        specified: String,
        /// The endpoint's version.
        expected: String,
    },
    /// The configuration is not a JSON object (HTTP 400).
    #[error("apply configuration must be an object, got {found}")]
    NotAnObject {
        /// The JSON type that was sent.
        found: &'static str,
    },
    /// The configuration does not fit the type, e.g. a container without `name` (HTTP 500, as
    /// the server answers).
    #[error("failed to create typed patch object ({gvk}): {message}")]
    Typed {
        /// The kind as Go prints it, e.g. `apps/v1, Kind=Deployment`.
        gvk: String,
        /// What does not fit.
        message: String,
    },
}

impl ApplyError {
    /// The HTTP status the API server answers with for this error.
    pub fn status_code(&self) -> u16 {
        match self {
            Self::Conflict { .. } => 409,
            Self::ManagedFieldsNotNil | Self::VersionMismatch { .. } | Self::NotAnObject { .. } => {
                400
            }
            Self::Typed { .. } => 500,
        }
    }
}

fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [one] = conflicts {
        return format!(
            "Apply failed with 1 conflict: {}: {}",
            one.cause_message(),
            one.field
        );
    }
    let mut lines = Vec::new();
    let mut previous: Option<String> = None;
    for conflict in conflicts {
        let id = conflict.identifier();
        if previous.as_ref() != Some(&id) {
            lines.push(format!("conflicts with {}:", conflict.owner()));
            previous = Some(id);
        }
        lines.push(format!("- {}", conflict.field));
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

/// A decoded `managedFields` entry.
#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    subresource: Option<String>,
    time: Option<String>,
    fields: FieldSet,
}

impl Entry {
    fn is(
        &self,
        manager: &str,
        operation: &str,
        api_version: &str,
        subresource: Option<&str>,
    ) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
            // Appliers are one entry whatever version they apply with.
            && (operation == "Apply" || self.api_version == api_version)
    }

    fn encode(&self) -> Value {
        let mut entry = Map::new();
        entry.insert("manager".into(), Value::String(self.manager.clone()));
        entry.insert("operation".into(), Value::String(self.operation.clone()));
        entry.insert("apiVersion".into(), Value::String(self.api_version.clone()));
        if let Some(time) = &self.time {
            entry.insert("time".into(), Value::String(time.clone()));
        }
        entry.insert("fieldsType".into(), Value::String("FieldsV1".into()));
        entry.insert("fieldsV1".into(), self.fields.to_fields_v1());
        if let Some(subresource) = &self.subresource {
            entry.insert("subresource".into(), Value::String(subresource.clone()));
        }
        Value::Object(entry)
    }
}

/// At most this many `Update` entries are kept; older ones merge into `ancient-changes`.
const MAX_UPDATE_MANAGERS: usize = 10;
const ANCIENT_CHANGES: &str = "ancient-changes";

/// Merges the oldest `Update` entries into one `ancient-changes` entry per API version until
/// at most [`MAX_UPDATE_MANAGERS`] remain, as the server does to bound `managedFields`.
fn cap_update_managers(entries: &mut Vec<Entry>) {
    let mut updaters: Vec<usize> = (0..entries.len())
        .filter(|&i| entries[i].operation == "Update")
        .collect();
    if updaters.len() <= MAX_UPDATE_MANAGERS {
        return;
    }
    let key = |e: &Entry| {
        (
            e.time.clone(),
            entry_identifier(
                &e.manager,
                &e.operation,
                &e.api_version,
                e.subresource.as_deref(),
            ),
        )
    };
    updaters.sort_by_key(|&i| key(&entries[i]));
    let mut remaining = updaters.len();
    let mut first_of_version: std::collections::BTreeMap<String, usize> = Default::default();
    let mut merged = Vec::new();
    for &i in &updaters {
        if remaining <= MAX_UPDATE_MANAGERS {
            break;
        }
        let version = entries[i].api_version.clone();
        let bucket = entries
            .iter()
            .position(|e| e.is(ANCIENT_CHANGES, "Update", &version, None));
        let Some(&first) = first_of_version.get(&version) else {
            first_of_version.insert(version, i);
            continue;
        };
        let target = bucket.unwrap_or(first);
        entries[target].manager = ANCIENT_CHANGES.to_string();
        entries[target].subresource = None;
        entries[target].fields = entries[target].fields.union(&entries[i].fields);
        entries[target].time = entries[i].time.clone();
        merged.push(i);
        remaining -= 1;
    }
    let mut index = 0;
    entries.retain(|_| {
        let keep = !merged.contains(&index);
        index += 1;
        keep
    });
}

/// The JSON form of a manager's identity, as the server builds it for sorting and lookups.
fn entry_identifier(
    manager: &str,
    operation: &str,
    api_version: &str,
    subresource: Option<&str>,
) -> String {
    let mut id = Map::new();
    id.insert("manager".into(), Value::String(manager.into()));
    id.insert("operation".into(), Value::String(operation.into()));
    if operation != "Apply" {
        id.insert("apiVersion".into(), Value::String(api_version.into()));
    }
    if let Some(subresource) = subresource {
        id.insert("subresource".into(), Value::String(subresource.into()));
    }
    // Field order as the server's struct serialises it.
    let order = ["manager", "operation", "apiVersion", "subresource"];
    let parts: Vec<String> = order
        .iter()
        .filter_map(|k| id.get(*k).map(|v| format!("\"{k}\":{v}")))
        .collect();
    format!("{{{}}}", parts.join(","))
}

fn decode_entries(object: Option<&Value>) -> Vec<Entry> {
    let entries = object
        .and_then(|o| o.pointer("/metadata/managedFields"))
        .and_then(Value::as_array);
    let text = |e: &Value, k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
    entries
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some(Entry {
                manager: text(e, "manager")?,
                operation: text(e, "operation").unwrap_or_else(|| "Update".into()),
                api_version: text(e, "apiVersion").unwrap_or_default(),
                subresource: text(e, "subresource").filter(|s| !s.is_empty()),
                time: text(e, "time"),
                fields: e
                    .get("fieldsV1")
                    .map(FieldSet::from_fields_v1)
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Writes entries into `metadata.managedFields`, in the server's order, dropping empty ones.
fn encode_entries(object: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|e| !e.fields.is_empty());
    cap_update_managers(&mut entries);
    entries.sort_by(|a, b| {
        (
            &a.operation,
            &a.time,
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                &b.operation,
                &b.time,
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    let Some(map) = object.as_object_mut() else {
        return;
    };
    let metadata = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(metadata) = metadata.as_object_mut() else {
        return;
    };
    if entries.is_empty() {
        metadata.remove("managedFields");
    } else {
        metadata.insert(
            "managedFields".into(),
            Value::Array(entries.iter().map(Entry::encode).collect()),
        );
    }
}

/// The paths an Update takes: what it added or changed, except what no manager ever owns.
fn taken_by_update(comparison: &Comparison) -> impl Iterator<Item = &FieldPath> {
    comparison
        .changed_paths()
        .filter(|path| !NEVER_OWNED_SET.0.contains(*path))
}

/// [`NEVER_OWNED`] as a field set.
static NEVER_OWNED_SET: LazyLock<FieldSet> = LazyLock::new(|| {
    FieldSet(
        NEVER_OWNED
            .iter()
            .map(|p| p.iter().map(|s| s.to_string()).collect())
            .collect(),
    )
});

/// The manager name the server records when a write names no `fieldManager`: the User-Agent up
/// to its first `/`, printable characters only, cut after 128 bytes (`kubectl/v1.32.0 (linux)` →
/// `kubectl`).
///
/// ```
/// use autopilot_testkit::apply::manager_from_user_agent;
///
/// assert_eq!(manager_from_user_agent("kubectl/v1.32.0 (linux/amd64) kubernetes/abc"), "kubectl");
/// assert_eq!(manager_from_user_agent("kube-rs"), "kube-rs");
/// ```
pub fn manager_from_user_agent(user_agent: &str) -> String {
    let prefix = user_agent.split('/').next().unwrap_or_default();
    let mut manager = String::new();
    for c in prefix.chars().filter(|c| !c.is_control()) {
        // The server stops once it has more than 128 bytes.
        if manager.len() > 128 {
            break;
        }
        manager.push(c);
    }
    manager
}

/// Whether an API version belongs to a group the API server itself serves (whose types have
/// known list merge keys), as opposed to a custom resource's group.
pub fn is_builtin_api_version(api_version: &str) -> bool {
    let Some((group, _)) = api_version.split_once('/') else {
        return true;
    };
    const DOTTED: &[&str] = &[
        "admissionregistration.k8s.io",
        "apiextensions.k8s.io",
        "apiregistration.k8s.io",
        "authentication.k8s.io",
        "authorization.k8s.io",
        "certificates.k8s.io",
        "coordination.k8s.io",
        "discovery.k8s.io",
        "events.k8s.io",
        "flowcontrol.apiserver.k8s.io",
        "internal.apiserver.k8s.io",
        "networking.k8s.io",
        "node.k8s.io",
        "rbac.authorization.k8s.io",
        "resource.k8s.io",
        "scheduling.k8s.io",
        "storage.k8s.io",
        "storagemigration.k8s.io",
    ];
    !group.contains('.') || DOTTED.contains(&group)
}

fn shape<'a>(api_version: &str, kind: &'a str, schema: Option<&'a Value>) -> Shape<'a> {
    Shape {
        builtin: is_builtin_api_version(api_version),
        kind,
        schema,
    }
}

/// Applies a configuration as server-side apply does and returns the resulting object, with
/// `metadata.managedFields` updated. Lists of custom resources are atomic (except metadata's);
/// use [`apply_with_schema`] to honour a CRD's `x-kubernetes-list-type`s.
///
/// ```
/// use autopilot_testkit::apply::{apply, ApplyError, ApplyRequest};
/// use serde_json::json;
///
/// let config = json!({"apiVersion": "apps/v1", "kind": "Deployment",
///     "metadata": {"name": "web"}, "spec": {"replicas": 3}});
/// let request = |live, applied, manager, force| ApplyRequest { live, applied, manager, force,
///     subresource: None, now: "2024-01-01T00:00:00Z", api_version: "apps/v1", kind: "Deployment" };
/// let created = apply(request(None, &config, "ci", false)).unwrap();
/// assert_eq!(created["metadata"]["managedFields"][0]["fieldsV1"],
///     json!({"f:spec": {"f:replicas": {}}}));
///
/// let other = json!({"apiVersion": "apps/v1", "kind": "Deployment",
///     "metadata": {"name": "web"}, "spec": {"replicas": 5}});
/// let err = apply(request(Some(&created), &other, "hpa", false)).unwrap_err();
/// assert_eq!(err.to_string(), r#"Apply failed with 1 conflict: conflict with "ci": .spec.replicas"#);
/// let forced = apply(request(Some(&created), &other, "hpa", true)).unwrap();
/// assert_eq!(forced["spec"]["replicas"], 5);
/// ```
pub fn apply(req: ApplyRequest) -> Result<Value, ApplyError> {
    apply_with_schema(req, None)
}

/// [`apply`] for a custom resource whose CRD schema (`openAPIV3Schema`) declares list types.
pub fn apply_with_schema(req: ApplyRequest, schema: Option<&Value>) -> Result<Value, ApplyError> {
    let shape = shape(req.api_version, req.kind, schema);
    let Value::Object(applied_map) = req.applied else {
        return Err(ApplyError::NotAnObject {
            found: json_type(req.applied),
        });
    };
    if req
        .applied
        .pointer("/metadata/managedFields")
        .is_some_and(|m| !m.is_null())
    {
        return Err(ApplyError::ManagedFieldsNotNil);
    }
    if let Some(specified) = applied_map.get("apiVersion").and_then(Value::as_str)
        && specified != req.api_version
    {
        return Err(ApplyError::VersionMismatch {
            specified: specified.to_string(),
            expected: req.api_version.to_string(),
        });
    }
    let config = scope_to_subresource(req.applied, req.subresource);
    if let Some(message) = fieldset::missing_list_key(&config, &shape) {
        let gvk = match req.api_version.contains('/') {
            true => format!("{}, Kind={}", req.api_version, req.kind),
            false => format!("/{}, Kind={}", req.api_version, req.kind),
        };
        return Err(ApplyError::Typed { gvk, message });
    }
    let nothing = Value::Object(Map::new());
    let live = req.live.unwrap_or(&nothing);
    let mut entries = decode_entries(req.live);
    if req.live.is_some() && entries.is_empty() {
        let before = empty_like(live, shape.builtin);
        update_entries(
            &mut entries,
            &compare(Some(&before), Some(live), &shape),
            BEFORE_FIRST_APPLY,
            None,
            req.now,
            req.api_version,
        );
    }

    let position = entries
        .iter()
        .position(|e| e.is(req.manager, "Apply", req.api_version, req.subresource));
    let previous = position.map(|i| entries.remove(i));
    let last_set = previous
        .as_ref()
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let new_set = field_set(&config, &shape);

    // Drop what this manager applied last time and no longer does, unless someone owns it.
    let mut merged = merge(live, &config, &shape);
    let owned = entries
        .iter()
        .fold(new_set.clone(), |acc, e| acc.union(&e.fields))
        .with_named_parents();
    let stale = last_set
        .with_named_parents()
        .difference(&owned)
        .difference(&NEVER_OWNED_SET);
    for path in &stale.0 {
        remove_path(&mut merged, path);
    }

    let comparison = compare(Some(live), Some(&merged), &shape);
    let changed = comparison.changed();
    let mut conflicts: Vec<Conflict> = Vec::new();
    for entry in &entries {
        for path in &entry.fields.intersection(&changed).0 {
            conflicts.push(Conflict {
                manager: entry.manager.clone(),
                operation: entry.operation.clone(),
                api_version: entry.api_version.clone(),
                subresource: entry.subresource.clone(),
                field: display_path(path),
            });
        }
    }
    if !conflicts.is_empty() && !req.force {
        conflicts.sort_by(|a, b| (a.identifier(), &a.field).cmp(&(b.identifier(), &b.field)));
        return Err(ApplyError::Conflict { conflicts });
    }
    for entry in &mut entries {
        entry.fields = entry
            .fields
            .difference(&changed)
            .difference(&comparison.removed);
    }

    // A write that changes neither the object nor any ownership keeps the entry's time.
    let fields = new_set.difference(&NEVER_OWNED_SET);
    let time = match &previous {
        Some(previous) if *live == merged && previous.fields == fields => previous.time.clone(),
        _ => Some(req.now.to_string()),
    };
    entries.push(Entry {
        manager: req.manager.to_string(),
        operation: "Apply".into(),
        api_version: req.api_version.to_string(),
        subresource: req.subresource.map(str::to_string),
        time,
        fields,
    });
    encode_entries(&mut merged, entries);
    Ok(merged)
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The part of a configuration a subresource endpoint applies: only `.status` for `status`.
fn scope_to_subresource(applied: &Value, subresource: Option<&str>) -> Value {
    let mut config = applied.clone();
    if subresource == Some("status")
        && let Value::Object(map) = &mut config
    {
        map.retain(|k, _| matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status"));
        if let Some(Value::Object(metadata)) = map.get_mut("metadata") {
            metadata.retain(|k, _| k == "name" || k == "namespace");
        }
    }
    if let Some(metadata) = config.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
    }
    config
}

/// Records field ownership for an ordinary write (create, update or non-apply patch) by
/// `manager`: the fields that changed between `old` and `new` move to the manager's `Update`
/// entry for `api_version` (and `subresource`), which gets `now` as its time. `new`'s
/// `metadata.managedFields` is rewritten; a client may replace the entries by sending its own,
/// or clear them by sending `[{}]`. Call it with `new` as it will be stored: fields the
/// endpoint resets (`status` on the main resource when the status subresource is on, everything
/// but `status` on `/status`) already reset, so nobody is credited with them. List merge keys
/// are the built-in ones; use [`record_update_with_schema`] for a CRD's list types.
///
/// ```
/// use autopilot_testkit::apply::record_update;
/// use serde_json::json;
///
/// let old = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
/// let mut new = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "2"}});
/// record_update(Some(&old), &mut new, "editor", None, "2024-01-01T00:00:00Z", "v1");
/// let entry = &new["metadata"]["managedFields"][0];
/// assert_eq!(entry["manager"], "editor");
/// assert_eq!(entry["operation"], "Update");
/// assert_eq!(entry["fieldsV1"], json!({"f:data": {"f:a": {}}}));
/// ```
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: Option<&str>,
    now: &str,
    api_version: &str,
) {
    record_update_with_schema(old, new, manager, subresource, now, api_version, None);
}

/// [`record_update`] for a custom resource whose CRD schema declares list types.
pub fn record_update_with_schema(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: Option<&str>,
    now: &str,
    api_version: &str,
    schema: Option<&Value>,
) {
    let kind = new
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let shape = shape(api_version, &kind, schema);
    let sent = new.pointer("/metadata/managedFields").cloned();
    let old_entries = old
        .and_then(|o| o.pointer("/metadata/managedFields"))
        .and_then(Value::as_array);
    let empty = empty_like(new, shape.builtin);
    let comparison = compare(Some(old.unwrap_or(&empty)), Some(new), &shape);
    let keeps_entries = subresource.is_some()
        || !matches!(&sent, Some(Value::Array(items)) if !items.is_empty() && Some(items) != old_entries);
    if keeps_entries && let Some(old_entries) = old_entries.filter(|e| !e.is_empty()) {
        let taken: Vec<&FieldPath> = taken_by_update(&comparison).collect();
        let own = (manager, api_version, subresource);
        if let Some(entries) = steady::touch(old_entries, &comparison, &taken, own, now) {
            if let Some(metadata) = new.get_mut("metadata").and_then(Value::as_object_mut) {
                metadata.insert("managedFields".into(), Value::Array(entries));
            }
            return;
        }
    }
    let own = (manager, api_version, subresource);
    record_update_in_full(old, new, sent.as_ref(), &comparison, own, now);
}

/// The general bookkeeping of an Update: decode the entries, move the changed fields to the writer's
/// entry, encode them again.
fn record_update_in_full(
    old: Option<&Value>,
    new: &mut Value,
    sent: Option<&Value>,
    comparison: &Comparison,
    own: (&str, &str, Option<&str>),
    now: &str,
) {
    let (manager, api_version, subresource) = own;
    let mut entries = match sent {
        // Subresource writes cannot change managedFields.
        _ if subresource.is_some() => decode_entries(old),
        Some(Value::Array(items)) if items.len() == 1 && items[0] == Value::Object(Map::new()) => {
            Vec::new()
        }
        Some(Value::Array(items)) if !items.is_empty() => {
            let decoded = decode_entries(Some(new));
            if decoded.is_empty() {
                decode_entries(old)
            } else {
                decoded
            }
        }
        _ => decode_entries(old),
    };
    update_entries(
        &mut entries,
        comparison,
        manager,
        subresource,
        now,
        api_version,
    );
    encode_entries(new, entries);
}

/// The object a create is compared against: built-in types start with their top-level structs.
fn empty_like(new: &Value, builtin: bool) -> Value {
    let mut empty = Map::new();
    if builtin && let Some(map) = new.as_object() {
        for key in ["metadata", "spec", "status"] {
            if map.get(key).is_some_and(Value::is_object) {
                empty.insert(key.into(), Value::Object(Map::new()));
            }
        }
    }
    Value::Object(empty)
}

/// Moves the fields changed between `old` and `new` to `manager`'s `Update` entry.
#[allow(clippy::too_many_arguments)]
fn update_entries(
    entries: &mut Vec<Entry>,
    comparison: &Comparison,
    manager: &str,
    subresource: Option<&str>,
    now: &str,
    api_version: &str,
) {
    if !entries.is_empty() {
        let changed = comparison.changed();
        for entry in entries.iter_mut() {
            entry.fields = entry
                .fields
                .difference(&changed)
                .difference(&comparison.removed);
        }
    }
    let taken = FieldSet(taken_by_update(comparison).cloned().collect());
    if taken.is_empty() {
        return;
    }
    match entries
        .iter_mut()
        .find(|e| e.is(manager, "Update", api_version, subresource))
    {
        Some(entry) => {
            entry.fields = entry.fields.union(&taken);
            entry.time = Some(now.to_string());
        }
        None => entries.push(Entry {
            manager: manager.to_string(),
            operation: "Update".into(),
            api_version: api_version.to_string(),
            subresource: subresource.map(str::to_string),
            time: Some(now.to_string()),
            fields: taken,
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
