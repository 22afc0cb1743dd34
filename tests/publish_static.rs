//! `caas publish static`: the same data directory served by the real matchbox v0.8.3 and by a
//! real nginx on the published tree answers every request alike (bodies byte for byte, and
//! statuses), for a `gen cluster` lab and a `schedule once` run, machines known and unknown,
//! MACs in every spelling, with and without `os=installed`; reruns and refusals.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use caas::matchbox::Group;
use common::matchbox::{Matchbox, free_port};
use common::nginx::Nginx;
use common::{assert_one_line_error, caas_in, publish_etcd, tree_state};
use serde_json::{Value, json};

/// A small deterministic generator (xorshift): the same queries on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
}

/// The MACs the data directory's groups select on.
fn selected_macs(data: &Path) -> BTreeSet<String> {
    let mut macs = BTreeSet::new();
    for entry in fs::read_dir(data.join("groups")).unwrap() {
        let bytes = fs::read(entry.unwrap().path()).unwrap();
        if let Ok(group) = Group::parse(&bytes)
            && let Some(mac) = group.selector.get("mac")
        {
            macs.insert(mac.clone());
        }
    }
    macs
}

/// `mac` as a machine might send it: colons or hyphens, lower or upper case.
fn spelled(mac: &str, rng: &mut Rng) -> String {
    let mac = if rng.coin() {
        mac.replace(':', "-")
    } else {
        mac.to_owned()
    };
    if rng.coin() { mac.to_uppercase() } else { mac }
}

/// A query as iPXE's chain sends it (uuid, mac, domain, hostname, serial), maybe with
/// `os=installed`, in a random order.
fn query(mac: Option<&str>, rng: &mut Rng) -> String {
    let mut pairs = vec![
        format!("uuid=u-{}", rng.below(10)),
        "domain=".to_owned(),
        format!("hostname=h{}", rng.below(100)),
        "serial=".to_owned(),
    ];
    if let Some(mac) = mac {
        pairs.push(format!("mac={mac}"));
    }
    if rng.coin() {
        pairs.push("os=installed".to_owned());
    }
    for i in (1..pairs.len()).rev() {
        pairs.swap(i, rng.below(i + 1));
    }
    pairs.join("&")
}

/// Publishes `data` to `out` (`/metadata` passed to `matchbox`), returning the JSON report.
fn publish(data: &Path, out: &Path, nginx_port: u16, matchbox: &Matchbox) -> Value {
    let output = caas_in(data)
        .args(["publish", "static", "--format", "json", "--out"])
        .arg(out)
        .args(["--listen", &format!("127.0.0.1:{nginx_port}")])
        .args([
            "--metadata-upstream",
            &format!("http://127.0.0.1:{}", matchbox.port()),
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice(&output).unwrap()
}

/// matchbox writes /metadata lines in Go's random map order: compare them as a set.
fn lines(body: &[u8]) -> BTreeSet<String> {
    String::from_utf8_lossy(body)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Asks both servers the same requests; returns how many `/ipxe` and `/ignition` answers
/// were 200 and how many 404.
fn assert_same_answers(
    matchbox: &Matchbox,
    nginx: &Nginx,
    macs: &BTreeSet<String>,
    seed: u64,
) -> (usize, usize) {
    let mut rng = Rng(seed);
    let mut asked: Vec<Option<String>> = macs.iter().map(|m| Some(m.clone())).collect();
    asked.extend(
        [
            "52:54:00:fe:dc:ba",
            "02:00:5e:10:00:00:00:01",
            "zz",
            "52:54:00:00:00",
        ]
        .map(|m| Some(m.to_owned())),
    );
    asked.push(None);
    let (mut ok, mut missing) = (0, 0);
    for mac in &asked {
        for _ in 0..3 {
            let sent = mac.as_deref().map(|m| spelled(m, &mut rng));
            let q = query(sent.as_deref(), &mut rng);
            for endpoint in ["ipxe", "ignition"] {
                let path = format!("/{endpoint}?{q}");
                let want = matchbox.get(&path);
                let got = nginx.get(&path);
                assert_eq!(
                    (got.0, String::from_utf8_lossy(&got.1)),
                    (want.0, String::from_utf8_lossy(&want.1)),
                    "{path}: nginx on the tree and matchbox disagree\n{}",
                    nginx.log()
                );
                match want.0 {
                    200 => ok += 1,
                    _ => missing += 1,
                }
            }
            let path = format!("/metadata?{q}");
            let (want, got) = (matchbox.get(&path), nginx.get(&path));
            assert_eq!(got.0, want.0, "{path}");
            assert_eq!(lines(&got.1), lines(&want.1), "{path}");
        }
    }
    // Spellings Go reads its own way: keys compare exactly, only a key's first value counts.
    let known = macs.iter().next().expect("a machine").replace(':', "-");
    let odd = [
        format!("MAC={known}"),
        format!("mac={known}&mac=zz"),
        format!("mac=zz&mac={known}"),
        format!("mac&mac={known}"),
        format!("xmac={known}"),
        format!("mac={known}&os=installed&os=x"),
        format!("mac={known}&os=x&os=installed"),
        format!("mac={known}&OS=installed"),
        format!("mac={}", known.replacen('-', ":", 1)),
        format!("mac={}", known.replace('-', ".")),
        "uuid=u-3".to_owned(),
        "uuid=U-3".to_owned(),
        "os=installed&uuid=u-5".to_owned(),
    ];
    let mut paths: Vec<String> = ["/boot.ipxe", "/boot.ipxe.0", "/", "/nothing", "/ipxe"]
        .map(str::to_owned)
        .to_vec();
    for q in &odd {
        paths.push(format!("/ipxe?{q}"));
        paths.push(format!("/ignition?{q}"));
    }
    for path in &paths {
        assert_eq!(nginx.get(path), matchbox.get(path), "{path}");
    }
    (ok, missing)
}

/// A data dir, an output dir for the tree, and `assets/` shared by both servers.
struct Lab {
    _dir: tempfile::TempDir,
    data: PathBuf,
    out: PathBuf,
}

fn lab() -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = dir.path().join("published");
    publish_etcd(&data);
    Lab {
        data,
        out,
        _dir: dir,
    }
}

#[test]
fn a_gen_cluster_lab_is_served_alike_and_a_rerun_touches_nothing() {
    let lab = lab();
    caas_in(&lab.data)
        .args(["gen", "cluster"])
        .assert()
        .success();
    // Groups beyond the generated ones: a machine whose profile is missing (a 404 that must
    // not fall through to the default group), selectors on uuid and os, and one on all three.
    let generated = selected_macs(&lab.data);
    let node1 = generated.iter().next().expect("a machine");
    for (id, selector, profile) in [
        ("broken", json!({"mac": "52:54:00:0b:0b:0b"}), "missing"),
        ("by-uuid", json!({"uuid": "u-3"}), "install"),
        ("os-only", json!({"os": "installed"}), "missing"),
        (
            "all-three",
            json!({"mac": node1, "uuid": "u-5", "os": "installed"}),
            "install",
        ),
        ("mac-uuid", json!({"mac": node1, "uuid": "u-6"}), "missing"),
    ] {
        let group = json!({"id": id, "profile": profile, "selector": selector});
        fs::write(
            lab.data.join(format!("groups/{id}.json")),
            serde_json::to_vec(&group).unwrap(),
        )
        .unwrap();
    }
    let matchbox = Matchbox::start(&lab.data);
    let port = free_port();
    let report = publish(&lab.data, &lab.out, port, &matchbox);
    assert_eq!(report["tree_unchanged"], false, "{report:#}");
    let nginx = Nginx::start(&lab.out.join("nginx.conf"), port);

    let macs = selected_macs(&lab.data);
    assert!(macs.len() >= 4, "{macs:?}");
    let (ok, missing) = assert_same_answers(&matchbox, &nginx, &macs, 0x5eed);
    assert!(ok > 0 && missing > 0, "{ok} answered, {missing} 404s");

    // An asset, through the `assets` link (the test matchbox serves none: compare with the file).
    let (status, body) = nginx.get("/assets/etcd/current/etcd");
    assert_eq!(status, 200);
    assert_eq!(
        body,
        fs::read(lab.data.join("assets/etcd/current/etcd")).unwrap()
    );
    assert_eq!(nginx.get("/assets/etcd/none").0, 404);

    // A rerun on the same data writes nothing and swaps nothing.
    let before = tree_state(&lab.out);
    let report = publish(&lab.data, &lab.out, port, &matchbox);
    assert_eq!(report["tree_unchanged"], true, "{report:#}");
    assert_eq!(report["bodies_written"], 0);
    assert_eq!(report["nginx_conf"]["action"], "unchanged");
    assert_eq!(tree_state(&lab.out), before);
}

fn machines_file(dir: &Path, machines: std::ops::Range<u8>) -> PathBuf {
    let records: Vec<Value> = machines
        .map(|n| {
            let mac = format!("52:54:00:00:00:{n:02x}");
            json!({
                "mac": mac,
                "first_seen": format!("2026-11-26T10:00:{n:02}.000Z"),
                "report": {
                    "boot-info": {"mac": mac, "uuid": format!("uuid-{n}")},
                    "interfaces": [{"name": "eth0", "mac": mac,
                                    "ipv4": format!("10.0.0.{}", 10 + n), "netmask": 24}]
                }
            })
        })
        .collect();
    let path = dir.join(format!("machines-{}.json", machines_len(&records)));
    fs::write(&path, serde_json::to_vec(&records).unwrap()).unwrap();
    path
}

fn machines_len(records: &[Value]) -> usize {
    records.len()
}

#[test]
fn a_schedule_run_is_served_alike_and_an_update_swaps_the_tree_whole() {
    let lab = lab();
    let schedule = |machines: std::ops::Range<u8>| {
        let file = machines_file(lab.data.parent().unwrap(), machines);
        caas_in(&lab.data)
            .args(["schedule", "once", "--matchbox-url", "http://10.0.0.1:8080"])
            .arg("--discovery")
            .arg(&file)
            .assert()
            .success();
    };
    schedule(1..6);
    let matchbox = Matchbox::start(&lab.data);
    let port = free_port();
    publish(&lab.data, &lab.out, port, &matchbox);
    let first_tree = fs::read_link(lab.out.join("current")).unwrap();
    let nginx = Nginx::start(&lab.out.join("nginx.conf"), port);
    let macs = selected_macs(&lab.data);
    assert!(macs.len() >= 5, "{macs:?}");
    let (ok, _) = assert_same_answers(&matchbox, &nginx, &macs, 7);
    assert!(ok > 0);

    // More machines: the rerun writes only the new bodies and swaps the tree; nginx serves it
    // without a reload, and the previous tree stays for requests still on it.
    schedule(1..9);
    let report = publish(&lab.data, &lab.out, port, &matchbox);
    assert_eq!(report["tree_unchanged"], false);
    assert!(
        report["bodies_unchanged"].as_u64().unwrap() > 0,
        "{report:#}"
    );
    assert_eq!(report["nginx_conf"]["action"], "unchanged");
    let second_tree = fs::read_link(lab.out.join("current")).unwrap();
    assert_ne!(first_tree, second_tree);
    assert!(lab.out.join(&first_tree).is_dir());
    let macs = selected_macs(&lab.data);
    assert!(macs.len() >= 8, "{macs:?}");
    assert_same_answers(&matchbox, &nginx, &macs, 11);

    // A third tree removes the first; the second stays as the previous one.
    schedule(1..10);
    publish(&lab.data, &lab.out, port, &matchbox);
    assert!(!lab.out.join(&first_tree).exists());
    assert!(lab.out.join(&second_tree).is_dir());
}

#[test]
fn groups_a_tree_cannot_resolve_are_refused_by_name() {
    let lab = lab();
    caas_in(&lab.data)
        .args(["gen", "cluster"])
        .assert()
        .success();
    fs::write(
        lab.data.join("groups/rack7.json"),
        br#"{"id": "rack7", "profile": "install", "selector": {"rack": "7"}}"#,
    )
    .unwrap();
    let assert = caas_in(&lab.data)
        .args(["publish", "static", "--out"])
        .arg(&lab.out)
        .assert()
        .code(2);
    let stderr = &assert.get_output().stderr;
    assert_one_line_error(stderr, "rack7.json");
    assert_one_line_error(stderr, "mac, os or uuid");
    assert!(!lab.out.join("current").exists());
    assert!(!lab.out.join("bodies").exists());

    fs::write(
        lab.data.join("groups/rack7.json"),
        br#"{"id": "rack7", "profile": "install", "selector": {"os": "../x"}}"#,
    )
    .unwrap();
    let assert = caas_in(&lab.data)
        .args(["publish", "static", "--out"])
        .arg(&lab.out)
        .assert()
        .code(2);
    assert_one_line_error(&assert.get_output().stderr, "rack7.json");

    let assert = caas_in(&lab.data)
        .args(["publish", "static", "--target", "matchbox-0.11", "--out"])
        .arg(&lab.out)
        .assert()
        .code(2);
    assert_one_line_error(&assert.get_output().stderr, "matchbox-0.8");
}
