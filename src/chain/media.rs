//! Boot media that run the chain script, built with the standard tools as subprocesses:
//! xorriso (El Torito ISO, hybrid USB image) with isolinux and ipxe.lkrn, mtools (the UEFI
//! system partition image), and iPXE's own build (`make … EMBED=`) for `.kpxe`/`.efi`.
//!
//! Everything is built in a temporary directory and handed back as bytes: the caller writes
//! outputs through [`crate::write`], the one write path. Times inside the images come from
//! `SOURCE_DATE_EPOCH` (or a fixed date), and volume ids and serials are fixed, so the same
//! inputs give byte-identical images.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result, anyhow, bail};

use super::script::{LKRN_NAME, SCRIPT_NAME, syslinux_cfg};
use super::url::BootUrl;
use crate::error::invalid;

/// Where Debian's package `ipxe` installs its prebuilt binaries.
pub const SYSTEM_IPXE_DIR: &str = "/usr/lib/ipxe";
/// The time stamped into images when `SOURCE_DATE_EPOCH` is not set: 1980-01-01T00:00:00Z, the
/// earliest time FAT can store.
pub const DEFAULT_EPOCH: u64 = 315_532_800;
/// ISO 9660 volume id of every image caas builds.
pub const VOLUME_ID: &str = "CAAS_CHAIN";
/// FAT volume label and serial of the UEFI system partition image.
const EFI_LABEL: &str = "CAAS_EFI";
const EFI_SERIAL: &str = "CAA50001";
/// The UEFI removable-media boot path for x86-64.
const EFI_BOOT_PATH: &str = "::/EFI/BOOT/BOOTX64.EFI";
/// The script name iPXE (1.21.1 and later, 2021) looks for next to itself on UEFI.
pub const AUTOEXEC_NAME: &str = "autoexec.ipxe";

/// A command found on `PATH`, or an error naming the Debian package that provides it.
pub fn find_command(name: &str, package: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| {
            anyhow!("{name} not found on PATH: install the Debian package {package} (apt-get install {package})")
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Where prebuilt iPXE binaries are looked up: `--ipxe-dir`, then Debian's directory.
pub fn prebuilt_dirs(ipxe_dir: Option<&Path>) -> Vec<PathBuf> {
    ipxe_dir
        .map(Path::to_path_buf)
        .into_iter()
        .chain([PathBuf::from(SYSTEM_IPXE_DIR)])
        .collect()
}

/// The first `dirs/<name>` that exists, or an error naming the package `ipxe`.
pub fn find_prebuilt(dirs: &[PathBuf], name: &str) -> Result<PathBuf> {
    dirs.iter()
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            anyhow!(
                "{name} not found in {}: install the Debian package ipxe (apt-get install ipxe), \
                 or give --ipxe-dir DIR with a prebuilt {name}",
                searched.join(" or ")
            )
        })
}

/// isolinux's files, all from one syslinux installation (they must match).
#[derive(Clone, Debug)]
pub struct Syslinux {
    pub isolinux_bin: PathBuf,
    pub ldlinux_c32: PathBuf,
    pub isohdpfx_bin: PathBuf,
}

/// Where distributions install isolinux.bin, ldlinux.c32 and isohdpfx.bin (Debian first).
pub const SYSLINUX_LAYOUTS: [[&str; 3]; 3] = [
    [
        "/usr/lib/ISOLINUX/isolinux.bin",
        "/usr/lib/syslinux/modules/bios/ldlinux.c32",
        "/usr/lib/ISOLINUX/isohdpfx.bin",
    ],
    [
        "/usr/share/syslinux/isolinux.bin",
        "/usr/share/syslinux/ldlinux.c32",
        "/usr/share/syslinux/isohdpfx.bin",
    ],
    [
        "/usr/lib/syslinux/bios/isolinux.bin",
        "/usr/lib/syslinux/bios/ldlinux.c32",
        "/usr/lib/syslinux/bios/isohdpfx.bin",
    ],
];

/// The first complete syslinux layout, or an error naming the Debian packages.
pub fn find_syslinux(layouts: &[[&str; 3]]) -> Result<Syslinux> {
    for [isolinux, ldlinux, isohdpfx] in layouts {
        let paths = [isolinux, ldlinux, isohdpfx].map(PathBuf::from);
        if paths.iter().all(|p| p.is_file()) {
            let [isolinux_bin, ldlinux_c32, isohdpfx_bin] = paths;
            return Ok(Syslinux {
                isolinux_bin,
                ldlinux_c32,
                isohdpfx_bin,
            });
        }
    }
    let debian = layouts.first().copied().unwrap_or_default();
    let missing: Vec<&str> = debian
        .iter()
        .copied()
        .filter(|p| !Path::new(p).is_file())
        .collect();
    Err(anyhow!(
        "isolinux is not installed ({} missing): install the Debian packages isolinux and \
         syslinux-common (apt-get install isolinux syslinux-common)",
        missing.join(", ")
    ))
}

/// `SOURCE_DATE_EPOCH` (reproducible-builds.org) if set, else [`DEFAULT_EPOCH`]; clamped to
/// 1980 and later, which FAT needs.
pub fn source_date_epoch(value: Option<OsString>) -> Result<u64> {
    let Some(value) = value else {
        return Ok(DEFAULT_EPOCH);
    };
    let text = value.to_string_lossy();
    let epoch: u64 = text.trim().parse().map_err(|_| {
        invalid(format!(
            "invalid SOURCE_DATE_EPOCH {text:?}: expected seconds since 1970-01-01 UTC"
        ))
    })?;
    Ok(epoch.max(DEFAULT_EPOCH))
}

/// `YYYYMMDDhhmmss00`, the time format xorriso takes, in UTC.
pub fn xorriso_date(epoch: u64) -> String {
    crate::clock::xorriso(SystemTime::UNIX_EPOCH + Duration::from_secs(epoch))
}

/// Does this `ipxe.efi` look for `autoexec.ipxe` next to itself? iPXE added that in 2021
/// (1.21.1); Debian 12's build (2019) does not, so it cannot pick up the chain script from the
/// EFI system partition. The name is stored as UTF-16 for the UEFI file API.
pub fn efi_reads_autoexec(binary: &[u8]) -> bool {
    let wide: Vec<u8> = AUTOEXEC_NAME
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    contains(binary, &wide) || contains(binary, AUTOEXEC_NAME.as_bytes())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Runs `cmd`; on failure, the error names the tool and quotes the end of its stderr.
fn run(cmd: &mut Command, what: &str) -> Result<Output> {
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {what}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(4).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!("{what} failed ({}): {}", output.status, tail.join(" / "));
    }
    Ok(output)
}

/// Copies `from` to `to` with its mtime set to `epoch`, so tools that record file times record
/// the same one every run.
fn stage_file(from: &Path, to: &Path, epoch: u64) -> Result<()> {
    fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    set_mtime(to, epoch)
}

fn stage_bytes(bytes: &[u8], to: &Path, epoch: u64) -> Result<()> {
    fs::write(to, bytes).with_context(|| format!("writing {}", to.display()))?;
    set_mtime(to, epoch)
}

fn set_mtime(path: &Path, epoch: u64) -> Result<()> {
    fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(epoch)))
        .with_context(|| format!("setting the time of {}", path.display()))
}

/// The UEFI part of an image: the `ipxe.efi` to boot, and whether it will run the script.
#[derive(Clone, Debug)]
pub struct EfiBoot {
    pub binary: Vec<u8>,
}

/// The tools and files an ISO or USB image needs, found before anything is built.
#[derive(Clone, Debug)]
pub struct ImageTools {
    pub xorriso: PathBuf,
    pub syslinux: Syslinux,
    pub lkrn: PathBuf,
    /// mformat, mmd, mcopy: only when there is an EFI boot image to make.
    pub mtools: Option<Mtools>,
}

#[derive(Clone, Debug)]
pub struct Mtools {
    pub mformat: PathBuf,
    pub mmd: PathBuf,
    pub mcopy: PathBuf,
}

impl Mtools {
    pub fn find() -> Result<Mtools> {
        Ok(Mtools {
            mformat: find_command("mformat", "mtools")?,
            mmd: find_command("mmd", "mtools")?,
            mcopy: find_command("mcopy", "mtools")?,
        })
    }

    fn command(&self, tool: &Path, epoch: u64) -> Command {
        let mut cmd = Command::new(tool);
        cmd.env("SOURCE_DATE_EPOCH", epoch.to_string())
            .env("TZ", "UTC")
            .env("MTOOLS_SKIP_CHECK", "1")
            .env("MTOOLSRC", "/dev/null");
        cmd
    }
}

/// The two images built from one staged tree.
pub struct Images {
    pub iso: Option<Vec<u8>>,
    pub usb: Option<Vec<u8>>,
}

/// Builds the El Torito ISO (`iso`) and/or the hybrid USB image (`usb`): isolinux boots
/// `ipxe.lkrn` with the script as its initrd, all at the image root (isolinux does not find
/// ldlinux.c32 in a subdirectory); with `efi`, a second El Torito entry boots `ipxe.efi` from a
/// FAT image with the script beside it as `autoexec.ipxe`.
pub fn build_images(
    tools: &ImageTools,
    url: &BootUrl,
    script: &str,
    efi: Option<&EfiBoot>,
    epoch: u64,
    iso: bool,
    usb: bool,
) -> Result<Images> {
    let temp = tempfile::Builder::new()
        .prefix("caas-chain-")
        .tempdir()
        .context("creating a temporary build directory")?;
    let tree = temp.path().join("tree");
    fs::create_dir(&tree).with_context(|| format!("creating {}", tree.display()))?;
    stage_file(
        &tools.syslinux.isolinux_bin,
        &tree.join("isolinux.bin"),
        epoch,
    )?;
    stage_file(
        &tools.syslinux.ldlinux_c32,
        &tree.join("ldlinux.c32"),
        epoch,
    )?;
    stage_file(&tools.lkrn, &tree.join(LKRN_NAME), epoch)?;
    stage_bytes(script.as_bytes(), &tree.join(SCRIPT_NAME), epoch)?;
    let cfg = syslinux_cfg(
        url,
        "isolinux",
        "This is the boot menu of the caas chain ISO.",
    );
    stage_bytes(cfg.as_bytes(), &tree.join("isolinux.cfg"), epoch)?;
    if let Some(efi) = efi {
        let mtools = tools
            .mtools
            .as_ref()
            .context("internal: an EFI boot image needs mtools")?;
        let image = efi_image(mtools, temp.path(), efi, script, epoch)?;
        stage_file(&image, &tree.join("efi.img"), epoch)?;
    }

    let mut images = Images {
        iso: None,
        usb: None,
    };
    for (wanted, hybrid) in [(iso, false), (usb, true)] {
        if !wanted {
            continue;
        }
        let out = temp.path().join(if hybrid { "usb.img" } else { "cd.iso" });
        let mut cmd = xorriso_command(tools, &tree, &out, efi.is_some(), hybrid, epoch);
        run(&mut cmd, "xorriso")?;
        let bytes = fs::read(&out).with_context(|| format!("reading {}", out.display()))?;
        if hybrid {
            images.usb = Some(bytes);
        } else {
            images.iso = Some(bytes);
        }
    }
    Ok(images)
}

/// The xorriso invocation (mkisofs dialect): fixed volume id, every date from `epoch`, no
/// startup files (which could override those).
pub fn xorriso_command(
    tools: &ImageTools,
    tree: &Path,
    out: &Path,
    efi: bool,
    hybrid: bool,
    epoch: u64,
) -> Command {
    let date = xorriso_date(epoch);
    let mut cmd = Command::new(&tools.xorriso);
    cmd.env("SOURCE_DATE_EPOCH", epoch.to_string())
        .env("TZ", "UTC")
        .args(["-no_rc", "-as", "mkisofs", "-quiet", "-o"])
        .arg(out)
        .args(["-r", "-J", "-V", VOLUME_ID])
        .arg(format!("--modification-date={date}"))
        .args(["--set_all_file_dates", &date])
        .args(["-b", "isolinux.bin", "-c", "boot.cat"])
        .args(["-no-emul-boot", "-boot-load-size", "4", "-boot-info-table"]);
    if efi {
        cmd.args(["-eltorito-alt-boot", "-e", "efi.img", "-no-emul-boot"]);
    }
    if hybrid {
        cmd.arg("-isohybrid-mbr").arg(&tools.syslinux.isohdpfx_bin);
        if efi {
            cmd.arg("-isohybrid-gpt-basdat");
        }
    }
    cmd.arg(tree);
    cmd
}

/// A FAT image with `EFI/BOOT/BOOTX64.EFI` and `autoexec.ipxe`, sized to fit.
fn efi_image(
    mtools: &Mtools,
    dir: &Path,
    efi: &EfiBoot,
    script: &str,
    epoch: u64,
) -> Result<PathBuf> {
    let src = dir.join("efi-src");
    fs::create_dir(&src).with_context(|| format!("creating {}", src.display()))?;
    let binary = src.join("BOOTX64.EFI");
    stage_bytes(&efi.binary, &binary, epoch)?;
    let autoexec = src.join(AUTOEXEC_NAME);
    stage_bytes(script.as_bytes(), &autoexec, epoch)?;

    // Payload plus room for FAT tables and directories, in whole MiB (64 heads × 32 sectors).
    const MIB_SECTORS: u64 = 2048;
    let payload = (efi.binary.len() + script.len()) as u64 / 512 + 256;
    let sectors = payload.div_ceil(MIB_SECTORS).max(1) * MIB_SECTORS;
    let image = dir.join("efi.img");
    fs::File::create(&image)
        .and_then(|f| f.set_len(sectors * 512))
        .with_context(|| format!("creating {}", image.display()))?;

    let mut format = mtools.command(&mtools.mformat, epoch);
    format
        .arg("-i")
        .arg(&image)
        .args(["-N", EFI_SERIAL, "-v", EFI_LABEL, "-h", "64", "-s", "32"])
        .args(["-T", &sectors.to_string(), "::"]);
    run(&mut format, "mformat")?;
    let mut mkdir = mtools.command(&mtools.mmd, epoch);
    mkdir.arg("-i").arg(&image).args(["::/EFI", "::/EFI/BOOT"]);
    run(&mut mkdir, "mmd")?;
    for (from, to) in [(&binary, EFI_BOOT_PATH), (&autoexec, "::/autoexec.ipxe")] {
        let mut copy = mtools.command(&mtools.mcopy, epoch);
        copy.arg("-m").arg("-i").arg(&image).arg(from).arg(to);
        run(&mut copy, "mcopy")?;
    }
    Ok(image)
}

/// iPXE build targets, and the output name of each.
pub const KPXE_TARGETS: [(&str, &str); 1] = [("bin/undionly.kpxe", "undionly.kpxe")];
pub const EFI_TARGETS: [(&str, &str); 2] = [
    ("bin-x86_64-efi/ipxe.efi", "ipxe.efi"),
    ("bin-x86_64-efi/snponly.efi", "snponly.efi"),
];

/// An iPXE source tree: the `src` directory that holds iPXE's Makefile.
#[derive(Clone, Debug)]
pub struct IpxeSource {
    pub src: PathBuf,
}

impl IpxeSource {
    /// Accepts the top of an iPXE checkout (or of `apt-get source ipxe`) or its `src`.
    pub fn locate(dir: &Path) -> Result<IpxeSource> {
        for src in [dir.join("src"), dir.to_path_buf()] {
            if src.join("Makefile").is_file() && src.join("include/ipxe").is_dir() {
                let src = src
                    .canonicalize()
                    .with_context(|| format!("resolving {}", src.display()))?;
                return Ok(IpxeSource { src });
            }
        }
        Err(invalid(format!(
            "--ipxe-src {:?} is not an iPXE source tree: expected src/Makefile and \
             src/include/ipxe/ in it (git clone https://github.com/ipxe/ipxe, or apt-get source ipxe)",
            dir.display().to_string()
        )))
    }

    /// `make -C <src> -j<jobs> <targets…> EMBED=<script>`: iPXE's own way to embed a script.
    pub fn make_command(
        &self,
        make: &Path,
        targets: &[&str],
        embed: &Path,
        jobs: usize,
    ) -> Command {
        let mut cmd = Command::new(make);
        cmd.arg("-C")
            .arg(&self.src)
            .arg(format!("-j{jobs}"))
            .args(targets)
            .arg(format!("EMBED={}", embed.display()));
        cmd
    }
}

/// Where `chain build` builds iPXE when `--ipxe-build-dir` is not given: one directory per
/// source tree, under `$XDG_CACHE_HOME/caas/ipxe-build` (or `~/.cache/caas/ipxe-build`), kept
/// between runs so that iPXE's make only rebuilds what changed (the embedded script).
pub fn default_build_dir(source: &IpxeSource) -> Result<PathBuf> {
    build_dir_in(crate::cache::dir(), source)
}

fn build_dir_in(cache: Option<PathBuf>, source: &IpxeSource) -> Result<PathBuf> {
    let cache = cache.context(
        "neither XDG_CACHE_HOME nor HOME is set: give --ipxe-build-dir DIR for the iPXE build",
    )?;
    let key = crate::write::sha256_hex(source.src.as_os_str().as_encoded_bytes());
    Ok(cache.join("ipxe-build").join(&key[..16]))
}

/// Copies the iPXE `src` directory into `build/src` (only files newer than the copy, times
/// kept, so make stays incremental), and links `build/.git` to the checkout's, from which
/// iPXE's Makefile reads its version. The operator's tree is only read.
fn sync_build_tree(source: &IpxeSource, build: &Path) -> Result<IpxeSource> {
    let cp = find_command("cp", "coreutils")?;
    fs::create_dir_all(build).with_context(|| format!("creating {}", build.display()))?;
    let mut copy = Command::new(cp);
    copy.args(["-a", "-u", "--no-target-directory"])
        .arg(&source.src)
        .arg(build.join("src"));
    run(
        &mut copy,
        "cp (copying the iPXE source to its build directory)",
    )?;
    let git = source.src.join("../.git");
    let link = build.join(".git");
    if git.exists() && fs::symlink_metadata(&link).is_err() {
        std::os::unix::fs::symlink(&git, &link)
            .with_context(|| format!("linking {}", link.display()))?;
    }
    Ok(IpxeSource {
        src: build.join("src"),
    })
}

/// What an iPXE build needs on the host, each with the Debian package that provides it.
fn check_build_tools() -> Result<PathBuf> {
    let make = find_command("make", "make")?;
    find_command("gcc", "gcc")?;
    find_command("perl", "perl")?;
    Ok(make)
}

/// Builds `targets` (pairs of iPXE target and output name) with the script embedded and returns
/// the outputs by name. The build runs in `build_dir`, a private copy of the source tree kept
/// between runs (the operator's checkout is never written to), so a second build only
/// recompiles what the new script touches.
pub fn build_from_source(
    source: &IpxeSource,
    build_dir: &Path,
    script: &str,
    targets: &[(&str, &str)],
    epoch: u64,
    quiet: bool,
) -> Result<Vec<(String, Vec<u8>)>> {
    let make = check_build_tools()?;
    let temp = tempfile::Builder::new()
        .prefix("caas-embed-")
        .tempdir()
        .context("creating a temporary directory")?;
    let embed = temp.path().join(SCRIPT_NAME);
    if embed
        .to_string_lossy()
        .contains(|c: char| c.is_whitespace() || c == ',')
    {
        bail!(
            "the temporary directory {} has a space or comma, which iPXE's EMBED= cannot take: \
             set TMPDIR to another directory",
            temp.path().display()
        );
    }
    fs::write(&embed, script).with_context(|| format!("writing {}", embed.display()))?;
    tracing::warn!(
        "copying the iPXE source {} to the build directory {}",
        source.src.display(),
        build_dir.display()
    );
    let build = sync_build_tree(source, build_dir)?;
    let jobs = std::thread::available_parallelism().map_or(1, usize::from);
    let names: Vec<&str> = targets.iter().map(|(target, _)| *target).collect();
    let mut cmd = build.make_command(&make, &names, &embed, jobs);
    cmd.env("SOURCE_DATE_EPOCH", epoch.to_string())
        .stdin(Stdio::null());
    tracing::warn!(
        "building iPXE (minutes the first time, seconds after): make -C {} {} EMBED=…/{SCRIPT_NAME}",
        build.src.display(),
        names.join(" ")
    );
    let status = if quiet {
        run(&mut cmd, "make (iPXE build)").map(|out| out.status)
    } else {
        // Show the build's progress on stderr; stdout is for caas's report.
        let stderr = std::io::stderr();
        let fd = std::os::fd::AsFd::as_fd(&stderr)
            .try_clone_to_owned()
            .context("duplicating stderr")?;
        cmd.stdout(Stdio::from(fd))
            .status()
            .context("running make (iPXE build)")
    }?;
    if !status.success() {
        bail!(
            "the iPXE build in {} failed ({status}): iPXE needs gcc, make, perl and liblzma-dev \
             (Debian: apt-get install build-essential perl liblzma-dev)",
            build.src.display()
        );
    }
    targets
        .iter()
        .map(|(target, name)| {
            let path = build.src.join(target);
            let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            Ok(((*name).to_owned(), bytes))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xorriso_dates_are_utc_calendar_dates() {
        assert_eq!(xorriso_date(0), "1970010100000000");
        assert_eq!(xorriso_date(DEFAULT_EPOCH), "1980010100000000");
        assert_eq!(xorriso_date(951_782_400), "2000022900000000");
        assert_eq!(xorriso_date(1_700_000_000), "2023111422132000");
        assert_eq!(xorriso_date(4_107_542_399), "2100022823595900");
    }

    #[test]
    fn source_date_epoch_is_read_and_clamped() {
        assert_eq!(source_date_epoch(None).unwrap(), DEFAULT_EPOCH);
        assert_eq!(
            source_date_epoch(Some("1700000000".into())).unwrap(),
            1_700_000_000
        );
        assert_eq!(source_date_epoch(Some("5".into())).unwrap(), DEFAULT_EPOCH);
        let err = source_date_epoch(Some("yesterday".into())).unwrap_err();
        assert_eq!(crate::error::exit_code(&err), 2);
        assert!(err.to_string().contains("SOURCE_DATE_EPOCH"), "{err}");
    }

    #[test]
    fn missing_prebuilt_binaries_name_the_package() {
        let empty = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let dirs = [empty.path().to_path_buf(), other.path().to_path_buf()];
        let err = find_prebuilt(&dirs, "ipxe.lkrn").unwrap_err().to_string();
        assert!(err.contains("ipxe.lkrn not found in"), "{err}");
        assert!(err.contains("Debian package ipxe"), "{err}");
        assert!(err.contains(&empty.path().display().to_string()), "{err}");
        fs::write(other.path().join("ipxe.lkrn"), b"x").unwrap();
        assert_eq!(
            find_prebuilt(&dirs, "ipxe.lkrn").unwrap(),
            other.path().join("ipxe.lkrn")
        );
        fs::write(empty.path().join("ipxe.lkrn"), b"x").unwrap();
        assert_eq!(
            find_prebuilt(&dirs, "ipxe.lkrn").unwrap(),
            empty.path().join("ipxe.lkrn"),
            "--ipxe-dir comes first"
        );
        assert_eq!(
            prebuilt_dirs(Some(Path::new("/x"))),
            [PathBuf::from("/x"), PathBuf::from(SYSTEM_IPXE_DIR)]
        );
    }

    #[test]
    fn missing_isolinux_names_the_packages() {
        let err = find_syslinux(&[[
            "/nonexistent/isolinux.bin",
            "/nonexistent/ldlinux.c32",
            "/x",
        ]])
        .unwrap_err()
        .to_string();
        assert!(err.contains("isolinux syslinux-common"), "{err}");
        assert!(err.contains("/nonexistent/ldlinux.c32"), "{err}");
    }

    #[test]
    fn missing_commands_name_the_package() {
        let err = find_command("caas-no-such-tool", "some-package")
            .unwrap_err()
            .to_string();
        assert!(err.contains("Debian package some-package"), "{err}");
    }

    #[test]
    fn autoexec_support_is_recognised_in_utf16_or_ascii() {
        let wide: Vec<u8> = "..autoexec.ipxe.."
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert!(efi_reads_autoexec(&wide));
        assert!(efi_reads_autoexec(b"xx autoexec.ipxe xx"));
        assert!(!efi_reads_autoexec(b"autoexec.ipx"));
    }

    #[test]
    fn each_source_tree_has_its_own_build_dir_in_the_user_cache() {
        let a = IpxeSource {
            src: PathBuf::from("/home/op/ipxe/src"),
        };
        let b = IpxeSource {
            src: PathBuf::from("/home/op/ipxe-fork/src"),
        };
        let cache = crate::cache::dir_in;
        let xdg = build_dir_in(cache(Some("/c".into()), Some("/home/op".into())), &a).unwrap();
        assert!(xdg.starts_with("/c/caas/ipxe-build/"), "{}", xdg.display());
        let home = build_dir_in(cache(Some("".into()), Some("/home/op".into())), &a).unwrap();
        assert!(home.starts_with("/home/op/.cache/caas/ipxe-build/"));
        assert_eq!(
            xdg.file_name(),
            home.file_name(),
            "keyed by the source path"
        );
        let other = build_dir_in(cache(Some("/c".into()), None), &b).unwrap();
        assert_ne!(xdg, other);
        assert!(build_dir_in(None, &a).is_err());
    }

    #[test]
    fn the_ipxe_build_is_make_with_embed() {
        let tree = tempfile::tempdir().unwrap();
        let err = IpxeSource::locate(tree.path()).unwrap_err();
        assert_eq!(crate::error::exit_code(&err), 2);
        assert!(err.to_string().contains("not an iPXE source tree"), "{err}");

        fs::create_dir_all(tree.path().join("src/include/ipxe")).unwrap();
        fs::write(tree.path().join("src/Makefile"), "").unwrap();
        let source = IpxeSource::locate(tree.path()).unwrap();
        let src = tree.path().join("src").canonicalize().unwrap();
        assert_eq!(source.src, src);
        assert_eq!(IpxeSource::locate(&src).unwrap().src, src, "src itself");

        let targets: Vec<&str> = KPXE_TARGETS
            .iter()
            .chain(&EFI_TARGETS)
            .map(|(t, _)| *t)
            .collect();
        let cmd = source.make_command(Path::new("make"), &targets, Path::new("/t/chain.ipxe"), 2);
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "-C".to_owned(),
                src.display().to_string(),
                "-j2".into(),
                "bin/undionly.kpxe".into(),
                "bin-x86_64-efi/ipxe.efi".into(),
                "bin-x86_64-efi/snponly.efi".into(),
                "EMBED=/t/chain.ipxe".into(),
            ]
        );
    }
}
