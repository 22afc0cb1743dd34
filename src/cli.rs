//! The command line: clap definitions, one struct per command, shared flag groups.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::ids::Id;
use crate::matchbox::server::MatchboxUrl;
use crate::matchbox::target::Target;
use crate::os::{Arch, Os};
use crate::schedule::assign::WorkerLimit;

/// Provision bare-metal Flatcar, Fedora CoreOS and CoreOS Container Linux machines by network
/// boot: caas writes the static files a stock matchbox serves.
#[derive(Debug, Parser)]
#[command(name = "caas", version, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The matchbox data directory (profiles/, groups/, ignition/, assets/)
    #[arg(
        long,
        global = true,
        env = "CAAS_DATA_DIR",
        default_value = "./bootcfg",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,
    /// Say more (repeat for more detail)
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Print nothing but errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate matchbox files: profiles, groups, Ignition configs, whole labs
    #[command(subcommand)]
    Gen(GenCommand),
    /// Chain-load machines into matchbox: iPXE script, boot media, dnsmasq config
    #[command(subcommand)]
    Chain(ChainCommand),
    /// Check a data directory offline: everything matchbox would skip, 404 or serve wrongly
    Lint(LintArgs),
    /// Show which group, profile, iPXE script and Ignition matchbox gives a machine, and why
    Explain(ExplainArgs),
    /// On a booting machine: report its interfaces and boot identity to `caas api`
    Discover(DiscoverArgs),
    /// The discovery receiver: store the reports of booting machines (SQLite), serve them
    Api(ApiArgs),
    /// OS boot assets: fetch and verify releases, publish them under assets/, list them
    #[command(subcommand)]
    Assets(AssetsCommand),
    /// Turn discovered machines into roles: an etcd cluster and its workers
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Print a shell completion script
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum GenCommand {
    /// Write profiles/<id>.json: the kernel, initrd and arguments a class of machines boots with
    Profile(GenProfileArgs),
    /// Write groups/<id>.json: which machines (selectors) get which profile, with what metadata
    Group(GenGroupArgs),
    /// Write ignition/<id>.ign: a template rendered to a validated Ignition config
    Ignition(GenIgnitionArgs),
    /// Write every profile, group and Ignition config of a lab from one YAML spec
    Cluster(GenClusterArgs),
}

/// How results are printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// Flags of every command that writes files.
#[derive(Clone, Debug, Args)]
pub struct WriteArgs {
    /// Print what would be written, and write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Summary format: one line per file, or JSON (path, action, sha256)
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// The kernel-argument format of the profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Compat {
    /// bootcfg before matchbox v0.5: write the `boot.cmdline` map instead of `boot.args`
    #[value(name = "bootcfg-0.4")]
    Bootcfg04,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["os", "kernel"]))]
pub struct GenProfileArgs {
    /// Profile id, also the file name: profiles/<ID>.json
    #[arg(long, value_name = "ID")]
    pub id: Id,
    /// Human-readable name [default: the id]
    #[arg(long)]
    pub name: Option<String>,
    /// Ignition file served to these machines, under ignition/ [default: <ID>.ign]
    #[arg(long, value_name = "FILE")]
    pub ignition: Option<Id>,
    /// Boot this OS from assets/<os>/<version>/, with the kernel arguments it needs
    #[arg(long, value_enum)]
    pub os: Option<Os>,
    /// Release under assets/<os>/; `current` is resolved through the published `current` link
    #[arg(long, default_value = "current", requires = "os", value_name = "V")]
    pub version: Id,
    /// Architecture (names Fedora CoreOS files when no manifest is published)
    #[arg(long, value_enum, default_value_t = Arch::Amd64, requires = "os")]
    pub arch: Arch,
    /// Kernel URL, instead of --os (relative URLs such as /assets/… resolve against matchbox)
    #[arg(long, value_name = "URL")]
    pub kernel: Option<String>,
    /// Initrd URL(s), each one iPXE `initrd` line; options go in with `=`: --initrd="--name main /assets/…"
    #[arg(long, value_name = "URL", num_args = 1.., requires = "kernel")]
    pub initrd: Vec<String>,
    /// Kernel argument(s) to add; `key=value` replaces the OS default with the same key
    #[arg(long = "arg", value_name = "ARG", num_args = 1..)]
    pub args: Vec<String>,
    /// matchbox base URL as machines reach it (needed for Ignition and other absolute URLs)
    #[arg(long, env = "CAAS_MATCHBOX_URL", value_name = "URL")]
    pub matchbox_url: Option<MatchboxUrl>,
    /// Write for an older server
    #[arg(long, value_enum)]
    pub compat: Option<Compat>,
    #[command(flatten)]
    pub write: WriteArgs,
}

#[derive(Debug, Args)]
pub struct GenGroupArgs {
    /// Group id, also the file name: groups/<ID>.json
    #[arg(long, value_name = "ID")]
    pub id: Id,
    /// Profile these machines boot (profiles/<P>.json must exist)
    #[arg(long, value_name = "P")]
    pub profile: Id,
    /// Human-readable name [default: the id]
    #[arg(long)]
    pub name: Option<String>,
    /// Label the machine must carry (repeatable); `mac` is normalised. None: the default group
    #[arg(long = "selector", value_name = "K=V", num_args = 1.., value_parser = parse_key_value)]
    pub selectors: Vec<(String, String)>,
    /// Template metadata (repeatable); values that parse as JSON stay typed, others are strings
    #[arg(long = "metadata", value_name = "K=V", num_args = 1.., value_parser = parse_key_value)]
    pub metadata: Vec<(String, String)>,
    /// Metadata from a JSON or YAML object; --metadata flags override its keys
    #[arg(long, value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,
    /// Write the group even when profiles/<P>.json does not exist yet
    #[arg(long)]
    pub allow_missing_profile: bool,
    #[command(flatten)]
    pub write: WriteArgs,
}

// ---------------------------------------------------------------------------------------------
// caas chain

#[derive(Debug, Subcommand)]
pub enum ChainCommand {
    /// Render the iPXE chain script (DHCP, then chain the boot URL) and build media that run it
    Build(ChainBuildArgs),
    /// Write a dnsmasq config: iPXE for PXE firmware (BIOS/UEFI), the boot URL for iPXE
    Dnsmasq(ChainDnsmasqArgs),
}

/// Where iPXE is sent: a whole URL, or matchbox's host and port.
#[derive(Clone, Debug, Args)]
#[command(group = clap::ArgGroup::new("boot").required(true).args(["boot_url", "server"]))]
pub struct BootUrlArgs {
    /// URL iPXE chains, http or https (e.g. http://matchbox.lab:8080/boot.ipxe)
    #[arg(long, value_name = "URL")]
    pub boot_url: Option<String>,
    /// matchbox as HOST[:PORT]: chains http://HOST:PORT/boot.ipxe (default port 8080)
    #[arg(long, value_name = "HOST[:PORT]")]
    pub server: Option<String>,
}

/// What `caas chain build` produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum ChainTarget {
    /// chain.ipxe, the script itself
    Script,
    /// ipxe.lkrn + chain.ipxe as its initrd, with isolinux/syslinux, GRUB and PXELINUX entries
    Lkrn,
    /// caas-chain.iso: El Torito CD image (BIOS; UEFI too when an ipxe.efi is found)
    Iso,
    /// caas-chain-usb.img: the same image made hybrid, to write to a USB stick
    Usb,
    /// undionly.kpxe with the script embedded (needs --ipxe-src)
    Kpxe,
    /// ipxe.efi and snponly.efi with the script embedded (needs --ipxe-src)
    Efi,
}

#[derive(Debug, Args)]
pub struct ChainBuildArgs {
    #[command(flatten)]
    pub boot: BootUrlArgs,
    /// Outputs to build, comma-separated
    #[arg(
        long = "target",
        value_enum,
        value_delimiter = ',',
        num_args = 1..,
        default_value = "script,iso",
        value_name = "TARGET"
    )]
    pub targets: Vec<ChainTarget>,
    /// Output directory
    #[arg(long, default_value = "./chain", value_name = "DIR")]
    pub out: PathBuf,
    /// Prebuilt iPXE binaries (ipxe.lkrn, ipxe.efi), looked up before /usr/lib/ipxe
    #[arg(long, value_name = "DIR")]
    pub ipxe_dir: Option<PathBuf>,
    /// iPXE source tree, to build kpxe/efi targets with the script embedded (make EMBED=)
    #[arg(long, value_name = "DIR")]
    pub ipxe_src: Option<PathBuf>,
    #[command(flatten)]
    pub write: WriteArgs,
}

/// How `caas chain dnsmasq` serves DHCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DnsmasqMode {
    /// Proxy DHCP beside the existing DHCP server: only boot information, no addresses
    Proxy,
    /// The network's DHCP server: leases addresses from --range
    Full,
}

/// The iPXE binary UEFI PXE firmware loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EfiBinary {
    /// iPXE with its own NIC drivers
    #[value(name = "ipxe.efi")]
    Ipxe,
    /// iPXE on the firmware's network driver (SNP), the UEFI counterpart of undionly.kpxe
    #[value(name = "snponly.efi")]
    Snponly,
}

#[derive(Debug, Args)]
pub struct ChainDnsmasqArgs {
    #[command(flatten)]
    pub boot: BootUrlArgs,
    /// proxy: next to an existing DHCP server; full: dnsmasq leases the addresses
    #[arg(long, value_enum, default_value_t = DnsmasqMode::Proxy)]
    pub mode: DnsmasqMode,
    /// Serve only this interface (e.g. eth1) [default: all]
    #[arg(long, value_name = "IF")]
    pub interface: Option<String>,
    /// full: START,END of the lease pool; proxy: the NETWORK[/PREFIX] served (required)
    #[arg(long, value_name = "START,END|NETWORK")]
    pub range: Option<String>,
    /// Default gateway handed to clients (full mode)
    #[arg(long, value_name = "IP")]
    pub router: Option<std::net::Ipv4Addr>,
    /// Directory dnsmasq serves the iPXE binaries from by TFTP [default: /var/lib/tftpboot]
    #[arg(long, value_name = "DIR")]
    pub tftp_root: Option<String>,
    /// iPXE binary for x86-64 UEFI clients
    #[arg(long, value_enum, default_value_t = EfiBinary::Ipxe, value_name = "FILE")]
    pub efi_binary: EfiBinary,
    /// Write the config to FILE (atomically) instead of stdout
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub write: WriteArgs,
}

// ---- lint and explain (issue 3) ----

/// Findings that fail the run besides errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Deny {
    /// Exit 1 on warnings too
    Warnings,
}

#[derive(Debug, Args)]
pub struct LintArgs {
    /// The data directory to check [default: --data-dir]
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The server that will serve the directory
    #[arg(long, value_enum, default_value_t = Target::Matchbox011)]
    pub target: Target,
    /// Findings as `path:line:col: severity[code]: message` lines, or a JSON array
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Fail (exit 1) on warnings as well as errors
    #[arg(long, value_enum, value_name = "warnings")]
    pub deny: Option<Deny>,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The machine's MAC address (the `mac` label; normalised, dropped if invalid, as matchbox does)
    #[arg(long, value_name = "MAC")]
    pub mac: Option<String>,
    /// The machine's SMBIOS UUID (the `uuid` label)
    #[arg(long, value_name = "UUID")]
    pub uuid: Option<String>,
    /// More labels, as query parameters of the request (`os=installed`); the first value of a
    /// repeated key counts
    #[arg(value_name = "LABEL=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// The server that serves the directory
    #[arg(long, value_enum, default_value_t = Target::Matchbox011)]
    pub target: Target,
    /// Human-readable report, or JSON
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Parses `key=value` for a label; an empty value is a label too (`domain=` from iPXE).
pub fn parse_label(arg: &str) -> Result<(String, String), String> {
    parse_key_value(arg)
}

/// Parses `key=value`; the key must be non-empty.
pub fn parse_key_value(arg: &str) -> Result<(String, String), String> {
    match arg.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {arg:?}")),
    }
}

// ---- discovery: `caas discover`, `caas api` ----

#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// caas api base URL (`/discovery` is appended unless the URL ends with it) [env:
    /// CAAS_API_URL, or DISCOVERY_ADDRESS as the 2016 client read it]
    #[arg(long, env = "CAAS_API_URL", value_name = "URL", hide_env = true)]
    pub api: Option<String>,
    /// Print the report as JSON instead of sending it
    #[arg(long)]
    pub dry_run: bool,
    /// LLDP neighbours from this lldpctl capture (`-f xml` or `-f keyvalue`)
    #[arg(long, value_name = "FILE")]
    pub lldp_file: Option<PathBuf>,
    /// Attempts after the first when the API is unreachable or answers 5xx
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub retries: u32,
    /// Wait before the first retry; doubles each time, up to 30s
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub retry_wait: Duration,
    /// Limit for one attempt (connect, send, answer)
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
    /// Kernel command line with the boot identity (the config URL's uuid= and mac=)
    #[arg(long, default_value = "/proc/cmdline", value_name = "PATH")]
    pub proc_cmdline: PathBuf,
    /// Read links and DMI from this sysfs tree instead of /sys (a capture; needs --addresses)
    #[arg(long, value_name = "PATH", requires = "addresses")]
    pub sysfs: Option<PathBuf>,
    /// Read addresses from this `ip -json address` capture instead of the kernel (needs --sysfs)
    #[arg(long, value_name = "FILE", requires = "sysfs")]
    pub addresses: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ApiArgs {
    /// Address and port to listen on
    #[arg(long, default_value = "127.0.0.1:5000", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// SQLite file of discovered machines (created if missing)
    #[arg(long, env = "CAAS_DB", default_value = "caas.db", value_name = "FILE")]
    pub db: PathBuf,
    /// matchbox base URL: GET /ipxe is proxied there and /healthz probes it
    #[arg(long, env = "CAAS_MATCHBOX_URL", value_name = "URL")]
    pub matchbox_url: Option<MatchboxUrl>,
    /// Longest a request may take, body included (then 408)
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub request_timeout: Duration,
    /// Longest a client may take to send request headers, or stay idle between requests
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub header_timeout: Duration,
    /// Connections served at once; more wait to be accepted
    #[arg(long, default_value_t = 1024, value_name = "N")]
    pub max_connections: usize,
    /// Log lines (one per request) as text or JSON
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub log_format: Format,
}

// ---- gen ignition, gen cluster (issue 4) ----

/// Where templates come from besides the built-in ones.
#[derive(Clone, Debug, Default, Args)]
pub struct TemplatesArgs {
    /// Directory of <NAME>.yaml.tera templates that add to or override the built-in ones
    #[arg(long = "templates", env = "CAAS_TEMPLATES", value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct GenIgnitionArgs {
    /// Template: a name (discovery, etcd-member, etcd-gateway, install, ssh, or one from
    /// --templates) or the path of a template file (with a `/`, or ending in .tera)
    #[arg(long, value_name = "NAME|PATH")]
    pub template: String,
    /// Config id, also the file name: ignition/<ID>.ign
    #[arg(long, value_name = "ID")]
    pub id: Id,
    /// Template variable (repeatable); values that parse as JSON stay typed, others are strings
    #[arg(long = "var", value_name = "K=V", num_args = 1.., value_parser = parse_key_value)]
    pub vars: Vec<(String, String)>,
    /// Variables from a JSON or YAML object; --var flags override its keys
    #[arg(long, value_name = "FILE")]
    pub vars_file: Option<PathBuf>,
    /// Ignition spec version of the config
    #[arg(long, value_enum, default_value = "3.3", value_name = "VERSION")]
    pub spec: crate::ignition::Spec,
    #[command(flatten)]
    pub templates: TemplatesArgs,
    #[command(flatten)]
    pub write: WriteArgs,
}

#[derive(Debug, Args)]
pub struct GenClusterArgs {
    /// The lab spec (YAML) [default: the built-in example, examples/lab.yaml]
    #[arg(short = 'f', long = "file", value_name = "LAB.yaml")]
    pub file: Option<PathBuf>,
    /// matchbox base URL as machines reach it, instead of the spec's `matchbox_url`
    #[arg(long, env = "CAAS_MATCHBOX_URL", value_name = "URL")]
    pub matchbox_url: Option<MatchboxUrl>,
    /// caas API URL as machines reach it, instead of the spec's `api_url`
    #[arg(long, env = "CAAS_API_URL", value_name = "URL")]
    pub api_url: Option<String>,
    /// Remove the files an earlier run wrote that the spec no longer names
    #[arg(long)]
    pub prune: bool,
    /// Print the built-in example spec and exit
    #[arg(long, conflicts_with_all = ["file", "prune"])]
    pub print_example: bool,
    #[command(flatten)]
    pub templates: TemplatesArgs,
    #[command(flatten)]
    pub write: WriteArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn key_values_split_at_the_first_equals() {
        assert_eq!(
            parse_key_value("url=http://x/?a=b").unwrap(),
            ("url".into(), "http://x/?a=b".into())
        );
        assert_eq!(parse_key_value("k=").unwrap(), ("k".into(), "".into()));
        assert!(parse_key_value("=v").is_err());
        assert!(parse_key_value("novalue").is_err());
    }
}

// ---- caas assets (fetch, verify, list) ----

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
    /// Where releases are published [default: <data-dir>/assets]
    #[arg(long, value_name = "DIR")]
    pub dest: Option<PathBuf>,
    /// Retry a request up to N more times on 408, 429, 5xx and connection errors
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub retries: u32,
    /// Progress and results: text or json (one event per line)
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// First retry delay in milliseconds (doubles on each retry)
    #[arg(long, hide = true, default_value_t = 1000, value_name = "MS")]
    pub retry_delay_ms: u64,
    /// Give up on a connection that sends nothing for this many milliseconds
    #[arg(long, hide = true, default_value_t = 60_000, value_name = "MS")]
    pub read_timeout_ms: u64,
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

/// Flags every OS fetch takes.
#[derive(Clone, Debug, Args)]
pub struct FetchArgs {
    /// A mirror standing in for the official server (Flatcar/CoreOS: the URL that holds
    /// <arch>-usr/; Fedora CoreOS: the URL that holds streams/)
    #[arg(long, value_name = "URL", value_parser = parse_base_url)]
    pub base_url: Option<url::Url>,
    /// Where releases are published [default: <data-dir>/assets]
    #[arg(long, value_name = "DIR")]
    pub dest: Option<PathBuf>,
    /// OpenPGP keyring (armored or binary) whose certificates replace the embedded keys
    #[arg(long, value_name = "FILE")]
    pub keyring: Option<PathBuf>,
    /// Retry a request up to N more times on 408, 429, 5xx and connection errors, waiting 1 s,
    /// 2 s, 4 s… in between
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub retries: u32,
    /// DANGEROUS: do not check OpenPGP signatures (published digests are still checked)
    #[arg(long)]
    pub insecure_skip_signature: bool,
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

// ---- caas schedule (issue 8) ----

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Assign roles once: the first N machines become etcd members, the rest workers; write
    /// their groups, profiles and Ignition. Existing roles never move.
    Once(ScheduleOnceArgs),
}

/// Parses `--workers`: `all` or a count.
pub fn parse_workers(value: &str) -> Result<WorkerLimit, String> {
    match value {
        "all" => Ok(WorkerLimit::All),
        n => n
            .parse()
            .map(WorkerLimit::AtMost)
            .map_err(|_| format!("expected `all` or a number, got {value:?}")),
    }
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("discovered").required(true).args(["api", "db", "discovery"]))]
pub struct ScheduleOnceArgs {
    /// Read the discovered machines from a running `caas api` (its base URL)
    #[arg(long, value_name = "URL")]
    pub api: Option<String>,
    /// Read the discovered machines from the store of `caas api` (read-only)
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// Read the discovered machines from a JSON file (GET /discovery/machines or /discovery)
    #[arg(long, value_name = "FILE.json")]
    pub discovery: Option<PathBuf>,
    /// Size of the etcd cluster; odd unless --allow-even
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub etcd_members: u16,
    /// Accept an even --etcd-members (it tolerates no more failures than N-1 members)
    #[arg(long)]
    pub allow_even: bool,
    /// How many of the other machines become workers (etcd gateways): all, or at most N
    #[arg(long, default_value = "all", value_name = "all|N", value_parser = parse_workers)]
    pub workers: WorkerLimit,
    /// Print what would change, write nothing; exit 0 when nothing would, 2 when it would
    #[arg(long)]
    pub plan: bool,
    /// Report format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// matchbox base URL as machines reach it (Ignition URLs in the profiles)
    #[arg(long, env = "CAAS_MATCHBOX_URL", value_name = "URL")]
    pub matchbox_url: Option<MatchboxUrl>,
    /// The discovery API URL, recorded in the groups' metadata (api_url) for templates
    #[arg(long, env = "CAAS_API_URL", value_name = "URL", value_parser = crate::cluster::spec::parse_api_url)]
    pub api_url: Option<MatchboxUrl>,
    /// OS the roles boot, from assets/<os>/<version>/
    #[arg(long, value_enum, default_value_t = Os::Flatcar)]
    pub os: Os,
    /// Release under assets/<os>/; `current` is pinned through the published `current` link
    #[arg(long, default_value = "current", value_name = "V")]
    pub version: Id,
    /// Architecture (names Fedora CoreOS files when no manifest is published)
    #[arg(long, value_enum, default_value_t = Arch::Amd64)]
    pub arch: Arch,
    /// Kernel argument(s) added to every role's profile (`key=value` replaces the OS default)
    #[arg(long = "arg", value_name = "ARG", num_args = 1..)]
    pub args: Vec<String>,
    /// SSH public key for the `core` user of every scheduled machine (repeatable)
    #[arg(long = "ssh-authorized-key", value_name = "KEY")]
    pub ssh_authorized_keys: Vec<String>,
    /// Ignition spec of the configs
    #[arg(long, value_enum, default_value_t = crate::ignition::Spec::V3_3)]
    pub spec: crate::ignition::Spec,
    /// The etcd release the roles run, under assets/etcd/ (`caas assets fetch etcd`)
    #[arg(long, default_value = "current", value_name = "V")]
    pub etcd_version: Id,
    #[command(flatten)]
    pub templates: TemplatesArgs,
}
