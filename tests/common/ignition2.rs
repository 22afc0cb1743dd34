//! The spec 2.x oracle: Ignition's own 2.x config parser (v0.31, as vendored by matchbox
//! v0.8.3), built from tests/oracle/ignition2/main.go by `scripts/install-test-deps.sh` into
//! `/var/cache/caas-test/ignition2/<hash>/ignition2-check` (`current` names it);
//! `CAAS_TEST_IGNITION2` names another binary. Tests that need it fail when it is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

const CACHE: &str = "/var/cache/caas-test/ignition2";

/// The oracle binary; panics with how to get it.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CAAS_TEST_IGNITION2") {
        return PathBuf::from(path);
    }
    let cache = std::env::var_os("CAAS_TEST_CACHE")
        .map(|dir| PathBuf::from(dir).join("ignition2"))
        .unwrap_or_else(|| PathBuf::from(CACHE));
    let current = cache.join("current");
    let path = std::fs::read_to_string(&current)
        .map(|text| PathBuf::from(text.trim()))
        .unwrap_or_default();
    assert!(
        path.is_file(),
        "the Ignition spec 2.x oracle is not built ({} names none): run scripts/install-test-deps.sh",
        current.display()
    );
    path
}

/// What the oracle says of a config: its exit code and its report.
pub struct Verdict {
    pub code: i32,
    pub report: String,
}

pub fn check(path: &Path) -> Verdict {
    let out = Command::new(binary())
        .arg(path)
        .output()
        .expect("running the spec 2.x oracle");
    Verdict {
        code: out.status.code().unwrap_or(-1),
        report: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Asserts that Ignition's 2.x parser accepts the config at `path` without a warning.
pub fn assert_valid(path: &Path) {
    let verdict = check(path);
    assert_eq!(
        verdict.code,
        0,
        "{} is not a clean spec 2.x config: {}",
        path.display(),
        verdict.report
    );
}

/// Asserts the same of `bytes`.
pub fn assert_valid_bytes(bytes: &[u8]) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    assert_valid(file.path());
}
