//! The phase list of `autopilot new --phases`, checked by the rules `#[derive(Autopilot)]` applies, so a
//! generated project never fails to compile on its own phases.

use std::{fmt, str::FromStr};

use crate::names::{self, NOT_RAW};

/// One declared phase and its roles.
// One flag per role keeps this the same shape as the derive's own model, whose rules it mirrors.
#[allow(clippy::struct_excessive_bools)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhaseDecl {
    /// The phase's name (UpperCamelCase).
    pub name: String,
    /// New objects start here.
    pub initial: bool,
    /// Nothing runs here until the spec changes.
    pub is_final: bool,
    /// The final phase `Transition::fail` leads to.
    pub failure: bool,
    /// Cleanup that runs when an object is deleted.
    pub finalizer: bool,
}

impl PhaseDecl {
    fn options(&self) -> Vec<&'static str> {
        let mut options = Vec::new();
        if self.initial {
            options.push("initial");
        }
        if self.is_final {
            options.push("final");
        }
        if self.failure {
            options.push("failure");
        }
        if self.finalizer {
            options.push("finalizer");
        }
        options
    }
}

impl fmt::Display for PhaseDecl {
    /// As written in `#[autopilot(phases(...))]`: `Failed(final, failure)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let options = self.options();
        if options.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}({})", self.name, options.join(", "))
        }
    }
}

/// What a generated handler returns on the path a new object takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// `Transition::next(phase)`.
    Next(&'a str),
    /// `Transition::fail(..)`: there is no other final phase to go to.
    Fail,
}

/// A checked phase list: unique UpperCamelCase names, exactly one initial phase, at least one final phase,
/// at most one failure and one finalizer phase, no contradictory roles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Phases(Vec<PhaseDecl>);

impl Phases {
    /// Every phase, in declaration order.
    pub fn all(&self) -> &[PhaseDecl] {
        &self.0
    }

    /// The phases that need a handler (all but the final ones), in declaration order.
    pub fn handled(&self) -> impl Iterator<Item = &PhaseDecl> {
        self.0.iter().filter(|p| !p.is_final)
    }

    /// The list as written in `#[autopilot(phases(...))]`.
    pub fn attribute(&self) -> String {
        let items: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        items.join(", ")
    }

    /// Where the generated handler of the working phase at `index` sends an object: the next phase declared
    /// after it (skipping the initial, failure and finalizer phases, so the path always moves forward), else
    /// the first final phase that is not a failure, else a failure.
    pub fn step(&self, index: usize) -> Step<'_> {
        let forward = self.0[index + 1..]
            .iter()
            .find(|p| !(p.initial || p.failure || p.finalizer));
        let success = || self.0.iter().find(|p| p.is_final && !p.failure);
        match forward.or_else(success) {
            Some(phase) => Step::Next(&phase.name),
            None => Step::Fail,
        }
    }

    /// The phases a new object goes through with the generated handlers, from the initial phase to a final
    /// one.
    pub fn path(&self) -> Vec<&str> {
        let mut index = self.0.iter().position(|p| p.initial).unwrap_or_default();
        let mut path = vec![self.0[index].name.as_str()];
        // Each step moves forward in the list or into a final phase, so this ends within `len` steps.
        while !self.0[index].is_final && path.len() <= self.0.len() {
            index = match self.step(index) {
                Step::Next(name) => self.0.iter().position(|p| p.name == name).unwrap_or(index),
                Step::Fail => self.0.iter().position(|p| p.failure).unwrap_or(index),
            };
            path.push(&self.0[index].name);
        }
        path
    }
}

impl FromStr for Phases {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut phases: Vec<PhaseDecl> = Vec::new();
        for item in split_items(text)? {
            let decl = parse_item(item)?;
            if phases.iter().any(|p| p.name == decl.name) {
                return Err(format!("phase `{}` is declared twice", decl.name));
            }
            phases.push(decl);
        }
        if phases.is_empty() {
            return Err(format!("no phases given; e.g. `{}`", crate::DEFAULT_PHASES));
        }
        for role in ["initial", "failure", "finalizer"] {
            let marked: Vec<&str> = phases
                .iter()
                .filter(|p| p.options().contains(&role))
                .map(|p| p.name.as_str())
                .collect();
            if let [first, second, ..] = marked[..] {
                return Err(format!(
                    "two {role} phases: `{first}` and `{second}`; there can be only one"
                ));
            }
        }
        if !phases.iter().any(|p| p.initial) {
            return Err(
                "no initial phase: mark the phase new objects start in with `(initial)`, \
                 e.g. `Pending(initial),Running,Done(final)`"
                    .to_owned(),
            );
        }
        if !phases.iter().any(|p| p.is_final) {
            return Err(
                "no final phase: mark where an object's work ends with `(final)`, \
                 e.g. `Pending(initial),Running,Done(final)`"
                    .to_owned(),
            );
        }
        Ok(Self(phases))
    }
}

/// Splits at the commas outside parentheses.
fn split_items(text: &str) -> Result<Vec<&str>, String> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0_usize, 0);
    for (at, c) in text.char_indices() {
        match c {
            '(' if depth == 0 => depth = 1,
            '(' => return Err(format!("nested parentheses in `{}`", text.trim())),
            ')' if depth == 0 => return Err(format!("unmatched `)` in `{}`", text.trim())),
            ')' => depth = 0,
            ',' if depth == 0 => {
                items.push(&text[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    if depth > 0 {
        return Err(format!("missing `)` in `{}`", text[start..].trim()));
    }
    items.push(&text[start..]);
    if items.len() > 1 && items.iter().any(|item| item.trim().is_empty()) {
        return Err(format!(
            "an empty entry in `{}` (two commas in a row?)",
            text.trim()
        ));
    }
    Ok(items
        .into_iter()
        .filter(|item| !item.trim().is_empty())
        .collect())
}

/// `Name` or `Name(option, option)`.
fn parse_item(item: &str) -> Result<PhaseDecl, String> {
    let item = item.trim();
    let (name, options) = match item.split_once('(') {
        Some((name, rest)) => {
            let inner = rest
                .strip_suffix(')')
                .ok_or_else(|| format!("unexpected text after `)` in `{item}`"))?;
            (name.trim(), Some(inner))
        }
        None => (item, None),
    };
    names::upper_camel(name, "phase name")?;
    if NOT_RAW.contains(&names::snake_case(name).as_str()) {
        return Err(format!(
            "the phase name `{name}` cannot be used: its handler would be named `{}`, a reserved word in Rust",
            names::snake_case(name)
        ));
    }
    if ["ALL", "NAMES"].contains(&name) {
        return Err(format!(
            "the phase name `{name}` cannot be used: the generated phase enum has a constant `{name}`"
        ));
    }
    if ["handlers", "manifests"].contains(&names::snake_case(name).as_str()) {
        return Err(format!(
            "the phase name `{name}` cannot be used: its handler would clash with the generated `{}()`",
            names::snake_case(name)
        ));
    }
    let mut decl = PhaseDecl {
        name: name.to_owned(),
        initial: false,
        is_final: false,
        failure: false,
        finalizer: false,
    };
    for option in options
        .into_iter()
        .flat_map(|o| o.split(','))
        .map(str::trim)
    {
        let flag = match option {
            "initial" => &mut decl.initial,
            "final" => &mut decl.is_final,
            "failure" => &mut decl.failure,
            "finalizer" => &mut decl.finalizer,
            "" => return Err(format!("an empty option in `{item}`")),
            other => {
                return Err(format!(
                    "unknown option `{other}` on phase `{name}`; expected initial, final, failure or finalizer"
                ));
            }
        };
        if *flag {
            return Err(format!("`{option}` is given twice on phase `{name}`"));
        }
        *flag = true;
    }
    // A failure phase is final, whether or not it says so.
    decl.is_final |= decl.failure;
    if decl.initial && decl.is_final {
        return Err(format!(
            "phase `{name}` cannot be both initial and final (nothing would ever run)"
        ));
    }
    if decl.finalizer && (decl.initial || decl.is_final) {
        return Err(format!(
            "phase `{name}`: the finalizer phase runs on deletion only, so it cannot be initial or final"
        ));
    }
    Ok(decl)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Phases, String> {
        text.parse()
    }

    #[test]
    fn the_default_list_parses_and_round_trips_as_the_attribute() {
        let phases = parse(crate::DEFAULT_PHASES).unwrap();
        assert_eq!(
            phases.attribute(),
            "Pending(initial), Running, Done(final), Failed(final, failure)"
        );
        let handled: Vec<&str> = phases.handled().map(|p| p.name.as_str()).collect();
        assert_eq!(handled, ["Pending", "Running"]);
        assert_eq!(phases.step(0), Step::Next("Running"));
        assert_eq!(phases.step(1), Step::Next("Done"));
        assert_eq!(phases.path(), ["Pending", "Running", "Done"]);
    }

    #[test]
    fn failure_implies_final_and_whitespace_is_free() {
        let phases = parse(" Start (initial) , Broken( failure ) ").unwrap();
        assert!(phases.all()[1].is_final);
        assert_eq!(phases.attribute(), "Start(initial), Broken(final, failure)");
        assert_eq!(phases.step(0), Step::Fail);
        assert_eq!(phases.path(), ["Start", "Broken"]);
    }

    #[test]
    fn the_path_moves_forward_and_skips_the_finalizer() {
        let phases =
            parse("Done(final),Cleanup(finalizer),Pending(initial),Checking,Failed(failure)")
                .unwrap();
        assert_eq!(phases.step(2), Step::Next("Checking"));
        assert_eq!(phases.step(3), Step::Next("Done"));
        assert_eq!(phases.path(), ["Pending", "Checking", "Done"]);
        let handled: Vec<&str> = phases.handled().map(|p| p.name.as_str()).collect();
        assert_eq!(handled, ["Cleanup", "Pending", "Checking"]);
    }

    #[test]
    fn bad_lists_say_what_is_wrong() {
        for (text, says) in [
            ("", "no phases"),
            ("Pending,Done(final)", "no initial phase"),
            ("Pending(initial),Running", "no final phase"),
            (
                "A(initial),B(initial),C(final)",
                "two initial phases: `A` and `B`",
            ),
            ("A(initial),B(failure),C(failure)", "two failure phases"),
            (
                "A(initial),B(finalizer),C(finalizer),D(final)",
                "two finalizer phases",
            ),
            ("A(initial),A(final)", "`A` is declared twice"),
            (
                "pending(initial),Done(final)",
                "`pending` must be UpperCamelCase",
            ),
            (
                "Pending(initial),Done(finished)",
                "unknown option `finished` on phase `Done`",
            ),
            (
                "Pending(initial, initial),Done(final)",
                "`initial` is given twice",
            ),
            ("Pending(initial,final)", "both initial and final"),
            (
                "Pending(initial),Gone(finalizer, final)",
                "runs on deletion only",
            ),
            ("Pending(initial),Done(final", "missing `)`"),
            ("Pending(initial)),Done(final)", "unmatched `)`"),
            ("Pending(initial)x,Done(final)", "after `)`"),
            ("Pending(initial),,Done(final)", "empty entry"),
            ("Pending(initial),Super,Done(final)", "reserved word"),
            (
                "Pending(initial),Manifests,Done(final)",
                "clash with the generated `manifests()`",
            ),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(says), "{text:?}: {err}");
        }
    }
}
