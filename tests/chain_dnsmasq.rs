//! `caas chain dnsmasq`: every mode passes dnsmasq's own syntax check (`dnsmasq --test`).

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::{assert_one_line_error, caas};

/// `dnsmasq --test -C file`: dnsmasq parses the file as it would at start-up, and exits.
fn dnsmasq_test(file: &Path) -> std::process::Output {
    // Debian installs it in /usr/sbin, which a non-root PATH may lack.
    let dnsmasq = ["/usr/sbin/dnsmasq", "dnsmasq"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .unwrap_or("dnsmasq");
    Command::new(dnsmasq)
        .arg("--test")
        .arg("-C")
        .arg(file)
        .output()
        .expect("running dnsmasq (Debian package dnsmasq-base)")
}

#[test]
fn dnsmasq_accepts_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[&str]); 6] = [
        ("proxy", &["--server", "10.0.0.2", "--range", "10.0.0.0"]),
        (
            "proxy-netmask-interface",
            &[
                "--boot-url",
                "http://matchbox.lab:8080/boot.ipxe",
                "--range",
                "192.168.1.0/24",
                "--interface",
                "eth1",
                "--efi-binary",
                "snponly.efi",
            ],
        ),
        (
            "full",
            &[
                "--server",
                "10.0.0.2:8080",
                "--mode",
                "full",
                "--range",
                "10.0.0.50,10.0.0.99",
            ],
        ),
        (
            "full-router-tftp",
            &[
                "--server",
                "10.0.0.2",
                "--mode",
                "full",
                "--range",
                "10.0.0.50,10.0.0.99",
                "--router",
                "10.0.0.1",
                "--tftp-root",
                "/srv/tftp",
                "--efi-binary",
                "snponly.efi",
            ],
        ),
        // The 2016 system's rack0 network (tests/reference/seed-fixtures/app/tests/dnsmasq-rack0.conf).
        (
            "full-rack0",
            &[
                "--boot-url",
                "http://172.20.0.1:5000/boot.ipxe",
                "--mode",
                "full",
                "--interface",
                "rack0",
                "--range",
                "172.20.0.50,172.20.0.99",
                "--router",
                "172.20.0.1",
            ],
        ),
        (
            "https-url",
            &[
                "--boot-url",
                "https://boot.lab/boot.ipxe?x=1&y=2",
                "--range",
                "10.1.0.0/16",
            ],
        ),
    ];
    for (name, args) in cases {
        let file = dir.path().join(format!("{name}.conf"));
        caas()
            .args(["chain", "dnsmasq"])
            .args(args)
            .arg("--out")
            .arg(&file)
            .assert()
            .success();
        let check = dnsmasq_test(&file);
        assert!(
            check.status.success(),
            "dnsmasq rejects {name}: {}\n{}",
            String::from_utf8_lossy(&check.stderr),
            fs::read_to_string(&file).unwrap()
        );
        assert!(
            String::from_utf8_lossy(&check.stderr).contains("syntax check OK"),
            "{check:?}"
        );
    }
    let rack0 = fs::read_to_string(dir.path().join("full-rack0.conf")).unwrap();
    for line in [
        "interface=rack0\n",
        "bind-dynamic\n",
        "dhcp-range=172.20.0.50,172.20.0.99,12h\n",
        "dhcp-option=option:router,172.20.0.1\n",
        "enable-tftp\n",
        "tftp-root=/var/lib/tftpboot\n",
        "dhcp-userclass=set:caas-ipxe,iPXE\n",
        "dhcp-boot=tag:caas-ipxe,http://172.20.0.1:5000/boot.ipxe\n",
    ] {
        assert!(rack0.contains(line), "{line:?} missing:\n{rack0}");
    }
}

/// The oracle can fail: the same file with one broken line is rejected.
#[test]
fn dnsmasq_rejects_a_broken_config() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.conf");
    caas()
        .args([
            "chain", "dnsmasq", "--server", "10.0.0.2", "--range", "10.0.0.0",
        ])
        .arg("--out")
        .arg(&file)
        .assert()
        .success();
    let mut text = fs::read_to_string(&file).unwrap();
    text.push_str("dhcp-range=not-an-address,proxy\n");
    fs::write(&file, text).unwrap();
    assert!(!dnsmasq_test(&file).status.success());
}

#[test]
fn without_out_the_config_goes_to_stdout() {
    let assert = caas()
        .args([
            "chain", "dnsmasq", "--server", "10.0.0.2", "--range", "10.0.0.0",
        ])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    assert!(
        stdout.starts_with("# dnsmasq configuration written by"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "pxe-service=tag:caas-ipxe,x86PC,\"Network boot: caas chain\",http://10.0.0.2:8080/boot.ipxe\n"
        ),
        "{stdout}"
    );
    let assert = caas()
        .args([
            "chain", "dnsmasq", "--server", "10.0.0.2", "--range", "10.0.0.0",
        ])
        .args(["--format", "json"])
        .assert()
        .code(2);
    assert_one_line_error(&assert.get_output().stderr, "--out FILE");
}

#[test]
fn bad_flags_exit_2_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dnsmasq.conf");
    let cases: [(&[&str], &str); 6] = [
        (
            &["--boot-url", "http://m/a,b", "--range", "10.0.0.0"],
            "--boot-url",
        ),
        (
            &["--server", "m", "--range", "10.0.0.50,10.0.0.99"],
            "--range",
        ),
        (&["--server", "m", "--mode", "full"], "--range START,END"),
        (
            &[
                "--server", "m", "--range", "10.0.0.0", "--router", "10.0.0.1",
            ],
            "--router",
        ),
        (
            &[
                "--server",
                "m",
                "--range",
                "10.0.0.0",
                "--interface",
                "eth0\nx",
            ],
            "--interface",
        ),
        (
            &[
                "--server",
                "m",
                "--range",
                "10.0.0.0",
                "--tftp-root",
                "tftp",
            ],
            "--tftp-root",
        ),
    ];
    for (args, needle) in cases {
        let assert = caas()
            .args(["chain", "dnsmasq"])
            .args(args)
            .arg("--out")
            .arg(&file)
            .assert()
            .code(2);
        assert_one_line_error(&assert.get_output().stderr, needle);
        assert!(!file.exists());
    }
}

#[test]
fn out_is_written_through_the_write_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("etc/dnsmasq.d/caas.conf");
    let run = || {
        caas()
            .args([
                "chain", "dnsmasq", "--server", "10.0.0.2", "--range", "10.0.0.0",
            ])
            .args(["--format", "json"])
            .arg("--out")
            .arg(&file)
            .assert()
            .success()
    };
    let first: serde_json::Value = serde_json::from_slice(&run().get_output().stdout).unwrap();
    assert_eq!(first["files"][0]["action"], "created");
    let second: serde_json::Value = serde_json::from_slice(&run().get_output().stdout).unwrap();
    assert_eq!(second["files"][0]["action"], "unchanged");
}

#[test]
fn a_tftp_root_dnsmasq_would_misread_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dnsmasq.conf");
    let run = |root: &str| {
        caas()
            .args([
                "chain",
                "dnsmasq",
                "--server",
                "10.0.0.2",
                "--range",
                "10.0.0.0/24",
            ])
            .args(["--tftp-root", root, "--out"])
            .arg(&file)
            .assert()
    };
    // Each of these was written as it is; dnsmasq then failed (an unbalanced quote) or read
    // another path (quotes removed, white space squeezed, a comment or a list cut it).
    for root in [
        "/srv/\"a",
        "/srv/a\\\"",
        "/srv/a\"b\"c",
        "/srv/a\\b",
        "/srv/a b",
        "/srv/a\nb",
        "/srv/a,b",
        "/srv/a#b",
    ] {
        let out = run(root).code(2);
        assert_one_line_error(&out.get_output().stderr, &format!("--tftp-root {root:?}"));
        assert!(!file.exists(), "{root}");
    }
    // What is accepted is written as given and passes dnsmasq's own check.
    for root in ["/srv/tftp", "/srv/it's", "/srv/a;b", "/srv/é", "/srv/$x"] {
        run(root).success();
        let text = fs::read_to_string(&file).unwrap();
        assert!(text.contains(&format!("\ntftp-root={root}\n")), "{text}");
        let check = dnsmasq_test(&file);
        assert!(
            check.status.success(),
            "{root}: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        fs::remove_file(&file).unwrap();
    }
}
