//! The command line as a whole: version, help, completions, usage errors.

mod common;

use common::caas;
use predicates::prelude::*;

#[test]
fn version_prints_the_crate_version() {
    caas()
        .arg("--version")
        .assert()
        .success()
        .stdout(format!("caas {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn help_lists_the_commands_and_global_flags() {
    caas().arg("--help").assert().success().stdout(
        predicate::str::contains("gen")
            .and(predicate::str::contains("completions"))
            .and(predicate::str::contains("--data-dir"))
            .and(predicate::str::contains("CAAS_DATA_DIR")),
    );
    caas()
        .args(["gen", "profile", "--help"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("--matchbox-url").and(predicate::str::contains("--compat")),
        );
}

#[test]
fn completions_for_every_shell() {
    for (shell, marker) in [
        ("bash", "_caas()"),
        ("zsh", "#compdef caas"),
        ("fish", "complete -c caas"),
        ("elvish", "caas"),
        ("powershell", "caas"),
    ] {
        caas()
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(predicate::str::contains(marker).and(predicate::str::contains("gen")));
    }
    caas().args(["completions", "tcsh"]).assert().code(2);
}

#[test]
fn usage_errors_exit_2() {
    caas().assert().code(2);
    caas().arg("frobnicate").assert().code(2);
    caas().args(["gen", "group", "--id", "x"]).assert().code(2);
}

#[test]
fn a_closed_stdout_ends_quietly() {
    // `caas … | head`: the reader is gone before caas writes a byte.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bootcfg");
    // The built-in example's etcd roles need a published etcd release.
    common::publish_etcd(&data);
    let data = data.to_str().unwrap();
    for args in [
        vec!["completions", "bash"],
        vec!["gen", "cluster", "--dry-run", "--data-dir", data],
    ] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_caas"))
            .args(&args)
            .env("RUST_BACKTRACE", "0")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{args:?}");
    }
}
