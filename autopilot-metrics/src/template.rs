//! Query templates: PromQL with `{{ name }}` placeholders, rendered so that a value can never change the
//! query's structure.
//!
//! Where a placeholder sits decides how its value is made safe:
//! - inside a quoted string (`namespace="{{ namespace }}"`): the value is escaped for that string, so quotes,
//!   backslashes and newlines stay part of the label value;
//! - inside a string that follows a regex matcher (`=~` or `!~`): the value is also regex-escaped, so it
//!   matches itself literally (`.` matches only a dot);
//! - anywhere else (`[{{ interval }}]`, `histogram_quantile({{ q }}, ...)`): the value must be a PromQL
//!   duration or a plain number; anything else is refused.
//!
//! A placeholder named `interval` must always hold a PromQL duration.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::{self, Display, Write as _};
use std::str::FromStr;

pub use crate::duration::{DurationError, PromDuration};

/// Why a template could not be parsed or rendered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A `{{` without a matching `}}`, or a placeholder that is not a plain name.
    #[error("malformed placeholder at byte {offset}: {reason}")]
    Malformed {
        /// Byte offset of the `{{`.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
    /// The template uses a variable that was not given a value.
    #[error("no value for template variable `{0}`")]
    MissingVariable(String),
    /// A value cannot be placed where its placeholder sits without changing the query.
    #[error("value {value:?} of `{name}` is not allowed here: {reason}")]
    UnsafeValue {
        /// The variable.
        name: String,
        /// The refused value.
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// The `interval` variable is not a PromQL duration.
    #[error(transparent)]
    InvalidInterval(#[from] DurationError),
}

/// Values for a template's placeholders: `namespace`, `target`, `interval` and any user-defined names.
///
/// ```
/// use autopilot_metrics::Variables;
///
/// let vars = Variables::new()
///     .namespace("shop")
///     .target("checkout")
///     .interval("1m")
///     .set("route", "checkout-primary");
/// assert_eq!(vars.get("route"), Some("checkout-primary"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Variables {
    values: BTreeMap<String, String>,
}

impl Variables {
    /// No values yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `namespace`, the namespace of the workload under analysis.
    pub fn namespace(self, namespace: impl Into<String>) -> Self {
        self.set("namespace", namespace)
    }

    /// Sets `target`, the name of the workload under analysis.
    pub fn target(self, target: impl Into<String>) -> Self {
        self.set("target", target)
    }

    /// Sets `interval`, the window of `rate()` and similar. Accepts a string or a [`PromDuration`]; it is
    /// validated when a template is rendered.
    pub fn interval(self, interval: impl Display) -> Self {
        self.set("interval", interval.to_string())
    }

    /// Sets a user-defined variable (or overrides one of the above).
    pub fn set(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.values.insert(name.into(), value.into());
        self
    }

    /// The value of a variable, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

/// A PromQL query with `{{ name }}` placeholders. See the [module docs](self) for how values are escaped.
///
/// ```
/// use autopilot_metrics::{QueryTemplate, Variables};
///
/// let template = QueryTemplate::new(
///     r#"sum(rate(http_requests_total{namespace="{{ namespace }}", pod=~"{{ target }}-.*"}[{{ interval }}]))"#,
/// )?;
/// let vars = Variables::new().namespace("shop").target("web.v2").interval("5m");
/// assert_eq!(
///     template.render(&vars)?,
///     r#"sum(rate(http_requests_total{namespace="shop", pod=~"web\\.v2-.*"}[5m]))"#,
/// );
///
/// // A hostile value stays inside its string.
/// let hostile = vars.clone().namespace(r#"x"}) or vector(1) #"#);
/// assert_eq!(
///     template.render(&hostile)?,
///     r#"sum(rate(http_requests_total{namespace="x\"}) or vector(1) #", pod=~"web\\.v2-.*"}[5m]))"#,
/// );
/// # Ok::<(), autopilot_metrics::TemplateError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryTemplate {
    source: Cow<'static, str>,
}

impl QueryTemplate {
    /// Parses a template, refusing malformed placeholders.
    pub fn new(source: impl Into<String>) -> Result<Self, TemplateError> {
        let source = source.into();
        parse(&source)?;
        Ok(Self {
            source: Cow::Owned(source),
        })
    }

    /// A built-in template, known to parse.
    pub(crate) const fn from_static(source: &'static str) -> Self {
        Self {
            source: Cow::Borrowed(source),
        }
    }

    /// The template text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The names of the variables the template uses, in order of first use.
    pub fn variables(&self) -> Result<Vec<String>, TemplateError> {
        let mut names: Vec<String> = Vec::new();
        for part in parse(&self.source)? {
            if let Part::Placeholder { name, .. } = part
                && !names.iter().any(|n| n == name)
            {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }

    /// Substitutes every placeholder, escaping or validating each value for its position.
    pub fn render(&self, vars: &Variables) -> Result<String, TemplateError> {
        let mut out = String::with_capacity(self.source.len());
        for part in parse(&self.source)? {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Placeholder { name, position } => {
                    let value = vars
                        .get(name)
                        .ok_or_else(|| TemplateError::MissingVariable(name.to_owned()))?;
                    if name == "interval" {
                        value.parse::<PromDuration>()?;
                    }
                    push_value(&mut out, name, value, position)?;
                }
            }
        }
        Ok(out)
    }
}

impl FromStr for QueryTemplate {
    type Err = TemplateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl Display for QueryTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Where a placeholder sits in the PromQL text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Position {
    /// Outside any string literal.
    Bare,
    /// Inside a string literal opened by `quote`; `regex` when the string is a regex matcher's operand.
    Quoted { quote: char, regex: bool },
}

#[derive(Debug, PartialEq, Eq)]
enum Part<'a> {
    Text(&'a str),
    Placeholder { name: &'a str, position: Position },
}

/// Splits a template into text and placeholders, tracking PromQL string literals (`"..."`, `'...'` with
/// backslash escapes, and raw `` `...` ``) and `#` comments to know each placeholder's position. A
/// placeholder in a comment counts as bare, so its value cannot hold a newline that would end the comment.
fn parse(source: &str) -> Result<Vec<Part<'_>>, TemplateError> {
    let mut parts = Vec::new();
    let mut string: Option<(char, bool)> = None; // (quote, is regex operand)
    let mut escaped = false;
    let mut in_comment = false; // `#` to end of line, outside strings
    let mut text_start = 0;
    let mut chars = source.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '{' && source[i..].starts_with("{{") {
            let end = source[i..]
                .find("}}")
                .ok_or_else(|| TemplateError::Malformed {
                    offset: i,
                    reason: "no closing `}}`".to_owned(),
                })?;
            let name = source[i + 2..i + end].trim();
            if !is_identifier(name) {
                return Err(TemplateError::Malformed {
                    offset: i,
                    reason: format!("`{name}` is not a variable name"),
                });
            }
            parts.push(Part::Text(&source[text_start..i]));
            let position = match string {
                Some((quote, regex)) => Position::Quoted { quote, regex },
                None => Position::Bare,
            };
            parts.push(Part::Placeholder { name, position });
            text_start = i + end + 2;
            while chars.peek().is_some_and(|(j, _)| *j < text_start) {
                chars.next();
            }
            escaped = false;
            continue;
        }
        match string {
            Some((quote, _)) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' && quote != '`' {
                    escaped = true;
                } else if c == quote {
                    string = None;
                }
            }
            None if in_comment => in_comment = c != '\n',
            None if c == '#' => in_comment = true,
            None if matches!(c, '"' | '\'' | '`') => {
                let before = source[..i].trim_end();
                let regex = before.ends_with("=~") || before.ends_with("!~");
                string = Some((c, regex));
            }
            None => {}
        }
    }
    parts.push(Part::Text(&source[text_start..]));
    Ok(parts)
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn push_value(
    out: &mut String,
    name: &str,
    value: &str,
    position: Position,
) -> Result<(), TemplateError> {
    let unsafe_value = |reason| TemplateError::UnsafeValue {
        name: name.to_owned(),
        value: value.to_owned(),
        reason,
    };
    match position {
        Position::Bare => {
            if value.parse::<PromDuration>().is_err() && !is_plain_number(value) {
                return Err(unsafe_value(
                    "outside a quoted string only a duration or a plain number may be substituted",
                ));
            }
            out.push_str(value);
        }
        Position::Quoted { quote, regex } => {
            let value: Cow<'_, str> = if regex {
                Cow::Owned(regex_escape(value))
            } else {
                Cow::Borrowed(value)
            };
            if quote == '`' {
                // Raw strings have no escapes: the only way out is the backtick itself.
                if value.contains('`') {
                    return Err(unsafe_value(
                        "a raw (backtick) string cannot hold a backtick",
                    ));
                }
                out.push_str(&value);
            } else {
                escape_string(out, &value, quote);
            }
        }
    }
    Ok(())
}

fn is_plain_number(value: &str) -> bool {
    let (int, frac) = value.split_once('.').unwrap_or((value, "0"));
    !int.is_empty()
        && !frac.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

/// Escapes RE2 metacharacters (the set Go's `regexp.QuoteMeta` escapes), so the value matches literally.
fn regex_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Escapes a value for a PromQL string quoted with `quote` (Go string-literal escapes).
fn escape_string(out: &mut String, value: &str, quote: char) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '\n' => out.push_str(r"\n"),
            '\r' => out.push_str(r"\r"),
            '\t' => out.push_str(r"\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Variables {
        Variables::new()
            .namespace("ns")
            .target("app")
            .interval("1m")
    }

    #[test]
    fn positions() {
        let parts = parse(r#"a{x="{{ p }}", y=~ "{{q}}", z!~'{{ r }}'}[{{ interval }}] `{{ s }}`"#)
            .unwrap();
        let positions: Vec<_> = parts
            .iter()
            .filter_map(|p| match p {
                Part::Placeholder { name, position } => Some((*name, *position)),
                Part::Text(_) => None,
            })
            .collect();
        assert_eq!(
            positions,
            vec![
                (
                    "p",
                    Position::Quoted {
                        quote: '"',
                        regex: false
                    }
                ),
                (
                    "q",
                    Position::Quoted {
                        quote: '"',
                        regex: true
                    }
                ),
                (
                    "r",
                    Position::Quoted {
                        quote: '\'',
                        regex: true
                    }
                ),
                ("interval", Position::Bare),
                (
                    "s",
                    Position::Quoted {
                        quote: '`',
                        regex: false
                    }
                ),
            ]
        );
    }

    #[test]
    fn quotes_in_comments_open_no_string() {
        let t =
            QueryTemplate::new("up # it's {{ target }}\n+ on() m{a=\"{{ namespace }}\"}").unwrap();
        assert!(matches!(
            t.render(&vars()),
            Err(TemplateError::UnsafeValue { .. })
        ));
        let t = QueryTemplate::new("up # it's\n+ on() m{a=\"{{ namespace }}\"}").unwrap();
        assert_eq!(
            t.render(&vars().namespace("'x")).unwrap(),
            "up # it's\n+ on() m{a=\"'x\"}"
        );
    }

    #[test]
    fn escaped_quote_keeps_string_open() {
        let parts = parse(r#"a{x="\"{{ p }}"}"#).unwrap();
        assert!(matches!(
            parts[1],
            Part::Placeholder {
                position: Position::Quoted {
                    quote: '"',
                    regex: false
                },
                ..
            }
        ));
    }

    #[test]
    fn renders_and_escapes() {
        let t = QueryTemplate::new(
            r#"m{a="{{ namespace }}", b=~"{{ target }}_[0-9]+"}[{{ interval }}]"#,
        )
        .unwrap();
        let v = vars().namespace("a\\b\"c\nd").target("x.y*");
        assert_eq!(
            t.render(&v).unwrap(),
            r#"m{a="a\\b\"c\nd", b=~"x\\.y\\*_[0-9]+"}[1m]"#
        );
    }

    #[test]
    fn missing_and_malformed() {
        let t = QueryTemplate::new(r#"m{a="{{ custom }}"}"#).unwrap();
        assert_eq!(
            t.render(&vars()),
            Err(TemplateError::MissingVariable("custom".into()))
        );
        assert_eq!(t.variables().unwrap(), vec!["custom".to_owned()]);
        for bad in [
            "m{{ a",
            "{{ }}",
            "{{ a b }}",
            "{{ a | upper }}",
            "{{ 1a }}",
            "{{ .Target }}",
        ] {
            assert!(
                matches!(
                    QueryTemplate::new(bad),
                    Err(TemplateError::Malformed { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn bare_positions_take_only_durations_and_numbers() {
        let t = QueryTemplate::new("histogram_quantile({{ q }}, x[{{ w }}])").unwrap();
        let ok = Variables::new().set("q", "0.99").set("w", "5m");
        assert_eq!(t.render(&ok).unwrap(), "histogram_quantile(0.99, x[5m])");
        for bad in ["1) or vector(1", "0.9 ", "1e3", ".5", "5.", "up", ""] {
            let err = t.render(&ok.clone().set("q", bad)).unwrap_err();
            assert!(
                matches!(err, TemplateError::UnsafeValue { .. }),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn interval_must_be_a_duration_even_inside_quotes() {
        let t = QueryTemplate::new(r#"label_replace(x, "w", "{{ interval }}", "", "")"#).unwrap();
        let err = t.render(&vars().interval("0.99")).unwrap_err();
        assert!(matches!(err, TemplateError::InvalidInterval(_)));
    }

    #[test]
    fn raw_strings_refuse_backticks() {
        let t = QueryTemplate::new("m{a=`{{ target }}`}").unwrap();
        assert_eq!(t.render(&vars().target("ok\"\\")).unwrap(), "m{a=`ok\"\\`}");
        assert!(matches!(
            t.render(&vars().target("x`} or vector(1) #")),
            Err(TemplateError::UnsafeValue { .. })
        ));
    }

    #[test]
    fn control_characters_are_escaped() {
        let t = QueryTemplate::new(r#"m{a="{{ target }}"}"#).unwrap();
        assert_eq!(
            t.render(&vars().target("a\u{0}b\tc")).unwrap(),
            r#"m{a="a\u0000b\tc"}"#
        );
    }
}
