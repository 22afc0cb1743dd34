//! caas ("CoreOS as a Service"): provisions bare-metal Flatcar Container Linux, Fedora CoreOS and
//! CoreOS Container Linux machines by network boot.
//!
//! caas is a toolkit of one-shot generators. Each command reads inputs and writes static files
//! that a stock matchbox (or its ancestor bootcfg) serves; caas never has to run for a machine
//! to boot. Decisions and rendering are pure functions; I/O lives at the edges, and every file is
//! written through [`write`].

pub mod assets;
pub mod cache;
pub mod chain;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod commands;
pub mod discovery;
pub mod error;
pub mod etcd;
pub mod explain;
pub mod generate;
pub mod ids;
pub mod ignition;
pub mod input;
pub mod lint;
pub mod matchbox;
pub mod os;
pub mod publish;
pub mod report;
pub mod schedule;
pub mod write;
