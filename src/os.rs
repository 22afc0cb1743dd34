//! The operating systems caas boots, and what each needs to PXE-boot from matchbox: asset file
//! names and kernel arguments, as the vendors document them
//! (<https://www.flatcar.org/docs/latest/installing/bare-metal/booting-with-ipxe/>,
//! <https://docs.fedoraproject.org/en-US/fedora-coreos/live-booting-ipxe/>).

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

impl Os {
    pub const ALL: [Os; 3] = [Os::Flatcar, Os::FedoraCoreos, Os::Coreos];

    /// The directory under `assets/` and the value used on the command line.
    pub fn dir_name(self) -> &'static str {
        match self {
            Os::Flatcar => "flatcar",
            Os::FedoraCoreos => "fedora-coreos",
            Os::Coreos => "coreos",
        }
    }

    pub fn display_name(self) -> &'static str {
        match self {
            Os::Flatcar => "Flatcar Container Linux",
            Os::FedoraCoreos => "Fedora CoreOS",
            Os::Coreos => "CoreOS Container Linux",
        }
    }

    /// The kernel argument whose absence means Ignition will not run on first boot.
    pub fn first_boot_key(self) -> &'static str {
        match self {
            Os::Flatcar => "flatcar.first_boot",
            Os::FedoraCoreos => "ignition.firstboot",
            Os::Coreos => "coreos.first_boot",
        }
    }

    /// caas renders Ignition spec 3.x; CoreOS Container Linux reads only 2.x, so configs for it
    /// cannot come from caas's templates.
    pub fn check_reads_ignition_v3(self) -> Result<(), InvalidInput> {
        match self {
            Os::Coreos => Err(InvalidInput(
                "CoreOS Container Linux reads Ignition spec 2.x, and caas writes 3.x: use flatcar \
                 (its successor) or fedora-coreos"
                    .into(),
            )),
            Os::Flatcar | Os::FedoraCoreos => Ok(()),
        }
    }
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
    Ok(match os {
        Os::Flatcar => ReleaseFiles {
            kernel: "flatcar_production_pxe.vmlinuz".into(),
            initrd: "flatcar_production_pxe_image.cpio.gz".into(),
            rootfs: None,
        },
        Os::Coreos => ReleaseFiles {
            kernel: "coreos_production_pxe.vmlinuz".into(),
            initrd: "coreos_production_pxe_image.cpio.gz".into(),
            rootfs: None,
        },
        Os::FedoraCoreos => {
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
    let asset = |file: &str| format!("/assets/{}/{version}/{file}", os.dir_name());
    let fetched_by_ipxe = |file: &str| match base {
        Some(base) => base.join(&asset(file)),
        None => asset(file),
    };
    let literal = |arg: &str| KernelArg::Literal(arg.to_owned());
    let ignition = |key: &'static str| KernelArg::ServerUrl {
        key,
        path: IGNITION_QUERY_PATH.to_owned(),
    };
    match os {
        Os::Flatcar => OsBoot {
            kernel: fetched_by_ipxe(&files.kernel),
            initrd: vec![fetched_by_ipxe(&files.initrd)],
            args: vec![
                // UEFI iPXE needs the initrd named on the command line.
                literal(&format!("initrd={}", files.initrd)),
                ignition("ignition.config.url"),
                literal("flatcar.first_boot=yes"),
            ],
        },
        Os::FedoraCoreos => {
            let mut args = vec![literal("initrd=main")];
            if let Some(rootfs) = &files.rootfs {
                args.push(KernelArg::ServerUrl {
                    key: "coreos.live.rootfs_url",
                    path: asset(rootfs),
                });
            }
            args.extend([
                literal("ignition.firstboot"),
                literal("ignition.platform.id=metal"),
                ignition("ignition.config.url"),
            ]);
            OsBoot {
                kernel: fetched_by_ipxe(&files.kernel),
                initrd: vec![format!("--name main {}", fetched_by_ipxe(&files.initrd))],
                args,
            }
        }
        Os::Coreos => OsBoot {
            kernel: fetched_by_ipxe(&files.kernel),
            initrd: vec![fetched_by_ipxe(&files.initrd)],
            args: vec![
                literal(&format!("initrd={}", files.initrd)),
                ignition("coreos.config.url"),
                literal("coreos.first_boot=yes"),
                // The 2016 system's profile: Container Linux's PXE OEM id.
                literal("coreos.oem.id=pxe"),
            ],
        },
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
}
