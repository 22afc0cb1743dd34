//! The command handlers: each turns the parsed flags ([`crate::cli`]) into plain options and
//! typed values, calls the domain, and reports. One file per command group; nothing outside
//! this module and `main.rs` imports it or the CLI types.

mod assets;
mod chain;
mod discovery;
mod r#gen;
mod lint;
mod schedule;

use std::io::{self, Write as _};
use std::process::ExitCode;

use anyhow::Result;
use clap::CommandFactory as _;

use crate::cli::{Cli, Command, GenCommand, GlobalArgs, WriteArgs};
use crate::report::ChangeReport;

/// Runs the parsed command line. Commands that decide their own exit code (lint findings,
/// explain with no match, a pending schedule plan) return it; the others succeed with 0.
pub fn run(cli: &Cli) -> Result<ExitCode> {
    let global = &cli.global;
    let done = |result: Result<()>| result.map(|()| ExitCode::SUCCESS);
    match &cli.command {
        Command::Gen(GenCommand::Profile(args)) => done(r#gen::profile(global, args)),
        Command::Gen(GenCommand::Group(args)) => done(r#gen::group(global, args)),
        Command::Gen(GenCommand::Ignition(args)) => done(r#gen::ignition(global, args)),
        Command::Gen(GenCommand::Cluster(args)) => done(r#gen::cluster(global, args)),
        Command::Chain(command) => done(chain::run(global, command)),
        Command::Lint(args) => lint::lint(global, args),
        Command::Explain(args) => lint::explain(global, args),
        Command::Discover(args) => done(discovery::discover(global, args)),
        Command::Api(args) => done(discovery::api(global, args)),
        Command::Assets(command) => done(assets::run(global, command)),
        Command::Schedule(command) => schedule::run(global, command),
        Command::Completions { shell } => {
            // Rendered into memory first: clap_complete panics when its writer fails.
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "caas", &mut script);
            io::stdout().lock().write_all(&script)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// How a command that writes files runs and reports, from its `--dry-run`/`--format` and `-q`.
fn change_report(write: &WriteArgs, global: &GlobalArgs) -> ChangeReport {
    ChangeReport {
        dry_run: write.dry_run,
        format: write.format,
        quiet: global.quiet,
    }
}
