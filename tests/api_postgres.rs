//! Several `caas api` on one PostgreSQL (a private cluster from Debian's package, see
//! tests/common/postgres.rs): concurrent load through two instances, SIGKILL of one in a burst,
//! the database stopped and started again under a running instance.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use caas::discovery::client::{Operator, fetch_machines};
use serde_json::{Value, json};

use common::api::Api;
use common::postgres::Postgres;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .new_agent()
}

fn report(mac: &str, hostname: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "boot-info": {"mac": mac},
        "hostname": hostname,
        "interfaces": [{"name": "eth0", "mac": mac, "ipv4": "10.1.2.3", "netmask": 24}]
    }))
    .unwrap()
}

fn mac_of(i: usize) -> String {
    format!(
        "52:54:00:{:02x}:{:02x}:{:02x}",
        (i >> 16) & 0xff,
        (i >> 8) & 0xff,
        i & 0xff
    )
}

/// (status, JSON body) of a POST of `mac`'s report.
fn post(agent: &ureq::Agent, api: &str, mac: &str, hostname: &str) -> (u16, Value) {
    let mut response = agent
        .post(format!("{api}/discovery"))
        .send(&report(mac, hostname)[..])
        .unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The stored machines as (MAC → (hostname, updates)), read through `api`.
fn stored(api: &Api) -> BTreeMap<String, (String, u64)> {
    let token = api.operator_token();
    let machines = fetch_machines(
        &api.url,
        Duration::from_secs(60),
        &Operator {
            token: Some(token),
            ca: None,
        },
    )
    .unwrap();
    let count = machines.len();
    let map: BTreeMap<_, _> = machines
        .into_iter()
        .map(|m| (m.mac, (m.report.hostname.unwrap_or_default(), m.updates)))
        .collect();
    assert_eq!(map.len(), count, "a MAC listed twice");
    map
}

#[test]
fn two_apis_on_one_database_lose_and_duplicate_nothing() {
    let pg = Postgres::start();
    let url = pg.create_database("caas");
    let logs = tempfile::tempdir().unwrap();
    // Started together: both create or migrate the schema at the same moment.
    let (a, b) = thread::scope(|scope| {
        let a = scope.spawn(|| Api::start_url(&url, logs.path(), &[]));
        let b = scope.spawn(|| Api::start_url(&url, logs.path(), &[]));
        (a.join().unwrap(), b.join().unwrap())
    });
    let apis = [a.url.clone(), b.url.clone()];
    const CLIENTS: usize = 16;
    const MACHINES: usize = 150;
    // Each client posts its machines alternately through both instances, then reposts each
    // through the other one.
    let acks: Vec<(String, u64, bool)> = thread::scope(|scope| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let apis = &apis;
                scope.spawn(move || {
                    let agent = agent();
                    let mut acks = Vec::new();
                    for i in 0..MACHINES {
                        let mac = mac_of(client * 1000 + i);
                        let (status, answer) =
                            post(&agent, &apis[i % 2], &mac, &format!("c{client}-{i}"));
                        assert_eq!(status, 200, "{answer}");
                        acks.push((
                            mac,
                            answer["total_elt"].as_u64().unwrap(),
                            answer["update"].as_bool().unwrap(),
                        ));
                    }
                    for i in 0..MACHINES {
                        let mac = mac_of(client * 1000 + i);
                        let (status, answer) = post(&agent, &apis[(i + 1) % 2], &mac, "again");
                        assert_eq!(status, 200, "{answer}");
                        assert_eq!(
                            answer["update"], true,
                            "a repost through the other instance"
                        );
                    }
                    acks
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let total = CLIENTS * MACHINES;
    assert!(acks.iter().all(|(_, _, update)| !update));
    // Every new machine counted once, whichever instance stored it.
    let mut totals: Vec<u64> = acks.iter().map(|(_, total, _)| *total).collect();
    totals.sort_unstable();
    assert_eq!(totals, (1..=total as u64).collect::<Vec<_>>());
    let through_a = stored(&a);
    assert_eq!(through_a, stored(&b), "both instances list the same");
    assert_eq!(through_a.len(), total);
    for (mac, _, _) in &acks {
        assert_eq!(through_a.get(mac), Some(&("again".to_owned(), 1)), "{mac}");
    }
    for api in [a, b] {
        assert!(api.terminate().success());
    }
}

#[test]
fn a_sigkill_of_one_instance_in_a_burst_loses_no_acknowledged_report() {
    let pg = Postgres::start();
    let url = pg.create_database("caas");
    let logs = tempfile::tempdir().unwrap();
    let survivor = Api::start_url(&url, logs.path(), &[]);
    let mut victim = Api::start_url(&url, logs.path(), &[]);
    let acked: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let next = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..8)
        .map(|worker| {
            // Half the clients post through the instance that is killed.
            let api = if worker % 2 == 0 {
                victim.url.clone()
            } else {
                survivor.url.clone()
            };
            let (acked, next, stop) = (acked.clone(), next.clone(), stop.clone());
            thread::spawn(move || {
                let agent = agent();
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let (mac, hostname) = (mac_of(i), format!("h{i}"));
                    match agent
                        .post(format!("{api}/discovery"))
                        .send(&report(&mac, &hostname)[..])
                    {
                        Ok(response) if response.status().as_u16() == 200 => {
                            acked.lock().unwrap().insert(mac, hostname);
                        }
                        Ok(response) => panic!("unexpected {}", response.status()),
                        // The instance died under us: this report was not acknowledged.
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.lock().unwrap().len() < 600 {
        assert!(Instant::now() < deadline, "too slow:\n{}", victim.log());
        thread::sleep(Duration::from_millis(2));
    }
    victim.kill(); // SIGKILL in the middle of the burst
    // The survivor keeps taking reports meanwhile.
    while acked.lock().unwrap().len() < 900 {
        assert!(Instant::now() < deadline, "too slow:\n{}", survivor.log());
        thread::sleep(Duration::from_millis(2));
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let stored = stored(&survivor);
    let missing: Vec<_> = acked
        .iter()
        .filter(|(mac, hostname)| stored.get(*mac).map(|s| &s.0) != Some(hostname))
        .collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    // Nothing counted twice: the count the instances keep is the rows there are.
    let count = pg.psql("caas", "SELECT n FROM caas_machine_count");
    assert_eq!(count.trim(), stored.len().to_string());
}

#[test]
fn the_database_stopped_and_started_under_a_running_api() {
    let pg = Postgres::start();
    let url = pg.create_database("caas");
    let logs = tempfile::tempdir().unwrap();
    let api = Api::start_url(&url, logs.path(), &[]);
    let agent = agent();
    let health = |agent: &ureq::Agent| {
        let mut response = agent.get(format!("{}/healthz", api.url)).call().unwrap();
        let status = response.status().as_u16();
        let body: Value =
            serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
        (status, body)
    };
    assert_eq!(post(&agent, &api.url, &mac_of(1), "before").0, 200);
    assert_eq!(health(&agent).0, 200);

    pg.stop_server();
    for i in 2..5 {
        let (status, answer) = post(&agent, &api.url, &mac_of(i), "while down");
        assert_eq!(status, 503, "{answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("database"),
            "{answer}"
        );
    }
    let (status, body) = health(&agent);
    assert_eq!((status, &body["db"]), (503, &json!(false)), "{body}");

    pg.start_server();
    // The same caas process, no restart: the first request after the database is back works.
    let (status, answer) = post(&agent, &api.url, &mac_of(5), "after");
    assert_eq!(status, 200, "{answer}\n{}", api.log());
    assert_eq!(answer, json!({"total_elt": 2, "update": false}));
    assert_eq!(health(&agent).0, 200);
    let stored = stored(&api);
    assert_eq!(
        stored.keys().cloned().collect::<Vec<_>>(),
        [mac_of(1), mac_of(5)],
        "nothing answered 503 was stored"
    );
    assert!(api.terminate().success());
}
