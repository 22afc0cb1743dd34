//! `caas discover` and `caas api` end to end on 127.0.0.1: the round trip with captured
//! machines, every status code, limits and timeouts, concurrency, SIGKILL and SIGTERM.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use caas::discovery::client::fetch_machines;
use caas::discovery::machine::machines_from_json;
use caas::discovery::store::Store;
use serde_json::{Value, json};

use common::api::Api;
use common::small_disk::SmallDisk;
use common::{caas, reference_dir};

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .new_agent()
}

/// (status, body) of a request.
fn request(method: &str, url: &str, content_type: Option<&str>, body: &[u8]) -> (u16, String) {
    let agent = agent();
    // Every test API has the same operator token; the listing routes need it.
    let bearer = format!("Bearer {}", common::api::TOKEN);
    let mut response = match method {
        "GET" => agent.get(url).header("Authorization", &bearer).call(),
        "DELETE" => agent.delete(url).header("Authorization", &bearer).call(),
        "POST" => {
            let mut req = agent.post(url).header("Authorization", &bearer);
            if let Some(ct) = content_type {
                req = req.header("Content-Type", ct);
            }
            req.send(body)
        }
        _ => unreachable!(),
    }
    .unwrap_or_else(|err| panic!("{method} {url}: {err}"));
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_string()
        .unwrap();
    (status, text)
}

fn get_json(url: &str) -> Value {
    let (status, body) = request("GET", url, None, b"");
    assert_eq!(status, 200, "GET {url}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn report(mac: &str, hostname: &str) -> Value {
    json!({
        "boot-info": {"uuid": format!("uuid-{mac}"), "mac": mac},
        "hostname": hostname,
        "interfaces": [
            {"name": "lo", "mac": "", "ipv4": "127.0.0.1", "netmask": 8},
            {"name": "eth0", "mac": mac, "ipv4": "10.1.2.3", "netmask": 24}
        ]
    })
}

fn mac_of(i: usize) -> String {
    format!(
        "52:54:00:{:02x}:{:02x}:{:02x}",
        (i >> 16) & 0xff,
        (i >> 8) & 0xff,
        i & 0xff
    )
}

fn fixture_machine(n: usize) -> (PathBuf, PathBuf, PathBuf) {
    let machine = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/discovery")
        .join(format!("machine-{n}"));
    let cmdline = reference_dir()
        .join("seed-fixtures/discoveryC/tests/proc")
        .join(format!("cmdline{n}"));
    (cmdline, machine.join("sys"), machine.join("addresses.json"))
}

fn discover(api: &str, n: usize, extra: &[&str]) -> std::process::Output {
    let (cmdline, sys, addresses) = fixture_machine(n);
    caas()
        .args(["discover", "--api", api, "--proc-cmdline"])
        .arg(cmdline)
        .arg("--sysfs")
        .arg(sys)
        .arg("--addresses")
        .arg(addresses)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn discover_to_api_round_trip_with_captured_machines() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("caas.db");
    let api = Api::start(&db, &[]);
    let lldp = reference_dir().join("seed-fixtures/discoveryC/tests/run/lldp/lldp.kv.1");
    for n in 0..3 {
        let extra: Vec<&str> = if n == 1 {
            vec!["--lldp-file", lldp.to_str().unwrap()]
        } else {
            vec![]
        };
        let out = discover(&api.url, n, &extra);
        assert!(out.status.success(), "{out:?}\n{}", api.log());
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(
            stdout.contains(&format!(
                "new ({} machine{} known)",
                n + 1,
                if n == 0 { "" } else { "s" }
            )),
            "{stdout}"
        );
    }
    let machines = fetch_machines(&api.url, Duration::from_secs(30), &api.operator()).unwrap();
    let expected = [
        (
            "52:54:00:0d:bd:31",
            "2023e709-39b4-47d7-8905-e8be3e6bc2c6",
            "172.20.0.65",
        ),
        (
            "52:54:00:90:c3:9f",
            "ee378e7b-1575-425d-a6d6-e0dadb9f31a0",
            "172.20.0.66",
        ),
        (
            "52:54:00:71:83:ea",
            "62b58ffd-7960-419a-8359-91def082191a",
            "172.20.0.67",
        ),
    ];
    assert_eq!(machines.len(), 3);
    for (machine, (mac, uuid, ip)) in machines.iter().zip(expected) {
        // First seen first: the order the machines reported in.
        assert_eq!(machine.mac, mac);
        let report = &machine.report;
        assert_eq!(report.boot_info.uuid, uuid);
        assert_eq!(report.boot_info.product_uuid.as_deref(), Some(uuid));
        assert_eq!(machine.boot_ipv4().unwrap().to_string(), ip);
        let names: Vec<_> = report.interfaces.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["lo", "eth0", "eth1"], "only the captured NICs");
        // eth1 has no address: it does not inherit eth0's (the 2016 client's bug).
        assert_eq!(report.interfaces[2].ipv4, None);
        assert_eq!(machine.updates, 0);
    }
    let lldp = machines[1].report.lldp.as_ref().unwrap();
    assert_eq!(lldp.neighbors.len(), 2);
    assert_eq!(
        lldp.neighbors[0].chassis.name.as_deref(),
        Some("CH-NA-NB-1.Where")
    );
    assert!(machines[0].report.lldp.is_none());

    // A machine that boots again replaces its report and is counted as an update.
    let out = discover(&api.url, 0, &[]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("updated (3 machines known)"));
    let machines = fetch_machines(&api.url, Duration::from_secs(30), &api.operator()).unwrap();
    assert_eq!(machines[0].updates, 1);
    assert!(machines[0].last_seen > machines[0].first_seen);

    // GET /discovery serves the reports in the same order; GET /discovery/interfaces the 2016
    // list of interface lists; both read back through the library.
    let (status, body) = request("GET", &format!("{}/discovery", api.url), None, b"");
    assert_eq!(status, 200);
    let from_reports = machines_from_json(body.as_bytes()).unwrap();
    assert_eq!(
        from_reports.iter().map(|m| &m.report).collect::<Vec<_>>(),
        machines.iter().map(|m| &m.report).collect::<Vec<_>>()
    );
    let interfaces = get_json(&format!("{}/discovery/interfaces", api.url));
    assert_eq!(interfaces["interfaces"].as_array().unwrap().len(), 3);
    assert_eq!(interfaces["interfaces"][2][1]["cidrv4"], "172.20.0.67/21");

    // The scheduler's read-only access works while the server runs.
    let store = Store::open_read_only(&db).unwrap();
    assert_eq!(store.machines().unwrap(), machines);
}

#[test]
fn every_status_code() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(&dir.path().join("caas.db"), &[]);
    let url = |path: &str| format!("{}{path}", api.url);

    // Empty store.
    assert_eq!(get_json(&url("/discovery")), json!([]));
    assert_eq!(
        get_json(&url("/discovery/interfaces")),
        json!({"interfaces": []})
    );
    assert_eq!(get_json(&url("/discovery/machines")), json!([]));
    assert_eq!(
        get_json(&url("/")),
        json!([
            "/",
            "/boot.ipxe",
            "/boot.ipxe.0",
            "/discovery",
            "/discovery/interfaces",
            "/discovery/machines",
            "/discovery/machines/approve",
            "/discovery/machines/forget",
            "/discovery/machines/{mac}",
            "/healthz",
            "/ipxe"
        ])
    );
    assert_eq!(
        get_json(&url("/healthz")),
        json!({"global": true, "api": true, "db": true, "machines": 0, "matchbox": {}})
    );

    // 200, with any content type (the 2016 API tried every body as JSON).
    let mac = "52:54:00:aa:00:01";
    let body = serde_json::to_vec(&report(mac, "one")).unwrap();
    for (content_type, update) in [
        (Some("application/json"), false),
        (Some("text/plain"), true),
        (None, true),
        (Some("application/x-www-form-urlencoded"), true),
    ] {
        let (status, text) = request("POST", &url("/discovery"), content_type, &body);
        assert_eq!(status, 200, "{content_type:?}: {text}");
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            json!({"total_elt": 1, "update": update})
        );
    }
    // The 2016 client's spelling is accepted; the stored report uses the current one.
    let old = json!({
        "interfaces": [{"IPv4": "10.9.9.9", "CIDRv4": "10.9.9.9/16", "netmask": 16,
                        "MAC": "52:54:00:aa:00:02", "name": "eth0"}],
        "boot-info": {"mac": "52:54:00:aa:00:02", "uuid": "u2"},
        "lldp": {"is_file": false, "data": {"interfaces": null}}
    });
    let (status, text) = request(
        "POST",
        &url("/discovery"),
        Some("application/json"),
        &serde_json::to_vec(&old).unwrap(),
    );
    assert_eq!(
        (status, text.trim()),
        (200, r#"{"total_elt":2,"update":false}"#)
    );
    let reports = get_json(&url("/discovery"));
    assert_eq!(reports[1]["interfaces"][0]["cidrv4"], "10.9.9.9/16");
    assert_eq!(reports[1]["interfaces"][0]["mac"], "52:54:00:aa:00:02");
    assert!(reports[1]["interfaces"][0].get("MAC").is_none());

    // 400: not JSON, whatever the content type.
    for (body, content_type) in [
        (&b"{not json"[..], Some("application/json")),
        (b"", None),
        (b"boot-info=1", Some("text/plain")),
        (b"{\"a\": 1} trailing", None),
        (b"\xff\xfe", None),
    ] {
        let (status, text) = request("POST", &url("/discovery"), content_type, body);
        assert_eq!(status, 400, "{body:?}: {text}");
        assert!(text.contains("not JSON"), "{text}");
    }

    // 406: JSON, but not a coherent report.
    for (body, needle) in [
        (json!("a string"), "not a string"),
        (json!([report(mac, "x")]), "not an array"),
        (json!({"interfaces": []}), "boot-info"),
        (
            json!({"boot-info": {"mac": ""}, "interfaces": [{"name": "lo", "mac": ""}]}),
            "empty",
        ),
        (report("52:54:00:90:c3:9", "truncated"), "invalid MAC"),
        (
            json!({"boot-info": {"mac": "52:54:00:aa:00:09"},
                   "interfaces": [{"name": "eth0", "mac": "52:54:00:aa:00:08"}]}),
            "not the MAC of any interface",
        ),
        (
            json!({"boot-info": {"mac": mac}, "interfaces": [{"name": "eth0", "mac": mac, "ipv4": "300.1.1.1"}]}),
            "not an IPv4 address",
        ),
    ] {
        let (status, text) = request(
            "POST",
            &url("/discovery"),
            Some("application/json"),
            &serde_json::to_vec(&body).unwrap(),
        );
        assert_eq!(status, 406, "{body}: {text}");
        assert!(text.contains(needle), "{body}: {text}");
    }

    // 413 over 1 MiB; exactly 1 MiB is accepted.
    let mut exact = serde_json::to_vec(&report("52:54:00:aa:00:03", "big")).unwrap();
    exact.resize(1024 * 1024, b' ');
    let (status, text) = request("POST", &url("/discovery"), None, &exact);
    assert_eq!(status, 200, "{text}");
    exact.push(b' ');
    // Refused from the Content-Length alone, before the body is read; and when a chunked
    // body goes over the limit. (Raw sockets: the server answers while the client may still
    // be writing, which an HTTP client library reports as a broken pipe.)
    let answer = raw_upload(
        api.port(),
        format!(
            "POST /discovery HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            exact.len()
        ),
        exact.clone(),
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:.300}");
    let mut chunked = Vec::new();
    for chunk in exact.chunks(64 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let answer = raw_upload(
        api.port(),
        "POST /discovery HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n".into(),
        chunked,
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:.300}");

    // 404, 405.
    let (status, text) = request("GET", &url("/nothing/here"), None, b"");
    assert_eq!(status, 404);
    assert!(text.contains("/nothing/here"));
    assert_eq!(request("DELETE", &url("/discovery"), None, b"").0, 405);
    assert_eq!(request("POST", &url("/healthz"), None, b"{}").0, 405);

    // The boot script chains back to this server, as the client named it.
    for path in ["/boot.ipxe", "/boot.ipxe.0"] {
        let (status, script) = request("GET", &url(path), None, b"");
        assert_eq!(status, 200);
        assert_eq!(
            script,
            format!(
                "#!ipxe\necho start /boot.ipxe\n:retry_dhcp\ndhcp || goto retry_dhcp\nchain \
                 http://127.0.0.1:{}/ipxe?uuid=${{uuid}}&mac=${{net0/mac:hexhyp}}&domain=${{domain}}&hostname=${{hostname}}&serial=${{serial}}\n",
                api.port()
            )
        );
    }
    // A Host header that would inject script lines is refused.
    let raw = raw_request(
        api.port(),
        b"GET /boot.ipxe HTTP/1.1\r\nHost: a${x}\r\nConnection: close\r\n\r\n",
    );
    assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");

    // /ipxe without --matchbox-url.
    let (status, text) = request("GET", &url("/ipxe?mac=x"), None, b"");
    assert_eq!(status, 404);
    assert!(text.contains("--matchbox-url"));

    // Three machines stored in all; one log line per request, with status and path.
    assert_eq!(get_json(&url("/healthz"))["machines"], 3);
    let log = api.log();
    assert!(
        log.lines()
            .any(|l| l.contains("request") && l.contains("status=413")),
        "{log}"
    );
    assert!(log.lines().any(|l| l.contains("path=/boot.ipxe.0")));
}

/// Sends raw bytes, returns everything the server answers before closing (bounded wait).
fn raw_request(port: u16, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    // The server may answer and close before it has read everything.
    let _ = stream.write_all(bytes);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// Sends `head` then `body` from another thread (ignoring write errors: the server may answer
/// and close first) and returns what the server answers.
fn raw_upload(port: u16, head: String, body: Vec<u8>) -> String {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = thread::spawn(move || {
        let _ = writer.write_all(head.as_bytes());
        let _ = writer.write_all(&body);
    });
    let mut answer = Vec::new();
    let _ = (&stream).read_to_end(&mut answer);
    let _ = stream.shutdown(std::net::Shutdown::Both);
    sender.join().unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn slow_and_oversized_requests_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(
        &dir.path().join("caas.db"),
        &["--request-timeout", "1s", "--header-timeout", "1s"],
    );

    // A body that never finishes arriving: 408.
    let mut stream = TcpStream::connect(("127.0.0.1", api.port())).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream
        .write_all(b"POST /discovery HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"boot-")
        .unwrap();
    let mut answer = [0u8; 512];
    let n = stream.read(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    // Headers that never finish: the connection is closed.
    let mut stream = TcpStream::connect(("127.0.0.1", api.port())).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    match stream.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(err) => assert!(
            !matches!(
                err.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "the server kept a connection with unfinished headers open for {:?}",
            started.elapsed()
        ),
    }

    // Too much header: refused without reading it all.
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(32 * 1024)
    );
    let answer = raw_request(api.port(), big.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.200}");
    let many: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
    let answer = raw_request(
        api.port(),
        format!("GET / HTTP/1.1\r\nHost: x\r\n{many}Connection: close\r\n\r\n").as_bytes(),
    );
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.200}");

    // Still serving.
    assert_eq!(get_json(&format!("{}/healthz", api.url))["api"], true);
}

#[test]
fn thirty_two_concurrent_clients_lose_and_duplicate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("caas.db");
    let api = Api::start(&db, &[]);
    let url = format!("{}/discovery", api.url);
    let results: Vec<Vec<(String, u64, bool)>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..32)
            .map(|client| {
                let url = url.clone();
                scope.spawn(move || {
                    let agent = agent();
                    (0..200)
                        .map(|i| {
                            let mac = mac_of(client * 1000 + i);
                            let body = serde_json::to_vec(&report(&mac, &format!("c{client}-{i}")))
                                .unwrap();
                            let mut response = agent.post(&url).send(&body[..]).unwrap();
                            let text = response.body_mut().read_to_string().unwrap();
                            assert_eq!(response.status().as_u16(), 200, "{text}");
                            let answer: Value = serde_json::from_str(&text).unwrap();
                            (
                                mac,
                                answer["total_elt"].as_u64().unwrap(),
                                answer["update"].as_bool().unwrap(),
                            )
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let acks: Vec<_> = results.into_iter().flatten().collect();
    assert_eq!(acks.len(), 6400);
    assert!(acks.iter().all(|(_, _, update)| !update));
    // Every insert was counted exactly once: the totals are 1..=6400, each seen once.
    let mut totals: Vec<u64> = acks.iter().map(|(_, total, _)| *total).collect();
    totals.sort_unstable();
    assert_eq!(totals, (1..=6400).collect::<Vec<_>>());

    let machines = fetch_machines(&api.url, Duration::from_secs(60), &api.operator()).unwrap();
    assert_eq!(machines.len(), 6400);
    let stored: BTreeMap<&str, &str> = machines
        .iter()
        .map(|m| (m.mac.as_str(), m.report.hostname.as_deref().unwrap()))
        .collect();
    assert_eq!(stored.len(), 6400, "no MAC stored twice");
    for client in 0..32 {
        for i in 0..200 {
            assert_eq!(
                stored.get(mac_of(client * 1000 + i).as_str()),
                Some(&format!("c{client}-{i}").as_str())
            );
        }
    }
    // Stable order: first seen, then MAC.
    assert!(
        machines
            .windows(2)
            .all(|w| (w[0].first_seen, &w[0].mac) < (w[1].first_seen, &w[1].mac))
    );

    // Concurrent reposts of the same machines are updates that replace the report.
    thread::scope(|scope| {
        for client in 0..32 {
            let url = url.clone();
            scope.spawn(move || {
                let agent = agent();
                for i in 0..5 {
                    let mac = mac_of(client * 1000 + i);
                    let body = serde_json::to_vec(&report(&mac, "again")).unwrap();
                    let mut response = agent.post(&url).send(&body[..]).unwrap();
                    let answer: Value =
                        serde_json::from_str(&response.body_mut().read_to_string().unwrap())
                            .unwrap();
                    assert_eq!(answer, json!({"total_elt": 6400, "update": true}));
                }
            });
        }
    });
    let machines = Store::open_read_only(&db).unwrap().machines().unwrap();
    assert_eq!(machines.len(), 6400);
    let again = machines
        .iter()
        .filter(|m| m.report.hostname.as_deref() == Some("again"))
        .count();
    assert_eq!(again, 160);
    assert!(
        machines
            .iter()
            .all(|m| m.updates == u64::from(m.report.hostname.as_deref() == Some("again")))
    );
}

#[test]
fn reports_acknowledged_before_a_sigkill_survive_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("caas.db");
    let acked: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let next = Arc::new(AtomicUsize::new(0));
    for (round, kill_after) in [150usize, 400, 700].into_iter().enumerate() {
        let api = Api::start(&db, &[]);
        let url = format!("{}/discovery", api.url);
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..8)
            .map(|_| {
                let (url, acked, next, stop) =
                    (url.clone(), acked.clone(), next.clone(), stop.clone());
                thread::spawn(move || {
                    let agent = agent();
                    while !stop.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let mac = mac_of(i);
                        let hostname = format!("round{round}-{i}");
                        let body = serde_json::to_vec(&report(&mac, &hostname)).unwrap();
                        match agent.post(&url).send(&body[..]) {
                            Ok(response) if response.status().as_u16() == 200 => {
                                acked.lock().unwrap().insert(mac, hostname);
                            }
                            Ok(response) => panic!("unexpected {}", response.status()),
                            // The server died under us: this report was not acknowledged.
                            Err(_) => return,
                        }
                    }
                })
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(120);
        while acked.lock().unwrap().len() < kill_after {
            assert!(Instant::now() < deadline, "too slow:\n{}", api.log());
            thread::sleep(Duration::from_millis(2));
        }
        drop(api); // SIGKILL in the middle of the burst
        stop.store(true, Ordering::Relaxed);
        for worker in workers {
            worker.join().unwrap();
        }
    }

    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 700);
    let store = Store::open(&db).unwrap();
    store.integrity_check().unwrap();
    drop(store);
    let api = Api::start(&db, &[]);
    let machines = fetch_machines(&api.url, Duration::from_secs(60), &api.operator()).unwrap();
    let stored: BTreeMap<String, String> = machines
        .into_iter()
        .map(|m| (m.mac, m.report.hostname.unwrap()))
        .collect();
    let missing: Vec<_> = acked
        .iter()
        .filter(|(mac, hostname)| stored.get(*mac) != Some(hostname))
        .collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
}

#[test]
fn sigterm_finishes_cleanly_and_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("caas.db");
    let api = Api::start(&db, &["--log-format", "json"]);
    let body = serde_json::to_vec(&report("52:54:00:bb:00:01", "kept")).unwrap();
    assert_eq!(
        request("POST", &format!("{}/discovery", api.url), None, &body).0,
        200
    );
    let stderr = api.stderr.clone();
    let status = api.terminate();
    assert!(status.success(), "{status:?}");
    let machines = Store::open_read_only(&db).unwrap().machines().unwrap();
    assert_eq!(machines[0].report.hostname.as_deref(), Some("kept"));
    // JSON log lines, one per request.
    let log = fs::read_to_string(stderr).unwrap();
    let requests: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .filter(|v| v["message"] == "request")
        .collect();
    assert_eq!(requests.len(), 1, "{log}");
    assert_eq!(requests[0]["status"], 200);
    assert_eq!(requests[0]["method"], "POST");
    assert_eq!(requests[0]["mac"], "52:54:00:bb:00:01");
}

/// A stand-in for matchbox (tiny_http): answers its routes, records queries; `/assets` can be
/// switched off.
struct FakeMatchbox {
    url: String,
    seen: Arc<Mutex<Vec<String>>>,
    assets_up: Arc<AtomicBool>,
    server: Arc<tiny_http::Server>,
    thread: Option<thread::JoinHandle<()>>,
}

impl FakeMatchbox {
    fn start() -> FakeMatchbox {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let url = format!("http://{}", server.server_addr().to_ip().unwrap());
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let assets_up = Arc::new(AtomicBool::new(true));
        let thread = {
            let (server, seen, assets_up) = (server.clone(), seen.clone(), assets_up.clone());
            thread::spawn(move || {
                for request in server.incoming_requests() {
                    let path = request.url().to_owned();
                    seen.lock().unwrap().push(path.clone());
                    let (status, body) = match path.split('?').next().unwrap() {
                        "/" => (200, "matchbox\n".to_owned()),
                        "/boot.ipxe" => (200, "#!ipxe\nchain ipxe?x\n".to_owned()),
                        "/assets" if assets_up.load(Ordering::Relaxed) => {
                            (200, "<pre></pre>".into())
                        }
                        "/ipxe" if path.contains("mac=52-54-00-aa-bb-cc") => (
                            200,
                            "#!ipxe\nkernel /assets/k\ninitrd /assets/i\nboot\n".to_owned(),
                        ),
                        _ => (404, "404 page not found\n".to_owned()),
                    };
                    let _ = request
                        .respond(tiny_http::Response::from_string(body).with_status_code(status));
                }
            })
        };
        FakeMatchbox {
            url,
            seen,
            assets_up,
            server,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeMatchbox {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn matchbox_is_probed_and_proxied() {
    let dir = tempfile::tempdir().unwrap();
    let matchbox = FakeMatchbox::start();
    let api = Api::start(
        &dir.path().join("caas.db"),
        &["--matchbox-url", &matchbox.url],
    );
    let url = |path: &str| format!("{}{path}", api.url);

    assert_eq!(
        get_json(&url("/healthz")),
        json!({"global": true, "api": true, "db": true, "machines": 0,
               "matchbox": {"/": true, "/boot.ipxe": true, "/assets": true}})
    );
    let (status, script) = request(
        "GET",
        &url("/ipxe?uuid=u-1&mac=52-54-00-aa-bb-cc&domain=&hostname=&serial=S"),
        None,
        b"",
    );
    assert_eq!(
        (status, script.as_str()),
        (200, "#!ipxe\nkernel /assets/k\ninitrd /assets/i\nboot\n")
    );
    assert!(
        matchbox.seen.lock().unwrap().contains(
            &"/ipxe?uuid=u-1&mac=52-54-00-aa-bb-cc&domain=&hostname=&serial=S".to_owned()
        )
    );
    // matchbox's own 404 (no matching group) passes through.
    let (status, text) = request("GET", &url("/ipxe?mac=00-00-00-00-00-01"), None, b"");
    assert_eq!((status, text.as_str()), (404, "404 page not found\n"));

    matchbox.assets_up.store(false, Ordering::Relaxed);
    let (status, text) = request("GET", &url("/healthz"), None, b"");
    assert_eq!(status, 503);
    let health: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(health["global"], false);
    assert_eq!(health["matchbox"]["/assets"], false);
    assert_eq!(health["matchbox"]["/"], true);

    // matchbox gone: 502 from the proxy, 503 from the health check.
    drop(matchbox);
    let (status, text) = request("GET", &url("/ipxe?mac=52-54-00-aa-bb-cc"), None, b"");
    assert_eq!(status, 502, "{text}");
    assert_eq!(request("GET", &url("/healthz"), None, b"").0, 503);
}

/// A stand-in API that answers a fixed sequence of statuses, to watch the client retry.
/// What a scripted API answers, one request after another.
#[derive(Clone, Copy)]
enum Answer {
    /// This status, with caas api's body for it.
    Status(u16),
    /// 200 with a body that is not caas api's answer.
    Garbled,
    /// 302 to another host.
    Redirect,
}

fn scripted_api(answers: Vec<Answer>) -> (String, Arc<AtomicUsize>, thread::JoinHandle<()>) {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let url = format!("http://{}", server.server_addr().to_ip().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let handle = thread::spawn(move || {
        for answer in answers {
            let Ok(request) = server.recv() else { return };
            seen.fetch_add(1, Ordering::Relaxed);
            let response = match answer {
                Answer::Status(200) => {
                    tiny_http::Response::from_string(r#"{"total_elt": 7, "update": true}"#)
                }
                Answer::Status(status) => {
                    tiny_http::Response::from_string(r#"{"error": "scripted"}"#)
                        .with_status_code(status)
                }
                Answer::Garbled => tiny_http::Response::from_string("<html>proxy</html>"),
                Answer::Redirect => tiny_http::Response::from_string("")
                    .with_status_code(302)
                    .with_header(
                        tiny_http::Header::from_bytes(
                            &b"Location"[..],
                            &b"http://127.0.0.2:9/discovery"[..],
                        )
                        .unwrap(),
                    ),
            };
            let _ = request.respond(response);
        }
    });
    (url, count, handle)
}

#[test]
fn discover_retries_what_can_succeed_and_stops_at_a_refusal() {
    // 503, 500, then 200: three attempts, success.
    let (url, count, handle) = scripted_api(vec![
        Answer::Status(503),
        Answer::Status(500),
        Answer::Status(200),
    ]);
    let out = discover(&url, 0, &["--retry-wait", "10ms"]);
    handle.join().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(count.load(Ordering::Relaxed), 3);
    assert!(String::from_utf8_lossy(&out.stdout).contains("updated (7 machines known)"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("retrying").count(), 2, "{stderr}");

    // 406: the same report would be refused again, so one attempt and exit 1.
    let (url, count, handle) = scripted_api(vec![Answer::Status(406)]);
    let out = discover(&url, 0, &["--retry-wait", "10ms"]);
    handle.join().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(count.load(Ordering::Relaxed), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused the report"));

    // Retries spent: exit 1 after 1 + 2 attempts.
    let (url, count, handle) = scripted_api(vec![Answer::Status(503); 3]);
    let out = discover(&url, 0, &["--retry-wait", "10ms", "--retries", "2"]);
    handle.join().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(count.load(Ordering::Relaxed), 3);
    assert!(String::from_utf8_lossy(&out.stderr).contains("in 3 attempts"));

    // A 200 whose body is not caas api's answer (a proxy's page): posted again, then success.
    let (url, count, handle) = scripted_api(vec![Answer::Garbled, Answer::Status(200)]);
    let out = discover(&url, 0, &["--retry-wait", "10ms"]);
    handle.join().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(count.load(Ordering::Relaxed), 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not caas api's answer"));

    // A redirect is never followed (the POST would arrive elsewhere as a GET): exit 1 at once.
    let (url, count, handle) = scripted_api(vec![Answer::Redirect]);
    let out = discover(&url, 0, &["--retry-wait", "10ms"]);
    handle.join().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(count.load(Ordering::Relaxed), 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("a redirect to http://127.0.0.2:9/discovery; caas does not follow redirects"),
        "{stderr}"
    );
}

#[test]
fn discover_waits_for_an_api_that_is_not_up_yet() {
    let dir = tempfile::tempdir().unwrap();
    // A free port now; the API will listen on it once the client is already retrying.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (cmdline, sys, addresses) = fixture_machine(2);
    let mut client = Command::new(env!("CARGO_BIN_EXE_caas"))
        .args([
            "discover",
            "--api",
            &format!("http://127.0.0.1:{port}"),
            "--retry-wait",
            "200ms",
        ])
        .arg("--proc-cmdline")
        .arg(cmdline)
        .arg("--sysfs")
        .arg(sys)
        .arg("--addresses")
        .arg(addresses)
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(client.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.contains("retrying"), "{line}");
    let db = dir.path().join("caas.db");
    let mut api = Command::new(env!("CARGO_BIN_EXE_caas"))
        .args(["api", "--listen", &format!("127.0.0.1:{port}"), "--db"])
        .arg(&db)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = client.wait_with_output().unwrap();
    let _ = api.kill();
    let _ = api.wait();
    assert!(out.status.success(), "{out:?}");
    let machines = Store::open_read_only(&db).unwrap().machines().unwrap();
    assert_eq!(machines[0].mac, "52:54:00:71:83:ea");
}

#[test]
fn discover_usage_errors_and_local_refusals() {
    let (cmdline, sys, addresses) = fixture_machine(0);
    // No API anywhere: usage error.
    let out = caas()
        .args(["discover"])
        .env_remove("DISCOVERY_ADDRESS")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    common::assert_one_line_error(&out.stderr, "--api is required");
    // A capture needs both halves.
    let out = caas()
        .args(["discover", "--dry-run", "--sysfs"])
        .arg(&sys)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // DISCOVERY_ADDRESS (2016) is read when --api is absent; a URL that is not one is exit 2.
    let out = caas()
        .args(["discover"])
        .env("DISCOVERY_ADDRESS", "not a url")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    common::assert_one_line_error(&out.stderr, "invalid API URL \"not a url\"");
    // The command line names machine-1's MAC, the capture is machine-0's: refused before
    // sending, exit 1, nothing posted.
    let (other_cmdline, _, _) = fixture_machine(1);
    let out = caas()
        .args(["discover", "--api", "http://127.0.0.1:9", "--proc-cmdline"])
        .arg(&other_cmdline)
        .arg("--sysfs")
        .arg(&sys)
        .arg("--addresses")
        .arg(&addresses)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    common::assert_one_line_error(&out.stderr, "not the MAC of any interface");
    // A broken address capture is bad input.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("addresses.json");
    fs::write(&bad, "[{\"ifname\": 3}]").unwrap();
    let out = caas()
        .args(["discover", "--dry-run", "--proc-cmdline"])
        .arg(&cmdline)
        .arg("--sysfs")
        .arg(&sys)
        .arg("--addresses")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    common::assert_one_line_error(&out.stderr, "addresses.json");
    // --dry-run prints the report and sends nothing.
    let out = caas()
        .args(["discover", "--dry-run", "--proc-cmdline"])
        .arg(&cmdline)
        .arg("--sysfs")
        .arg(&sys)
        .arg("--addresses")
        .arg(&addresses)
        .output()
        .unwrap();
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["boot-info"]["mac"], "52:54:00:0d:bd:31");
    assert_eq!(report["boot-info"]["serial"], "SN-MACHINE-0");
    let unique_macs: BTreeSet<_> = report["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["mac"].as_str().unwrap())
        .collect();
    assert_eq!(unique_macs.len(), 3);
}

#[test]
fn a_second_api_on_the_same_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("caas.db");
    let api = Api::start(&db, &[]);
    let out = caas()
        .args(["api", "--listen", "127.0.0.1:0", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    common::assert_one_line_error(&out.stderr, "another process (caas api) is writing to it");
    // Another store on the same port: the port is taken.
    let out = caas()
        .args([
            "api",
            "--listen",
            &format!("127.0.0.1:{}", api.port()),
            "--db",
        ])
        .arg(dir.path().join("other.db"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    common::assert_one_line_error(
        &out.stderr,
        &format!("listening on 127.0.0.1:{}", api.port()),
    );
    // The first one is unaffected.
    assert_eq!(get_json(&format!("{}/healthz", api.url))["db"], true);
}

/// `report(mac, …)` with an unknown key `deep` holding nested arrays, so that the whole report
/// nests `depth` levels (the report object being level 1).
fn deep_report(mac: &str, depth: usize) -> String {
    let mut value = report(mac, "deep");
    let inner = depth - 1;
    let nested = format!("{}{}", "[".repeat(inner), "]".repeat(inner));
    value["deep"] = json!(null);
    let with_key = value.to_string();
    // Built as text: serde_json would refuse to parse the deepest of these itself.
    let text = with_key.replacen(r#""deep":null"#, &format!(r#""deep":{nested}"#), 1);
    assert_eq!(
        caas::discovery::report::nesting_depth(text.as_bytes()),
        depth
    );
    text
}

#[test]
fn whatever_the_api_accepts_every_listing_reader_reads() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("caas.db");
    let api = Api::start(&db, &[]);
    let post = |body: &str| {
        request(
            "POST",
            &format!("{}/discovery", api.url),
            None,
            body.as_bytes(),
        )
    };
    // Just under the limit: accepted, at the top level and inside an interface's unknown key.
    let (status, body) = post(&deep_report(&mac_of(1), 32));
    assert_eq!(status, 200, "{body}");
    let mut in_interface = report(&mac_of(2), "deep-interface");
    in_interface["interfaces"][1]["extra"] = json!(null);
    let nested = format!(
        "{}{}",
        "{\"k\":".repeat(29),
        "0".to_owned() + &"}".repeat(29)
    );
    let text =
        in_interface
            .to_string()
            .replacen(r#""extra":null"#, &format!(r#""extra":{nested}"#), 1);
    assert_eq!(caas::discovery::report::nesting_depth(text.as_bytes()), 32);
    let (status, body) = post(&text);
    assert_eq!(status, 200, "{body}");
    // One level more, the depth that used to break every listing, and far beyond serde_json's
    // own limit: refused as a bad body, nothing stored.
    for depth in [33, 126, 127, 5000] {
        let (status, body) = post(&deep_report(&mac_of(100 + depth), depth));
        assert_eq!(status, 400, "depth {depth}: {body}");
        assert!(body.contains("nests") && body.contains("32"), "{body}");
    }
    let text = format!(
        "{}{}",
        "{\"k\":".repeat(40),
        "0".to_owned() + &"}".repeat(40)
    );
    let (status, _) = post(&text);
    assert_eq!(status, 400);

    // Every listing parses, and every reader of the API and of saved listings reads both.
    for path in ["/discovery", "/discovery/interfaces", "/discovery/machines"] {
        let (status, body) = request("GET", &format!("{}{path}", api.url), None, b"");
        assert_eq!(status, 200, "{path}: {body}");
        let value: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}"));
        if path != "/discovery/interfaces" {
            assert_eq!(value.as_array().unwrap().len(), 2, "{path}");
            let saved = dir.path().join("saved.json");
            fs::write(&saved, &body).unwrap();
            assert_eq!(
                machines_from_json(body.as_bytes()).unwrap().len(),
                2,
                "{path}"
            );
            let data = dir.path().join(format!("data{}", path.replace('/', "-")));
            fs::create_dir(&data).unwrap();
            let out = common::caas_in(&data)
                .args([
                    "schedule",
                    "once",
                    "--matchbox-url",
                    "http://127.0.0.1:9",
                    "--plan",
                    "--discovery",
                ])
                .arg(&saved)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(matches!(out.status.code(), Some(0 | 2)), "{path}: {stderr}");
        }
    }
    let machines = fetch_machines(&api.url, Duration::from_secs(30), &api.operator()).unwrap();
    assert_eq!(machines.len(), 2);
    assert_eq!(machines[0].mac, mac_of(1));
    let data = dir.path().join("data-api");
    fs::create_dir(&data).unwrap();
    let out = common::caas_in(&data)
        .args([
            "schedule",
            "once",
            "--matchbox-url",
            "http://127.0.0.1:9",
            "--plan",
            "--api",
            &api.url,
        ])
        .args(api.token_args())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(matches!(out.status.code(), Some(0 | 2)), "{stderr}");
    assert!(!stderr.contains("recursion"), "{stderr}");
}

/// Starts `caas api --db <a>` and `caas api --db <b>` at the same instant; returns the
/// (first line of stdout, exit code if it exited, stderr) of each, the survivor killed.
fn two_apis_at_once(a: &Path, b: &Path) -> Vec<(String, Option<i32>, String)> {
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let runs: Vec<_> = [a.to_owned(), b.to_owned()]
        .into_iter()
        .map(|db| {
            let barrier = barrier.clone();
            thread::spawn(move || {
                let mut command = Command::new(env!("CARGO_BIN_EXE_caas"));
                command
                    .env_remove("CAAS_DB")
                    .env_remove("CAAS_LOG")
                    .args(["api", "--listen", "127.0.0.1:0", "--db"])
                    .arg(&db)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                barrier.wait();
                let mut child = command.spawn().unwrap();
                let mut line = String::new();
                BufReader::new(child.stdout.take().unwrap())
                    .read_line(&mut line)
                    .unwrap();
                (child, line)
            })
        })
        .collect();
    let started: Vec<_> = runs.into_iter().map(|t| t.join().unwrap()).collect();
    started
        .into_iter()
        .map(|(mut child, line)| {
            if line.starts_with("listening on ") {
                let _ = child.kill();
            }
            let status = child.wait().unwrap();
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            (line, status.code(), stderr)
        })
        .collect()
}

#[test]
fn a_symlink_or_a_hard_link_does_not_let_a_second_api_in() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..6 {
        let db = dir.path().join(format!("caas-{round}.db"));
        let other = dir.path().join(format!("other-{round}.db"));
        if round % 2 == 0 {
            std::os::unix::fs::symlink(&db, &other).unwrap();
        } else {
            // A hard link needs the file: an empty one is a new store to SQLite.
            fs::write(&db, b"").unwrap();
            fs::hard_link(&db, &other).unwrap();
        }
        let runs = two_apis_at_once(&db, &other);
        let started = runs
            .iter()
            .filter(|(line, _, _)| line.starts_with("listening"))
            .count();
        assert_eq!(started, 1, "round {round}: {runs:?}");
        let (_, code, stderr) = runs
            .iter()
            .find(|(line, _, _)| !line.starts_with("listening"))
            .unwrap();
        assert_eq!(*code, Some(1), "round {round}: {stderr}");
        assert!(
            stderr.contains("another process (caas api) is writing to it"),
            "{stderr}"
        );
        // Through the winner's path: after its SIGKILL, its WAL is named after that path.
        let winner = if runs[0].0.starts_with("listening") {
            &db
        } else {
            &other
        };
        Store::open_read_only(winner)
            .unwrap()
            .integrity_check()
            .unwrap();
    }
}

#[test]
fn a_database_deleted_or_replaced_under_the_api_gets_no_more_acknowledgements() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("caas.db");
    let api = Api::start(&db, &[]);
    let post = |i: usize| {
        request(
            "POST",
            &format!("{}/discovery", api.url),
            None,
            report(&mac_of(i), "h").to_string().as_bytes(),
        )
    };
    assert_eq!(post(1).0, 200);
    // Deleted: every POST is refused with 503 and /healthz says the database is down.
    fs::remove_file(&db).unwrap();
    let (status, body) = post(2);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("was deleted"), "{body}");
    let (status, body) = request("GET", &format!("{}/healthz", api.url), None, b"");
    assert_eq!(status, 503, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["db"], false);
    assert_eq!(api.terminate().code(), Some(0));

    // Replaced (a new store renamed over it) while POSTs keep coming: a POST sent after the
    // replacement is acknowledged only if it is in the file the next start opens.
    let api = Api::start(&db, &[]);
    let url = format!("{}/discovery", api.url);
    let replaced_at: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let poster = {
        let replaced_at = replaced_at.clone();
        let acknowledged = acknowledged.clone();
        thread::spawn(move || {
            let mut answers = Vec::new();
            let mut after = 0;
            // Until 20 POSTs were sent after the replacement (bounded).
            for i in 10..20_000 {
                if after >= 20 {
                    break;
                }
                let body = report(&mac_of(i), "h").to_string();
                let sent = Instant::now();
                if replaced_at.lock().unwrap().is_some_and(|at| sent > at) {
                    after += 1;
                }
                let status = request("POST", &url, None, body.as_bytes()).0;
                assert!(matches!(status, 200 | 503), "POST answered {status}");
                if status == 200 {
                    acknowledged.fetch_add(1, Ordering::SeqCst);
                }
                answers.push((sent, mac_of(i), status));
            }
            answers
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged.load(Ordering::SeqCst) < 5 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    let replacement = dir.path().join("replacement.db");
    drop(Store::open(&replacement).unwrap());
    fs::rename(&replacement, &db).unwrap();
    let replaced = Instant::now();
    *replaced_at.lock().unwrap() = Some(replaced);
    let answers = poster.join().unwrap();
    assert_eq!(
        request("GET", &format!("{}/healthz", api.url), None, b"").0,
        503
    );
    assert_eq!(api.terminate().code(), Some(0));
    let stored: BTreeSet<String> = Store::open_read_only(&db)
        .unwrap()
        .machines()
        .unwrap()
        .into_iter()
        .map(|m| m.mac)
        .collect();
    let before = answers
        .iter()
        .filter(|(sent, _, status)| *sent < replaced && *status == 200);
    assert!(
        before.count() > 0,
        "nothing was acknowledged before the replacement"
    );
    let after: Vec<_> = answers
        .iter()
        .filter(|(sent, _, _)| *sent > replaced)
        .collect();
    assert!(!after.is_empty());
    for (_, mac, status) in after {
        assert!(
            *status == 503 || stored.contains(mac),
            "{mac}: 200, and not in the store"
        );
    }
}

#[test]
fn half_closed_clients_get_their_answer() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(&dir.path().join("caas.db"), &[]);
    let half_closed = |request: String| {
        let mut stream = TcpStream::connect(("127.0.0.1", api.port())).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        String::from_utf8_lossy(&answer).into_owned()
    };
    let answers: Vec<String> = thread::scope(|scope| {
        let posts: Vec<_> = (0..20)
            .map(|i| {
                scope.spawn(move || {
                    let body = report(&mac_of(i), "half").to_string();
                    half_closed(format!(
                        "POST /discovery HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\n\r\n{body}",
                        body.len()
                    ))
                })
            })
            .collect();
        posts.into_iter().map(|p| p.join().unwrap()).collect()
    });
    for answer in &answers {
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
        assert!(answer.contains("\"total_elt\""), "{answer:?}");
    }
    let answer = half_closed("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".into());
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert_eq!(get_json(&format!("{}/healthz", api.url))["machines"], 20);
}

#[test]
fn sixteen_stalled_listing_readers_do_not_block_listings_for_long() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("caas.db");
    // ~30 MiB of listing: more than the socket buffers, so a client that reads nothing
    // really stalls the stream.
    {
        let mut store = Store::open(&db).unwrap();
        let padding = "p".repeat(1500);
        let reports: Vec<(String, String)> = (0..20_000)
            .map(|i| {
                let mut value = report(&mac_of(i), "h");
                value["padding"] = json!(padding);
                let report = caas::discovery::report::Report::from_value(value).unwrap();
                (mac_of(i), report.to_json())
            })
            .collect();
        let items: Vec<(&str, &str)> = reports
            .iter()
            .map(|(mac, report)| (mac.as_str(), report.as_str()))
            .collect();
        store
            .upsert_batch(&items, std::time::SystemTime::now())
            .unwrap();
    }
    let api = Api::start(&db, &[]);
    let stalled: Vec<TcpStream> = (0..16)
        .map(|_| {
            let mut stream = TcpStream::connect(("127.0.0.1", api.port())).unwrap();
            stream
                .write_all(
                    format!(
                        "GET /discovery/machines HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
                        common::api::TOKEN
                    )
                    .as_bytes(),
                )
                .unwrap();
            stream
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    // A well-behaved reader waits for a slot instead of being refused, and gets it once the
    // stalled streams are dropped.
    let (status, body) = request("GET", &format!("{}/discovery/machines", api.url), None, b"");
    assert_eq!(status, 200, "{}", &body[..body.len().min(300)]);
    assert_eq!(machines_from_json(body.as_bytes()).unwrap().len(), 20_000);
    drop(stalled);
}

/// `GET /healthz` over a connection from `source` (a loopback address), the status line.
fn healthz_from(source: std::net::Ipv4Addr, port: u16) -> String {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&std::net::SocketAddr::from((source, 0)).into())
        .unwrap();
    socket
        .connect(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into())
        .unwrap();
    let mut stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn one_client_cannot_hold_every_connection() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(
        &dir.path().join("caas.db"),
        &[
            "--max-connections-per-client",
            "3",
            "--header-timeout",
            "60s",
        ],
    );
    let port = api.port();
    let local = std::net::Ipv4Addr::LOCALHOST;
    // 127.0.0.1 takes its share with connections that never send a request.
    let mut idle: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    // One more from it is closed on arrival, not held until a timeout.
    let mut extra = TcpStream::connect(("127.0.0.1", port)).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut buf = [0u8; 64];
    match extra.read(&mut buf) {
        Ok(0) => {}
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the connection over the cap was not closed: {other:?}"),
    }
    // Another client is served meanwhile.
    assert_eq!(
        healthz_from(std::net::Ipv4Addr::new(127, 0, 0, 2), port),
        "HTTP/1.1 200 OK"
    );
    // A slot given back is a slot the client can use again.
    drop(idle.pop());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = healthz_from(local, port);
        if status == "HTTP/1.1 200 OK" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the freed slot never came back: {status:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn healthz_says_the_store_is_down_when_its_disk_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk");
    let _mounted = SmallDisk::mount(&disk, "16m");
    let api = Api::start(&disk.join("caas.db"), &[]);
    let healthz = || {
        let (status, body) = request("GET", &format!("{}/healthz", api.url), None, b"");
        (status, serde_json::from_str::<Value>(&body).unwrap())
    };
    let (status, body) = healthz();
    assert_eq!((status, &body["db"]), (200, &json!(true)), "{body}");

    // Another process fills the disk.
    let filler = disk.join("filler");
    {
        let mut file = fs::File::create(&filler).unwrap();
        let block = vec![0u8; 1 << 20];
        while file.write_all(&block).is_ok() {}
    }
    let (status, body) = healthz();
    assert_eq!(
        (status, &body["db"], &body["global"]),
        (503, &json!(false), &json!(false)),
        "{body}"
    );
    assert!(
        api.log()
            .contains("bytes free: new reports may not be stored"),
        "{}",
        api.log()
    );

    // Space again: healthy again, with no restart.
    fs::remove_file(&filler).unwrap();
    let (status, body) = healthz();
    assert_eq!((status, &body["db"]), (200, &json!(true)), "{body}");
}
