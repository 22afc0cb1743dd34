//! `caas gen`: profile, group, ignition and cluster.

use std::path::PathBuf;

use clap::Args;

use super::{TemplatesArgs, WriteArgs, parse_key_value};
use crate::cluster::spec::parse_api_url;
use crate::generate::Compat;
use crate::ids::Id;
use crate::ignition::Spec;
use crate::matchbox::server::MatchboxUrl;
use crate::os::{Arch, Os};

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
    /// Label the machine must carry (repeatable); `mac` is normalised, `uuid` lower-cased (as iPXE
    /// sends it). None: the default group
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
    /// Ignition spec version of the config: 3.3 or 3.4 (Flatcar, Fedora CoreOS), or 2.0 … 2.3
    /// (CoreOS Container Linux; Flatcar reads them too): the template's 3.x-shaped YAML is
    /// translated, and what the version cannot express is refused
    #[arg(long, value_enum, default_value = "3.3", value_name = "VERSION")]
    pub spec: Spec,
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
    #[arg(long, env = "CAAS_API_URL", value_name = "URL", value_parser = parse_api_url)]
    pub api_url: Option<MatchboxUrl>,
    /// Remove the files an earlier run wrote that the spec no longer names
    #[arg(long)]
    pub prune: bool,
    /// Print the built-in example spec and exit
    #[arg(long, conflicts_with_all = ["file", "prune"])]
    pub print_example: bool,
    /// Ignition spec of every config, instead of the spec's `ignition_spec`: 3.3, 3.4, or 2.0 …
    /// 2.3 for `os: coreos` [default: 3.3; 2.0 with --compat bootcfg-0.4]
    #[arg(long, value_enum, value_name = "VERSION")]
    pub spec: Option<Spec>,
    /// Write for an older server: bootcfg-0.4 (2016) takes `boot.cmdline` profiles, and serves the
    /// Ignition configs as they are to CoreOS Container Linux, so they are spec 2.x
    #[arg(long, value_enum)]
    pub compat: Option<Compat>,
    #[command(flatten)]
    pub templates: TemplatesArgs,
    #[command(flatten)]
    pub write: WriteArgs,
}
