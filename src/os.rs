//! The operating systems caas boots, each described once by an [`OsDescriptor`]: its names,
//! the kernel arguments it needs to PXE-boot from matchbox, the Ignition specs it reads, where
//! its releases are published, the keys that sign them, the file names of its PXE images, and
//! what gives it away in a profile. Adding an OS means adding a variant to [`Os`] and one
//! descriptor; the compiler points at [`Os::descriptor`] and nowhere else.
//!
//! Sources: Flatcar's iPXE guide
//! (<https://www.flatcar.org/docs/latest/installing/bare-metal/booting-with-ipxe/>), Fedora
//! CoreOS's live PXE guide (<https://docs.fedoraproject.org/en-US/fedora-coreos/live-booting/>)
//! and matchbox's example profiles
//! (<https://github.com/poseidon/matchbox/tree/main/examples/profiles>).

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use crate::error::InvalidInput;
use crate::matchbox::kargs::KernelArg;
use crate::matchbox::server::MatchboxUrl;

/// An OS family; its `dir_name` is its directory under `assets/`.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Os {
    /// Flatcar Container Linux
    Flatcar,
    /// Fedora CoreOS (live PXE)
    FedoraCoreos,
    /// CoreOS Container Linux (historical, end of life 2020)
    Coreos,
}

/// A CPU architecture, named as caas's flags name it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    #[default]
    #[value(alias = "x86_64")]
    Amd64,
    #[value(alias = "aarch64")]
    Arm64,
}

impl Arch {
    /// The name in Fedora CoreOS artifact names and stream metadata.
    pub fn fcos_name(self) -> &'static str {
        match self {
            Arch::Amd64 => "x86_64",
            Arch::Arm64 => "aarch64",
        }
    }

    /// The name in Flatcar and Container Linux release paths (`amd64-usr`).
    pub fn board_name(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }
}

/// The query every machine-specific config URL carries: iPXE fills in the machine's SMBIOS
/// UUID and boot MAC, and matchbox selects the group from them.
pub const IGNITION_QUERY_PATH: &str = "/ignition?uuid=${uuid}&mac=${mac:hexhyp}";

/// Everything caas knows about one OS.
#[derive(Debug)]
pub struct OsDescriptor {
    pub os: Os,
    /// The directory under `assets/` and the value on the command line.
    pub dir_name: &'static str,
    pub display_name: &'static str,
    /// The kernel arguments caas writes, in order.
    pub boot_args: &'static [BootArg],
    /// `--name` of the initrd on the iPXE `initrd` line (and so `initrd=` on the kernel line);
    /// without one iPXE names it after its file.
    pub initrd_name: Option<&'static str>,
    /// The kernel arguments that make it run Ignition on this boot; the first is the one caas
    /// writes and names.
    pub first_boot_keys: &'static [&'static str],
    /// The kernel arguments it reads its Ignition config URL from.
    pub config_url_keys: &'static [&'static str],
    /// The Ignition specs it reads.
    pub ignition: IgnitionSpecs,
    /// Where its releases are published and what they hold.
    pub catalog: Catalog,
    /// The OpenPGP keys that sign its releases, embedded in the binary.
    pub keys: &'static [PinnedKey],
    /// Its releases stopped: its signing keys are expected to have expired.
    pub end_of_life: bool,
    /// What gives it away in a profile.
    pub hints: Hints,
    /// systemd units it ships that another OS caas boots does not: a config that drops in on
    /// (or enables) one of another OS's units here configures a unit that does not exist.
    pub own_units: &'static [&'static str],
}

/// One kernel argument of the defaults caas writes.
#[derive(Debug)]
pub enum BootArg {
    /// `initrd=<name>`: UEFI iPXE needs the initrd named on the kernel line.
    InitrdName,
    /// `<key>=<matchbox>/ignition?…`: the machine-specific Ignition config.
    ConfigUrl(&'static str),
    /// `<key>=<matchbox>/assets/…/<rootfs>`: the root file system a live system fetches.
    RootfsUrl(&'static str),
    Literal(&'static str),
}

/// The Ignition spec versions an OS reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IgnitionSpecs {
    V2,
    V3,
    V2AndV3,
}

impl IgnitionSpecs {
    /// Whether it reads spec `major`.x.
    pub fn reads(self, major: u64) -> bool {
        match self {
            IgnitionSpecs::V2 => major == 2,
            IgnitionSpecs::V3 => major == 3,
            IgnitionSpecs::V2AndV3 => major == 2 || major == 3,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            IgnitionSpecs::V2 => "2.x",
            IgnitionSpecs::V3 => "3.x",
            IgnitionSpecs::V2AndV3 => "2.x and 3.x",
        }
    }
}

/// How an OS publishes its releases.
#[derive(Debug)]
pub enum Catalog {
    /// `https://<channel>.<domain>/<arch>-usr/<version>/<file>`, each file with `<file>.sig`;
    /// `current` is resolved through `…/current/version.txt`.
    ContainerLinux(ContainerLinuxCatalog),
    /// Fedora CoreOS's stream metadata, `<server>/streams/<stream>.json`, names the version,
    /// the files, their URLs, sha256 and signatures; nothing is hard-coded but the file-name
    /// convention used when no manifest is published.
    FedoraCoreosStreams,
}

/// A Flatcar-style release server.
#[derive(Debug)]
pub struct ContainerLinuxCatalog {
    /// `<channel>.<domain>` is the channel's server.
    pub domain: &'static str,
    /// The variable of `version.txt` that holds the version.
    pub version_key: &'static str,
    /// The PXE kernel and initrd.
    pub kernel: &'static str,
    pub initrd: &'static str,
    /// Another signature of the kernel's bytes, for releases whose PXE kernel has no `.sig`.
    pub kernel_signature_fallback: Option<&'static str>,
}

/// A pinned key file embedded in the binary: its name in `keys/` and its armored bytes.
#[derive(Debug)]
pub struct PinnedKey {
    pub name: &'static str,
    pub armored: &'static [u8],
}

/// What gives an OS away in a profile or an Ignition config.
#[derive(Debug)]
pub struct Hints {
    /// Text of the kernel URL (lower-cased).
    pub kernel: &'static [&'static str],
    /// Prefixes of kernel argument keys, and whole keys.
    pub arg_prefixes: &'static [&'static str],
    pub arg_keys: &'static [&'static str],
    /// Commands and kernel arguments in a config that install it to disk.
    pub installers: &'static [&'static str],
    /// How its live system installs itself to disk from kernel arguments.
    pub live_installer: Option<LiveInstaller>,
}

/// Kernel arguments that make a live system install to disk.
#[derive(Debug)]
pub struct LiveInstaller {
    /// Its presence makes the live system install to disk.
    pub install_dev_key: &'static str,
    /// The URL of the Ignition config the installed system gets.
    pub ignition_url_key: &'static str,
}

const FLATCAR: OsDescriptor = OsDescriptor {
    os: Os::Flatcar,
    dir_name: "flatcar",
    display_name: "Flatcar Container Linux",
    boot_args: &[
        BootArg::InitrdName,
        BootArg::ConfigUrl("ignition.config.url"),
        BootArg::Literal("flatcar.first_boot=yes"),
    ],
    initrd_name: None,
    // Flatcar's bootengine still honours the Container Linux spelling.
    first_boot_keys: &["flatcar.first_boot", "coreos.first_boot"],
    config_url_keys: &["ignition.config.url", "flatcar.config.url"],
    ignition: IgnitionSpecs::V2AndV3,
    catalog: Catalog::ContainerLinux(ContainerLinuxCatalog {
        domain: "release.flatcar-linux.net",
        version_key: "FLATCAR_VERSION",
        kernel: "flatcar_production_pxe.vmlinuz",
        initrd: "flatcar_production_pxe_image.cpio.gz",
        // The PXE kernel is a symlink to the image kernel since 2024; where its own `.sig` is
        // missing, the image kernel's signature covers the same bytes (matchbox's
        // scripts/get-flatcar uses it too).
        kernel_signature_fallback: Some("flatcar_production_image.vmlinuz.sig"),
    }),
    keys: &[PinnedKey {
        name: "flatcar.asc",
        armored: include_bytes!("../keys/flatcar.asc"),
    }],
    end_of_life: false,
    hints: Hints {
        kernel: &["flatcar"],
        arg_prefixes: &["flatcar."],
        arg_keys: &[],
        installers: &["flatcar-install"],
        live_installer: None,
    },
    own_units: &[
        "etcd-member.service",
        "locksmithd.service",
        "update-engine.service",
    ],
};

const FEDORA_COREOS: OsDescriptor = OsDescriptor {
    os: Os::FedoraCoreos,
    dir_name: "fedora-coreos",
    display_name: "Fedora CoreOS",
    boot_args: &[
        BootArg::InitrdName,
        BootArg::RootfsUrl("coreos.live.rootfs_url"),
        BootArg::Literal("ignition.firstboot"),
        BootArg::Literal("ignition.platform.id=metal"),
        BootArg::ConfigUrl("ignition.config.url"),
    ],
    initrd_name: Some("main"),
    first_boot_keys: &["ignition.firstboot"],
    config_url_keys: &["ignition.config.url"],
    ignition: IgnitionSpecs::V3,
    catalog: Catalog::FedoraCoreosStreams,
    keys: &[
        PinnedKey {
            name: "fedora.asc",
            armored: include_bytes!("../keys/fedora.asc"),
        },
        PinnedKey {
            name: "fedora-46.asc",
            armored: include_bytes!("../keys/fedora-46.asc"),
        },
    ],
    end_of_life: false,
    hints: Hints {
        kernel: &["fedora-coreos"],
        arg_prefixes: &["coreos.live.", "coreos.inst."],
        arg_keys: &["ignition.platform.id"],
        installers: &["coreos-installer", "coreos.inst.install_dev"],
        live_installer: Some(LiveInstaller {
            install_dev_key: "coreos.inst.install_dev",
            ignition_url_key: "coreos.inst.ignition_url",
        }),
    },
    own_units: &["zincati.service", "rpm-ostreed.service"],
};

const COREOS: OsDescriptor = OsDescriptor {
    os: Os::Coreos,
    dir_name: "coreos",
    display_name: "CoreOS Container Linux",
    boot_args: &[
        BootArg::InitrdName,
        BootArg::ConfigUrl("coreos.config.url"),
        BootArg::Literal("coreos.first_boot=yes"),
        // The 2016 system's profile: Container Linux's PXE OEM id.
        BootArg::Literal("coreos.oem.id=pxe"),
    ],
    initrd_name: None,
    first_boot_keys: &["coreos.first_boot"],
    config_url_keys: &["coreos.config.url"],
    ignition: IgnitionSpecs::V2,
    catalog: Catalog::ContainerLinux(ContainerLinuxCatalog {
        domain: "release.core-os.net",
        version_key: "COREOS_VERSION",
        kernel: "coreos_production_pxe.vmlinuz",
        initrd: "coreos_production_pxe_image.cpio.gz",
        kernel_signature_fallback: None,
    }),
    keys: &[PinnedKey {
        name: "coreos-container-linux.asc",
        armored: include_bytes!("../keys/coreos-container-linux.asc"),
    }],
    end_of_life: true,
    hints: Hints {
        kernel: &["coreos_production"],
        // `coreos.config.url` and `coreos.first_boot` are Flatcar's too: no argument tells.
        arg_prefixes: &[],
        arg_keys: &[],
        installers: &["coreos-install"],
        live_installer: None,
    },
    own_units: &[
        "etcd-member.service",
        "locksmithd.service",
        "update-engine.service",
    ],
};

impl Os {
    pub const ALL: [Os; 3] = [Os::Flatcar, Os::FedoraCoreos, Os::Coreos];

    /// Whether this OS ships `unit`: `Some(false)` for a unit caas knows as another OS's only,
    /// `None` for a unit caas knows nothing about (systemd's own, or the admin's).
    pub fn ships_unit(self, unit: &str) -> Option<bool> {
        if self.descriptor().own_units.contains(&unit) {
            Some(true)
        } else if Os::ALL
            .iter()
            .any(|other| other.descriptor().own_units.contains(&unit))
        {
            Some(false)
        } else {
            None
        }
    }

    /// The OSes that ship `unit`, of those caas knows it for.
    pub fn shipping(unit: &str) -> Vec<Os> {
        Os::ALL
            .into_iter()
            .filter(|os| os.descriptor().own_units.contains(&unit))
            .collect()
    }

    /// What caas knows about this OS.
    pub const fn descriptor(self) -> &'static OsDescriptor {
        match self {
            Os::Flatcar => &FLATCAR,
            Os::FedoraCoreos => &FEDORA_COREOS,
            Os::Coreos => &COREOS,
        }
    }

    /// The directory under `assets/` and the value used on the command line.
    pub fn dir_name(self) -> &'static str {
        self.descriptor().dir_name
    }

    pub fn display_name(self) -> &'static str {
        self.descriptor().display_name
    }

    /// The kernel argument whose absence means Ignition will not run on first boot.
    pub fn first_boot_key(self) -> &'static str {
        self.descriptor().first_boot_keys[0]
    }

    /// Whether this OS reads Ignition configs of `spec`; the error says which specs it reads
    /// and which `spec` would be refused at boot ("incorrect config version").
    pub fn check_reads(self, spec: crate::ignition::Spec) -> Result<(), InvalidInput> {
        let descriptor = self.descriptor();
        if descriptor.ignition.reads(spec.major()) {
            return Ok(());
        }
        Err(InvalidInput(format!(
            "{} reads Ignition spec {} only, and the configs would be spec {}",
            descriptor.display_name,
            descriptor.ignition.name(),
            spec.name()
        )))
    }

    /// The OS a profile boots, from its kernel URL, else from its kernel arguments.
    pub fn detect(kernel: &str, arg_keys: &[&str]) -> Option<Os> {
        let kernel = kernel.to_ascii_lowercase();
        let descriptors = || Os::ALL.into_iter().map(Os::descriptor);
        let by_kernel = descriptors().find(|d| d.hints.kernel.iter().any(|h| kernel.contains(h)));
        let by_args = || {
            descriptors().find(|d| {
                arg_keys.iter().any(|k| {
                    d.hints.arg_prefixes.iter().any(|p| k.starts_with(p))
                        || d.hints.arg_keys.contains(k)
                })
            })
        };
        by_kernel.or_else(by_args).map(|d| d.os)
    }
}

/// Every kernel argument some OS reads its Ignition config URL from, most specific first.
pub static CONFIG_URL_KEYS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    let mut keys: Vec<&'static str> = Vec::new();
    for os in Os::ALL {
        for key in os.descriptor().config_url_keys {
            if !keys.contains(key) {
                keys.push(key);
            }
        }
    }
    keys
});

/// The live installers of the OSes that have one.
pub fn live_installers() -> impl Iterator<Item = &'static LiveInstaller> {
    Os::ALL
        .into_iter()
        .filter_map(|os| os.descriptor().hints.live_installer.as_ref())
}

/// The PXE files of one release, by role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleaseFiles {
    pub kernel: String,
    pub initrd: String,
    /// Fedora CoreOS only: the live root file system, fetched by the initramfs.
    pub rootfs: Option<String>,
}

/// The file names a release uses when no published manifest says otherwise.
///
/// Fedora CoreOS names carry the version, and the kernel's name changed with Fedora 42
/// (`live-kernel-x86_64` became `live-kernel.x86_64`); the published manifest, which takes
/// names from the stream metadata, is always preferred over this convention.
pub fn conventional_files(os: Os, version: &str, arch: Arch) -> Result<ReleaseFiles, InvalidInput> {
    Ok(match &os.descriptor().catalog {
        Catalog::ContainerLinux(catalog) => ReleaseFiles {
            kernel: catalog.kernel.into(),
            initrd: catalog.initrd.into(),
            rootfs: None,
        },
        Catalog::FedoraCoreosStreams => {
            let major: u32 = version
                .split('.')
                .next()
                .and_then(|major| major.parse().ok())
                .ok_or_else(|| {
                    InvalidInput(format!(
                        "Fedora CoreOS asset names include the release version, and {version:?} is not one \
                         (like 42.20250410.3.1): fetch the release first with `caas assets fetch fedora-coreos`, \
                         or pass --version"
                    ))
                })?;
            let arch = arch.fcos_name();
            let kernel_sep = if major >= 42 { '.' } else { '-' };
            ReleaseFiles {
                kernel: format!("fedora-coreos-{version}-live-kernel{kernel_sep}{arch}"),
                initrd: format!("fedora-coreos-{version}-live-initramfs.{arch}.img"),
                rootfs: Some(format!("fedora-coreos-{version}-live-rootfs.{arch}.img")),
            }
        }
    })
}

/// What an OS needs to boot from matchbox: kernel and initrd lines, and kernel arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OsBoot {
    pub kernel: String,
    pub initrd: Vec<String>,
    pub args: Vec<KernelArg>,
}

/// The boot settings of `os` for the release in `assets/<os>/<version>/`.
///
/// Kernel and initrd are fetched by iPXE, which resolves relative URLs against the script's
/// own URL, so they stay relative (`/assets/…`) unless a base is given. Everything the booted
/// kernel fetches (Ignition, the FCOS root file system) must be absolute and becomes a
/// [`KernelArg::ServerUrl`].
pub fn default_boot(
    os: Os,
    version: &str,
    files: &ReleaseFiles,
    base: Option<&MatchboxUrl>,
) -> OsBoot {
    let descriptor = os.descriptor();
    let asset = |file: &str| format!("/assets/{}/{version}/{file}", descriptor.dir_name);
    let fetched_by_ipxe = |file: &str| match base {
        Some(base) => base.join(&asset(file)),
        None => asset(file),
    };
    let initrd = fetched_by_ipxe(&files.initrd);
    let (initrd, initrd_name) = match descriptor.initrd_name {
        Some(name) => (format!("--name {name} {initrd}"), name),
        None => (initrd, files.initrd.as_str()),
    };
    let args = (descriptor.boot_args.iter())
        .filter_map(|arg| match arg {
            BootArg::InitrdName => Some(KernelArg::Literal(format!("initrd={initrd_name}"))),
            BootArg::ConfigUrl(key) => Some(KernelArg::ServerUrl {
                key,
                path: IGNITION_QUERY_PATH.to_owned(),
            }),
            BootArg::RootfsUrl(key) => files.rootfs.as_ref().map(|rootfs| KernelArg::ServerUrl {
                key,
                path: asset(rootfs),
            }),
            BootArg::Literal(arg) => Some(KernelArg::Literal((*arg).to_owned())),
        })
        .collect();
    OsBoot {
        kernel: fetched_by_ipxe(&files.kernel),
        initrd: vec![initrd],
        args,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fedora_coreos_kernel_name_follows_the_f42_rename() {
        let old = conventional_files(Os::FedoraCoreos, "36.20220906.3.2", Arch::Amd64).unwrap();
        assert_eq!(
            old.kernel,
            "fedora-coreos-36.20220906.3.2-live-kernel-x86_64"
        );
        let new = conventional_files(Os::FedoraCoreos, "42.20250410.3.1", Arch::Arm64).unwrap();
        assert_eq!(
            new.kernel,
            "fedora-coreos-42.20250410.3.1-live-kernel.aarch64"
        );
        assert_eq!(
            new.rootfs.as_deref(),
            Some("fedora-coreos-42.20250410.3.1-live-rootfs.aarch64.img")
        );
        let err = conventional_files(Os::FedoraCoreos, "current", Arch::Amd64).unwrap_err();
        assert!(err.to_string().contains("\"current\""), "{err}");
    }

    #[test]
    fn every_os_boot_carries_its_first_boot_argument_and_a_config_url() {
        for os in Os::ALL {
            let files = conventional_files(os, "42.1.0", Arch::Amd64).unwrap();
            let boot = default_boot(os, "42.1.0", &files, None);
            assert!(boot.args.iter().any(|a| a.key() == os.first_boot_key()));
            assert!(boot.args.iter().any(
                |a| matches!(a, KernelArg::ServerUrl { path, .. } if path == IGNITION_QUERY_PATH)
            ));
            assert!(
                boot.kernel
                    .starts_with(&format!("/assets/{}/42.1.0/", os.dir_name()))
            );
        }
    }

    #[test]
    fn every_os_has_one_descriptor_under_its_own_names() {
        use clap::ValueEnum as _;
        assert_eq!(Os::ALL.as_slice(), Os::value_variants());
        for os in Os::ALL {
            let descriptor = os.descriptor();
            assert_eq!(descriptor.os, os);
            let value = os.to_possible_value().unwrap();
            assert_eq!(value.get_name(), descriptor.dir_name);
            assert_eq!(
                serde_json::to_value(os).unwrap(),
                serde_json::json!(descriptor.dir_name)
            );
            assert!(!descriptor.keys.is_empty(), "{os:?} pins no key");
            for key in descriptor.config_url_keys {
                assert!(CONFIG_URL_KEYS.contains(key));
            }
        }
    }

    #[test]
    fn the_os_is_detected_from_the_kernel_then_the_arguments() {
        assert_eq!(
            Os::detect(
                "/assets/fedora-coreos/1/fedora-coreos-1-live-kernel.x86_64",
                &[]
            ),
            Some(Os::FedoraCoreos)
        );
        assert_eq!(
            Os::detect("/k", &["ignition.platform.id"]),
            Some(Os::FedoraCoreos)
        );
        assert_eq!(Os::detect("/k", &["flatcar.first_boot"]), Some(Os::Flatcar));
        assert_eq!(Os::detect("/k", &["coreos.first_boot"]), None);
    }
}
