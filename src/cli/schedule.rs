//! `caas schedule once`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{Format, TemplatesArgs};
use crate::cluster::spec::parse_api_url;
use crate::discovery::location::Location;
use crate::generate::Compat;
use crate::ids::Id;
use crate::ignition::Spec;
use crate::matchbox::server::MatchboxUrl;
use crate::os::{Arch, Os};
use crate::schedule::assign::WorkerLimit;

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Assign roles once: the first N admitted machines become etcd members, the rest workers;
    /// write their groups, profiles and Ignition. Existing roles never move.
    Once(ScheduleOnceArgs),
}

/// Parses a MAC into its normalised form (lower case, colons).
pub fn parse_mac(value: &str) -> Result<String, String> {
    crate::matchbox::mac::normalize(value).map_err(|_| format!("{value:?} is not a MAC address"))
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
    /// The operator's bearer token for --api (its inventory routes require it; ignored otherwise)
    #[arg(long, env = "CAAS_OPERATOR_TOKEN_FILE", value_name = "FILE")]
    pub operator_token_file: Option<PathBuf>,
    /// For --api over HTTPS: trust the CA certificate(s) in this PEM file (the one that signed
    /// `caas api --tls-cert`) instead of the system's
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Read the discovered machines from the store of `caas api` (its SQLite file or its
    /// PostgreSQL URL), and record the roles there, so that servers sharing it agree
    #[arg(long, value_name = "FILE|URL")]
    pub db: Option<Location>,
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
    /// Free the role of this worker (its boot MAC; repeatable) and remove its group, and the
    /// workers' shared files once no worker is left: only files exactly as caas schedule wrote
    /// them. Forget the machine first (`caas machines forget`), or the next run gives it a role
    /// again. Members are never released: caas never changes a formed etcd cluster
    #[arg(long, value_name = "MAC", value_parser = parse_mac)]
    pub release: Vec<String>,
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
    #[arg(long, env = "CAAS_API_URL", value_name = "URL", value_parser = parse_api_url)]
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
    /// Ignition spec of the configs: 3.3 or 3.4, or 2.0 … 2.3 for `--os coreos` (CoreOS Container
    /// Linux reads 2.x only) [default: 3.3; 2.0 with --compat bootcfg-0.4]
    #[arg(long, value_enum, value_name = "VERSION")]
    pub spec: Option<Spec>,
    /// Write for an older server: bootcfg-0.4 (2016) takes `boot.cmdline` profiles, and serves the
    /// Ignition configs as they are to CoreOS Container Linux, so they are spec 2.x
    #[arg(long, value_enum)]
    pub compat: Option<Compat>,
    /// The etcd release the roles run, under assets/etcd/ (`caas assets fetch etcd`)
    #[arg(long, default_value = "current", value_name = "V")]
    pub etcd_version: Id,
    #[command(flatten)]
    pub templates: TemplatesArgs,
}
