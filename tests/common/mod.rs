//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod api;
pub mod guest;
pub mod matchbox;

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
