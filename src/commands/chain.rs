//! `caas chain build` and `caas chain dnsmasq`.

use std::io::{self, Write as _};

use anyhow::{Context as _, Result};
use serde::Serialize;

use super::change_report;
use crate::chain::dnsmasq::DnsmasqConfig;
use crate::chain::hosts;
use crate::chain::url::{BootTarget, BootUrl};
use crate::chain::{self, BuildOptions};
use crate::cli::{BootUrlArgs, ChainBuildArgs, ChainCommand, ChainDnsmasqArgs, GlobalArgs};
use crate::error::invalid;
use crate::report::{self, Fields, Format};
use crate::write::{self, FileWrite, WriteOptions};

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
    let chain::Built { outputs, notes } = chain::build(&BuildOptions {
        url: url.clone(),
        targets: args.targets.iter().copied().collect(),
        ipxe_dir: args.ipxe_dir.clone(),
        ipxe_src: args.ipxe_src.clone(),
        ipxe_build_dir: args.ipxe_build_dir.clone(),
        quiet: global.quiet,
    })?;
    let files: Vec<FileWrite> = outputs
        .into_iter()
        .map(|output| FileWrite::new(args.out.join(&output.name), output.bytes))
        .collect();
    let report = change_report(&args.write, global);
    let options = WriteOptions {
        dry_run: report.dry_run,
    };
    let outcomes = write::write_changes(&files, &[], options)?;
    let fields = Fields {
        digests: true,
        json: BuildFields {
            boot_url: url.as_str(),
            notes: &notes,
        },
    };
    let mut out = io::stdout().lock();
    report::print_changes(&mut out, &files, &outcomes, &report, &fields)
        .and_then(|()| {
            if report.prints_text() {
                for note in &notes {
                    writeln!(out, "note: {note}")?;
                }
            }
            Ok(())
        })
        .context("writing the summary")
}

/// What `chain build` adds to its change report: the URL the media chain, and notes.
#[derive(Serialize)]
struct BuildFields<'a> {
    boot_url: &'a str,
    notes: &'a [String],
}

/// `caas chain dnsmasq`: the config to `--out FILE` (atomically), or to stdout.
fn dnsmasq(global: &GlobalArgs, args: &ChainDnsmasqArgs) -> Result<()> {
    let url = boot_url(&args.boot)?;
    let mut config = DnsmasqConfig::new(
        url,
        args.mode,
        args.interface.as_deref(),
        args.range.as_deref(),
        args.router,
        args.tftp_root.as_deref(),
        args.efi_binary,
    )
    .map_err(|err| invalid(err.0))?;
    if let Some(data_dir) = &args.hosts_from {
        let pins = hosts::read_pins(data_dir)?;
        let reservations = hosts::reservations(&pins).map_err(|err| invalid(err.0))?;
        config = config
            .with_hosts(reservations)
            .map_err(|err| invalid(err.0))?;
    }
    let text = config.render()?;
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
