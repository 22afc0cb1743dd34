//! `caas chain dnsmasq`: every mode passes dnsmasq's own syntax check (`dnsmasq --test`).

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::{assert_one_line_error, caas, caas_in, publish_etcd};

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

/// `caas chain dnsmasq --mode full … --hosts-from DATA` into `file`.
fn dnsmasq_with_hosts(data: &Path, file: &Path) -> assert_cmd::assert::Assert {
    caas()
        .args(["chain", "dnsmasq", "--server", "10.0.0.2", "--mode", "full"])
        .args(["--range", "10.0.0.50,10.0.0.99", "--hosts-from"])
        .arg(data)
        .arg("--out")
        .arg(file)
        .assert()
}

/// The `dhcp-host=` lines of a config.
fn host_lines(file: &Path) -> Vec<String> {
    fs::read_to_string(file)
        .unwrap()
        .lines()
        .filter(|line| line.starts_with("dhcp-host="))
        .map(str::to_owned)
        .collect()
}

fn assert_dnsmasq_accepts(file: &Path) {
    let check = dnsmasq_test(file);
    assert!(
        check.status.success(),
        "dnsmasq rejects {}: {}\n{}",
        file.display(),
        String::from_utf8_lossy(&check.stderr),
        fs::read_to_string(file).unwrap()
    );
}

#[test]
fn hosts_from_pins_what_gen_cluster_and_schedule_wrote() {
    let dir = tempfile::tempdir().unwrap();

    // gen cluster's example: three members with addresses (each in two groups, install and
    // installed), and a gateway without one.
    let cluster = dir.path().join("cluster");
    publish_etcd(&cluster);
    caas_in(&cluster)
        .args(["-q", "gen", "cluster"])
        .assert()
        .success();
    let file = dir.path().join("cluster.conf");
    dnsmasq_with_hosts(&cluster, &file).success();
    assert_eq!(
        host_lines(&file),
        [
            "dhcp-host=52:54:00:a1:9c:ae,10.0.0.11,node1",
            "dhcp-host=52:54:00:b2:2f:86,10.0.0.12,node2",
            "dhcp-host=52:54:00:c3:61:77,10.0.0.13,node3",
        ]
    );
    assert_dnsmasq_accepts(&file);

    // schedule once: members and workers, pinned to the addresses they reported.
    let scheduled = dir.path().join("scheduled");
    publish_etcd(&scheduled);
    let machines: Vec<serde_json::Value> = (1..=4u8)
        .map(|n| {
            let mac = format!("52:54:00:00:00:{n:02x}");
            serde_json::json!({
                "mac": mac,
                "first_seen": format!("2026-11-26T10:00:0{n}.000Z"),
                "report": {
                    "boot-info": {"mac": mac, "uuid": format!("uuid-{n}")},
                    "interfaces": [{"name": "eth0", "mac": mac, "ipv4": format!("10.0.0.{}", 60 - n), "netmask": 24}]
                }
            })
        })
        .collect();
    let machines_file = dir.path().join("machines.json");
    fs::write(&machines_file, serde_json::to_vec(&machines).unwrap()).unwrap();
    caas_in(&scheduled)
        .args([
            "-q",
            "schedule",
            "once",
            "--matchbox-url",
            "http://10.0.0.2:8080",
        ])
        .arg("--discovery")
        .arg(&machines_file)
        .assert()
        .success();
    let file = dir.path().join("scheduled.conf");
    dnsmasq_with_hosts(&scheduled, &file).success();
    // Sorted by address: the order of the output does not follow discovery or file names.
    assert_eq!(
        host_lines(&file),
        [
            "dhcp-host=52:54:00:00:00:04,10.0.0.56,worker-0",
            "dhcp-host=52:54:00:00:00:03,10.0.0.57,etcd-2",
            "dhcp-host=52:54:00:00:00:02,10.0.0.58,etcd-1",
            "dhcp-host=52:54:00:00:00:01,10.0.0.59,etcd-0",
        ]
    );
    assert_dnsmasq_accepts(&file);
    // Same inputs, same bytes.
    let again = dir.path().join("again.conf");
    dnsmasq_with_hosts(&scheduled, &again).success();
    assert_eq!(fs::read(&file).unwrap(), fs::read(&again).unwrap());

    // A hand-written group pinning a member's MAC elsewhere: an error naming both groups.
    let groups = scheduled.join("groups");
    fs::write(
        groups.join("spare.json"),
        r#"{"id": "spare", "profile": "x", "selector": {"mac": "52:54:00:00:00:01"}, "metadata": {"ip": "10.0.0.70"}}"#,
    )
    .unwrap();
    let out = dnsmasq_with_hosts(&scheduled, &dir.path().join("conflict.conf"))
        .code(2)
        .get_output()
        .clone();
    assert_one_line_error(
        &out.stderr,
        &format!(
            "MAC 52:54:00:00:00:01 is pinned to 10.0.0.59 by {} and to 10.0.0.70 by {}",
            groups.join("etcd-0.json").display(),
            groups.join("spare.json").display()
        ),
    );
    // …and one pinning a member's address to another MAC.
    fs::write(
        groups.join("spare.json"),
        r#"{"id": "spare", "profile": "x", "selector": {"mac": "52:54:00:00:00:09"}, "metadata": {"ip": "10.0.0.58"}}"#,
    )
    .unwrap();
    let out = dnsmasq_with_hosts(&scheduled, &dir.path().join("conflict.conf"))
        .code(2)
        .get_output()
        .clone();
    assert_one_line_error(
        &out.stderr,
        &format!(
            "address 10.0.0.58 is pinned to 52:54:00:00:00:02 by {} and to 52:54:00:00:00:09 by {}",
            groups.join("etcd-1.json").display(),
            groups.join("spare.json").display()
        ),
    );
    assert!(!dir.path().join("conflict.conf").exists());
}

#[test]
fn hosts_from_needs_full_mode_and_a_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let out = caas()
        .args([
            "chain", "dnsmasq", "--server", "10.0.0.2", "--range", "10.0.0.0",
        ])
        .arg("--hosts-from")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_one_line_error(&out.stderr, "--hosts-from only applies to --mode full");

    let missing = dir.path().join("missing");
    let out = dnsmasq_with_hosts(&missing, &dir.path().join("x.conf"))
        .code(2)
        .get_output()
        .clone();
    assert_one_line_error(
        &out.stderr,
        &format!("--hosts-from {}: no such directory", missing.display()),
    );
}
