//! Release catalogs: which files make up a release of each OS, and where they and their
//! signatures live. Each OS's [`Catalog`] says which kind it publishes:
//!
//! - Flatcar and CoreOS Container Linux: `<base>/<arch>-usr/<version>/<file>` with `<file>.sig`;
//!   `current` is resolved through `<base>/<arch>-usr/current/version.txt`
//!   (<https://www.flatcar.org/docs/latest/installing/bare-metal/booting-with-ipxe/>).
//! - Fedora CoreOS: everything (version, names, URLs, sha256, signature URLs) comes from the
//!   stream metadata `<base>/streams/<stream>.json`; nothing is hard-coded
//!   (<https://docs.fedoraproject.org/en-US/fedora-coreos/stream-metadata/>).
//!
//! The parsers here are pure; [`resolve`] does the fetching.

use std::collections::BTreeMap;

use anyhow::{Context as _, anyhow};
use serde::Deserialize;
use url::Url;

use crate::assets::http::{Http, Progress};
use crate::assets::manifest::Role;
use crate::ids::Id;
use crate::os::{Arch, Catalog, ContainerLinuxCatalog, Os};

/// The Fedora CoreOS build server, which publishes the stream metadata; artifact URLs under it
/// are rewritten to a `--base-url`.
pub const FCOS_OFFICIAL: &str = "https://builds.coreos.fedoraproject.org/";

/// What the user asked for.
#[derive(Clone, Debug)]
pub struct ReleaseRequest {
    pub os: Os,
    /// Flatcar / Container Linux channel or Fedora CoreOS stream.
    pub channel: String,
    /// A version, or `current`.
    pub version: Id,
    pub arch: Arch,
    /// A mirror standing in for the official server.
    pub base_url: Option<Url>,
}

/// One file of a release, and where it and its signature come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteFile {
    pub role: Role,
    pub name: Id,
    pub url: Url,
    /// Signature URLs to try in order (the first that exists is used).
    pub signature_urls: Vec<Url>,
    /// The sha256 the metadata publishes, lower-case hex.
    pub sha256: Option<String>,
}

/// A resolved release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    pub os: Os,
    pub version: Id,
    pub arch: Arch,
    pub channel: String,
    /// The metadata document that resolved it, if one was read.
    pub metadata_url: Option<String>,
    pub files: Vec<RemoteFile>,
}

/// A URL whose path ends with `/`, so `join` appends to it instead of replacing its last part.
pub fn as_directory(url: &Url) -> Url {
    let mut url = url.clone();
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

/// The official server of `os` for `channel`.
pub fn default_base(os: Os, channel: &str) -> Url {
    let text = match &os.descriptor().catalog {
        Catalog::ContainerLinux(catalog) => format!("https://{channel}.{}/", catalog.domain),
        Catalog::FedoraCoreosStreams => FCOS_OFFICIAL.to_owned(),
    };
    Url::parse(&text).expect("official URLs are valid")
}

fn join(base: &Url, path: &str) -> Url {
    base.join(path)
        .unwrap_or_else(|err| panic!("joining {path:?} to {base}: {err}"))
}

/// The release directory of a Flatcar or Container Linux version.
pub fn container_linux_dir(base: &Url, arch: Arch, version: &str) -> Url {
    join(
        &as_directory(base),
        &format!("{}-usr/{version}/", arch.board_name()),
    )
}

/// A version read from metadata: a valid directory name, and not `current` (the symlink's name).
fn release_version(value: &str) -> Result<Id, String> {
    match Id::new(value) {
        Ok(id) if id.as_str() == "current" => Err("\"current\" is not a release version".into()),
        Ok(id) => Ok(id),
        Err(err) => Err(err.to_string()),
    }
}

/// Reads `KEY=value` from a `version.txt` (shell variable assignments, optionally quoted).
pub fn parse_version_txt(text: &str, key: &str) -> Result<Id, String> {
    for line in text.lines() {
        let Some((name, value)) = line.trim().split_once('=') else {
            continue;
        };
        if name.trim() != key {
            continue;
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        return release_version(value).map_err(|err| format!("{key}: {err}"));
    }
    Err(format!("it sets no {key}"))
}

/// The PXE files of a release of `os` from a Flatcar-style server, in `dir`; none for an OS
/// whose releases are described by stream metadata.
pub fn container_linux_files(os: Os, dir: &Url) -> Vec<RemoteFile> {
    match &os.descriptor().catalog {
        Catalog::ContainerLinux(catalog) => catalog_files(catalog, dir),
        Catalog::FedoraCoreosStreams => Vec::new(),
    }
}

/// The PXE kernel and initrd in `dir`, each signed by `<file>.sig`; the kernel also by the
/// catalog's fallback signature, which covers the same bytes.
fn catalog_files(catalog: &ContainerLinuxCatalog, dir: &Url) -> Vec<RemoteFile> {
    let file = |role, name: &str, extra: Option<&str>| {
        let mut signature_urls = vec![join(dir, &format!("{name}.sig"))];
        signature_urls.extend(extra.map(|sig| join(dir, sig)));
        RemoteFile {
            role,
            url: join(dir, name),
            name: Id::new(name).expect("fixed names are valid"),
            signature_urls,
            sha256: None,
        }
    };
    vec![
        file(
            Role::Kernel,
            catalog.kernel,
            catalog.kernel_signature_fallback,
        ),
        file(Role::Initrd, catalog.initrd, None),
    ]
}

/// The slice of Fedora CoreOS stream metadata caas reads.
#[derive(Debug, Deserialize)]
struct Stream {
    #[serde(default)]
    architectures: BTreeMap<String, StreamArch>,
}

#[derive(Debug, Deserialize)]
struct StreamArch {
    artifacts: BTreeMap<String, Platform>,
}

#[derive(Debug, Deserialize)]
struct Platform {
    release: String,
    formats: BTreeMap<String, BTreeMap<String, Artifact>>,
}

#[derive(Debug, Deserialize)]
struct Artifact {
    location: String,
    #[serde(default)]
    signature: Option<String>,
    #[serde(default)]
    sha256: Option<String>,
}

/// Where an artifact URL from the metadata really points: resolved against the stream URL,
/// and moved to the mirror when it names the official server and a mirror is in use.
fn artifact_url(location: &str, stream_url: &Url, mirror: Option<&Url>) -> Result<Url, String> {
    if let (Some(mirror), Some(rest)) = (mirror, location.strip_prefix(FCOS_OFFICIAL)) {
        return as_directory(mirror)
            .join(rest)
            .map_err(|err| format!("{location:?}: {err}"));
    }
    stream_url
        .join(location)
        .map_err(|err| format!("{location:?}: {err}"))
}

fn file_name(url: &Url) -> Result<Id, String> {
    let name = url
        .path_segments()
        .and_then(|mut segments| segments.next_back())
        .unwrap_or_default();
    Id::new(name).map_err(|err| format!("{url} does not end in a usable file name: {err}"))
}

fn sha256_hex(value: &str) -> Option<String> {
    let value = value.trim().to_ascii_lowercase();
    (value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())).then_some(value)
}

/// Reads the live PXE release of `arch` from Fedora CoreOS stream metadata: the version and
/// the kernel, initramfs and rootfs with their URLs, sha256 and signature URLs.
pub fn parse_fcos_stream(
    json: &[u8],
    stream_url: &Url,
    arch: Arch,
    mirror: Option<&Url>,
) -> Result<(Id, Vec<RemoteFile>), String> {
    let stream: Stream =
        serde_json::from_slice(json).map_err(|err| format!("it is not stream metadata: {err}"))?;
    let arch_name = arch.fcos_name();
    let path = format!("architectures.{arch_name}.artifacts.metal");
    let metal = stream
        .architectures
        .get(arch_name)
        .and_then(|a| a.artifacts.get("metal"))
        .ok_or_else(|| format!("it has no {path}"))?;
    let version =
        release_version(&metal.release).map_err(|err| format!("{path}.release: {err}"))?;
    let pxe = metal
        .formats
        .get("pxe")
        .ok_or_else(|| format!("it has no {path}.formats.pxe"))?;
    let mut files = Vec::new();
    for (key, role) in [
        ("kernel", Role::Kernel),
        ("initramfs", Role::Initrd),
        ("rootfs", Role::Rootfs),
    ] {
        let field = format!("{path}.formats.pxe.{key}");
        let artifact = pxe.get(key).ok_or_else(|| format!("it has no {field}"))?;
        let url = artifact_url(&artifact.location, stream_url, mirror)
            .map_err(|err| format!("{field}.location: {err}"))?;
        let name = file_name(&url).map_err(|err| format!("{field}.location: {err}"))?;
        let sha256 = match &artifact.sha256 {
            Some(value) => Some(
                sha256_hex(value)
                    .ok_or_else(|| format!("{field}.sha256 {value:?} is not a sha256"))?,
            ),
            None => None,
        };
        let signature_urls = match &artifact.signature {
            Some(location) => vec![
                artifact_url(location, stream_url, mirror)
                    .map_err(|err| format!("{field}.signature: {err}"))?,
            ],
            None => Vec::new(),
        };
        files.push(RemoteFile {
            role,
            name,
            url,
            signature_urls,
            sha256,
        });
    }
    if files[1..].iter().any(|f| f.name == files[0].name) || files[1].name == files[2].name {
        return Err(format!("{path}.formats.pxe names one file twice"));
    }
    Ok((version, files))
}

/// Resolves `request` to a release, fetching the metadata it needs (none for a Flatcar or
/// Container Linux release named by version).
pub fn resolve(
    http: &Http,
    request: &ReleaseRequest,
    progress: &dyn Fn(Progress),
) -> anyhow::Result<Release> {
    let base = request
        .base_url
        .clone()
        .unwrap_or_else(|| default_base(request.os, &request.channel));
    match &request.os.descriptor().catalog {
        Catalog::ContainerLinux(catalog) => {
            resolve_container_linux(http, request, catalog, &base, progress)
        }
        Catalog::FedoraCoreosStreams => resolve_stream(http, request, &base, progress),
    }
}

fn resolve_container_linux(
    http: &Http,
    request: &ReleaseRequest,
    catalog: &ContainerLinuxCatalog,
    base: &Url,
    progress: &dyn Fn(Progress),
) -> anyhow::Result<Release> {
    let (version, metadata_url) = if request.version.as_str() == "current" {
        let url = join(
            &container_linux_dir(base, request.arch, "current"),
            "version.txt",
        );
        let (bytes, _) = http
            .get_small(url.as_str(), progress)
            .context("resolving the current release")?;
        let text = String::from_utf8_lossy(&bytes);
        let version =
            parse_version_txt(&text, catalog.version_key).map_err(|err| anyhow!("{url}: {err}"))?;
        (version, Some(url.to_string()))
    } else {
        (request.version.clone(), None)
    };
    let dir = container_linux_dir(base, request.arch, version.as_str());
    Ok(Release {
        os: request.os,
        files: catalog_files(catalog, &dir),
        version,
        arch: request.arch,
        channel: request.channel.clone(),
        metadata_url,
    })
}

fn resolve_stream(
    http: &Http,
    request: &ReleaseRequest,
    base: &Url,
    progress: &dyn Fn(Progress),
) -> anyhow::Result<Release> {
    let url = join(
        &as_directory(base),
        &format!("streams/{}.json", request.channel),
    );
    let (bytes, final_url) = http
        .get_small(url.as_str(), progress)
        .context("reading the stream metadata")?;
    let final_url = Url::parse(&final_url).unwrap_or_else(|_| url.clone());
    let (version, files) =
        parse_fcos_stream(&bytes, &final_url, request.arch, request.base_url.as_ref())
            .map_err(|err| anyhow!("stream metadata {url}: {err}"))?;
    if request.version.as_str() != "current" && version != request.version {
        return Err(anyhow!(
            "the {} stream offers {version}, not {}: Fedora CoreOS stream metadata names \
             only the newest release (use --version current)",
            request.channel,
            request.version
        ));
    }
    Ok(Release {
        os: request.os,
        version,
        arch: request.arch,
        channel: request.channel.clone(),
        metadata_url: Some(url.to_string()),
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn version_txt() {
        let text = "FLATCAR_BUILD=4081\nFLATCAR_VERSION=4081.2.0\nFLATCAR_VERSION_ID='4081.2.0'\n";
        assert_eq!(
            parse_version_txt(text, "FLATCAR_VERSION").unwrap().as_str(),
            "4081.2.0"
        );
        assert_eq!(
            parse_version_txt("COREOS_VERSION=\"2512.3.0\"", "COREOS_VERSION")
                .unwrap()
                .as_str(),
            "2512.3.0"
        );
        assert!(parse_version_txt("FLATCAR_BUILD=1", "FLATCAR_VERSION").is_err());
        assert!(parse_version_txt("FLATCAR_VERSION=current", "FLATCAR_VERSION").is_err());
        let err = parse_version_txt("FLATCAR_VERSION=../../etc", "FLATCAR_VERSION").unwrap_err();
        assert!(err.contains("../../etc"), "{err}");
    }

    #[test]
    fn flatcar_urls_follow_the_release_layout() {
        let base = default_base(Os::Flatcar, "beta");
        let dir = container_linux_dir(&base, Arch::Arm64, "4081.1.0");
        assert_eq!(
            dir.as_str(),
            "https://beta.release.flatcar-linux.net/arm64-usr/4081.1.0/"
        );
        let files = container_linux_files(Os::Flatcar, &dir);
        assert_eq!(files[0].name.as_str(), "flatcar_production_pxe.vmlinuz");
        assert_eq!(
            files[0]
                .signature_urls
                .iter()
                .map(Url::as_str)
                .collect::<Vec<_>>(),
            [
                "https://beta.release.flatcar-linux.net/arm64-usr/4081.1.0/flatcar_production_pxe.vmlinuz.sig",
                "https://beta.release.flatcar-linux.net/arm64-usr/4081.1.0/flatcar_production_image.vmlinuz.sig",
            ]
        );
        assert_eq!(files[1].signature_urls.len(), 1);
        let mirror = Url::parse("http://mirror.lab/coreos").unwrap();
        let coreos = container_linux_files(
            Os::Coreos,
            &container_linux_dir(&mirror, Arch::Amd64, "2512.3.0"),
        );
        assert_eq!(
            coreos[1].url.as_str(),
            "http://mirror.lab/coreos/amd64-usr/2512.3.0/coreos_production_pxe_image.cpio.gz"
        );
    }

    fn stream(kernel: &str, sha: &str) -> String {
        format!(
            r#"{{"stream": "stable", "metadata": {{"last-modified": "2026-11-20T00:00:00Z"}},
            "architectures": {{"x86_64": {{"artifacts": {{"metal": {{"release": "43.20261101.3.0",
            "formats": {{"pxe": {{
              "kernel": {{"location": "{kernel}", "signature": "{kernel}.sig", "sha256": "{sha}"}},
              "initramfs": {{"location": "https://builds.coreos.fedoraproject.org/prod/streams/stable/builds/43.20261101.3.0/x86_64/fedora-coreos-43.20261101.3.0-live-initramfs.x86_64.img", "sha256": "{sha}"}},
              "rootfs": {{"location": "rootfs.img", "signature": "rootfs.img.sig", "sha256": "{sha}"}}
            }}}}}}}}}}}}}}"#
        )
    }

    #[test]
    fn fcos_names_urls_and_digests_come_from_the_metadata() {
        let sha = "AB".repeat(32);
        let url =
            Url::parse("https://builds.coreos.fedoraproject.org/streams/stable.json").unwrap();
        let kernel = "https://builds.coreos.fedoraproject.org/prod/streams/stable/builds/43.20261101.3.0/x86_64/fedora-coreos-43.20261101.3.0-live-kernel.x86_64";
        let (version, files) =
            parse_fcos_stream(stream(kernel, &sha).as_bytes(), &url, Arch::Amd64, None).unwrap();
        assert_eq!(version.as_str(), "43.20261101.3.0");
        assert_eq!(
            files[0].name.as_str(),
            "fedora-coreos-43.20261101.3.0-live-kernel.x86_64"
        );
        assert_eq!(files[0].sha256.as_deref(), Some(&*"ab".repeat(32)));
        assert_eq!(files[0].signature_urls[0].as_str(), format!("{kernel}.sig"));
        assert!(
            files[1].signature_urls.is_empty(),
            "no signature in the metadata"
        );
        assert_eq!(
            files[2].url.as_str(),
            "https://builds.coreos.fedoraproject.org/streams/rootfs.img"
        );

        let mirror = Url::parse("http://127.0.0.1:9/fcos").unwrap();
        let (_, mirrored) = parse_fcos_stream(
            stream(kernel, &sha).as_bytes(),
            &url,
            Arch::Amd64,
            Some(&mirror),
        )
        .unwrap();
        assert!(
            mirrored[0]
                .url
                .as_str()
                .starts_with("http://127.0.0.1:9/fcos/prod/streams/stable/"),
            "{}",
            mirrored[0].url
        );

        let err = parse_fcos_stream(stream(kernel, &sha).as_bytes(), &url, Arch::Arm64, None)
            .unwrap_err();
        assert!(err.contains("architectures.aarch64"), "{err}");
        let err = parse_fcos_stream(stream(kernel, "xyz").as_bytes(), &url, Arch::Amd64, None)
            .unwrap_err();
        assert!(err.contains("is not a sha256"), "{err}");
        let err = parse_fcos_stream(
            stream("https://x/prod/..%2f", &sha).as_bytes(),
            &url,
            Arch::Amd64,
            None,
        )
        .unwrap_err();
        assert!(err.contains("usable file name"), "{err}");
    }

    proptest! {
        #[test]
        fn metadata_parsers_never_panic(text in ".{0,200}") {
            let url = Url::parse("https://example.org/streams/stable.json").unwrap();
            let _ = parse_fcos_stream(text.as_bytes(), &url, Arch::Amd64, None);
            if let Ok(version) = parse_version_txt(&text, "FLATCAR_VERSION") {
                prop_assert!(Id::new(version.as_str()).is_ok());
            }
        }

        #[test]
        fn stream_json_with_arbitrary_locations_never_escapes(location in "[ -~]{0,60}") {
            let url = Url::parse("https://example.org/streams/stable.json").unwrap();
            let json = stream(&location.replace(['"', '\\'], ""), &"0".repeat(64));
            if let Ok((_, files)) = parse_fcos_stream(json.as_bytes(), &url, Arch::Amd64, None) {
                for file in files {
                    prop_assert!(!file.name.as_str().contains('/'));
                    prop_assert!(!file.name.as_str().starts_with('.'));
                }
            }
        }
    }
}
