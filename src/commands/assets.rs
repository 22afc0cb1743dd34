//! `caas assets fetch|verify|list`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::ValueEnum;

use crate::assets::fetch::{self, FetchOptions};
use crate::assets::inventory;
use crate::assets::progress::{Event, Reporter};
use crate::assets::release::ReleaseRequest;
use crate::assets::{etcd, static_binary};
use crate::cli::{AssetsCommand, CaasFetchArgs, EtcdFetchArgs, FetchArgs, FetchTarget, GlobalArgs};
use crate::matchbox::DataDir;
use crate::os::Os;
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
        FetchTarget::Flatcar(a) => (
            ReleaseRequest {
                os: Os::Flatcar,
                channel: value_name(&a.channel),
                version: a.version.clone(),
                arch: a.arch,
                base_url: a.fetch.base_url.clone(),
            },
            &a.fetch,
        ),
        FetchTarget::FedoraCoreos(a) => (
            ReleaseRequest {
                os: Os::FedoraCoreos,
                channel: value_name(&a.stream),
                version: a.version.clone(),
                arch: a.arch,
                base_url: a.fetch.base_url.clone(),
            },
            &a.fetch,
        ),
        FetchTarget::Coreos(a) => (
            ReleaseRequest {
                os: Os::Coreos,
                channel: value_name(&a.channel),
                version: a.version.clone(),
                arch: a.arch,
                base_url: a.fetch.base_url.clone(),
            },
            &a.fetch,
        ),
    };
    let options = fetch_options(global, args);
    let reporter = Reporter::new(args.format, global.quiet);
    let result = fetch::fetch_release(&request, &options, &reporter);
    if let Err(err) = &result {
        reporter.event(Event::Failed {
            error: crate::error::one_line(err),
        });
    }
    result
}

fn fetch_options(global: &GlobalArgs, args: &FetchArgs) -> FetchOptions {
    FetchOptions {
        dest: assets_dir(global, args.dest.as_deref()),
        keyring: args.keyring.clone(),
        retries: args.retries,
        retry_delay: Duration::from_millis(args.retry_delay_ms),
        read_timeout: Duration::from_millis(args.read_timeout_ms),
        insecure_skip_signature: args.insecure_skip_signature,
    }
}

/// `caas assets fetch etcd`.
fn fetch_etcd(global: &GlobalArgs, args: &EtcdFetchArgs) -> Result<()> {
    let reporter = Reporter::new(args.format, global.quiet);
    etcd::fetch(
        &etcd::FetchOptions {
            version: args.version.clone(),
            arch: args.arch,
            base_url: args.base_url.clone(),
            sha256: args.sha256.clone(),
            dest: assets_dir(global, args.dest.as_deref()),
            retries: args.retries,
            retry_delay: Duration::from_millis(args.retry_delay_ms),
            read_timeout: Duration::from_millis(args.read_timeout_ms),
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
    let published = static_binary::publish(&static_binary::PublishOptions {
        binary,
        dest: assets_dir(global, args.dest.as_deref()),
    })?;
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
