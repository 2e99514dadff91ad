//! `autopilot new`: renders the project templates for a checked set of names and writes them out.

use std::{
    fmt::Write as _,
    fs,
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use crate::{
    names::{self, Group, Kind, ProjectName},
    phases::{PhaseDecl, Phases, Step},
    template::{MissingValue, Template, template},
};

/// Errors creating a project.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The target directory already has files in it.
    #[error("{} is not empty; refusing to overwrite it (choose another --dir)", .0.display())]
    NotEmpty(PathBuf),
    /// The target path exists and is a file.
    #[error("{} exists and is not a directory", .0.display())]
    NotADirectory(PathBuf),
    /// `--autopilot-path` does not point at an autopilot checkout.
    #[error("--autopilot-path {}: not an autopilot checkout (no {missing})", path.display())]
    NotACheckout {
        /// The path given.
        path: PathBuf,
        /// The file that should be there.
        missing: &'static str,
    },
    /// Reading or writing a file failed.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done (`create`, `read`).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A template uses a placeholder without a value (a bug in this tool).
    #[error(transparent)]
    Template(#[from] MissingValue),
}

/// Where the generated project gets the autopilot crates from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AutopilotSource {
    /// crates.io, version `0.1`.
    Registry,
    /// Path dependencies on a local checkout of the autopilot-rs workspace (absolute path).
    Checkout(PathBuf),
}

impl AutopilotSource {
    /// A checkout at `path`, made absolute and checked for the crates the project needs.
    ///
    /// # Errors
    /// [`ScaffoldError::NotACheckout`] or [`ScaffoldError::Io`] when `path` cannot be resolved.
    pub fn checkout(path: &Path) -> Result<Self, ScaffoldError> {
        let root = fs::canonicalize(path).map_err(|source| ScaffoldError::Io {
            action: "find",
            path: path.to_owned(),
            source,
        })?;
        for missing in ["autopilot/Cargo.toml", "autopilot-testkit/Cargo.toml"] {
            if !root.join(missing).is_file() {
                return Err(ScaffoldError::NotACheckout {
                    path: path.to_owned(),
                    missing,
                });
            }
        }
        Ok(Self::Checkout(root))
    }

    /// Notes for the Dockerfile and the README: path dependencies are outside the image's build context.
    fn notes(&self) -> (String, String) {
        match self {
            Self::Registry => (String::new(), String::new()),
            Self::Checkout(root) => (
                format!(
                    "# Cargo.toml uses the autopilot crates from {} (path dependencies), which is outside this\n\
                     # build context: point them at published versions, or vendor them, before building the image.\n",
                    root.display()
                ),
                "(first make the autopilot dependencies in Cargo.toml buildable inside the image: \
                 see the note in the Dockerfile)\n"
                    .to_owned(),
            ),
        }
    }

    /// The dependency's right-hand side in Cargo.toml.
    fn dependency(&self, krate: &str) -> String {
        match self {
            Self::Registry => "\"0.1\"".to_owned(),
            Self::Checkout(root) => {
                let path = root.join(krate);
                format!("{{ path = {} }}", toml_string(&path.to_string_lossy()))
            }
        }
    }
}

/// What [`NewProject::write`] did.
#[derive(Clone, Debug)]
pub struct Written {
    /// The files written.
    pub files: Vec<ProjectFile>,
    /// Whether rustfmt laid out the Rust files.
    pub formatted: bool,
}

/// Everything `autopilot new` was asked for, already checked.
#[derive(Clone, Debug)]
pub struct NewProject {
    /// The operator's name (crate, Deployment, ...).
    pub name: ProjectName,
    /// The custom resource's kind.
    pub kind: Kind,
    /// The custom resource's API group.
    pub group: Group,
    /// The phases declared on the resource.
    pub phases: Phases,
    /// Where the autopilot crates come from.
    pub autopilot: AutopilotSource,
}

/// One file of the project, relative to its root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectFile {
    /// The path under the project directory.
    pub path: &'static str,
    /// Its contents.
    pub contents: String,
}

const CARGO_TOML: Template = template!("Cargo.toml.tmpl");
const LIB_RS: Template = template!("lib.rs.tmpl");
const MAIN_RS: Template = template!("main.rs.tmpl");
const HANDLER: Template = template!("handler.rs.tmpl");
const E2E_RS: Template = template!("e2e.rs.tmpl");
const E2E_CLEANUP: Template = template!("e2e_cleanup.rs.tmpl");
const README: Template = template!("README.md.tmpl");
const DOCKERFILE: Template = template!("Dockerfile.tmpl");
const GITIGNORE: Template = template!("gitignore.tmpl");
const DOCKERIGNORE: Template = template!("dockerignore.tmpl");

impl NewProject {
    /// The project's files.
    ///
    /// # Errors
    /// [`ScaffoldError::Template`] if a template and this code disagree on placeholders; with a checkout,
    /// [`ScaffoldError::Io`] when its `Cargo.lock` cannot be read.
    pub fn files(&self) -> Result<Vec<ProjectFile>, ScaffoldError> {
        let kind = self.kind.as_str();
        let var = names::variable(&self.kind);
        let handlers = self
            .phases
            .all()
            .iter()
            .enumerate()
            .filter(|(_, phase)| !phase.is_final)
            .map(|(index, phase)| self.handler(index, phase, &var))
            .collect::<Result<String, _>>()?;
        let mut handler_fields = String::new();
        for phase in self.phases.handled() {
            let field = names::ident(&names::snake_case(&phase.name));
            let _ = writeln!(handler_fields, "        {field},");
        }
        let phase_names: Vec<String> = self
            .phases
            .all()
            .iter()
            .map(|p| format!("`{}`", p.name))
            .collect();
        let (docker_note, image_note) = self.autopilot.notes();
        let cleanup = match self.phases.all().iter().find(|p| p.finalizer) {
            Some(phase) => E2E_CLEANUP.render(&[("kind", kind), ("phase", &phase.name)])?,
            None => String::new(),
        };
        let crate_name = self.name.crate_ident();
        let autopilot_dep = self.autopilot.dependency("autopilot");
        let testkit_dep = self.autopilot.dependency("autopilot-testkit");
        let phases = self.phases.attribute();
        let kind_lower = kind.to_lowercase();
        let phase_list = phase_names.join(", ");
        let path = self.expected_history();
        let values: [(&str, &str); 16] = [
            ("name", self.name.as_str()),
            ("crate_name", &crate_name),
            ("kind", kind),
            ("kind_lower", &kind_lower),
            ("group", self.group.as_str()),
            ("phases", &phases),
            ("phase_list", &phase_list),
            ("var", &var),
            ("handlers", &handlers),
            ("handler_fields", &handler_fields),
            ("path", &path),
            ("cleanup", &cleanup),
            ("autopilot_dep", &autopilot_dep),
            ("testkit_dep", &testkit_dep),
            ("docker_note", &docker_note),
            ("image_note", &image_note),
        ];
        let mut files = Vec::new();
        for (path, template) in [
            ("Cargo.toml", CARGO_TOML),
            ("src/lib.rs", LIB_RS),
            ("src/main.rs", MAIN_RS),
            ("tests/e2e.rs", E2E_RS),
            ("README.md", README),
            ("Dockerfile", DOCKERFILE),
            (".gitignore", GITIGNORE),
            (".dockerignore", DOCKERIGNORE),
        ] {
            files.push(ProjectFile {
                path,
                contents: template.render(&values)?,
            });
        }
        if let AutopilotSource::Checkout(root) = &self.autopilot {
            // Start from the versions the checkout is tested with; Cargo adds and drops entries as needed.
            let lock = root.join("Cargo.lock");
            if lock.is_file() {
                let contents = fs::read_to_string(&lock).map_err(|source| ScaffoldError::Io {
                    action: "read",
                    path: lock,
                    source,
                })?;
                files.push(ProjectFile {
                    path: "Cargo.lock",
                    contents,
                });
            }
        }
        Ok(files)
    }

    /// The phases the end-to-end test expects in the status history, as Rust paths.
    fn expected_history(&self) -> String {
        // The status keeps the last HISTORY_LIMIT (10) phases an object entered.
        let path = self.phases.path();
        let kept: Vec<String> = path[path.len().saturating_sub(10)..]
            .iter()
            .map(|phase| format!("{}Phase::{phase}", self.kind.as_str()))
            .collect();
        kept.join(", ")
    }

    /// The handler of the phase at `index`, returning what [`Phases::step`] says.
    fn handler(&self, index: usize, phase: &PhaseDecl, var: &str) -> Result<String, MissingValue> {
        let kind = self.kind.as_str();
        let (role, todo) = if phase.initial {
            (
                format!("where every new `{kind}` starts, and starts again when its spec changes."),
                format!(
                    "Check the spec and set up what later phases need, e.g. the objects this `{kind}`\n    \
                     // owns (`ctx.apply_output(..)` writes them with server-side apply, owned by it)."
                ),
            )
        } else if phase.finalizer {
            (
                format!("runs once when a `{kind}` is deleted, before it goes away."),
                "Undo what earlier phases set up. Anything but a `stay` ends the cleanup and lets\n    \
                 // the object go."
                    .to_owned(),
            )
        } else {
            (
                "a working phase.".to_owned(),
                "Do this phase's work, or wait for it: return `Transition::recheck()` until it is done."
                    .to_owned(),
            )
        };
        let (message, result) = if phase.finalizer {
            (
                "cleaned up".to_owned(),
                format!(
                    "Transition::next({kind}Phase::{}).with_message(message)",
                    phase.name
                ),
            )
        } else {
            match self.phases.step(index) {
                Step::Next(next) => (
                    format!("{} done", phase.name),
                    format!("Transition::next({kind}Phase::{next}).with_message(message)"),
                ),
                Step::Fail => (
                    format!("{} has nowhere to go", phase.name),
                    "Transition::fail(message)".to_owned(),
                ),
            }
        };
        let handler = names::ident(&names::snake_case(&phase.name));
        HANDLER.render(&[
            ("phase", &phase.name),
            ("role", &role),
            ("kind", kind),
            ("handler", &handler),
            ("var", var),
            ("todo", &todo),
            ("message", &message),
            ("result", &result),
        ])
    }

    /// Writes the project into `dir`, which must not exist or be empty.
    ///
    /// # Errors
    /// [`ScaffoldError::NotEmpty`], [`ScaffoldError::NotADirectory`], [`ScaffoldError::Io`], or as
    /// [`NewProject::files`].
    pub fn write(&self, dir: &Path) -> Result<Written, ScaffoldError> {
        let files = self.files()?;
        ensure_empty(dir)?;
        for file in &files {
            let path = dir.join(file.path);
            let io = |action| {
                let path = path.clone();
                move |source| ScaffoldError::Io {
                    action,
                    path,
                    source,
                }
            };
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(io("create"))?;
            }
            // `create_new`: never replace a file that appeared since the check.
            fs::File::create_new(&path)
                .and_then(|mut out| out.write_all(file.contents.as_bytes()))
                .map_err(io("write"))?;
        }
        let formatted = format_rust(dir, &files);
        Ok(Written { files, formatted })
    }
}

/// Lays the Rust files out as `cargo fmt` would, so the project starts formatted whatever the names' lengths.
/// Best effort: without rustfmt the files stay as rendered, which compiles just the same.
fn format_rust(dir: &Path, files: &[ProjectFile]) -> bool {
    let rust = files
        .iter()
        .filter(|f| Path::new(f.path).extension().is_some_and(|ext| ext == "rs"))
        .map(|f| dir.join(f.path));
    let formatted = Command::new("rustfmt")
        .args(["--edition", "2024"])
        .args(rust)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    formatted.is_ok_and(|status| status.success())
}

/// `dir` must be missing (it is created) or an empty directory.
fn ensure_empty(dir: &Path) -> Result<(), ScaffoldError> {
    match fs::read_dir(dir) {
        Ok(mut entries) => match entries.next() {
            None => Ok(()),
            Some(_) => Err(ScaffoldError::NotEmpty(dir.to_owned())),
        },
        Err(_) if dir.exists() && !dir.is_dir() => {
            Err(ScaffoldError::NotADirectory(dir.to_owned()))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => fs::create_dir_all(dir)
            .map_err(|source| ScaffoldError::Io {
                action: "create",
                path: dir.to_owned(),
                source,
            }),
        Err(source) => Err(ScaffoldError::Io {
            action: "read",
            path: dir.to_owned(),
            source,
        }),
    }
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(phases: &str) -> NewProject {
        NewProject {
            name: "rollout-operator".parse().unwrap(),
            kind: "Rollout".parse().unwrap(),
            group: "demo.example.com".parse().unwrap(),
            phases: phases.parse().unwrap(),
            autopilot: AutopilotSource::Registry,
        }
    }

    fn file<'a>(files: &'a [ProjectFile], path: &str) -> &'a str {
        &files.iter().find(|f| f.path == path).unwrap().contents
    }

    #[test]
    fn every_template_renders_completely() {
        let files = project(crate::DEFAULT_PHASES).files().unwrap();
        let paths: Vec<&str> = files.iter().map(|f| f.path).collect();
        assert_eq!(
            paths,
            [
                "Cargo.toml",
                "src/lib.rs",
                "src/main.rs",
                "tests/e2e.rs",
                "README.md",
                "Dockerfile",
                ".gitignore",
                ".dockerignore"
            ]
        );
        for file in &files {
            assert!(
                !file.contents.contains("{{"),
                "{}: {}",
                file.path,
                file.contents
            );
        }
    }

    #[test]
    fn the_resource_declares_the_phases_and_one_handler_each() {
        let files = project(crate::DEFAULT_PHASES).files().unwrap();
        let lib = file(&files, "src/lib.rs");
        assert!(lib.contains(
            "#[autopilot(phases(Pending(initial), Running, Done(final), Failed(final, failure)))]"
        ));
        assert!(lib.contains(r#"group = "demo.example.com", version = "v1", kind = "Rollout""#));
        assert!(lib.contains("RolloutHandlers {\n        pending,\n        running,\n    }"));
        assert!(lib.contains("async fn pending(\n    rollout: Arc<Rollout>,"));
        assert!(lib.contains("Transition::next(RolloutPhase::Running).with_message(message)"));
        assert!(lib.contains("Transition::next(RolloutPhase::Done).with_message(message)"));
        assert!(!lib.contains("async fn done"));
        let e2e = file(&files, "tests/e2e.rs");
        assert!(
            e2e.contains("use rollout_operator::{handlers, Rollout, RolloutPhase, RolloutSpec};")
        );
        assert!(e2e.contains("[RolloutPhase::Pending, RolloutPhase::Running, RolloutPhase::Done]"));
    }

    #[test]
    fn keywords_finalizers_and_failure_only_lists_get_valid_handlers() {
        let files = project("Match(initial),Cleanup(finalizer),Broken(failure)")
            .files()
            .unwrap();
        let lib = file(&files, "src/lib.rs");
        assert!(lib.contains("        r#match,\n        cleanup,\n"));
        assert!(lib.contains("async fn r#match("));
        assert!(lib.contains("Ok(Transition::fail(message))"));
        assert!(lib.contains("Transition::next(RolloutPhase::Cleanup).with_message(message)"));
        let e2e = file(&files, "tests/e2e.rs");
        assert!(e2e.contains("[RolloutPhase::Match, RolloutPhase::Broken]"));
        assert!(e2e.contains("until the `Cleanup` handler has run"));
        assert!(e2e.contains("api.delete(\"example\""));
        let without = project(crate::DEFAULT_PHASES).files().unwrap();
        assert!(!file(&without, "tests/e2e.rs").contains("api.delete"));
    }

    #[test]
    fn dependencies_come_from_the_registry_or_a_checkout() {
        let files = project(crate::DEFAULT_PHASES).files().unwrap();
        let cargo = file(&files, "Cargo.toml");
        assert!(cargo.contains("autopilot = \"0.1\"\n"));
        assert!(cargo.contains("autopilot-testkit = \"0.1\"\n"));
        assert!(!files.iter().any(|f| f.path == "Cargo.lock"));

        let root = PathBuf::from("/src/auto \"pilot\"");
        let mut with_path = project(crate::DEFAULT_PHASES);
        with_path.autopilot = AutopilotSource::Checkout(root);
        let files = with_path.files().unwrap();
        let cargo = file(&files, "Cargo.toml");
        assert!(
            cargo.contains(r#"autopilot = { path = "/src/auto \"pilot\"/autopilot" }"#),
            "{cargo}"
        );
        assert!(file(&files, "Dockerfile").contains("path dependencies"));
    }

    /// The generated Cargo.toml pins what this workspace builds with, so the two stay in step.
    #[test]
    fn third_party_pins_match_the_workspace() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        let workspace = fs::read_to_string(root).unwrap();
        let generated = CARGO_TOML.text;
        for krate in [
            "anyhow",
            "clap",
            "kube",
            "k8s-openapi",
            "schemars",
            "serde",
            "serde_json",
            "serde-saphyr",
            "tokio",
        ] {
            let line = |text: &str| {
                text.lines()
                    .find(|l| l.starts_with(&format!("{krate} = ")))
                    .map(str::to_owned)
            };
            assert_eq!(line(generated), line(&workspace), "{krate}");
        }
    }
}
