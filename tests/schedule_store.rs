//! `caas schedule once --db` with the roles recorded in the store, on both engines (SQLite, and
//! PostgreSQL from Debian's package, see tests/common/postgres.rs): two schedulers on two data
//! dirs started at the same instant end byte-identical, every machine in one role, no role
//! held twice; a data dir written before roles were recorded is read back as before.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use common::api::Api;
use common::postgres::Postgres;
use common::{caas_in, publish_etcd};

const MATCHBOX: &str = "http://172.20.0.1:8080";

fn post(api: &str, i: usize) {
    let mac = format!("52:54:00:00:01:{i:02x}");
    let body = json!({
        "boot-info": {"mac": mac},
        "interfaces": [{"name": "eth0", "mac": mac, "ipv4": format!("172.20.0.{}", 10 + i), "netmask": 24}]
    });
    let response = ureq::post(format!("{api}/discovery"))
        .send(&serde_json::to_vec(&body).unwrap()[..])
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

/// Every file under `data` but the published assets: relative path → bytes.
fn files(data: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    common::tree_state(data)
        .into_iter()
        .filter(|(path, _)| !path.starts_with(data.join("assets")))
        .map(|(path, (bytes, _))| (path.strip_prefix(data).unwrap().to_owned(), bytes))
        .collect()
}

/// `caas schedule once --db <db>` on `data`, not waited for.
fn spawn_schedule(data: &Path, db: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_caas"))
        .arg("--data-dir")
        .arg(data)
        .args([
            "schedule",
            "once",
            "--matchbox-url",
            MATCHBOX,
            "--etcd-members",
            "3",
            "--db",
            db,
        ])
        .env_remove("CAAS_DB")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// (role id → MAC) of the groups the scheduler wrote in `data`.
fn roles(data: &Path) -> BTreeMap<String, String> {
    let mut roles = BTreeMap::new();
    for entry in fs::read_dir(data.join("groups")).unwrap() {
        let path = entry.unwrap().path();
        let group: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        if group["metadata"]["caas_role"].is_string() {
            let id = group["id"].as_str().unwrap().to_owned();
            let mac = group["selector"]["mac"].as_str().unwrap().to_owned();
            assert!(roles.insert(id, mac).is_none());
        }
    }
    roles
}

/// Seven machines, two schedulers at once: the same files, each machine once, each role once.
fn two_schedulers_agree(db: &str, api: &Api, dir: &Path) {
    for i in 0..7 {
        post(&api.url, i);
    }
    let (a, b) = (dir.join("a"), dir.join("b"));
    publish_etcd(&a);
    publish_etcd(&b);
    let children = [spawn_schedule(&a, db), spawn_schedule(&b, db)];
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(files(&a), files(&b), "the two data dirs differ");
    let roles = roles(&a);
    assert_eq!(roles.len(), 7, "{roles:?}");
    let macs: BTreeSet<&String> = roles.values().collect();
    assert_eq!(macs.len(), 7, "a machine in two roles: {roles:?}");
    assert_eq!(
        roles.keys().filter(|id| id.starts_with("etcd-")).count(),
        3,
        "{roles:?}"
    );
}

/// A data dir `schedule` wrote before roles were recorded (from `--api`): `--db` keeps its
/// roles, records them, and a second data dir gets the same files.
fn an_existing_data_dir_reads_back_as_before(db: &str, api: &Api, dir: &Path) {
    for i in 0..4 {
        post(&api.url, i);
    }
    let old = dir.join("old");
    publish_etcd(&old);
    caas_in(&old)
        .args([
            "schedule",
            "once",
            "--matchbox-url",
            MATCHBOX,
            "--api",
            &api.url,
        ])
        .args(api.token_args())
        .assert()
        .success();
    let before = files(&old);
    let old_roles = roles(&old);
    assert_eq!(old_roles.len(), 4);
    // The plan against the store: nothing would change.
    caas_in(&old)
        .args([
            "schedule",
            "once",
            "--matchbox-url",
            MATCHBOX,
            "--plan",
            "--db",
            db,
        ])
        .assert()
        .code(0);
    post(&api.url, 4);
    caas_in(&old)
        .args(["schedule", "once", "--matchbox-url", MATCHBOX, "--db", db])
        .assert()
        .success();
    let after = roles(&old);
    assert_eq!(after.len(), 5);
    for (id, mac) in &old_roles {
        assert_eq!(after.get(id), Some(mac), "{id} moved");
    }
    for (path, bytes) in &before {
        // The members' files are as they were (the shared worker files gain nothing per
        // machine; groups of existing roles are untouched).
        if path.starts_with("groups") {
            assert_eq!(
                files(&old).get(path),
                Some(bytes),
                "{} changed",
                path.display()
            );
        }
    }
    let fresh = dir.join("fresh");
    publish_etcd(&fresh);
    caas_in(&fresh)
        .args(["schedule", "once", "--matchbox-url", MATCHBOX, "--db", db])
        .assert()
        .success();
    assert_eq!(files(&fresh), files(&old));
}

#[test]
fn postgres_schedulers_agree() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let db = pg.create_database("agree");
    let api = Api::start_url(&db, dir.path(), &["--admit", "all"]);
    two_schedulers_agree(&db, &api, dir.path());
    let recorded = pg.psql(
        "agree",
        "SELECT count(*), count(DISTINCT mac) FROM caas_roles",
    );
    assert_eq!(recorded.trim(), "7|7");

    let db = pg.create_database("existing");
    let api = Api::start_url(&db, dir.path(), &["--admit", "all"]);
    let dir = tempfile::tempdir().unwrap();
    an_existing_data_dir_reads_back_as_before(&db, &api, dir.path());
}

#[test]
fn sqlite_schedulers_agree() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("agree.db");
    let api = Api::start(&db, &["--admit", "all"]);
    two_schedulers_agree(db.to_str().unwrap(), &api, dir.path());

    let db = dir.path().join("existing.db");
    let api = Api::start(&db, &["--admit", "all"]);
    let dir = tempfile::tempdir().unwrap();
    an_existing_data_dir_reads_back_as_before(db.to_str().unwrap(), &api, dir.path());
}
