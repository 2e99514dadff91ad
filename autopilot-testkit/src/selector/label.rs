//! Label selectors: apimachinery's grammar, validation and matching.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::SelectorError;
use crate::validation::names::{label_value, qualified_name};
use crate::validation::{FieldError, FieldErrorKind, aggregate_message};

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
    /// A null `metav1.LabelSelector` selects nothing.
    nothing: bool,
}

impl LabelSelector {
    /// Parses a selector expression; the empty string selects everything.
    pub fn parse(expr: &str) -> Result<Self, SelectorError> {
        let tokens = lex(expr);
        let mut parser = Parser { tokens, pos: 0 };
        let mut requirements = parser.parse()?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self {
            requirements,
            nothing: false,
        })
    }

    /// Builds a selector from a `metav1.LabelSelector` (`matchLabels` and `matchExpressions`
    /// with `In`, `NotIn`, `Exists`, `DoesNotExist`), as workload and Service selectors hold
    /// them: `None` or `null` selects nothing, `{}` everything.
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use autopilot_testkit::selector::LabelSelector;
    /// use serde_json::json;
    ///
    /// let spec = json!({"matchLabels": {"app": "web"},
    ///     "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]});
    /// let selector = LabelSelector::from_label_selector(Some(&spec)).unwrap();
    /// assert!(selector.matches(&BTreeMap::from([("app".to_string(), "web".to_string())])));
    /// assert!(!LabelSelector::from_label_selector(None).unwrap().matches(&BTreeMap::new()));
    /// ```
    pub fn from_label_selector(selector: Option<&Value>) -> Result<Self, SelectorError> {
        let Some(selector) = selector.filter(|s| !s.is_null()) else {
            return Ok(Self {
                requirements: Vec::new(),
                nothing: true,
            });
        };
        let mut requirements = Vec::new();
        let labels = selector.get("matchLabels").and_then(Value::as_object);
        for (key, value) in labels.into_iter().flatten() {
            let value = value.as_str().unwrap_or_default().to_string();
            requirements.push(new_requirement(
                key,
                Operator::Equals,
                BTreeSet::from([value]),
            )?);
        }
        let expressions = selector.get("matchExpressions").and_then(Value::as_array);
        for expression in expressions.into_iter().flatten() {
            let text = |k: &str| {
                expression
                    .get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            };
            let operator = match text("operator") {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(label_error(format!(
                        "{} is not a valid label selector operator",
                        crate::validation::go_quote(other)
                    )));
                }
            };
            let values = expression.get("values").and_then(Value::as_array);
            let values = values
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
            requirements.push(new_requirement(text("key"), operator, values)?);
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self {
            requirements,
            nothing: false,
        })
    }

    /// Whether the selector selects everything (no requirements).
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// Whether every requirement holds for these labels.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether the selector selects an object, judged by its `metadata.labels`.
    ///
    /// ```
    /// use autopilot_testkit::selector::LabelSelector;
    /// use serde_json::json;
    ///
    /// let pod = json!({"metadata": {"name": "p", "labels": {"app": "web"}}});
    /// assert!(LabelSelector::parse("app=web").unwrap().matches_object(&pod));
    /// assert!(!LabelSelector::parse("app").unwrap().matches_object(&json!({"metadata": {}})));
    /// ```
    pub fn matches_object(&self, object: &Value) -> bool {
        let labels: BTreeMap<String, String> = object
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
            .collect();
        self.matches(&labels)
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
        if let Some(detail) = joined(qualified_name(&key)) {
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
        let errors = value_errors(&key, operator, &values);
        if !errors.is_empty() {
            return Err(aggregate_message(&errors));
        }
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

/// apimachinery's `NewRequirement` for a structured selector: key, value count and values checked.
fn new_requirement(
    key: &str,
    operator: Operator,
    values: BTreeSet<String>,
) -> Result<Requirement, SelectorError> {
    let mut errors = Vec::new();
    if let Some(detail) = joined(qualified_name(key)) {
        errors.push(FieldError::new(
            "key",
            FieldErrorKind::Invalid,
            Some(&Value::from(key)),
            &detail,
        ));
    }
    let listed = || {
        let quoted: Vec<String> = values
            .iter()
            .map(|v| crate::validation::go_quote(v))
            .collect();
        format!("[]string{{{}}}", quoted.join(", "))
    };
    let count_problem = match operator {
        Operator::In | Operator::NotIn if values.is_empty() => {
            Some("for 'in', 'notin' operators, values set can't be empty")
        }
        Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
            Some("values set must be empty for exists and does not exist")
        }
        _ => None,
    };
    if let Some(detail) = count_problem {
        errors.push(FieldError {
            field: "values".into(),
            kind: FieldErrorKind::Invalid,
            message: format!("Invalid value: {}: {detail}", listed()),
        });
    }
    errors.extend(value_errors(key, operator, &values));
    if !errors.is_empty() {
        return Err(label_error(aggregate_message(&errors)));
    }
    Ok(Requirement {
        key: key.to_string(),
        operator,
        values,
    })
}

/// apimachinery joins the problems with one value into one detail.
fn joined(errs: Vec<String>) -> Option<String> {
    (!errs.is_empty()).then(|| errs.join("; "))
}

/// The checks apimachinery's `NewRequirement` makes on a requirement's values.
fn value_errors(key: &str, operator: Operator, values: &BTreeSet<String>) -> Vec<FieldError> {
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
        if let Some(detail) = joined(label_value(value)) {
            errors.push(FieldError::new(
                &format!("values[{i}][{key}]"),
                FieldErrorKind::Invalid,
                Some(&Value::String(value.clone())),
                &detail,
            ));
        }
    }
    errors
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
