//! The JSONPath subset CRD `additionalPrinterColumns` use: `.a.b`, `['a.b']`, `[0]`, `[-1]`,
//! `[*]`/`.*`, and filters `[?(@.type=="Ready")]` (`==`, `!=`, string, number or boolean
//! literals, or `[?(@.field)]` for presence).

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    Wildcard,
    Filter {
        path: Vec<String>,
        test: Option<(bool, Value)>,
    },
}

/// Parses a path into steps; `None` when it is outside the supported subset.
fn parse(path: &str) -> Option<Vec<Step>> {
    let path = path.trim();
    let path = path
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(path)
        .trim();
    let path = path.strip_prefix('$').unwrap_or(path);
    let chars: Vec<char> = path.chars().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                let name: String = chars[start..i].iter().collect();
                match name.as_str() {
                    "" => return None,
                    "*" => steps.push(Step::Wildcard),
                    _ => steps.push(Step::Field(name)),
                }
            }
            '[' => {
                let close = bracket_end(&chars, i)?;
                let inner: String = chars[i + 1..close].iter().collect();
                steps.push(parse_bracket(inner.trim())?);
                i = close + 1;
            }
            _ => return None,
        }
    }
    Some(steps)
}

/// The index of the `]` closing the bracket at `open`, skipping quoted text.
fn bracket_end(chars: &[char], open: usize) -> Option<usize> {
    let mut quote: Option<char> = None;
    for (offset, &c) in chars[open + 1..].iter().enumerate() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, ']') => return Some(open + 1 + offset),
            _ => {}
        }
    }
    None
}

fn unquote(s: &str) -> Option<&str> {
    let s = s.trim();
    s.strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .or_else(|| s.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
}

fn parse_bracket(inner: &str) -> Option<Step> {
    if inner == "*" {
        return Some(Step::Wildcard);
    }
    if let Some(name) = unquote(inner) {
        return Some(Step::Field(name.to_string()));
    }
    if let Ok(index) = inner.parse::<i64>() {
        return Some(Step::Index(index));
    }
    let expr = inner.strip_prefix('?')?.trim();
    let expr = expr.strip_prefix('(')?.strip_suffix(')')?.trim();
    let (lhs, test) = match expr
        .find("==")
        .map(|i| (i, true))
        .or_else(|| expr.find("!=").map(|i| (i, false)))
    {
        Some((at, equal)) => {
            let literal = expr[at + 2..].trim();
            let value = match unquote(literal) {
                Some(text) => Value::String(text.to_string()),
                None => serde_json::from_str(literal).ok()?,
            };
            (expr[..at].trim(), Some((equal, value)))
        }
        None => (expr, None),
    };
    let path = lhs.strip_prefix('@')?;
    let path: Vec<String> = path
        .split('.')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    Some(Step::Filter { path, test })
}

fn numbers_equal(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn apply(step: &Step, value: &Value, out: &mut Vec<Value>) {
    match step {
        Step::Field(name) => out.extend(value.get(name).cloned()),
        Step::Index(index) => {
            if let Some(items) = value.as_array() {
                let len = items.len() as i64;
                let at = if *index < 0 { len + index } else { *index };
                if (0..len).contains(&at) {
                    out.push(items[at as usize].clone());
                }
            }
        }
        Step::Wildcard => match value {
            Value::Array(items) => out.extend(items.iter().cloned()),
            Value::Object(map) => out.extend(map.values().cloned()),
            _ => {}
        },
        Step::Filter { path, test } => {
            let Some(items) = value.as_array() else {
                return;
            };
            for item in items {
                let found = path.iter().try_fold(item, |v, name| v.get(name));
                let keep = match (found, test) {
                    (None, _) => false,
                    (Some(_), None) => true,
                    (Some(found), Some((equal, literal))) => {
                        numbers_equal(found, literal) == *equal
                    }
                };
                if keep {
                    out.push(item.clone());
                }
            }
        }
    }
}

/// Evaluates a JSONPath against an object and returns the first result, as printer columns use
/// it; missing keys give `None`.
///
/// ```
/// use autopilot_testkit::table::json_path;
/// use serde_json::json;
///
/// let canary = json!({"status": {"conditions": [
///     {"type": "Progressing", "status": "True"}, {"type": "Ready", "status": "False"}]}});
/// assert_eq!(json_path(&canary, r#".status.conditions[?(@.type=="Ready")].status"#), Some(json!("False")));
/// assert_eq!(json_path(&canary, ".status.conditions[0].type"), Some(json!("Progressing")));
/// assert_eq!(json_path(&canary, ".spec.replicas"), None);
/// ```
pub fn json_path(object: &Value, path: &str) -> Option<Value> {
    let steps = parse(path)?;
    let mut current = vec![object.clone()];
    for step in &steps {
        let mut next = Vec::new();
        for value in &current {
            apply(step, value, &mut next);
        }
        current = next;
    }
    current.into_iter().next()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_indexes_and_quoted_names() {
        let object = json!({"metadata": {"labels": {"app.kubernetes.io/name": "web"}},
            "spec": {"ports": [{"port": 80}, {"port": 443}]}});
        assert_eq!(
            json_path(&object, "{.spec.ports[1].port}"),
            Some(json!(443))
        );
        assert_eq!(json_path(&object, ".spec.ports[-1].port"), Some(json!(443)));
        assert_eq!(json_path(&object, ".spec.ports[2].port"), None);
        assert_eq!(
            json_path(&object, ".metadata.labels['app.kubernetes.io/name']"),
            Some(json!("web"))
        );
        assert_eq!(json_path(&object, ".spec.ports[*].port"), Some(json!(80)));
        assert_eq!(
            json_path(&object, "$.spec.ports"),
            Some(json!([{"port": 80}, {"port": 443}]))
        );
    }

    #[test]
    fn filters() {
        let object = json!({"status": {"conditions": [
            {"type": "A", "status": "True", "n": 1},
            {"type": "Ready", "status": "False", "n": 2, "reason": "x"}
        ]}});
        assert_eq!(
            json_path(&object, r#".status.conditions[?(@.type=="Ready")].status"#),
            Some(json!("False"))
        );
        assert_eq!(
            json_path(&object, ".status.conditions[?(@.type=='A')].n"),
            Some(json!(1))
        );
        assert_eq!(
            json_path(&object, r#".status.conditions[?(@.type!="A")].type"#),
            Some(json!("Ready"))
        );
        assert_eq!(
            json_path(&object, ".status.conditions[?(@.n==2)].type"),
            Some(json!("Ready"))
        );
        assert_eq!(
            json_path(&object, ".status.conditions[?(@.reason)].type"),
            Some(json!("Ready"))
        );
        assert_eq!(
            json_path(&object, r#".status.conditions[?(@.type=="Gone")].status"#),
            None
        );
    }

    #[test]
    fn unsupported_syntax_yields_nothing() {
        assert_eq!(json_path(&json!({"a": 1}), "a"), None);
        assert_eq!(json_path(&json!({"a": 1}), ".a["), None);
        assert_eq!(json_path(&json!({"a": 1}), ".."), None);
    }
}
