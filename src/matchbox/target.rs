//! The servers caas writes for, and how each differs: which kernel-argument field it reads, how
//! it renders `/ipxe`, what it does with Ignition files and templates, and which labels its
//! `/boot.ipxe` sends (matchbox's HTTP handlers at each release, e.g.
//! <https://github.com/poseidon/matchbox/tree/v0.11.0/matchbox/http>).

use serde::Serialize;

use super::profile::Boot;

/// A server version whose behaviour `lint` and `explain` reproduce.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
pub enum Target {
    /// bootcfg v0.4: kernel arguments in `boot.cmdline`; Fuze templates; raw Ignition verbatim
    #[value(name = "bootcfg-0.4")]
    #[serde(rename = "bootcfg-0.4")]
    Bootcfg04,
    /// matchbox v0.7–v0.9 (v0.8.3): `boot.args`; Container Linux Config templates; raw Ignition
    /// served verbatim
    #[value(name = "matchbox-0.8")]
    #[serde(rename = "matchbox-0.8")]
    Matchbox08,
    /// matchbox v0.11 and later: `boot.args`; Butane templates; raw Ignition 3.0–3.4 upgraded to
    /// and served as 3.4.0
    #[default]
    #[value(name = "matchbox-0.11")]
    #[serde(rename = "matchbox-0.11")]
    Matchbox011,
}

/// What a server does with templates under `ignition/` (names not ending in `.ign`/`.ignition`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TemplateDialect {
    /// Fuze (bootcfg v0.4) and Container Linux Configs (matchbox up to v0.9): YAML without
    /// `variant`/`version`, rendered to Ignition 2.x.
    ContainerLinuxConfig,
    /// Butane (matchbox v0.10 and later): YAML with `variant` and `version`.
    Butane,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Bootcfg04 => "bootcfg-0.4",
            Target::Matchbox08 => "matchbox-0.8",
            Target::Matchbox011 => "matchbox-0.11",
        }
    }

    /// Whether the server reads `boot.cmdline` (and ignores `boot.args`): bootcfg before v0.5.
    pub fn reads_cmdline(self) -> bool {
        self == Target::Bootcfg04
    }

    pub fn template_dialect(self) -> TemplateDialect {
        match self {
            Target::Bootcfg04 | Target::Matchbox08 => TemplateDialect::ContainerLinuxConfig,
            Target::Matchbox011 => TemplateDialect::Butane,
        }
    }

    /// Whether raw Ignition is parsed and re-served (v0.10+) rather than served byte for byte.
    pub fn parses_raw_ignition(self) -> bool {
        self == Target::Matchbox011
    }

    /// The newest Ignition spec minor (3.x) the server can re-serve; `None` when it serves
    /// bytes verbatim.
    pub fn max_ignition_3_minor(self) -> Option<u64> {
        match self {
            Target::Matchbox011 => Some(4),
            Target::Bootcfg04 | Target::Matchbox08 => None,
        }
    }

    /// The labels the server's own `/boot.ipxe` chain sends to `/ipxe`.
    pub fn boot_labels(self) -> &'static [&'static str] {
        match self {
            Target::Bootcfg04 | Target::Matchbox08 => {
                &["uuid", "mac", "domain", "hostname", "serial"]
            }
            Target::Matchbox011 => &["uuid", "mac", "domain", "hostname", "serial", "arch"],
        }
    }

    /// The kernel arguments this server puts on the `kernel` line.
    pub fn kernel_args(self, boot: &Boot) -> Vec<String> {
        if self.reads_cmdline() {
            // bootcfg ranges over the map: sorted keys, an empty value is a bare flag.
            Boot {
                args: None,
                ..boot.clone()
            }
            .effective_args()
        } else {
            boot.args.clone().unwrap_or_default()
        }
    }
}

/// Why `/ipxe` answers 404 for a profile.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IpxeError {
    #[error("the profile has no `boot` section, so the iPXE template fails on it")]
    NoBoot,
    #[error("`boot.cmdline` value of {0:?} is not a string, so bootcfg cannot decode the profile")]
    CmdlineValue(String),
}

/// The script a server returns for `/ipxe`, byte for byte.
///
/// matchbox v0.7 and later (its template since poseidon/matchbox#675):
/// `#!ipxe`, `kernel <kernel>` followed by ` <arg>` for each argument, one `initrd <entry>` line
/// per entry, `boot`. bootcfg v0.4 puts the sorted `cmdline` map on the kernel line and every
/// initrd entry on one `initrd` line, each followed by a space.
pub fn ipxe_script(boot: Option<&Boot>, target: Target) -> Result<String, IpxeError> {
    let boot = boot.ok_or(IpxeError::NoBoot)?;
    let mut script = String::from("#!ipxe\nkernel ");
    script.push_str(&boot.kernel);
    if target.reads_cmdline()
        && let Some((key, _)) = boot
            .cmdline
            .iter()
            .flatten()
            .find(|(_, value)| !value.is_string())
    {
        return Err(IpxeError::CmdlineValue(key.clone()));
    }
    for arg in target.kernel_args(boot) {
        script.push(' ');
        script.push_str(&arg);
    }
    script.push('\n');
    if target.reads_cmdline() {
        script.push_str("initrd ");
        for initrd in &boot.initrd {
            script.push_str(initrd);
            script.push(' ');
        }
        script.push('\n');
    } else {
        for initrd in &boot.initrd {
            script.push_str("initrd ");
            script.push_str(initrd);
            script.push('\n');
        }
    }
    script.push_str("boot\n");
    Ok(script)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn boot() -> Boot {
        Boot {
            kernel: "/image/kernel".into(),
            initrd: vec![
                "/image/initrd_a".into(),
                "--name main /image/initrd_b".into(),
            ],
            args: Some(vec!["a=b".into(), "c".into()]),
            cmdline: json!({"z": "", "y": "1"}).as_object().cloned(),
        }
    }

    #[test]
    fn matchbox_renders_one_initrd_line_per_entry() {
        for target in [Target::Matchbox08, Target::Matchbox011] {
            assert_eq!(
                ipxe_script(Some(&boot()), target).unwrap(),
                "#!ipxe\nkernel /image/kernel a=b c\ninitrd /image/initrd_a\ninitrd --name main /image/initrd_b\nboot\n"
            );
        }
        let bare = Boot {
            kernel: "/k".into(),
            ..Boot::default()
        };
        assert_eq!(
            ipxe_script(Some(&bare), Target::Matchbox011).unwrap(),
            "#!ipxe\nkernel /k\nboot\n"
        );
    }

    #[test]
    fn bootcfg_renders_the_cmdline_map_and_one_initrd_line() {
        assert_eq!(
            ipxe_script(Some(&boot()), Target::Bootcfg04).unwrap(),
            "#!ipxe\nkernel /image/kernel y=1 z\ninitrd /image/initrd_a --name main /image/initrd_b \nboot\n"
        );
    }

    #[test]
    fn no_boot_is_a_404() {
        assert_eq!(
            ipxe_script(None, Target::Matchbox011),
            Err(IpxeError::NoBoot)
        );
        let mut bad = boot();
        bad.cmdline = json!({"x": 1}).as_object().cloned();
        assert!(ipxe_script(Some(&bad), Target::Bootcfg04).is_err());
        assert!(ipxe_script(Some(&bad), Target::Matchbox08).is_ok());
    }
}
