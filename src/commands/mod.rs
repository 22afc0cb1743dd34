//! The command handlers: each turns the parsed flags ([`crate::cli`]) into plain options and
//! typed values, calls the domain, and reports. One file per command group; nothing outside
//! this module and `main.rs` imports it or the CLI types.

mod assets;
mod chain;
mod discovery;
mod r#gen;
mod lint;
mod machines;
mod schedule;

use std::io::{self, Write as _};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use clap::CommandFactory as _;

use crate::cli::{Cli, Command, GenCommand, GlobalArgs, WriteArgs};
use crate::report::ChangeReport;
use crate::write::{DirLock, LockWait};

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
        Command::Machines(command) => done(machines::run(global, command)),
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

/// Holds the lock of `dir` (see [`DirLock`]) for `holder`, waiting for another holder unless
/// `--no-wait`; the stale temp files of a killed writer are removed under it, except in the
/// top-level entries `skip` (locked on their own).
fn lock_dir(
    global: &GlobalArgs,
    dir: &Path,
    within: &str,
    holder: &str,
    skip: &[&str],
) -> Result<DirLock> {
    let wait = if global.no_wait {
        LockWait::NoWait
    } else {
        LockWait::Wait {
            quiet: global.quiet,
        }
    };
    DirLock::acquire(dir, within, holder, wait, skip)
}

/// The data directory's lock for a command that writes it; `None` for a dry run, which
/// writes nothing (not even the lock file). `assets/` has a lock of its own.
fn lock_data_dir(global: &GlobalArgs, holder: &str, dry_run: bool) -> Result<Option<DirLock>> {
    if dry_run {
        return Ok(None);
    }
    lock_dir(global, &global.data_dir, "", holder, &["assets"]).map(Some)
}

/// How a command that writes files runs and reports, from its `--dry-run`/`--format` and `-q`.
fn change_report(write: &WriteArgs, global: &GlobalArgs) -> ChangeReport {
    ChangeReport {
        dry_run: write.dry_run,
        format: write.format,
        quiet: global.quiet,
    }
}
