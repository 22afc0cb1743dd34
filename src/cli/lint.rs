//! `caas lint` and `caas explain`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::{Format, parse_label};
use crate::matchbox::target::Target;

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
    /// List every group that lost, also those sharing no label with the request (by default
    /// they are counted once there are more than 10: another machine's groups)
    #[arg(long)]
    pub all: bool,
    /// Read every group file, and neither use nor refresh the group index that speeds up
    /// directories of 256 groups or more (kept in $XDG_CACHE_HOME/caas/group-index)
    #[arg(long)]
    pub no_index: bool,
}
