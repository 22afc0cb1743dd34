//! The command line: clap definitions only, one file per command group. The handlers that turn
//! these into calls of the domain live in `commands`; no domain module imports this one.
//!
//! Flag values with a meaning of their own (an OS, a target server, an output format) are
//! domain types that derive `clap::ValueEnum` where they are defined; argument groups (one of
//! `--os`/`--kernel`, …) become domain enums in the handlers.

mod assets;
mod chain;
mod discovery;
mod r#gen;
mod lint;
mod machines;
mod schedule;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use self::assets::*;
pub use self::chain::*;
pub use self::discovery::*;
pub use self::r#gen::*;
pub use self::lint::*;
pub use self::machines::*;
pub use self::schedule::*;
pub use crate::report::Format;

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
    /// When another caas is writing the same data (or assets) directory, fail with exit 1
    /// instead of waiting for it
    #[arg(long, global = true)]
    pub no_wait: bool,
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
    /// The inventory of discovered machines: list, show, approve (admit), forget
    #[command(subcommand)]
    Machines(MachinesCommand),
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

/// Where templates come from besides the built-in ones.
#[derive(Clone, Debug, Default, Args)]
pub struct TemplatesArgs {
    /// Directory of <NAME>.yaml.tera templates that add to or override the built-in ones
    #[arg(long = "templates", env = "CAAS_TEMPLATES", value_name = "DIR")]
    pub dir: Option<PathBuf>,
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
