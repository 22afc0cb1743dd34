//! `caas chain dnsmasq`: a dnsmasq configuration that hands iPXE to PXE firmware and the boot
//! URL to iPXE. Firmware is told apart by its client architecture (DHCP option 93: 0 is BIOS,
//! which gets `undionly.kpxe`; 7 and 9 are x86-64 UEFI, which get `ipxe.efi` or `snponly.efi`);
//! iPXE by its user class (`iPXE`), so it is handed the boot URL and never loads itself again
//! (<https://ipxe.org/howto/chainloading>). In proxy mode dnsmasq appends `.0` to BIOS boot file
//! names. Validation and rendering are pure.

use std::net::Ipv4Addr;

use anyhow::{Context as _, Result};
use serde::Serialize;

use super::hosts::Reservation;
use super::url::BootUrl;
use crate::error::InvalidInput;

const TEMPLATE: &str = include_str!("../../templates/dnsmasq.conf.tera");

/// Where dnsmasq serves the iPXE binaries from when `--tftp-root` is not given.
pub const DEFAULT_TFTP_ROOT: &str = "/var/lib/tftpboot";

/// How `caas chain dnsmasq` serves DHCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DnsmasqMode {
    /// Proxy DHCP beside the existing DHCP server: only boot information, no addresses
    Proxy,
    /// The network's DHCP server: leases addresses from --range
    Full,
}

/// The iPXE binary UEFI PXE firmware loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EfiBinary {
    /// iPXE with its own NIC drivers
    #[value(name = "ipxe.efi")]
    Ipxe,
    /// iPXE on the firmware's network driver (SNP), the UEFI counterpart of undionly.kpxe
    #[value(name = "snponly.efi")]
    Snponly,
}

/// The addresses dnsmasq answers for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Range {
    /// Proxy DHCP for a network (`192.168.1.0`, or `192.168.1.0/24` with a netmask).
    Proxy {
        network: Ipv4Addr,
        prefix: Option<u8>,
    },
    /// Full DHCP: a pool of addresses to lease.
    Full { start: Ipv4Addr, end: Ipv4Addr },
}

/// Everything the configuration says, validated.
#[derive(Clone, Debug)]
pub struct DnsmasqConfig {
    pub boot_url: BootUrl,
    pub interface: Option<String>,
    pub range: Range,
    pub router: Option<Ipv4Addr>,
    pub tftp_root: String,
    pub efi_binary: EfiBinary,
    /// Pinned addresses (`--hosts-from`), full mode only.
    pub hosts: Vec<Reservation>,
}

impl DnsmasqConfig {
    /// Validates the flags of `caas chain dnsmasq`; every error names the flag and value.
    pub fn new(
        boot_url: BootUrl,
        mode: DnsmasqMode,
        interface: Option<&str>,
        range: Option<&str>,
        router: Option<Ipv4Addr>,
        tftp_root: Option<&str>,
        efi_binary: EfiBinary,
    ) -> Result<DnsmasqConfig, InvalidInput> {
        let interface = interface.map(check_interface).transpose()?;
        let range = parse_range(mode, range)?;
        if let (DnsmasqMode::Proxy, Some(router)) = (mode, router) {
            return Err(InvalidInput(format!(
                "--router {router} only applies to --mode full: in proxy mode the existing DHCP \
                 server hands out the router"
            )));
        }
        let tftp_root = check_tftp_root(tftp_root.unwrap_or(DEFAULT_TFTP_ROOT))?;
        Ok(DnsmasqConfig {
            boot_url,
            interface,
            range,
            router,
            tftp_root,
            efi_binary,
            hosts: Vec::new(),
        })
    }

    /// Pins `hosts` (`--hosts-from`): only a DHCP server that leases addresses can.
    pub fn with_hosts(mut self, hosts: Vec<Reservation>) -> Result<DnsmasqConfig, InvalidInput> {
        if matches!(self.range, Range::Proxy { .. }) {
            return Err(InvalidInput(
                "--hosts-from only applies to --mode full: in proxy mode the existing DHCP \
                 server hands out the addresses, so pin them there"
                    .into(),
            ));
        }
        self.hosts = hosts;
        Ok(self)
    }

    /// The configuration text.
    pub fn render(&self) -> Result<String> {
        #[derive(Serialize)]
        struct Values<'a> {
            mode: &'a str,
            mode_title: &'a str,
            boot_url: &'a str,
            efi_binary: &'a str,
            tftp_root: &'a str,
            interface: Option<&'a str>,
            network: Option<String>,
            netmask: Option<String>,
            range_start: Option<String>,
            range_end: Option<String>,
            router: Option<String>,
            hosts: Vec<String>,
        }
        let mut values = Values {
            mode: "",
            mode_title: "",
            boot_url: self.boot_url.as_str(),
            efi_binary: self.efi_binary.file_name(),
            tftp_root: &self.tftp_root,
            interface: self.interface.as_deref(),
            network: None,
            netmask: None,
            range_start: None,
            range_end: None,
            router: self.router.map(|r| r.to_string()),
            hosts: self.hosts.iter().map(Reservation::line).collect(),
        };
        match self.range {
            Range::Proxy { network, prefix } => {
                values.mode = "proxy";
                values.mode_title = "proxy DHCP next to an existing DHCP server";
                values.network = Some(network.to_string());
                values.netmask = prefix.map(|p| netmask(p).to_string());
            }
            Range::Full { start, end } => {
                values.mode = "full";
                values.mode_title = "full DHCP server";
                values.range_start = Some(start.to_string());
                values.range_end = Some(end.to_string());
            }
        }
        let mut tera = tera::Tera::default();
        tera.add_raw_template("dnsmasq.conf", TEMPLATE)
            .context("parsing the built-in template dnsmasq.conf.tera")?;
        let context = tera::Context::from_serialize(&values)
            .context("preparing the values of dnsmasq.conf.tera")?;
        let mut text = tera
            .render("dnsmasq.conf", &context)
            .context("rendering the built-in template dnsmasq.conf.tera")?;
        if !text.ends_with('\n') {
            text.push('\n');
        }
        Ok(text)
    }
}

impl EfiBinary {
    /// The file name PXE firmware loads over TFTP.
    pub fn file_name(self) -> &'static str {
        match self {
            EfiBinary::Ipxe => "ipxe.efi",
            EfiBinary::Snponly => "snponly.efi",
        }
    }
}

fn netmask(prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0))
}

fn check_interface(name: &str) -> Result<String, InvalidInput> {
    let bad = |why: &str| InvalidInput(format!("invalid --interface {name:?}: {why}"));
    // Linux interface names: at most 15 bytes; dnsmasq also takes a trailing '*' wildcard.
    if name.is_empty() || name.len() > 15 {
        return Err(bad("an interface name has 1 to 15 characters"));
    }
    let body = name.strip_suffix('*').unwrap_or(name);
    if let Some(c) = body
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '@')))
    {
        return Err(bad(&format!("{c:?} is not allowed in an interface name")));
    }
    Ok(name.to_owned())
}

fn parse_ipv4(flag: &str, whole: &str, part: &str) -> Result<Ipv4Addr, InvalidInput> {
    part.trim().parse().map_err(|_| {
        InvalidInput(format!(
            "invalid {flag} {whole:?}: {part:?} is not an IPv4 address"
        ))
    })
}

fn parse_range(mode: DnsmasqMode, range: Option<&str>) -> Result<Range, InvalidInput> {
    match (mode, range) {
        (DnsmasqMode::Proxy, None) => Err(InvalidInput(
            "--mode proxy needs --range NETWORK[/PREFIX]: the network the existing DHCP server \
             serves, e.g. --range 192.168.1.0/24"
                .into(),
        )),
        (DnsmasqMode::Full, None) => Err(InvalidInput(
            "--mode full needs --range START,END: the addresses to lease, e.g. --range \
             192.168.1.100,192.168.1.199"
                .into(),
        )),
        (DnsmasqMode::Proxy, Some(value)) => {
            if value.contains(',') {
                return Err(InvalidInput(format!(
                    "invalid --range {value:?}: in proxy mode the range is the network \
                     (NETWORK[/PREFIX], e.g. 192.168.1.0/24); START,END is for --mode full"
                )));
            }
            let (address, prefix) = match value.split_once('/') {
                Some((address, prefix)) => {
                    let prefix = prefix
                        .parse::<u8>()
                        .ok()
                        .filter(|p| (1..=32).contains(p))
                        .ok_or_else(|| {
                            InvalidInput(format!(
                                "invalid --range {value:?}: the prefix length must be 1 to 32"
                            ))
                        })?;
                    (address, Some(prefix))
                }
                None => (value, None),
            };
            let network = parse_ipv4("--range", value, address)?;
            Ok(Range::Proxy { network, prefix })
        }
        (DnsmasqMode::Full, Some(value)) => {
            let Some((start, end)) = value.split_once(',') else {
                return Err(InvalidInput(format!(
                    "invalid --range {value:?}: give START,END (e.g. 192.168.1.100,192.168.1.199)"
                )));
            };
            let start = parse_ipv4("--range", value, start)?;
            let end = parse_ipv4("--range", value, end)?;
            if start > end {
                return Err(InvalidInput(format!(
                    "invalid --range {value:?}: the start {start} comes after the end {end}"
                )));
            }
            Ok(Range::Full { start, end })
        }
    }
}

fn check_tftp_root(path: &str) -> Result<String, InvalidInput> {
    let bad = |why: &str| InvalidInput(format!("invalid --tftp-root {path:?}: {why}"));
    if !path.starts_with('/') {
        return Err(bad(
            "give an absolute path (dnsmasq runs from another directory)",
        ));
    }
    if let Some(c) = path
        .chars()
        .find(|c| c.is_control() || matches!(c, ',' | '#'))
    {
        return Err(bad(&format!(
            "{c:?} is not allowed: dnsmasq would split or cut the option"
        )));
    }
    if path.ends_with(char::is_whitespace) {
        return Err(bad("trailing whitespace would be dropped by dnsmasq"));
    }
    // dnsmasq reads its configuration lines with quoting (`"`) and, inside quotes, backslash
    // escapes, and squeezes or drops white space outside quotes: such a path would be read as
    // another one, or not at all (an unbalanced quote fails `dnsmasq --test`).
    if let Some(c) = path
        .chars()
        .find(|c| matches!(c, '"' | '\\') || c.is_whitespace())
    {
        return Err(bad(&format!(
            "{c:?} is not allowed: dnsmasq reads it as quoting, escaping or a separator, not as \
             part of the path"
        )));
    }
    let trimmed = path.trim_end_matches('/');
    Ok(if trimmed.is_empty() { "/" } else { trimmed }.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url() -> BootUrl {
        BootUrl::parse("--boot-url", "http://10.0.0.2:8080/boot.ipxe").unwrap()
    }

    fn config(
        mode: DnsmasqMode,
        interface: Option<&str>,
        range: &str,
        router: Option<&str>,
        efi: EfiBinary,
    ) -> Result<DnsmasqConfig, InvalidInput> {
        DnsmasqConfig::new(
            url(),
            mode,
            interface,
            Some(range),
            router.map(|r| r.parse().unwrap()),
            None,
            efi,
        )
    }

    #[test]
    fn renders_every_mode() {
        let proxy = config(
            DnsmasqMode::Proxy,
            None,
            "10.0.0.0/24",
            None,
            EfiBinary::Ipxe,
        )
        .unwrap()
        .render()
        .unwrap();
        insta::assert_snapshot!("dnsmasq_proxy", proxy);
        let full = config(
            DnsmasqMode::Full,
            Some("rack0"),
            "10.0.0.50,10.0.0.99",
            Some("10.0.0.1"),
            EfiBinary::Snponly,
        )
        .unwrap()
        .render()
        .unwrap();
        insta::assert_snapshot!("dnsmasq_full", full);
    }

    #[test]
    fn no_chain_load_loop() {
        for mode in [DnsmasqMode::Proxy, DnsmasqMode::Full] {
            let range = match mode {
                DnsmasqMode::Proxy => "10.0.0.0",
                DnsmasqMode::Full => "10.0.0.50,10.0.0.99",
            };
            let text = config(mode, None, range, None, EfiBinary::Ipxe)
                .unwrap()
                .render()
                .unwrap();
            // Every line handing out an iPXE binary excludes iPXE; every line handing out the
            // URL is only for iPXE.
            for line in text.lines().filter(|l| !l.starts_with('#')) {
                if line.contains(".kpxe") || line.contains(".efi") {
                    assert!(line.contains("tag:!caas-ipxe"), "{line}");
                }
                if line.contains("http://") {
                    assert!(line.contains("tag:caas-ipxe,"), "{line}");
                }
            }
            assert!(
                text.contains("dhcp-userclass=set:caas-ipxe,iPXE\n"),
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_bad_flags_with_their_name() {
        type Case<'a> = (
            DnsmasqMode,
            Option<&'a str>,
            &'a str,
            Option<&'a str>,
            &'a str,
        );
        let cases: [Case; 9] = [
            (
                DnsmasqMode::Proxy,
                None,
                "10.0.0.50,10.0.0.99",
                None,
                "--range",
            ),
            (DnsmasqMode::Proxy, None, "10.0.0.0/33", None, "--range"),
            (DnsmasqMode::Proxy, None, "10.0.0", None, "--range"),
            (DnsmasqMode::Full, None, "10.0.0.50", None, "--range"),
            (
                DnsmasqMode::Full,
                None,
                "10.0.0.99,10.0.0.50",
                None,
                "--range",
            ),
            (DnsmasqMode::Full, None, "10.0.0.50,x", None, "--range"),
            (
                DnsmasqMode::Proxy,
                None,
                "10.0.0.0",
                Some("10.0.0.1"),
                "--router",
            ),
            (
                DnsmasqMode::Full,
                Some("eth0 x"),
                "10.0.0.1,10.0.0.2",
                None,
                "--interface",
            ),
            (
                DnsmasqMode::Full,
                Some("averyveryverylongname"),
                "10.0.0.1,10.0.0.2",
                None,
                "--interface",
            ),
        ];
        for (mode, interface, range, router, flag) in cases {
            let err = config(mode, interface, range, router, EfiBinary::Ipxe)
                .unwrap_err()
                .to_string();
            assert!(err.contains(flag), "{err}");
        }
        for bad in ["relative/dir", "/a,b", "/a\nb", "/a#b", " /x"] {
            let err = DnsmasqConfig::new(
                url(),
                DnsmasqMode::Proxy,
                None,
                Some("10.0.0.0"),
                None,
                Some(bad),
                EfiBinary::Ipxe,
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains("--tftp-root"), "{err}");
        }
        let missing = DnsmasqConfig::new(
            url(),
            DnsmasqMode::Full,
            None,
            None,
            None,
            None,
            EfiBinary::Ipxe,
        )
        .unwrap_err()
        .to_string();
        assert!(missing.contains("--range START,END"), "{missing}");
    }

    #[test]
    fn netmasks_from_prefixes() {
        assert_eq!(netmask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(netmask(32), Ipv4Addr::new(255, 255, 255, 255));
        assert_eq!(netmask(1), Ipv4Addr::new(128, 0, 0, 0));
    }
}
