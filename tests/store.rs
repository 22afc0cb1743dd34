//! The same store tests on both engines: SQLite (a file) and PostgreSQL (a private cluster
//! from Debian's package, see tests/common/postgres.rs), through the storage seam.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use caas::discovery::admission::{Change, Selection, State};
use caas::discovery::location::Location;
use caas::discovery::postgres::{Access, PgStorage};
use caas::discovery::storage::{self, Storage};
use caas::discovery::store::{Ack, Store};
use common::postgres::Postgres;
use serde_json::json;

fn report(mac: &str, hostname: &str) -> String {
    json!({
        "boot-info": {"mac": mac},
        "hostname": hostname,
        "interfaces": [{"name": "eth0", "mac": mac, "ipv4": "10.0.0.9", "cidrv4": "10.0.0.9/24"}]
    })
    .to_string()
}

fn mac_of(i: u32) -> String {
    format!(
        "52:54:00:{:02x}:{:02x}:{:02x}",
        i >> 16,
        (i >> 8) & 0xff,
        i & 0xff
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A repost replaces the report and counts an update; rows come first seen first; the count
/// carries on after a reopen.
fn reposts_update_and_counts_carry_on(location: &Location) {
    let runtime = runtime();
    let store = storage::open(location).unwrap();
    let (a, b) = (mac_of(0xa), mac_of(0xb));
    let ack = runtime
        .block_on(store.upsert(b.clone(), report(&b, "b1"), None))
        .unwrap();
    assert_eq!(
        ack,
        Ack {
            total: 1,
            update: false
        }
    );
    let ack = runtime
        .block_on(store.upsert(a.clone(), report(&a, "a1"), None))
        .unwrap();
    assert_eq!(
        ack,
        Ack {
            total: 2,
            update: false
        }
    );
    let ack = runtime
        .block_on(store.upsert(b.clone(), report(&b, "b2"), None))
        .unwrap();
    assert_eq!(
        ack,
        Ack {
            total: 2,
            update: true
        }
    );
    assert_eq!(store.count().unwrap(), 2);
    assert_eq!(store.health().unwrap(), 2);
    store.close().unwrap();
    drop(store);

    let reader = storage::open_read_only(location).unwrap();
    let machines = reader.machines().unwrap();
    assert_eq!(
        machines.iter().map(|m| m.mac.as_str()).collect::<Vec<_>>(),
        [b.as_str(), a.as_str()],
        "first seen first"
    );
    assert_eq!(machines[0].report.hostname.as_deref(), Some("b2"));
    assert_eq!(machines[0].updates, 1);
    assert!(machines[0].last_seen >= machines[0].first_seen);
    assert_eq!(machines[1].updates, 0);
    drop(reader);

    let store = storage::open(location).unwrap();
    let c = mac_of(0xc);
    let ack = runtime
        .block_on(store.upsert(c.clone(), report(&c, "c"), None))
        .unwrap();
    assert_eq!(
        ack,
        Ack {
            total: 3,
            update: false
        }
    );
    store.close().unwrap();
}

/// Many reports at once: grouped, each new machine counted once with its own total.
fn concurrent_reports_get_distinct_totals(location: &Location) {
    let runtime = runtime();
    let store: Arc<dyn Storage> = storage::open(location).unwrap();
    let acks = runtime.block_on(async {
        let tasks: Vec<_> = (0..300u32)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mac = mac_of(1000 + i);
                    let json = report(&mac, "h");
                    store.upsert(mac, json, None).await.unwrap()
                })
            })
            .collect();
        let mut acks = Vec::new();
        for task in tasks {
            acks.push(task.await.unwrap());
        }
        acks
    });
    let mut totals: Vec<u64> = acks.iter().map(|a| a.total).collect();
    totals.sort_unstable();
    assert_eq!(totals, (1..=300).collect::<Vec<_>>());
    assert!(acks.iter().all(|a| !a.update));
    let mut rows = BTreeSet::new();
    store
        .for_each_row(&mut |row| {
            assert!(rows.insert(row.mac.clone()), "{} twice", row.mac);
            Ok(())
        })
        .unwrap();
    assert_eq!(rows.len(), 300);
    store.close().unwrap();
    // Closed: nothing more is taken.
    assert!(
        runtime
            .block_on(store.upsert(mac_of(1), report(&mac_of(1), "h"), None))
            .is_err()
    );
}

/// Opening a store whose schema is newer than this caas knows is refused, for writing and for
/// reading.
fn a_newer_schema_is_refused(location: &Location, make_newer: impl Fn()) {
    storage::open(location).unwrap().close().unwrap();
    make_newer();
    for err in [
        storage::open(location).err().unwrap(),
        storage::open_read_only(location).err().unwrap(),
    ] {
        let message = format!("{err:#}");
        assert!(message.contains("newer caas"), "{message}");
    }
}

/// Admission on both engines: a rule admits, an operator approves and forgets, a forgotten
/// machine comes back pending whatever the rules say; a change naming an unknown MAC changes
/// nothing.
fn admission_round_trip(location: &Location) {
    let runtime = runtime();
    let store = storage::open(location).unwrap();
    let (a, b) = (mac_of(0x1a), mac_of(0x1b));
    let upsert = |mac: &str, by: Option<&str>| {
        runtime
            .block_on(store.upsert(mac.to_owned(), report(mac, "h"), by.map(str::to_owned)))
            .unwrap()
    };
    upsert(&a, Some("rule all"));
    upsert(&b, None);
    let state = |mac: &str| store.row(mac).unwrap().unwrap().admission;
    assert_eq!(state(&a), State::Admitted);
    assert_eq!(
        store.row(&a).unwrap().unwrap().admitted_by.as_deref(),
        Some("rule all")
    );
    assert_eq!(state(&b), State::Pending);
    let approve = |macs: Vec<String>| {
        runtime
            .block_on(store.change(Change::Approve {
                which: Selection::Macs(macs),
                by: "operator test".into(),
            }))
            .unwrap()
    };
    let changed = approve(vec![b.clone(), mac_of(0x99)]);
    assert_eq!(changed.unknown, [mac_of(0x99)]);
    assert_eq!(state(&b), State::Pending, "nothing changed");
    let changed = approve(vec![b.clone(), a.clone()]);
    assert_eq!(
        (changed.changed, changed.unchanged),
        (vec![b.clone()], vec![a.clone()])
    );
    assert_eq!(state(&b), State::Admitted);
    let changed = runtime
        .block_on(store.change(Change::Forget {
            macs: vec![a.clone()],
            by: "operator test".into(),
        }))
        .unwrap();
    assert_eq!(changed.changed, std::slice::from_ref(&a));
    assert!(store.row(&a).unwrap().is_none());
    assert_eq!(store.count().unwrap(), 1);
    // Back, and the rule does not admit it again.
    let ack = upsert(&a, Some("rule all"));
    assert_eq!(
        ack,
        Ack {
            total: 2,
            update: false
        }
    );
    assert_eq!(state(&a), State::Pending);
    approve(vec![a.clone()]);
    assert_eq!(state(&a), State::Admitted);
    store.close().unwrap();
}

#[test]
fn sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| Location::Sqlite(dir.path().join(name));
    reposts_update_and_counts_carry_on(&at("a.db"));
    concurrent_reports_get_distinct_totals(&at("b.db"));
    admission_round_trip(&at("d.db"));
    let newer = at("c.db");
    a_newer_schema_is_refused(&newer, || {
        rusqlite_set_version(&dir.path().join("c.db"));
    });
}

/// Sets the SQLite file's schema version past what this caas knows.
fn rusqlite_set_version(path: &std::path::Path) {
    rusqlite::Connection::open(path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    assert!(Store::open_read_only(path).is_err());
}

#[test]
fn postgres_store() {
    let pg = Postgres::start();
    let at = |name: &str| Location::Postgres(pg.create_database(name));
    reposts_update_and_counts_carry_on(&at("a"));
    concurrent_reports_get_distinct_totals(&at("b"));
    admission_round_trip(&at("d"));
    let newer = at("c");
    let Location::Postgres(url) = newer.clone() else {
        unreachable!()
    };
    a_newer_schema_is_refused(&newer, || {
        PgStorage::open(&url, Access::Write)
            .unwrap()
            .set_schema_version_for_tests(99)
            .unwrap();
    });
    // A reader on a database caas api never opened: a clear refusal, nothing created.
    let empty = pg.create_database("empty");
    let err = storage::open_read_only(&Location::Postgres(empty))
        .err()
        .unwrap();
    assert!(
        format!("{err:#}").contains("no caas discovery store"),
        "{err:#}"
    );
    assert_eq!(
        pg.psql(
            "empty",
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'caas%'"
        )
        .trim(),
        "0"
    );
}
