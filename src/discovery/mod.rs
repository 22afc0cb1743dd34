//! Discovery: booting machines report themselves (`caas discover`), `caas api` receives and keeps
//! the reports, and the scheduler reads them.
//!
//! - [`report`]: the report model (JSON in and out, the 2016 spellings accepted, the coherence
//!   check, the boot IPv4 helper);
//! - [`cmdline`]: the kernel command line parser and the boot identity on it;
//! - [`interfaces`], [`lldp`]: what the machine says about itself (sysfs, netlink or an
//!   `ip -json address` capture, lldpctl captures);
//! - [`client`]: `caas discover` and the HTTP client side (`fetch_machines`);
//! - [`server`]: `caas api`;
//! - [`tls`]: the certificates of `caas api --tls-cert` and `caas discover --ca-cert`;
//! - [`storage`]: the storage seam, what the API, the scheduler and the listings need from a
//!   store ([`storage::StoreRead`], [`storage::Storage`]), and the SQLite engine behind it;
//! - [`store`]: the SQLite store, its group-committing writer, read-only access;
//! - [`postgres`]: the PostgreSQL store (several `caas api` on one database);
//! - [`location`]: what `--db` names: a SQLite file or a PostgreSQL URL;
//! - [`memory`]: an in-memory store, for the HTTP handlers' in-process tests;
//! - [`machine`]: a discovered machine as readers see it, from any of the three sources.
//!
//! For the scheduler: [`storage::open_sqlite_read_only`] + [`storage::StoreRead::machines`] (`--db`),
//! [`client::fetch_machines`] (`--api`), [`machine::machines_from_json`] (`--discovery FILE`);
//! each gives [`Machine`]s first seen first, and [`Machine::boot_ipv4`] the address to use.

pub mod client;
pub mod cmdline;
pub mod interfaces;
pub mod lldp;
pub mod location;
pub mod machine;
pub mod memory;
mod pg_tls;
pub mod postgres;
pub mod report;
pub mod server;
pub mod storage;
pub mod store;
pub mod tls;

pub use machine::Machine;
pub use report::Report;
