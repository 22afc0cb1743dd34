//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod api;
pub mod bootcfg;
pub mod guest;
pub mod ignition2;
pub mod matchbox;
pub mod nginx;
pub mod postgres;
pub mod small_disk;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use assert_cmd::Command;

/// Real data from matchbox and the 2016 system (tests/reference/README.md).
pub fn reference_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference")
}

/// `caas` with a clean environment: no CAAS_* variable leaks in from the caller.
pub fn caas() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_caas"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CAAS_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("RUST_BACKTRACE", "0");
    cmd
}

/// `caas --data-dir <dir> …`.
pub fn caas_in(dir: &Path) -> Command {
    let mut cmd = caas();
    cmd.arg("--data-dir").arg(dir);
    cmd
}

/// Every file under `root` with its bytes and mtime, to prove that nothing changed.
pub fn tree_state(root: &Path) -> BTreeMap<PathBuf, (Vec<u8>, SystemTime)> {
    let mut state = BTreeMap::new();
    if !root.exists() {
        return state;
    }
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else {
                let bytes = fs::read(&path).unwrap_or_default();
                state.insert(path, (bytes, meta.modified().unwrap()));
            }
        }
    }
    state
}

/// Asserts that a failed run printed exactly one line on stderr, containing `needle`.
pub fn assert_one_line_error(stderr: &[u8], needle: &str) {
    let text = String::from_utf8_lossy(stderr);
    assert!(
        text.ends_with('\n'),
        "stderr must end with a newline: {text:?}"
    );
    assert_eq!(text.lines().count(), 1, "stderr must be one line: {text:?}");
    assert!(
        text.contains(needle),
        "stderr {text:?} must contain {needle:?}"
    );
}

/// The example names under `matchbox-examples/<version>/groups/`, sorted.
pub fn matchbox_examples(version: &str) -> Vec<String> {
    let groups = reference_dir()
        .join("matchbox-examples")
        .join(version)
        .join("groups");
    let mut names: Vec<String> = fs::read_dir(&groups)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A matchbox data directory for one example, laid out as matchbox's docs run them: all
/// profiles, all Ignition files, and that example's groups.
pub fn matchbox_example(version: &str, example: &str) -> tempfile::TempDir {
    let source = reference_dir().join("matchbox-examples").join(version);
    let dir = tempfile::tempdir().unwrap();
    for (from, to) in [
        (source.join("profiles"), dir.path().join("profiles")),
        (source.join("ignition"), dir.path().join("ignition")),
        (
            source.join("groups").join(example),
            dir.path().join("groups"),
        ),
    ] {
        fs::create_dir_all(&to).unwrap();
        for entry in fs::read_dir(&from).unwrap() {
            let entry = entry.unwrap();
            fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
    dir
}

/// Writes `files` (path relative to `dir`, content) under `dir`, creating directories.
pub fn write_tree(dir: &Path, files: &[(&str, &str)]) {
    for (rel, content) in files {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }
}

/// Runs the real `ignition-validate` (Debian package `ignition`, installed by
/// scripts/install-test-deps.sh) on every `.ign` file under `root`, and returns how many it
/// checked. It validates spec 3.3.0 and older; caas's 3.3.0 output is what it checks.
pub fn ignition_validate_all(root: &Path) -> usize {
    let mut checked = 0;
    for (path, _) in tree_state(root) {
        if path.extension().is_none_or(|ext| ext != "ign") {
            continue;
        }
        ignition_validate(&path);
        checked += 1;
    }
    checked
}

/// `ignition-validate <path>` must succeed and print nothing.
pub fn ignition_validate(path: &Path) {
    let output = std::process::Command::new("ignition-validate")
        .arg(path)
        .output()
        .expect("ignition-validate runs (scripts/install-test-deps.sh installs it)");
    assert!(
        output.status.success() && output.stdout.is_empty() && output.stderr.is_empty(),
        "ignition-validate {}: {}{}\n{}",
        path.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        fs::read_to_string(path).unwrap_or_default()
    );
}

/// The etcd release [`publish_etcd`] publishes.
pub const ETCD_VERSION: &str = "v3.5.21";

/// Publishes a stand-in etcd release under `<data>/assets/etcd/` as `caas assets fetch etcd`
/// leaves one (binaries, `caas-assets.json`, the `current` link), so configs of the etcd roles
/// render; returns the `sha256-…` hash the configs carry. The binaries are placeholders: these
/// configs are checked, not booted (tests/assets.rs fetches a real one).
pub fn publish_etcd(data: &Path) -> String {
    use sha2::Digest as _;
    let etcd_dir = data.join("assets/etcd");
    let dir = etcd_dir.join(ETCD_VERSION);
    fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    let mut etcd_hash = String::new();
    for name in ["etcd", "etcdctl"] {
        let bytes = format!("#!/bin/sh\n# stand-in {name} {ETCD_VERSION}\n").into_bytes();
        let sha256 = hex::encode(sha2::Sha256::digest(&bytes));
        if name == "etcd" {
            etcd_hash = format!("sha256-{sha256}");
        }
        fs::write(dir.join(name), &bytes).unwrap();
        files.push(serde_json::json!({
            "role": name, "name": name, "sha256": sha256, "size": bytes.len(),
        }));
    }
    let manifest = serde_json::json!({
        "os": "etcd", "version": ETCD_VERSION, "arch": "amd64", "files": files,
        "archive": {"name": format!("etcd-{ETCD_VERSION}-linux-amd64.tar.gz"),
                    "sha256": "00".repeat(32), "checked_against": "pinned"},
    });
    fs::write(
        dir.join("caas-assets.json"),
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
    let link = etcd_dir.join("current");
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(ETCD_VERSION, &link).unwrap();
    etcd_hash
}

/// The static caas build `make static` leaves (`--profile static`, musl): what `caas assets
/// fetch caas` publishes for booting machines. `make check` builds it before the tests; when it
/// is missing (a plain `cargo test`), it is built here once, into the same target directory.
pub fn static_caas() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            // <target>/debug/caas → <target>
            let target_dir = Path::new(env!("CARGO_BIN_EXE_caas"))
                .parent()
                .and_then(Path::parent)
                .expect("the test binary lives in <target>/<profile>/")
                .to_owned();
            let path = target_dir.join("x86_64-unknown-linux-musl/static/caas");
            if path.is_file() {
                return path;
            }
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = std::process::Command::new(cargo)
                .args(["build", "--locked", "--profile", "static"])
                .args(["--target", "x86_64-unknown-linux-musl", "--bin", "caas"])
                .arg("--target-dir")
                .arg(&target_dir)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("cargo runs");
            assert!(
                status.success() && path.is_file(),
                "the static caas build failed, and the tests need it at {}: run `make static` \
                 (it needs `rustup target add x86_64-unknown-linux-musl` and Debian's musl-tools; \
                 scripts/install-test-deps.sh installs both)",
                path.display()
            );
            path
        })
        .clone()
}

/// Proptest's settings for the fuzz properties: `default` cases, or `CAAS_FUZZ_CASES` of them
/// for a long run.
pub fn fuzz_cases(default: u32) -> proptest::prelude::ProptestConfig {
    let scale = std::env::var("CAAS_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok());
    proptest::prelude::ProptestConfig {
        cases: scale.unwrap_or(default),
        max_shrink_iters: 2_000,
        ..proptest::prelude::ProptestConfig::default()
    }
}

/// `caas discover` on captured machine `n` (its 2016 kernel command line, sysfs and addresses)
/// reporting to `api`.
pub fn discover_captured(api: &str, n: usize) {
    let machine = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/discovery")
        .join(format!("machine-{n}"));
    caas()
        .args(["discover", "--api", api, "--proc-cmdline"])
        .arg(reference_dir().join(format!("seed-fixtures/discoveryC/tests/proc/cmdline{n}")))
        .arg("--sysfs")
        .arg(machine.join("sys"))
        .arg("--addresses")
        .arg(machine.join("addresses.json"))
        .assert()
        .success();
}
