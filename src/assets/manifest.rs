//! The manifest published beside a verified release: `assets/<os>/<version>/caas-assets.json`.
//!
//! It records which file plays which role, so profiles take real names (Fedora CoreOS names
//! carry the version and were renamed in 2025) instead of guessing them. `caas assets fetch`
//! also records what it checked (sha256, size, the signature file beside each file, the key that
//! signed it, where it came from, when), so `caas assets verify` can re-check offline and
//! `caas assets list` can show it. Every field past `os`, `version` and `files[].{role,name}` is
//! optional, so hand-written manifests keep working.
//!
//! An etcd release (`assets/etcd/<version>/`, from `caas assets fetch etcd`) has the same
//! manifest with `"os": "etcd"`: its files are the `etcd` and `etcdctl` binaries taken out of the
//! upstream archive, and `archive` records that archive and the digest it was checked against.

use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::ids::Id;
use crate::os::{Arch, Os, ReleaseFiles};

/// The manifest's file name inside a release directory.
pub const MANIFEST_FILE: &str = "caas-assets.json";

/// What a release directory under `assets/` holds: an OS release or an etcd release.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Product {
    Flatcar,
    FedoraCoreos,
    Coreos,
    Etcd,
}

impl Product {
    /// The directory under `assets/`.
    pub fn dir_name(self) -> &'static str {
        match self {
            Product::Flatcar => Os::Flatcar.dir_name(),
            Product::FedoraCoreos => Os::FedoraCoreos.dir_name(),
            Product::Coreos => Os::Coreos.dir_name(),
            Product::Etcd => "etcd",
        }
    }

    /// The OS, for an OS release (whose files are signed with a pinned key).
    pub fn os(self) -> Option<Os> {
        match self {
            Product::Flatcar => Some(Os::Flatcar),
            Product::FedoraCoreos => Some(Os::FedoraCoreos),
            Product::Coreos => Some(Os::Coreos),
            Product::Etcd => None,
        }
    }
}

impl From<Os> for Product {
    fn from(os: Os) -> Product {
        match os {
            Os::Flatcar => Product::Flatcar,
            Os::FedoraCoreos => Product::FedoraCoreos,
            Os::Coreos => Product::Coreos,
        }
    }
}

/// The role a file plays in the release: booting it, or (etcd) running it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Kernel,
    Initrd,
    Rootfs,
    /// The etcd server binary.
    Etcd,
    /// The etcd command-line client.
    Etcdctl,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Kernel => "kernel",
            Role::Initrd => "initrd",
            Role::Rootfs => "rootfs",
            Role::Etcd => "etcd",
            Role::Etcdctl => "etcdctl",
        }
    }
}

/// The upstream archive an etcd release's files were taken from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Archive {
    pub name: String,
    pub sha256: String,
    /// Where it was downloaded from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// What the digest was checked against: `SHA256SUMS` (the release's) or `pinned`
    /// (`--sha256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_against: Option<String>,
}

/// One published file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    pub role: Role,
    /// A plain file name inside the release directory.
    pub name: Id,
    /// SHA-256 of the file, lower-case hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The detached OpenPGP signature kept beside the file (`<name>.sig`); `None` when the
    /// release was fetched with `--insecure-skip-signature`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Id>,
    /// Fingerprint of the (sub)key that made the signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<String>,
    /// Fingerprint of the pinned primary key the signing key belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_key: Option<String>,
    /// Where the file was downloaded from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Where the signature was downloaded from (for Flatcar, possibly the documented fallback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_url: Option<String>,
}

/// A published, verified release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// What the release is (serialised as `os`, the name it had when only OSes were published).
    pub os: Product,
    pub version: Id,
    pub files: Vec<ManifestFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<Arch>,
    /// Flatcar / Container Linux channel, or Fedora CoreOS stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// The release metadata that named the files (`version.txt`, the stream JSON), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_url: Option<String>,
    /// When caas last verified every file (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<String>,
    /// Where the pinned keys came from (`embedded flatcar.asc`, or a --keyring path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyring: Option<String>,
    /// True when signatures were NOT checked (`--insecure-skip-signature`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_skip_signature: bool,
    /// etcd: the archive the files came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<Archive>,
}

impl Manifest {
    /// Reads `<release_dir>/caas-assets.json`; `Ok(None)` when the release has none.
    pub fn read(release_dir: &Path) -> anyhow::Result<Option<Manifest>> {
        let path = release_dir.join(MANIFEST_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
        };
        let manifest = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a caas asset manifest", path.display()))?;
        Ok(Some(manifest))
    }

    /// The manifest as caas writes it (canonical JSON).
    pub fn to_json(&self) -> Vec<u8> {
        crate::write::canonical_json(self)
    }

    /// The file playing `role`.
    pub fn file_entry(&self, role: Role) -> Option<&ManifestFile> {
        self.files.iter().find(|file| file.role == role)
    }

    fn file(&self, role: Role) -> Option<&str> {
        self.files
            .iter()
            .find(|file| file.role == role)
            .map(|file| file.name.as_str())
    }

    /// The boot files by role; `None` when the manifest lacks a kernel or an initrd.
    pub fn release_files(&self) -> Option<ReleaseFiles> {
        Some(ReleaseFiles {
            kernel: self.file(Role::Kernel)?.to_owned(),
            initrd: self.file(Role::Initrd)?.to_owned(),
            rootfs: self.file(Role::Rootfs).map(str::to_owned),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_roles_and_ignores_fields_it_does_not_need() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Manifest::read(dir.path()).unwrap(), None);
        std::fs::write(
            dir.path().join(MANIFEST_FILE),
            r#"{"os": "fedora-coreos", "version": "42.1", "stream": "stable", "files": [
                {"role": "kernel", "name": "k", "sha256": "00"},
                {"role": "initrd", "name": "i"},
                {"role": "rootfs", "name": "r"}]}"#,
        )
        .unwrap();
        let manifest = Manifest::read(dir.path()).unwrap().unwrap();
        assert_eq!(manifest.os, Product::FedoraCoreos);
        assert_eq!(manifest.os.os(), Some(Os::FedoraCoreos));
        let files = manifest.release_files().unwrap();
        assert_eq!((files.kernel.as_str(), files.initrd.as_str()), ("k", "i"));
        assert_eq!(files.rootfs.as_deref(), Some("r"));
    }

    #[test]
    fn a_manifest_cannot_name_a_path_outside_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(MANIFEST_FILE),
            r#"{"os": "flatcar", "version": "1", "files": [{"role": "kernel", "name": "../../etc/passwd"}]}"#,
        )
        .unwrap();
        let err = format!("{:#}", Manifest::read(dir.path()).unwrap_err());
        assert!(err.contains("../../etc/passwd"), "{err}");
    }
}
