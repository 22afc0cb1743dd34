//! `caas schedule once` end to end: captured machines report to a real `caas api`, the
//! scheduler turns them into an etcd cluster, matchbox's selection (`caas explain`) sends each
//! member to its group, every config passes `ignition-validate`, and reruns change nothing.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use common::api::Api;
use common::{
    assert_one_line_error, caas_in, discover_captured, ignition_validate_all, publish_etcd,
    tree_state,
};
use serde_json::{Value, json};

const MATCHBOX: &str = "http://172.20.0.1:8080";

/// The three machines the 2016 system captured: (boot MAC, boot IPv4).
const CAPTURED: [(&str, &str); 3] = [
    ("52:54:00:0d:bd:31", "172.20.0.65"),
    ("52:54:00:90:c3:9f", "172.20.0.66"),
    ("52:54:00:71:83:ea", "172.20.0.67"),
];

fn schedule(data: &Path, source: &[&str]) -> assert_cmd::assert::Assert {
    caas_in(data)
        .args(["schedule", "once", "--matchbox-url", MATCHBOX])
        .args(source)
        .assert()
}

/// `caas schedule once --matchbox-url … [extra…] --discovery <file>`, not yet run.
fn schedule_file(data: &Path, file: &Path, extra: &[&str]) -> assert_cmd::Command {
    let mut cmd = caas_in(data);
    cmd.args(["schedule", "once", "--matchbox-url", MATCHBOX])
        .args(extra)
        .arg("--discovery")
        .arg(file);
    cmd
}

/// What is under the data dir besides the etcd release the tests publish first.
fn written(data: &Path) -> std::collections::BTreeMap<PathBuf, (Vec<u8>, std::time::SystemTime)> {
    let assets = data.join("assets");
    tree_state(data)
        .into_iter()
        .filter(|(path, _)| !path.starts_with(&assets))
        .collect()
}

fn read_json(path: PathBuf) -> Value {
    serde_json::from_slice(&fs::read(&path).unwrap())
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

fn explain_group(data: &Path, mac: &str) -> String {
    let out = caas_in(data)
        .args(["explain", "--mac", mac, "--format", "json"])
        .assert()
        .success();
    let json: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    json["group"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no group in {json}"))
        .to_owned()
}

#[test]
fn three_discovered_machines_become_an_etcd_cluster_and_reruns_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bootcfg");
    publish_etcd(&data);
    // The 2016 behaviour, asked for: every machine that reports is admitted.
    let api = Api::start(&dir.path().join("caas.db"), &["--admit", "all"]);
    let [token_flag, token_file] = api.token_args();

    // Two machines: not enough for three members, nothing is written.
    discover_captured(&api.url, 0);
    discover_captured(&api.url, 1);
    schedule(&data, &["--api", &api.url, token_flag, token_file])
        .success()
        .stdout("2/3 machines discovered, waiting: nothing written\n");
    assert!(written(&data).is_empty());

    thread::sleep(Duration::from_millis(5)); // distinct first-seen times
    discover_captured(&api.url, 2);
    schedule(&data, &["--api", &api.url, token_flag, token_file]).success();

    // Members in discovery order, named etcd-<i>, each with its own group, profile and config.
    let cluster = CAPTURED
        .iter()
        .enumerate()
        .map(|(i, (_, ip))| format!("etcd-{i}=http://{ip}:2380"))
        .collect::<Vec<_>>()
        .join(",");
    for (i, (mac, ip)) in CAPTURED.iter().enumerate() {
        let id = format!("etcd-{i}");
        let group = read_json(data.join(format!("groups/{id}.json")));
        assert_eq!(group["profile"], id.as_str());
        assert_eq!(group["selector"], json!({"mac": mac}));
        assert_eq!(
            group["metadata"],
            json!({
                "caas_role": "etcd-member",
                "ipv4": ip,
                "etcd_name": id,
                "etcd_initial_cluster": cluster,
                "etcd_initial_advertise_peer_urls": format!("http://{ip}:2380"),
                "etcd_advertise_client_urls": format!("http://{ip}:2379"),
            })
        );
        let profile = read_json(data.join(format!("profiles/{id}.json")));
        assert_eq!(profile["ignition_id"], format!("{id}.ign"));
        let config = fs::read_to_string(data.join(format!("ignition/{id}.ign"))).unwrap();
        assert!(config.contains(&format!("ETCD_NAME={id}")), "{config}");
        assert!(config.contains(&format!("ETCD_INITIAL_CLUSTER={cluster}")));
        // matchbox's own selection sends each member's MAC to its group.
        assert_eq!(explain_group(&data, mac), id);
        assert_eq!(
            explain_group(&data, &mac.replace(':', "-").to_uppercase()),
            id
        );
    }
    assert_eq!(ignition_validate_all(&data), 3);
    caas_in(&data)
        .args(["lint", "--deny", "warnings"])
        .assert()
        .success();

    // A rerun, from the API or from the store itself, changes no byte and no mtime.
    let before = tree_state(&data);
    thread::sleep(Duration::from_millis(20));
    schedule(&data, &["--api", &api.url, token_flag, token_file]).success();
    schedule(
        &data,
        &["--db", dir.path().join("caas.db").to_str().unwrap()],
    )
    .success();
    schedule(
        &data,
        &["--api", &api.url, token_flag, token_file, "--plan"],
    )
    .code(0);
    assert_eq!(tree_state(&data), before);
}

/// A JSON file of discovered machines, as `GET /discovery/machines` serves them.
fn machines_file(dir: &Path, machines: &[(u8, Option<&str>, &str)]) -> PathBuf {
    let records: Vec<Value> = machines
        .iter()
        .map(|(n, ip, first_seen)| {
            let mac = format!("52:54:00:00:00:{n:02x}");
            json!({
                "mac": mac,
                "first_seen": first_seen,
                "report": {
                    "boot-info": {"mac": mac, "uuid": format!("uuid-{n}")},
                    "interfaces": [{"name": "eth0", "mac": mac, "ipv4": ip, "netmask": 24}]
                }
            })
        })
        .collect();
    let path = dir.join(format!("machines-{}.json", common::api::unique()));
    fs::write(&path, serde_json::to_vec(&records).unwrap()).unwrap();
    path
}

fn time(second: u32) -> String {
    format!("2026-11-26T10:00:{second:02}.000Z")
}

#[test]
fn more_machines_become_workers_and_members_never_move() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bootcfg");
    publish_etcd(&data);
    let first = machines_file(
        dir.path(),
        &[
            (3, Some("10.0.0.3"), &time(3)),
            (1, Some("10.0.0.1"), &time(1)),
            (2, Some("10.0.0.2"), &time(1)), // same second: the MAC breaks the tie
            (9, None, &time(0)),             // no address yet: skipped
        ],
    );
    let out = schedule_file(&data, &first, &[])
        .args(["--format", "json"])
        .assert()
        .success();
    let report: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let macs = |list: &Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|m| m["mac"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        macs(&report["members"]),
        [
            "52:54:00:00:00:01",
            "52:54:00:00:00:02",
            "52:54:00:00:00:03"
        ]
    );
    assert!(
        report["notices"][0]
            .as_str()
            .unwrap()
            .contains("52:54:00:00:00:09")
    );
    let members_before: Vec<_> = (0..3)
        .map(|i| fs::read(data.join(format!("groups/etcd-{i}.json"))).unwrap())
        .collect();

    // Later: machine 9 got its address, two machines appear that claim to be older, and
    // machine 2 (etcd-1) is gone. Members stay; newcomers become workers sharing one config.
    let second = machines_file(
        dir.path(),
        &[
            (0, Some("10.0.0.100"), &time(0)),
            (1, Some("10.0.0.1"), &time(1)),
            (3, Some("10.0.0.3"), &time(3)),
            (9, Some("10.0.0.9"), &time(0)),
            (10, Some("10.0.0.10"), &time(5)),
        ],
    );
    let out = schedule_file(&data, &second, &[])
        .args(["--workers", "2"])
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains("etcd-1 (52:54:00:00:00:02, 10.0.0.2) is no longer in the inventory"),
        "{stderr}"
    );
    for (i, before) in members_before.iter().enumerate() {
        assert_eq!(
            &fs::read(data.join(format!("groups/etcd-{i}.json"))).unwrap(),
            before
        );
    }
    let worker = |i: usize| read_json(data.join(format!("groups/worker-{i}.json")));
    assert_eq!(worker(0)["selector"]["mac"], "52:54:00:00:00:00");
    assert_eq!(worker(1)["selector"]["mac"], "52:54:00:00:00:09");
    assert!(!data.join("groups/worker-2.json").exists(), "--workers 2");
    assert_eq!(worker(0)["profile"], "worker");
    assert_eq!(
        worker(1)["metadata"]["etcd_endpoints"],
        "http://10.0.0.1:2379,http://10.0.0.2:2379,http://10.0.0.3:2379"
    );
    let gateway = fs::read_to_string(data.join("ignition/worker.ign")).unwrap();
    assert!(gateway.contains("gateway start"), "{gateway}");
    assert_eq!(ignition_validate_all(&data), 4);
    assert_eq!(explain_group(&data, "52:54:00:00:00:09"), "worker-1");
    caas_in(&data)
        .args(["lint", "--deny", "warnings"])
        .assert()
        .success();
}

#[test]
fn plan_shows_pending_changes_and_exits_2_until_applied() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bootcfg");
    publish_etcd(&data);
    let file = machines_file(
        dir.path(),
        &[
            (1, Some("10.0.0.1"), &time(1)),
            (2, Some("10.0.0.2"), &time(2)),
            (3, Some("10.0.0.3"), &time(3)),
        ],
    );
    let plan = || {
        caas_in(&data)
            .args([
                "schedule",
                "once",
                "--matchbox-url",
                MATCHBOX,
                "--plan",
                "--discovery",
            ])
            .arg(&file)
            .assert()
    };
    let out = plan().code(2);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("would create "), "{stdout}");
    assert!(stdout.contains("9 files would be created"), "{stdout}");
    assert!(written(&data).is_empty(), "--plan writes nothing");

    let out = caas_in(&data)
        .args([
            "schedule",
            "once",
            "--matchbox-url",
            MATCHBOX,
            "--plan",
            "--format",
            "json",
        ])
        .arg("--discovery")
        .arg(&file)
        .assert()
        .code(2);
    let report: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(report["plan"], true);
    assert_eq!(report["files"].as_array().unwrap().len(), 9);
    assert!(
        report["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["action"] == "created")
    );

    schedule_file(&data, &file, &[]).assert().success();
    plan().code(0);
    // A changed OS setting is an update the plan shows.
    let out = caas_in(&data)
        .args([
            "schedule",
            "once",
            "--matchbox-url",
            MATCHBOX,
            "--plan",
            "--arg",
            "console=ttyS0",
        ])
        .arg("--discovery")
        .arg(&file)
        .assert()
        .code(2);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("would update "), "{stdout}");
    assert!(stdout.contains("profiles/etcd-0.json"), "{stdout}");
}

#[test]
fn bad_input_exits_2_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bootcfg");
    publish_etcd(&data);
    let file = machines_file(dir.path(), &[(1, Some("10.0.0.1"), &time(1))]);
    let file = file.to_str().unwrap();
    let broken = dir.path().join("broken.json");
    fs::write(&broken, "[{\"mac\": 3}]").unwrap();
    let broken = broken.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--discovery", file, "--etcd-members", "2"],
            "--allow-even",
        ),
        (vec!["--discovery", file, "--etcd-members", "0"], "0"),
        (vec!["--discovery", file, "--workers", "some"], "\"some\""),
        (
            vec!["--discovery", "/nonexistent/m.json"],
            "/nonexistent/m.json",
        ),
        (vec!["--discovery", broken], "broken.json"),
        (vec!["--db", "/nonexistent/caas.db"], "/nonexistent/caas.db"),
    ];
    for (args, needle) in cases {
        let out = caas_in(&data)
            .args(["schedule", "once", "--matchbox-url", MATCHBOX])
            .args(&args)
            .assert()
            .code(2);
        assert_one_line_error(&out.get_output().stderr, needle);
        assert!(written(&data).is_empty(), "{args:?}");
    }
    // A record whose key is not its report's boot MAC.
    let mismatched = dir.path().join("mismatched.json");
    fs::write(
        &mismatched,
        serde_json::to_vec(&json!([{
            "mac": "52:54:00:00:00:99",
            "report": {
                "boot-info": {"mac": "52:54:00:00:00:01"},
                "interfaces": [{"name": "eth0", "mac": "52:54:00:00:00:01", "ipv4": "10.0.0.1"}]
            }
        }]))
        .unwrap(),
    )
    .unwrap();
    let out = schedule_file(&data, &mismatched, &[]).assert().code(2);
    assert_one_line_error(&out.get_output().stderr, "52:54:00:00:00:99");
    // CoreOS Container Linux reads Ignition 2.x only.
    let out = caas_in(&data)
        .args([
            "schedule",
            "once",
            "--matchbox-url",
            MATCHBOX,
            "--os",
            "coreos",
        ])
        .args(["--discovery", file])
        .assert()
        .code(2);
    assert_one_line_error(&out.get_output().stderr, "--os coreos");
    assert!(written(&data).is_empty());

    // No source at all, or two: usage errors.
    caas_in(&data).args(["schedule", "once"]).assert().code(2);
    caas_in(&data)
        .args(["schedule", "once", "--discovery", file, "--db", "x.db"])
        .assert()
        .code(2);

    // Without a matchbox URL the members' Ignition URL cannot be written: nothing is.
    let three = machines_file(
        dir.path(),
        &[
            (1, Some("10.0.0.1"), &time(1)),
            (2, Some("10.0.0.2"), &time(2)),
            (3, Some("10.0.0.3"), &time(3)),
        ],
    );
    let out = caas_in(&data)
        .args(["schedule", "once", "--discovery"])
        .arg(&three)
        .assert()
        .code(2);
    assert_one_line_error(&out.get_output().stderr, "--matchbox-url");
    assert!(written(&data).is_empty());

    // An even cluster when asked for explicitly.
    caas_in(&data)
        .args([
            "schedule",
            "once",
            "--matchbox-url",
            MATCHBOX,
            "--etcd-members",
            "2",
        ])
        .args(["--allow-even", "--discovery"])
        .arg(&three)
        .assert()
        .success();
    assert!(data.join("groups/etcd-1.json").exists());
    assert!(!data.join("groups/etcd-2.json").exists());

    // A scheduled group edited into something caas cannot read back stops the next run.
    let group = data.join("groups/etcd-1.json");
    let mut value: Value = serde_json::from_slice(&fs::read(&group).unwrap()).unwrap();
    value["metadata"]["ipv4"] = json!("not an address");
    fs::write(&group, serde_json::to_vec(&value).unwrap()).unwrap();
    let before = tree_state(&data);
    let out = schedule_file(&data, &three, &[]).assert().code(2);
    assert_one_line_error(&out.get_output().stderr, "groups/etcd-1.json");
    assert_eq!(tree_state(&data), before);
}

#[test]
fn files_the_scheduler_did_not_write_are_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bootcfg");
    publish_etcd(&data);
    let three = machines_file(
        dir.path(),
        &[
            (1, Some("10.0.0.1"), &time(1)),
            (2, Some("10.0.0.2"), &time(2)),
            (3, Some("10.0.0.3"), &time(3)),
            (4, Some("10.0.0.4"), &time(4)),
        ],
    );
    // A lab with a machine that happens to be called etcd-0.
    let lab = dir.path().join("lab.yaml");
    fs::write(
        &lab,
        format!(
            "name: lab\nos: flatcar\nmatchbox_url: {MATCHBOX}\napi_url: http://10.0.0.1:5000\n\
             ssh_authorized_keys: [\"ssh-ed25519 AAAA lab\"]\n\
             machines:\n  - name: etcd-0\n    mac: 52:54:00:00:01:00\n    role: ssh\n"
        ),
    )
    .unwrap();
    caas_in(&data)
        .args(["gen", "cluster", "-f"])
        .arg(&lab)
        .assert()
        .success();
    let before = tree_state(&data);
    let out = schedule_file(&data, &three, &[]).assert().code(2);
    assert_one_line_error(&out.get_output().stderr, "groups/etcd-0.json");
    assert_eq!(tree_state(&data), before);

    // Without the clashing group, a profile of the same name is still someone else's.
    fs::remove_file(data.join("groups/etcd-0.json")).unwrap();
    let before = tree_state(&data);
    let out = schedule_file(&data, &three, &[]).assert().code(2);
    assert_one_line_error(&out.get_output().stderr, "etcd-0");
    assert!(
        String::from_utf8_lossy(&out.get_output().stderr).contains("not written by caas schedule")
    );
    assert_eq!(tree_state(&data), before);
}

#[test]
fn ipxe_commands_in_arg_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bootcfg");
    let file = machines_file(
        dir.path(),
        &[
            (1, Some("10.0.0.1"), &time(1)),
            (2, Some("10.0.0.2"), &time(2)),
            (3, Some("10.0.0.3"), &time(3)),
        ],
    );
    for word in [";", "||", "&&", "#echo"] {
        let out = schedule_file(&data, &file, &["--arg", word, "--arg", "echo"])
            .assert()
            .code(2);
        assert_one_line_error(&out.get_output().stderr, &format!("{word:?}"));
        assert!(tree_state(&data).is_empty(), "{word}");
    }
}
