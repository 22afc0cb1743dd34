//! Admission and the inventory end to end, against a real `caas api` on 127.0.0.1 and its
//! SQLite store: `--admit` rules, the operator token on the inventory routes, `caas machines
//! list|show|approve|forget` over `--db` and `--api`, and what `caas schedule once` does with
//! pending, forgotten and released machines.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use common::api::{Api, TOKEN};
use common::{assert_one_line_error, caas, caas_in, publish_etcd, tree_state};

const MATCHBOX: &str = "http://172.20.0.1:8080";

fn mac(n: u8) -> String {
    format!("52:54:00:00:00:{n:02x}")
}

fn report(n: u8, ipv4: &str) -> Value {
    json!({
        "boot-info": {"mac": mac(n), "uuid": format!("uuid-{n}")},
        "hostname": format!("node{n}"),
        "interfaces": [{"name": "eth0", "mac": mac(n), "ipv4": ipv4, "netmask": 24}]
    })
}

/// (status, body) of `method url` with an optional bearer token and JSON body.
fn call(method: &str, url: &str, token: Option<&str>, body: Option<&Value>) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent();
    let mut request = ureq::http::Request::builder().method(method).uri(url);
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let sent = match body {
        Some(body) => agent.run(
            request
                .header("Content-Type", "application/json")
                .body(body.to_string())
                .unwrap(),
        ),
        None => agent.run(request.body(()).unwrap()),
    };
    let mut response = sent.unwrap_or_else(|err| panic!("{method} {url}: {err}"));
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().unwrap())
}

fn post_report(api: &Api, n: u8, ipv4: &str) {
    let (status, body) = call(
        "POST",
        &format!("{}/discovery", api.url),
        None,
        Some(&report(n, ipv4)),
    );
    assert_eq!(status, 200, "{body}");
}

/// MAC → admission of every machine `caas machines list --db` shows (read-only, while the
/// API runs).
fn admissions(db: &Path) -> Vec<(String, Value)> {
    let out = caas()
        .args(["machines", "list", "--format", "json", "--db"])
        .arg(db)
        .assert()
        .success();
    let list: Vec<Value> = serde_json::from_slice(&out.get_output().stdout).unwrap();
    list.into_iter()
        .map(|m| {
            (
                m["mac"].as_str().unwrap().to_owned(),
                m["admission"].clone(),
            )
        })
        .collect()
}

fn states(db: &Path) -> Vec<(String, String)> {
    admissions(db)
        .into_iter()
        .map(|(mac, a)| (mac, a["state"].as_str().unwrap().to_owned()))
        .collect()
}

fn state_of(db: &Path, n: u8) -> String {
    states(db)
        .into_iter()
        .find(|(m, _)| *m == mac(n))
        .map_or_else(|| "absent".into(), |(_, s)| s)
}

#[test]
fn each_admit_rule_admits_what_it_names_and_nothing_else() {
    // Machine 1 and 3 boot on 10.1.0.0/24, machine 2 on 10.2.0.0/24.
    for (rule, admitted, by) in [
        (
            Some("52:54:00:00:00:01,52-54-00-00-00-03"),
            vec![1, 3],
            "rule 52:54:00:00:00:01",
        ),
        (Some("10.2.0.0/16"), vec![2], "rule 10.2.0.0/16"),
        (Some("all"), vec![1, 2, 3], "rule all"),
        (None, vec![], ""),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("caas.db");
        let extra: Vec<&str> = rule.map_or(vec![], |rule| vec!["--admit", rule]);
        let api = Api::start(&db, &extra);
        post_report(&api, 1, "10.1.0.1");
        post_report(&api, 2, "10.2.0.2");
        post_report(&api, 3, "10.1.0.3");
        let got = admissions(&db);
        for (mac_n, admission) in [1, 2, 3].iter().zip(&got) {
            assert_eq!(admission.0, mac(*mac_n));
            let want = if admitted.contains(mac_n) {
                "admitted"
            } else {
                "pending"
            };
            assert_eq!(admission.1["state"], want, "{rule:?}: {got:?}");
        }
        if let Some(first) = admitted.first() {
            let record = &got[usize::from(*first) - 1].1;
            assert_eq!(record["by"], by, "{rule:?}");
            assert!(record["at"].is_string());
        }
        assert!(api.log().contains("caas api started"), "{}", api.log());
    }
    // A rule that is none of the three is refused before anything starts.
    let dir = tempfile::tempdir().unwrap();
    for bad in ["anyone", "10.0.0.7/8", "52:54:00"] {
        let out = caas()
            .args(["api", "--listen", "127.0.0.1:0", "--admit", bad, "--db"])
            .arg(dir.path().join("caas.db"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert_one_line_error(&out.stderr, bad);
    }
    assert!(!dir.path().join("caas.db").exists());
}

#[test]
fn the_inventory_routes_need_the_operator_token_and_booting_machines_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("caas.db");
    let api = Api::start(&db, &[]);
    post_report(&api, 1, "10.1.0.1");
    let url = |path: &str| format!("{}{path}", api.url);
    let approve = json!({"macs": [mac(1)]});
    let routes: [(&str, String, Option<&Value>); 6] = [
        ("GET", url("/discovery"), None),
        ("GET", url("/discovery/interfaces"), None),
        ("GET", url("/discovery/machines"), None),
        ("GET", url(&format!("/discovery/machines/{}", mac(1))), None),
        ("POST", url("/discovery/machines/approve"), Some(&approve)),
        ("POST", url("/discovery/machines/forget"), Some(&approve)),
    ];
    for (method, url, body) in &routes {
        let (status, text) = call(method, url, None, *body);
        assert_eq!(status, 401, "{method} {url} without a token: {text}");
        let (status, _) = call(method, url, Some("test-operator-token-0123456780"), *body);
        assert_eq!(status, 403, "{method} {url} with another token");
        let (status, text) = call(method, url, Some(TOKEN), *body);
        assert_eq!(status, 200, "{method} {url} with the token: {text}");
    }
    // What a booting machine needs stays open.
    for path in ["/boot.ipxe", "/healthz", "/"] {
        assert_eq!(call("GET", &url(path), None, None).0, 200, "{path}");
    }
    post_report(&api, 2, "10.1.0.2");

    // No token file: nobody lists, whatever they send, and the log says why.
    let other = dir.path().join("other.db");
    let open = Api::start_without_token(&other, &[]);
    for token in [None, Some(TOKEN)] {
        let (status, _) = call(
            "GET",
            &format!("{}/discovery/machines", open.url),
            token,
            None,
        );
        assert_eq!(status, 403);
    }
    let (status, _) = call(
        "POST",
        &format!("{}/discovery", open.url),
        None,
        Some(&report(1, "10.1.0.1")),
    );
    assert_eq!(status, 200);
    assert!(
        open.log().contains("no --operator-token-file"),
        "{}",
        open.log()
    );

    // The clients say which flag is missing or wrong (exit 2).
    let out = caas()
        .args(["machines", "list", "--api", &api.url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_one_line_error(&out.stderr, "--operator-token-file");
    let wrong = dir.path().join("wrong-token");
    fs::write(&wrong, "not-the-operator-token-01234").unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(&wrong, fs::Permissions::from_mode(0o600)).unwrap();
    let out = caas()
        .args([
            "schedule",
            "once",
            "--matchbox-url",
            MATCHBOX,
            "--api",
            &api.url,
        ])
        .arg("--operator-token-file")
        .arg(&wrong)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_one_line_error(&out.stderr, "403");
}

#[test]
fn approve_and_forget_round_trip_through_the_cli_and_http() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("caas.db");
    let api = Api::start(&db, &[]);
    let [token_flag, token_file] = api.token_args();
    for n in 1..=3 {
        post_report(&api, n, &format!("10.1.0.{n}"));
    }
    assert_eq!(
        states(&db),
        (1..=3)
            .map(|n| (mac(n), "pending".into()))
            .collect::<Vec<_>>()
    );

    // Through the API with the CLI: approve one.
    let out = caas()
        .args([
            "machines",
            "approve",
            &mac(1),
            "--api",
            &api.url,
            token_flag,
            token_file,
        ])
        .env("USER", "alice")
        .assert()
        .success();
    assert_eq!(
        String::from_utf8_lossy(&out.get_output().stdout),
        format!("admitted {}\n", mac(1))
    );
    let (_, admission) = admissions(&db).remove(0);
    assert_eq!(admission["by"], "operator alice (http from 127.0.0.1)");

    // Through HTTP: an unknown MAC changes nothing (404), then approve another.
    let approve = format!("{}/discovery/machines/approve", api.url);
    let (status, body) = call(
        "POST",
        &approve,
        Some(TOKEN),
        Some(&json!({"macs": [mac(2), mac(9)]})),
    );
    assert_eq!(status, 404, "{body}");
    assert!(body.contains(&mac(9)), "{body}");
    assert_eq!(state_of(&db, 2), "pending");
    let (status, body) = call(
        "POST",
        &approve,
        Some(TOKEN),
        Some(&json!({"macs": [mac(2)]})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(state_of(&db, 2), "admitted");

    // Forget over HTTP; the machine is gone, and comes back pending when it reports again.
    let one = format!("{}/discovery/machines/{}", api.url, mac(2));
    assert_eq!(call("GET", &one, Some(TOKEN), None).0, 200);
    assert_eq!(call("DELETE", &one, None, None).0, 401);
    assert_eq!(call("DELETE", &one, Some(TOKEN), None).0, 200);
    assert_eq!(call("GET", &one, Some(TOKEN), None).0, 404);
    assert_eq!(state_of(&db, 2), "absent");
    post_report(&api, 2, "10.1.0.2");
    assert_eq!(state_of(&db, 2), "pending");

    // Forget with the CLI through the API; show says it is not there (exit 2).
    caas()
        .args([
            "machines",
            "forget",
            &mac(1),
            "--api",
            &api.url,
            token_flag,
            token_file,
        ])
        .assert()
        .success()
        .stdout(format!("forgotten {}\n", mac(1)));
    let out = caas()
        .args(["machines", "show", &mac(1), "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_one_line_error(&out.stderr, "not in the inventory");

    // --db writes need the store free: refused while caas api holds it.
    let out = caas()
        .args(["machines", "approve", "--all", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_one_line_error(&out.stderr, "--api URL");
    assert!(api.terminate().success());

    // API stopped: approve and forget on the store itself.
    let out = caas()
        .args(["machines", "approve", "--all", "--db"])
        .arg(&db)
        .env("USER", "bob")
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert_eq!(
        stdout,
        format!("admitted {}\nadmitted {}\n", mac(3), mac(2))
    );
    let out = caas()
        .args(["machines", "show", &mac(2), "--format", "json", "--db"])
        .arg(&db)
        .assert()
        .success();
    let shown: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(shown["admission"]["state"], "admitted");
    assert_eq!(
        shown["admission"]["by"],
        "operator bob (caas machines --db)"
    );
    assert_eq!(shown["report"]["hostname"], "node2");
    let out = caas()
        .args(["machines", "forget", &mac(3), &mac(7), "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_one_line_error(&out.stderr, &mac(7));
    assert_eq!(state_of(&db, 3), "admitted", "nothing half-applied");
    let out = caas()
        .args(["machines", "list", "--db"])
        .arg(&db)
        .assert()
        .success();
    let table = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(table.starts_with("MAC "), "{table}");
    assert!(table.ends_with("2 machines, 0 pending\n"), "{table}");
}

fn schedule_db(data: &Path, db: &Path, extra: &[&str]) -> std::process::Output {
    caas_in(data)
        .args(["schedule", "once", "--matchbox-url", MATCHBOX, "--db"])
        .arg(db)
        .args(extra)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The groups under `data`: id → selected MAC.
fn groups(data: &Path) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = fs::read_dir(data.join("groups"))
        .map(|dir| {
            dir.map(|entry| {
                let path = entry.unwrap().path();
                let group: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
                (
                    group["id"].as_str().unwrap().to_owned(),
                    group["selector"]["mac"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

#[test]
fn unadmitted_machines_are_never_scheduled_and_forgotten_members_never_reassigned() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("caas.db");
    let data = dir.path().join("bootcfg");
    publish_etcd(&data);
    let api = Api::start(&db, &[]);
    let [token_flag, token_file] = api.token_args();
    for n in 1..=4 {
        post_report(&api, n, &format!("10.1.0.{n}"));
        std::thread::sleep(Duration::from_millis(5)); // distinct first-seen times
    }
    // Four machines, none admitted: nothing is scheduled, and the run says why.
    let out = schedule_db(&data, &db, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "4 machines pending admission, given no role: caas machines list --pending; caas \
         machines approve MAC…\n0/3 machines admitted, waiting: nothing written\n"
    );
    assert!(groups(&data).is_empty());

    // Three admitted: the members; the fourth stays without a role.
    let approve = |macs: &[String]| {
        caas()
            .args([
                "machines", "approve", "--api", &api.url, token_flag, token_file,
            ])
            .args(macs)
            .assert()
            .success();
    };
    approve(&[mac(1), mac(2), mac(3)]);
    let out = schedule_db(&data, &db, &["--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["pending"], 1);
    let members = || {
        [0, 1, 2].map(|i| {
            (
                (format!("etcd-{i}")),
                fs::read(data.join(format!("groups/etcd-{i}.json"))).unwrap(),
            )
        })
    };
    let before = members();
    assert_eq!(
        groups(&data),
        vec![
            ("etcd-0".into(), mac(1)),
            ("etcd-1".into(), mac(2)),
            ("etcd-2".into(), mac(3))
        ]
    );

    // etcd-1 forgotten, the fourth machine admitted: it becomes a worker, never etcd-1.
    caas()
        .args([
            "machines",
            "forget",
            &mac(2),
            "--api",
            &api.url,
            token_flag,
            token_file,
        ])
        .assert()
        .success();
    approve(&[mac(4)]);
    let out = schedule_db(&data, &db, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "etcd-1 ({}, 10.1.0.2) is no longer in the inventory (forgotten?): its role is kept",
            mac(2)
        )),
        "{stderr}"
    );
    assert!(stderr.contains("etcdctl member remove"), "{stderr}");
    assert_eq!(members(), before, "the members' groups are untouched");
    assert!(groups(&data).contains(&("worker-0".into(), mac(4))));

    // It reports again: pending, still etcd-1, reported as such; nothing moves.
    post_report(&api, 2, "10.1.0.2");
    let out = schedule_db(&data, &db, &[]);
    assert!(out.status.success());
    assert!(
        text(&out.stderr).contains(&format!(
            "etcd-1 ({}, 10.1.0.2) is pending admission",
            mac(2)
        )),
        "{}",
        text(&out.stderr)
    );
    assert!(!text(&out.stdout).contains("pending admission, given no role"));
    assert_eq!(members(), before);
    assert_eq!(groups(&data).len(), 4);
}

/// A JSON file of records, each admitted (`--discovery` takes the operator's file as it is).
fn machines_file(dir: &Path, machines: &[u8]) -> PathBuf {
    let records: Vec<Value> = machines
        .iter()
        .map(|n| {
            json!({
                "mac": mac(*n),
                "first_seen": format!("2026-11-26T10:00:{n:02}.000Z"),
                "admission": {"state": "admitted", "by": "rule all", "at": "2026-11-26T10:00:00.000Z"},
                "report": report(*n, &format!("10.0.0.{n}")),
            })
        })
        .collect();
    let path = dir.join(format!("machines-{}.json", common::api::unique()));
    fs::write(&path, serde_json::to_vec(&records).unwrap()).unwrap();
    path
}

fn schedule_file(data: &Path, file: &Path, extra: &[&str]) -> std::process::Output {
    caas_in(data)
        .args([
            "schedule",
            "once",
            "--matchbox-url",
            MATCHBOX,
            "--discovery",
        ])
        .arg(file)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn release_frees_a_worker_and_removes_only_unchanged_scheduler_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bootcfg");
    publish_etcd(&data);
    let all = machines_file(dir.path(), &[1, 2, 3, 4, 5]);
    let out = schedule_file(&data, &all, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(groups(&data).contains(&("worker-0".into(), mac(4))));
    assert!(groups(&data).contains(&("worker-1".into(), mac(5))));

    // Members are never released; a MAC without a role is not either; nothing is written.
    let state = tree_state(&data);
    for (release, needle) in [(mac(1), "etcdctl member remove"), (mac(9), "no role")] {
        let out = schedule_file(&data, &all, &["--release", &release]);
        assert_eq!(out.status.code(), Some(2), "{release}");
        assert_one_line_error(&out.stderr, needle);
    }
    assert_eq!(tree_state(&data), state);

    // A worker's group edited since: refused, nothing removed.
    let worker0 = data.join("groups/worker-0.json");
    let original = fs::read(&worker0).unwrap();
    let mut edited: Value = serde_json::from_slice(&original).unwrap();
    edited["metadata"]["rack"] = "r2".into();
    fs::write(&worker0, serde_json::to_vec_pretty(&edited).unwrap()).unwrap();
    let out = schedule_file(&data, &all, &["--release", &mac(4)]);
    assert_eq!(out.status.code(), Some(2));
    assert_one_line_error(
        &out.stderr,
        "groups/worker-0.json is not what caas schedule writes",
    );
    assert!(worker0.exists());
    fs::write(&worker0, &original).unwrap();

    // worker-1 released (machine 5 forgotten, so no longer listed): its group only goes; the
    // shared worker files stay for worker-0.
    let four = machines_file(dir.path(), &[1, 2, 3, 4]);
    let before = tree_state(&data);
    let out = schedule_file(&data, &four, &["--release", &mac(5)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("released worker-1 {} 10.0.0.5", mac(5))),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stdout).contains("1 removed"),
        "{}",
        text(&out.stdout)
    );
    let after = tree_state(&data);
    let removed: Vec<_> = before.keys().filter(|p| !after.contains_key(*p)).collect();
    assert_eq!(removed, [&data.join("groups/worker-1.json")]);
    for (path, content) in &after {
        assert_eq!(
            before.get(path),
            Some(content),
            "{} changed",
            path.display()
        );
    }

    // The last worker released: its group and the shared config go, but the shared profile,
    // edited by hand since, stays.
    let profile = data.join("profiles/worker.json");
    let mut edited: Value = serde_json::from_slice(&fs::read(&profile).unwrap()).unwrap();
    edited["name"] = "edited".into();
    fs::write(&profile, serde_json::to_vec_pretty(&edited).unwrap()).unwrap();
    let three = machines_file(dir.path(), &[1, 2, 3]);
    let out = schedule_file(&data, &three, &["--release", &mac(4)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("profiles/worker.json changed since"),
        "{}",
        text(&out.stderr)
    );
    assert!(!worker0.exists());
    assert!(!data.join("ignition/worker.ign").exists());
    assert!(profile.exists());
    assert_eq!(groups(&data).len(), 3);
}
