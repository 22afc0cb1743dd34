//! etcd releases under `<assets>/etcd/<version>/`: what the etcd roles run.
//!
//! `caas assets fetch etcd --version vX.Y.Z` downloads the upstream archive
//! `etcd-vX.Y.Z-linux-<arch>.tar.gz` (from the etcd-io/etcd GitHub release, or a mirror),
//! checks it against the release's `SHA256SUMS` (or a pinned `--sha256`), takes `etcd` and
//! `etcdctl` out of it, and publishes them with a `caas-assets.json` manifest exactly as an OS
//! release is published: staged under `etcd/.partial/`, moved into place with one rename,
//! `etcd/current` repointed afterwards. An archive that fails its digest publishes nothing.
//!
//! The etcd templates do not run a container: Ignition downloads the published `etcd` binary from
//! matchbox and checks it against the sha256 in the manifest. [`binary_vars`] is how `gen
//! cluster` and `schedule once` hand that URL and digest to the templates.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use anyhow::{Context as _, anyhow};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use url::Url;

use crate::assets::fetch::{
    PARTIAL_DIR, PartFile, clean_partial, discard_if_unresumable, lock, point_current,
};
use crate::assets::http::{Http, Sink as _, Transfer};
use crate::assets::manifest::{Archive, MANIFEST_FILE, Manifest, ManifestFile, Product, Role};
use crate::assets::progress::{Event, Reporter};
use crate::clock;
use crate::error::invalid;
use crate::ids::Id;
use crate::matchbox::server::MatchboxUrl;
use crate::os::Arch;
use crate::write::{self, FileWrite};

/// The directory under `assets/`.
pub const DIR: &str = "etcd";
/// Where the upstream releases are.
pub const UPSTREAM: &str = "https://github.com/etcd-io/etcd/releases/download/";
/// The digest list every upstream release carries.
pub const SHA256SUMS: &str = "SHA256SUMS";
/// The binaries taken out of the archive, with their roles.
pub const BINARIES: [(&str, Role); 2] = [("etcd", Role::Etcd), ("etcdctl", Role::Etcdctl)];
/// The largest binary accepted from an archive (etcd v3.5 is ~23 MB): a bound on what a
/// hostile archive can make caas write.
const MAX_BINARY: u64 = 512 * 1024 * 1024;

/// `caas assets fetch etcd`, as plain options.
#[derive(Clone, Debug)]
pub struct FetchOptions {
    /// As given: `v3.5.21` or `3.5.21`.
    pub version: String,
    pub arch: Arch,
    /// The directory that holds the archive and `SHA256SUMS` [default: the GitHub release].
    pub base_url: Option<Url>,
    /// A pinned sha256 of the archive, instead of the release's `SHA256SUMS`.
    pub sha256: Option<String>,
    /// The assets directory (releases go to `<dest>/etcd/<version>/`).
    pub dest: PathBuf,
    /// Retries, timeouts and the largest file accepted.
    pub transfer: Transfer,
}

/// `vX.Y.Z` (a leading `v` is added when missing), with an optional pre-release suffix.
pub fn normalize_version(version: &str) -> Result<Id, String> {
    let bare = version.strip_prefix('v').unwrap_or(version);
    let (core, suffix) = match bare.split_once('-') {
        Some((core, suffix)) => (core, Some(suffix)),
        None => (bare, None),
    };
    let numbers: Vec<&str> = core.split('.').collect();
    let numeric = numbers.len() == 3
        && numbers
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    let suffix_ok = suffix
        .is_none_or(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'));
    if !numeric || !suffix_ok {
        return Err(format!(
            "etcd version {version:?} is not a release version like v3.5.21"
        ));
    }
    Id::new(&format!("v{bare}")).map_err(|err| err.0)
}

/// The upstream archive name of `version` for `arch`.
pub fn archive_name(version: &Id, arch: Arch) -> String {
    format!("etcd-{version}-linux-{}.tar.gz", arch.board_name())
}

/// The lower-case sha256 for `name` in a `sha256sum`-style list (`<hex>  <name>`, or
/// `<hex> *<name>`).
pub fn parse_sha256sums(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        let (hex, file) = (words.next()?, words.next()?);
        let file = file.strip_prefix('*').unwrap_or(file);
        (file == name && words.next().is_none())
            .then(|| check_sha256(hex).ok())
            .flatten()
    })
}

/// A sha256 in hex (any case), returned in lower case.
pub fn check_sha256(hex: &str) -> Result<String, String> {
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex.to_ascii_lowercase())
    } else {
        Err(format!("{hex:?} is not a sha256 (64 hex digits)"))
    }
}

/// The release directory that holds the archive: the base URL given (as a directory), or the
/// GitHub release.
fn release_dir(options: &FetchOptions, version: &Id) -> anyhow::Result<Url> {
    match &options.base_url {
        Some(base) => Ok(crate::assets::release::as_directory(base)),
        None => Url::parse(UPSTREAM)
            .and_then(|base| base.join(&format!("{version}/")))
            .context("building the etcd release URL"),
    }
}

/// How the archive's digest is known.
struct Expected {
    sha256: String,
    /// `SHA256SUMS` or `pinned`.
    against: String,
    /// The `SHA256SUMS` URL when it came from there.
    metadata_url: Option<String>,
}

/// Runs `caas assets fetch etcd`.
pub fn fetch(options: &FetchOptions, reporter: &Reporter) -> anyhow::Result<()> {
    let result = fetch_inner(options, reporter);
    if let Err(err) = &result {
        reporter.event(Event::Failed {
            error: crate::error::one_line(err),
        });
    }
    result
}

fn fetch_inner(options: &FetchOptions, reporter: &Reporter) -> anyhow::Result<()> {
    let version = normalize_version(&options.version).map_err(invalid)?;
    let pinned = options
        .sha256
        .as_deref()
        .map(check_sha256)
        .transpose()
        .map_err(|err| invalid(format!("--sha256: {err}")))?;
    let arch_name = options.arch.board_name().to_owned();
    let name = archive_name(&version, options.arch);
    let dir_url = release_dir(options, &version)?;
    let archive_url = dir_url
        .join(&name)
        .with_context(|| format!("building the URL of {name}"))?;
    let http = Http::new(options.base_url.is_none(), &options.transfer);
    let context = || format!("fetching etcd {version}");

    let expected = match pinned {
        Some(sha256) => Expected {
            sha256,
            against: "pinned".into(),
            metadata_url: None,
        },
        None => {
            let sums_url = dir_url
                .join(SHA256SUMS)
                .context("building the SHA256SUMS URL")?;
            let progress =
                |p| reporter.download_progress(SHA256SUMS, sums_url.as_str(), &Mutex::new(None), p);
            let (bytes, _) = http
                .get_small(sums_url.as_str(), &progress)
                .with_context(context)?;
            let text = String::from_utf8_lossy(&bytes);
            let sha256 = parse_sha256sums(&text, &name).ok_or_else(|| {
                anyhow!(
                    "{sums_url} lists no sha256 for {name}: is {version} an etcd release for \
                     {arch_name}? (pin one with --sha256)"
                )
            })?;
            Expected {
                sha256,
                against: SHA256SUMS.into(),
                metadata_url: Some(sums_url.to_string()),
            }
        }
    };
    reporter.event(Event::Resolved {
        os: DIR.into(),
        version: version.to_string(),
        arch: arch_name.clone(),
        channel: None,
        metadata_url: expected.metadata_url.clone(),
    });

    let etcd_dir = options.dest.join(DIR);
    let published = etcd_dir.join(version.as_str());
    if let Some(manifest) = Manifest::read(&published).ok().flatten() {
        if manifest.os == Product::Etcd
            && let Some(arch) = manifest.arch
            && arch != options.arch
        {
            return Err(invalid(format!(
                "{} holds the {} build of etcd {version}; fetching {arch_name} would replace \
                 it: pass --dest to keep architectures apart",
                published.display(),
                arch.board_name(),
            )));
        }
        if is_fresh(
            &manifest,
            &published,
            &version,
            options.arch,
            &expected.sha256,
        ) {
            reporter.event(Event::UpToDate {
                os: DIR.into(),
                version: version.to_string(),
                path: published.display().to_string(),
                verified_at: manifest.verified_at,
            });
            point_current(&etcd_dir, &version, reporter).with_context(context)?;
            return Ok(());
        }
        tracing::info!(
            "{} is incomplete or differs from the release: fetching it again",
            published.display()
        );
    } else if published.exists() {
        tracing::warn!(
            "{} exists without a readable {MANIFEST_FILE} (not published by caas): it will be \
             replaced by the verified release",
            published.display()
        );
    }

    let partial = etcd_dir.join(PARTIAL_DIR);
    fs::create_dir_all(&partial)
        .with_context(|| format!("creating directory {}", partial.display()))?;
    let _lock = lock(&partial.join(crate::assets::fetch::LOCK_FILE))?;
    let stage = partial.join(version.as_str());
    fs::create_dir_all(&stage)
        .with_context(|| format!("creating directory {}", stage.display()))?;

    let archive_path =
        download(&http, &archive_url, &name, &stage, &expected, reporter).with_context(context)?;
    let files = extract(&archive_path, &stage, reporter)
        .with_context(|| format!("extracting {name}"))
        .with_context(context)?;
    fs::remove_file(&archive_path)
        .with_context(|| format!("removing {}", archive_path.display()))?;

    let manifest = Manifest {
        os: Product::Etcd,
        version: version.clone(),
        files: files
            .into_iter()
            .map(|(role, name, sha256, size)| ManifestFile {
                role,
                name,
                sha256: Some(sha256),
                size: Some(size),
                signature: None,
                signing_key: None,
                pinned_key: None,
                url: Some(archive_url.to_string()),
                signature_url: None,
            })
            .collect(),
        arch: Some(options.arch),
        channel: None,
        metadata_url: expected.metadata_url.clone(),
        verified_at: Some(clock::rfc3339(SystemTime::now())),
        keyring: None,
        insecure_skip_signature: false,
        archive: Some(Archive {
            name: name.clone(),
            sha256: expected.sha256.clone(),
            url: Some(archive_url.to_string()),
            checked_against: Some(expected.against.clone()),
        }),
    };
    write::apply(&[FileWrite::new(
        stage.join(MANIFEST_FILE),
        manifest.to_json(),
    )])
    .with_context(context)?;
    write::publish_dir(&stage, &published).with_context(context)?;
    reporter.event(Event::Published {
        os: DIR.into(),
        version: version.to_string(),
        path: published.display().to_string(),
    });
    point_current(&etcd_dir, &version, reporter).with_context(context)?;
    clean_partial(&partial);
    Ok(())
}

/// A published release is up to date when it is this version and architecture, came from an
/// archive with the expected digest, and every binary is there at its recorded size.
fn is_fresh(manifest: &Manifest, dir: &Path, version: &Id, arch: Arch, sha256: &str) -> bool {
    manifest.os == Product::Etcd
        && manifest.version == *version
        && manifest.arch == Some(arch)
        && manifest
            .archive
            .as_ref()
            .is_some_and(|archive| archive.sha256 == sha256)
        && BINARIES.iter().all(|(name, role)| {
            manifest.file_entry(*role).is_some_and(|file| {
                file.name.as_str() == *name
                    && file.sha256.is_some()
                    && fs::metadata(dir.join(name))
                        .is_ok_and(|meta| meta.is_file() && Some(meta.len()) == file.size)
            })
        })
}

/// Downloads the archive into the stage (resuming a `.part` an earlier run left) and checks its
/// digest; a mismatch deletes it.
fn download(
    http: &Http,
    url: &Url,
    name: &str,
    stage: &Path,
    expected: &Expected,
    reporter: &Reporter,
) -> anyhow::Result<PathBuf> {
    let part_path = stage.join(format!("{name}.part"));
    let mut retried = false;
    loop {
        let mut part = PartFile::open(&part_path, None)?;
        let resumed_from = part.held();
        let started = Instant::now();
        let total = Mutex::new(None);
        let progress = |p| reporter.download_progress(name, url.as_str(), &total, p);
        http.download(url.as_str(), &mut part, &progress, &|| false)
            .map_err(|err| discard_if_unresumable(&part_path, err))
            .with_context(|| name.to_owned())?;
        let size = part.held();
        let (sha256, _) = part
            .finish()
            .map_err(|err| discard_if_unresumable(&part_path, err))?;
        reporter.event(Event::Downloaded {
            file: name.to_owned(),
            bytes: size,
            seconds: started.elapsed().as_secs_f64(),
        });
        if sha256 == expected.sha256 {
            reporter.event(Event::DigestMatched {
                file: name.to_owned(),
                sha256,
                against: match &expected.metadata_url {
                    Some(url) => url.clone(),
                    None => "--sha256".into(),
                },
            });
            return Ok(part_path);
        }
        fs::remove_file(&part_path).with_context(|| format!("removing {}", part_path.display()))?;
        let problem = match &expected.metadata_url {
            Some(sums) => format!(
                "sha256 mismatch: {sums} says {}, the download has {sha256}",
                expected.sha256
            ),
            None => format!(
                "sha256 mismatch: --sha256 pins {}, the download has {sha256}",
                expected.sha256
            ),
        };
        if resumed_from > 0 && !retried {
            // The bytes kept from an earlier run may be from another build: start once more.
            retried = true;
            reporter.event(Event::Restarted {
                file: name.to_owned(),
                reason: format!(
                    "{problem}, after resuming at byte {resumed_from}; downloading the whole \
                     file again"
                ),
            });
            continue;
        }
        return Err(anyhow!("{name}: {problem}"));
    }
}

/// Takes [`BINARIES`] out of the archive into `stage` (mode 0755, flushed), returning each
/// one's role, name, sha256 and size. Only regular files named exactly so, at the top of the
/// archive or one directory down (`etcd-vX.Y.Z-linux-amd64/etcd`), are taken.
fn extract(
    archive: &Path,
    stage: &Path,
    reporter: &Reporter,
) -> anyhow::Result<Vec<(Role, Id, String, u64)>> {
    let file = File::open(archive).with_context(|| format!("opening {}", archive.display()))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(io::BufReader::new(file)));
    let mut found: Vec<(Role, Id, String, u64)> = Vec::new();
    for entry in tar.entries().context("reading the archive")? {
        let mut entry = entry.context("reading the archive")?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry
            .path()
            .context("reading an archive path")?
            .into_owned();
        let Some((name, role)) = wanted(&path) else {
            continue;
        };
        if found.iter().any(|(r, ..)| *r == role) {
            return Err(anyhow!("the archive holds {name} more than once"));
        }
        let (sha256, size) = copy_binary(&mut entry, &stage.join(name))
            .with_context(|| format!("extracting {}", path.display()))?;
        reporter.event(Event::Extracted {
            file: name.to_owned(),
            bytes: size,
            sha256: sha256.clone(),
        });
        found.push((role, Id::new(name)?, sha256, size));
    }
    let missing: Vec<&str> = BINARIES
        .iter()
        .filter(|(_, role)| !found.iter().any(|(r, ..)| r == role))
        .map(|(name, _)| *name)
        .collect();
    if !missing.is_empty() {
        return Err(anyhow!(
            "the archive has no {} (looked for etcd-<version>-linux-<arch>/<name>)",
            missing.join(" and no ")
        ));
    }
    found.sort_by_key(|(role, ..)| *role);
    Ok(found)
}

/// The binary an archive path stands for, if it is one of [`BINARIES`] at depth 1 or 2.
fn wanted(path: &Path) -> Option<(&'static str, Role)> {
    let parts: Vec<_> = path
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect();
    if parts.is_empty()
        || parts.len() > 2
        || !parts.iter().all(|c| matches!(c, Component::Normal(_)))
    {
        return None;
    }
    let last = parts.last()?.as_os_str().to_str()?;
    BINARIES.into_iter().find(|(name, _)| *name == last)
}

fn copy_binary(reader: &mut impl io::Read, path: &Path) -> anyhow::Result<(String, u64)> {
    let mut out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    out.set_permissions(Permissions::from_mode(0o755))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    let mut sha256 = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        if size > MAX_BINARY {
            return Err(anyhow!(
                "{} is larger than {MAX_BINARY} bytes: not an etcd binary",
                path.display()
            ));
        }
        sha256.update(&buf[..n]);
        out.write_all(&buf[..n])
            .with_context(|| format!("writing {}", path.display()))?;
    }
    out.sync_all()
        .with_context(|| format!("flushing {}", path.display()))?;
    Ok((hex::encode(sha256.finalize()), size))
}

/// What the etcd templates need from a published release: where machines download the binary
/// and its digest in Ignition's form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binary {
    /// The release directory name (`current` resolved).
    pub version: Id,
    /// `<matchbox>/assets/etcd/<version>/etcd`.
    pub url: String,
    /// `sha256-<hex>` (Ignition's `verification.hash`), or `sha512-<hex>` after
    /// [`Binary::with_sha512`].
    pub hash: String,
    /// The published file.
    pub file: PathBuf,
}

/// The template variable holding [`Binary::url`].
pub const URL_VAR: &str = "etcd_binary_url";
/// The template variable holding [`Binary::hash`].
pub const HASH_VAR: &str = "etcd_binary_hash";

impl Binary {
    /// The same binary with a sha512 digest, for Ignition spec 2.x, which verifies nothing
    /// else. The published file is read, and must still be the one the manifest's sha256 names.
    pub fn with_sha512(self) -> anyhow::Result<Binary> {
        let mut file =
            File::open(&self.file).with_context(|| format!("reading {}", self.file.display()))?;
        let mut sha256 = Sha256::new();
        let mut sha512 = sha2::Sha512::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = file
                .read(&mut buf)
                .with_context(|| format!("reading {}", self.file.display()))?;
            if n == 0 {
                break;
            }
            sha256.update(&buf[..n]);
            sha512.update(&buf[..n]);
        }
        let recorded = self.hash.strip_prefix("sha256-").unwrap_or_default();
        if hex::encode(sha256.finalize()) != recorded {
            return Err(invalid(format!(
                "{} does not match the sha256 its manifest records: fetch it again",
                self.file.display()
            )));
        }
        Ok(Binary {
            hash: format!("sha512-{}", hex::encode(sha512.finalize())),
            ..self
        })
    }

    /// The template variables (`etcd_binary_url`, `etcd_binary_hash`, `etcd_version`).
    pub fn vars(&self) -> Map<String, Value> {
        let mut vars = Map::new();
        vars.insert(URL_VAR.into(), self.url.clone().into());
        vars.insert(HASH_VAR.into(), self.hash.clone().into());
        vars.insert("etcd_version".into(), self.version.as_str().into());
        vars
    }
}

/// [`published_binary`] with the digest Ignition `spec` verifies: sha256 for 3.x, sha512 (the
/// file read once) for 2.x.
pub fn published_binary_for(
    assets_dir: &Path,
    version: &Id,
    arch: Arch,
    matchbox_url: &MatchboxUrl,
    spec: crate::ignition::Spec,
) -> anyhow::Result<Binary> {
    let binary = published_binary(assets_dir, version, arch, matchbox_url)?;
    if spec.major() == 2 {
        binary.with_sha512()
    } else {
        Ok(binary)
    }
}

/// Reads the published etcd release `version` (`current`: the release the `current` link points
/// at) under `assets_dir` and returns what the templates need. A release that is missing, of
/// another architecture, or without an `etcd` digest is an error that says which fetch to run.
pub fn published_binary(
    assets_dir: &Path,
    version: &Id,
    arch: Arch,
    matchbox_url: &MatchboxUrl,
) -> anyhow::Result<Binary> {
    let etcd_dir = assets_dir.join(DIR);
    let fetch_hint = |v: &str| {
        format!(
            "publish one with `caas assets fetch etcd --version {v}{}`",
            match arch {
                Arch::Amd64 => String::new(),
                other => format!(" --arch {}", other.board_name()),
            }
        )
    };
    let resolved = if version.as_str() == "current" {
        let link = etcd_dir.join("current");
        match fs::read_link(&link) {
            Ok(target) => target
                .file_name()
                .and_then(|name| name.to_str())
                .map(Id::new)
                .transpose()?
                .ok_or_else(|| anyhow!("{} points at {}", link.display(), target.display()))?,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(invalid(format!(
                    "the etcd roles run the etcd release published under {}, and there is none \
                     ({} is missing): {}",
                    etcd_dir.display(),
                    link.display(),
                    fetch_hint("vX.Y.Z")
                )));
            }
            Err(err) => return Err(err).with_context(|| format!("reading {}", link.display())),
        }
    } else {
        normalize_version(version.as_str()).map_err(invalid)?
    };
    let dir = etcd_dir.join(resolved.as_str());
    let manifest = match Manifest::read(&dir)? {
        Some(manifest) if manifest.os == Product::Etcd => manifest,
        Some(manifest) => {
            return Err(invalid(format!(
                "{} describes {}, not etcd",
                dir.display(),
                manifest.os.dir_name()
            )));
        }
        None => {
            return Err(invalid(format!(
                "etcd {resolved} is not published ({} is missing): {}",
                dir.join(MANIFEST_FILE).display(),
                fetch_hint(resolved.as_str())
            )));
        }
    };
    if let Some(have) = manifest.arch
        && have != arch
    {
        return Err(invalid(format!(
            "{} holds etcd for {}, and the machines are {}: {}",
            dir.display(),
            have.board_name(),
            arch.board_name(),
            fetch_hint(resolved.as_str())
        )));
    }
    let file = manifest.file_entry(Role::Etcd).ok_or_else(|| {
        invalid(format!(
            "the manifest in {} names no etcd binary",
            dir.display()
        ))
    })?;
    let sha256 = file
        .sha256
        .as_deref()
        .map(check_sha256)
        .transpose()
        .map_err(|err| invalid(format!("{}: etcd: {err}", dir.display())))?
        .ok_or_else(|| {
            invalid(format!(
                "the manifest in {} records no sha256 for etcd: fetch it again",
                dir.display()
            ))
        })?;
    Ok(Binary {
        url: matchbox_url.join(&format!(
            "/assets/{DIR}/{}/{}",
            resolved.as_str(),
            file.name.as_str()
        )),
        hash: format!("sha256-{sha256}"),
        file: dir.join(file.name.as_str()),
        version: resolved,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sha512_is_computed_only_from_the_file_the_manifest_names() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("etcd");
        fs::write(&file, b"etcd").unwrap();
        let binary = |sha256: String| Binary {
            version: Id::new("v3.5.21").unwrap(),
            url: "http://m/assets/etcd/v3.5.21/etcd".to_owned(),
            hash: format!("sha256-{sha256}"),
            file: file.clone(),
        };
        let good = binary(hex::encode(Sha256::digest(b"etcd")))
            .with_sha512()
            .unwrap();
        assert_eq!(
            good.hash,
            format!("sha512-{}", hex::encode(sha2::Sha512::digest(b"etcd")))
        );
        let err = binary("00".repeat(32))
            .with_sha512()
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not match the sha256"), "{err}");
    }

    #[test]
    fn versions_are_release_versions_with_a_v() {
        assert_eq!(normalize_version("3.5.21").unwrap().as_str(), "v3.5.21");
        assert_eq!(normalize_version("v3.6.0").unwrap().as_str(), "v3.6.0");
        assert_eq!(
            normalize_version("v3.6.0-rc.1").unwrap().as_str(),
            "v3.6.0-rc.1"
        );
        for bad in [
            "current",
            "v3.5",
            "v3.5.x",
            "../v3.5.1",
            "v3.5.1-",
            "v3.5.1-a/b",
            "",
        ] {
            assert!(normalize_version(bad).is_err(), "{bad}");
        }
        assert_eq!(
            archive_name(&normalize_version("3.5.21").unwrap(), Arch::Arm64),
            "etcd-v3.5.21-linux-arm64.tar.gz"
        );
    }

    #[test]
    fn sha256sums_name_the_archive_exactly() {
        let a = "a".repeat(64);
        let b = "B".repeat(64);
        let text = format!(
            "{a}  etcd-v3.5.21-linux-amd64.tar.gz.sig\n{b} *etcd-v3.5.21-linux-amd64.tar.gz\nxyz  other\n"
        );
        assert_eq!(
            parse_sha256sums(&text, "etcd-v3.5.21-linux-amd64.tar.gz"),
            Some("b".repeat(64))
        );
        assert_eq!(
            parse_sha256sums(&text, "etcd-v3.5.21-linux-arm64.tar.gz"),
            None
        );
        assert_eq!(parse_sha256sums("xyz  other\n", "other"), None);
    }

    #[test]
    fn only_the_binaries_at_the_top_of_the_archive_are_taken() {
        let cases = [
            ("etcd-v3.5.21-linux-amd64/etcd", Some("etcd")),
            ("./etcd-v3.5.21-linux-amd64/etcdctl", Some("etcdctl")),
            ("etcd", Some("etcd")),
            ("etcd-v3.5.21-linux-amd64/Documentation/etcd", None),
            ("etcd-v3.5.21-linux-amd64/etcdutl", None),
            ("../etcd", None),
            ("/etcd", None),
        ];
        for (path, want) in cases {
            assert_eq!(wanted(Path::new(path)).map(|(n, _)| n), want, "{path}");
        }
    }
}
