//! The discovery report: what `caas discover` sends, `caas api` checks and stores, and the
//! scheduler reads.
//!
//! ```json
//! {"boot-info": {"uuid": "…", "mac": "52:54:00:0d:bd:31", "product-uuid": "…", "serial": "…",
//!                "machine-id": "…"},
//!  "hostname": "node1",
//!  "interfaces": [{"name": "eth0", "mac": "52:54:00:0d:bd:31", "state": "up",
//!                  "ipv4": "172.20.0.65", "cidrv4": "172.20.0.65/21", "netmask": 21,
//!                  "addresses": ["172.20.0.65/21", "fe80::5054:ff:fe0d:bd31/64"]}],
//!  "lldp": {"neighbors": [{"interface": "eth0", "chassis": {"id": "…", "name": "…"},
//!                          "port": {"id": "…"}}]}}
//! ```
//!
//! Parsing is lenient where the 2016 client (discoveryC) differs and strict where a value would
//! mislead a consumer:
//! - the 2016 spellings `MAC`, `IPv4` and `CIDRv4` are accepted for `mac`, `ipv4`, `cidrv4`, and
//!   its `lldp` shape (`{"is_file", "data": {"interfaces": […]}}`) for `lldp.neighbors`;
//! - `netmask` is the prefix length, as in 2016 (an integer); a dotted mask is accepted too;
//! - an empty `ipv4` (`""`) means "no address"; an address that does not parse is an error;
//! - keys caas does not know are kept (top level, `boot-info` and interfaces), so a newer client
//!   loses nothing through an older server.
//!
//! Output always uses the names above; [`Report::to_json`] is deterministic.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::matchbox::mac;

/// A machine's discovery report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    #[serde(rename = "boot-info")]
    pub boot_info: BootInfo,
    /// The kernel's host name when the report was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    pub interfaces: Vec<Interface>,
    /// LLDP neighbours, when the client was given an lldpctl capture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lldp: Option<Lldp>,
    /// Keys this version of caas does not know, kept as received.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// How the machine booted: the identity iPXE put on the kernel command line, and what the
/// firmware and OS say about themselves.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BootInfo {
    /// iPXE's `${uuid}` (the SMBIOS UUID) from the config URL; empty when unknown.
    #[serde(default)]
    pub uuid: String,
    /// The MAC the machine network-booted from; the machine's key.
    pub mac: String,
    /// /sys/class/dmi/id/product_uuid.
    #[serde(
        default,
        rename = "product-uuid",
        skip_serializing_if = "Option::is_none"
    )]
    pub product_uuid: Option<String>,
    /// /sys/class/dmi/id/product_serial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// /etc/machine-id.
    #[serde(
        default,
        rename = "machine-id",
        skip_serializing_if = "Option::is_none"
    )]
    pub machine_id: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// One network interface.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "WireInterface", into = "WireInterface")]
pub struct Interface {
    pub name: String,
    /// Lower case with colons when it parses as a MAC; `""` for none (loopback); otherwise as
    /// received.
    pub mac: String,
    /// The kernel's operational state (`up`, `down`, `unknown`, …) when known.
    pub state: Option<String>,
    /// The first IPv4 address with its prefix length.
    pub ipv4: Option<Ipv4Net>,
    /// Every address (IPv4 and IPv6) with its prefix length.
    pub addresses: Vec<IpNet>,
    pub extra: BTreeMap<String, Value>,
}

/// The JSON form of [`Interface`]: every spelling accepted, the current one written.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct WireInterface {
    #[serde(default)]
    name: String,
    #[serde(default, alias = "MAC")]
    mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state: Option<String>,
    #[serde(default, alias = "IPv4")]
    ipv4: Option<String>,
    #[serde(default, alias = "CIDRv4")]
    cidrv4: Option<String>,
    #[serde(default)]
    netmask: Option<Netmask>,
    #[serde(default)]
    addresses: Vec<String>,
    #[serde(flatten)]
    extra: BTreeMap<String, Value>,
}

/// A prefix length as a number (`21`), a numeric string (`"21"`) or a dotted mask.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Netmask {
    Prefix(u64),
    Text(String),
}

impl Netmask {
    fn prefix(&self) -> Result<u8, String> {
        match self {
            Netmask::Prefix(n) if *n <= 32 => Ok(*n as u8),
            Netmask::Prefix(n) => Err(format!("netmask {n} is not a prefix length (0-32)")),
            Netmask::Text(text) => {
                if let Ok(n) = text.parse::<u8>() {
                    return Netmask::Prefix(u64::from(n)).prefix();
                }
                let mask: Ipv4Addr = text.parse().map_err(|_| {
                    format!("netmask {text:?} is neither a prefix length nor a mask")
                })?;
                let bits = u32::from(mask);
                if bits.leading_ones() + bits.trailing_zeros() != 32 && bits != 0 {
                    return Err(format!("netmask {text:?} is not contiguous"));
                }
                Ok(bits.leading_ones() as u8)
            }
        }
    }
}

impl TryFrom<WireInterface> for Interface {
    type Error = String;

    fn try_from(wire: WireInterface) -> Result<Self, Self::Error> {
        let context = |why: String| format!("interface {:?}: {why}", wire.name);
        let mac = if wire.mac.is_empty() {
            String::new()
        } else {
            mac::normalize(&wire.mac).unwrap_or_else(|_| wire.mac.clone())
        };
        let from_cidr = match wire.cidrv4.as_deref().filter(|s| !s.is_empty()) {
            Some(text) => Some(
                text.parse::<Ipv4Net>()
                    .map_err(|_| context(format!("cidrv4 {text:?} is not an IPv4 CIDR")))?,
            ),
            None => None,
        };
        let from_addr = match wire.ipv4.as_deref().filter(|s| !s.is_empty()) {
            Some(text) => {
                let addr: Ipv4Addr = text
                    .parse()
                    .map_err(|_| context(format!("ipv4 {text:?} is not an IPv4 address")))?;
                let prefix = match &wire.netmask {
                    Some(mask) => mask.prefix().map_err(context)?,
                    None => from_cidr.map_or(32, |net| net.prefix_len()),
                };
                Some(Ipv4Net::new(addr, prefix).expect("prefix checked to be at most 32"))
            }
            None => None,
        };
        let ipv4 = match (from_addr, from_cidr) {
            (Some(a), Some(c)) if a != c => {
                return Err(context(format!(
                    "ipv4 {}/{} disagrees with cidrv4 {c}",
                    a.addr(),
                    a.prefix_len()
                )));
            }
            (a, c) => a.or(c),
        };
        let addresses = wire
            .addresses
            .iter()
            .map(|text| {
                text.parse::<IpNet>()
                    .map_err(|_| context(format!("address {text:?} is not an IP address/prefix")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Interface {
            name: wire.name,
            mac,
            state: wire.state,
            ipv4,
            addresses,
            extra: wire.extra,
        })
    }
}

impl From<Interface> for WireInterface {
    fn from(iface: Interface) -> Self {
        WireInterface {
            name: iface.name,
            mac: iface.mac,
            state: iface.state,
            ipv4: iface.ipv4.map(|net| net.addr().to_string()),
            cidrv4: iface.ipv4.map(|net| net.to_string()),
            netmask: iface
                .ipv4
                .map(|net| Netmask::Prefix(net.prefix_len().into())),
            addresses: iface.addresses.iter().map(IpNet::to_string).collect(),
            extra: iface.extra,
        }
    }
}

/// LLDP neighbours seen by the machine's interfaces.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "WireLldp")]
pub struct Lldp {
    pub neighbors: Vec<Neighbor>,
}

/// `{"neighbors": […]}`, or the 2016 `{"is_file": …, "data": {"interfaces": […]}}`.
#[derive(Deserialize)]
struct WireLldp {
    #[serde(default)]
    neighbors: Option<Vec<Neighbor>>,
    #[serde(default)]
    data: Option<WireLldpData>,
}

#[derive(Deserialize)]
struct WireLldpData {
    #[serde(default)]
    interfaces: Option<Vec<Neighbor>>,
}

impl From<WireLldp> for Lldp {
    fn from(wire: WireLldp) -> Self {
        let neighbors = wire
            .neighbors
            .or_else(|| wire.data.and_then(|data| data.interfaces))
            .unwrap_or_default();
        Lldp { neighbors }
    }
}

/// One LLDP neighbour: the switch (chassis) and its port that one local interface sees.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Neighbor {
    /// The local interface that received the advertisement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    #[serde(default)]
    pub chassis: Chassis,
    #[serde(default)]
    pub port: Port,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vlans: Vec<Vlan>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Chassis {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The id's subtype as lldpctl names it: `mac`, `ip`, `local`, `ifname`, …
    #[serde(default, rename = "id-type", skip_serializing_if = "Option::is_none")]
    pub id_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub descr: Option<String>,
    #[serde(default, rename = "mgmt-ip", skip_serializing_if = "Vec::is_empty")]
    pub mgmt_ip: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Port {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, rename = "id-type", skip_serializing_if = "Option::is_none")]
    pub id_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub descr: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Vlan {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pvid: bool,
}

/// Why a report cannot be stored: the server answers 406 with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Incoherent(pub String);

impl Report {
    /// Reads a report from parsed JSON; the error says which field is wrong.
    pub fn from_value(value: Value) -> Result<Report, Incoherent> {
        if !value.is_object() {
            return Err(Incoherent(format!(
                "a report is a JSON object, not {}",
                crate::matchbox::decode::type_name(&value)
            )));
        }
        serde_json::from_value(value).map_err(|err| Incoherent(err.to_string()))
    }

    /// Reads a report from JSON text (a file, an HTTP body).
    pub fn from_slice(bytes: &[u8]) -> Result<Report, Incoherent> {
        // Straight into the types when it decodes (a stored report: one parse, not two); the
        // slower path below says what is wrong when it does not.
        if let Ok(report) = serde_json::from_slice::<Report>(bytes) {
            return Ok(report);
        }
        let value: Value =
            serde_json::from_slice(bytes).map_err(|err| Incoherent(format!("not JSON: {err}")))?;
        Report::from_value(value)
    }

    /// The 2016 coherence check, on normalised MACs: the boot MAC must be a valid MAC and belong
    /// to one of the interfaces. Returns the normalised boot MAC, the machine's key.
    pub fn check(&self) -> Result<String, Incoherent> {
        let raw = &self.boot_info.mac;
        if raw.is_empty() {
            return Err(Incoherent(
                "boot-info.mac is empty: the machine cannot be identified".into(),
            ));
        }
        let boot =
            mac::normalize(raw).map_err(|err| Incoherent(format!("boot-info.mac: {err}")))?;
        if self.interfaces.iter().any(|iface| iface.mac == boot) {
            Ok(boot)
        } else {
            let known: Vec<&str> = self
                .interfaces
                .iter()
                .map(|iface| iface.mac.as_str())
                .filter(|mac| !mac.is_empty())
                .collect();
            Err(Incoherent(format!(
                "boot-info.mac {raw:?} is not the MAC of any interface (interfaces have {known:?})"
            )))
        }
    }

    /// The interface the machine booted from (whose MAC is the boot MAC).
    pub fn boot_interface(&self) -> Option<&Interface> {
        let boot = mac::normalize(&self.boot_info.mac).ok()?;
        self.interfaces.iter().find(|iface| iface.mac == boot)
    }

    /// The boot interface's IPv4 address: where the scheduler reaches the machine.
    pub fn boot_ipv4(&self) -> Option<Ipv4Addr> {
        self.boot_interface()?.ipv4.map(|net| net.addr())
    }

    /// The report as compact JSON, fields in a fixed order: what the server stores.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a report always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// The payload of the 2016 unit tests, as the Go discovery client (discoveryC, in
    /// <https://github.com/JulienBalestra/enjoliver>) serialised it: `IPv4`, `CIDRv4` and `MAC`
    /// spelled as Go field names, `netmask` a prefix length.
    fn report_2016() -> Value {
        json!({
            "interfaces": [
                {"IPv4": "127.0.0.1", "CIDRv4": "127.0.0.1/8", "netmask": 8, "MAC": "", "name": "lo"},
                {"IPv4": "172.20.0.65", "CIDRv4": "172.20.0.65/21", "netmask": 21,
                 "MAC": "52:54:00:ea:93:b7", "name": "eth0"}
            ],
            "boot-info": {"mac": "52:54:00:ea:93:b7", "uuid": "769ea7b-a7b6-4fd5-a2b8-3b4d7b4d7c2a"},
            "lldp": {"is_file": true, "data": {"interfaces": [
                {"chassis": {"id": "28:f1:0e:12:20:00", "name": "E7470"},
                 "port": {"id": "fe:54:00:ea:93:b7"}}
            ]}}
        })
    }

    #[test]
    fn reads_the_2016_spelling_and_writes_the_current_one() {
        let report = Report::from_value(report_2016()).unwrap();
        assert_eq!(report.check().unwrap(), "52:54:00:ea:93:b7");
        assert_eq!(report.boot_ipv4(), Some(Ipv4Addr::new(172, 20, 0, 65)));
        let lldp = report.lldp.as_ref().unwrap();
        assert_eq!(lldp.neighbors[0].chassis.name.as_deref(), Some("E7470"));
        let written: Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(
            written["interfaces"][1],
            json!({"name": "eth0", "mac": "52:54:00:ea:93:b7", "ipv4": "172.20.0.65",
                   "cidrv4": "172.20.0.65/21", "netmask": 21, "addresses": []})
        );
        assert_eq!(written["interfaces"][0]["mac"], "");
        assert_eq!(
            written["lldp"],
            json!({"neighbors": [{"chassis": {"id": "28:f1:0e:12:20:00", "name": "E7470"},
                                  "port": {"id": "fe:54:00:ea:93:b7"}}]})
        );
        // The written form reads back to the same report.
        assert_eq!(Report::from_value(written).unwrap(), report);
    }

    #[test]
    fn macs_are_compared_normalised() {
        let mut value = report_2016();
        value["boot-info"]["mac"] = json!("52-54-00-EA-93-B7");
        let report = Report::from_value(value).unwrap();
        assert_eq!(report.check().unwrap(), "52:54:00:ea:93:b7");
    }

    #[test]
    fn incoherent_reports_say_why() {
        let cases: Vec<(Value, &str)> = vec![
            (json!("text"), "not a string"),
            (json!([1]), "not an array"),
            (json!({"interfaces": []}), "missing field `boot-info`"),
            (
                json!({"boot-info": {"mac": "52:54:00:ea:93:b7"}}),
                "missing field `interfaces`",
            ),
            (
                json!({"boot-info": {"mac": "x"}, "interfaces": {"a": 1}}),
                "invalid type: map, expected a sequence",
            ),
            (
                json!({"boot-info": {"mac": "1"}, "interfaces": [{"name": "e", "IPv4": "1.2.3"}]}),
                "ipv4 \"1.2.3\" is not an IPv4 address",
            ),
            (
                json!({"boot-info": {"mac": "1"}, "interfaces": [{"name": "e", "ipv4": "1.2.3.4", "netmask": 40}]}),
                "netmask 40",
            ),
            (
                json!({"boot-info": {"mac": "1"}, "interfaces": [{"name": "e", "ipv4": "1.2.3.4", "cidrv4": "1.2.3.5/24", "netmask": 24}]}),
                "disagrees with cidrv4",
            ),
        ];
        for (value, needle) in cases {
            let err = Report::from_value(value.clone()).unwrap_err().to_string();
            assert!(err.contains(needle), "{value}: {err}");
        }
        let check_cases = [
            ("", "empty"),
            ("52:54:00:90:c3:9", "invalid MAC address"), // the 2016 truncation bug
            ("52:54:00:00:00:01", "not the MAC of any interface"),
        ];
        for (boot, needle) in check_cases {
            let mut value = report_2016();
            value["boot-info"]["mac"] = json!(boot);
            let err = Report::from_value(value)
                .unwrap()
                .check()
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{boot:?}: {err}");
        }
    }

    #[test]
    fn unknown_keys_are_kept_and_empty_addresses_are_none() {
        let value = json!({
            "boot-info": {"mac": "52:54:00:00:00:01", "uuid": "u", "random-id": "r"},
            "interfaces": [{"name": "eth0", "mac": "52:54:00:00:00:01", "IPv4": "", "CIDRv4": "",
                            "netmask": 0, "speed": 1000}],
            "disks": [{"path": "/dev/sda"}]
        });
        let report = Report::from_value(value).unwrap();
        assert_eq!(report.interfaces[0].ipv4, None);
        assert_eq!(report.boot_ipv4(), None);
        let written: Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(written["disks"], json!([{"path": "/dev/sda"}]));
        assert_eq!(written["boot-info"]["random-id"], "r");
        assert_eq!(written["interfaces"][0]["speed"], 1000);
        assert_eq!(written["interfaces"][0]["ipv4"], Value::Null);
    }

    #[test]
    fn dotted_and_textual_netmasks_are_prefix_lengths() {
        for (mask, prefix) in [
            (json!("255.255.248.0"), 21),
            (json!("24"), 24),
            (json!(32), 32),
            (json!("0.0.0.0"), 0),
        ] {
            let value = json!({"boot-info": {"mac": ""}, "interfaces": [
                {"name": "e", "ipv4": "10.0.0.1", "netmask": mask}]});
            let report = Report::from_value(value).unwrap();
            assert_eq!(report.interfaces[0].ipv4.unwrap().prefix_len(), prefix);
        }
        let value = json!({"boot-info": {"mac": ""}, "interfaces": [
            {"name": "e", "ipv4": "10.0.0.1", "netmask": "255.0.255.0"}]});
        assert!(Report::from_value(value).is_err());
    }

    fn arb_interface() -> impl Strategy<Value = Interface> {
        (
            "[a-z]{1,6}[0-9]?",
            prop::option::of(prop::array::uniform6(any::<u8>())),
            prop::option::of((any::<u32>(), 0u8..=32)),
            prop::collection::vec((any::<u128>(), 0u8..=128), 0..3),
            prop::option::of(prop::sample::select(vec!["up", "down", "unknown"])),
        )
            .prop_map(|(name, mac, v4, v6, state)| Interface {
                name,
                mac: mac.map_or(String::new(), |b| {
                    b.iter()
                        .map(|x| format!("{x:02x}"))
                        .collect::<Vec<_>>()
                        .join(":")
                }),
                state: state.map(str::to_owned),
                ipv4: v4.map(|(a, p)| Ipv4Net::new(Ipv4Addr::from(a), p).unwrap()),
                addresses: v6
                    .into_iter()
                    .map(|(a, p)| {
                        IpNet::V6(ipnet::Ipv6Net::new(std::net::Ipv6Addr::from(a), p).unwrap())
                    })
                    .collect(),
                extra: BTreeMap::new(),
            })
    }

    proptest! {
        #[test]
        fn written_reports_read_back_identical(
            interfaces in prop::collection::vec(arb_interface(), 0..5),
            uuid in "[0-9a-f-]{0,36}",
            hostname in prop::option::of("\\PC{0,20}"),
        ) {
            let report = Report {
                boot_info: BootInfo {
                    uuid,
                    mac: interfaces.first().map_or(String::new(), |i| i.mac.clone()),
                    ..BootInfo::default()
                },
                hostname,
                interfaces,
                lldp: None,
                extra: BTreeMap::new(),
            };
            let text = report.to_json();
            let back = Report::from_slice(text.as_bytes()).unwrap();
            prop_assert_eq!(&back, &report);
            prop_assert_eq!(back.to_json(), text);
        }

        #[test]
        fn parsing_arbitrary_json_never_panics(value in arb_json()) {
            if let Ok(report) = Report::from_value(value) {
                let _ = report.check();
                let _ = report.boot_ipv4();
                let again = Report::from_slice(report.to_json().as_bytes()).unwrap();
                prop_assert_eq!(again, report);
            }
        }

        #[test]
        fn parsing_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = Report::from_slice(&bytes);
        }
    }

    /// JSON values biased towards report-shaped objects, so the parser's deeper paths run.
    fn arb_json() -> impl Strategy<Value = Value> {
        let key = prop::sample::select(vec![
            "boot-info",
            "mac",
            "MAC",
            "uuid",
            "interfaces",
            "name",
            "ipv4",
            "IPv4",
            "cidrv4",
            "CIDRv4",
            "netmask",
            "addresses",
            "lldp",
            "data",
            "neighbors",
            "chassis",
            "port",
            "id",
            "vlans",
            "x",
        ]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            (0u8..40).prop_map(|n| json!(n)),
            prop::sample::select(vec![
                "",
                "52:54:00:ea:93:b7",
                "10.0.0.1",
                "10.0.0.1/8",
                "fe80::1/64",
                "255.255.0.0",
                "24",
                "up",
                "x",
            ])
            .prop_map(|s| json!(s)),
        ];
        leaf.prop_recursive(4, 64, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(key.clone(), inner, 0..6).prop_map(|m| Value::Object(
                    m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
                )),
            ]
        })
    }
}
