//! `autopilot`: the command line for authors of operators built on the `autopilot` crate.
//!
//! - `autopilot new <name>` scaffolds an operator project whose end-to-end test passes out of the box;
//! - `autopilot manifests` prints the CRDs, RBAC and Deployment that install an operator.
//!
//! Exit codes: 0 on success, 2 for bad usage (including invalid names), 1 when the work itself fails.

#![warn(clippy::pedantic)]
// Doc comments here are also the `--help` text, where Kubernetes kinds and words like UpperCamelCase read
// better without backticks.
#![allow(clippy::doc_markdown)]

mod install;
mod names;
mod phases;
mod scaffold;
mod template;

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::{Args, Parser, Subcommand};

use install::Install;
use names::{Group, Kind, ProjectName};
use phases::Phases;
use scaffold::{AutopilotSource, NewProject};

/// The phases of a new project when `--phases` is not given.
const DEFAULT_PHASES: &str = "Pending(initial),Running,Done(final),Failed(final, failure)";

/// Scaffold and install Kubernetes operators built with autopilot.
#[derive(Parser)]
#[command(name = "autopilot", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new operator project that builds and passes its end-to-end test out of the box.
    ///
    /// The project has a custom resource with its phases, one handler per phase that runs code, a main that
    /// runs the operator (and prints its install manifests), an end-to-end test on an in-process API server,
    /// a README and a Dockerfile.
    New(NewArgs),
    /// Print the manifests that install an operator (CRDs, RBAC, Deployment).
    ///
    /// The Deployment runs with leader election, probes and a metrics port; the ClusterRole grants only
    /// what is listed here, plus Events and the leader-election Lease.
    Manifests(Install),
}

#[derive(Args)]
#[command(
    after_help = "Example:\n  autopilot new rollout-operator --kind Rollout --group demo.example.com \\\n      \
                        --phases 'Pending(initial),Running,Done(final),Failed(final, failure)'"
)]
struct NewArgs {
    /// The operator's name: a DNS-1123 label (lowercase letters, digits, `-`); also the crate name.
    name: ProjectName,
    /// Where to create the project (must not exist or be empty) [default: ./<NAME>].
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The custom resource's API group (a DNS subdomain).
    #[arg(long, default_value = "demo.example.com")]
    group: Group,
    /// The custom resource's kind (UpperCamelCase).
    #[arg(long, default_value = "Rollout")]
    kind: Kind,
    /// The phases, in order: `Name` or `Name(options)`, options among initial (exactly one), final,
    /// failure (a final phase `Transition::fail` leads to) and finalizer (cleanup on deletion).
    #[arg(long, default_value = DEFAULT_PHASES)]
    phases: Phases,
    /// Use the autopilot crates of a local autopilot-rs checkout (path dependencies) instead of crates.io.
    #[arg(long, value_name = "PATH")]
    autopilot_path: Option<PathBuf>,
}

fn main() -> ExitCode {
    // Usage errors exit with 2 (clap's convention); `--help` and `--version` with 0.
    let cli = Cli::parse();
    let result = match cli.command {
        Command::New(args) => new(args),
        Command::Manifests(install) => manifests(&install),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprint!("error: {error}");
            let mut source = error.source();
            while let Some(cause) = source {
                eprint!(": {cause}");
                source = cause.source();
            }
            eprintln!();
            ExitCode::FAILURE
        }
    }
}

type BoxError = Box<dyn std::error::Error>;

fn new(args: NewArgs) -> Result<(), BoxError> {
    let autopilot = match &args.autopilot_path {
        Some(path) => AutopilotSource::checkout(path)?,
        None => AutopilotSource::Registry,
    };
    let dir = args
        .dir
        .unwrap_or_else(|| PathBuf::from(args.name.as_str()));
    let project = NewProject {
        name: args.name,
        kind: args.kind,
        group: args.group,
        phases: args.phases,
        autopilot,
    };
    let written = project.write(&dir)?;
    if !written.formatted {
        eprintln!("note: rustfmt did not run; `cargo fmt` in the project lays the code out");
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "Created {} in {}:", project.name, dir.display())?;
    for file in &written.files {
        writeln!(out, "  {}", file.path)?;
    }
    writeln!(out, "\nNext:\n  cd {}", shell_path(&dir))?;
    writeln!(
        out,
        "  cargo test                      # runs the operator on an in-process API server"
    )?;
    writeln!(
        out,
        "  cargo run -- manifests --help   # what installs it in a cluster"
    )?;
    Ok(())
}

fn manifests(install: &Install) -> Result<(), BoxError> {
    let yaml = install.to_yaml()?;
    std::io::stdout().lock().write_all(yaml.as_bytes())?;
    Ok(())
}

/// `dir` for a `cd` line: quoted when it has characters a shell would split or expand.
fn shell_path(dir: &Path) -> String {
    let text = dir.display().to_string();
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c))
    {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}
