//! Typed mesh resources that keep every field they do not model.
//!
//! Each struct names the fields routing needs and collects the rest in an `extra` map (via
//! `#[serde(flatten)]`), so reading an object and writing it back never drops what other tools or users
//! set. The generated CRD schemas mark those levels with `x-kubernetes-preserve-unknown-fields: true`, so
//! an API server using our manifests does not prune them either.

use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

pub mod gateway;
pub mod istio;
pub mod smi;

/// Fields of an object that the typed model does not name, kept verbatim on round-trips.
pub type Extra = BTreeMap<String, serde_json::Value>;

/// An object whose content is kept as-is and never interpreted (for example a resource's `status`).
///
/// Its schema is `type: object` with `x-kubernetes-preserve-unknown-fields: true`.
///
/// ```
/// use autopilot_mesh::resources::Opaque;
///
/// let status: Opaque = serde_json::from_str(r#"{"parents":[]}"#).unwrap();
/// assert_eq!(serde_json::to_string(&status).unwrap(), r#"{"parents":[]}"#);
/// ```
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(transparent)]
pub struct Opaque(pub Extra);

impl JsonSchema for Opaque {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Opaque".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
        })
    }
}
