//! What commands print about the files they write, and in which format.
//!
//! [`Format`] is the `--format` of every command that reports results; [`write_and_report`] is
//! the one change reporter of the commands that write data files: one line per file saying what
//! happened to it (or, with `--dry-run`, what would), or one JSON document.

use std::io::{self, Write as _};
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use serde::Serialize;

use crate::write::{self, Action, FileWrite, Outcome, WriteOptions, canonical_json};

/// How results are printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// How a command that writes files runs and reports: `--dry-run`, `--format`, `-q`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChangeReport {
    /// Compare with the disk and write nothing.
    pub dry_run: bool,
    pub format: Format,
    /// No text summary (JSON is still printed: it is the command's answer).
    pub quiet: bool,
}

/// Plans or applies `files` (and `removals`) as `report.dry_run` says, and reports on stdout.
///
/// Text: one `<action> <path>` line per file (`-q` silences it); with `--dry-run`, the content
/// of every file that would change. Removed files are reported as `removed <path>` (`would
/// remove` with `--dry-run`). JSON: `{"dry_run": …, "files": [{path, action, sha256}]}`.
pub fn write_and_report(
    files: &[FileWrite],
    removals: &[PathBuf],
    report: &ChangeReport,
) -> Result<Vec<Outcome>> {
    let options = WriteOptions {
        dry_run: report.dry_run,
    };
    let outcomes = write::write_changes(files, removals, options)?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    print_changes(&mut out, files, &outcomes, report)
        .and_then(|()| out.flush())
        .context("writing the summary")?;
    Ok(outcomes)
}

fn print_changes(
    out: &mut impl io::Write,
    files: &[FileWrite],
    outcomes: &[Outcome],
    report: &ChangeReport,
) -> io::Result<()> {
    match report.format {
        Format::Json => {
            #[derive(Serialize)]
            struct Summary<'a> {
                dry_run: bool,
                files: &'a [Outcome],
            }
            out.write_all(&canonical_json(&Summary {
                dry_run: report.dry_run,
                files: outcomes,
            }))
        }
        Format::Text if report.quiet => Ok(()),
        Format::Text => {
            for (i, outcome) in outcomes.iter().enumerate() {
                let action = outcome.action.describe(report.dry_run);
                writeln!(out, "{action} {}", outcome.path.display())?;
                // Removals come after the files; with --dry-run, show what would be written.
                let written = files.get(i).filter(|_| report.dry_run);
                if let Some(file) = written.filter(|_| outcome.action != Action::Unchanged) {
                    out.write_all(&file.bytes)?;
                    if !file.bytes.ends_with(b"\n") {
                        writeln!(out)?;
                    }
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::plan;

    #[test]
    fn dry_run_text_prints_content_of_what_would_change() {
        let dir = tempfile::tempdir().unwrap();
        let files = [FileWrite::new(dir.path().join("x.json"), b"{}\n".to_vec())];
        let outcomes = plan(&files).unwrap();
        let args = ChangeReport {
            dry_run: true,
            format: Format::Text,
            quiet: false,
        };
        let mut out = Vec::new();
        print_changes(&mut out, &files, &outcomes, &args).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("would create "), "{text}");
        assert!(text.ends_with("x.json\n{}\n"), "{text}");
        let mut quiet = Vec::new();
        let args = ChangeReport {
            quiet: true,
            ..args
        };
        print_changes(&mut quiet, &files, &outcomes, &args).unwrap();
        assert!(quiet.is_empty());
    }
}
