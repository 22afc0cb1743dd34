//! `caas discover` and `caas api`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::Format;
use crate::discovery::location::Location;
use crate::matchbox::server::MatchboxUrl;

#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// caas api base URL (`/discovery` is appended unless the URL ends with it) [env:
    /// CAAS_API_URL, or DISCOVERY_ADDRESS as the 2016 client read it]
    #[arg(long, env = "CAAS_API_URL", value_name = "URL", hide_env = true)]
    pub api: Option<String>,
    /// Trust only the CA certificate(s) in this PEM file for an https API (e.g. the CA that
    /// signed `caas api --tls-cert`); a certificate it did not sign is refused, not retried
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
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
    /// The store of discovered machines: a SQLite file (created if missing), or a PostgreSQL
    /// database (`postgres://user@host/db`, schema created on first use; TLS with
    /// `?sslmode=require|verify-full`, CA file `&sslrootcert=FILE`), which several `caas api`
    /// can share
    #[arg(
        long,
        env = "CAAS_DB",
        default_value = "caas.db",
        value_name = "FILE|URL"
    )]
    pub db: Location,
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
    /// Connections one client address may hold at once; more are closed on arrival, so one
    /// host cannot take the slots every other machine needs
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub max_connections_per_client: usize,
    /// Serve HTTPS with this PEM certificate (chain), signed by a CA the machines trust
    /// (`caas discover --ca-cert`); needs --tls-key
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert; needs --tls-cert
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Log lines (one per request) as text or JSON
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub log_format: Format,
}
