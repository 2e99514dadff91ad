//! Label and field selectors as the Kubernetes API server parses and evaluates them.
//!
//! Label selectors follow apimachinery's grammar: comma-separated requirements (all must hold),
//! each `key`, `!key`, `key=value`, `key==value`, `key!=value`, `key in (a,b)`, `key notin (a,b)`,
//! `key>1` or `key<1`. Keys and values are validated like the real server does and the error
//! text matches its wording.
//!
//! Field selectors are comma-separated `path=value`, `path==value` or `path!=value` terms, where
//! `\`, `,` and `=` in values are escaped with a backslash. Which paths a resource supports is the
//! caller's decision (see [`FieldSelector::fields`]); a path that is absent from the object reads
//! as the empty string, as the server's field sets do.

mod field;
mod label;

pub use field::{FieldSelector, crd_field_labels, escape_field_value, supported_field_labels};
pub use label::LabelSelector;

/// A selector could not be parsed; the message is the one the API server returns (as a 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The `labelSelector` expression is malformed or names an invalid key or value.
    #[error("{message}")]
    Label {
        /// The API server's wording, e.g. `unable to parse requirement: found '', expected: identifier`.
        message: String,
    },
    /// The `fieldSelector` expression is malformed.
    #[error("{message}")]
    Field {
        /// The API server's wording, e.g. `invalid selector: 'a'; can't understand 'a'`.
        message: String,
    },
}
