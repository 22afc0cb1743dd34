//! `caas chain`: get machines from their firmware into matchbox's `/boot.ipxe`.
//!
//! - [`url`]: the boot URL, validated so that iPXE and dnsmasq read it back literally;
//! - [`script`]: the chain script (`templates/chain.ipxe.tera`) and boot-loader entries;
//! - [`media`]: ISO/USB images (xorriso, isolinux, mtools) and iPXE built with `EMBED=`;
//! - [`dnsmasq`]: a dnsmasq config for PXE firmware and iPXE.
//!
//! `chain build` checks every input and tool first, builds in a temporary directory, then
//! writes all outputs (and `SHA256SUMS`) in one call to [`crate::write`].

pub mod dnsmasq;
pub mod media;
pub mod script;
pub mod url;

use std::collections::BTreeSet;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::Serialize;

use crate::cli::{
    BootUrlArgs, ChainBuildArgs, ChainCommand, ChainDnsmasqArgs, ChainTarget, Format, GlobalArgs,
};
use crate::error::invalid;
use crate::write::{self, Action, FileWrite};
use media::{EfiBoot, ImageTools, IpxeSource, Mtools};
use script::{LKRN_NAME, SCRIPT_NAME};
use url::BootUrl;

/// File names in the output directory.
pub const ISO_NAME: &str = "caas-chain.iso";
pub const USB_NAME: &str = "caas-chain-usb.img";
pub const SUMS_NAME: &str = "SHA256SUMS";

/// `caas chain …`.
pub fn run(global: &GlobalArgs, command: &ChainCommand) -> Result<()> {
    match command {
        ChainCommand::Build(args) => build(global, args),
        ChainCommand::Dnsmasq(args) => write_dnsmasq(global, args),
    }
}

fn boot_url(args: &BootUrlArgs) -> Result<BootUrl> {
    let url = match (&args.boot_url, &args.server) {
        (Some(url), _) => BootUrl::parse("--boot-url", url),
        (None, Some(server)) => BootUrl::from_server(server),
        (None, None) => unreachable!("clap requires --boot-url or --server"),
    };
    url.map_err(|err| invalid(err.0))
}

/// One output of `chain build`, before it is written.
struct Output {
    name: String,
    bytes: Vec<u8>,
    text: bool,
}

impl Output {
    fn text(name: &str, text: String) -> Output {
        Output {
            name: name.to_owned(),
            bytes: text.into_bytes(),
            text: true,
        }
    }

    fn binary(name: &str, bytes: Vec<u8>) -> Output {
        Output {
            name: name.to_owned(),
            bytes,
            text: false,
        }
    }
}

/// What `--target kpxe`/`efi` needs, said in full when `--ipxe-src` is missing.
fn source_needed(targets: &[&str]) -> anyhow::Error {
    invalid(format!(
        "--target {} needs iPXE built with the chain script embedded: give --ipxe-src DIR, an \
         iPXE source tree (git clone https://github.com/ipxe/ipxe, or apt-get source ipxe), and \
         caas runs make EMBED=chain.ipxe in it; or use the stock binaries from /usr/lib/ipxe \
         (Debian package ipxe) unchanged and hand them the boot URL by DHCP: caas chain dnsmasq",
        targets.join(",")
    ))
}

/// `caas chain build`.
pub fn build(global: &GlobalArgs, args: &ChainBuildArgs) -> Result<()> {
    let url = boot_url(&args.boot)?;
    let targets: BTreeSet<ChainTarget> = args.targets.iter().copied().collect();
    let wants = |t: ChainTarget| targets.contains(&t);
    let epoch = media::source_date_epoch(std::env::var_os("SOURCE_DATE_EPOCH"))?;
    let script = script::render(&url)?;
    let mut notes = Vec::new();

    // Everything that can be missing is looked for before anything is built.
    let mut source_targets: Vec<(&str, &str)> = Vec::new();
    if wants(ChainTarget::Kpxe) {
        source_targets.extend(media::KPXE_TARGETS);
    }
    if wants(ChainTarget::Efi) {
        source_targets.extend(media::EFI_TARGETS);
    }
    let source = match (&args.ipxe_src, source_targets.is_empty()) {
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
    let dirs = media::prebuilt_dirs(args.ipxe_dir.as_deref());
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
        for (name, bytes) in
            media::build_from_source(source, &script, &source_targets, epoch, global.quiet)?
        {
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
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        outputs.push(Output::binary(LKRN_NAME, bytes));
        outputs.push(Output::text(
            "syslinux.cfg",
            script::syslinux_cfg(
                &url,
                "isolinux / syslinux / extlinux",
                "Put ipxe.lkrn and chain.ipxe in the directory of this file.",
            ),
        ));
        outputs.push(Output::text("grub.cfg", script::grub_cfg(&url)));
        outputs.push(Output::text(
            "pxelinux.cfg/default",
            script::syslinux_cfg(
                &url,
                "PXELINUX",
                "Put this file at pxelinux.cfg/default in the TFTP root, ipxe.lkrn and \
                 chain.ipxe next to pxelinux.0.",
            ),
        ));
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
            &url,
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

    // Write, all at once, and report.
    let files: Vec<FileWrite> = outputs
        .iter()
        .map(|o| FileWrite::new(args.out.join(&o.name), o.bytes.clone()))
        .collect();
    let outcomes = if args.write.dry_run {
        write::plan(&files)?
    } else {
        write::apply(&files)?
    };
    let report = BuildReport {
        boot_url: url.as_str(),
        dry_run: args.write.dry_run,
        files: outcomes
            .iter()
            .zip(&outputs)
            .map(|(outcome, output)| FileReport {
                path: &outcome.path,
                action: outcome.action,
                sha256: &outcome.sha256,
                size: output.bytes.len(),
            })
            .collect(),
        notes: &notes,
    };
    let mut out = io::stdout().lock();
    print_report(&mut out, &report, &outputs, args.write.format, global.quiet)
        .context("writing the summary")
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

#[derive(Serialize)]
struct FileReport<'a> {
    path: &'a PathBuf,
    action: Action,
    sha256: &'a str,
    size: usize,
}

#[derive(Serialize)]
struct BuildReport<'a> {
    boot_url: &'a str,
    dry_run: bool,
    files: Vec<FileReport<'a>>,
    notes: &'a [String],
}

/// Text: `<action> <path> sha256:<hex>` per file (with `--dry-run`, text outputs are shown),
/// then `note: …` lines. JSON: the report as one document.
fn print_report(
    out: &mut impl io::Write,
    report: &BuildReport<'_>,
    outputs: &[Output],
    format: Format,
    quiet: bool,
) -> io::Result<()> {
    match format {
        Format::Json => out.write_all(&write::canonical_json(report)),
        Format::Text if quiet => Ok(()),
        Format::Text => {
            for (file, output) in report.files.iter().zip(outputs) {
                let action = file.action.describe(report.dry_run);
                writeln!(
                    out,
                    "{action} {} sha256:{}",
                    file.path.display(),
                    file.sha256
                )?;
                if report.dry_run && file.action != Action::Unchanged && output.text {
                    out.write_all(&output.bytes)?;
                }
            }
            for note in report.notes {
                writeln!(out, "note: {note}")?;
            }
            Ok(())
        }
    }
}

/// `caas chain dnsmasq`.
pub fn write_dnsmasq(global: &GlobalArgs, args: &ChainDnsmasqArgs) -> Result<()> {
    let url = boot_url(&args.boot)?;
    let text = dnsmasq::render_from_args(url, args)?;
    match &args.out {
        Some(path) => {
            let file = FileWrite::new(path, text.into_bytes());
            write::write_and_report(&[file], &args.write, global.quiet)?;
        }
        None => {
            if args.write.dry_run || args.write.format == Format::Json {
                return Err(invalid(
                    "--dry-run and --format json report on a written file: give --out FILE",
                ));
            }
            io::stdout()
                .lock()
                .write_all(text.as_bytes())
                .context("writing the config to stdout")?;
        }
    }
    Ok(())
}
