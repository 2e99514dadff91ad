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

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::validation::{FieldError, FieldErrorKind, aggregate_message};

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

fn label_error(message: impl Into<String>) -> SelectorError {
    SelectorError::Label {
        message: message.into(),
    }
}

/// How one label requirement compares the label's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    In,
    NotIn,
    Equals,
    DoubleEquals,
    NotEquals,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

/// One requirement of a label selector: a key, an operator and (for most operators) values.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    operator: Operator,
    values: BTreeSet<String>,
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => {
                value.is_some_and(|v| self.values.contains(v))
            }
            Operator::NotIn | Operator::NotEquals => value.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(actual) = value.and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                let mut values = self.values.iter();
                let (Some(bound), None) = (values.next(), values.next()) else {
                    return false;
                };
                let Ok(bound) = bound.parse::<i64>() else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    actual > bound
                } else {
                    actual < bound
                }
            }
        }
    }
}

/// A parsed label selector (the `labelSelector` query parameter).
///
/// ```
/// use std::collections::BTreeMap;
/// use autopilot_testkit::selector::LabelSelector;
///
/// let selector = LabelSelector::parse("app=web,tier in (front,edge),!canary").unwrap();
/// let labels = BTreeMap::from([
///     ("app".to_string(), "web".to_string()),
///     ("tier".to_string(), "edge".to_string()),
/// ]);
/// assert!(selector.matches(&labels));
/// assert!(LabelSelector::parse("app in web").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parses a selector expression; the empty string selects everything.
    pub fn parse(expr: &str) -> Result<Self, SelectorError> {
        let tokens = lex(expr);
        let mut parser = Parser { tokens, pos: 0 };
        let mut requirements = parser.parse()?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self { requirements })
    }

    /// Whether the selector selects everything (no requirements).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether every requirement holds for these labels.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    End,
    Identifier(String),
    In,
    NotIn,
    OpenPar,
    ClosedPar,
    Comma,
    Not,
    Equals,
    DoubleEquals,
    NotEquals,
    GreaterThan,
    LessThan,
}

impl Token {
    fn literal(&self) -> &str {
        match self {
            Token::End => "",
            Token::Identifier(s) => s,
            Token::In => "in",
            Token::NotIn => "notin",
            Token::OpenPar => "(",
            Token::ClosedPar => ")",
            Token::Comma => ",",
            Token::Not => "!",
            Token::Equals => "=",
            Token::DoubleEquals => "==",
            Token::NotEquals => "!=",
            Token::GreaterThan => ">",
            Token::LessThan => "<",
        }
    }

    /// In value position the keywords `in` and `notin` are plain identifiers.
    fn as_value(&self) -> Token {
        match self {
            Token::In | Token::NotIn => Token::Identifier(self.literal().to_string()),
            other => other.clone(),
        }
    }
}

fn is_special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn symbol_token(s: &str) -> Option<Token> {
    Some(match s {
        ")" => Token::ClosedPar,
        "," => Token::Comma,
        "!" => Token::Not,
        "==" => Token::DoubleEquals,
        "=" => Token::Equals,
        ">" => Token::GreaterThan,
        "<" => Token::LessThan,
        "!=" => Token::NotEquals,
        "(" => Token::OpenPar,
        _ => return None,
    })
}

/// Splits the expression into tokens; special symbols are matched longest-first.
fn lex(expr: &str) -> Vec<Token> {
    let bytes = expr.as_bytes();
    let mut tokens = Vec::new();
    let mut pos = 0;
    loop {
        while pos < bytes.len() && is_space(bytes[pos]) {
            pos += 1;
        }
        if pos >= bytes.len() {
            tokens.push(Token::End);
            return tokens;
        }
        let start = pos;
        if is_special(bytes[pos]) {
            // `==` and `!=` are the only two-character symbols; every single one is a token.
            let two = expr.get(start..start + 2);
            let (token, len) = match two.and_then(symbol_token) {
                Some(token) => (token, 2),
                None => (
                    symbol_token(&expr[start..start + 1]).unwrap_or(Token::End),
                    1,
                ),
            };
            pos += len;
            tokens.push(token);
        } else {
            while pos < bytes.len() && !is_special(bytes[pos]) && !is_space(bytes[pos]) {
                pos += 1;
            }
            tokens.push(match &expr[start..pos] {
                "in" => Token::In,
                "notin" => Token::NotIn,
                word => Token::Identifier(word.to_string()),
            });
        }
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn lookahead(&self) -> Token {
        self.tokens.get(self.pos).unwrap_or(&Token::End).as_value()
    }

    fn consume_raw(&mut self) -> Token {
        let token = self.tokens.get(self.pos).cloned().unwrap_or(Token::End);
        self.pos += 1;
        token
    }

    fn consume(&mut self) -> Token {
        self.consume_raw().as_value()
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, SelectorError> {
        let mut requirements = Vec::new();
        loop {
            match self.lookahead() {
                Token::Identifier(_) | Token::Not => {
                    let requirement = self
                        .parse_requirement()
                        .map_err(|e| label_error(format!("unable to parse requirement: {e}")))?;
                    requirements.push(requirement);
                    match self.consume() {
                        Token::End => return Ok(requirements),
                        Token::Comma => {
                            let next = self.lookahead();
                            if !matches!(next, Token::Identifier(_) | Token::Not) {
                                return Err(label_error(format!(
                                    "found '{}', expected: identifier after ','",
                                    next.literal()
                                )));
                            }
                        }
                        other => {
                            return Err(label_error(format!(
                                "found '{}', expected: ',' or 'end of string'",
                                other.literal()
                            )));
                        }
                    }
                }
                Token::End => return Ok(requirements),
                other => {
                    return Err(label_error(format!(
                        "found '{}', expected: !, identifier, or 'end of string'",
                        other.literal()
                    )));
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, String> {
        let mut token = self.consume();
        let negated = token == Token::Not;
        if negated {
            token = self.consume();
        }
        let Token::Identifier(key) = token else {
            return Err(format!("found '{}', expected: identifier", token.literal()));
        };
        if let Some(detail) = qualified_name_errors(&key) {
            return Err(FieldError::new(
                "<nil>",
                FieldErrorKind::Invalid,
                Some(&Value::String(key)),
                &detail,
            )
            .to_string());
        }
        let at_end = matches!(self.lookahead(), Token::End | Token::Comma);
        if negated || at_end {
            let operator = if negated {
                Operator::DoesNotExist
            } else {
                Operator::Exists
            };
            return Ok(Requirement {
                key,
                operator,
                values: BTreeSet::new(),
            });
        }
        let operator = match self.consume_raw() {
            Token::In => Operator::In,
            Token::NotIn => Operator::NotIn,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::NotEquals => Operator::NotEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            other => {
                return Err(format!(
                    "found '{}', expected: '=', '!=', '==', 'in', notin'",
                    other.literal()
                ));
            }
        };
        let values = match operator {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        validate_requirement(&key, operator, &values)?;
        Ok(Requirement {
            key,
            operator,
            values,
        })
    }

    fn parse_values(&mut self) -> Result<BTreeSet<String>, String> {
        let open = self.consume();
        if open != Token::OpenPar {
            return Err(format!("found '{}' expected: '('", open.literal()));
        }
        let next = self.lookahead();
        match next {
            Token::Identifier(_) | Token::Comma => {
                let values = self.parse_identifiers()?;
                if self.consume() != Token::ClosedPar {
                    return Err(format!("found '{}', expected: ')'", next.literal()));
                }
                Ok(values)
            }
            Token::ClosedPar => {
                self.consume();
                Ok(BTreeSet::from([String::new()]))
            }
            other => Err(format!(
                "found '{}', expected: ',', ')' or identifier",
                other.literal()
            )),
        }
    }

    fn parse_identifiers(&mut self) -> Result<BTreeSet<String>, String> {
        let mut values = BTreeSet::new();
        loop {
            match self.consume() {
                Token::Identifier(value) => {
                    values.insert(value);
                    match self.lookahead() {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(values),
                        other => {
                            return Err(format!(
                                "found '{}', expected: ',' or ')'",
                                other.literal()
                            ));
                        }
                    }
                }
                Token::Comma => {
                    // Empty entries (`(,a)`, `(a,)`, `(a,,b)`) stand for the empty value.
                    if values.is_empty() {
                        values.insert(String::new());
                    }
                    match self.lookahead() {
                        Token::ClosedPar => {
                            values.insert(String::new());
                            return Ok(values);
                        }
                        Token::Comma => {
                            self.consume();
                            values.insert(String::new());
                        }
                        _ => {}
                    }
                }
                other => {
                    return Err(format!(
                        "found '{}', expected: ',', or identifier",
                        other.literal()
                    ));
                }
            }
        }
    }

    fn parse_exact_value(&mut self) -> Result<BTreeSet<String>, String> {
        if matches!(self.lookahead(), Token::End | Token::Comma) {
            return Ok(BTreeSet::from([String::new()]));
        }
        match self.consume() {
            Token::Identifier(value) => Ok(BTreeSet::from([value])),
            other => Err(format!("found '{}', expected: identifier", other.literal())),
        }
    }
}

/// The checks apimachinery's `NewRequirement` makes on the values of a parsed requirement.
fn validate_requirement(
    key: &str,
    operator: Operator,
    values: &BTreeSet<String>,
) -> Result<(), String> {
    let mut errors = Vec::new();
    if matches!(operator, Operator::GreaterThan | Operator::LessThan) {
        for (i, value) in values.iter().enumerate() {
            if value.parse::<i64>().is_err() {
                errors.push(FieldError::new(
                    &format!("values[{i}]"),
                    FieldErrorKind::Invalid,
                    Some(&Value::String(value.clone())),
                    "for 'Gt', 'Lt' operators, the value must be an integer",
                ));
            }
        }
    }
    for (i, value) in values.iter().enumerate() {
        if let Some(detail) = label_value_errors(value) {
            errors.push(FieldError::new(
                &format!("values[{i}][{key}]"),
                FieldErrorKind::Invalid,
                Some(&Value::String(value.clone())),
                &detail,
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(aggregate_message(&errors))
    }
}

const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

/// apimachinery's wording for a failed pattern check, with examples of valid input.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let examples: String = examples
        .iter()
        .map(|e| format!("'{e}', "))
        .collect::<Vec<_>>()
        .join(" or ");
    format!("{msg} (e.g. {examples}regex used for validation is '{fmt}')")
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    let edge = |c: &u8| c.is_ascii_alphanumeric();
    !b.is_empty()
        && b.first().is_some_and(edge)
        && b.last().is_some_and(edge)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*`
fn is_dns1123_subdomain(s: &str) -> bool {
    let lower = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    s.split('.').all(|label| {
        let b = label.as_bytes();
        !b.is_empty()
            && b.first().is_some_and(lower)
            && b.last().is_some_and(lower)
            && b.iter().all(|c| lower(c) || *c == b'-')
    })
}

/// The problems apimachinery's `IsQualifiedName` reports, joined by `; `, or `None` when valid.
pub(crate) fn qualified_name_errors(value: &str) -> Option<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                if prefix.len() > 253 {
                    errs.push("prefix part must be no more than 253 characters".to_string());
                }
                if !is_dns1123_subdomain(prefix) {
                    errs.push(format!(
                        "prefix part {}",
                        regex_error(
                            DNS1123_SUBDOMAIN_MSG,
                            DNS1123_SUBDOMAIN_FMT,
                            &["example.com"]
                        )
                    ));
                }
            }
            *name
        }
        _ => {
            return Some(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_MSG,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            ));
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 characters".to_string());
    }
    if !is_qualified_name_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_MSG,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    (!errs.is_empty()).then(|| errs.join("; "))
}

/// The problems apimachinery's `IsValidLabelValue` reports, joined by `; `, or `None` when valid.
pub(crate) fn label_value_errors(value: &str) -> Option<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !value.is_empty() && !is_qualified_name_part(value) {
        errs.push(regex_error(
            LABEL_VALUE_MSG,
            &format!("({QUALIFIED_NAME_FMT})?"),
            &["MyValue", "my_value", "12345"],
        ));
    }
    (!errs.is_empty()).then(|| errs.join("; "))
}

/// One `field op value` term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldTerm {
    field: String,
    value: String,
    equal: bool,
}

/// A parsed field selector (the `fieldSelector` query parameter).
///
/// ```
/// use autopilot_testkit::selector::FieldSelector;
/// use serde_json::json;
///
/// let selector = FieldSelector::parse("metadata.name=web,status.phase!=Failed").unwrap();
/// assert_eq!(selector.fields(), vec!["metadata.name", "status.phase"]);
/// let pod = json!({"metadata": {"name": "web"}, "status": {"phase": "Running"}});
/// assert!(selector.matches(&pod));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

impl FieldSelector {
    /// Parses a selector expression; the empty string selects everything.
    pub fn parse(expr: &str) -> Result<Self, SelectorError> {
        let mut parts = split_terms(expr);
        parts.sort_unstable();
        let mut terms = Vec::new();
        for part in parts.into_iter().filter(|p| !p.is_empty()) {
            let Some((field, op, rhs)) = split_term(part) else {
                return Err(SelectorError::Field {
                    message: format!("invalid selector: '{expr}'; can't understand '{part}'"),
                });
            };
            terms.push(FieldTerm {
                field: field.to_string(),
                value: unescape_value(rhs)?,
                equal: op != "!=",
            });
        }
        Ok(Self { terms })
    }

    /// Whether the selector selects everything (no terms).
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The field paths the selector names, in term order (sorted), so the caller can reject
    /// paths its resource does not support (`field label not supported: <path>`).
    pub fn fields(&self) -> Vec<&str> {
        self.terms.iter().map(|t| t.field.as_str()).collect()
    }

    /// The value a term requires (`=`/`==`) or excludes (`!=`) for a field path, if named.
    pub fn required_value(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == field && t.equal)
            .map(|t| t.value.as_str())
    }

    /// Whether every term holds for the object; absent fields read as `""`, scalars as text.
    pub fn matches(&self, object: &Value) -> bool {
        self.terms
            .iter()
            .all(|t| (field_value(object, &t.field) == t.value) == t.equal)
    }
}

/// The text of a dotted field path in an object, as the server's field sets hold it.
fn field_value(object: &Value, path: &str) -> String {
    let found = path
        .split('.')
        .try_fold(object, |value, segment| value.get(segment));
    match found {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// Splits on commas not preceded by a backslash escape.
fn split_terms(expr: &str) -> Vec<&str> {
    if expr.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in expr.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push(&expr[start..i]);
            start = i + 1;
        }
    }
    terms.push(&expr[start..]);
    terms
}

/// Splits a term at its first operator, trying `!=`, `==` then `=` at each position.
fn split_term(term: &str) -> Option<(&str, &str, &str)> {
    term.char_indices().find_map(|(i, _)| {
        ["!=", "==", "="]
            .into_iter()
            .find(|op| term[i..].starts_with(op))
            .map(|op| (&term[..i], op, &term[i + op.len()..]))
    })
}

fn unescape_value(value: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(value.len());
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(SelectorError::Field {
                    message: format!("invalid field selector: invalid escape sequence: \\{c}"),
                });
            }
            out.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if matches!(c, ',' | '=') {
            // Go prints the rune as its code point number.
            return Err(SelectorError::Field {
                message: format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                ),
            });
        } else {
            out.push(c);
        }
    }
    if escaped {
        return Err(SelectorError::Field {
            message: "invalid field selector: invalid escape sequence: \\".to_string(),
        });
    }
    Ok(out)
}

/// Escapes `\`, `,` and `=` so a value can be used in a field selector term.
pub fn escape_field_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn selects(expr: &str, pairs: &[(&str, &str)]) -> bool {
        LabelSelector::parse(expr).unwrap().matches(&labels(pairs))
    }

    fn label_err(expr: &str) -> String {
        LabelSelector::parse(expr).unwrap_err().to_string()
    }

    #[test]
    fn empty_selector_selects_everything() {
        assert!(LabelSelector::parse("").unwrap().is_empty());
        assert!(selects("", &[]));
        assert!(selects("  ", &[("a", "b")]));
    }

    #[test]
    fn equality_operators() {
        for expr in ["app=web", "app==web", " app = web "] {
            assert!(selects(expr, &[("app", "web")]), "{expr}");
            assert!(!selects(expr, &[("app", "db")]), "{expr}");
            assert!(!selects(expr, &[]), "{expr}");
        }
        assert!(selects("app!=web", &[("app", "db")]));
        assert!(
            selects("app!=web", &[]),
            "!= matches when the label is absent"
        );
        assert!(!selects("app!=web", &[("app", "web")]));
    }

    #[test]
    fn empty_exact_value_means_empty_string() {
        assert!(selects("app=", &[("app", "")]));
        assert!(!selects("app=", &[("app", "x")]));
        assert!(!selects("app=,b", &[("b", "")]));
    }

    #[test]
    fn set_operators() {
        assert!(selects("env in (prod, staging)", &[("env", "staging")]));
        assert!(!selects("env in (prod,staging)", &[("env", "dev")]));
        assert!(!selects("env in (prod)", &[]));
        assert!(selects("env notin (prod)", &[("env", "dev")]));
        assert!(selects("env notin (prod)", &[]));
        assert!(!selects("env notin (prod,dev)", &[("env", "dev")]));
        // Keywords are plain values inside the parentheses.
        assert!(selects("x in (in,notin)", &[("x", "notin")]));
        // Empty entries stand for the empty value.
        assert!(selects("x in (a,,b)", &[("x", "")]));
        assert!(selects("x in ()", &[("x", "")]));
        assert!(selects("x in (,a)", &[("x", "")]));
        assert!(selects("x in (a,)", &[("x", "")]));
    }

    #[test]
    fn existence_operators() {
        assert!(selects("canary", &[("canary", "")]));
        assert!(!selects("canary", &[]));
        assert!(selects("!canary", &[("app", "x")]));
        assert!(!selects("!canary", &[("canary", "true")]));
        assert!(selects("a,!b", &[("a", "1")]));
    }

    #[test]
    fn requirements_are_anded() {
        let expr = "app=web,tier in (front),!legacy,version";
        assert!(selects(
            expr,
            &[("app", "web"), ("tier", "front"), ("version", "2")]
        ));
        assert!(!selects(expr, &[("app", "web"), ("tier", "front")]));
        assert!(!selects(
            expr,
            &[
                ("app", "web"),
                ("tier", "front"),
                ("version", "2"),
                ("legacy", "")
            ]
        ));
    }

    #[test]
    fn numeric_comparisons() {
        assert!(selects("replicas>2", &[("replicas", "3")]));
        assert!(!selects("replicas>2", &[("replicas", "2")]));
        assert!(selects("replicas<2", &[("replicas", "1")]));
        assert!(!selects("replicas<2", &[("replicas", "x")]));
        assert!(!selects("replicas<2", &[]));
        assert_eq!(
            label_err("replicas>x"),
            r#"unable to parse requirement: values[0]: Invalid value: "x": for 'Gt', 'Lt' operators, the value must be an integer"#
        );
    }

    #[test]
    fn prefixed_keys() {
        assert!(selects(
            "app.kubernetes.io/name=web",
            &[("app.kubernetes.io/name", "web")]
        ));
    }

    #[test]
    fn syntax_errors_use_server_wording() {
        assert_eq!(
            label_err("app in web"),
            "unable to parse requirement: found 'web' expected: '('"
        );
        assert_eq!(
            label_err("app in (a"),
            "unable to parse requirement: found '', expected: ',' or ')'"
        );
        assert_eq!(label_err("a,"), "found '', expected: identifier after ','");
        assert_eq!(
            label_err("a b"),
            "unable to parse requirement: found 'b', expected: '=', '!=', '==', 'in', notin'"
        );
        assert_eq!(
            label_err("=a"),
            "found '=', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(
            label_err("!a=b"),
            "found '=', expected: ',' or 'end of string'"
        );
        assert_eq!(
            label_err("!"),
            "unable to parse requirement: found '', expected: identifier"
        );
        assert_eq!(
            label_err("a=b c"),
            "found 'c', expected: ',' or 'end of string'"
        );
        assert_eq!(
            label_err("a=(b)"),
            "unable to parse requirement: found '(', expected: identifier"
        );
        assert_eq!(
            label_err("a in (b c)"),
            "unable to parse requirement: found 'c', expected: ',' or ')'"
        );
    }

    #[test]
    fn invalid_keys_and_values_are_rejected() {
        let name_regex = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
        assert_eq!(
            label_err("-app=x"),
            format!(r#"unable to parse requirement: <nil>: Invalid value: "-app": {name_regex}"#)
        );
        assert!(
            label_err("Example.com/app=x").contains("prefix part a lowercase RFC 1123 subdomain")
        );
        assert!(label_err("/app").contains("prefix part must be non-empty"));
        assert!(label_err("a/b/c").contains("a qualified name must consist of"));
        assert!(
            label_err(&"k".repeat(64)).contains("name part must be no more than 63 characters")
        );
        assert_eq!(
            label_err("app=-x"),
            r#"unable to parse requirement: values[0][app]: Invalid value: "-x": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"#
        );
        let two = label_err("app in (-x,-y)");
        assert!(
            two.starts_with("unable to parse requirement: [values[0][app]: Invalid value: \"-x\""),
            "{two}"
        );
        assert!(
            two.contains(", values[1][app]: Invalid value: \"-y\""),
            "{two}"
        );
        assert!(
            label_err(&format!("a={}", "v".repeat(64)))
                .contains("must be no more than 63 characters")
        );
    }

    fn field_err(expr: &str) -> String {
        FieldSelector::parse(expr).unwrap_err().to_string()
    }

    #[test]
    fn field_selector_matches_dotted_paths() {
        let pod = json!({
            "metadata": {"name": "web-1", "namespace": "prod"},
            "spec": {"nodeName": "node-a", "hostNetwork": true},
            "status": {"phase": "Running"}
        });
        let matches = |expr: &str| FieldSelector::parse(expr).unwrap().matches(&pod);
        assert!(matches(""));
        assert!(matches("metadata.name=web-1"));
        assert!(matches("metadata.name==web-1,metadata.namespace=prod"));
        assert!(!matches("metadata.name=web-2"));
        assert!(matches("status.phase!=Failed"));
        assert!(!matches("status.phase!=Running"));
        assert!(matches("spec.nodeName=node-a"));
        assert!(matches("spec.hostNetwork=true"));
        // Absent fields read as the empty string.
        assert!(matches("spec.restartPolicy="));
        assert!(matches("spec.restartPolicy!=Always"));
    }

    #[test]
    fn field_selector_lists_fields_and_values() {
        let selector = FieldSelector::parse("status.phase!=Failed,metadata.name=a").unwrap();
        assert_eq!(selector.fields(), vec!["metadata.name", "status.phase"]);
        assert_eq!(selector.required_value("metadata.name"), Some("a"));
        assert_eq!(selector.required_value("status.phase"), None);
        assert!(FieldSelector::parse("").unwrap().is_empty());
        assert!(FieldSelector::parse(",").unwrap().is_empty());
    }

    #[test]
    fn field_selector_escapes() {
        let selector = FieldSelector::parse(r"metadata.name=a\,b\=c\\d").unwrap();
        assert!(selector.matches(&json!({"metadata": {"name": r"a,b=c\d"}})));
        assert_eq!(escape_field_value(r"a,b=c\d"), r"a\,b\=c\\d");
        let round =
            FieldSelector::parse(&format!("metadata.name={}", escape_field_value("x=,y"))).unwrap();
        assert_eq!(round.required_value("metadata.name"), Some("x=,y"));
    }

    #[test]
    fn field_selector_errors_use_server_wording() {
        assert_eq!(
            field_err("metadata.name"),
            "invalid selector: 'metadata.name'; can't understand 'metadata.name'"
        );
        assert_eq!(
            field_err(r"a=b\x"),
            r"invalid field selector: invalid escape sequence: \x"
        );
        assert_eq!(
            field_err(r"a=b\"),
            r"invalid field selector: invalid escape sequence: \"
        );
        assert_eq!(
            field_err("a=b=c"),
            "invalid field selector: unescaped character in value: 61"
        );
    }

    #[test]
    fn field_selector_operator_precedence() {
        // `!=` wins at the first position where any operator starts.
        let selector = FieldSelector::parse("a!=b").unwrap();
        assert!(selector.matches(&json!({"a": "c"})));
        assert!(!selector.matches(&json!({"a": "b"})));
        let selector = FieldSelector::parse("a==b").unwrap();
        assert!(selector.matches(&json!({"a": "b"})));
    }
}
