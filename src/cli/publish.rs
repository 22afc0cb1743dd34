//! `caas publish`: serve what matchbox would answer without matchbox's per-request cost.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::WriteArgs;
use crate::matchbox::target::Target;

#[derive(Debug, Subcommand)]
pub enum PublishCommand {
    /// Resolve the data directory once into a tree (and an nginx configuration) that any
    /// static HTTP server serves with matchbox's exact answers, at constant cost per request
    Static(PublishStaticArgs),
}

#[derive(Debug, Args)]
pub struct PublishStaticArgs {
    /// Where the tree, its versions and nginx.conf go (`current` is the tree being served)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The matchbox whose answers the tree reproduces (v0.7–v0.9 serve raw Ignition byte for byte)
    #[arg(long, value_enum, default_value_t = Target::Matchbox08)]
    pub target: Target,
    /// The address nginx listens on (nginx.conf's `listen`)
    #[arg(long, default_value = "8080", value_name = "ADDR")]
    pub listen: String,
    /// A matchbox that answers /metadata (it echoes each request's query, so no file can);
    /// without it nginx answers /metadata with 404
    #[arg(long, value_name = "URL")]
    pub metadata_upstream: Option<String>,
    #[command(flatten)]
    pub write: WriteArgs,
}
