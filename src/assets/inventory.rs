//! `caas assets verify` and `caas assets list`: what is published, checked offline.
//!
//! A published release is a directory holding `caas-assets.json`; the signatures are the
//! `<file>.sig` files beside the files, and the digests and sizes are in the manifest, so
//! nothing is fetched. `assets/caas/caas` is checked against `caas.sha256`. An etcd release
//! (`assets/etcd/<version>/`) has no signatures: its files are checked against the digests
//! recorded when its archive was verified.

use std::fs::{self, File};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::SystemTime;

use anyhow::{Context as _, anyhow};
use indicatif::BinaryBytes;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::assets::manifest::{MANIFEST_FILE, Manifest, ManifestFile};
use crate::assets::pgp::{Keyring, StreamVerifier, signing_key_status};
use crate::clock;
use crate::report::Format;
use crate::write::{self, FileWrite};

/// A release directory found on disk.
#[derive(Debug)]
struct Found {
    dir: PathBuf,
    manifest: Manifest,
}

/// What lies under an assets directory.
#[derive(Debug, Default)]
struct Inventory {
    releases: Vec<Found>,
    /// Directories that look like releases but carry no manifest (not published by caas).
    unmanaged: Vec<PathBuf>,
    /// `caas/` with `caas` and `caas.sha256`.
    caas: Option<PathBuf>,
}

fn visible_dirs(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        // `current` and other links point at releases that are listed under their own name.
        if !hidden && entry.file_type()?.is_dir() {
            dirs.push(entry.path());
        }
    }
    dirs.sort();
    Ok(dirs)
}

fn read_manifest(dir: &Path) -> anyhow::Result<Option<Found>> {
    Ok(Manifest::read(dir)?.map(|manifest| Found {
        dir: dir.to_owned(),
        manifest,
    }))
}

/// Finds releases at `root`: a release directory itself, an OS directory, or the assets
/// directory.
fn scan(root: &Path) -> anyhow::Result<Inventory> {
    let mut inventory = Inventory::default();
    if !root.is_dir() {
        return Err(crate::error::invalid(format!(
            "{} is not a directory",
            root.display()
        )));
    }
    if let Some(found) = read_manifest(root)? {
        inventory.releases.push(found);
        return Ok(inventory);
    }
    if root.join("caas.sha256").is_file() {
        inventory.caas = Some(root.to_owned());
        return Ok(inventory);
    }
    let look_into = |dir: &Path, inventory: &mut Inventory| -> anyhow::Result<bool> {
        match read_manifest(dir)? {
            Some(found) => {
                inventory.releases.push(found);
                Ok(true)
            }
            None => Ok(false),
        }
    };
    for child in visible_dirs(root)? {
        if look_into(&child, &mut inventory)? {
            continue;
        }
        if child.join("caas.sha256").is_file() {
            inventory.caas = Some(child);
            continue;
        }
        for grandchild in visible_dirs(&child)? {
            if !look_into(&grandchild, &mut inventory)? {
                inventory.unmanaged.push(grandchild);
            }
        }
    }
    Ok(inventory)
}

/// The outcome of checking one file.
#[derive(Clone, Debug, Serialize)]
struct FileCheck {
    name: String,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signing_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pinned_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// The signature was not checked (fetched with --insecure-skip-signature).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    unsigned: bool,
}

#[derive(Debug, Serialize)]
struct ReleaseCheck {
    os: String,
    version: String,
    path: String,
    ok: bool,
    files: Vec<FileCheck>,
}

fn failed(name: &str, error: String) -> FileCheck {
    FileCheck {
        name: name.to_owned(),
        ok: false,
        sha256: None,
        signing_key: None,
        pinned_key: None,
        error: Some(error),
        unsigned: false,
    }
}

/// Re-checks one published file: size, sha256 and signature, reading it once.
/// `keyring` is `None` for a release without signatures (etcd).
fn check_file(dir: &Path, file: &ManifestFile, keyring: Option<&Arc<Keyring>>) -> FileCheck {
    let name = file.name.as_str();
    let path = dir.join(name);
    let mut reader = match File::open(&path) {
        Ok(reader) => reader,
        Err(err) => return failed(name, format!("cannot open {}: {err}", path.display())),
    };
    let mut verifier = None;
    if let (Some(sig_name), Some(keyring)) = (&file.signature, keyring) {
        let sig_path = dir.join(sig_name.as_str());
        match fs::read(&sig_path) {
            Ok(sig) => {
                verifier = Some(StreamVerifier::start(Arc::clone(keyring), sig.into()));
            }
            Err(err) => {
                return failed(
                    name,
                    format!("missing signature {}: {err}", sig_path.display()),
                );
            }
        }
    }
    let mut sha256 = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                sha256.update(&buf[..n]);
                if let Some(verifier) = &mut verifier {
                    verifier.feed(&buf[..n]);
                }
                size += n as u64;
            }
            Err(err) => return failed(name, format!("reading {}: {err}", path.display())),
        }
    }
    let sha256 = hex::encode(sha256.finalize());
    if let Some(want) = file.size
        && want != size
    {
        return failed(
            name,
            format!("size mismatch: the manifest says {want} bytes, the file has {size}"),
        );
    }
    if let Some(want) = &file.sha256
        && *want != sha256
    {
        return failed(
            name,
            format!("sha256 mismatch: the manifest says {want}, the file has {sha256}"),
        );
    }
    let mut check = FileCheck {
        name: name.to_owned(),
        ok: true,
        sha256: Some(sha256),
        signing_key: None,
        pinned_key: None,
        error: None,
        unsigned: verifier.is_none() && keyring.is_some(),
    };
    if let Some(verifier) = verifier {
        match verifier.finish() {
            Ok(good) => {
                check.signing_key = Some(good.key);
                check.pinned_key = Some(good.primary);
            }
            Err(err) => {
                check.ok = false;
                check.error = Some(err.to_string());
            }
        }
    }
    check
}

fn verify_release(found: &Found, keyring: Option<&Arc<Keyring>>) -> ReleaseCheck {
    let files: Vec<FileCheck> = thread::scope(|scope| {
        let handles: Vec<_> = found
            .manifest
            .files
            .iter()
            .map(|file| scope.spawn(|| check_file(&found.dir, file, keyring)))
            .collect();
        handles
            .into_iter()
            .zip(&found.manifest.files)
            .map(|(handle, file)| {
                handle
                    .join()
                    .unwrap_or_else(|_| failed(file.name.as_str(), "checker panicked".into()))
            })
            .collect()
    });
    ReleaseCheck {
        os: found.manifest.os.dir_name().into(),
        version: found.manifest.version.to_string(),
        path: found.dir.display().to_string(),
        ok: files.iter().all(|f| f.ok),
        files,
    }
}

fn verify_caas(dir: &Path) -> ReleaseCheck {
    let check = || -> Result<String, String> {
        let line = fs::read_to_string(dir.join("caas.sha256"))
            .map_err(|err| format!("reading caas.sha256: {err}"))?;
        let want = match line.split_whitespace().collect::<Vec<_>>()[..] {
            [hex, "caas"] | [hex, "*caas"] => hex.to_ascii_lowercase(),
            _ => return Err(format!("caas.sha256 is not `<sha256>  caas`: {line:?}")),
        };
        let bytes = fs::read(dir.join("caas")).map_err(|err| format!("reading caas: {err}"))?;
        let have = write::sha256_hex(&bytes);
        if want == have {
            Ok(have)
        } else {
            Err(format!(
                "sha256 mismatch: caas.sha256 says {want}, the file has {have}"
            ))
        }
    };
    let file = match check() {
        Ok(sha256) => FileCheck {
            name: "caas".into(),
            ok: true,
            sha256: Some(sha256),
            signing_key: None,
            pinned_key: None,
            error: None,
            unsigned: false,
        },
        Err(error) => failed("caas", error),
    };
    ReleaseCheck {
        os: "caas".into(),
        version: String::new(),
        path: dir.display().to_string(),
        ok: file.ok,
        files: vec![file],
    }
}

/// `caas assets verify [PATH]`: re-checks every release published under `root` (a release, an
/// OS directory or the assets directory) against `keyring` (the embedded keys when `None`),
/// records the time in each manifest, and reports in `format`. Fails when a file failed.
pub fn verify(
    root: &Path,
    keyring: Option<&Path>,
    format: Format,
    quiet: bool,
) -> anyhow::Result<()> {
    let inventory = scan(root)?;
    if inventory.releases.is_empty() && inventory.caas.is_none() {
        return Err(anyhow!(
            "nothing published under {}: no {MANIFEST_FILE} found (publish with `caas assets fetch`)",
            root.display()
        ));
    }
    for dir in &inventory.unmanaged {
        tracing::warn!(
            "{} has no {MANIFEST_FILE} (not published by caas): not checked",
            dir.display()
        );
    }
    let user_keyring = keyring.map(Keyring::from_file).transpose()?;
    let now = SystemTime::now();
    let mut checks = Vec::new();
    for found in &inventory.releases {
        // An OS release is checked against the pinned keys; an etcd release has no signatures
        // (its archive was checked against a digest when it was fetched), only digests.
        let keyring = match found.manifest.os.os() {
            Some(os) => {
                let keyring = user_keyring
                    .clone()
                    .unwrap_or_else(|| Keyring::embedded(os));
                for status in signing_key_status(&keyring, now) {
                    if let Some(warning) = status.warning(now, keyring.origin()) {
                        tracing::warn!("{warning}");
                    }
                }
                Some(Arc::new(keyring))
            }
            None => None,
        };
        let check = verify_release(found, keyring.as_ref());
        if check.ok {
            record_verification(found, now);
        }
        if found.manifest.insecure_skip_signature {
            tracing::warn!(
                "{} was fetched with --insecure-skip-signature: only its digests were checked",
                found.dir.display()
            );
        }
        checks.push(check);
    }
    if let Some(dir) = &inventory.caas {
        checks.push(verify_caas(dir));
    }

    report_checks(&checks, format, quiet)?;
    let failures: Vec<String> = checks
        .iter()
        .flat_map(|release| {
            release.files.iter().filter(|f| !f.ok).map(move |f| {
                format!(
                    "{}: {}",
                    Path::new(&release.path).join(&f.name).display(),
                    f.error.as_deref().unwrap_or("failed")
                )
            })
        })
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        let total: usize = checks.iter().map(|r| r.files.len()).sum();
        Err(anyhow!(
            "{} of {total} files failed verification: {}",
            failures.len(),
            failures.join("; ")
        ))
    }
}

/// Records in the manifest when the release last verified; a read-only tree only warns.
fn record_verification(found: &Found, now: SystemTime) {
    let mut manifest = found.manifest.clone();
    manifest.verified_at = Some(clock::rfc3339(now));
    let file = FileWrite::new(found.dir.join(MANIFEST_FILE), manifest.to_json());
    if let Err(err) = write::apply(&[file]) {
        tracing::warn!(
            "could not record the verification time in {}: {}",
            found.dir.display(),
            crate::error::one_line(&err)
        );
    }
}

fn report_checks(checks: &[ReleaseCheck], format: Format, quiet: bool) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    match format {
        Format::Json => {
            let json = serde_json::json!({ "releases": checks });
            out.write_all(&write::canonical_json(&json))?;
        }
        Format::Text if quiet => {}
        Format::Text => {
            for release in checks {
                let label = if release.os == "caas" {
                    "caas".to_owned()
                } else {
                    format!("{} {}", release.os, release.version)
                };
                for file in &release.files {
                    let status = if file.ok { "ok" } else { "FAILED" };
                    let detail = match (&file.error, &file.signing_key, &file.pinned_key) {
                        (Some(error), _, _) => error.clone(),
                        (None, Some(key), Some(pinned)) if key == pinned => format!(
                            "sha256 {}, good signature by pinned key {pinned}",
                            file.sha256.as_deref().unwrap_or("?")
                        ),
                        (None, Some(key), Some(pinned)) => format!(
                            "sha256 {}, good signature by subkey {key} of pinned key {pinned}",
                            file.sha256.as_deref().unwrap_or("?")
                        ),
                        _ if file.unsigned => format!(
                            "sha256 {} (signature NOT checked: fetched with --insecure-skip-signature)",
                            file.sha256.as_deref().unwrap_or("?")
                        ),
                        _ => format!("sha256 {}", file.sha256.as_deref().unwrap_or("?")),
                    };
                    writeln!(out, "{status} {label} {}: {detail}", file.name)?;
                }
            }
        }
    }
    Ok(())
}

#[derive(Debug, Serialize)]
struct Listed {
    path: String,
    current: bool,
    #[serde(flatten)]
    manifest: Manifest,
}

#[derive(Debug, Serialize)]
struct ListedCaas {
    path: String,
    sha256: Option<String>,
    size: Option<u64>,
}

/// What is published under an assets directory.
struct Listing {
    releases: Vec<Listed>,
    caas: Option<ListedCaas>,
    unmanaged: Vec<PathBuf>,
}

/// `caas assets list [DIR]`: what is published under `root`, printed in `format`.
pub fn list(root: &Path, format: Format, quiet: bool) -> anyhow::Result<()> {
    let listing = listing(root)?;
    let mut out = io::stdout().lock();
    print_listing(&mut out, root, &listing, format, quiet)?;
    Ok(())
}

fn listing(root: &Path) -> anyhow::Result<Listing> {
    let inventory = if root.exists() {
        scan(root)?
    } else {
        Inventory::default()
    };
    let releases: Vec<Listed> = inventory
        .releases
        .into_iter()
        .map(|found| {
            let current = found.dir.parent().is_some_and(|os_dir| {
                fs::read_link(os_dir.join("current"))
                    .is_ok_and(|target| Some(target.as_os_str()) == found.dir.file_name())
            });
            Listed {
                path: found.dir.display().to_string(),
                current,
                manifest: found.manifest,
            }
        })
        .collect();
    let caas = inventory.caas.map(|dir| ListedCaas {
        path: dir.join("caas").display().to_string(),
        sha256: fs::read_to_string(dir.join("caas.sha256"))
            .ok()
            .and_then(|line| line.split_whitespace().next().map(str::to_owned)),
        size: fs::metadata(dir.join("caas")).ok().map(|m| m.len()),
    });
    Ok(Listing {
        releases,
        caas,
        unmanaged: inventory.unmanaged,
    })
}

fn print_listing(
    out: &mut impl io::Write,
    root: &Path,
    listing: &Listing,
    format: Format,
    quiet: bool,
) -> io::Result<()> {
    let Listing {
        releases,
        caas,
        unmanaged,
    } = listing;
    match format {
        Format::Json => {
            let json = serde_json::json!({
                "releases": releases,
                "caas": caas,
                "unmanaged": unmanaged,
            });
            out.write_all(&write::canonical_json(&json))?;
        }
        Format::Text if quiet => {}
        Format::Text => {
            if releases.is_empty() && caas.is_none() {
                writeln!(out, "nothing published under {}", root.display())?;
            }
            for release in releases {
                let m = &release.manifest;
                let mut head = format!("{} {}", m.os.dir_name(), m.version);
                if release.current {
                    head.push_str(" (current)");
                }
                let facts: Vec<String> = [
                    m.arch.map(|a| a.board_name().to_owned()),
                    m.channel.clone(),
                    Some(match &m.verified_at {
                        Some(at) => format!("verified {at}"),
                        None => "never verified by caas".into(),
                    }),
                    m.insecure_skip_signature
                        .then(|| "SIGNATURES NOT CHECKED".to_owned()),
                ]
                .into_iter()
                .flatten()
                .collect();
                writeln!(out, "{head}  {}  {}", facts.join(", "), release.path)?;
                for file in &m.files {
                    let size = file
                        .size
                        .map(|s| BinaryBytes(s).to_string())
                        .unwrap_or_else(|| "?".into());
                    let signer = match (&file.signing_key, &file.pinned_key, &m.archive) {
                        (Some(key), Some(pinned), _) if key == pinned => {
                            format!("signed by {pinned}")
                        }
                        (Some(key), Some(pinned), _) => format!("signed by {key} ({pinned})"),
                        (_, _, Some(archive)) => format!(
                            "from {} (sha256 checked against {})",
                            archive.name,
                            archive.checked_against.as_deref().unwrap_or("?")
                        ),
                        _ => "unsigned".into(),
                    };
                    writeln!(
                        out,
                        "  {:<6} {}  {size}  {signer}",
                        file.role.as_str(),
                        file.name
                    )?;
                }
            }
            if let Some(caas) = caas {
                writeln!(
                    out,
                    "caas  {}  {}  sha256 {}",
                    caas.path,
                    caas.size
                        .map(|s| BinaryBytes(s).to_string())
                        .unwrap_or_else(|| "?".into()),
                    caas.sha256.as_deref().unwrap_or("?")
                )?;
            }
            for dir in unmanaged {
                writeln!(
                    out,
                    "{}  (no {MANIFEST_FILE}: not published by caas)",
                    dir.display()
                )?;
            }
        }
    }
    Ok(())
}
