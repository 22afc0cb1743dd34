//! `caas assets fetch|verify|list` against a local release server (tiny_http on 127.0.0.1)
//! serving fake release trees of each OS, signed with keys generated for the run.
//!
//! Every failure case checks the same contract: exit code 1, one stderr line naming the file
//! and the reason, and nothing new under the published path (`<os>/<version>`, `current`).

mod assets_support;
mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use sha2::{Digest as _, Sha256};

use assets_support::pgp::{Keys, Signer};
use assets_support::server::{Hit, Server};
use caas::assets::manifest::{Manifest, Role};
use caas::assets::pgp::{Keyring, verify_detached};
use common::small_disk::SmallDisk;
use common::{assert_one_line_error, caas, caas_in, static_caas};

const VERSION: &str = "4081.2.0";
const KERNEL: &str = "flatcar_production_pxe.vmlinuz";
const INITRD: &str = "flatcar_production_pxe_image.cpio.gz";

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(Keys::generate)
}

/// Deterministic bytes that differ per seed; a few hundred KiB, so downloads take several reads.
fn payload(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A data dir, a release server, and the test keyring on disk.
struct Lab {
    dir: tempfile::TempDir,
    server: Server,
    keyring: PathBuf,
}

impl Lab {
    fn new() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let keyring = dir.path().join("test-keyring.asc");
        fs::write(&keyring, keys().keyring()).unwrap();
        Lab {
            dir,
            server: Server::start(),
            keyring,
        }
    }

    fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    fn assets(&self) -> PathBuf {
        self.dir.path().join("assets")
    }

    /// `caas --data-dir <lab> assets fetch <os> --base-url <server> --keyring <test keys>`,
    /// retrying after 1 ms instead of 1 s.
    fn fetch(&self, os: &str, base_path: &str) -> Command {
        let mut cmd = caas_in(self.data_dir());
        cmd.args(["assets", "fetch", os, "--base-url"])
            .arg(self.server.url(base_path))
            .arg("--keyring")
            .arg(&self.keyring)
            .args(["--retry-delay-ms", "1"]);
        cmd
    }

    fn flatcar(&self) -> Command {
        self.fetch("flatcar", "/flatcar")
    }

    fn release_dir(&self, os: &str, version: &str) -> PathBuf {
        self.assets().join(os).join(version)
    }

    fn part(&self, file: &str) -> PathBuf {
        self.assets()
            .join("flatcar/.partial")
            .join(VERSION)
            .join(format!("{file}.part"))
    }

    /// What a server would read: everything under assets/ except the `.partial` staging area,
    /// with bytes (or a link's target) and mtimes (directories: only that they exist, since
    /// creating `.partial` touches its parent's mtime).
    fn published(&self) -> BTreeMap<PathBuf, (Vec<u8>, std::time::SystemTime)> {
        let mut state = BTreeMap::new();
        let root = self.assets();
        if !root.exists() {
            return state;
        }
        let mut stack = vec![root];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.file_name().unwrap() == ".partial" {
                    continue;
                }
                let meta = fs::symlink_metadata(&path).unwrap();
                let mut mtime = meta.modified().unwrap();
                let bytes = if meta.file_type().is_symlink() {
                    fs::read_link(&path)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes()
                } else if meta.is_dir() {
                    stack.push(path.clone());
                    let only_staging = fs::read_dir(&path)
                        .unwrap()
                        .all(|e| e.unwrap().file_name() == ".partial");
                    if only_staging {
                        // Made to hold `.partial`: nothing a server would serve.
                        continue;
                    }
                    mtime = std::time::UNIX_EPOCH;
                    b"<dir>".to_vec()
                } else {
                    fs::read(&path).unwrap()
                };
                state.insert(path, (bytes, mtime));
            }
        }
        state
    }

    /// Publishes a hand-made older release and points `current` at it, so failure tests can
    /// show that neither is touched.
    fn publish_older_release(&self) {
        let dir = self.release_dir("flatcar", "3975.2.2");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(KERNEL), b"old kernel").unwrap();
        fs::write(dir.join(INITRD), b"old initrd").unwrap();
        fs::write(
            dir.join("caas-assets.json"),
            r#"{"os": "flatcar", "version": "3975.2.2", "files": [
                {"role": "kernel", "name": "flatcar_production_pxe.vmlinuz"},
                {"role": "initrd", "name": "flatcar_production_pxe_image.cpio.gz"}]}"#,
        )
        .unwrap();
        std::os::unix::fs::symlink("3975.2.2", self.assets().join("flatcar/current")).unwrap();
    }
}

fn flatcar_path(file: &str) -> String {
    format!("/flatcar/amd64-usr/{VERSION}/{file}")
}

/// The bytes of a served Flatcar release.
struct Flatcar {
    kernel: Vec<u8>,
    initrd: Vec<u8>,
}

/// Serves a Flatcar release under /flatcar: `current/version.txt`, both PXE files and their
/// signatures by the given signers.
fn serve_flatcar(server: &Server, kernel_signer: Signer, initrd_signer: Signer) -> Flatcar {
    let release = Flatcar {
        kernel: payload(1, 700_000),
        initrd: payload(2, 1_300_000),
    };
    server.put(
        "/flatcar/amd64-usr/current/version.txt",
        format!(
            "FLATCAR_BUILD=4081\nFLATCAR_BRANCH=2\nFLATCAR_PATCH=0\nFLATCAR_VERSION={VERSION}\n\
             FLATCAR_VERSION_ID={VERSION}\nFLATCAR_BUILD_ID=\"2024-08-10-0042\"\n"
        )
        .into_bytes(),
    );
    server.put(&flatcar_path(KERNEL), release.kernel.clone());
    server.put(
        &flatcar_path(&format!("{KERNEL}.sig")),
        keys().sign(kernel_signer, &release.kernel),
    );
    server.put(&flatcar_path(INITRD), release.initrd.clone());
    server.put(
        &flatcar_path(&format!("{INITRD}.sig")),
        keys().sign(initrd_signer, &release.initrd),
    );
    release
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs a fetch that must fail closed: exit 1, one stderr line with every needle, and the
/// published tree exactly as before.
fn assert_fails_closed(lab: &Lab, cmd: &mut Command, needles: &[&str]) -> Output {
    let before = lab.published();
    let output = cmd.output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout: {}\nstderr: {}",
        stdout(&output),
        stderr(&output)
    );
    for needle in needles {
        assert_one_line_error(&output.stderr, needle);
    }
    assert_eq!(lab.published(), before, "the published tree changed");
    output
}

/// The same for runs with the embedded production keys, whose expiry warnings depend on the
/// date: `warning:` lines may precede the one error line.
fn assert_fails_closed_with_real_keys(lab: &Lab, cmd: &mut Command, needles: &[&str]) {
    let before = lab.published();
    let output = cmd.output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stderr(&output);
    let (last, rest) = text
        .lines()
        .collect::<Vec<_>>()
        .split_last()
        .map(|(l, r)| (l.to_string(), r.to_vec()))
        .unwrap();
    assert!(
        rest.iter().all(|line| line.starts_with("warning: ")),
        "{text}"
    );
    assert!(last.starts_with("error: "), "{text}");
    for needle in needles {
        assert!(last.contains(needle), "{last:?} must contain {needle:?}");
    }
    assert_eq!(lab.published(), before, "the published tree changed");
}

fn read_manifest(dir: &Path) -> Manifest {
    Manifest::read(dir).unwrap().expect("a manifest")
}

fn sqv_accepts(keyring: &Path, signature: &Path, data: &Path) -> bool {
    let output = StdCommand::new("sqv")
        .arg("--keyring")
        .arg(keyring)
        .arg(signature)
        .arg(data)
        .output()
        .expect("sqv runs (scripts/install-test-deps.sh installs it)");
    output.status.success()
}

#[test]
fn flatcar_fetch_verifies_publishes_and_a_rerun_only_reads_metadata() {
    let lab = Lab::new();
    let release = serve_flatcar(&lab.server, Signer::Good, Signer::Good);
    // The release servers now redirect to a CDN: serve the files from elsewhere.
    for (file, bytes) in [(KERNEL, &release.kernel), (INITRD, &release.initrd)] {
        let cdn = format!("/cdn/stable/amd64-usr/{VERSION}/{file}");
        lab.server.put(&cdn, bytes.clone());
        lab.server
            .redirect(&flatcar_path(file), &lab.server.url(&cdn));
    }

    let output = lab.flatcar().output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stderr(&output), "", "no warning with the test keys");
    let text = stdout(&output);
    assert!(
        text.contains(&format!("flatcar {VERSION} (stable, amd64)")),
        "{text}"
    );
    assert!(text.contains("published flatcar"), "{text}");

    let dir = lab.release_dir("flatcar", VERSION);
    assert_eq!(fs::read(dir.join(KERNEL)).unwrap(), release.kernel);
    assert_eq!(fs::read(dir.join(INITRD)).unwrap(), release.initrd);
    let current = lab.assets().join("flatcar/current");
    assert_eq!(fs::read_link(&current).unwrap(), Path::new(VERSION));
    let partial: Vec<_> = fs::read_dir(lab.assets().join("flatcar/.partial"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(partial, [".lock"], "nothing left in the staging area");

    let manifest = read_manifest(&dir);
    assert_eq!(manifest.version.as_str(), VERSION);
    assert_eq!(manifest.channel.as_deref(), Some("stable"));
    assert!(manifest.verified_at.is_some());
    assert!(!manifest.insecure_skip_signature);
    let kernel = &manifest.files[0];
    assert_eq!((kernel.role, kernel.name.as_str()), (Role::Kernel, KERNEL));
    assert_eq!(
        kernel.sha256.as_deref(),
        Some(sha256(&release.kernel).as_str())
    );
    assert_eq!(kernel.size, Some(release.kernel.len() as u64));
    assert_eq!(
        kernel.pinned_key.as_deref(),
        Some(keys().pinned.fingerprint().to_hex().as_str())
    );
    assert_ne!(kernel.signing_key, kernel.pinned_key, "a subkey signed");
    assert_eq!(manifest.files[1].role, Role::Initrd);

    // The independent oracle agrees on what was published.
    for file in [KERNEL, INITRD] {
        assert!(sqv_accepts(
            &lab.keyring,
            &dir.join(format!("{file}.sig")),
            &dir.join(file)
        ));
    }

    // gen profile takes the published release.
    caas_in(lab.data_dir())
        .args(["gen", "profile", "--id", "fc", "--os", "flatcar"])
        .args(["--matchbox-url", "http://matchbox.lab:8080"])
        .assert()
        .success();
    let profile = fs::read_to_string(lab.data_dir().join("profiles/fc.json")).unwrap();
    assert!(
        profile.contains(&format!("/assets/flatcar/{VERSION}/{KERNEL}")),
        "{profile}"
    );

    // A rerun fetches version.txt and nothing else, and changes nothing.
    let before = lab.published();
    let hits_before = lab.server.paths().len();
    let output = lab.flatcar().output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("already published"),
        "{}",
        stdout(&output)
    );
    assert_eq!(
        lab.server.paths()[hits_before..],
        ["/flatcar/amd64-usr/current/version.txt"]
    );
    assert_eq!(lab.published(), before);

    // Offline re-verification, and the listing.
    let output = caas_in(lab.data_dir())
        .args(["assets", "verify", "--keyring"])
        .arg(&lab.keyring)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert_eq!(
        text.lines().filter(|l| l.starts_with("ok flatcar")).count(),
        2,
        "{text}"
    );
    let output = caas_in(lab.data_dir())
        .args(["assets", "list", "--format", "json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let listed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let releases = listed["releases"].as_array().unwrap();
    assert_eq!(releases.len(), 1);
    assert_eq!(releases[0]["current"], true);
    assert_eq!(releases[0]["version"], VERSION);
    assert_eq!(releases[0]["files"][0]["name"], KERNEL);
    assert!(releases[0]["verified_at"].is_string());
    let output = caas_in(lab.data_dir())
        .args(["assets", "list"])
        .output()
        .unwrap();
    let text = stdout(&output);
    assert!(
        text.contains(&format!("flatcar {VERSION} (current)")),
        "{text}"
    );
    assert!(text.contains("kernel"), "{text}");
}

#[test]
fn the_pxe_kernel_falls_back_to_the_image_kernel_signature() {
    let lab = Lab::new();
    let release = serve_flatcar(&lab.server, Signer::Good, Signer::Good);
    let own = flatcar_path(&format!("{KERNEL}.sig"));
    lab.server.remove(&own);
    lab.server.put(
        &flatcar_path("flatcar_production_image.vmlinuz.sig"),
        keys().sign(Signer::Good, &release.kernel),
    );
    let output = lab.flatcar().output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("no signature of its own; using"),
        "{}",
        stdout(&output)
    );
    let manifest = read_manifest(&lab.release_dir("flatcar", VERSION));
    assert!(
        manifest.files[0]
            .signature_url
            .as_deref()
            .unwrap()
            .ends_with("flatcar_production_image.vmlinuz.sig")
    );
    assert_eq!(lab.server.hits(&own)[0].status, 404);
}

#[test]
fn a_tampered_kernel_is_refused_and_nothing_is_published() {
    let lab = Lab::new();
    lab.publish_older_release();
    let mut release = serve_flatcar(&lab.server, Signer::Good, Signer::Good);
    release.kernel[123_456] ^= 1;
    lab.server.put(&flatcar_path(KERNEL), release.kernel);
    assert_fails_closed(
        &lab,
        &mut lab.flatcar(),
        &[KERNEL, "bad signature", "vmlinuz.sig"],
    );
    assert!(!lab.part(KERNEL).exists(), "a refused download is deleted");
    assert_eq!(
        fs::read_link(lab.assets().join("flatcar/current")).unwrap(),
        Path::new("3975.2.2")
    );
}

#[test]
fn a_tampered_initrd_is_refused() {
    let lab = Lab::new();
    let mut release = serve_flatcar(&lab.server, Signer::Good, Signer::Good);
    release.initrd.truncate(1_000_000);
    lab.server.put(&flatcar_path(INITRD), release.initrd);
    assert_fails_closed(&lab, &mut lab.flatcar(), &[INITRD, "bad signature"]);
    assert!(!lab.release_dir("flatcar", VERSION).exists());
}

#[test]
fn a_signature_by_a_revoked_subkey_is_refused() {
    let lab = Lab::new();
    lab.publish_older_release();
    serve_flatcar(&lab.server, Signer::Revoked, Signer::Good);
    assert_fails_closed(
        &lab,
        &mut lab.flatcar(),
        &[
            KERNEL,
            "revoked or expired key",
            "is revoked (key material has been compromised)",
        ],
    );
}

#[test]
fn a_signature_by_a_subkey_expired_when_it_signed_is_refused() {
    let lab = Lab::new();
    serve_flatcar(&lab.server, Signer::Good, Signer::Expired);
    assert_fails_closed(
        &lab,
        &mut lab.flatcar(),
        &[
            INITRD,
            "revoked or expired key",
            "before the signature was made",
        ],
    );
}

#[test]
fn a_signature_by_an_unknown_key_is_refused() {
    let lab = Lab::new();
    serve_flatcar(&lab.server, Signer::Unknown, Signer::Good);
    let pinned = keys().pinned.fingerprint().to_hex();
    assert_fails_closed(&lab, &mut lab.flatcar(), &[KERNEL, "unknown key", &pinned]);
}

#[test]
fn the_embedded_keys_refuse_the_test_signatures() {
    // Without --keyring the pinned Flatcar key applies, which never signed these files.
    let lab = Lab::new();
    serve_flatcar(&lab.server, Signer::Good, Signer::Good);
    let mut cmd = caas_in(lab.data_dir());
    cmd.args(["assets", "fetch", "flatcar", "--retries", "0", "--base-url"])
        .arg(lab.server.url("/flatcar"));
    assert_fails_closed_with_real_keys(
        &lab,
        &mut cmd,
        &["unknown key", "F88CFEDEFF29A5B4D9523864E25D9AED0593B34A"],
    );
}

#[test]
fn a_missing_signature_is_a_failure() {
    let lab = Lab::new();
    serve_flatcar(&lab.server, Signer::Good, Signer::Good);
    lab.server.remove(&flatcar_path(&format!("{INITRD}.sig")));
    assert_fails_closed(
        &lab,
        &mut lab.flatcar(),
        &[INITRD, "no signature", "HTTP 404"],
    );
}

#[test]
fn a_missing_file_is_a_failure() {
    let lab = Lab::new();
    lab.publish_older_release();
    serve_flatcar(&lab.server, Signer::Good, Signer::Good);
    lab.server.remove(&flatcar_path(KERNEL));
    assert_fails_closed(&lab, &mut lab.flatcar(), &[KERNEL, "answered HTTP 404"]);
}

#[test]
fn server_errors_are_retried_with_backoff() {
    let lab = Lab::new();
    let release = serve_flatcar(&lab.server, Signer::Good, Signer::Good);
    lab.server.fail(&flatcar_path(KERNEL), 503, 2);
    lab.server
        .fail("/flatcar/amd64-usr/current/version.txt", 500, 1);
    let output = lab
        .flatcar()
        .args(["--retries", "3", "--format", "json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let statuses: Vec<u16> = lab
        .server
        .hits(&flatcar_path(KERNEL))
        .iter()
        .map(|h| h.status)
        .collect();
    assert_eq!(statuses, [503, 503, 200]);
    let events: Vec<serde_json::Value> = stdout(&output)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON event per line"))
        .collect();
    let retries: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "retrying" && e["file"] == KERNEL)
        .map(|e| e["delay_ms"].as_u64().unwrap())
        .collect();
    assert_eq!(retries, [1, 2], "exponential backoff");
    for kind in ["resolved", "verified", "published", "current"] {
        assert!(events.iter().any(|e| e["event"] == kind), "no {kind} event");
    }
    assert_eq!(
        fs::read(lab.release_dir("flatcar", VERSION).join(KERNEL)).unwrap(),
        release.kernel
    );

    // Without retries the same fault is final.
    let lab = Lab::new();
    serve_flatcar(&lab.server, Signer::Good, Signer::Good);
    lab.server.fail(&flatcar_path(INITRD), 500, 1);
    assert_fails_closed(
        &lab,
        lab.flatcar().args(["--retries", "0"]),
        &[INITRD, "HTTP 500"],
    );
}

#[test]
fn a_download_killed_midway_resumes_with_a_range_request() {
    let lab = Lab::new();
    lab.publish_older_release();
    let release = serve_flatcar(&lab.server, Signer::Good, Signer::Good);
    let kernel_path = flatcar_path(KERNEL);
    lab.server.stall_after(&kernel_path, 300_000);
    let before = lab.published();

    let mut child = StdCommand::new(env!("CARGO_BIN_EXE_caas"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CAAS_") {
            child.env_remove(key);
        }
    }
    let mut child = child
        .arg("--data-dir")
        .arg(lab.data_dir())
        .args(["assets", "fetch", "flatcar", "--base-url"])
        .arg(lab.server.url("/flatcar"))
        .arg("--keyring")
        .arg(&lab.keyring)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while fs::metadata(lab.part(KERNEL)).map_or(0, |m| m.len()) < 300_000 {
        assert!(
            Instant::now() < deadline,
            "the partial download never arrived"
        );
        assert!(child.try_wait().unwrap().is_none(), "caas exited early");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(lab.published(), before, "a killed fetch publishes nothing");
    assert_eq!(
        fs::read(lab.part(KERNEL)).unwrap(),
        release.kernel[..300_000]
    );

    let output = lab.flatcar().output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let hits = lab.server.hits(&kernel_path);
    assert_eq!(
        hits.last().unwrap(),
        &Hit {
            path: kernel_path.clone(),
            range: Some("bytes=300000-".into()),
            status: 206
        }
    );
    assert!(stdout(&output).contains("resuming at byte 300000"));
    assert_eq!(
        fs::read(lab.release_dir("flatcar", VERSION).join(KERNEL)).unwrap(),
        release.kernel
    );
}

#[test]
fn a_stalled_connection_is_retried_and_resumed_in_the_same_run() {
    let lab = Lab::new();
    let release = serve_flatcar(&lab.server, Signer::Good, Signer::Good);
    let initrd_path = flatcar_path(INITRD);
    lab.server.stall_after(&initrd_path, 500_000);
    let output = lab
        .flatcar()
        .args(["--retries", "2", "--read-timeout-ms", "500"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let ranges: Vec<_> = lab
        .server
        .hits(&initrd_path)
        .into_iter()
        .map(|h| (h.range, h.status))
        .collect();
    assert_eq!(ranges, [(None, 200), (Some("bytes=500000-".into()), 206)]);
    assert_eq!(
        fs::read(lab.release_dir("flatcar", VERSION).join(INITRD)).unwrap(),
        release.initrd
    );
}

#[test]
fn a_server_that_ignores_range_gets_the_whole_file_again() {
    let lab = Lab::new();
    let release = serve_flatcar(&lab.server, Signer::Good, Signer::Good);
    fs::create_dir_all(lab.part(KERNEL).parent().unwrap()).unwrap();
    fs::write(lab.part(KERNEL), &release.kernel[..100_000]).unwrap();
    lab.server.ignore_range(&flatcar_path(KERNEL));
    let output = lab.flatcar().output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        lab.server.hits(&flatcar_path(KERNEL)),
        [Hit {
            path: flatcar_path(KERNEL),
            range: Some("bytes=100000-".into()),
            status: 200
        }]
    );
    assert!(stdout(&output).contains("starting over: the server ignored the range request"));
    assert_eq!(
        fs::read(lab.release_dir("flatcar", VERSION).join(KERNEL)).unwrap(),
        release.kernel
    );
}

#[test]
fn a_complete_partial_download_is_answered_416_and_reused() {
    let lab = Lab::new();
    let release = serve_flatcar(&lab.server, Signer::Good, Signer::Good);
    fs::create_dir_all(lab.part(INITRD).parent().unwrap()).unwrap();
    fs::write(lab.part(INITRD), &release.initrd).unwrap();
    let output = lab.flatcar().output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let hits = lab.server.hits(&flatcar_path(INITRD));
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].status, 416);
}

#[test]
fn a_resumed_download_that_fails_verification_starts_over_once() {
    // Bytes left by an earlier run that do not belong to this file: the resumed file fails
    // its signature, so caas downloads it whole once more instead of failing for ever.
    let lab = Lab::new();
    let release = serve_flatcar(&lab.server, Signer::Good, Signer::Good);
    fs::create_dir_all(lab.part(KERNEL).parent().unwrap()).unwrap();
    fs::write(lab.part(KERNEL), vec![0xff; 100_000]).unwrap();
    let output = lab.flatcar().output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let ranges: Vec<_> = lab
        .server
        .hits(&flatcar_path(KERNEL))
        .into_iter()
        .map(|h| (h.range, h.status))
        .collect();
    assert_eq!(ranges, [(Some("bytes=100000-".into()), 206), (None, 200)]);
    assert_eq!(
        fs::read(lab.release_dir("flatcar", VERSION).join(KERNEL)).unwrap(),
        release.kernel
    );
}

/// Serves a Fedora CoreOS stream under /fcos whose artifact URLs name the official server
/// (as real metadata does); `--base-url` moves them to the mirror.
fn serve_fcos(server: &Server, initramfs_sha256: Option<&str>, sign_rootfs: bool) -> [Vec<u8>; 3] {
    let version = "43.20261101.3.0";
    let files = [
        (
            format!("fedora-coreos-{version}-live-kernel.x86_64"),
            payload(11, 400_000),
        ),
        (
            format!("fedora-coreos-{version}-live-initramfs.x86_64.img"),
            payload(12, 900_000),
        ),
        (
            format!("fedora-coreos-{version}-live-rootfs.x86_64.img"),
            payload(13, 1_100_000),
        ),
    ];
    let build = format!("prod/streams/stable/builds/{version}/x86_64");
    let mut pxe = serde_json::Map::new();
    for ((name, bytes), key) in files.iter().zip(["kernel", "initramfs", "rootfs"]) {
        let location = format!("https://builds.coreos.fedoraproject.org/{build}/{name}");
        server.put(&format!("/fcos/{build}/{name}"), bytes.clone());
        let mut artifact = serde_json::json!({
            "location": location,
            "sha256": sha256(bytes),
        });
        if key != "rootfs" || sign_rootfs {
            server.put(
                &format!("/fcos/{build}/{name}.sig"),
                keys().sign(Signer::Good, bytes),
            );
            artifact["signature"] = format!("{location}.sig").into();
        }
        if key == "initramfs"
            && let Some(sha) = initramfs_sha256
        {
            artifact["sha256"] = sha.into();
        }
        pxe.insert(key.into(), artifact);
    }
    let stream = serde_json::json!({
        "stream": "stable",
        "metadata": {"last-modified": "2026-11-20T10:00:00Z", "generator": "test"},
        "architectures": {"x86_64": {"artifacts": {"metal": {
            "release": version,
            "formats": {"pxe": pxe, "raw.xz": {"disk": {"location": "x", "sha256": "00"}}}
        }}}}
    });
    server.put(
        "/fcos/streams/stable.json",
        serde_json::to_vec(&stream).unwrap(),
    );
    files.map(|(_, bytes)| bytes)
}

#[test]
fn fedora_coreos_takes_names_digests_and_signatures_from_the_stream() {
    let lab = Lab::new();
    let bytes = serve_fcos(&lab.server, None, true);
    let output = lab.fetch("fedora-coreos", "/fcos").output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let version = "43.20261101.3.0";
    let dir = lab.release_dir("fedora-coreos", version);
    let manifest = read_manifest(&dir);
    assert_eq!(manifest.channel.as_deref(), Some("stable"));
    let roles: Vec<_> = manifest.files.iter().map(|f| f.role).collect();
    assert_eq!(roles, [Role::Kernel, Role::Initrd, Role::Rootfs]);
    assert_eq!(
        manifest.files[0].name.as_str(),
        format!("fedora-coreos-{version}-live-kernel.x86_64")
    );
    for (file, bytes) in manifest.files.iter().zip(&bytes) {
        assert_eq!(fs::read(dir.join(file.name.as_str())).unwrap(), *bytes);
        assert!(dir.join(format!("{}.sig", file.name)).is_file());
    }
    assert!(
        manifest.files[0]
            .url
            .as_deref()
            .unwrap()
            .starts_with(&lab.server.url("/fcos/prod/"))
    );

    caas_in(lab.data_dir())
        .args(["gen", "profile", "--id", "fcos", "--os", "fedora-coreos"])
        .args(["--matchbox-url", "http://matchbox.lab:8080"])
        .assert()
        .success();
    let profile = fs::read_to_string(lab.data_dir().join("profiles/fcos.json")).unwrap();
    assert!(profile.contains("live-kernel.x86_64"), "{profile}");
    assert!(
        profile.contains("coreos.live.rootfs_url=http://matchbox.lab:8080/assets/fedora-coreos/"),
        "{profile}"
    );
}

#[test]
fn a_wrong_sha256_in_the_stream_metadata_is_refused() {
    let lab = Lab::new();
    serve_fcos(&lab.server, Some(&"0".repeat(64)), true);
    assert_fails_closed(
        &lab,
        &mut lab.fetch("fedora-coreos", "/fcos"),
        &[
            "live-initramfs.x86_64.img",
            "sha256 mismatch",
            &"0".repeat(64),
        ],
    );
    // The digest is checked even when signatures are skipped (after the loud warning).
    let before = lab.published();
    let output = lab
        .fetch("fedora-coreos", "/fcos")
        .arg("--insecure-skip-signature")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("warning: --insecure-skip-signature"),
        "{text}"
    );
    assert!(
        lines[1].contains("live-initramfs.x86_64.img: sha256 mismatch"),
        "{text}"
    );
    assert_eq!(lab.published(), before);
}

#[test]
fn a_stream_without_a_signature_url_is_refused() {
    let lab = Lab::new();
    serve_fcos(&lab.server, None, false);
    assert_fails_closed(
        &lab,
        &mut lab.fetch("fedora-coreos", "/fcos"),
        &["live-rootfs.x86_64.img", "no signature"],
    );
}

#[test]
fn container_linux_comes_from_a_mirror() {
    let lab = Lab::new();
    let version = "2512.3.0";
    let kernel = payload(21, 300_000);
    let initrd = payload(22, 600_000);
    for (name, bytes) in [
        ("coreos_production_pxe.vmlinuz", &kernel),
        ("coreos_production_pxe_image.cpio.gz", &initrd),
    ] {
        let path = format!("/mirror/coreos/amd64-usr/{version}/{name}");
        lab.server.put(&path, bytes.clone());
        lab.server
            .put(&format!("{path}.sig"), keys().sign(Signer::Good, bytes));
    }
    let output = lab
        .fetch("coreos", "/mirror/coreos")
        .args(["--version", version, "-q"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "", "-q prints nothing");
    assert_eq!(stderr(&output), "");

    // The historical key expired in 2021: expected, so no warning, just the refusal.
    let before = lab.published();
    let mut cmd = caas_in(lab.data_dir());
    cmd.args([
        "assets",
        "fetch",
        "coreos",
        "--version",
        "2512.3.0",
        "--base-url",
    ])
    .arg(lab.server.url("/mirror/coreos"));
    let output = cmd.output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_one_line_error(&output.stderr, "unknown key");
    assert_one_line_error(&output.stderr, "04127D0BFABEC8871FFB2CCE50E0885593D2DCB4");
    assert_eq!(lab.published(), before);
    let dir = lab.release_dir("coreos", version);
    assert_eq!(
        fs::read(dir.join("coreos_production_pxe.vmlinuz")).unwrap(),
        kernel
    );
    assert_eq!(
        read_manifest(&dir).os,
        caas::assets::manifest::Product::Coreos
    );
    assert!(
        lab.server
            .paths()
            .iter()
            .all(|p| !p.ends_with("version.txt")),
        "a named version needs no metadata"
    );
}

#[test]
fn insecure_skip_signature_warns_and_is_recorded() {
    let lab = Lab::new();
    serve_flatcar(&lab.server, Signer::Good, Signer::Good);
    for file in [KERNEL, INITRD] {
        lab.server.remove(&flatcar_path(&format!("{file}.sig")));
    }
    let output = lab
        .flatcar()
        .arg("--insecure-skip-signature")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("warning: --insecure-skip-signature"),
        "{}",
        stderr(&output)
    );
    let manifest = read_manifest(&lab.release_dir("flatcar", VERSION));
    assert!(manifest.insecure_skip_signature);
    assert!(manifest.files.iter().all(|f| f.signature.is_none()));

    // Asked again with signatures, the unsigned release is not taken as verified.
    assert_fails_closed(&lab, &mut lab.flatcar(), &["no signature"]);
}

#[test]
fn verify_finds_files_changed_after_publishing() {
    let lab = Lab::new();
    let release = serve_flatcar(&lab.server, Signer::Good, Signer::Good);
    lab.flatcar().assert().success();
    let dir = lab.release_dir("flatcar", VERSION);
    let verify = || {
        let mut cmd = caas_in(lab.data_dir());
        cmd.args(["assets", "verify", "--keyring"])
            .arg(&lab.keyring);
        cmd
    };

    let mut kernel = release.kernel.clone();
    kernel[10] ^= 0x40;
    fs::write(dir.join(KERNEL), &kernel).unwrap();
    let output = verify().arg(&dir).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_one_line_error(&output.stderr, "1 of 2 files failed verification");
    assert_one_line_error(&output.stderr, &format!("{KERNEL}: sha256 mismatch"));
    assert!(stdout(&output).contains(&format!("FAILED flatcar {VERSION} {KERNEL}")));

    // Same bytes as published, but the signature beside them swapped for a revoked key's.
    fs::write(dir.join(KERNEL), &release.kernel).unwrap();
    fs::write(
        dir.join(format!("{INITRD}.sig")),
        keys().sign(Signer::Revoked, &release.initrd),
    )
    .unwrap();
    let output = verify().output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_one_line_error(&output.stderr, &format!("{INITRD}: revoked or expired key"));

    fs::write(
        dir.join(format!("{INITRD}.sig")),
        keys().sign(Signer::Good, &release.initrd),
    )
    .unwrap();
    verify()
        .arg(lab.assets().join("flatcar"))
        .assert()
        .success();
    // With the embedded keys these test signatures are unknown.
    assert_fails_closed_with_real_keys(
        &lab,
        caas_in(lab.data_dir()).args(["assets", "verify"]),
        &["2 of 2 files failed verification", "unknown key"],
    );
}

#[test]
fn another_architecture_of_a_published_version_is_refused() {
    let lab = Lab::new();
    serve_flatcar(&lab.server, Signer::Good, Signer::Good);
    lab.flatcar().assert().success();
    let before = lab.published();
    let output = lab
        .flatcar()
        .args(["--arch", "arm64", "--version", VERSION])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_one_line_error(&output.stderr, "holds the amd64 build");
    assert_eq!(lab.published(), before);
}

#[test]
fn fetch_caas_publishes_the_static_binary_with_its_sha256() {
    let dir = tempfile::tempdir().unwrap();
    let static_caas = static_caas();
    let fetch_caas = || {
        let mut cmd = caas_in(dir.path());
        cmd.args(["assets", "fetch", "caas", "--binary"])
            .arg(&static_caas);
        cmd
    };
    fetch_caas().assert().success();
    let caas_dir = dir.path().join("assets/caas");
    let binary = fs::read(caas_dir.join("caas")).unwrap();
    assert_eq!(binary, fs::read(&static_caas).unwrap());
    // What booting machines download runs without any libc of theirs, and is small.
    let file = StdCommand::new("file")
        .arg("-L")
        .arg(caas_dir.join("caas"))
        .output()
        .unwrap();
    let file = String::from_utf8_lossy(&file.stdout).into_owned();
    assert!(file.contains("statically linked"), "{file}");
    let ldd = StdCommand::new("ldd")
        .arg(caas_dir.join("caas"))
        .output()
        .unwrap();
    let ldd =
        String::from_utf8_lossy(&ldd.stdout).into_owned() + &String::from_utf8_lossy(&ldd.stderr);
    assert!(!ldd.contains("libc.so"), "{ldd}");
    assert!(
        binary.len() <= 15 * 1024 * 1024,
        "the static caas is {} bytes, over 15 MiB",
        binary.len()
    );
    assert_eq!(
        fs::metadata(caas_dir.join("caas"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
    assert_eq!(
        fs::read_to_string(caas_dir.join("caas.sha256")).unwrap(),
        format!("{}  caas\n", sha256(&binary))
    );
    // coreutils agrees on the format and the digest.
    let check = StdCommand::new("sha256sum")
        .args(["--check", "--strict", "caas.sha256"])
        .current_dir(&caas_dir)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let output = fetch_caas().output().unwrap();
    assert!(
        stdout(&output).starts_with("unchanged"),
        "{}",
        stdout(&output)
    );
    caas_in(dir.path())
        .args(["assets", "verify"])
        .assert()
        .success();
}

#[test]
fn a_dynamically_linked_caas_is_never_published() {
    let dir = tempfile::tempdir().unwrap();
    // The test build links glibc dynamically: the default (the running binary) and an explicit
    // path are both refused, with the way to build the static one, and nothing is written.
    for binary in [None, Some(env!("CARGO_BIN_EXE_caas"))] {
        let mut cmd = caas_in(dir.path());
        cmd.args(["assets", "fetch", "caas"]);
        if let Some(path) = binary {
            cmd.args(["--binary", path]);
        }
        let output = cmd.output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{binary:?}");
        assert_one_line_error(&output.stderr, "dynamically linked");
        assert_one_line_error(&output.stderr, "make static");
        assert!(!dir.path().join("assets").exists(), "{binary:?}");
    }
    // Not an executable at all.
    let script = dir.path().join("caas.sh");
    fs::write(&script, "#!/bin/sh\n").unwrap();
    let output = caas_in(dir.path())
        .args(["assets", "fetch", "caas", "--binary"])
        .arg(&script)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_one_line_error(&output.stderr, "not an ELF executable");
    assert!(!dir.path().join("assets").exists());
}

#[test]
fn sqv_agrees_with_caas_on_every_signature_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let keyring_path = dir.path().join("keyring.asc");
    fs::write(&keyring_path, keys().keyring()).unwrap();
    let keyring = Keyring::parse(&keys().keyring(), "test").unwrap();
    let data = payload(31, 200_000);
    let mut tampered = data.clone();
    tampered[199_999] ^= 1;

    let mut cases: Vec<(String, Vec<u8>, Vec<u8>, bool)> = Signer::ALL
        .iter()
        .map(|&signer| {
            let good = matches!(signer, Signer::Good | Signer::Superseded);
            (
                format!("{signer:?}"),
                keys().sign(signer, &data),
                data.clone(),
                good,
            )
        })
        .collect();
    cases.push((
        "tampered data".into(),
        keys().sign(Signer::Good, &data),
        tampered,
        false,
    ));
    cases.push((
        "SHA-1 data signature".into(),
        keys().sign_with(
            Signer::Good,
            &data,
            sequoia_openpgp::types::HashAlgorithm::SHA1,
        ),
        data.clone(),
        false,
    ));
    cases.push((
        "not a signature".into(),
        b"junk".to_vec(),
        data.clone(),
        false,
    ));
    for (name, signature, signed, expected) in cases {
        let sig_path = dir.path().join("sig");
        let data_path = dir.path().join("data");
        fs::write(&sig_path, &signature).unwrap();
        fs::write(&data_path, &signed).unwrap();
        let caas_verdict = verify_detached(&keyring, &signature, &signed[..]);
        let sqv_verdict = sqv_accepts(&keyring_path, &sig_path, &data_path);
        assert_eq!(
            caas_verdict.is_ok(),
            sqv_verdict,
            "{name}: caas says {caas_verdict:?}, sqv says {sqv_verdict}"
        );
        assert_eq!(caas_verdict.is_ok(), expected, "{name}: {caas_verdict:?}");
    }
}

#[test]
fn bad_flags_are_usage_errors() {
    let output = caas()
        .args(["assets", "fetch", "flatcar", "--base-url", "ftp://x/"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let output = caas()
        .args(["assets", "fetch", "flatcar", "--version", "../x"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let dir = tempfile::tempdir().unwrap();
    let keyring = dir.path().join("k.asc");
    fs::write(&keyring, "not a key").unwrap();
    let output = caas_in(dir.path())
        .args(["assets", "fetch", "flatcar", "--keyring"])
        .arg(&keyring)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_one_line_error(&output.stderr, "not a usable OpenPGP keyring");
}

/// Serves a signed Fedora CoreOS stream under /fcos whose kernel, initramfs and rootfs have the
/// given file names.
fn serve_fcos_named(server: &Server, names: [&str; 3]) {
    let version = "43.20261101.3.0";
    let build = format!("prod/streams/stable/builds/{version}/x86_64");
    let mut pxe = serde_json::Map::new();
    for (i, (name, key)) in names
        .iter()
        .zip(["kernel", "initramfs", "rootfs"])
        .enumerate()
    {
        let bytes = payload(40 + i as u32, 50_000);
        let location = server.url(&format!("/fcos/{build}/{name}"));
        server.put(&format!("/fcos/{build}/{name}"), bytes.clone());
        server.put(
            &format!("/fcos/{build}/{name}.sig"),
            keys().sign(Signer::Good, &bytes),
        );
        pxe.insert(
            key.into(),
            serde_json::json!({
                "location": location,
                "sha256": sha256(&bytes),
                "signature": format!("{location}.sig"),
            }),
        );
    }
    let stream = serde_json::json!({
        "stream": "stable",
        "metadata": {"last-modified": "2026-11-20T10:00:00Z", "generator": "test"},
        "architectures": {"x86_64": {"artifacts": {"metal": {
            "release": version,
            "formats": {"pxe": pxe}
        }}}}
    });
    server.put(
        "/fcos/streams/stable.json",
        serde_json::to_vec(&stream).unwrap(),
    );
}

#[test]
fn stream_names_that_collide_with_what_caas_writes_are_refused() {
    // Each of these used to publish a release its own `assets verify` rejected (a kernel that
    // held the manifest, or a download renamed over another file).
    let cases = [
        ["initrd.img.part", "initrd.img", "rootfs.img"],
        ["caas-assets.json", "initrd.img", "rootfs.img"],
        ["kernel", "kernel.sig", "rootfs.img"],
        ["kernel", "initrd.img", "initrd.img.sig"],
    ];
    for names in cases {
        let lab = Lab::new();
        serve_fcos_named(&lab.server, names);
        let collided = names
            .iter()
            .find(|name| {
                **name == "caas-assets.json"
                    || names.iter().any(|o| name.starts_with(&format!("{o}.")))
            })
            .unwrap();
        assert_fails_closed(
            &lab,
            &mut lab.fetch("fedora-coreos", "/fcos"),
            &["formats.pxe", &format!("{collided:?}")],
        );
        assert!(
            !lab.assets().join("fedora-coreos/43.20261101.3.0").exists(),
            "{names:?}"
        );
    }
    // Distinct names publish.
    let lab = Lab::new();
    serve_fcos_named(&lab.server, ["kernel", "initrd.img", "rootfs.img"]);
    let output = lab.fetch("fedora-coreos", "/fcos").output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let output = caas_in(lab.data_dir())
        .args(["assets", "verify", "--keyring"])
        .arg(&lab.keyring)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn an_endless_body_is_cut_at_max_size_and_not_kept_for_a_resume() {
    let lab = Lab::new();
    lab.publish_older_release();
    serve_flatcar(&lab.server, Signer::Good, Signer::Good);
    lab.server.endless(&flatcar_path(KERNEL));

    assert_fails_closed(
        &lab,
        // Room for the 1.3 MB initrd, so the endless kernel is the one that fails.
        lab.flatcar().args(["--max-size", "2MiB"]),
        &[
            KERNEL,
            "the server sent more than the 2.0 MiB a download may be (--max-size)",
        ],
    );
    assert!(
        !lab.part(KERNEL).exists(),
        "an oversized download is deleted"
    );
    assert_eq!(
        lab.server.hits(&flatcar_path(KERNEL)).len(),
        1,
        "never retried"
    );
}

#[test]
fn a_file_the_server_says_is_too_large_is_refused_before_its_body() {
    let lab = Lab::new();
    lab.publish_older_release();
    serve_flatcar(&lab.server, Signer::Good, Signer::Good);

    assert_fails_closed(
        &lab,
        lab.flatcar().args(["--max-size", "1MB"]),
        &[
            INITRD,
            "the server says the file has 1300000 bytes, more than the",
        ],
    );
    assert!(!lab.part(INITRD).exists());
}

#[test]
fn max_size_must_be_a_size() {
    for (value, needle) in [
        ("lots", "not a size: \"lots\""),
        ("0", "must be at least 1 byte"),
    ] {
        let output = caas()
            .args(["assets", "fetch", "flatcar", "--max-size", value])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{value}");
        assert!(stderr(&output).contains(needle), "{}", stderr(&output));
    }
}

#[test]
fn a_full_disk_fails_the_fetch_and_frees_what_it_downloaded() {
    let lab = Lab::new();
    // Room for the kernel (700 kB) but not the initrd (1.3 MB) as well.
    let _disk = SmallDisk::mount(&lab.assets(), "1200k");
    lab.publish_older_release();
    serve_flatcar(&lab.server, Signer::Good, Signer::Good);

    let output = assert_fails_closed(&lab, &mut lab.flatcar(), &["No space left on device"]);
    let stage = lab.assets().join("flatcar/.partial").join(VERSION);
    let left: Vec<_> = fs::read_dir(&stage)
        .map(|entries| entries.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "{left:?} left on a full disk\n{}",
        stderr(&output)
    );
}
