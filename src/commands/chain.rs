//! `caas chain build` and `caas chain dnsmasq`.

use std::io::{self, Write as _};
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use serde::Serialize;

use super::change_report;
use crate::chain::dnsmasq::DnsmasqConfig;
use crate::chain::url::{BootTarget, BootUrl};
use crate::chain::{self, BuildOptions, Output};
use crate::cli::{BootUrlArgs, ChainBuildArgs, ChainCommand, ChainDnsmasqArgs, GlobalArgs};
use crate::error::invalid;
use crate::report::{self, Format};
use crate::write::{self, Action, FileWrite, WriteOptions};

/// `caas chain …`.
pub fn run(global: &GlobalArgs, command: &ChainCommand) -> Result<()> {
    match command {
        ChainCommand::Build(args) => build(global, args),
        ChainCommand::Dnsmasq(args) => dnsmasq(global, args),
    }
}

/// `--boot-url` or `--server` (clap requires one).
fn boot_target(args: &BootUrlArgs) -> Result<BootTarget> {
    match (&args.boot_url, &args.server) {
        (Some(url), _) => Ok(BootTarget::Url(url.clone())),
        (None, Some(server)) => Ok(BootTarget::Server(server.clone())),
        (None, None) => Err(invalid("give --boot-url URL or --server HOST[:PORT]")),
    }
}

fn boot_url(args: &BootUrlArgs) -> Result<BootUrl> {
    boot_target(args)?.boot_url().map_err(|err| invalid(err.0))
}

/// `caas chain build`: build every output, write them all at once, report.
fn build(global: &GlobalArgs, args: &ChainBuildArgs) -> Result<()> {
    let url = boot_url(&args.boot)?;
    let built = chain::build(&BuildOptions {
        url: url.clone(),
        targets: args.targets.iter().copied().collect(),
        ipxe_dir: args.ipxe_dir.clone(),
        ipxe_src: args.ipxe_src.clone(),
        quiet: global.quiet,
    })?;
    let files: Vec<FileWrite> = built
        .outputs
        .iter()
        .map(|o| FileWrite::new(args.out.join(&o.name), o.bytes.clone()))
        .collect();
    let options = WriteOptions {
        dry_run: args.write.dry_run,
    };
    let outcomes = write::write_changes(&files, &[], options)?;
    let report = BuildReport {
        boot_url: url.as_str(),
        dry_run: args.write.dry_run,
        files: outcomes
            .iter()
            .zip(&built.outputs)
            .map(|(outcome, output)| FileReport {
                path: &outcome.path,
                action: outcome.action,
                sha256: &outcome.sha256,
                size: output.bytes.len(),
            })
            .collect(),
        notes: &built.notes,
    };
    let mut out = io::stdout().lock();
    print_report(
        &mut out,
        &report,
        &built.outputs,
        args.write.format,
        global.quiet,
    )
    .context("writing the summary")
}

#[derive(Serialize)]
struct FileReport<'a> {
    path: &'a PathBuf,
    action: Action,
    sha256: &'a str,
    size: usize,
}

#[derive(Serialize)]
struct BuildReport<'a> {
    boot_url: &'a str,
    dry_run: bool,
    files: Vec<FileReport<'a>>,
    notes: &'a [String],
}

/// Text: `<action> <path> sha256:<hex>` per file (with `--dry-run`, text outputs are shown),
/// then `note: …` lines. JSON: the report as one document.
fn print_report(
    out: &mut impl io::Write,
    report: &BuildReport<'_>,
    outputs: &[Output],
    format: Format,
    quiet: bool,
) -> io::Result<()> {
    match format {
        Format::Json => out.write_all(&write::canonical_json(report)),
        Format::Text if quiet => Ok(()),
        Format::Text => {
            for (file, output) in report.files.iter().zip(outputs) {
                let action = file.action.describe(report.dry_run);
                writeln!(
                    out,
                    "{action} {} sha256:{}",
                    file.path.display(),
                    file.sha256
                )?;
                if report.dry_run && file.action != Action::Unchanged && output.text {
                    out.write_all(&output.bytes)?;
                }
            }
            for note in report.notes {
                writeln!(out, "note: {note}")?;
            }
            Ok(())
        }
    }
}

/// `caas chain dnsmasq`: the config to `--out FILE` (atomically), or to stdout.
fn dnsmasq(global: &GlobalArgs, args: &ChainDnsmasqArgs) -> Result<()> {
    let url = boot_url(&args.boot)?;
    let text = DnsmasqConfig::new(
        url,
        args.mode,
        args.interface.as_deref(),
        args.range.as_deref(),
        args.router,
        args.tftp_root.as_deref(),
        args.efi_binary,
    )
    .map_err(|err| invalid(err.0))?
    .render()?;
    match &args.out {
        Some(path) => {
            let file = FileWrite::new(path, text.into_bytes());
            report::write_and_report(&[file], &[], &change_report(&args.write, global))?;
        }
        None => {
            if args.write.dry_run || args.write.format == Format::Json {
                return Err(invalid(
                    "--dry-run and --format json report on a written file: give --out FILE",
                ));
            }
            io::stdout()
                .lock()
                .write_all(text.as_bytes())
                .context("writing the config to stdout")?;
        }
    }
    Ok(())
}
