//! Which objects a list, watch or deletecollection addresses: `labelSelector` and `fieldSelector`.

use serde_json::Value;

use crate::registry::ResourceType;
use crate::selector::{FieldSelector, LabelSelector, supported_field_labels};
use crate::status::ApiError;

/// Label and field selectors of one request.
#[derive(Debug, Default)]
pub struct Filter {
    labels: Option<LabelSelector>,
    fields: Option<FieldSelector>,
}

impl Filter {
    /// Parses the selectors of a request on `resource`; malformed or unsupported selectors are 400s with
    /// the server's wording.
    pub fn parse(
        resource: &ResourceType,
        labels: Option<&str>,
        fields: Option<&str>,
    ) -> Result<Self, ApiError> {
        let labels = labels
            .filter(|s| !s.is_empty())
            .map(LabelSelector::parse)
            .transpose()
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let fields = match fields.filter(|s| !s.is_empty()) {
            None => None,
            Some(expr) => {
                let selector =
                    FieldSelector::parse(expr).map_err(|e| ApiError::bad_request(e.to_string()))?;
                let mut supported: Vec<&str> = if resource.custom {
                    let mut meta = vec!["metadata.name"];
                    if resource.namespaced {
                        meta.push("metadata.namespace");
                    }
                    meta
                } else {
                    supported_field_labels(&resource.api_version(), &resource.kind).to_vec()
                };
                supported.extend(resource.selectable_fields.iter().map(String::as_str));
                if let Some(field) = selector.unsupported(&supported) {
                    // Built-in kinds without field labels of their own answer with apimachinery's
                    // default conversion; the others (and custom resources) with their own words.
                    let metadata_only = supported
                        .iter()
                        .all(|s| matches!(*s, "metadata.name" | "metadata.namespace"));
                    return Err(ApiError::bad_request(
                        if metadata_only && !resource.custom {
                            format!(
                                "\"{field}\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
                            )
                        } else {
                            format!("field label not supported: {field}")
                        },
                    ));
                }
                Some(selector)
            }
        };
        Ok(Self { labels, fields })
    }

    /// Whether the filter lets every object through.
    pub fn is_everything(&self) -> bool {
        self.labels.is_none() && self.fields.is_none()
    }

    /// Whether `object` passes both selectors.
    pub fn matches(&self, object: &Value) -> bool {
        self.labels
            .as_ref()
            .is_none_or(|l| l.matches_object(object))
            && self.fields.as_ref().is_none_or(|f| f.matches(object))
    }
}
