//! The 2016 flow end to end: CoreOS Container Linux labs written by caas for bootcfg v0.4
//! (`--compat bootcfg-0.4`, Ignition spec 2.0), served by the real bootcfg v0.4.2. For every
//! machine, bootcfg's `/ipxe` and `/ignition` answers are what `caas explain --target
//! bootcfg-0.4` says, each config passes Ignition's own spec 2.x parser, and bootcfg never logs
//! a config it cannot read ("too new").

mod common;

use std::fs;
use std::path::Path;

use common::api::Api;
use common::bootcfg::Bootcfg;
use common::{
    assert_one_line_error, caas_in, discover_captured, ignition2, publish_etcd, tree_state,
};
use serde_json::Value;
use sha2::Digest as _;

/// The 2016 lab: three etcd members that install Container Linux to disk, a gateway booting
/// from the network, and discovery for every other machine.
const LAB: &str = "\
name: lab2016
os: coreos
matchbox_url: http://bootcfg.lab:8080
api_url: http://caas.lab:5000
ssh_authorized_keys:
  - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA ops@lab
args:
  - console=ttyS0
default: discovery
install:
  device: /dev/sda
machines:
  - {name: node1, mac: \"52:54:00:a1:9c:ae\", role: etcd-member, ip: 10.0.0.11}
  - {name: node2, mac: \"52:54:00:b2:2f:86\", role: etcd-member, ip: 10.0.0.12}
  - {name: node3, mac: \"52:54:00:c3:61:77\", role: etcd-member, ip: 10.0.0.13}
  - {name: node4, mac: \"52:54:00:d4:11:22\", role: etcd-gateway, install: false}
";

/// `caas explain --target bootcfg-0.4 --format json` for a machine.
fn explain(data: &Path, mac: &str, labels: &[&str]) -> Value {
    let out = caas_in(data)
        .args([
            "explain",
            "--target",
            "bootcfg-0.4",
            "--format",
            "json",
            "--mac",
            mac,
        ])
        .args(labels)
        .assert()
        .success();
    serde_json::from_slice(&out.get_output().stdout).unwrap()
}

/// The path and query of a URL (`http://host:port/ignition?…` → `/ignition?…`).
fn path_of(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    &after_scheme[after_scheme.find('/').unwrap()..]
}

/// Asserts that what bootcfg serves `mac`, booting and once installed (`os=installed`), is
/// what explain says; returns how many configs it checked.
fn check_machine(server: &Bootcfg, data: &Path, mac: &str) -> usize {
    let hyphens = mac.replace(':', "-");
    let mut configs = 0;
    for labels in [&[][..], &["os=installed"][..]] {
        let explained = explain(data, mac, labels);
        let query = labels
            .iter()
            .fold(format!("uuid=&mac={hyphens}"), |q, l| format!("{q}&{l}"));
        let (status, body) = server.get(&format!("/ipxe?{query}"));
        match explained["ipxe"].as_str() {
            Some(script) => {
                assert_eq!(status, 200, "/ipxe?{query}");
                assert_eq!(String::from_utf8(body).unwrap(), script, "/ipxe?{query}");
            }
            None => assert_eq!(status, 404, "/ipxe?{query}: explain says {explained}"),
        }
        // The config iPXE's profile URL fetches, plus the labels (caas-install adds
        // `&os=installed` to it for the installed system).
        let ignition = &explained["ignition"];
        let url = ignition["url"]
            .as_str()
            .unwrap_or_else(|| panic!("{explained}"));
        let path = labels
            .iter()
            .fold(path_of(url).to_owned(), |p, l| format!("{p}&{l}"));
        let id = explained["profile"]["ignition_id"].as_str().unwrap();
        let expected = fs::read(data.join("ignition").join(id)).unwrap();
        let (status, body) = server.get(&path);
        assert_eq!(status, 200, "{path}");
        assert_eq!(body, expected, "{path}");
        ignition2::assert_valid_bytes(&body);
        configs += 1;
        if labels.is_empty() {
            // explain's own answer for the profile's URL.
            assert_eq!(ignition["kind"], "raw", "{ignition}");
            assert_eq!(ignition["ok"], true, "{ignition}");
            assert_eq!(
                fs::read(ignition["file"].as_str().unwrap()).unwrap(),
                expected
            );
        }
    }
    configs
}

fn assert_log_clean(server: &Bootcfg) {
    let log = server.log();
    assert!(!log.contains("too new"), "{log}");
    assert!(!log.contains("warning parsing Ignition"), "{log}");
}

#[test]
fn bootcfg_0_4_serves_a_container_linux_lab_written_by_gen_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bootcfg");
    publish_etcd(&data);
    let lab = dir.path().join("lab.yaml");
    fs::write(&lab, LAB).unwrap();
    // Container Linux without a 2.x spec, or bootcfg 0.4 with a 3.x one: refused, naming the
    // flags, nothing written.
    let before = tree_state(&data);
    for (flags, needle) in [
        (
            &["gen", "cluster"][..],
            "os coreos: CoreOS Container Linux reads Ignition spec 2.x only, and the configs would \
             be spec 3.3: give ignition_spec (or --spec) 2.0",
        ),
        (
            &["gen", "cluster", "--compat", "bootcfg-0.4", "--spec", "3.4"][..],
            "--compat bootcfg-0.4 writes for CoreOS Container Linux of 2016, which reads Ignition \
             spec 2.x, and --spec is 3.4",
        ),
    ] {
        let out = caas_in(&data)
            .args(flags)
            .arg("-f")
            .arg(&lab)
            .assert()
            .code(2)
            .get_output()
            .clone();
        assert_one_line_error(&out.stderr, needle);
    }
    assert_eq!(tree_state(&data), before);
    caas_in(&data)
        .args(["gen", "cluster", "--compat", "bootcfg-0.4", "-f"])
        .arg(&lab)
        .assert()
        .success();
    // bootcfg 0.4 reads `boot.cmdline`; every config is spec 2.0.
    let profile: Value =
        serde_json::from_slice(&fs::read(data.join("profiles/node1.json")).unwrap()).unwrap();
    assert!(profile["boot"].get("args").is_none(), "{profile}");
    assert_eq!(profile["boot"]["cmdline"]["coreos.first_boot"], "yes");
    for entry in fs::read_dir(data.join("ignition")).unwrap() {
        ignition2::assert_valid(&entry.unwrap().path());
    }
    // Spec 2.x verifies sha512 only: the etcd roles get the published binary's.
    let member: Value =
        serde_json::from_slice(&fs::read(data.join("ignition/node1.ign")).unwrap()).unwrap();
    let etcd = fs::read(data.join("assets/etcd/current/etcd")).unwrap();
    assert_eq!(
        member["storage"]["files"][0]["contents"]["verification"]["hash"],
        format!("sha512-{}", hex::encode(sha2::Sha512::digest(&etcd)))
    );

    let server = Bootcfg::start(&data, &data.join("assets"), &dir.path().join("bootcfg.log"));
    let mut configs = 0;
    for mac in [
        "52:54:00:a1:9c:ae",
        "52:54:00:b2:2f:86",
        "52:54:00:c3:61:77",
        "52:54:00:d4:11:22",
        "52:54:00:ee:ee:01",
    ] {
        configs += check_machine(&server, &data, mac);
    }
    assert_eq!(configs, 10);
    assert_log_clean(&server);
    caas_in(&data)
        .args(["lint", "--target", "bootcfg-0.4", "--deny", "warnings"])
        .assert()
        .success();

    // The log check can fail: a 2.2 config, which Container Linux of 2016 cannot read, is
    // served all the same, and bootcfg says so.
    caas_in(&data)
        .args([
            "gen",
            "cluster",
            "--compat",
            "bootcfg-0.4",
            "--spec",
            "2.2",
            "-f",
        ])
        .arg(&lab)
        .assert()
        .success();
    let (status, body) = server.get("/ignition?uuid=&mac=52-54-00-d4-11-22");
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("\"version\": \"2.2.0\""));
    ignition2::assert_valid_bytes(&body);
    assert!(
        server.log().contains("incorrect config version (too new)"),
        "{}",
        server.log()
    );
}

#[test]
fn bootcfg_0_4_serves_the_roles_schedule_once_gives_discovered_machines() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bootcfg");
    publish_etcd(&data);
    let db = dir.path().join("caas.db");
    // The 2016 behaviour: every machine that reports is admitted.
    let api = Api::start(&db, &["--admit", "all"]);
    for n in 0..3 {
        discover_captured(&api.url, n);
        std::thread::sleep(std::time::Duration::from_millis(5)); // distinct first-seen times
    }
    drop(api);
    caas_in(&data)
        .args([
            "schedule",
            "once",
            "--os",
            "coreos",
            "--compat",
            "bootcfg-0.4",
        ])
        .args([
            "--matchbox-url",
            "http://bootcfg.lab:8080",
            "--etcd-members",
            "3",
        ])
        .arg("--db")
        .arg(&db)
        .assert()
        .success();
    // Without --compat or a 2.x spec, Container Linux is refused, naming the flags.
    let out = caas_in(&data)
        .args([
            "schedule",
            "once",
            "--os",
            "coreos",
            "--matchbox-url",
            "http://m:8080",
        ])
        .arg("--db")
        .arg(&db)
        .assert()
        .code(2)
        .get_output()
        .clone();
    common::assert_one_line_error(
        &out.stderr,
        "--os coreos: CoreOS Container Linux reads Ignition spec 2.x only, and the configs would be spec 3.3: give --spec 2.0",
    );

    let server = Bootcfg::start(&data, &data.join("assets"), &dir.path().join("bootcfg.log"));
    let macs: Vec<String> = ["0", "1", "2"]
        .iter()
        .map(|i| {
            let group: Value = serde_json::from_slice(
                &fs::read(data.join(format!("groups/etcd-{i}.json"))).unwrap(),
            )
            .unwrap();
            group["selector"]["mac"].as_str().unwrap().to_owned()
        })
        .collect();
    for mac in &macs {
        let explained = explain(&data, mac, &[]);
        let (status, body) = server.get(&format!("/ipxe?uuid=&mac={}", mac.replace(':', "-")));
        assert_eq!(status, 200);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            explained["ipxe"].as_str().unwrap()
        );
        let url = explained["ignition"]["url"].as_str().unwrap();
        let (status, body) = server.get(path_of(url));
        assert_eq!(status, 200, "{url}");
        assert_eq!(
            body,
            fs::read(explained["ignition"]["file"].as_str().unwrap()).unwrap()
        );
        assert!(String::from_utf8_lossy(&body).contains("\"version\": \"2.0.0\""));
        ignition2::assert_valid_bytes(&body);
    }
    assert_log_clean(&server);
}
