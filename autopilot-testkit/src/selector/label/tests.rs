use super::*;

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
    assert!(label_err("Example.com/app=x").contains("prefix part a lowercase RFC 1123 subdomain"));
    assert!(label_err("/app").contains("prefix part must be non-empty"));
    assert!(label_err("a/b/c").contains("a qualified name must consist of"));
    assert!(label_err(&"k".repeat(64)).contains("name part must be no more than 63 characters"));
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
        label_err(&format!("a={}", "v".repeat(64))).contains("must be no more than 63 characters")
    );
}

#[test]
fn structured_selectors() {
    let build = |v: serde_json::Value| LabelSelector::from_label_selector(Some(&v));
    let s = build(
        serde_json::json!({"matchLabels": {"app": "web"}, "matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["a", "b"]},
        {"key": "canary", "operator": "DoesNotExist"}]}),
    )
    .unwrap();
    assert!(s.matches(&labels(&[("app", "web"), ("tier", "b")])));
    assert!(!s.matches(&labels(&[("app", "web"), ("tier", "b"), ("canary", "")])));
    assert!(!s.matches(&labels(&[("app", "web")])));
    assert!(build(serde_json::json!({})).unwrap().is_empty());
    assert!(build(serde_json::json!({})).unwrap().matches(&labels(&[])));
    let nothing = LabelSelector::from_label_selector(Some(&Value::Null)).unwrap();
    assert!(!nothing.is_empty());
    assert!(!nothing.matches(&labels(&[])));
    let err = |v: serde_json::Value| build(v).unwrap_err().to_string();
    assert_eq!(
        err(
            serde_json::json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]})
        ),
        r#""Gt" is not a valid label selector operator"#
    );
    assert_eq!(
        err(
            serde_json::json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]})
        ),
        "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty"
    );
    assert_eq!(
        err(
            serde_json::json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]})
        ),
        r#"values: Invalid value: []string{"x"}: values set must be empty for exists and does not exist"#
    );
    assert!(
        err(serde_json::json!({"matchLabels": {"-a": "b"}}))
            .starts_with(r#"key: Invalid value: "-a": name part"#)
    );
    assert!(
        err(serde_json::json!({"matchLabels": {"a": "-b"}}))
            .starts_with(r#"values[0][a]: Invalid value: "-b""#)
    );
}
