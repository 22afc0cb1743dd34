//! `caas chain dnsmasq --hosts-from DATA_DIR`: the addresses the data dir's groups were built
//! on, pinned as dnsmasq `dhcp-host=MAC,IP,NAME` reservations.
//!
//! An etcd cluster is written with its members' addresses (`etcd_initial_cluster`); a lease
//! that changes after a reboot would silently break it. `caas schedule once` records the
//! address a machine was given a role with as the `ipv4` metadata of its group, `caas gen
//! cluster` as `ip`; both select the machine by `mac`. The groups are read as matchbox reads
//! them (a group matchbox skips pins nothing). Reading is I/O; [`reservations`] is pure.

use std::collections::BTreeMap;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::error::{InvalidInput, invalid};
use crate::matchbox::Group;
use crate::matchbox::store::Store;

/// The metadata keys holding a machine's address: `schedule once`'s, then `gen cluster`'s.
const ADDRESS_KEYS: [&str; 2] = ["ipv4", "ip"];

/// One pinned address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reservation {
    pub mac: String,
    pub ip: Ipv4Addr,
    /// The host name handed out with it: the group's id, when it is a legal host name.
    pub name: Option<String>,
}

impl Reservation {
    /// The dnsmasq line.
    pub fn line(&self) -> String {
        match &self.name {
            Some(name) => format!("dhcp-host={},{},{name}", self.mac, self.ip),
            None => format!("dhcp-host={},{}", self.mac, self.ip),
        }
    }
}

/// A group that pins an address: where it is, its id and what it pins.
#[derive(Clone, Debug)]
pub struct Pin {
    pub path: PathBuf,
    pub id: String,
    pub mac: String,
    pub ip: Ipv4Addr,
}

/// Reads the pins of every group of `data_dir` that matchbox loads.
pub fn read_pins(data_dir: &Path) -> Result<Vec<Pin>> {
    if !data_dir.is_dir() {
        return Err(invalid(format!(
            "--hosts-from {}: no such directory",
            data_dir.display()
        )));
    }
    let entries = match Store::new(data_dir).groups() {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => {
            return Err(err).with_context(|| format!("listing {}/groups", data_dir.display()));
        }
    };
    let mut pins = Vec::new();
    for entry in &entries {
        let Some(group) = entry.loaded.ok() else {
            continue;
        };
        if let Some(pin) = pin_of(group, &entry.loaded.path).map_err(|err| invalid(err.0))? {
            pins.push(pin);
        }
    }
    Ok(pins)
}

/// The address a group pins: a `mac` selector and an address in its metadata.
fn pin_of(group: &Group, path: &Path) -> Result<Option<Pin>, InvalidInput> {
    let Some(mac) = group.selector.get("mac") else {
        return Ok(None);
    };
    let Some((key, value)) = ADDRESS_KEYS
        .iter()
        .find_map(|key| group.metadata.get(*key).map(|value| (*key, value)))
    else {
        return Ok(None);
    };
    let ip = value
        .as_str()
        .and_then(|text| text.parse::<Ipv4Addr>().ok())
        .ok_or_else(|| {
            InvalidInput(format!(
                "{}: metadata {key} {value} is not an IPv4 address, so it cannot be pinned",
                path.display()
            ))
        })?;
    Ok(Some(Pin {
        path: path.to_owned(),
        id: group.id.clone(),
        mac: mac.clone(),
        ip,
    }))
}

/// The reservations of `pins`, sorted by address then MAC. Groups that pin the same MAC to
/// the same address (`gen cluster`'s install and installed groups of one machine) make one
/// reservation, named after the shortest id (`node1`, not `node1-installed`). A MAC pinned to
/// two addresses, or an address pinned to two MACs, is an error naming both groups.
pub fn reservations(pins: &[Pin]) -> Result<Vec<Reservation>, InvalidInput> {
    let mut by_mac: BTreeMap<&str, &Pin> = BTreeMap::new();
    let mut by_ip: BTreeMap<Ipv4Addr, &Pin> = BTreeMap::new();
    let mut names: BTreeMap<(Ipv4Addr, &str), &str> = BTreeMap::new();
    for pin in pins {
        if let Some(first) = by_mac.insert(&pin.mac, pin)
            && first.ip != pin.ip
        {
            return Err(InvalidInput(format!(
                "MAC {} is pinned to {} by {} and to {} by {}: one machine gets one address",
                pin.mac,
                first.ip,
                first.path.display(),
                pin.ip,
                pin.path.display()
            )));
        }
        if let Some(first) = by_ip.insert(pin.ip, pin)
            && first.mac != pin.mac
        {
            return Err(InvalidInput(format!(
                "address {} is pinned to {} by {} and to {} by {}: two machines cannot share it",
                pin.ip,
                first.mac,
                first.path.display(),
                pin.mac,
                pin.path.display()
            )));
        }
        let name = names.entry((pin.ip, &pin.mac)).or_insert(&pin.id);
        if (pin.id.len(), pin.id.as_str()) < (name.len(), *name) {
            *name = &pin.id;
        }
    }
    Ok(names
        .into_iter()
        .map(|((ip, mac), name)| Reservation {
            mac: mac.to_owned(),
            ip,
            name: legal_hostname(name).then(|| name.to_owned()),
        })
        .collect())
}

/// A name dnsmasq takes as a host name: one label of letters, digits, `-` and `_` (not first).
fn legal_hostname(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(id: &str, mac: &str, ip: &str) -> Pin {
        Pin {
            path: PathBuf::from(format!("groups/{id}.json")),
            id: id.into(),
            mac: mac.into(),
            ip: ip.parse().unwrap(),
        }
    }

    #[test]
    fn reservations_are_sorted_by_address_and_deduplicated() {
        let pins = [
            pin("worker-0", "52:54:00:00:00:03", "10.0.0.30"),
            pin("node1-installed", "52:54:00:00:00:01", "10.0.0.11"),
            pin("node1", "52:54:00:00:00:01", "10.0.0.11"),
            pin("etcd.0", "52:54:00:00:00:02", "10.0.0.2"),
        ];
        let lines: Vec<String> = reservations(&pins)
            .unwrap()
            .iter()
            .map(Reservation::line)
            .collect();
        assert_eq!(
            lines,
            [
                "dhcp-host=52:54:00:00:00:02,10.0.0.2",
                "dhcp-host=52:54:00:00:00:01,10.0.0.11,node1",
                "dhcp-host=52:54:00:00:00:03,10.0.0.30,worker-0",
            ]
        );
    }

    #[test]
    fn a_mac_or_an_address_given_twice_names_both_groups() {
        let err = reservations(&[
            pin("etcd-0", "52:54:00:00:00:01", "10.0.0.1"),
            pin("other", "52:54:00:00:00:01", "10.0.0.9"),
        ])
        .unwrap_err()
        .0;
        assert_eq!(
            err,
            "MAC 52:54:00:00:00:01 is pinned to 10.0.0.1 by groups/etcd-0.json and to 10.0.0.9 \
             by groups/other.json: one machine gets one address"
        );
        let err = reservations(&[
            pin("etcd-0", "52:54:00:00:00:01", "10.0.0.1"),
            pin("etcd-1", "52:54:00:00:00:02", "10.0.0.1"),
        ])
        .unwrap_err()
        .0;
        assert!(
            err.starts_with("address 10.0.0.1 is pinned to 52:54:00:00:00:01 by groups/etcd-0.json and to 52:54:00:00:00:02 by groups/etcd-1.json"),
            "{err}"
        );
    }

    #[test]
    fn only_legal_host_names_are_handed_out() {
        for ok in ["node1", "etcd-0", "a_b", "N"] {
            assert!(legal_hostname(ok), "{ok}");
        }
        for bad in ["", "-x", "_x", "a.b", "x y", &"a".repeat(64)] {
            assert!(!legal_hostname(bad), "{bad}");
        }
    }
}
