//! The lab spec (`lab.yaml`): what `caas gen cluster` reads, and its validation into a [`Lab`].

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use anyhow::Result;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::invalid;
use crate::etcd;
use crate::generate::{Compat, SpecFlags, output_spec};
use crate::ids::Id;
use crate::ignition::Spec;
pub use crate::input::from_yaml;
use crate::matchbox::mac;
use crate::matchbox::server::MatchboxUrl;
use crate::os::{Arch, Os};

/// The spec as written. Unknown keys are errors: a typo must not silently drop a setting.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabSpec {
    /// Names the record of what this spec wrote (`clusters/<name>.json`).
    #[serde(default = "default_name")]
    pub name: Id,
    pub os: Os,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default = "default_version")]
    pub version: Id,
    #[serde(default)]
    pub arch: Arch,
    /// The etcd release the etcd roles run, published under assets/etcd/ (default `current`).
    #[serde(default = "default_version")]
    pub etcd_version: Id,
    #[serde(default)]
    pub matchbox_url: Option<String>,
    #[serde(default)]
    pub api_url: Option<String>,
    /// Ignition spec of every config: "3.3" (default), "3.4", or "2.0" … "2.3" for CoreOS
    /// Container Linux (2.0 with `--compat bootcfg-0.4`).
    #[serde(default)]
    pub ignition_spec: Option<String>,
    #[serde(default)]
    pub ssh_authorized_keys: Vec<String>,
    /// Kernel arguments for every profile (`key=value` replaces the OS default).
    #[serde(default)]
    pub args: Vec<String>,
    /// Template variables for every machine.
    #[serde(default)]
    pub vars: Map<String, Value>,
    /// The role (template) of machines no group names; `null` for no default group.
    #[serde(default = "default_role")]
    pub default: Option<String>,
    /// Install to disk before booting into the role.
    #[serde(default)]
    pub install: Option<InstallSpec>,
    #[serde(default)]
    pub machines: Vec<MachineSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallSpec {
    pub device: String,
    #[serde(default)]
    pub base_url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineSpec {
    pub name: Id,
    pub mac: String,
    pub role: String,
    #[serde(default, deserialize_with = "machine_ip")]
    pub ip: Option<IpAddr>,
    /// Install to disk first (`true`/`false`, or `{device: /dev/nvme0n1}` for a disk of its
    /// own); default: whether the spec has an `install` section or the machine an
    /// `install_device`.
    #[serde(default)]
    pub install: Option<MachineInstall>,
    /// Kernel arguments for this machine only.
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub vars: Map<String, Value>,
}

/// A machine's `install`: whether it installs, or the disk it installs to.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum MachineInstall {
    Flag(bool),
    Device(MachineInstallSpec),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineInstallSpec {
    pub device: String,
}

/// The template variable that names the disk the installer wipes.
pub const INSTALL_DEVICE_VAR: &str = "install_device";

fn default_name() -> Id {
    Id::new("lab").expect("a valid id")
}

fn default_version() -> Id {
    Id::new("current").expect("a valid id")
}

fn default_role() -> Option<String> {
    Some("discovery".to_owned())
}

/// A validated lab: every name, MAC, URL and role checked.
#[derive(Clone, Debug)]
pub struct Lab {
    pub name: Id,
    pub os: Os,
    pub channel: Option<String>,
    pub version: Id,
    pub arch: Arch,
    pub etcd_version: Id,
    pub matchbox_url: MatchboxUrl,
    pub api_url: Option<MatchboxUrl>,
    pub spec: Spec,
    /// The server the profiles are written for (`--compat`).
    pub compat: Option<Compat>,
    pub ssh_authorized_keys: Vec<String>,
    pub args: Vec<String>,
    pub vars: Map<String, Value>,
    pub default_role: Option<String>,
    pub install: Option<Install>,
    pub machines: Vec<Machine>,
}

#[derive(Clone, Debug)]
pub struct Install {
    pub device: String,
    pub base_url: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Machine {
    pub name: Id,
    /// Normalised as matchbox does: lower case, colons.
    pub mac: String,
    pub role: String,
    pub ip: Option<IpAddr>,
    pub install: bool,
    /// The disk this machine installs to when it is not the lab's (`install.device` of the
    /// machine, or its `vars.install_device`): it gets an installer config of its own.
    pub install_device: Option<String>,
    pub args: Vec<String>,
    pub vars: Map<String, Value>,
}

/// Overrides from the command line.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub matchbox_url: Option<MatchboxUrl>,
    /// Checked where it was given (`--api-url`), so its errors name the flag.
    pub api_url: Option<MatchboxUrl>,
    /// `--spec`, instead of the spec's `ignition_spec`.
    pub spec: Option<Spec>,
    /// `--compat`: the server the files are written for.
    pub compat: Option<Compat>,
}

impl LabSpec {
    /// Checks everything that does not need the templates or the disk.
    pub fn validate(self, origin: &str, overrides: &Overrides) -> Result<Lab> {
        let bad = |what: String| invalid(format!("{origin}: {what}"));
        let asked = match (overrides.spec, self.ignition_spec.as_deref()) {
            (Some(spec), _) => Some(spec),
            (None, Some(text)) => Some(Spec::parse(text).ok_or_else(|| {
                bad(format!(
                    "ignition_spec {text:?}: caas writes \"2.0\", \"2.1\", \"2.2\", \"2.3\", \
                     \"3.3\" or \"3.4\""
                ))
            })?),
            (None, None) => None,
        };
        let flags = SpecFlags {
            os: "os",
            spec: if overrides.spec.is_some() {
                "--spec"
            } else {
                "ignition_spec (or --spec)"
            },
        };
        let spec =
            output_spec(self.os, overrides.compat, asked, flags).map_err(|err| bad(err.0))?;
        if let Some(channel) = &self.channel {
            check_word(channel).map_err(|why| bad(format!("channel {channel:?}: {why}")))?;
        }
        let matchbox_url = match (&overrides.matchbox_url, &self.matchbox_url) {
            (Some(url), _) => url.clone(),
            (None, Some(url)) => {
                MatchboxUrl::parse(url).map_err(|err| bad(format!("matchbox_url: {err}")))?
            }
            (None, None) => {
                return Err(bad(
                    "matchbox_url is missing: machines fetch their Ignition config from it \
                     (or pass --matchbox-url)"
                        .to_owned(),
                ));
            }
        };
        let api_url = match (&overrides.api_url, &self.api_url) {
            (Some(url), _) => Some(url.clone()),
            (None, Some(url)) => {
                Some(parse_api_url(url).map_err(|err| bad(format!("api_url: {err}")))?)
            }
            (None, None) => None,
        };
        for key in &self.ssh_authorized_keys {
            if key.trim().is_empty() || key.contains(['\n', '\r']) {
                return Err(bad(format!(
                    "ssh_authorized_keys: {key:?} is not one public key line"
                )));
            }
        }
        if let Some(role) = &self.default {
            check_role(role).map_err(|why| bad(format!("default {role:?}: {why}")))?;
        }
        let install = match self.install {
            None => None,
            Some(install) => {
                check_device(&install.device)
                    .map_err(|why| bad(format!("install.device {why}")))?;
                if let Some(url) = &install.base_url {
                    MatchboxUrl::parse(url)
                        .map_err(|err| bad(format!("install.base_url: {err}")))?;
                }
                Some(Install {
                    device: install.device,
                    base_url: install.base_url,
                })
            }
        };

        let machines = validate_machines(self.machines, install.as_ref(), &bad)?;

        Ok(Lab {
            name: self.name,
            os: self.os,
            channel: self.channel,
            version: self.version,
            arch: self.arch,
            etcd_version: self.etcd_version,
            matchbox_url,
            api_url,
            spec,
            compat: overrides.compat,
            ssh_authorized_keys: self.ssh_authorized_keys,
            args: self.args,
            vars: self.vars,
            default_role: self.default,
            install,
            machines,
        })
    }
}

/// A disk path the installers take: `/dev/…`, one word.
fn check_device(device: &str) -> Result<(), String> {
    if device.len() > "/dev/".len()
        && device.starts_with("/dev/")
        && !device.contains(|c: char| c.is_whitespace() || c.is_control())
    {
        Ok(())
    } else {
        Err(format!("{device:?} is not a device path like /dev/sda"))
    }
}

/// Whether a machine installs to disk, and the disk of its own when it has one that is not the
/// lab's. A disk named for a machine is never ignored: naming one on a machine that does not
/// install, or two different ones, is an error.
fn machine_install(
    install: Option<&MachineInstall>,
    vars: &Map<String, Value>,
    lab: Option<&Install>,
) -> Result<(bool, Option<String>), String> {
    let from_vars = match vars.get(INSTALL_DEVICE_VAR) {
        None => None,
        Some(Value::String(device)) => Some(device.as_str()),
        Some(other) => {
            return Err(format!(
                "vars.{INSTALL_DEVICE_VAR} must be a device path like /dev/sda, not {other}"
            ));
        }
    };
    let from_spec = match install {
        Some(MachineInstall::Device(spec)) => Some(spec.device.as_str()),
        _ => None,
    };
    if let Some(device) = from_vars {
        check_device(device).map_err(|why| format!("vars.{INSTALL_DEVICE_VAR} {why}"))?;
    }
    if let Some(device) = from_spec {
        check_device(device).map_err(|why| format!("install.device {why}"))?;
    }
    let device = match (from_spec, from_vars) {
        (Some(a), Some(b)) if a != b => {
            return Err(format!(
                "install.device {a:?} and vars.{INSTALL_DEVICE_VAR} {b:?} name different disks"
            ));
        }
        (a, b) => a.or(b),
    };
    let installs = match install {
        Some(MachineInstall::Flag(flag)) => *flag,
        Some(MachineInstall::Device(_)) => true,
        None => lab.is_some(),
    };
    match (installs, device, lab) {
        (false, Some(device), _) => Err(format!(
            "{INSTALL_DEVICE_VAR} {device:?} is set, but the machine does not install to disk: \
             give it `install: true` (or `install: {{device: {device}}}`), or drop the device"
        )),
        (true, None, None) => Err(
            "install: true needs a disk: the spec's install section (install.device) or the \
             machine's own (`install: {device: /dev/sda}`)"
                .to_owned(),
        ),
        (installs, device, lab) => Ok((
            installs,
            device
                .filter(|device| lab.is_none_or(|lab| lab.device != *device))
                .map(str::to_owned),
        )),
    }
}

/// Checks and normalises the machines: unique names and MACs, real roles, and a disk for those
/// that install (the lab's `install` section, or their own). `bad` prefixes an error with where
/// the spec came from.
fn validate_machines(
    specs: Vec<MachineSpec>,
    lab_install: Option<&Install>,
    bad: &dyn Fn(String) -> anyhow::Error,
) -> Result<Vec<Machine>> {
    let mut machines = Vec::with_capacity(specs.len());
    let mut by_name: HashMap<Id, usize> = HashMap::with_capacity(specs.len());
    let mut by_mac: HashMap<String, Id> = HashMap::with_capacity(specs.len());
    let mut by_ip: HashMap<IpAddr, Id> = HashMap::new();
    for (i, machine) in specs.into_iter().enumerate() {
        let at = |what: String| bad(format!("machines[{i}] ({}): {what}", machine.name));
        if by_name.insert(machine.name.clone(), i).is_some() {
            return Err(at("the name is given to another machine too".to_owned()));
        }
        let mac = mac::normalize(&machine.mac).map_err(|err| at(format!("mac: {err}")))?;
        if let Some(other) = by_mac.insert(mac.clone(), machine.name.clone()) {
            return Err(at(format!("mac {mac} is machine {other}'s too")));
        }
        if let Some(ip) = machine.ip
            && let Some(other) = by_ip.insert(ip, machine.name.clone())
        {
            return Err(at(format!("ip {ip} is machine {other}'s too")));
        }
        check_role(&machine.role).map_err(|why| at(format!("role {:?}: {why}", machine.role)))?;
        if machine.role == "install" {
            return Err(at(
                "role \"install\": give the role the machine has once installed, with \
                 `install: true` (caas pairs the installer with an os=installed group)"
                    .to_owned(),
            ));
        }
        let (install_machine, own_device) =
            machine_install(machine.install.as_ref(), &machine.vars, lab_install).map_err(at)?;
        machines.push(Machine {
            name: machine.name,
            mac,
            role: machine.role,
            ip: machine.ip,
            install: install_machine,
            install_device: own_device,
            args: machine.args,
            vars: machine.vars,
        });
    }
    Ok(machines)
}

/// A machine's own address: one a host can have and others can reach (not `0.0.0.0`,
/// loopback, multicast or broadcast, which would give an etcd cluster peer URLs nobody reaches).
/// Errors name the value as written, and the parser adds the line.
fn machine_ip<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<IpAddr>, D::Error> {
    use serde::de::Error as _;
    let Some(text) = Option::<String>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let ip: IpAddr = text
        .parse()
        .map_err(|_| D::Error::custom(format!("ip {text:?} is not an IPv4 or IPv6 address")))?;
    let unusable = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    if unusable {
        return Err(D::Error::custom(format!(
            "ip {text:?} is not an address a machine can have"
        )));
    }
    Ok(Some(ip))
}

/// The API URL: an http(s) base URL, as for matchbox.
pub fn parse_api_url(url: &str) -> Result<MatchboxUrl, String> {
    MatchboxUrl::parse(url).map_err(|err| err.0.replacen("matchbox URL", "URL", 1))
}

/// A role names a template; `_` parts are not roles.
fn check_role(role: &str) -> Result<(), String> {
    Id::new(role).map_err(|err| err.0)?;
    if role.starts_with('_') {
        return Err("names starting with '_' are template parts, not roles".to_owned());
    }
    Ok(())
}

fn check_word(word: &str) -> Result<(), String> {
    Id::new(word).map(|_| ()).map_err(|err| err.0)
}

/// The etcd variables a role needs from the lab's etcd members (the metadata the 2016 scheduler
/// gave each member, see [`crate::etcd`]): per member name, peer and client URLs.
pub fn etcd_vars(machines: &[Machine]) -> BTreeMap<Id, Map<String, Value>> {
    let members: Vec<etcd::Member> = machines
        .iter()
        .filter(|m| m.role == "etcd-member")
        .filter_map(|m| {
            m.ip.map(|ip| etcd::Member {
                name: m.name.as_str(),
                ip,
            })
        })
        .collect();
    let initial_cluster = etcd::initial_cluster(&members);
    let endpoints = etcd::endpoints(&members);
    let mut out = BTreeMap::new();
    for machine in machines {
        let vars = match (machine.role.as_str(), machine.ip) {
            ("etcd-member", Some(ip)) => etcd::member_vars(
                &etcd::Member {
                    name: machine.name.as_str(),
                    ip,
                },
                &initial_cluster,
            ),
            ("etcd-member", None) => {
                Map::from_iter([("etcd_name".to_owned(), machine.name.as_str().into())])
            }
            ("etcd-gateway", _) if !members.is_empty() => {
                Map::from_iter([("etcd_endpoints".to_owned(), endpoints.clone().into())])
            }
            _ => continue,
        };
        out.insert(machine.name.clone(), vars);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab(yaml: &str) -> Result<Lab> {
        from_yaml::<LabSpec>(yaml, "lab.yaml")?.validate("lab.yaml", &Overrides::default())
    }

    const BASE: &str = "os: flatcar\nmatchbox_url: http://m:8080\n";

    #[test]
    fn unknown_keys_and_bad_values_name_the_file_and_line() {
        let err = lab(&format!(
            "{BASE}machines:\n  - name: a\n    mac: 52:54:00:00:00:01\n    rol: x\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("lab.yaml line 6: unknown field `rol`"),
            "{err}"
        );
        assert!(err.contains("rol"), "{err}");
        let err = lab("os: plan9\n").unwrap_err().to_string();
        assert!(err.starts_with("lab.yaml line 1: "), "{err}");
    }

    #[test]
    fn machines_are_checked_and_normalised() {
        let ok = lab(&format!(
            "{BASE}machines:\n  - {{name: a, mac: 52-54-00-A1-9C-AE, role: ssh}}\n"
        ))
        .unwrap();
        assert_eq!(ok.machines[0].mac, "52:54:00:a1:9c:ae");
        assert_eq!(ok.default_role.as_deref(), Some("discovery"));
        for (machines, needle) in [
            (
                "  - {name: a, mac: 52:54:00:00:00:01, role: ssh}\n  - {name: a, mac: 52:54:00:00:00:02, role: ssh}\n",
                "another machine",
            ),
            (
                "  - {name: a, mac: 52:54:00:00:00:01, role: ssh}\n  - {name: b, mac: 52-54-00-00-00-01, role: ssh}\n",
                "machine a's too",
            ),
            ("  - {name: a, mac: 52:54:00, role: ssh}\n", "mac"),
            (
                "  - {name: a, mac: 52:54:00:00:00:01, role: _users}\n",
                "template parts",
            ),
            (
                "  - {name: a, mac: 52:54:00:00:00:01, role: install}\n",
                "install: true",
            ),
            (
                "  - {name: a, mac: 52:54:00:00:00:01, role: ssh, install: true}\n",
                "install section",
            ),
            (
                "  - {name: a, mac: 52:54:00:00:00:01, role: ssh, vars: {install_device: /dev/sdb}}\n",
                "does not install to disk",
            ),
            (
                "  - {name: a, mac: 52:54:00:00:00:01, role: ssh, install: {device: sdb}}\n",
                "not a device path",
            ),
            (
                "  - {name: a, mac: 52:54:00:00:00:01, role: ssh, install: {device: /dev/sdb}, vars: {install_device: /dev/sdc}}\n",
                "different disks",
            ),
            (
                "  - {name: ../a, mac: 52:54:00:00:00:01, role: ssh}\n",
                "../a",
            ),
        ] {
            let err = lab(&format!("{BASE}machines:\n{machines}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{machines}: {err}");
        }
        let err = lab("os: coreos\nmatchbox_url: http://m\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("spec 2.x only"), "{err}");
        assert!(err.contains("--compat bootcfg-0.4"), "{err}");
        assert!(lab("os: coreos\nmatchbox_url: http://m\nignition_spec: \"2.0\"\n").is_ok());
        let err = lab("os: fedora-coreos\nmatchbox_url: http://m\nignition_spec: \"2.2\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("give ignition_spec (or --spec) 3.3 or 3.4"),
            "{err}"
        );
        let err = lab("os: flatcar\n").unwrap_err().to_string();
        assert!(err.contains("matchbox_url is missing"), "{err}");
        let err = lab(&format!("{BASE}api_url: ftp://x\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("api_url: invalid URL \"ftp://x\""), "{err}");
    }

    #[test]
    fn a_machine_may_install_to_a_disk_of_its_own() {
        let lab = lab(&format!(
            "{BASE}install: {{device: /dev/sda}}\nmachines:\n  - {{name: a, mac: 52:54:00:00:00:01, role: ssh}}\n  - {{name: b, mac: 52:54:00:00:00:02, role: ssh, vars: {{install_device: /dev/nvme0n1}}}}\n  - {{name: c, mac: 52:54:00:00:00:03, role: ssh, install: {{device: /dev/sda}}}}\n  - {{name: d, mac: 52:54:00:00:00:04, role: ssh, install: false}}\n"
        ))
        .unwrap();
        let got: Vec<(bool, Option<&str>)> = lab
            .machines
            .iter()
            .map(|m| (m.install, m.install_device.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (true, None),
                (true, Some("/dev/nvme0n1")),
                (true, None),
                (false, None)
            ]
        );
        // Without a lab-wide disk, a machine's own disk is enough.
        let lab = lab_no_install();
        assert_eq!(lab.machines[0].install_device.as_deref(), Some("/dev/vda"));
        assert!(lab.machines[0].install);
    }

    fn lab_no_install() -> Lab {
        lab(&format!(
            "{BASE}machines:\n  - {{name: a, mac: 52:54:00:00:00:01, role: ssh, install: {{device: /dev/vda}}}}\n"
        ))
        .unwrap()
    }

    #[test]
    fn etcd_members_and_gateways_get_the_2016_metadata() {
        let lab = lab(&format!(
            "{BASE}machines:\n  - {{name: n1, mac: 52:54:00:00:00:01, role: etcd-member, ip: 10.0.0.11}}\n  - {{name: n2, mac: 52:54:00:00:00:02, role: etcd-member, ip: 'fd00::12'}}\n  - {{name: w1, mac: 52:54:00:00:00:03, role: etcd-gateway}}\n"
        ))
        .unwrap();
        let vars = etcd_vars(&lab.machines);
        let n2 = &vars[&Id::new("n2").unwrap()];
        assert_eq!(n2["etcd_name"], "n2");
        assert_eq!(
            n2["etcd_initial_cluster"],
            "n1=http://10.0.0.11:2380,n2=http://[fd00::12]:2380"
        );
        assert_eq!(
            n2["etcd_initial_advertise_peer_urls"],
            "http://[fd00::12]:2380"
        );
        assert_eq!(n2["etcd_advertise_client_urls"], "http://[fd00::12]:2379");
        assert_eq!(
            vars[&Id::new("w1").unwrap()]["etcd_endpoints"],
            "http://10.0.0.11:2379,http://[fd00::12]:2379"
        );
    }
}
