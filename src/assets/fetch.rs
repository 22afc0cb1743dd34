//! `caas assets fetch`: resolve, download, verify, publish; or fail closed.
//!
//! Layout under `<dest>/<os>/`:
//! - `.partial/<version>/<file>.part`: downloads in progress (resumable), hashed while they
//!   stream; `.partial/.lock` keeps two fetches of one OS apart;
//! - `<version>/`: a published release (files, `<file>.sig`, `caas-assets.json`), moved into
//!   place with one rename once every file verified;
//! - `current` → `<version>`: repointed atomically after publishing.
//!
//! Anything that fails (network, digest, signature) leaves `<version>/` and `current` as they
//! were. A file that fails verification is deleted from `.partial`; one that was interrupted
//! stays there, so the next run resumes it.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Instant, SystemTime};

use anyhow::{Context as _, anyhow};
use sha2::{Digest as _, Sha256};

use crate::assets::http::{self, Http, Sink, Transfer};
use crate::assets::manifest::{MANIFEST_FILE, Manifest, ManifestFile, Product};
use crate::assets::pgp::{
    GoodSignature, KeyExpiry, Keyring, SignatureError, StreamVerifier, signing_key_status,
};
use crate::assets::progress::{Event, Reporter};
use crate::assets::release::{self, Release, ReleaseRequest, RemoteFile};
use crate::clock;
use crate::error::invalid;
use crate::ids::Id;
use crate::os::Os;
use crate::write::{self, FileWrite};

/// The staging directory under `<dest>/<os>/`.
pub const PARTIAL_DIR: &str = ".partial";
pub(crate) const LOCK_FILE: &str = ".lock";
const READ_CHUNK: usize = 1 << 20;

/// How `caas assets fetch` runs, besides the release it asks for.
#[derive(Clone, Debug)]
pub struct FetchOptions {
    /// Where releases are published (`<data-dir>/assets` by default).
    pub dest: PathBuf,
    /// An OpenPGP keyring whose certificates replace the embedded keys.
    pub keyring: Option<PathBuf>,
    /// Retries, timeouts and the largest file accepted.
    pub transfer: Transfer,
    /// Check published digests only, not OpenPGP signatures.
    pub insecure_skip_signature: bool,
}

/// Logs what the pinned keys' expiry means for this fetch. An expired key is expected for the
/// historical Container Linux (its archive was signed before 2021) and a warning elsewhere.
fn check_key_expiry(os: Os, keyring: &Keyring, now: SystemTime) {
    for status in signing_key_status(keyring, now) {
        if let Some(warning) = status.warning(now, keyring.origin()) {
            tracing::warn!("{warning}");
        } else if let KeyExpiry::Expired(at) = status.expiry {
            let message = format!(
                "the newest signing key {} of pinned key {} ({}) expired on {}: only releases \
                 signed before then verify; update caas or pass --keyring for newer ones",
                status.key.as_deref().unwrap_or("?"),
                status.primary,
                keyring.origin(),
                clock::date(at)
            );
            if os.descriptor().end_of_life {
                tracing::info!("{message}");
            } else {
                tracing::warn!("{message}");
            }
        }
    }
}

/// Resolves the release `request` names, downloads and verifies every file, publishes it
/// under `options.dest` and points `current` at it; every step is an event on `reporter`.
pub fn fetch_release(
    request: &ReleaseRequest,
    options: &FetchOptions,
    reporter: &Reporter,
) -> anyhow::Result<()> {
    let os = request.os;
    let dest = &options.dest;
    let keyring = match &options.keyring {
        Some(path) => Keyring::from_file(path)?,
        None => Keyring::embedded(os),
    };
    if options.insecure_skip_signature {
        tracing::warn!(
            "--insecure-skip-signature: OpenPGP signatures will NOT be checked; anyone who can \
             tamper with the server or the network can make these machines boot what they want"
        );
    } else {
        check_key_expiry(os, &keyring, SystemTime::now());
    }
    let http = Http::new(request.base_url.is_none(), &options.transfer);
    let metadata_progress = |p| reporter.download_progress("metadata", "", &Mutex::new(None), p);
    let release = release::resolve(&http, request, &metadata_progress)
        .with_context(|| format!("fetching {}", os.dir_name()))?;
    reporter.event(Event::Resolved {
        os: os.dir_name().into(),
        version: release.version.to_string(),
        arch: release.arch.board_name().into(),
        channel: Some(release.channel.clone()),
        metadata_url: release.metadata_url.clone(),
    });
    let context = || format!("fetching {} {}", os.dir_name(), release.version);

    let os_dir = dest.join(os.dir_name());
    let published = os_dir.join(release.version.as_str());
    let existing = Manifest::read(&published).ok().flatten();
    match existing.as_ref().map(|m| {
        freshness(
            &release,
            m,
            &published,
            options.insecure_skip_signature,
            &keyring.primaries(),
        )
    }) {
        Some(Freshness::OtherArch(arch)) => {
            return Err(invalid(format!(
                "{} holds the {arch} build of {} {}; fetching {} would replace it: pass --dest \
                 to keep architectures apart",
                published.display(),
                os.dir_name(),
                release.version,
                release.arch.board_name(),
            )));
        }
        Some(Freshness::UpToDate) => {
            let manifest = existing.expect("checked");
            reporter.event(Event::UpToDate {
                os: os.dir_name().into(),
                version: release.version.to_string(),
                path: published.display().to_string(),
                verified_at: manifest.verified_at,
            });
            point_current(&os_dir, &release.version, reporter).with_context(context)?;
            return Ok(());
        }
        Some(Freshness::Stale) => tracing::info!(
            "{} is incomplete or differs from the release: fetching it again",
            published.display()
        ),
        None if published.exists() => tracing::warn!(
            "{} exists without a readable {MANIFEST_FILE} (not published by caas): it will be \
             replaced by the verified release",
            published.display()
        ),
        None => {}
    }

    let partial = os_dir.join(PARTIAL_DIR);
    fs::create_dir_all(&partial)
        .with_context(|| format!("creating directory {}", partial.display()))?;
    let _lock = lock(&partial.join(LOCK_FILE))?;
    let stage = partial.join(release.version.as_str());
    fs::create_dir_all(&stage)
        .with_context(|| format!("creating directory {}", stage.display()))?;

    let signatures = if options.insecure_skip_signature {
        vec![None; release.files.len()]
    } else {
        release
            .files
            .iter()
            .map(|file| fetch_signature(&http, file, reporter).map(Some))
            .collect::<anyhow::Result<Vec<_>>>()
            .with_context(context)?
    };

    let keyring = Arc::new(keyring);
    let cancelled = AtomicBool::new(false);
    let results: Vec<anyhow::Result<Verified>> = thread::scope(|scope| {
        let handles: Vec<_> = release
            .files
            .iter()
            .zip(&signatures)
            .map(|(file, signature)| {
                let job = Job {
                    http: &http,
                    file,
                    signature: signature.as_ref(),
                    keyring: &keyring,
                    stage: &stage,
                    reporter,
                    cancelled: &cancelled,
                };
                scope.spawn(move || {
                    let result = job.run();
                    if result.is_err() {
                        job.cancelled.store(true, Ordering::Relaxed);
                    }
                    result
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| Err(anyhow!("a download thread panicked")))
            })
            .collect()
    });
    let mut verified = Vec::new();
    let mut failures = Vec::new();
    for result in results {
        match result {
            Ok(file) => verified.push(file),
            Err(err) => failures.push(err),
        }
    }
    // A file stopped because another failed is not the reason worth reporting.
    failures.sort_by_key(|err| err.is::<Cancelled>());
    if failures.iter().any(http::is_disk_full) {
        // The other downloads were stopped and kept their bytes for a resume; on a full disk
        // those bytes are what the next run needs freed.
        discard_parts(&stage);
    }
    if let Some(err) = failures.into_iter().next() {
        return Err(err).with_context(context);
    }

    publish(
        &release,
        &verified,
        &keyring,
        options.insecure_skip_signature,
        &stage,
        &published,
    )
    .with_context(context)?;
    reporter.event(Event::Published {
        os: os.dir_name().into(),
        version: release.version.to_string(),
        path: published.display().to_string(),
    });
    point_current(&os_dir, &release.version, reporter).with_context(context)?;
    clean_partial(&partial);
    Ok(())
}

/// How a published release compares with the resolved one.
#[derive(Debug, PartialEq, Eq)]
enum Freshness {
    /// Every file is there as published and verified: nothing to download.
    UpToDate,
    /// Missing or different files, fetched without signatures while they are now wanted, or
    /// verified against keys that are not pinned now.
    Stale,
    /// The directory holds another architecture.
    OtherArch(String),
}

fn freshness(
    release: &Release,
    manifest: &Manifest,
    dir: &Path,
    insecure: bool,
    pinned: &[String],
) -> Freshness {
    if let Some(arch) = manifest.arch
        && arch != release.arch
    {
        return Freshness::OtherArch(arch.board_name().into());
    }
    if manifest.os != Product::from(release.os)
        || manifest.version != release.version
        || manifest.files.len() != release.files.len()
        || (manifest.insecure_skip_signature && !insecure)
    {
        return Freshness::Stale;
    }
    let all_there = release.files.iter().all(|remote| {
        let Some(file) = manifest
            .files
            .iter()
            .find(|f| f.role == remote.role && f.name == remote.name)
        else {
            return false;
        };
        let same_digest = match (&remote.sha256, &file.sha256) {
            (Some(want), Some(have)) => want == have,
            (Some(_), None) => false,
            (None, _) => true,
        };
        let size_ok = fs::metadata(dir.join(file.name.as_str()))
            .is_ok_and(|meta| meta.is_file() && Some(meta.len()) == file.size);
        let signature_ok = insecure
            || (file
                .signature
                .as_ref()
                .is_some_and(|sig| dir.join(sig.as_str()).is_file())
                && file
                    .pinned_key
                    .as_ref()
                    .is_some_and(|key| pinned.contains(key)));
        same_digest && size_ok && signature_ok
    });
    if all_there {
        Freshness::UpToDate
    } else {
        Freshness::Stale
    }
}

/// A signature fetched for a file.
#[derive(Clone, Debug)]
struct FetchedSignature {
    bytes: Arc<[u8]>,
    url: String,
}

fn fetch_signature(
    http: &Http,
    file: &RemoteFile,
    reporter: &Reporter,
) -> anyhow::Result<FetchedSignature> {
    if file.signature_urls.is_empty() {
        return Err(anyhow!(
            "{}: no signature: the release metadata names none (--insecure-skip-signature \
             accepts unsigned files)",
            file.name
        ));
    }
    let progress = |p| reporter.download_progress(file.name.as_str(), "", &Mutex::new(None), p);
    for (i, url) in file.signature_urls.iter().enumerate() {
        match http.get_small(url.as_str(), &progress) {
            Ok((bytes, _)) => {
                reporter.event(Event::Signature {
                    file: file.name.to_string(),
                    url: url.to_string(),
                    fallback: i > 0,
                });
                return Ok(FetchedSignature {
                    bytes: bytes.into(),
                    url: url.to_string(),
                });
            }
            Err(err) if http::is_not_found(&err) && i + 1 < file.signature_urls.len() => {
                tracing::info!("{}: {url} is missing; trying the fallback", file.name);
            }
            Err(err) if http::is_not_found(&err) => {
                return Err(anyhow!(
                    "{}: no signature: {}",
                    file.name,
                    crate::error::one_line(&err)
                ));
            }
            Err(err) => return Err(err.context(format!("{}: fetching its signature", file.name))),
        }
    }
    unreachable!("the loop returns on its last URL")
}

/// A download stopped because another file failed.
#[derive(Debug, thiserror::Error)]
#[error("stopped because another file failed")]
struct Cancelled;

/// One file that downloaded and verified.
struct Verified {
    remote: RemoteFile,
    sha256: String,
    size: u64,
    signature: Option<(FetchedSignature, GoodSignature)>,
}

struct Job<'a> {
    http: &'a Http,
    file: &'a RemoteFile,
    signature: Option<&'a FetchedSignature>,
    keyring: &'a Arc<Keyring>,
    stage: &'a Path,
    reporter: &'a Reporter,
    cancelled: &'a AtomicBool,
}

impl Job<'_> {
    fn run(&self) -> anyhow::Result<Verified> {
        let name = self.file.name.as_str();
        let part_path = self.stage.join(format!("{name}.part"));
        let done_path = self.stage.join(name);
        // A run that verified this file but died before publishing left it under its own
        // name: take it back as a complete download, to be checked again.
        if done_path.is_file() && !part_path.exists() {
            fs::rename(&done_path, &part_path)
                .with_context(|| format!("renaming {}", done_path.display()))?;
        }
        let mut second_pass = false;
        loop {
            let verifier = self
                .signature
                .map(|sig| (Arc::clone(self.keyring), Arc::clone(&sig.bytes)));
            let mut part = PartFile::open(&part_path, verifier)?;
            let resumed_from = part.held();
            let started = Instant::now();
            let total = Mutex::new(None);
            let url = self.file.url.as_str();
            let progress = |p| self.reporter.download_progress(name, url, &total, p);
            let cancelled = || self.cancelled.load(Ordering::Relaxed);
            if let Err(err) = self.http.download(url, &mut part, &progress, &cancelled) {
                let err = discard_if_unresumable(&part_path, err);
                return Err(if cancelled() && err.to_string() == "cancelled" {
                    anyhow::Error::new(Cancelled)
                } else {
                    err.context(name.to_owned())
                });
            }
            let size = part.held();
            let (sha256, verdict) = part
                .finish()
                .map_err(|err| discard_if_unresumable(&part_path, err))?;
            self.reporter.event(Event::Downloaded {
                file: name.to_owned(),
                bytes: size,
                seconds: started.elapsed().as_secs_f64(),
            });
            let digest_problem = match &self.file.sha256 {
                Some(want) if *want != sha256 => Some(format!(
                    "sha256 mismatch: the release metadata says {want}, the download has {sha256}"
                )),
                _ => None,
            };
            let outcome = match (digest_problem, verdict, self.signature) {
                (Some(problem), _, _) => Err(problem),
                (None, Some(Err(err)), Some(sig)) => {
                    Err(format!("{err} (signature from {})", sig.url))
                }
                (None, Some(Ok(good)), Some(sig)) => Ok(Some((sig.clone(), good))),
                (None, None, None) => Ok(None),
                (None, _, _) => Err("internal error: a verdict without a signature".into()),
            };
            match outcome {
                Ok(signature) => {
                    self.reporter.event(Event::Verified {
                        file: name.to_owned(),
                        sha256: sha256.clone(),
                        signing_key: signature.as_ref().map(|(_, good)| good.key.clone()),
                        pinned_key: signature.as_ref().map(|(_, good)| good.primary.clone()),
                    });
                    return Ok(Verified {
                        remote: self.file.clone(),
                        sha256,
                        size,
                        signature,
                    });
                }
                Err(problem) => {
                    fs::remove_file(&part_path)
                        .with_context(|| format!("removing {}", part_path.display()))?;
                    if resumed_from > 0 && !second_pass {
                        // The bytes kept from an earlier run may be from another build of
                        // the file: start once more from scratch before giving up.
                        second_pass = true;
                        self.reporter.event(Event::Restarted {
                            file: name.to_owned(),
                            reason: format!(
                                "{problem}, after resuming at byte {resumed_from}; downloading \
                                 the whole file again"
                            ),
                        });
                        continue;
                    }
                    return Err(anyhow!("{name}: {problem}"));
                }
            }
        }
    }
}

/// Deletes the part file a failed download left when no resume can mend the failure: the disk
/// is full (the bytes are better freed) or the file is larger than allowed.
pub(crate) fn discard_if_unresumable(part_path: &Path, err: anyhow::Error) -> anyhow::Error {
    if http::is_unresumable(&err) {
        remove_if_present(part_path);
    }
    err
}

/// Deletes every `*.part` in `stage`.
fn discard_parts(stage: &Path) {
    let Ok(entries) = fs::read_dir(stage) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().as_encoded_bytes().ends_with(b".part") {
            remove_if_present(&entry.path());
        }
    }
}

fn remove_if_present(path: &Path) {
    if let Err(err) = fs::remove_file(path)
        && err.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!("could not remove {}: {err}", path.display());
    }
}

/// A download in `.partial/<version>/<file>.part`: written, hashed (sha256) and fed to the
/// signature verifier as it arrives. Opening it re-reads what an earlier run left, so the
/// digest and the signature always cover the whole file.
pub(crate) struct PartFile {
    file: File,
    len: u64,
    sha256: Sha256,
    signature: Option<(Arc<Keyring>, Arc<[u8]>)>,
    verifier: Option<StreamVerifier>,
}

impl PartFile {
    pub(crate) fn open(
        path: &Path,
        signature: Option<(Arc<Keyring>, Arc<[u8]>)>,
    ) -> anyhow::Result<PartFile> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        file.set_permissions(Permissions::from_mode(write::FILE_MODE))
            .with_context(|| format!("setting the mode of {}", path.display()))?;
        let mut part = PartFile {
            file: file.try_clone().context("duplicating a file handle")?,
            len: 0,
            sha256: Sha256::new(),
            verifier: signature
                .as_ref()
                .map(|(keyring, sig)| StreamVerifier::start(Arc::clone(keyring), Arc::clone(sig))),
            signature,
        };
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let n = file
                .read(&mut buf)
                .with_context(|| format!("reading {}", path.display()))?;
            if n == 0 {
                break;
            }
            part.digest(&buf[..n]);
        }
        part.file
            .seek(SeekFrom::End(0))
            .with_context(|| format!("seeking in {}", path.display()))?;
        Ok(part)
    }

    fn digest(&mut self, bytes: &[u8]) {
        self.sha256.update(bytes);
        if let Some(verifier) = &mut self.verifier {
            verifier.feed(bytes);
        }
        self.len += bytes.len() as u64;
    }

    /// Flushes the file to disk; returns its sha256 and the signature verdict (`None` when no
    /// signature is checked).
    pub(crate) fn finish(
        self,
    ) -> anyhow::Result<(String, Option<Result<GoodSignature, SignatureError>>)> {
        self.file.sync_all().context("flushing a download")?;
        let verdict = self.verifier.map(StreamVerifier::finish);
        Ok((hex::encode(self.sha256.finalize()), verdict))
    }
}

impl Sink for PartFile {
    fn held(&self) -> u64 {
        self.len
    }

    fn restart(&mut self) -> anyhow::Result<()> {
        self.file.set_len(0).context("truncating a download")?;
        self.file
            .seek(SeekFrom::Start(0))
            .context("seeking in a download")?;
        self.len = 0;
        self.sha256 = Sha256::new();
        self.verifier = self
            .signature
            .as_ref()
            .map(|(keyring, sig)| StreamVerifier::start(Arc::clone(keyring), Arc::clone(sig)));
        Ok(())
    }

    fn append(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.file.write_all(bytes).context("writing a download")?;
        self.digest(bytes);
        Ok(())
    }
}

/// Takes the per-OS fetch lock, or fails at once when another fetch holds it.
pub(crate) fn lock(path: &Path) -> anyhow::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(anyhow!(
            "another `caas assets fetch` is working in {} (it holds {}); wait for it to finish",
            path.parent().unwrap_or(path).display(),
            path.display()
        )),
        Err(err) => Err(err).with_context(|| format!("locking {}", path.display())),
    }
}

/// Renames the verified downloads to their names, writes the signatures and the manifest
/// beside them, and moves the version directory into place.
fn publish(
    release: &Release,
    verified: &[Verified],
    keyring: &Keyring,
    insecure: bool,
    stage: &Path,
    published: &Path,
) -> anyhow::Result<()> {
    let mut files = Vec::new();
    let mut writes = Vec::new();
    for file in verified {
        let name = file.remote.name.as_str();
        let part = stage.join(format!("{name}.part"));
        fs::rename(&part, stage.join(name))
            .with_context(|| format!("renaming {}", part.display()))?;
        let signature_name = match &file.signature {
            Some((sig, _)) => {
                let sig_name = file.remote.name.with_suffix(".sig")?;
                writes.push(FileWrite::new(
                    stage.join(sig_name.as_str()),
                    sig.bytes.to_vec(),
                ));
                Some(sig_name)
            }
            None => None,
        };
        files.push(ManifestFile {
            role: file.remote.role,
            name: file.remote.name.clone(),
            sha256: Some(file.sha256.clone()),
            size: Some(file.size),
            signature: signature_name,
            signing_key: file.signature.as_ref().map(|(_, good)| good.key.clone()),
            pinned_key: file
                .signature
                .as_ref()
                .map(|(_, good)| good.primary.clone()),
            url: Some(file.remote.url.to_string()),
            signature_url: file.signature.as_ref().map(|(sig, _)| sig.url.clone()),
        });
    }
    let manifest = Manifest {
        os: release.os.into(),
        version: release.version.clone(),
        files,
        arch: Some(release.arch),
        channel: Some(release.channel.clone()),
        metadata_url: release.metadata_url.clone(),
        verified_at: Some(clock::rfc3339(SystemTime::now())),
        keyring: (!insecure).then(|| keyring.origin().to_owned()),
        insecure_skip_signature: insecure,
        archive: None,
    };
    writes.push(FileWrite::new(
        stage.join(MANIFEST_FILE),
        manifest.to_json(),
    ));
    write::apply(&writes)?;
    // Leftovers of an older attempt (a file no longer in the release) are not published.
    let keep: Vec<PathBuf> = verified
        .iter()
        .map(|f| stage.join(f.remote.name.as_str()))
        .chain(writes.iter().map(|w| w.path.clone()))
        .collect();
    for entry in fs::read_dir(stage).with_context(|| format!("listing {}", stage.display()))? {
        let path = entry?.path();
        if !keep.contains(&path) {
            fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    write::publish_dir(stage, published)?;
    Ok(())
}

/// Points `<os>/current` at `version`.
pub(crate) fn point_current(
    os_dir: &Path,
    version: &Id,
    reporter: &Reporter,
) -> anyhow::Result<()> {
    let link = os_dir.join("current");
    let action = write::replace_symlink(&link, Path::new(version.as_str()))?;
    reporter.event(Event::Current {
        path: link.display().to_string(),
        target: version.to_string(),
        action: action.as_str().to_owned(),
    });
    Ok(())
}

/// After a publish: drops what other versions left in `.partial` (keeping the lock).
pub(crate) fn clean_partial(partial: &Path) {
    let Ok(entries) = fs::read_dir(partial) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name() == LOCK_FILE {
            continue;
        }
        let path = entry.path();
        let removed = if path.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        if let Err(err) = removed {
            tracing::warn!("could not remove {}: {err}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assets::manifest::Role;
    use crate::os::Arch;

    fn release() -> Release {
        let dir = url::Url::parse("http://mirror/amd64-usr/1.2.3/").unwrap();
        Release {
            os: Os::Flatcar,
            version: Id::new("1.2.3").unwrap(),
            arch: Arch::Amd64,
            channel: "stable".into(),
            metadata_url: None,
            files: release::container_linux_files(Os::Flatcar, &dir),
        }
    }

    fn published(dir: &Path, release: &Release) -> Manifest {
        let files = release
            .files
            .iter()
            .map(|remote| {
                fs::write(dir.join(remote.name.as_str()), b"bytes").unwrap();
                let sig = remote.name.with_suffix(".sig").unwrap();
                fs::write(dir.join(sig.as_str()), b"sig").unwrap();
                ManifestFile {
                    role: remote.role,
                    name: remote.name.clone(),
                    sha256: Some("00".repeat(32)),
                    size: Some(5),
                    signature: Some(sig),
                    signing_key: Some("SUB".into()),
                    pinned_key: Some("PIN".into()),
                    url: None,
                    signature_url: None,
                }
            })
            .collect();
        Manifest {
            os: Product::Flatcar,
            version: release.version.clone(),
            files,
            arch: Some(Arch::Amd64),
            channel: None,
            metadata_url: None,
            verified_at: None,
            keyring: None,
            insecure_skip_signature: false,
            archive: None,
        }
    }

    #[test]
    fn a_published_release_is_fresh_only_if_complete_and_verified_with_the_keys_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let release = release();
        let manifest = published(dir.path(), &release);
        let pinned = ["PIN".to_owned()];
        let check = |m: &Manifest, insecure, pinned: &[String]| {
            freshness(&release, m, dir.path(), insecure, pinned)
        };
        assert_eq!(check(&manifest, false, &pinned), Freshness::UpToDate);
        assert_eq!(
            check(&manifest, false, &["OTHER".to_owned()]),
            Freshness::Stale,
            "verified with keys that are not pinned now"
        );
        assert_eq!(check(&manifest, true, &[]), Freshness::UpToDate);

        let mut unsigned = manifest.clone();
        unsigned.insecure_skip_signature = true;
        assert_eq!(check(&unsigned, false, &pinned), Freshness::Stale);

        let mut arm = manifest.clone();
        arm.arch = Some(Arch::Arm64);
        assert_eq!(
            check(&arm, false, &pinned),
            Freshness::OtherArch("arm64".into())
        );

        assert_eq!(manifest.files[0].role, Role::Kernel);
        fs::write(dir.path().join(manifest.files[0].name.as_str()), b"short").unwrap();
        assert_eq!(check(&manifest, false, &pinned), Freshness::UpToDate);
        fs::write(dir.path().join(manifest.files[1].name.as_str()), b"longer!").unwrap();
        assert_eq!(
            check(&manifest, false, &pinned),
            Freshness::Stale,
            "size changed"
        );
    }
}
