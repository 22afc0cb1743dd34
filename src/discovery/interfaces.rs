//! What the machine knows about itself: network interfaces, DMI identity, host name.
//!
//! Links come from sysfs (`<sysfs>/class/net/<name>/{ifindex,address,operstate}`), DMI from
//! `<sysfs>/class/dmi/id/{product_uuid,product_serial}`. The kernel does not put addresses in
//! sysfs (they live behind netlink), so addresses come from netlink on a live system and, for a
//! captured system, from the JSON that `ip -json address` prints.
//!
//! A fixture of a machine is therefore two real formats side by side: a copy of the files above
//! (`cp` them out of /sys, or write them: one value and a newline each, as the kernel does), and
//! `ip -json address > addresses.json` from the same machine. `caas discover --sysfs DIR
//! --addresses FILE` reads those instead of the running kernel.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use anyhow::Context as _;
use ipnet::{IpNet, Ipv4Net};
use serde::Deserialize;

use super::report::Interface;
use crate::matchbox::mac;

/// One network link as sysfs describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// Normalised; `""` when the link has none (all zeros, as loopback), as Go's `net` reports.
    pub mac: String,
    pub state: Option<String>,
}

/// Addresses per interface name, in the order the kernel lists them.
pub type Addresses = BTreeMap<String, Vec<IpNet>>;

/// Reads a sysfs attribute: its first line, trimmed; `None` if absent, unreadable or empty.
fn attribute(path: &Path) -> Option<String> {
    // A sysfs attribute is one short line; a bigger file is not one (and is not read whole).
    match crate::input::read_capped(path, 4096) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let value = text.lines().next().unwrap_or_default().trim();
            (!value.is_empty()).then(|| value.to_owned())
        }
        Err(err) => {
            if err.kind() != io::ErrorKind::NotFound {
                tracing::debug!("cannot read {}: {err}", path.display());
            }
            None
        }
    }
}

/// Every link under `<sysfs>/class/net`, ordered by interface index (then name).
pub fn read_links(sysfs: &Path) -> anyhow::Result<Vec<Link>> {
    let dir = sysfs.join("class/net");
    let entries = fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))?;
    let mut links = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        // class/net also holds plain files (bonding_masters); links are directories (symlinks
        // to them in a real sysfs).
        if name.starts_with('.') || !path.is_dir() {
            continue;
        }
        let address = attribute(&path.join("address")).unwrap_or_default();
        let mac = match mac::Mac::parse(&address) {
            Ok(parsed) if parsed.bytes().iter().all(|&b| b == 0) => String::new(),
            Ok(parsed) => parsed.to_string(),
            Err(_) => address,
        };
        links.push(Link {
            index: attribute(&path.join("ifindex"))
                .and_then(|i| i.parse().ok())
                .unwrap_or(u32::MAX),
            name,
            mac,
            state: attribute(&path.join("operstate")),
        });
    }
    links.sort_by(|a, b| (a.index, &a.name).cmp(&(b.index, &b.name)));
    Ok(links)
}

/// The addresses of the running system, from netlink.
pub fn live_addresses() -> Addresses {
    netdev::get_interfaces()
        .into_iter()
        .map(|iface| {
            let mut addrs: Vec<IpNet> = iface.ipv4.iter().map(|&net| IpNet::V4(net)).collect();
            addrs.extend(iface.ipv6.iter().map(|&net| IpNet::V6(net)));
            (iface.name, addrs)
        })
        .collect()
}

#[derive(Deserialize)]
struct IpLink {
    ifname: String,
    #[serde(default)]
    addr_info: Vec<IpAddrInfo>,
}

#[derive(Deserialize)]
struct IpAddrInfo {
    #[serde(default)]
    local: Option<String>,
    #[serde(default)]
    prefixlen: Option<u8>,
}

/// Reads the output of `ip -json address`.
pub fn parse_ip_json(text: &str) -> anyhow::Result<Addresses> {
    let links: Vec<IpLink> = serde_json::from_str(text)
        .context("expected the JSON array that `ip -json address` prints")?;
    let mut addresses = Addresses::new();
    for link in links {
        let mut list = Vec::new();
        for info in link.addr_info {
            // iproute2 prints `{}` for address entries it filtered out.
            let (Some(local), Some(prefix)) = (info.local, info.prefixlen) else {
                continue;
            };
            let addr = local
                .parse()
                .with_context(|| format!("{}: {local:?} is not an IP address", link.ifname))?;
            let net = IpNet::new(addr, prefix)
                .with_context(|| format!("{}: bad prefix length {prefix}", link.ifname))?;
            list.push(net);
        }
        addresses.insert(link.ifname, list);
    }
    Ok(addresses)
}

/// The report's interfaces: every link, with its addresses; the first IPv4 one is `ipv4`.
pub fn interfaces(links: &[Link], addresses: &Addresses) -> Vec<Interface> {
    links
        .iter()
        .map(|link| {
            let addrs = addresses.get(&link.name).cloned().unwrap_or_default();
            let ipv4 = addrs.iter().find_map(|net| match net {
                IpNet::V4(v4) => Some(Ipv4Net::new(v4.addr(), v4.prefix_len()).expect("valid")),
                IpNet::V6(_) => None,
            });
            Interface {
                name: link.name.clone(),
                mac: link.mac.clone(),
                state: link.state.clone(),
                ipv4,
                addresses: addrs,
                extra: BTreeMap::new(),
            }
        })
        .collect()
}

/// The firmware's identity: DMI product UUID and serial number, when readable (root only on
/// most systems).
pub fn dmi(sysfs: &Path) -> (Option<String>, Option<String>) {
    let dir = sysfs.join("class/dmi/id");
    (
        attribute(&dir.join("product_uuid")).map(|u| u.to_ascii_lowercase()),
        attribute(&dir.join("product_serial")),
    )
}

/// The kernel's host name.
pub fn hostname() -> Option<String> {
    attribute(Path::new("/proc/sys/kernel/hostname"))
}

/// systemd's machine id, when the OS has one.
pub fn machine_id() -> Option<String> {
    attribute(Path::new("/etc/machine-id"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sysfs_fixture() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/discovery/machine-0/sys")
    }

    #[test]
    fn reads_links_from_a_sysfs_tree() {
        let links = read_links(&sysfs_fixture()).unwrap();
        let names: Vec<_> = links.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["lo", "eth0", "eth1"]);
        assert_eq!(links[0].mac, "", "all-zero loopback address reads as none");
        assert_eq!(links[1].mac, "52:54:00:0d:bd:31");
        assert_eq!(links[2].state.as_deref(), Some("down"));
        assert_eq!(
            dmi(&sysfs_fixture()),
            (
                Some("2023e709-39b4-47d7-8905-e8be3e6bc2c6".into()),
                Some("SN-MACHINE-0".into())
            )
        );
        let missing = read_links(Path::new("/nonexistent")).unwrap_err();
        assert!(format!("{missing:#}").contains("/nonexistent/class/net"));
    }

    #[test]
    fn joins_addresses_by_name_and_picks_the_first_ipv4() {
        let text = fs::read_to_string(sysfs_fixture().join("../addresses.json")).unwrap();
        let addresses = parse_ip_json(&text).unwrap();
        let links = read_links(&sysfs_fixture()).unwrap();
        let ifaces = interfaces(&links, &addresses);
        assert_eq!(ifaces[0].ipv4.unwrap().to_string(), "127.0.0.1/8");
        assert_eq!(ifaces[1].ipv4.unwrap().to_string(), "172.20.0.65/21");
        assert_eq!(
            ifaces[1]
                .addresses
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            [
                "172.20.0.65/21",
                "172.20.1.10/21",
                "fe80::5054:ff:fe0d:bd31/64"
            ]
        );
        // The 2016 client gave an interface without IPv4 the previous one's: not here.
        assert_eq!(ifaces[2].ipv4, None);
        assert!(ifaces[2].addresses.is_empty());
    }

    #[test]
    fn bad_address_captures_are_errors() {
        assert!(parse_ip_json("{}").is_err());
        let bad = r#"[{"ifname":"e","addr_info":[{"family":"inet","local":"x","prefixlen":8}]}]"#;
        assert!(format!("{:#}", parse_ip_json(bad).unwrap_err()).contains("\"x\""));
        let bad = r#"[{"ifname":"e","addr_info":[{"local":"10.0.0.1","prefixlen":33}]}]"#;
        assert!(parse_ip_json(bad).is_err());
        let ok = r#"[{"ifname":"e","addr_info":[{}]}]"#;
        assert_eq!(parse_ip_json(ok).unwrap()["e"], []);
    }

    #[test]
    fn live_addresses_include_loopback() {
        // Reads this machine's netlink: only that loopback is there is asserted.
        let live = live_addresses();
        assert!(
            live.values()
                .flatten()
                .any(|net| net.addr() == std::net::IpAddr::from([127, 0, 0, 1])),
            "{live:?}"
        );
    }
}
