//! `caas assets fetch|verify|list`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::ValueEnum;

use crate::assets::fetch::{self, FetchOptions};
use crate::assets::http::Transfer;
use crate::assets::inventory;
use crate::assets::progress::{Event, Reporter};
use crate::assets::release::ReleaseRequest;
use crate::assets::{etcd, static_binary};
use crate::cli::{
    AssetsCommand, CaasFetchArgs, EtcdFetchArgs, FetchArgs, FetchTarget, GlobalArgs, TransferArgs,
};
use crate::ids::Id;
use crate::matchbox::DataDir;
use crate::os::{Arch, Os};
use crate::report::{ChangeReport, Fields, Format, NoFields, print_changes};

/// `caas assets …`.
pub fn run(global: &GlobalArgs, command: &AssetsCommand) -> Result<()> {
    match command {
        AssetsCommand::Fetch(target) => fetch(global, target),
        AssetsCommand::Verify(args) => {
            let root = assets_dir(global, args.path.as_deref());
            inventory::verify(&root, args.keyring.as_deref(), args.format, global.quiet)
        }
        AssetsCommand::List(args) => {
            let root = assets_dir(global, args.dir.as_deref());
            inventory::list(&root, args.format, global.quiet)
        }
    }
}

/// `dir`, or the data dir's `assets/`.
fn assets_dir(global: &GlobalArgs, dir: Option<&Path>) -> PathBuf {
    dir.map(Path::to_owned)
        .unwrap_or_else(|| DataDir::new(&global.data_dir).assets_dir())
}

/// The command-line name of a `ValueEnum` value (`testing-devel`): how a channel is named.
fn value_name<T: ValueEnum>(value: &T) -> String {
    value
        .to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default()
}

/// `caas assets fetch <target>`.
fn fetch(global: &GlobalArgs, target: &FetchTarget) -> Result<()> {
    let (request, args) = match target {
        FetchTarget::Caas(args) => return publish_caas(global, args),
        FetchTarget::Etcd(args) => return fetch_etcd(global, args),
        FetchTarget::Flatcar(a) => release(Os::Flatcar, &a.channel, &a.version, a.arch, &a.fetch),
        FetchTarget::FedoraCoreos(a) => {
            release(Os::FedoraCoreos, &a.stream, &a.version, a.arch, &a.fetch)
        }
        FetchTarget::Coreos(a) => release(Os::Coreos, &a.channel, &a.version, a.arch, &a.fetch),
    };
    let options = fetch_options(global, args);
    let _lock = super::lock_dir(global, &options.dest, ".partial", "caas assets fetch", &[])?;
    let reporter = Reporter::new(args.transfer.format, global.quiet);
    let result = fetch::fetch_release(&request, &options, &reporter);
    if let Err(err) = &result {
        reporter.event(Event::Failed {
            error: crate::error::one_line(err),
        });
    }
    result
}

/// What an OS fetch asks for, and the flags it runs with.
fn release<'a>(
    os: Os,
    channel: &impl ValueEnum,
    version: &Id,
    arch: Arch,
    fetch: &'a FetchArgs,
) -> (ReleaseRequest, &'a FetchArgs) {
    let request = ReleaseRequest {
        os,
        channel: value_name(channel),
        version: version.clone(),
        arch,
        base_url: fetch.base_url.clone(),
    };
    (request, fetch)
}

fn fetch_options(global: &GlobalArgs, args: &FetchArgs) -> FetchOptions {
    FetchOptions {
        dest: assets_dir(global, args.transfer.dest.as_deref()),
        keyring: args.keyring.clone(),
        transfer: transfer(&args.transfer),
        insecure_skip_signature: args.insecure_skip_signature,
    }
}

fn transfer(args: &TransferArgs) -> Transfer {
    Transfer {
        retries: args.retries,
        retry_delay: Duration::from_millis(args.retry_delay_ms),
        read_timeout: Duration::from_millis(args.read_timeout_ms),
        max_size: args.max_size,
    }
}

/// `caas assets fetch etcd`.
fn fetch_etcd(global: &GlobalArgs, args: &EtcdFetchArgs) -> Result<()> {
    let dest = assets_dir(global, args.transfer.dest.as_deref());
    let _lock = super::lock_dir(global, &dest, ".partial", "caas assets fetch etcd", &[])?;
    let reporter = Reporter::new(args.transfer.format, global.quiet);
    etcd::fetch(
        &etcd::FetchOptions {
            version: args.version.clone(),
            arch: args.arch,
            base_url: args.base_url.clone(),
            sha256: args.sha256.clone(),
            dest,
            transfer: transfer(&args.transfer),
        },
        &reporter,
    )
}

/// `caas assets fetch caas`: a static caas (`--binary`, default the running one) under
/// `assets/caas/`, then a report.
fn publish_caas(global: &GlobalArgs, args: &CaasFetchArgs) -> Result<()> {
    let binary = match &args.binary {
        Some(path) => path.clone(),
        None => std::env::current_exe().context("finding the running caas binary")?,
    };
    let dest = assets_dir(global, args.dest.as_deref());
    let _lock = super::lock_dir(global, &dest, ".partial", "caas assets fetch caas", &[])?;
    let published = static_binary::publish(&static_binary::PublishOptions { binary, dest })?;
    let (dir, sha256, outcomes) = (&published.dir, &published.sha256, &published.outcomes);
    let mut out = std::io::stdout().lock();
    match args.format {
        // One event, as every `assets fetch` reports in JSON.
        Format::Json => {
            let event = serde_json::json!({
                "event": "published",
                "os": "caas",
                "version": env!("CARGO_PKG_VERSION"),
                "path": dir.display().to_string(),
                "sha256": sha256,
                "size": published.size,
                "files": outcomes,
            });
            writeln!(out, "{event}")?;
        }
        Format::Text if global.quiet => {}
        Format::Text => {
            // The files in the one change-report format; then which caas it is.
            let report = ChangeReport {
                dry_run: false,
                format: Format::Text,
                quiet: false,
            };
            print_changes(
                &mut out,
                &[],
                outcomes,
                &report,
                &Fields::<NoFields>::default(),
            )?;
            writeln!(
                out,
                "caas {} sha256 {sha256}, {} bytes, statically linked",
                env!("CARGO_PKG_VERSION"),
                published.size
            )?;
        }
    }
    Ok(())
}
