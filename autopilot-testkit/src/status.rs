//! Failures as the Kubernetes API reports them: a `kind: Status` body with an HTTP code and a reason.

use serde_json::{Value, json};

use crate::validation::{FieldError, invalid_message};

/// Field errors the server's own checks produce.
pub(crate) mod field {
    use serde_json::Value;

    use crate::validation::{FieldError, FieldErrorKind};

    /// `<field>: Required value[: detail]`.
    pub fn required(field: &str, detail: &str) -> FieldError {
        FieldError::new(field, FieldErrorKind::Required, None, detail)
    }

    /// `<field>: Invalid value: <value>: detail`.
    pub fn invalid(field: &str, value: &Value, detail: &str) -> FieldError {
        FieldError::new(field, FieldErrorKind::Invalid, Some(value), detail)
    }

    /// `<field>: Invalid value: <literal>: detail`, for a value Go prints as a typed literal
    /// (`[]string{"/x"}`, a struct, `map[string]string{...}`).
    pub fn invalid_literal(field: &str, literal: &str, detail: &str) -> FieldError {
        FieldError {
            field: field.to_string(),
            kind: FieldErrorKind::Invalid,
            message: format!("{}: {literal}: {detail}", FieldErrorKind::Invalid.as_str()),
        }
    }

    /// `<field>: Forbidden: detail`.
    pub fn forbidden(field: &str, detail: &str) -> FieldError {
        FieldError::new(field, FieldErrorKind::Forbidden, None, detail)
    }

    /// `<field>: Unsupported value: <value>: detail`.
    pub fn not_supported(field: &str, value: &Value, detail: &str) -> FieldError {
        FieldError::new(field, FieldErrorKind::NotSupported, Some(value), detail)
    }
}

/// The body of the request router's plain-text 404.
pub const PAGE_NOT_FOUND: &str = "404 page not found\n";

/// A request failure, rendered as a Kubernetes `Status` object.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `Status.reason`, e.g. `NotFound`.
    pub reason: &'static str,
    /// `Status.message`.
    pub message: String,
    /// `Status.details`, when the failure concerns a named object.
    pub details: Option<Value>,
    /// Seconds for the `Retry-After` header (429 responses).
    pub retry_after: Option<u64>,
}

/// Names of a resource used in messages: `configmaps`, `deployments.apps`, `Deployment.apps`.
pub trait Named {
    /// API group ("" for the core group).
    fn group(&self) -> &str;
    /// Plural resource name.
    fn plural(&self) -> &str;
    /// Kind.
    fn kind(&self) -> &str;
    /// `plural` or `plural.group`.
    fn qualified_plural(&self) -> String {
        qualify(self.plural(), self.group())
    }
    /// `Kind` or `Kind.group`.
    fn qualified_kind(&self) -> String {
        qualify(self.kind(), self.group())
    }
}

fn qualify(name: &str, group: &str) -> String {
    if group.is_empty() {
        name.to_string()
    } else {
        format!("{name}.{group}")
    }
}

fn details(resource: &impl Named, name: &str, kind: &str) -> Value {
    // `name` is left out when empty, as Go's `omitempty` does.
    let mut details = json!({ "kind": kind });
    if !name.is_empty() {
        details["name"] = json!(name);
    }
    if !resource.group().is_empty() {
        details["group"] = json!(resource.group());
    }
    details
}

impl ApiError {
    /// A failure with the given code, reason and message.
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    /// Attaches `Status.details`.
    #[must_use]
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 404: the named object does not exist.
    pub fn not_found(resource: &impl Named, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", resource.qualified_plural()),
        )
        .with_details(details(resource, name, resource.plural()))
    }

    /// 404: the path names no resource this server knows.
    pub fn unknown_resource() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({}))
    }

    /// 404 for a path no resource serves: the real server's request router answers it in plain text
    /// (`404 page not found`), not with a `Status`.
    pub fn page_not_found() -> Self {
        Self::new(404, "NotFound", PAGE_NOT_FOUND)
    }

    /// Whether this is [`ApiError::page_not_found`].
    pub fn is_page_not_found(&self) -> bool {
        self.code == 404 && self.message == PAGE_NOT_FOUND && self.details.is_none()
    }

    /// 409: an object with that name already exists.
    pub fn already_exists(resource: &impl Named, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", resource.qualified_plural()),
        )
        .with_details(details(resource, name, resource.plural()))
    }

    /// 409: the write was based on a stale resourceVersion (or a failed precondition).
    pub fn conflict(resource: &impl Named, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                resource.qualified_plural()
            ),
        )
        .with_details(details(resource, name, resource.plural()))
    }

    /// 409 for a stale resourceVersion on update.
    pub fn stale(resource: &impl Named, name: &str) -> Self {
        Self::conflict(
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422: the object failed validation; the message lists every field error as the server does.
    pub fn invalid(resource: &impl Named, name: &str, errors: Vec<FieldError>) -> Self {
        let mut details = details(resource, name, resource.kind());
        details["causes"] = errors
            .iter()
            .map(|e| json!({ "reason": e.kind.reason(), "message": e.message, "field": e.field }))
            .collect();
        Self::new(
            422,
            "Invalid",
            invalid_message(resource.kind(), resource.group(), name, &errors),
        )
        .with_details(details)
    }

    /// 400: the request itself is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 403: the operation is not allowed on this object.
    pub fn forbidden(resource: &impl Named, name: &str, why: &str) -> Self {
        Self::new(
            403,
            "Forbidden",
            format!(
                "{} \"{name}\" is forbidden: {why}",
                resource.qualified_plural()
            ),
        )
        .with_details(details(resource, name, resource.plural()))
    }

    /// 410 `Expired`: the resourceVersion is older than the kept history.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 405: the verb is not supported on this path.
    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
        .with_details(json!({}))
    }

    /// 415: the request body's media type is not accepted here.
    pub fn unsupported_media_type(content_type: &str, accepted: &[&str]) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
        .with_details(json!({ "causes": [{ "reason": "UnexpectedHeader", "message": content_type, "field": "Content-Type" }] }))
    }

    /// 406: none of the accepted response media types can be produced.
    pub fn not_acceptable(accept: &str) -> Self {
        Self::new(
            406,
            "NotAcceptable",
            format!(
                "only the following media types are accepted: application/json, application/yaml (requested {accept})"
            ),
        )
    }

    /// 413: the body exceeds the server's request size limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        )
    }

    /// 429: the server asks the client to back off.
    pub fn too_many_requests() -> Self {
        let mut error = Self::new(
            429,
            "TooManyRequests",
            "Too many requests, please try again later.",
        )
        .with_details(json!({ "retryAfterSeconds": 1 }));
        error.retry_after = Some(1);
        error
    }

    /// 500: an internal error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
        .with_details(json!({ "causes": [{ "message": "internal error" }] }))
    }

    /// The `Status` object for this failure.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

/// The `Status` a successful delete returns for resources that do not return the deleted object.
pub fn success(resource: &impl Named, name: &str, uid: &str) -> Value {
    let mut details = details(resource, name, resource.plural());
    details["uid"] = json!(uid);
    json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Deployments;
    impl Named for Deployments {
        fn group(&self) -> &str {
            "apps"
        }
        fn plural(&self) -> &str {
            "deployments"
        }
        fn kind(&self) -> &str {
            "Deployment"
        }
    }

    #[test]
    fn invalid_lists_every_cause_in_the_message() {
        let error = ApiError::invalid(
            &Deployments,
            "web",
            vec![
                field::required("spec.selector", ""),
                field::invalid(
                    "spec.replicas",
                    &json!(-1),
                    "must be greater than or equal to 0",
                ),
            ],
        );
        assert_eq!(error.code, 422);
        assert_eq!(
            error.message,
            "Deployment.apps \"web\" is invalid: [spec.selector: Required value, spec.replicas: Invalid value: -1: must be greater than or equal to 0]"
        );
        let status = error.to_status();
        assert_eq!(status["details"]["causes"][1]["field"], "spec.replicas");
        assert_eq!(status["details"]["group"], "apps");
    }

    #[test]
    fn not_found_names_the_qualified_resource() {
        let status = ApiError::not_found(&Deployments, "web").to_status();
        assert_eq!(status["message"], "deployments.apps \"web\" not found");
        assert_eq!(status["code"], 404);
        assert_eq!(status["details"]["kind"], "deployments");
    }
}
