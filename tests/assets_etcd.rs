//! `caas assets fetch etcd` against a local mirror (tiny_http on 127.0.0.1) serving an upstream-
//! shaped release: `etcd-<version>-linux-amd64.tar.gz` holding Debian's real etcd binary, and
//! the release's `SHA256SUMS`. Then the etcd roles render from what was published.
//!
//! Failure cases check the assets contract: exit code 1, one stderr line with the reason, and
//! nothing under `etcd/<version>` or `etcd/current`.

mod assets_support;
mod common;

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::sync::OnceLock;

use assert_cmd::Command;
use sha2::{Digest as _, Sha256};

use assets_support::server::Server;
use caas::assets::manifest::{Manifest, Product, Role};
use common::{assert_one_line_error, caas_in, ignition_validate_all, tree_state};
use serde_json::Value;

/// The version of Debian's etcd-server package, whose binary the mirror serves.
const VERSION: &str = "v3.4.23";
const ARCHIVE: &str = "etcd-v3.4.23-linux-amd64.tar.gz";
/// Debian's etcd (package etcd-server): what the virtual rack publishes too.
const ETCD: &str = "/usr/bin/etcd";

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn etcd_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        fs::read(ETCD).unwrap_or_else(|err| {
            panic!("{ETCD}: {err} (scripts/install-test-deps.sh installs etcd-server)")
        })
    })
}

const ETCDCTL: &[u8] = b"#!/bin/sh\necho etcdctl stand-in\n";

/// The release archive as etcd-io publishes it: `etcd-<version>-linux-amd64/{etcd,etcdctl,…}`.
fn archive() -> &'static [u8] {
    static ARCHIVE_BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    ARCHIVE_BYTES.get_or_init(|| {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        let top = format!("etcd-{VERSION}-linux-amd64");
        for (name, bytes, mode) in [
            ("README.md", &b"# etcd\n"[..], 0o644),
            ("etcd", etcd_bytes(), 0o755),
            ("etcdctl", ETCDCTL, 0o755),
            ("Documentation/etcd", &b"not the binary"[..], 0o644),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(mode);
            header.set_cksum();
            tar.append_data(&mut header, format!("{top}/{name}"), bytes)
                .unwrap();
        }
        let mut gz = tar.into_inner().unwrap();
        gz.flush().unwrap();
        gz.finish().unwrap()
    })
}

/// A data dir and a mirror of the etcd release at `/etcd/<version>/`.
struct Lab {
    dir: tempfile::TempDir,
    server: Server,
}

impl Lab {
    fn new() -> Lab {
        let lab = Lab {
            dir: tempfile::tempdir().unwrap(),
            server: Server::start(),
        };
        lab.server
            .put(&format!("/etcd/{VERSION}/{ARCHIVE}"), archive().to_vec());
        lab
    }

    fn sums(&self, sha256: &str) {
        // The real file lists every artifact of the release; only one line is ours.
        let text = format!(
            "{}  etcd-{VERSION}-darwin-amd64.zip\n{sha256}  {ARCHIVE}\n{}  etcd-{VERSION}-linux-arm64.tar.gz\n",
            "1".repeat(64),
            "2".repeat(64)
        );
        self.server
            .put(&format!("/etcd/{VERSION}/SHA256SUMS"), text.into_bytes());
    }

    fn fetch(&self) -> Command {
        let mut cmd = caas_in(self.dir.path());
        cmd.args(["assets", "fetch", "etcd", "--version", VERSION])
            .args(["--base-url", &self.server.url(&format!("/etcd/{VERSION}/"))])
            .args(["--retries", "0"]);
        cmd
    }

    fn release(&self) -> PathBuf {
        self.dir.path().join("assets/etcd").join(VERSION)
    }

    fn etcd_dir(&self) -> PathBuf {
        self.dir.path().join("assets/etcd")
    }
}

#[test]
fn a_release_checked_against_sha256sums_is_published_and_a_rerun_reads_only_the_sums() {
    let lab = Lab::new();
    lab.sums(&sha256(archive()));
    let out = lab.fetch().assert().success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        stdout.contains(&format!("published etcd {VERSION}")),
        "{stdout}"
    );

    // etcd and etcdctl, executable, byte for byte; the archive itself is not served.
    let release = lab.release();
    let mut names: Vec<String> = fs::read_dir(&release)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["caas-assets.json", "etcd", "etcdctl"]);
    assert_eq!(fs::read(release.join("etcd")).unwrap(), etcd_bytes());
    assert_eq!(fs::read(release.join("etcdctl")).unwrap(), ETCDCTL);
    for name in ["etcd", "etcdctl"] {
        let mode = fs::metadata(release.join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755, "{name}");
    }
    let version = StdCommand::new(release.join("etcd"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&version.stdout).contains("3.4.23"),
        "the published etcd runs"
    );
    assert_eq!(
        fs::read_link(lab.etcd_dir().join("current")).unwrap(),
        Path::new(VERSION)
    );

    let manifest = Manifest::read(&release).unwrap().unwrap();
    assert_eq!(manifest.os, Product::Etcd);
    assert_eq!(manifest.version.as_str(), VERSION);
    let etcd = manifest.file_entry(Role::Etcd).unwrap();
    assert_eq!(etcd.sha256.as_deref(), Some(sha256(etcd_bytes()).as_str()));
    assert_eq!(etcd.size, Some(etcd_bytes().len() as u64));
    let archive_record = manifest.archive.as_ref().unwrap();
    assert_eq!(archive_record.name, ARCHIVE);
    assert_eq!(archive_record.sha256, sha256(archive()));
    assert_eq!(
        archive_record.checked_against.as_deref(),
        Some("SHA256SUMS")
    );
    // Nothing is left in the staging area but the lock.
    let partial: Vec<_> = fs::read_dir(lab.etcd_dir().join(".partial"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(partial, [".lock"]);

    // A rerun reads SHA256SUMS only, and changes nothing.
    let before = tree_state(lab.dir.path());
    let out = lab.fetch().assert().success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("already published"), "{stdout}");
    assert_eq!(tree_state(lab.dir.path()), before);
    assert_eq!(
        lab.server.hits(&format!("/etcd/{VERSION}/{ARCHIVE}")).len(),
        1,
        "the archive is downloaded once"
    );

    // verify and list know etcd releases.
    let out = caas_in(lab.dir.path())
        .args(["assets", "verify"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        stdout.contains(&format!("ok etcd {VERSION} etcd: sha256 ")),
        "{stdout}"
    );
    let out = caas_in(lab.dir.path())
        .args(["assets", "list", "--format", "json"])
        .assert()
        .success();
    let list: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(list["releases"][0]["os"], "etcd");
    assert_eq!(list["releases"][0]["current"], true);
    let out = caas_in(lab.dir.path())
        .args(["assets", "list"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        stdout.contains(&format!("etcd {VERSION} (current)")) && stdout.contains("SHA256SUMS"),
        "{stdout}"
    );

    // A published binary that changed fails verification.
    fs::write(release.join("etcdctl"), b"tampered").unwrap();
    let out = caas_in(lab.dir.path())
        .args(["assets", "verify"])
        .assert()
        .code(1);
    assert_one_line_error(&out.get_output().stderr, "etcdctl");
}

#[test]
fn an_archive_that_does_not_match_sha256sums_publishes_nothing() {
    let lab = Lab::new();
    lab.sums(&"ab".repeat(32));
    let out = lab.fetch().assert().code(1);
    assert_one_line_error(&out.get_output().stderr, "sha256 mismatch");
    assert!(!lab.release().exists());
    assert!(fs::symlink_metadata(lab.etcd_dir().join("current")).is_err());
    // Neither is a release SHA256SUMS does not list.
    lab.server.put(
        &format!("/etcd/{VERSION}/SHA256SUMS"),
        format!("{}  other.tar.gz\n", "1".repeat(64)).into_bytes(),
    );
    let out = lab.fetch().assert().code(1);
    assert_one_line_error(&out.get_output().stderr, "lists no sha256");
    assert!(!lab.release().exists());
}

#[test]
fn a_pinned_sha256_replaces_sha256sums() {
    let lab = Lab::new();
    // No SHA256SUMS on this mirror: the pin is all there is.
    let out = lab
        .fetch()
        .args(["--sha256", &"cd".repeat(32)])
        .assert()
        .code(1);
    assert_one_line_error(&out.get_output().stderr, "--sha256 pins");
    assert!(!lab.release().exists());

    lab.fetch()
        .args(["--sha256", &sha256(archive()).to_uppercase()])
        .assert()
        .success();
    let manifest = Manifest::read(&lab.release()).unwrap().unwrap();
    assert_eq!(
        manifest.archive.unwrap().checked_against.as_deref(),
        Some("pinned")
    );
    assert!(
        lab.server
            .hits(&format!("/etcd/{VERSION}/SHA256SUMS"))
            .is_empty()
    );
    // Pinned and published: a rerun asks the mirror nothing.
    let hits = lab.server.paths().len();
    lab.fetch()
        .args(["--sha256", &sha256(archive())])
        .assert()
        .success();
    assert_eq!(lab.server.paths().len(), hits);

    let out = caas_in(lab.dir.path())
        .args([
            "assets",
            "fetch",
            "etcd",
            "--version",
            "3.5",
            "--sha256",
            "00",
        ])
        .assert()
        .code(2);
    assert_one_line_error(&out.get_output().stderr, "3.5");
}

/// The etcd roles of a Flatcar lab and of a Fedora CoreOS lab, rendered from one published etcd
/// release: every config passes `ignition-validate`, and the etcd units and the binary they
/// run are the same on both OSes.
#[test]
fn both_oses_get_the_same_etcd_units_from_the_published_release() {
    let lab = Lab::new();
    lab.sums(&sha256(archive()));
    lab.fetch().assert().success();
    let work = tempfile::tempdir().unwrap();
    let spec = |os: &str, version: &str| {
        format!(
            "name: etcd-lab\nos: {os}\nversion: {version}\nmatchbox_url: http://10.0.0.1:8080\n\
             default: null\nmachines:\n\
             \x20 - {{name: n1, mac: \"52:54:00:00:00:01\", role: etcd-member, ip: 10.0.0.11}}\n\
             \x20 - {{name: n2, mac: \"52:54:00:00:00:02\", role: etcd-member, ip: 10.0.0.12}}\n\
             \x20 - {{name: n3, mac: \"52:54:00:00:00:03\", role: etcd-member, ip: 10.0.0.13}}\n\
             \x20 - {{name: w1, mac: \"52:54:00:00:00:04\", role: etcd-gateway}}\n"
        )
    };
    let mut configs = Vec::new();
    for (os, version) in [
        ("flatcar", "4081.2.0"),
        ("fedora-coreos", "42.20250410.3.1"),
    ] {
        let path = work.path().join(format!("{os}.yaml"));
        fs::write(&path, spec(os, version)).unwrap();
        caas_in(lab.dir.path())
            .args(["-q", "gen", "cluster", "-f"])
            .arg(&path)
            .assert()
            .success();
        let read = |id: &str| -> Value {
            serde_json::from_slice(
                &fs::read(lab.dir.path().join(format!("ignition/{id}.ign"))).unwrap(),
            )
            .unwrap()
        };
        assert_eq!(ignition_validate_all(lab.dir.path()), 4, "{os}");
        configs.push((read("n2"), read("w1")));
    }
    let (flatcar, fcos) = (&configs[0], &configs[1]);
    assert_eq!(
        flatcar, fcos,
        "the same etcd configs on Flatcar and Fedora CoreOS"
    );

    let (member, gateway) = flatcar;
    let unit = &member["systemd"]["units"][0];
    assert_eq!(unit["name"], "caas-etcd-member.service");
    assert_eq!(unit["enabled"], true);
    assert!(unit.get("dropins").is_none(), "a whole unit, not a drop-in");
    let contents = unit["contents"].as_str().unwrap();
    for line in [
        "ExecStart=/opt/caas/bin/etcd",
        "Environment=\"ETCD_NAME=n2\"",
        "Environment=\"ETCD_INITIAL_CLUSTER=n1=http://10.0.0.11:2380,n2=http://10.0.0.12:2380,n3=http://10.0.0.13:2380\"",
        "Environment=\"ETCD_INITIAL_CLUSTER_TOKEN=etcd-lab\"",
        "After=network-online.target",
        "Restart=always",
        "WantedBy=multi-user.target",
    ] {
        assert!(contents.lines().any(|l| l == line), "{line} in {contents}");
    }
    let file = &member["storage"]["files"][0];
    assert_eq!(file["path"], "/opt/caas/bin/etcd");
    assert_eq!(file["mode"], 0o755);
    assert_eq!(
        file["contents"]["source"],
        format!("http://10.0.0.1:8080/assets/etcd/{VERSION}/etcd")
    );
    assert_eq!(
        file["contents"]["verification"]["hash"],
        format!("sha256-{}", sha256(etcd_bytes()))
    );
    let gateway_unit = &gateway["systemd"]["units"][0];
    assert_eq!(gateway_unit["name"], "caas-etcd-gateway.service");
    let contents = gateway_unit["contents"].as_str().unwrap();
    assert!(
        contents.contains(
            "Environment=\"CAAS_ETCD_ENDPOINTS=10.0.0.11:2379,10.0.0.12:2379,10.0.0.13:2379\""
        ),
        "{contents}"
    );
    assert_eq!(gateway["storage"], member["storage"]);
}

#[test]
fn the_etcd_roles_need_a_published_release() {
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("lab.yaml");
    fs::write(
        &path,
        "os: flatcar\nmatchbox_url: http://m:8080\netcd_version: v3.5.21\nmachines:\n\
         \x20 - {name: n1, mac: \"52:54:00:00:00:01\", role: etcd-member, ip: 10.0.0.11}\n",
    )
    .unwrap();
    let out = caas_in(dir.path())
        .args(["gen", "cluster", "-f"])
        .arg(&path)
        .assert()
        .code(2);
    assert_one_line_error(
        &out.get_output().stderr,
        "caas assets fetch etcd --version v3.5.21",
    );
    assert!(tree_state(dir.path()).is_empty());
}
