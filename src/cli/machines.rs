//! `caas machines`: what operators see of the inventory, and how they admit and forget.

use std::path::PathBuf;

use crate::discovery::location::Location;
use clap::{Args, Subcommand};

use super::Format;
use super::schedule::parse_mac;

#[derive(Debug, Subcommand)]
pub enum MachinesCommand {
    /// List the machines that reported themselves: admission, boot address, host name, when
    /// seen
    List(MachinesListArgs),
    /// One machine: its admission (who admitted it, when) and its latest report
    Show(MachinesShowArgs),
    /// Admit machines: `caas schedule once` may then give them a role
    Approve(MachinesApproveArgs),
    /// Remove machines from the inventory; one that reports again comes back pending, whatever
    /// `caas api --admit` says
    Forget(MachinesForgetArgs),
}

/// Where the inventory is: the store itself, or a running `caas api`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("inventory").required(true).args(["db", "api"]))]
pub struct InventoryArgs {
    /// The store of `caas api`: its SQLite file (list and show read it read-only, safe while
    /// caas api runs; approve and forget need it free, caas api stopped: use --api while it
    /// runs), or its PostgreSQL URL (every command, while caas api runs)
    #[arg(long, value_name = "FILE|URL")]
    pub db: Option<Location>,
    /// A running `caas api` (its base URL); needs --operator-token-file
    #[arg(long, value_name = "URL")]
    pub api: Option<String>,
    /// The operator's bearer token for --api (ignored otherwise)
    #[arg(long, env = "CAAS_OPERATOR_TOKEN_FILE", value_name = "FILE")]
    pub operator_token_file: Option<PathBuf>,
    /// For --api over HTTPS: trust the CA certificate(s) in this PEM file (the one that signed
    /// `caas api --tls-cert`) instead of the system's
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MachinesListArgs {
    #[command(flatten)]
    pub inventory: InventoryArgs,
    /// Only the machines waiting for admission
    #[arg(long)]
    pub pending: bool,
    /// A table, or JSON (the records of GET /discovery/machines)
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct MachinesShowArgs {
    /// The machine's boot MAC
    #[arg(value_name = "MAC", value_parser = parse_mac)]
    pub mac: String,
    #[command(flatten)]
    pub inventory: InventoryArgs,
    /// Text, or JSON (the record of GET /discovery/machines/MAC)
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["macs", "all"]))]
pub struct MachinesApproveArgs {
    /// Boot MACs of the machines to admit; one not in the inventory changes nothing at all
    #[arg(value_name = "MAC", value_parser = parse_mac)]
    pub macs: Vec<String>,
    /// Admit every pending machine
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub inventory: InventoryArgs,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct MachinesForgetArgs {
    /// Boot MACs of the machines to forget; one not in the inventory changes nothing at all
    #[arg(value_name = "MAC", required = true, value_parser = parse_mac)]
    pub macs: Vec<String>,
    #[command(flatten)]
    pub inventory: InventoryArgs,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}
