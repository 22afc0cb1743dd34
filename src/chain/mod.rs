//! `caas chain`: get machines from their firmware into matchbox's `/boot.ipxe`.
//!
//! - [`url`]: the boot URL, validated so that iPXE and dnsmasq read it back literally;
//! - [`script`]: the chain script (`templates/chain.ipxe.tera`) and boot-loader entries;
//! - [`media`]: ISO/USB images (xorriso, isolinux, mtools) and iPXE built with `EMBED=`;
//! - [`dnsmasq`]: a dnsmasq config for PXE firmware and iPXE;
//! - [`hosts`]: the addresses a data dir's groups pin, as dnsmasq reservations.
//!
//! `chain build` checks every input and tool first and builds in a temporary directory; its
//! command handler then writes all outputs (and `SHA256SUMS`) in one call to [`crate::write`].

pub mod dnsmasq;
pub mod hosts;
pub mod media;
pub mod script;
pub mod url;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::error::invalid;
use crate::write;
use media::{EfiBoot, ImageTools, IpxeSource, Mtools};
use script::{LKRN_NAME, SCRIPT_NAME};
use url::BootUrl;

/// File names in the output directory.
pub const ISO_NAME: &str = "caas-chain.iso";
pub const USB_NAME: &str = "caas-chain-usb.img";
pub const SUMS_NAME: &str = "SHA256SUMS";

/// What `caas chain build` produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum ChainTarget {
    /// chain.ipxe, the script itself
    Script,
    /// ipxe.lkrn + chain.ipxe as its initrd, with isolinux/syslinux, GRUB and PXELINUX entries
    Lkrn,
    /// caas-chain.iso: El Torito CD image (BIOS; UEFI too when an ipxe.efi is found)
    Iso,
    /// caas-chain-usb.img: the same image made hybrid, to write to a USB stick
    Usb,
    /// undionly.kpxe with the script embedded (needs --ipxe-src)
    Kpxe,
    /// ipxe.efi and snponly.efi with the script embedded (needs --ipxe-src)
    Efi,
}

/// One output of `chain build`, before it is written.
pub struct Output {
    /// The file name, relative to the output directory.
    pub name: String,
    pub bytes: Vec<u8>,
}

impl Output {
    fn text(name: &str, text: String) -> Output {
        Output {
            name: name.to_owned(),
            bytes: text.into_bytes(),
        }
    }

    fn binary(name: &str, bytes: Vec<u8>) -> Output {
        Output {
            name: name.to_owned(),
            bytes,
        }
    }
}

/// What `--target kpxe`/`efi` needs, said in full when `--ipxe-src` is missing.
fn source_needed(targets: &[&str]) -> anyhow::Error {
    invalid(format!(
        "--target {} needs iPXE built with the chain script embedded: give --ipxe-src DIR, an \
         iPXE source tree (git clone https://github.com/ipxe/ipxe, or apt-get source ipxe), and \
         caas runs make EMBED=chain.ipxe in a private copy of it; or use the stock binaries from /usr/lib/ipxe \
         (Debian package ipxe) unchanged and hand them the boot URL by DHCP: caas chain dnsmasq",
        targets.join(",")
    ))
}

/// What `chain build` is asked for.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    pub url: BootUrl,
    pub targets: BTreeSet<ChainTarget>,
    /// Prebuilt iPXE binaries, looked up before the system's.
    pub ipxe_dir: Option<PathBuf>,
    /// An iPXE source tree, for the targets built with the script embedded.
    pub ipxe_src: Option<PathBuf>,
    /// Where that tree is copied and built; default [`media::default_build_dir`].
    pub ipxe_build_dir: Option<PathBuf>,
    /// Keep the iPXE build quiet.
    pub quiet: bool,
}

/// Everything `chain build` made: the outputs (`SHA256SUMS` last), and notes for the operator.
pub struct Built {
    pub outputs: Vec<Output>,
    pub notes: Vec<String>,
}

/// `caas chain build` without the writing: checks every input and tool first, then builds
/// each output in memory (`SHA256SUMS` last).
pub fn build(options: &BuildOptions) -> Result<Built> {
    let url = &options.url;
    let targets = &options.targets;
    let wants = |t: ChainTarget| targets.contains(&t);
    let epoch = media::source_date_epoch(std::env::var_os("SOURCE_DATE_EPOCH"))?;
    let script = script::render(url)?;
    let mut notes = Vec::new();

    // Everything that can be missing is looked for before anything is built.
    let Tools {
        source_targets,
        source,
        dirs,
        lkrn,
        image_tools,
        prebuilt_efi,
    } = find_tools(options)?;
    if url.is_https() && (lkrn.is_some() || prebuilt_efi.is_some()) {
        notes.push(format!(
            "the boot URL is https: prebuilt iPXE binaries (Debian's, and official BIOS builds) \
             usually lack HTTPS support, so {url} may fail to load; build iPXE with \
             DOWNLOAD_PROTO_HTTPS or serve the boot script over http"
        ));
    }

    // Build.
    let mut outputs: Vec<Output> = Vec::new();
    let mut built_efi: Option<Vec<u8>> = None;
    if let Some(source) = &source {
        let build_dir = match &options.ipxe_build_dir {
            Some(dir) => dir.clone(),
            None => media::default_build_dir(source)?,
        };
        for (name, bytes) in media::build_from_source(
            source,
            &build_dir,
            &script,
            &source_targets,
            epoch,
            options.quiet,
        )? {
            if name == "ipxe.efi" {
                built_efi = Some(bytes.clone());
            }
            outputs.push(Output::binary(&name, bytes));
        }
    }
    if wants(ChainTarget::Script) || wants(ChainTarget::Lkrn) {
        outputs.insert(0, Output::text(SCRIPT_NAME, script.clone()));
    }
    if wants(ChainTarget::Lkrn) {
        let path = lkrn.as_ref().expect("looked up above");
        outputs.extend(lkrn_outputs(url, path)?);
    }
    if let Some(tools) = &image_tools {
        let efi = match (&built_efi, &prebuilt_efi) {
            (Some(bytes), _) => {
                notes.push(
                    "UEFI: the images boot the ipxe.efi just built, with the chain script \
                     embedded"
                        .to_owned(),
                );
                Some(EfiBoot {
                    binary: bytes.clone(),
                })
            }
            (None, Some(path)) => {
                let binary =
                    std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                notes.push(efi_note(path, media::efi_reads_autoexec(&binary)));
                Some(EfiBoot { binary })
            }
            (None, None) => {
                notes.push(format!(
                    "UEFI: no ipxe.efi in {}: the images boot on BIOS (and UEFI with CSM) only",
                    dirs.iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(" or ")
                ));
                None
            }
        };
        let built = media::build_images(
            tools,
            url,
            &script,
            efi.as_ref(),
            epoch,
            wants(ChainTarget::Iso),
            wants(ChainTarget::Usb),
        )?;
        if let Some(iso) = built.iso {
            outputs.push(Output::binary(ISO_NAME, iso));
        }
        if let Some(usb) = built.usb {
            outputs.push(Output::binary(USB_NAME, usb));
        }
    }
    let sums: String = outputs
        .iter()
        .map(|o| format!("{}  {}\n", write::sha256_hex(&o.bytes), o.name))
        .collect();
    outputs.push(Output::text(SUMS_NAME, sums));

    Ok(Built { outputs, notes })
}

/// `ipxe.lkrn` and the boot-loader entries that load it with the chain script as its initrd.
fn lkrn_outputs(url: &BootUrl, lkrn: &Path) -> Result<Vec<Output>> {
    let bytes = std::fs::read(lkrn).with_context(|| format!("reading {}", lkrn.display()))?;
    Ok(vec![
        Output::binary(LKRN_NAME, bytes),
        Output::text(
            "syslinux.cfg",
            script::syslinux_cfg(
                url,
                "isolinux / syslinux / extlinux",
                "Put ipxe.lkrn and chain.ipxe in the directory of this file.",
            ),
        ),
        Output::text("grub.cfg", script::grub_cfg(url)),
        Output::text(
            "pxelinux.cfg/default",
            script::syslinux_cfg(
                url,
                "PXELINUX",
                "Put this file at pxelinux.cfg/default in the TFTP root, ipxe.lkrn and \
                 chain.ipxe next to pxelinux.0.",
            ),
        ),
    ])
}

/// The iPXE sources, prebuilt binaries and image tools `options` need, each found (or its
/// absence explained) before anything is built.
struct Tools {
    /// The `make` targets to build from source, and their output names.
    source_targets: Vec<(&'static str, &'static str)>,
    source: Option<IpxeSource>,
    /// Where prebuilt iPXE binaries are looked for.
    dirs: Vec<PathBuf>,
    lkrn: Option<PathBuf>,
    image_tools: Option<ImageTools>,
    /// The UEFI entry of the images when none is built from source.
    prebuilt_efi: Option<PathBuf>,
}

fn find_tools(options: &BuildOptions) -> Result<Tools> {
    let wants = |t: ChainTarget| options.targets.contains(&t);
    let mut source_targets: Vec<(&'static str, &'static str)> = Vec::new();
    if wants(ChainTarget::Kpxe) {
        source_targets.extend(media::KPXE_TARGETS);
    }
    if wants(ChainTarget::Efi) {
        source_targets.extend(media::EFI_TARGETS);
    }
    let source = match (&options.ipxe_src, source_targets.is_empty()) {
        (Some(dir), false) => Some(IpxeSource::locate(dir)?),
        (None, false) => {
            let named: Vec<&str> = [(ChainTarget::Kpxe, "kpxe"), (ChainTarget::Efi, "efi")]
                .into_iter()
                .filter(|(t, _)| wants(*t))
                .map(|(_, name)| name)
                .collect();
            return Err(source_needed(&named));
        }
        (Some(dir), true) => {
            tracing::warn!(
                "--ipxe-src {} is only used by --target kpxe and efi",
                dir.display()
            );
            None
        }
        (None, true) => None,
    };
    let dirs = media::prebuilt_dirs(options.ipxe_dir.as_deref());
    let images = wants(ChainTarget::Iso) || wants(ChainTarget::Usb);
    let lkrn = if wants(ChainTarget::Lkrn) || images {
        Some(media::find_prebuilt(&dirs, LKRN_NAME)?)
    } else {
        None
    };
    let image_tools = if images {
        Some(ImageTools {
            xorriso: media::find_command("xorriso", "xorriso")?,
            syslinux: media::find_syslinux(&media::SYSLINUX_LAYOUTS)?,
            lkrn: lkrn.clone().expect("looked up above"),
            mtools: None,
        })
    } else {
        None
    };
    // The UEFI entry of the images: a freshly built ipxe.efi (script embedded), else a
    // prebuilt one if there is one.
    let prebuilt_efi = if images && !wants(ChainTarget::Efi) {
        media::find_prebuilt(&dirs, "ipxe.efi").ok()
    } else {
        None
    };
    let image_tools = match image_tools {
        Some(mut tools) if prebuilt_efi.is_some() || wants(ChainTarget::Efi) => {
            tools.mtools = Some(Mtools::find()?);
            Some(tools)
        }
        other => other,
    };
    Ok(Tools {
        source_targets,
        source,
        dirs,
        lkrn,
        image_tools,
        prebuilt_efi,
    })
}

fn efi_note(path: &Path, reads_autoexec: bool) -> String {
    if reads_autoexec {
        format!(
            "UEFI: the images boot {}, which runs the chain script from the EFI system \
             partition (autoexec.ipxe)",
            path.display()
        )
    } else {
        format!(
            "UEFI: the images boot {}, an iPXE older than 1.21.1 (Debian 12 ships a 2019 \
             build) that cannot pick up the chain script: under UEFI it only does a plain DHCP \
             boot, which works where DHCP hands iPXE the boot URL (caas chain dnsmasq); for a \
             UEFI entry that runs the script, give --ipxe-dir with a newer ipxe.efi or add \
             --target efi with --ipxe-src DIR. BIOS boot runs the script either way",
            path.display()
        )
    }
}
