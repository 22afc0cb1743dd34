//! `caas chain`: build and dnsmasq.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::WriteArgs;
use crate::chain::ChainTarget;
use crate::chain::dnsmasq::{DnsmasqMode, EfiBinary};

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
    /// iPXE source tree, to build kpxe/efi targets with the script embedded (make EMBED=); it
    /// is only read: caas copies its src/ to the build directory and runs make there
    #[arg(long, value_name = "DIR")]
    pub ipxe_src: Option<PathBuf>,
    /// Where --ipxe-src is copied and built, kept between runs so rebuilds take seconds
    /// [default: $XDG_CACHE_HOME/caas/ipxe-build/<hash of the source path>]
    #[arg(long, value_name = "DIR", requires = "ipxe_src")]
    pub ipxe_build_dir: Option<PathBuf>,
    #[command(flatten)]
    pub write: WriteArgs,
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
    pub router: Option<Ipv4Addr>,
    /// Directory dnsmasq serves the iPXE binaries from by TFTP [default: /var/lib/tftpboot]
    #[arg(long, value_name = "DIR")]
    pub tftp_root: Option<String>,
    /// iPXE binary for x86-64 UEFI clients
    #[arg(long, value_enum, default_value_t = EfiBinary::Ipxe, value_name = "FILE")]
    pub efi_binary: EfiBinary,
    /// Pin addresses (full mode): a dhcp-host=MAC,IP,NAME line for every group of this matchbox
    /// data dir that selects a mac and carries its address (ipv4 or ip metadata, as `caas
    /// schedule once` and `caas gen cluster` write)
    #[arg(long, value_name = "DATA_DIR")]
    pub hosts_from: Option<PathBuf>,
    /// Write the config to FILE (atomically) instead of stdout
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub write: WriteArgs,
}
