//! LLDP neighbours from an lldpctl capture: `lldpctl -f xml` (what the 2016 `lldp-export` wrote)
//! or `lldpctl -f keyvalue`.
//!
//! Both carry, per neighbour, the local interface, the chassis (id and its subtype, system name,
//! description, management addresses), the port (id, subtype, description) and VLANs. Other
//! fields (capabilities, LLDP-MED, age) are left out of the report.

use std::collections::HashMap;

use anyhow::{Context as _, bail};

use super::report::{Lldp, Neighbor, Vlan};

/// Parses an lldpctl capture, XML if it starts with `<`, key-value otherwise.
pub fn parse(text: &str) -> anyhow::Result<Lldp> {
    if text.trim_start().starts_with('<') {
        parse_xml(text).context("reading lldpctl XML")
    } else {
        parse_keyvalue(text).context("reading lldpctl key-value output")
    }
}

/// Parses `lldpctl -f xml`.
pub fn parse_xml(text: &str) -> anyhow::Result<Lldp> {
    let doc = roxmltree::Document::parse(text)?;
    let root = doc.root_element();
    if root.tag_name().name() != "lldp" {
        bail!(
            "the root element is <{}>, expected <lldp>",
            root.tag_name().name()
        );
    }
    let text_of = |node: roxmltree::Node| node.text().map(|t| t.trim().to_owned());
    let mut neighbors = Vec::new();
    for iface in root.children().filter(|n| n.has_tag_name("interface")) {
        let mut neighbor = Neighbor {
            interface: iface.attribute("name").map(str::to_owned),
            ..Neighbor::default()
        };
        for part in iface.children().filter(roxmltree::Node::is_element) {
            match part.tag_name().name() {
                "chassis" => {
                    for field in part.children().filter(roxmltree::Node::is_element) {
                        let chassis = &mut neighbor.chassis;
                        match field.tag_name().name() {
                            "id" => {
                                chassis.id = text_of(field);
                                chassis.id_type = field.attribute("type").map(str::to_owned);
                            }
                            "name" => chassis.name = text_of(field),
                            "descr" => chassis.descr = text_of(field),
                            "mgmt-ip" => chassis.mgmt_ip.extend(text_of(field)),
                            _ => {}
                        }
                    }
                }
                "port" => {
                    for field in part.children().filter(roxmltree::Node::is_element) {
                        let port = &mut neighbor.port;
                        match field.tag_name().name() {
                            "id" => {
                                port.id = text_of(field);
                                port.id_type = field.attribute("type").map(str::to_owned);
                            }
                            "descr" => port.descr = text_of(field),
                            _ => {}
                        }
                    }
                }
                "vlan" => neighbor.vlans.push(Vlan {
                    id: part.attribute("vlan-id").and_then(|id| id.parse().ok()),
                    name: text_of(part).filter(|name| !name.is_empty()),
                    pvid: part.attribute("pvid") == Some("yes"),
                }),
                _ => {}
            }
        }
        neighbors.push(neighbor);
    }
    Ok(Lldp { neighbors })
}

/// The sections of a neighbour in key-value output (`lldp.<interface>.<section>…`). Interface
/// names may contain dots (`eth0.100`), so the name ends where one of these begins.
const SECTIONS: [&str; 11] = [
    "via",
    "rid",
    "age",
    "chassis",
    "port",
    "vlan",
    "ppvid",
    "pi",
    "lldp-med",
    "unknown-tlvs",
    "unknown-tlv",
];

/// The id subtypes lldpctl prints as `chassis.<subtype>=` and `port.<subtype>=`.
const ID_TYPES: [&str; 5] = ["mac", "ip", "ifname", "ifalias", "local"];

/// Parses `lldpctl -f keyvalue`. A line that does not start with `lldp.` continues the previous
/// value (lldpctl prints multi-line descriptions as they are).
pub fn parse_keyvalue(text: &str) -> anyhow::Result<Lldp> {
    // (interface, path, value) per entry, continuation lines folded in.
    let mut entries: Vec<(String, String, String)> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let Some(rest) = line.strip_prefix("lldp.") else {
            match entries.last_mut() {
                Some((_, _, value)) => {
                    value.push('\n');
                    value.push_str(line);
                }
                None if line.trim().is_empty() => {}
                None => bail!(
                    "line {}: expected lldp.<interface>.<key>=<value>",
                    number + 1
                ),
            }
            continue;
        };
        let Some((key, value)) = rest.split_once('=') else {
            bail!("line {}: no '=' in {line:?}", number + 1);
        };
        let parts: Vec<&str> = key.split('.').collect();
        let Some(at) = (1..parts.len()).find(|&i| SECTIONS.contains(&parts[i])) else {
            bail!("line {}: unknown key {key:?}", number + 1);
        };
        entries.push((
            parts[..at].join("."),
            parts[at..].join("."),
            value.to_owned(),
        ));
    }

    let mut neighbors: Vec<Neighbor> = Vec::new();
    // The latest neighbour of each interface: a lookup, not a scan, so a capture of tens of
    // thousands of interfaces parses in linear time.
    let mut latest: HashMap<String, usize> = HashMap::new();
    for (interface, path, value) in entries {
        let value = value.trim_end_matches('\n').to_owned();
        // Each neighbour starts with its `via` line; anything else joins the interface's latest.
        let index = match latest.get(&interface) {
            Some(&index) if path != "via" => index,
            _ => {
                neighbors.push(Neighbor {
                    interface: Some(interface.clone()),
                    ..Neighbor::default()
                });
                latest.insert(interface, neighbors.len() - 1);
                neighbors.len() - 1
            }
        };
        let neighbor = &mut neighbors[index];
        let (section, field) = path.split_once('.').unwrap_or((path.as_str(), ""));
        match (section, field) {
            ("chassis", "name") => neighbor.chassis.name = Some(value),
            ("chassis", "descr") => neighbor.chassis.descr = Some(value),
            ("chassis", "mgmt-ip") => neighbor.chassis.mgmt_ip.push(value),
            ("chassis", id_type) if ID_TYPES.contains(&id_type) => {
                let chassis = &mut neighbor.chassis;
                first_id(&mut chassis.id, &mut chassis.id_type, id_type, value);
            }
            ("port", "descr") => neighbor.port.descr = Some(value),
            ("port", id_type) if ID_TYPES.contains(&id_type) => {
                let port = &mut neighbor.port;
                first_id(&mut port.id, &mut port.id_type, id_type, value);
            }
            ("vlan", "") => vlan(neighbor).name = Some(value),
            ("vlan", "vlan-id") => {
                let id = value.parse().ok();
                // A second id starts a second VLAN.
                if neighbor.vlans.last().is_some_and(|v| v.id.is_some()) {
                    neighbor.vlans.push(Vlan::default());
                }
                vlan(neighbor).id = id;
            }
            ("vlan", "pvid") => vlan(neighbor).pvid = value == "yes",
            _ => {}
        }
    }
    Ok(Lldp { neighbors })
}

fn vlan(neighbor: &mut Neighbor) -> &mut Vlan {
    if neighbor.vlans.is_empty() {
        neighbor.vlans.push(Vlan::default());
    }
    neighbor.vlans.last_mut().expect("just ensured")
}

/// The first id line wins (lldpctl prints one per chassis and port).
fn first_id(id: &mut Option<String>, kind: &mut Option<String>, id_type: &str, value: String) {
    if id.is_none() {
        *id = Some(value);
        *kind = Some(id_type.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::Path;

    fn fixture(name: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/reference/seed-fixtures/discoveryC/tests/run/lldp")
            .join(name);
        fs::read_to_string(path).unwrap()
    }

    #[test]
    fn reads_the_2016_xml_captures() {
        assert_eq!(parse(&fixture("output0.xml")).unwrap(), Lldp::default());
        let lldp = parse(&fixture("output1.xml")).unwrap();
        assert_eq!(lldp.neighbors.len(), 1);
        let n = &lldp.neighbors[0];
        assert_eq!(n.interface.as_deref(), Some("eth0"));
        assert_eq!(n.chassis.id.as_deref(), Some("28:f1:0e:12:20:00"));
        assert_eq!(n.chassis.id_type.as_deref(), Some("mac"));
        assert_eq!(n.chassis.name.as_deref(), Some("E7470"));
        assert!(
            n.chassis
                .descr
                .as_deref()
                .unwrap()
                .starts_with("Debian GNU/Linux 8")
        );
        assert_eq!(n.chassis.mgmt_ip, ["192.168.192.234"]);
        assert_eq!(n.port.id.as_deref(), Some("fe:54:00:fe:0f:fc"));
        assert_eq!(n.port.descr.as_deref(), Some("vnet0"));
    }

    #[test]
    fn reads_the_2016_keyvalue_captures() {
        assert_eq!(parse(&fixture("lldp.kv.2")).unwrap(), Lldp::default());

        let lldp = parse(&fixture("lldp.kv.0")).unwrap();
        assert_eq!(lldp.neighbors.len(), 1);
        let n = &lldp.neighbors[0];
        assert_eq!(n.interface.as_deref(), Some("eth0"));
        assert_eq!(n.chassis.id.as_deref(), Some("28:f1:0e:12:20:00"));
        assert_eq!(n.chassis.name.as_deref(), Some("E7470"));
        assert_eq!(n.port.id.as_deref(), Some("fe:54:00:96:14:87"));
        assert_eq!(n.port.id_type.as_deref(), Some("mac"));

        let lldp = parse(&fixture("lldp.kv.1")).unwrap();
        let names: Vec<_> = lldp
            .neighbors
            .iter()
            .map(|n| {
                (
                    n.interface.as_deref().unwrap(),
                    n.chassis.name.as_deref().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [("eno1", "CH-NA-NB-1.Where"), ("eno2", "CH-NA-NB-2.Where")]
        );
        let n = &lldp.neighbors[0];
        assert_eq!(n.chassis.id.as_deref(), Some("58:f3:9c:4b:c4:1e"));
        // The multi-line description keeps its lines.
        assert_eq!(n.chassis.descr.as_deref().unwrap().lines().count(), 3);
        assert!(
            n.chassis
                .descr
                .as_deref()
                .unwrap()
                .ends_with("All rights reserved.")
        );
        assert_eq!(n.port.id.as_deref(), Some("Ethernet1/23"));
        assert_eq!(n.port.id_type.as_deref(), Some("ifname"));
        assert_eq!(
            n.vlans,
            [Vlan {
                id: Some(100),
                name: None,
                pvid: true
            }]
        );
    }

    #[test]
    fn dotted_interface_names_and_repeated_neighbours() {
        let text = "lldp.eth0.100.via=LLDP\nlldp.eth0.100.chassis.mac=00:00:00:00:00:01\n\
                    lldp.eth0.100.via=LLDP\nlldp.eth0.100.chassis.local=sw2\n";
        let lldp = parse(text).unwrap();
        assert_eq!(lldp.neighbors.len(), 2);
        assert_eq!(lldp.neighbors[0].interface.as_deref(), Some("eth0.100"));
        assert_eq!(lldp.neighbors[1].chassis.id.as_deref(), Some("sw2"));
        assert_eq!(lldp.neighbors[1].chassis.id_type.as_deref(), Some("local"));
    }

    #[test]
    fn interleaved_interfaces_keep_their_own_neighbours_at_scale() {
        // 80,000 interfaces, each line of a neighbour after every interface's `via`: the
        // lookup of an interface's latest neighbour must find it however far back it is.
        let count = 80_000;
        let mut text = String::new();
        for i in 0..count {
            text.push_str(&format!("lldp.eth{i}.via=LLDP\n"));
        }
        for i in 0..count {
            text.push_str(&format!("lldp.eth{i}.chassis.name=sw{i}\n"));
        }
        let lldp = parse(&text).unwrap();
        assert_eq!(lldp.neighbors.len(), count);
        for (i, neighbor) in lldp.neighbors.iter().enumerate().step_by(7_919) {
            assert_eq!(
                neighbor.interface.as_deref(),
                Some(format!("eth{i}").as_str())
            );
            assert_eq!(
                neighbor.chassis.name.as_deref(),
                Some(format!("sw{i}").as_str())
            );
        }
    }

    #[test]
    fn bad_captures_are_errors() {
        assert!(parse("<lldp><interface></lldp>").is_err());
        assert!(parse("<other/>").is_err());
        assert!(parse("garbage").is_err());
        assert!(parse("lldp.eth0.via").is_err());
        assert!(parse("lldp.eth0.foo=1").is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "(lldp\\.[a-z0-9.]{0,12}=[ -~]{0,10}\n|[ -~]{0,12}\n){0,8}") {
            let _ = parse(&text);
        }

        #[test]
        fn xml_never_panics(text in "<lldp>(<interface name=\"[a-z]{0,3}\">(<chassis><id>[a-z]{0,3}</id></chassis>|<port/>|<vlan vlan-id=\"[0-9]{0,6}\"/>){0,3}</interface>){0,3}</lldp>") {
            let _ = parse(&text);
        }
    }
}
