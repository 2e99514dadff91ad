//! Content negotiation: which representation of objects a client asked for in `Accept` — the objects
//! themselves, a `meta.k8s.io` `Table` (server-side printing, as `kubectl get` asks) or
//! `PartialObjectMetadata` (kube-runtime's metadata watchers).

use axum::http::{HeaderMap, HeaderValue, header};
use serde_json::{Value, json};

use super::Query;
use crate::registry::ResourceType;
use crate::status::ApiError;
use crate::table::{IncludeObject, PrinterColumn, render_builtin_table, render_table};

/// The representation of objects in a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    /// The objects as stored.
    Object,
    /// A `Table` with the kind's printer columns.
    Table(IncludeObject),
    /// Only metadata: `PartialObjectMetadata` / `PartialObjectMetadataList`.
    Metadata,
}

fn parameters(item: &str) -> (String, Vec<(String, String)>) {
    let mut parts = item.split(';');
    let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let params = parts
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    (media, params)
}

/// The first representation in `Accept` this server can produce; JSON only (protobuf is never chosen),
/// 406 when nothing acceptable remains.
pub fn negotiate(headers: &HeaderMap, query: &Query) -> Result<Representation, ApiError> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Ok(Representation::Object);
    };
    if accept.trim().is_empty() {
        return Ok(Representation::Object);
    }
    for item in accept.split(',') {
        let (media, params) = parameters(item);
        if !matches!(media.as_str(), "application/json" | "application/*" | "*/*") {
            continue;
        }
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        match (param("as"), param("g"), param("v")) {
            (None, _, _) => return Ok(Representation::Object),
            (Some("Table"), Some("meta.k8s.io"), Some("v1" | "v1beta1")) => {
                let include = query.get("includeObject").map_or("", String::as_str);
                let include = IncludeObject::from_query(include).ok_or_else(|| {
                    ApiError::bad_request(format!("unrecognized includeObject value: {include:?}"))
                })?;
                return Ok(Representation::Table(include));
            }
            (
                Some("PartialObjectMetadata" | "PartialObjectMetadataList"),
                Some("meta.k8s.io"),
                Some("v1" | "v1beta1"),
            ) => return Ok(Representation::Metadata),
            _ => {}
        }
    }
    Err(ApiError::not_acceptable(accept))
}

impl Representation {
    /// The `Content-Type` of a response in this representation (`list` for collections).
    pub fn content_type(self, list: bool) -> HeaderValue {
        HeaderValue::from_static(match (self, list) {
            (Self::Object, _) => "application/json",
            (Self::Table(_), _) => "application/json;as=Table;v=v1;g=meta.k8s.io",
            (Self::Metadata, false) => {
                "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io"
            }
            (Self::Metadata, true) => {
                "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"
            }
        })
    }
}

/// An object's metadata as a `PartialObjectMetadata`.
pub fn partial_metadata(object: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// A list of objects' metadata as a `PartialObjectMetadataList`.
pub fn partial_metadata_list(objects: &[&Value], list_meta: Value) -> Value {
    json!({
        "kind": "PartialObjectMetadataList",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "items": objects.iter().map(|o| partial_metadata(o)).collect::<Vec<_>>(),
    })
}

/// Objects of `resource` as a `Table`: a CRD's printer columns, the server's columns for common built-ins,
/// `Name` and `Age` otherwise.
pub fn table(
    resource: &ResourceType,
    objects: &[&Value],
    include: IncludeObject,
    list_meta: Value,
) -> Value {
    if resource.custom {
        let version = json!({ "additionalPrinterColumns": resource.printer_columns });
        return render_table(
            objects,
            &PrinterColumn::from_crd_version(&version),
            include,
            list_meta,
        );
    }
    render_builtin_table(
        objects,
        &resource.api_version(),
        &resource.kind,
        include,
        list_meta.clone(),
    )
    .unwrap_or_else(|| render_table(objects, &PrinterColumn::defaults(), include, list_meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> Result<Representation, ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_str(value).unwrap_or(HeaderValue::from_static("")),
        );
        negotiate(&headers, &Query::new())
    }

    #[test]
    fn kubectl_get_asks_for_tables_first() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(
            accept(kubectl).ok(),
            Some(Representation::Table(IncludeObject::Metadata))
        );
    }

    #[test]
    fn protobuf_falls_back_to_json_and_alone_is_not_acceptable() {
        let both = "application/vnd.kubernetes.protobuf,application/json";
        assert_eq!(accept(both).ok(), Some(Representation::Object));
        assert_eq!(
            accept("application/vnd.kubernetes.protobuf")
                .map_err(|e| e.code)
                .err(),
            Some(406)
        );
        let metadata = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
        assert_eq!(accept(metadata).ok(), Some(Representation::Metadata));
    }
}
