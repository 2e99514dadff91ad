//! The names a project is made of, checked once on the command line so the templates can trust them.

use std::{fmt, str::FromStr};

/// Crates the generated project depends on; a project of the same name could not depend on them.
const DEPENDENCIES: [&str; 11] = [
    "autopilot",
    "autopilot-testkit",
    "anyhow",
    "clap",
    "k8s-openapi",
    "kube",
    "schemars",
    "serde",
    "serde-saphyr",
    "serde_json",
    "tokio",
];

/// Crate names Cargo or rustc reserve.
const RESERVED_CRATES: [&str; 5] = ["std", "core", "alloc", "test", "proc_macro"];

/// Rust's strict and reserved keywords (edition 2024).
const KEYWORDS: [&str; 52] = [
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub",
    "ref", "return", "self", "Self", "static", "struct", "super", "trait", "true", "type",
    "unsafe", "use", "where", "while", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
];

/// Keywords that cannot be written as raw identifiers (`r#self` is not valid).
pub const NOT_RAW: [&str; 4] = ["self", "Self", "crate", "super"];

/// The operator's name: a DNS-1123 label (it names the Deployment, ServiceAccount and ClusterRole) and the
/// crate name of the project.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectName(String);

impl ProjectName {
    /// The name as written (`rollout-operator`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The library crate's name in Rust paths (`rollout_operator`).
    pub fn crate_ident(&self) -> String {
        self.0.replace('-', "_")
    }
}

impl FromStr for ProjectName {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        dns_label(name)?;
        if name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!(
                "`{name}` starts with a digit, which a crate name cannot"
            ));
        }
        let ident = name.replace('-', "_");
        if KEYWORDS.contains(&ident.as_str()) || RESERVED_CRATES.contains(&ident.as_str()) {
            return Err(format!(
                "`{name}` is reserved by Rust and cannot name a crate"
            ));
        }
        if DEPENDENCIES
            .iter()
            .any(|dep| dep.replace('-', "_") == ident)
        {
            return Err(format!(
                "`{name}` is the name of a crate the project depends on; choose another name"
            ));
        }
        Ok(Self(name.to_owned()))
    }
}

impl fmt::Display for ProjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A DNS-1123 label: at most 63 lowercase letters, digits and `-`, starting and ending with a letter or digit.
///
/// # Errors
/// A message saying which rule `label` breaks.
pub fn dns_label(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if label.len() > 63 {
        return Err(format!(
            "`{label}` is {} characters long; at most 63 are allowed",
            label.len()
        ));
    }
    if let Some(bad) = label
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "`{label}` contains `{bad}`; only lowercase letters, digits and `-` are allowed"
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(format!(
            "`{label}` must start and end with a letter or digit"
        ));
    }
    Ok(())
}

/// A CRD's API group: a DNS subdomain with at least one dot (`demo.example.com`), as the API server requires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group(String);

impl Group {
    /// The group as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Group {
    type Err = String;

    fn from_str(group: &str) -> Result<Self, String> {
        if group.len() > 253 {
            return Err(format!(
                "`{group}` is {} characters long; at most 253 are allowed",
                group.len()
            ));
        }
        if !group.contains('.') {
            return Err(format!(
                "`{group}` must be a domain with at least one dot, e.g. `demo.example.com`"
            ));
        }
        for label in group.split('.') {
            if label.is_empty() {
                return Err(format!("`{group}` has an empty part between dots"));
            }
            dns_label(label)
                .map_err(|problem| format!("`{group}` is not a DNS subdomain: {problem}"))?;
        }
        Ok(Self(group.to_owned()))
    }
}

/// A Rust type name in UpperCamelCase (`Rollout`, `HttpCheck`, `HTTPRoute`): an ASCII letter first, then
/// letters and digits. Used for the kind and for phase names.
///
/// # Errors
/// A message naming what `name` should look like; `what` says what the name is for.
pub fn upper_camel(name: &str, what: &str) -> Result<(), String> {
    let Some(first) = name.chars().next() else {
        return Err(format!("the {what} must not be empty"));
    };
    if !first.is_ascii_uppercase() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "the {what} `{name}` must be UpperCamelCase: a capital letter, then letters and digits (e.g. `{}`)",
            suggest_camel(name)
        ));
    }
    if name == "Self" {
        return Err(format!("the {what} `{name}` is a reserved word in Rust"));
    }
    Ok(())
}

/// The resource kind, in UpperCamelCase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kind(String);

impl Kind {
    /// The kind as written (`Rollout`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Kind {
    type Err = String;

    fn from_str(kind: &str) -> Result<Self, String> {
        upper_camel(kind, "kind")?;
        // The kind names a type next to these in the generated code.
        if TYPES_IN_SCOPE.contains(&kind) {
            return Err(format!(
                "the kind `{kind}` would clash with the `{kind}` the generated code uses; choose another name"
            ));
        }
        Ok(Self(kind.to_owned()))
    }
}

/// Type names the generated code uses (its imports and Rust's prelude), which the kind's types must not shadow.
const TYPES_IN_SCOPE: [&str; 39] = [
    "Api",
    "ApiServer",
    "Arc",
    "AsMut",
    "AsRef",
    "Autopilot",
    "Box",
    "Clone",
    "Context",
    "Copy",
    "CustomResource",
    "Debug",
    "Default",
    "Deserialize",
    "Drop",
    "Duration",
    "Eq",
    "Err",
    "Fn",
    "From",
    "Future",
    "Handlers",
    "Into",
    "Iterator",
    "JsonSchema",
    "ManifestsArgs",
    "None",
    "Ok",
    "Operator",
    "OperatorConfig",
    "OperatorManifests",
    "Option",
    "Parser",
    "PostParams",
    "Result",
    "Serialize",
    "Some",
    "String",
    "Transition",
];

/// `rollout-operator` → `RolloutOperator`, `my_kind` → `MyKind`: a hint for a name that is not UpperCamelCase.
fn suggest_camel(name: &str) -> String {
    let words = name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty());
    let camel: String = words
        .map(|w| {
            let mut chars = w.chars();
            chars.next().map_or_else(String::new, |c| {
                c.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect();
    if camel.starts_with(|c: char| c.is_ascii_uppercase()) {
        camel
    } else {
        "Rollout".to_owned()
    }
}

/// `WaitingPromotion` → `waiting_promotion`, exactly as `#[derive(Autopilot)]` names handler fields (every
/// capital starts a new word, so `HTTPCheck` → `h_t_t_p_check`).
pub fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 && !out.ends_with('_') {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `name` as a Rust identifier: raw (`r#match`) when it is a keyword.
pub fn ident(name: &str) -> String {
    if KEYWORDS.contains(&name) {
        format!("r#{name}")
    } else {
        name.to_owned()
    }
}

/// A variable name for an object of `kind`: `Rollout` → `rollout`, `HTTPRoute` → `http_route`, and `object`
/// when that would be a keyword.
pub fn variable(kind: &Kind) -> String {
    let mut out = String::new();
    let chars: Vec<char> = kind.as_str().chars().collect();
    for (i, c) in chars.iter().enumerate() {
        // A capital starts a word after a lowercase letter, or before one in an acronym (`HTTPRoute`).
        let starts_word = i > 0
            && c.is_ascii_uppercase()
            && (chars[i - 1].is_ascii_lowercase()
                || chars[i - 1].is_ascii_digit()
                || chars.get(i + 1).is_some_and(char::is_ascii_lowercase));
        if starts_word {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    if KEYWORDS.contains(&out.as_str()) {
        "object".to_owned()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names_are_dns_labels_and_crate_names() {
        let name: ProjectName = "rollout-operator".parse().unwrap();
        assert_eq!(name.crate_ident(), "rollout_operator");
        for (bad, says) in [
            ("Rollout", "contains `R`"),
            ("my_operator", "contains `_`"),
            ("-op", "start and end"),
            ("op-", "start and end"),
            ("", "empty"),
            ("9lives", "starts with a digit"),
            ("test", "reserved"),
            ("match", "reserved"),
            ("kube", "depends on"),
            ("serde-json", "depends on"),
        ] {
            let err = bad.parse::<ProjectName>().unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
        let long = "a".repeat(64);
        assert!(
            long.parse::<ProjectName>()
                .unwrap_err()
                .contains("at most 63")
        );
    }

    #[test]
    fn groups_are_dns_subdomains_with_a_dot() {
        assert!("demo.example.com".parse::<Group>().is_ok());
        assert!("a-b.c1".parse::<Group>().is_ok());
        assert!(
            "example"
                .parse::<Group>()
                .unwrap_err()
                .contains("at least one dot")
        );
        assert!(
            "Demo.example.com"
                .parse::<Group>()
                .unwrap_err()
                .contains("contains `D`")
        );
        assert!(
            "demo..com"
                .parse::<Group>()
                .unwrap_err()
                .contains("empty part")
        );
        assert!(
            "demo.-x.com"
                .parse::<Group>()
                .unwrap_err()
                .contains("start and end")
        );
    }

    #[test]
    fn kinds_are_upper_camel_case() {
        for good in ["Rollout", "HTTPRoute", "Canary2"] {
            assert!(good.parse::<Kind>().is_ok(), "{good}");
        }
        let err = "rollout-plan".parse::<Kind>().unwrap_err();
        assert!(
            err.contains("UpperCamelCase") && err.contains("`RolloutPlan`"),
            "{err}"
        );
        assert!("My_Kind".parse::<Kind>().is_err());
        assert!("".parse::<Kind>().unwrap_err().contains("empty"));
        assert!("Self".parse::<Kind>().unwrap_err().contains("reserved"));
        for clash in ["Context", "Option", "Api", "Operator"] {
            let err = clash.parse::<Kind>().unwrap_err();
            assert!(err.contains(&format!("clash with the `{clash}`")), "{err}");
        }
    }

    #[test]
    fn identifiers_follow_the_derive() {
        assert_eq!(snake_case("WaitingPromotion"), "waiting_promotion");
        assert_eq!(snake_case("HTTPCheck"), "h_t_t_p_check");
        assert_eq!(ident("match"), "r#match");
        assert_eq!(ident("running"), "running");
        assert_eq!(variable(&"Rollout".parse().unwrap()), "rollout");
        assert_eq!(variable(&"HTTPRoute".parse().unwrap()), "http_route");
        assert_eq!(variable(&"CanaryV2".parse().unwrap()), "canary_v2");
        assert_eq!(variable(&"Type".parse().unwrap()), "object");
    }
}
