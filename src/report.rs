//! What commands print about the files they write, and in which format.
//!
//! [`Format`] is the `--format` of every command that reports results. [`print_changes`] is the
//! one change reporter of every command that writes files (`gen …`, `chain build`, `chain
//! dnsmasq --out`, `schedule once`, `assets fetch caas`), in one format:
//!
//! - text: one `<action> <path>` line per file, in the order written (`created`, `updated`,
//!   `unchanged`, `removed`; `would create`… with `--dry-run`), with ` sha256:<hex>` appended
//!   where the command promises digests; with `--dry-run`, each text file that would change is
//!   shown after its line. `-q` prints nothing.
//! - JSON: one document, `{"dry_run", "files": [{"path", "action", "sha256", "size"}]}` plus the
//!   command's own fields (`boot_url`, `notes`, `members`…).

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

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
    /// No text (JSON is still printed: it is the command's answer).
    pub quiet: bool,
}

impl ChangeReport {
    /// Whether text lines are printed: `--format text` without `-q`.
    pub fn prints_text(&self) -> bool {
        self.format == Format::Text && !self.quiet
    }
}

/// Plans or applies `files` (and `removals`) as `report.dry_run` says, and reports on stdout
/// with [`print_changes`] (no digests, no fields of the command's own).
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
    print_changes(
        &mut out,
        files,
        &outcomes,
        report,
        &Fields::<NoFields>::default(),
    )
    .and_then(|()| out.flush())
    .context("writing the summary")?;
    Ok(outcomes)
}

/// What a command adds to the common change report.
#[derive(Default)]
pub struct Fields<E = NoFields> {
    /// Append ` sha256:<hex>` to each text line.
    pub digests: bool,
    /// The command's own fields, after `dry_run` and `files` in the JSON document.
    pub json: E,
}

/// No fields besides `dry_run` and `files`.
#[derive(Default, Serialize)]
pub struct NoFields {}

/// One file in a change report: what happened to it, its digest and size (none when removed).
#[derive(Serialize)]
struct FileChange<'a> {
    path: &'a Path,
    action: Action,
    #[serde(skip_serializing_if = "str::is_empty")]
    sha256: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<usize>,
}

#[derive(Serialize)]
struct Document<'a, E: Serialize> {
    dry_run: bool,
    files: Vec<FileChange<'a>>,
    #[serde(flatten)]
    fields: &'a E,
}

/// Reports the `outcomes` of writing `files` (then any removals, which have no bytes) in the
/// one change-report format described in the module docs.
pub fn print_changes<E: Serialize>(
    out: &mut impl io::Write,
    files: &[FileWrite],
    outcomes: &[Outcome],
    report: &ChangeReport,
    fields: &Fields<E>,
) -> io::Result<()> {
    // Removals come after the files: they have no bytes to show or measure.
    let written = |i: usize| files.get(i);
    if report.format == Format::Json {
        let document = Document {
            dry_run: report.dry_run,
            files: outcomes
                .iter()
                .enumerate()
                .map(|(i, outcome)| FileChange {
                    path: &outcome.path,
                    action: outcome.action,
                    sha256: &outcome.sha256,
                    size: written(i).map(|file| file.bytes.len()),
                })
                .collect(),
            fields: &fields.json,
        };
        return out.write_all(&canonical_json(&document));
    }
    if !report.prints_text() {
        return Ok(());
    }
    for (i, outcome) in outcomes.iter().enumerate() {
        let action = outcome.action.describe(report.dry_run);
        write!(out, "{action} {}", outcome.path.display())?;
        if fields.digests && !outcome.sha256.is_empty() {
            write!(out, " sha256:{}", outcome.sha256)?;
        }
        writeln!(out)?;
        let preview = written(i)
            .filter(|_| report.dry_run && outcome.action != Action::Unchanged)
            .filter(|file| is_text(&file.bytes));
        if let Some(file) = preview {
            out.write_all(&file.bytes)?;
            if !file.bytes.ends_with(b"\n") {
                writeln!(out)?;
            }
        }
    }
    Ok(())
}

/// Whether a file can be shown on a terminal: UTF-8 without NUL bytes (configs and scripts,
/// never a boot image).
fn is_text(bytes: &[u8]) -> bool {
    !bytes.contains(&0) && std::str::from_utf8(bytes).is_ok()
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
        print_changes(
            &mut out,
            &files,
            &outcomes,
            &args,
            &Fields::<NoFields>::default(),
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("would create "), "{text}");
        assert!(text.ends_with("x.json\n{}\n"), "{text}");
        let mut quiet = Vec::new();
        let args = ChangeReport {
            quiet: true,
            ..args
        };
        print_changes(
            &mut quiet,
            &files,
            &outcomes,
            &args,
            &Fields::<NoFields>::default(),
        )
        .unwrap();
        assert!(quiet.is_empty());
    }

    #[test]
    fn one_format_with_the_command_s_own_digests_and_fields() {
        let dir = tempfile::tempdir().unwrap();
        let files = [FileWrite::new(
            dir.path().join("a.iso"),
            vec![0, 159, 146, 150],
        )];
        let outcomes = plan(&files).unwrap();
        #[derive(Serialize)]
        struct Own {
            boot_url: &'static str,
        }
        let fields = Fields {
            digests: true,
            json: Own {
                boot_url: "http://m/boot.ipxe",
            },
        };
        let text = ChangeReport {
            dry_run: true,
            ..ChangeReport::default()
        };
        let mut out = Vec::new();
        print_changes(&mut out, &files, &outcomes, &text, &fields).unwrap();
        let out = String::from_utf8(out).unwrap();
        let sha = &outcomes[0].sha256;
        assert!(out.ends_with(&format!("a.iso sha256:{sha}\n")), "{out}");
        assert_eq!(out.lines().count(), 1, "a binary file is not shown: {out}");

        let json = ChangeReport {
            format: Format::Json,
            ..text
        };
        let mut out = Vec::new();
        print_changes(&mut out, &files, &outcomes, &json, &fields).unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(doc["dry_run"], true);
        assert_eq!(doc["boot_url"], "http://m/boot.ipxe");
        assert_eq!(doc["files"][0]["action"], "created");
        assert_eq!(doc["files"][0]["size"], 4);
        assert_eq!(doc["files"][0]["sha256"], sha.as_str());
    }
}
