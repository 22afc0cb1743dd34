//! `caas schedule once` over 100,000 discovered machines (the design's bar: under 1 s):
//! `cargo bench --bench schedule`.
//!
//! The machines come from a `caas api` store (`--db`) and from a JSON file (`--discovery`).
//! Cases: three members and no workers (reading and deciding dominate), `--plan` with every
//! machine a worker (100,003 files rendered and compared, none written), and the real write
//! of all of them on tmpfs and disk, then the unchanged rerun; with each case's peak memory
//! (`/usr/bin/time`). Figures are printed, never asserted.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use caas::discovery::store::Store;
use common::{mac, summary};
use serde_json::json;

const MACHINES: usize = 100_000;

fn report(i: usize) -> String {
    let mac = mac(i);
    let ip = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 0xff, i & 0xff);
    json!({
        "boot-info": {"mac": mac, "uuid": format!("uuid-{i}")},
        "hostname": format!("node{i}"),
        "interfaces": [
            {"name": "lo", "mac": "", "ipv4": "127.0.0.1", "cidrv4": "127.0.0.1/8", "netmask": 8},
            {"name": "eth0", "mac": mac, "ipv4": ip, "cidrv4": format!("{ip}/8"), "netmask": 8}
        ]
    })
    .to_string()
}

fn build_store(path: &Path) {
    let mut store = Store::open(path).unwrap();
    let reports: Vec<(String, String)> = (0..MACHINES).map(|i| (mac(i), report(i))).collect();
    for (n, chunk) in reports.chunks(10_000).enumerate() {
        let items: Vec<(&str, &str)> = chunk
            .iter()
            .map(|(m, r)| (m.as_str(), r.as_str()))
            .collect();
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + n as u64);
        store.upsert_batch(&items, at).unwrap();
    }
    // Every machine admitted, as `caas machines approve --all` does: only those get a role.
    let approve = caas::discovery::admission::Change::Approve {
        which: caas::discovery::admission::Selection::All,
        by: "bench".into(),
    };
    store.apply_change(&approve, SystemTime::now()).unwrap();
}

/// The most memory a run under [`run`] has used so far, in KiB.
static PEAK_KIB: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Prints and resets the peak memory of the runs since the last call.
fn print_peak(label: &str) {
    let kib = PEAK_KIB.swap(0, std::sync::atomic::Ordering::Relaxed);
    println!("  {label}: peak memory {:.0} MiB", kib as f64 / 1024.0);
}

fn run(data: &Path, source: &[&str], extra: &[&str]) -> Duration {
    common::publish_etcd(data);
    let start = Instant::now();
    let output = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(env!("CARGO_BIN_EXE_caas"))
        .arg("--data-dir")
        .arg(data)
        .args([
            "-q",
            "schedule",
            "once",
            "--matchbox-url",
            "http://10.0.0.1:8080",
        ])
        .args(source)
        .args(extra)
        .stdout(std::process::Stdio::null())
        .output()
        .unwrap();
    let elapsed = start.elapsed();
    let status = output.status;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let kib: u64 = (stderr.lines().last())
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    PEAK_KIB.fetch_max(kib, std::sync::atomic::Ordering::Relaxed);
    assert!(
        status.success() || status.code() == Some(2),
        "schedule failed: {status}"
    );
    elapsed
}

fn bench_source(name: &str, source: &[&str]) {
    let members_only: Vec<_> = (0..5)
        .map(|_| {
            let data = tempfile::tempdir().unwrap();
            run(data.path(), source, &["--workers", "0"])
        })
        .collect();
    summary(
        &format!("{name}: 100,000 machines, 3 members, no workers"),
        members_only,
    );
    print_peak("3 members");
    let plan: Vec<_> = (0..3)
        .map(|_| {
            let data = tempfile::tempdir().unwrap();
            run(data.path(), source, &["--plan"])
        })
        .collect();
    summary(
        &format!("{name}: 100,000 machines, all workers, --plan (100,005 files compared)"),
        plan,
    );
    print_peak("all workers, --plan");
}

fn bench_writes(source: &[&str], base: &Path, label: &str) {
    let data = tempfile::tempdir_in(base).unwrap();
    let first = run(data.path(), source, &[]);
    let rerun: Vec<_> = (0..3).map(|_| run(data.path(), source, &[])).collect();
    summary(
        &format!("--db, all workers written on {label}, first run"),
        vec![first],
    );
    print_peak("first run and reruns");
    summary(
        &format!("--db, all workers on {label}, unchanged rerun"),
        rerun,
    );
}

fn main() {
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("caas.db");
    build_store(&db);
    let json_file = dir.path().join("machines.json");
    let records: Vec<_> = Store::open_read_only(&db).unwrap().machines().unwrap();
    std::fs::write(&json_file, serde_json::to_vec(&records).unwrap()).unwrap();

    let db = db.to_str().unwrap();
    let json_file = json_file.to_str().unwrap();
    bench_source("--db", &["--db", db]);
    bench_source("--discovery", &["--discovery", json_file]);
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        bench_writes(&["--db", db], shm, "tmpfs");
    }
    bench_writes(&["--db", db], &std::env::temp_dir(), "disk");
}
