//! `caas lint` and `caas explain`: read a data directory, print what was found.

use std::io::{self, Write as _};
use std::process::ExitCode;

use anyhow::Result;

use crate::cli::{ExplainArgs, GlobalArgs, LintArgs};
use crate::explain::{Options, explain_dir, render_text};
use crate::lint::{Severity, lint_tree};
use crate::report::Format;

/// `caas lint`: findings on stdout, a summary on stderr; exit 1 on errors (or warnings with
/// `--deny warnings`).
pub fn lint(global: &GlobalArgs, args: &LintArgs) -> Result<ExitCode> {
    let dir = args.dir.as_ref().unwrap_or(&global.data_dir);
    let (findings, tree) = lint_tree(dir, args.target)?;
    // The process ends right after printing: freeing tens of thousands of parsed files would
    // take longer than some of the checks.
    std::mem::forget(tree);
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let warnings = findings.len() - errors;
    let mut out = io::stdout().lock();
    match args.format {
        Format::Text => {
            for finding in &findings {
                writeln!(out, "{finding}")?;
            }
        }
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &findings)?;
            writeln!(out)?;
        }
    }
    out.flush()?;
    if !global.quiet {
        let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        eprintln!(
            "lint ({}): {}, {} in {}",
            args.target.name(),
            plural(errors, "error"),
            plural(warnings, "warning"),
            dir.display()
        );
    }
    let fail = errors > 0 || (args.deny.is_some() && warnings > 0);
    Ok(if fail {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `caas explain`: the report on stdout; exit 1, with the reason on stderr, when `/ipxe`
/// would answer 404.
pub fn explain(global: &GlobalArgs, args: &ExplainArgs) -> Result<ExitCode> {
    let mut query: Vec<(String, String)> = Vec::new();
    if let Some(mac) = &args.mac {
        query.push(("mac".into(), mac.clone()));
    }
    if let Some(uuid) = &args.uuid {
        query.push(("uuid".into(), uuid.clone()));
    }
    query.extend(args.labels.iter().cloned());
    let cache = if args.no_index {
        None
    } else {
        crate::cache::dir()
    };
    let options = Options {
        cache: cache.as_deref(),
        every_group: args.all,
    };
    let explanation = explain_dir(&global.data_dir, args.target, &query, options)?;
    let mut out = io::stdout().lock();
    match args.format {
        Format::Text => out.write_all(render_text(&explanation).as_bytes())?,
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &explanation)?;
            writeln!(out)?;
        }
    }
    out.flush()?;
    match &explanation.not_found {
        Some(reason) => {
            eprintln!("error: {reason}");
            Ok(ExitCode::FAILURE)
        }
        None => Ok(ExitCode::SUCCESS),
    }
}
