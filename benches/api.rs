//! `caas api` under load (the design's speed bar: ≥ 5,000 durable POST /discovery per second on
//! loopback with p99 under 20 ms; under 100 MB resident with 100,000 machines stored).
//!
//! `cargo bench --bench api` starts the release `caas api` on 127.0.0.1 with its store in the
//! temp dir (a real disk: every acknowledged POST is fsynced), drives it with `wrk` (Debian
//! package) and a Lua script that posts realistic reports with a distinct MAC per request, then
//! fills the store to 100,000 machines and reads the server's resident memory from /proc.
//!
//! `cargo bench --bench api -- wal` measures only the store's write-ahead log under 30 s of
//! sustained POSTs (its peak size, its size afterwards, the first POST after the load).
//!
//! `cargo bench --bench api -- burst`: resident memory under 256 simultaneous 1 MiB POSTs;
//! `-- slow-readers`: how long listings are refused while 16 clients stall theirs.
//!
//! `cargo bench --bench api -- engines`: durable POST/s and p50/p99 at 16 and 64 connections
//! with the store on SQLite and on PostgreSQL (a private cluster from Debian's package, fsync
//! on), and two `caas api` sharing the PostgreSQL database.
//!
//! Figures are printed, never asserted.

use std::fs;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// The benchmark uses part of the tests' cluster helper.
#[allow(dead_code)]
#[path = "../tests/common/postgres.rs"]
mod postgres;

/// Posts one report per request; the MAC is `02:<prefix>:<thread>:<counter>` (24-bit counter),
/// so each run (prefix) and thread posts its own machines.
const POST_LUA: &str = r#"
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end
function init(args)
  prefix = tonumber(args[1]) or 0
  counter = 0
end
local body_format = [[{"boot-info":{"uuid":"5e1f0c3a-7d4b-4c1e-9a2f-%s","mac":"%s","product-uuid":"5e1f0c3a-7d4b-4c1e-9a2f-%s","serial":"SN%s"},"hostname":"node-%s","interfaces":[{"name":"lo","mac":"","state":"unknown","ipv4":"127.0.0.1","cidrv4":"127.0.0.1/8","netmask":8,"addresses":["127.0.0.1/8","::1/128"]},{"name":"eth0","mac":"%s","state":"up","ipv4":"10.%d.%d.%d","cidrv4":"10.%d.%d.%d/8","netmask":8,"addresses":["10.%d.%d.%d/8","fe80::ff:fe00:1/64"]},{"name":"eth1","mac":"02:00:00:00:00:01","state":"down","ipv4":null,"cidrv4":null,"netmask":null,"addresses":[]}],"lldp":{"neighbors":[{"interface":"eth0","chassis":{"id":"28:f1:0e:12:20:00","id-type":"mac","name":"tor-1"},"port":{"id":"Ethernet1/23","id-type":"ifname"}}]}}]]
function request()
  counter = counter + 1
  local a = math.floor(counter / 65536) % 256
  local b = math.floor(counter / 256) % 256
  local c = counter % 256
  local mac = string.format("02:%02x:%02x:%02x:%02x:%02x", prefix, tid, a, b, c)
  local id = string.format("%02x%02x%02x%02x%02x%02x", 2, prefix, tid, a, b, c)
  local body = string.format(body_format, id, mac, id, id, id, mac, a, b, c, a, b, c, a, b, c)
  return wrk.format("POST", "/discovery", {["Content-Type"] = "application/json"}, body)
end
"#;

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The operator token of the benchmarked servers (the listings need it).
const TOKEN: &str = "bench-operator-token-0123456789";

fn start(db: &Path, log: &Path) -> Server {
    start_on(db.as_os_str(), log)
}

/// `caas api --db <db>`: a SQLite path or a PostgreSQL URL.
fn start_on(db: &std::ffi::OsStr, log: &Path) -> Server {
    let token_file = log.with_extension("token");
    fs::write(&token_file, TOKEN).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_caas"))
        .args(["api", "--listen", "127.0.0.1:0", "--db"])
        .arg(db)
        .arg("--operator-token-file")
        .arg(&token_file)
        .stdout(Stdio::piped())
        .stderr(fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();
    Server { child, url }
}

/// (requests/s, p99 latency text, requests, non-2xx) of one wrk run.
fn wrk(
    url: &str,
    script: &Path,
    connections: u32,
    seconds: u32,
    prefix: u32,
) -> (f64, String, u64, u64) {
    let run = wrk_run(url, script, connections, seconds, prefix);
    (run.rate, run.p99, run.requests, run.errors)
}

/// What one wrk run measured.
struct WrkRun {
    rate: f64,
    p50: String,
    p99: String,
    requests: u64,
    errors: u64,
}

fn wrk_run(url: &str, script: &Path, connections: u32, seconds: u32, prefix: u32) -> WrkRun {
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            "--timeout",
            "10s",
            "-s",
        ])
        .arg(script)
        .arg(url)
        .args(["--", &prefix.to_string()])
        .output()
        .expect("wrk (Debian package wrk) is needed: apt-get install wrk");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_owned()))
    };
    let rate = field("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let p50 = field("50%").unwrap_or_else(|| "?".into());
    let p99 = field("99%").unwrap_or_else(|| "?".into());
    let requests = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let errors = field("Non-2xx or 3xx responses:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    WrkRun {
        rate,
        p50,
        p99,
        requests,
        errors,
    }
}

/// Durable POSTs of new machines at 16 and 64 connections, 10 s each, on one engine; then,
/// on PostgreSQL, two instances sharing the database, each driven by its own wrk.
fn engines(dir: &Path, script: &Path) {
    let report = |engine: &str, connections: u32, run: &WrkRun| {
        println!(
            "{engine}, {connections} connections: {:.0} durable POST/s, p50 {}, p99 {} ({} requests, {} non-2xx)",
            run.rate, run.p50, run.p99, run.requests, run.errors
        );
    };
    let db = dir.join("engines.db");
    let server = start(&db, &dir.join("engines-sqlite.log"));
    wrk(&server.url, script, 16, 2, 0x20); // warm-up
    for (prefix, connections) in [(0x21, 16), (0x22, 64)] {
        report(
            "SQLite",
            connections,
            &wrk_run(&server.url, script, connections, 10, prefix),
        );
    }
    drop(server);

    let pg = postgres::Postgres::start();
    let url = pg.create_database("caas");
    let server = start_on(url.as_ref(), &dir.join("engines-pg.log"));
    wrk(&server.url, script, 16, 2, 0x30); // warm-up
    for (prefix, connections) in [(0x31, 16), (0x32, 64)] {
        report(
            "PostgreSQL",
            connections,
            &wrk_run(&server.url, script, connections, 10, prefix),
        );
    }
    let second = start_on(url.as_ref(), &dir.join("engines-pg2.log"));
    for (prefix, connections) in [(0x40, 8), (0x42, 32)] {
        let (a, b) = std::thread::scope(|scope| {
            let a = scope.spawn(|| wrk_run(&server.url, script, connections, 10, prefix));
            let b = scope.spawn(|| wrk_run(&second.url, script, connections, 10, prefix + 1));
            (a.join().unwrap(), b.join().unwrap())
        });
        println!(
            "PostgreSQL, two caas api, {connections} connections each: {:.0} durable POST/s together (p50 {} / {}, p99 {} / {}; {} non-2xx)",
            a.rate + b.rate,
            a.p50,
            b.p50,
            a.p99,
            b.p99,
            a.errors + b.errors
        );
    }
    println!("{} machines stored in PostgreSQL", machines(&server.url));
}

/// A report like the Lua script's, for MAC number `n` of run `prefix`.
fn report_body(prefix: u32, n: u32) -> String {
    let mac = format!(
        "02:{prefix:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        (n >> 24) & 0xff,
        (n >> 16) & 0xff,
        (n >> 8) & 0xff,
        n & 0xff
    );
    format!(
        r#"{{"boot-info":{{"uuid":"5e1f0c3a-7d4b-4c1e-9a2f-{n:012x}","mac":"{mac}","serial":"SN{n}"}},"hostname":"node-{n}","interfaces":[{{"name":"lo","mac":"","state":"unknown","ipv4":"127.0.0.1","cidrv4":"127.0.0.1/8","netmask":8,"addresses":["127.0.0.1/8","::1/128"]}},{{"name":"eth0","mac":"{mac}","state":"up","ipv4":"10.0.{}.{}","cidrv4":"10.0.{}.{}/16","netmask":16,"addresses":["10.0.{}.{}/16","fe80::ff:fe00:1/64"]}}],"lldp":{{"neighbors":[{{"interface":"eth0","chassis":{{"id":"28:f1:0e:12:20:00","id-type":"mac","name":"tor-1"}},"port":{{"id":"Ethernet1/23","id-type":"ifname"}}}}]}}}}"#,
        (n >> 8) & 0xff,
        n & 0xff,
        (n >> 8) & 0xff,
        n & 0xff,
        (n >> 8) & 0xff,
        n & 0xff
    )
}

/// Open-loop load: `rate` POSTs per second for `seconds`, spread over `clients` keep-alive
/// connections. Each request has a scheduled start; its latency counts from that schedule, so
/// a slow answer that delays the next request is charged to the server (no coordinated
/// omission). Returns (achieved rate, sorted latencies, non-200 answers).
fn open_loop(
    url: &str,
    rate: u32,
    seconds: u32,
    clients: u32,
    prefix: u32,
) -> (f64, Vec<Duration>, u64) {
    let total = rate * seconds;
    let interval = Duration::from_secs_f64(f64::from(clients) / f64::from(rate));
    let start = Instant::now() + Duration::from_millis(100);
    let results: Vec<(Vec<Duration>, u64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|client| {
                scope.spawn(move || {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .build()
                        .new_agent();
                    let mut latencies = Vec::new();
                    let mut errors = 0;
                    let offset = interval.mul_f64(f64::from(client) / f64::from(clients));
                    let mut k = 0;
                    loop {
                        let n = k * clients + client;
                        if n >= total {
                            break;
                        }
                        let due = start + offset + interval * k;
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        let body = report_body(prefix, n);
                        match agent
                            .post(url)
                            .header("Content-Type", "application/json")
                            .send(body.as_bytes())
                        {
                            Ok(mut response) => {
                                let _ = response.body_mut().read_to_vec();
                                if response.status().as_u16() != 200 {
                                    errors += 1;
                                }
                            }
                            Err(_) => errors += 1,
                        }
                        latencies.push(Instant::now().duration_since(due));
                        k += 1;
                    }
                    (latencies, errors)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    let errors = results.iter().map(|(_, e)| e).sum();
    let mut latencies: Vec<Duration> = results.into_iter().flat_map(|(l, _)| l).collect();
    latencies.sort_unstable();
    (latencies.len() as f64 / elapsed, latencies, errors)
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn machines(url: &str) -> u64 {
    let mut response = ureq::get(&format!("{url}/healthz")).call().unwrap();
    let health: serde_json::Value =
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    health["machines"].as_u64().unwrap()
}

/// (VmRSS, VmHWM) in MiB.
fn memory(pid: u32) -> (f64, f64) {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (kib("VmRSS:"), kib("VmHWM:"))
}

/// The size of the store's write-ahead log under sustained POSTs (issue: it grew without
/// limit): wrk posts new machines on 64 connections for `seconds`; the WAL's size is sampled
/// every 100 ms; then one POST's latency and the WAL once the load is over.
fn wal_under_load(dir: &Path, script: &Path, seconds: u32) {
    let db = dir.join("wal.db");
    let server = start(&db, &dir.join("wal.log"));
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    let wal = std::path::PathBuf::from(wal);
    let size = |path: &Path| fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let done = std::sync::atomic::AtomicBool::new(false);
    let (peak, (rate, p99, requests, errors)) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(size(&wal));
                std::thread::sleep(Duration::from_millis(100));
            }
            peak
        });
        let result = wrk(&server.url, script, 64, seconds, 0x77);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        (sampler.join().unwrap(), result)
    });
    let at_end = size(&wal);
    let started = Instant::now();
    let mut response = ureq::post(&format!("{}/discovery", server.url))
        .header("Content-Type", "application/json")
        .send(report_body(0x78, 1).as_bytes())
        .unwrap();
    let _ = response.body_mut().read_to_vec();
    let first_post = started.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let mib = |bytes: u64| bytes as f64 / 1048576.0;
    println!(
        "WAL under {seconds} s of POSTs (64 connections, {rate:.0} req/s, p99 {p99}, {requests} requests, {errors} non-2xx): peak {:.1} MiB, {:.1} MiB at the end of the load, {:.1} MiB 2 s later; store {:.1} MiB; first POST after the load {first_post:.2?}",
        mib(peak),
        mib(at_end),
        mib(size(&wal)),
        mib(size(&db)),
    );
}

/// Memory under a burst of large bodies (issue: ~8.5 MB per 1 MiB POST in flight, never
/// given back): 256 clients at once each POST a 1 MiB body of many small JSON arrays (valid
/// JSON, refused as a report once parsed). Prints the peak and the resident size afterwards.
fn memory_burst(dir: &Path) {
    let db = dir.join("burst.db");
    let server = start(&db, &dir.join("burst.log"));
    let pid = server.child.id();
    let (rss_before, _) = memory(pid);
    let mut body = String::from(r#"{"x":["#);
    while body.len() < 1024 * 1024 - 16 {
        body.push_str("[],");
    }
    body.push_str("[]]}");
    let url = format!("{}/discovery", server.url);
    let started = Instant::now();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let posts: Vec<_> = (0..256)
            .map(|_| {
                scope.spawn(|| {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .timeout_global(Some(Duration::from_secs(120)))
                        .build()
                        .new_agent();
                    agent
                        .post(&url)
                        .header("Content-Type", "application/json")
                        .send(body.as_bytes())
                        .map_or(0, |r| r.status().as_u16())
                })
            })
            .collect();
        posts.into_iter().map(|p| p.join().unwrap()).collect()
    });
    let elapsed = started.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let (rss, peak) = memory(pid);
    let mut counts = std::collections::BTreeMap::new();
    for status in statuses {
        *counts.entry(status).or_insert(0) += 1;
    }
    println!(
        "256 POSTs of 1 MiB at once: statuses {counts:?} in {elapsed:.2?}; resident {rss_before:.1} MiB before, peak {peak:.1} MiB, {rss:.1} MiB 2 s after"
    );
}

/// Listings while 16 clients read nothing of theirs (issue: every listing answered 503 for
/// 75-120 s): 20,000 machines stored (a ~40 MiB listing, more than the socket buffers), 16
/// connections ask for it and never read, then one well-behaved client asks once a second.
fn slow_readers(dir: &Path) {
    let db = dir.join("slow.db");
    {
        let mut store = caas::discovery::store::Store::open(&db).unwrap();
        let padding = "p".repeat(1500);
        let bodies: Vec<(String, String)> = (0..20_000u32)
            .map(|n| {
                let body = report_body(0x55, n).replacen(
                    r#""hostname":"#,
                    &format!(r#""padding":"{padding}","hostname":"#),
                    1,
                );
                let report = caas::discovery::report::Report::from_slice(body.as_bytes()).unwrap();
                (report.check().unwrap(), report.to_json())
            })
            .collect();
        let items: Vec<(&str, &str)> = bodies
            .iter()
            .map(|(m, r)| (m.as_str(), r.as_str()))
            .collect();
        store
            .upsert_batch(&items, std::time::SystemTime::now())
            .unwrap();
    }
    let server = start(&db, &dir.join("slow.log"));
    let port: u16 = server.url.rsplit(':').next().unwrap().parse().unwrap();
    let stalled: Vec<std::net::TcpStream> = (0..16)
        .map(|_| {
            use std::io::Write as _;
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            stream
                .write_all(
                    format!(
                        "GET /discovery/machines HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
                    )
                    .as_bytes(),
                )
                .unwrap();
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let start = Instant::now();
    let mut refused_until = None;
    let mut answered = None;
    while start.elapsed() < Duration::from_secs(150) {
        let asked = Instant::now();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .new_agent();
        let result = agent
            .get(&format!("{}/discovery/machines", server.url))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .call()
            .map(|mut r| {
                (
                    r.status().as_u16(),
                    r.body_mut()
                        .with_config()
                        .limit(u64::MAX)
                        .read_to_vec()
                        .map_or(0, |b| b.len()),
                )
            });
        match result {
            Ok((200, len)) => {
                answered = Some((start.elapsed(), asked.elapsed(), len));
                break;
            }
            _ => refused_until = Some(start.elapsed()),
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    drop(stalled);
    match answered {
        Some((at, took, len)) => println!(
            "16 stalled listing readers: listings refused until {:.1?}; the first 200 asked at {:.1?} took {took:.2?} ({:.1} MiB)",
            refused_until.unwrap_or_default(),
            at - took,
            len as f64 / 1048576.0
        ),
        None => println!("16 stalled listing readers: no listing answered in 150 s"),
    }
}

fn main() {
    // `cargo test --benches` runs bench targets with `--bench` absent: stay quick there.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // `cargo bench --bench api -- burst` / `-- slow-readers`: memory of bodies in flight, and
    // listings behind stalled readers.
    if std::env::args().any(|arg| arg == "burst") {
        memory_burst(dir.path());
        return;
    }
    if std::env::args().any(|arg| arg == "slow-readers") {
        slow_readers(dir.path());
        return;
    }
    if std::env::args().any(|arg| arg == "engines") {
        let script = dir.path().join("post.lua");
        fs::write(&script, POST_LUA).unwrap();
        engines(dir.path(), &script);
        return;
    }
    // `cargo bench --bench api -- wal`: only the write-ahead log under load.
    if std::env::args().any(|arg| arg == "wal") {
        let script = dir.path().join("post.lua");
        fs::write(&script, POST_LUA).unwrap();
        wal_under_load(dir.path(), &script, 30);
        return;
    }
    let script = dir.path().join("post.lua");
    fs::write(&script, POST_LUA).unwrap();

    // The bar: 5,000 new machines per second offered, open loop, latency from the schedule.
    let db = dir.path().join("rate.db");
    let server = start(&db, &dir.path().join("rate.log"));
    open_loop(&format!("{}/discovery", server.url), 2_000, 2, 32, 1); // warm-up
    for rate in [5_000, 8_000] {
        let (achieved, latencies, errors) = open_loop(
            &format!("{}/discovery", server.url),
            rate,
            15,
            64,
            rate / 1000,
        );
        println!(
            "POST /discovery at {rate} req/s offered (open loop, 64 connections): {achieved:.0} req/s done, p50 {:.2?}, p99 {:.2?}, p99.9 {:.2?}, max {:.2?} ({} requests, {errors} not 200)",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            percentile(&latencies, 0.999),
            latencies.last().unwrap(),
            latencies.len()
        );
    }
    drop(server);

    // Saturation (closed loop, wrk): 15 s per concurrency level, each posting new machines.
    let db = dir.path().join("load.db");
    let server = start(&db, &dir.path().join("load.log"));
    println!(
        "caas api {} (store {}, durable: WAL + synchronous=FULL)",
        server.url,
        db.display()
    );
    wrk(&server.url, &script, 64, 3, 1); // warm-up
    for (prefix, connections) in [(2, 16), (3, 32), (4, 64), (5, 256)] {
        let (rate, p99, requests, errors) = wrk(&server.url, &script, connections, 15, prefix);
        println!(
            "POST /discovery, new machines, {connections} connections: {rate:.0} req/s, p99 {p99} ({requests} requests, {errors} non-2xx)"
        );
    }
    let (rate, p99, requests, errors) = wrk(&server.url, &script, 32, 15, 3);
    println!(
        "POST /discovery, reposts (updates), 32 connections: {rate:.0} req/s, p99 {p99} ({requests} requests, {errors} non-2xx)"
    );
    println!(
        "{} machines stored after the load runs",
        machines(&server.url)
    );
    drop(server);

    // Memory: a fresh store filled to 100,000 machines, then the whole list read back.
    let db = dir.path().join("memory.db");
    let server = start(&db, &dir.path().join("memory.log"));
    let pid = server.child.id();
    let mut prefix = 10;
    while machines(&server.url) < 100_000 && prefix < 200 {
        wrk(&server.url, &script, 32, 2, prefix);
        prefix += 1;
    }
    let stored = machines(&server.url);
    std::thread::sleep(Duration::from_secs(2));
    let (rss, peak) = memory(pid);
    println!("{stored} machines stored: resident {rss:.1} MiB (peak while filling {peak:.1} MiB)");
    for path in ["/discovery/machines", "/discovery"] {
        let started = Instant::now();
        let mut response = ureq::get(&format!("{}{path}", server.url))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .call()
            .unwrap();
        let body = response
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()
            .unwrap();
        let elapsed = started.elapsed();
        let (rss, peak) = memory(pid);
        println!(
            "GET {path}: {:.1} MiB in {elapsed:.2?}; resident after {rss:.1} MiB, peak {peak:.1} MiB",
            body.len() as f64 / 1048576.0
        );
    }
    let db_size = fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
    println!(
        "store file with {stored} machines: {:.1} MiB",
        db_size as f64 / 1048576.0
    );
}
