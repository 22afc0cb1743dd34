//! `caas assets`: fetch, verify and list.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::Format;
use crate::ids::Id;
use crate::os::Arch;

#[derive(Debug, Subcommand)]
pub enum AssetsCommand {
    /// Download a release, verify its digests and OpenPGP signatures against pinned keys, and
    /// publish it atomically under assets/<os>/<version>/ (or publish caas itself)
    #[command(subcommand)]
    Fetch(FetchTarget),
    /// Re-verify published releases offline: sizes, sha256 and signatures kept beside the files
    Verify(AssetsVerifyArgs),
    /// List published releases: os, version, files, and when each was verified
    List(AssetsListArgs),
}

#[derive(Debug, Subcommand)]
pub enum FetchTarget {
    /// Flatcar Container Linux: the PXE kernel and initrd, each checked against its .sig
    Flatcar(FlatcarFetchArgs),
    /// Fedora CoreOS live PXE: kernel, initramfs and rootfs named by the stream metadata
    FedoraCoreos(FcosFetchArgs),
    /// CoreOS Container Linux (historical; its servers are gone, so --base-url to a mirror)
    Coreos(CoreosFetchArgs),
    /// An etcd release (etcd and etcdctl from the upstream archive, checked against its
    /// SHA256SUMS), for the etcd roles to run
    Etcd(EtcdFetchArgs),
    /// A static caas binary, as assets/caas/caas plus caas.sha256, for machines to download
    Caas(CaasFetchArgs),
}

/// A Flatcar release channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FlatcarChannel {
    Stable,
    Beta,
    Alpha,
    Lts,
}

/// A CoreOS Container Linux release channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CoreosChannel {
    Stable,
    Beta,
    Alpha,
}

/// A Fedora CoreOS stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FcosStream {
    Stable,
    Testing,
    Next,
    TestingDevel,
    NextDevel,
    Rawhide,
}

/// The command-line name of a `ValueEnum` value (`testing-devel`).
pub fn value_name<T: ValueEnum>(value: &T) -> String {
    value
        .to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default()
}

/// Flags every download takes (an OS release or etcd).
#[derive(Clone, Debug, Args)]
pub struct TransferArgs {
    /// Where releases are published [default: <data-dir>/assets]
    #[arg(long, value_name = "DIR")]
    pub dest: Option<PathBuf>,
    /// Retry a request up to N more times on 408, 429, 5xx and connection errors, waiting 1 s,
    /// 2 s, 4 s… in between
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub retries: u32,
    /// Refuse a file larger than this (bytes, or with a unit: 500MiB, 3GB); a failed oversized
    /// download is deleted, not kept for a resume
    #[arg(long, value_name = "SIZE", default_value = "2GiB", value_parser = parse_size)]
    pub max_size: u64,
    /// Progress and results: text (a bar per file on a terminal, plain lines otherwise) or
    /// json (one event per line)
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// First retry delay in milliseconds (doubles on each retry)
    #[arg(long, hide = true, default_value_t = 1000, value_name = "MS")]
    pub retry_delay_ms: u64,
    /// Give up on a connection that sends nothing for this many milliseconds
    #[arg(long, hide = true, default_value_t = 60_000, value_name = "MS")]
    pub read_timeout_ms: u64,
}

/// A size in bytes, with an optional unit (`KiB`, `MiB`, `GiB`, `KB`, `MB`, `GB`…); at least 1.
fn parse_size(value: &str) -> Result<u64, String> {
    let size: bytesize::ByteSize = value
        .parse()
        .map_err(|_| format!("not a size: {value:?} (e.g. 2GiB, 500MB, 1048576)"))?;
    match size.as_u64() {
        0 => Err("must be at least 1 byte".into()),
        bytes => Ok(bytes),
    }
}

/// Flags every OS fetch takes.
#[derive(Clone, Debug, Args)]
pub struct FetchArgs {
    /// A mirror standing in for the official server (Flatcar/CoreOS: the URL that holds
    /// <arch>-usr/; Fedora CoreOS: the URL that holds streams/)
    #[arg(long, value_name = "URL", value_parser = parse_base_url)]
    pub base_url: Option<url::Url>,
    /// OpenPGP keyring (armored or binary) whose certificates replace the embedded keys
    #[arg(long, value_name = "FILE")]
    pub keyring: Option<PathBuf>,
    /// DANGEROUS: do not check OpenPGP signatures (published digests are still checked)
    #[arg(long)]
    pub insecure_skip_signature: bool,
    #[command(flatten)]
    pub transfer: TransferArgs,
}

#[derive(Debug, Args)]
pub struct FlatcarFetchArgs {
    /// Release channel
    #[arg(long, value_enum, default_value_t = FlatcarChannel::Stable)]
    pub channel: FlatcarChannel,
    /// Release version, or `current` (read from the channel's version.txt)
    #[arg(long, default_value = "current", value_name = "V")]
    pub version: Id,
    /// Architecture
    #[arg(long, value_enum, default_value_t = Arch::Amd64)]
    pub arch: Arch,
    #[command(flatten)]
    pub fetch: FetchArgs,
}

#[derive(Debug, Args)]
pub struct FcosFetchArgs {
    /// Stream whose newest release to fetch
    #[arg(long, value_enum, default_value_t = FcosStream::Stable)]
    pub stream: FcosStream,
    /// `current`, or the version the stream must offer (the metadata names only the newest)
    #[arg(long, default_value = "current", value_name = "V")]
    pub version: Id,
    /// Architecture (x86_64 = amd64, aarch64 = arm64)
    #[arg(long, value_enum, default_value_t = Arch::Amd64)]
    pub arch: Arch,
    #[command(flatten)]
    pub fetch: FetchArgs,
}

#[derive(Debug, Args)]
pub struct CoreosFetchArgs {
    /// Release channel
    #[arg(long, value_enum, default_value_t = CoreosChannel::Stable)]
    pub channel: CoreosChannel,
    /// Release version (the last stable was 2512.3.0), or `current` if the mirror has version.txt
    #[arg(long, default_value = "current", value_name = "V")]
    pub version: Id,
    /// Architecture
    #[arg(long, value_enum, default_value_t = Arch::Amd64)]
    pub arch: Arch,
    #[command(flatten)]
    pub fetch: FetchArgs,
}

#[derive(Debug, Args)]
pub struct EtcdFetchArgs {
    /// Release version, e.g. v3.5.21
    #[arg(long, value_name = "vX.Y.Z")]
    pub version: String,
    /// Architecture
    #[arg(long, value_enum, default_value_t = Arch::Amd64)]
    pub arch: Arch,
    /// The directory holding etcd-<version>-linux-<arch>.tar.gz and SHA256SUMS [default:
    /// https://github.com/etcd-io/etcd/releases/download/<version>/]
    #[arg(long, value_name = "URL", value_parser = parse_base_url)]
    pub base_url: Option<url::Url>,
    /// The archive's sha256, checked instead of the release's SHA256SUMS
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<String>,
    #[command(flatten)]
    pub transfer: TransferArgs,
}

#[derive(Debug, Args)]
pub struct CaasFetchArgs {
    /// The caas binary to publish: statically linked (`make static` builds one)
    /// [default: the running caas]
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,
    /// Where assets are published [default: <data-dir>/assets]
    #[arg(long, value_name = "DIR")]
    pub dest: Option<PathBuf>,
    /// Result format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct AssetsVerifyArgs {
    /// A release directory, an OS directory, or the assets directory [default: <data-dir>/assets]
    #[arg(value_name = "PATH")]
    pub path: Option<PathBuf>,
    /// OpenPGP keyring whose certificates replace the embedded keys
    #[arg(long, value_name = "FILE")]
    pub keyring: Option<PathBuf>,
    /// Result format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct AssetsListArgs {
    /// The assets directory [default: <data-dir>/assets]
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Result format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// A mirror URL: http or https, no query or fragment.
pub fn parse_base_url(value: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(value).map_err(|err| format!("invalid URL {value:?}: {err}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{value:?} is not an http or https URL"));
    }
    if url.query().is_some() || url.fragment().is_some() || url.cannot_be_a_base() {
        return Err(format!(
            "{value:?} must be a plain base URL (no query or fragment)"
        ));
    }
    Ok(url)
}
