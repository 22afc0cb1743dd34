//! `caas assets fetch` against the tools an operator would chain by hand (the design's speed bars):
//! `cargo bench --bench assets`.
//!
//! A loopback server (tiny_http, files streamed from disk) serves a Flatcar-shaped release whose
//! kernel is 400 MB (and whose initrd is 1 MB), both signed with SHA-512 by a test subkey. Timed,
//! each run from a fresh directory:
//!
//! - `caas assets fetch flatcar` (resolve through version.txt, download both files in parallel,
//!   hash and verify while streaming, publish with fsync);
//! - the same command again: the release is published, so only version.txt is read;
//! - `curl -o` for version.txt, both files and both signatures, then `sha512sum`, then `sqv` on
//!   each file, one after the other (each stage timed on its own, and their sum).
//!
//! Once with the data directory on disk and once on tmpfs (where fsync costs nothing, so the
//! difference is the cost of durability). Figures are printed, never asserted.

mod common;

#[path = "../tests/assets_support/pgp.rs"]
#[allow(dead_code)]
mod pgp;

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::summary;
use pgp::{Keys, Signer};

const VERSION: &str = "4081.2.0";
const KERNEL: &str = "flatcar_production_pxe.vmlinuz";
const INITRD: &str = "flatcar_production_pxe_image.cpio.gz";
const KERNEL_SIZE: usize = 400 * 1000 * 1000;
const RUNS: usize = 5;

/// Pseudo-random bytes (xorshift), written in 1 MiB chunks.
fn write_payload(path: &Path, len: usize, seed: u64) -> Vec<u8> {
    let mut file = File::create(path).unwrap();
    let mut x = seed | 1;
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for word in chunk.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes()[..word.len()]);
        }
        let n = left.min(chunk.len());
        file.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    drop(file);
    fs::read(path).unwrap()
}

/// Serves every file of `root` at its relative path; no Range needed here.
fn serve(root: PathBuf) -> (String, Arc<tiny_http::Server>) {
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
    let base = format!(
        "http://127.0.0.1:{}",
        server.server_addr().to_ip().unwrap().port()
    );
    let accept = server.clone();
    thread::spawn(move || {
        for request in accept.incoming_requests() {
            let root = root.clone();
            thread::spawn(move || {
                let path = root.join(request.url().trim_start_matches('/'));
                match File::open(&path) {
                    Ok(file) => {
                        let _ = request.respond(
                            tiny_http::Response::from_file(file).with_chunked_threshold(usize::MAX),
                        );
                    }
                    Err(_) => {
                        let _ = request.respond(tiny_http::Response::empty(404));
                    }
                }
            });
        }
    });
    (base, server)
}

fn timed(mut command: Command) -> Duration {
    let start = Instant::now();
    let output = command.stdout(Stdio::null()).output().unwrap();
    let elapsed = start.elapsed();
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    elapsed
}

fn bench(work: &Path, base: &str, keyring: &Path, label: &str) {
    let caas = env!("CARGO_BIN_EXE_caas");
    let dir = work.join("run");
    let url = |file: &str| format!("{base}/flatcar/amd64-usr/{VERSION}/{file}");
    let mut fetch = Vec::new();
    let mut cached = Vec::new();
    let mut by_hand = Vec::new();
    let (mut curl, mut sha512sum, mut sqv) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let caas_fetch = || {
            let mut command = Command::new(caas);
            command
                .arg("--data-dir")
                .arg(&dir)
                .args(["assets", "fetch", "flatcar", "--base-url"])
                .arg(format!("{base}/flatcar"))
                .arg("--keyring")
                .arg(keyring);
            command
        };
        fetch.push(timed(caas_fetch()));
        cached.push(timed(caas_fetch()));

        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let stage = |script: String| {
            let mut shell = Command::new("sh");
            shell
                .current_dir(&dir)
                .args(["-c", &format!("set -e; {script}")]);
            timed(shell)
        };
        let download = stage(format!(
            "curl -sSf -o version.txt {base}/flatcar/amd64-usr/current/version.txt; \
             for f in {KERNEL} {INITRD}; do curl -sSf -o $f {u}$f; curl -sSf -o $f.sig {u}$f.sig; done",
            u = url(""),
        ));
        let digest = stage(format!("sha512sum {KERNEL} {INITRD} >/dev/null"));
        let verify = stage(format!(
            "for f in {KERNEL} {INITRD}; do sqv --keyring {} $f.sig $f >/dev/null; done",
            keyring.display()
        ));
        curl.push(download);
        sha512sum.push(digest);
        sqv.push(verify);
        by_hand.push(download + digest + verify);
    }
    let _ = fs::remove_dir_all(&dir);
    let caas = summary(
        &format!("{label}: caas assets fetch flatcar (400 MB kernel + 1 MB initrd)"),
        fetch,
    );
    summary(
        &format!("{label}: caas assets fetch, rerun with everything published"),
        cached,
    );
    summary(
        &format!("{label}:   curl -o (version.txt, files, signatures)"),
        curl,
    );
    summary(&format!("{label}:   sha512sum"), sha512sum);
    summary(&format!("{label}:   sqv (both files)"), sqv);
    let hand = summary(
        &format!("{label}: curl -o + sha512sum + sqv, one after the other"),
        by_hand,
    );
    println!(
        "{label}: ratio caas / (curl + sha512sum + sqv), medians: {:.2}",
        caas.as_secs_f64() / hand.as_secs_f64()
    );
}

fn main() {
    // `cargo test --benches` runs bench targets with `--bench` absent: stay quick there.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let keys = Keys::generate();
    for (label, parent) in [("disk", std::env::temp_dir()), ("tmpfs", "/dev/shm".into())] {
        if !parent.is_dir() {
            continue;
        }
        let work = tempfile::tempdir_in(&parent).unwrap();
        let release = work.path().join(format!("www/flatcar/amd64-usr/{VERSION}"));
        fs::create_dir_all(&release).unwrap();
        let current = work.path().join("www/flatcar/amd64-usr/current");
        fs::create_dir_all(&current).unwrap();
        fs::write(
            current.join("version.txt"),
            format!("FLATCAR_VERSION={VERSION}\n"),
        )
        .unwrap();
        for (name, len, seed) in [(KERNEL, KERNEL_SIZE, 7), (INITRD, 1 << 20, 11)] {
            let bytes = write_payload(&release.join(name), len, seed);
            fs::write(
                release.join(format!("{name}.sig")),
                keys.sign(Signer::Good, &bytes),
            )
            .unwrap();
        }
        let keyring = work.path().join("keyring.asc");
        fs::write(&keyring, keys.keyring()).unwrap();
        let (base, server) = serve(work.path().join("www"));
        bench(work.path(), &base, &keyring, label);
        server.unblock();
    }
}
