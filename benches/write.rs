//! How `write::apply` makes a batch of new files durable: `cargo bench --bench write`.
//!
//! Each [`Flush`] strategy writes N fresh files of a group's size into one directory (sizes from
//! `CAAS_BENCH_SIZES`, default `100,1000,10000,100000`), on a real disk: a directory under
//! `CAAS_BENCH_DIR` (default `/var/tmp`), refused when it is tmpfs, where every flush is free.
//! Each runs twice: on a quiet file system, and while another process has
//! `CAAS_BENCH_DIRTY_MIB` (default 2048) MiB of dirty data waiting there (a `dd` without sync,
//! as a neighbour copying an image leaves it), which a `syncfs` must wait for and a per-file
//! flush need not. `CAAS_BENCH_FLUSH` (a comma list of strategy numbers, 0-based as listed in
//! `Flush::ALL`) runs only some; `fsync each at once` is skipped above 10,000 files.
//!
//! Figures are printed, never asserted: timing thresholds do not belong in tests.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use caas::write::{Action, FileWrite, Flush, apply_changes_flushed};

fn env_list(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|n| {
            n.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{name}: numbers"))
        })
        .collect()
}

fn dirty_mib() -> usize {
    env_list("CAAS_BENCH_DIRTY_MIB", "2048")[0]
}

/// The bench's directory on a real disk.
fn base_dir() -> PathBuf {
    let base = PathBuf::from(std::env::var("CAAS_BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into()));
    let stat = rustix::fs::statfs(&base).expect("CAAS_BENCH_DIR: a directory");
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    assert!(
        stat.f_type as i64 != TMPFS_MAGIC,
        "{} is tmpfs, where flushing costs nothing: set CAAS_BENCH_DIR to a directory on a disk",
        base.display()
    );
    base
}

/// `count` group-sized files (about 400 bytes each) under `dir/groups/`.
fn files(dir: &Path, count: usize) -> Vec<FileWrite> {
    (0..count)
        .map(|i| {
            let mac = common::mac(i);
            let group = serde_json::json!({
                "id": format!("node{i:06}"),
                "name": format!("node{i:06}"),
                "profile": "bench-etcd-gateway",
                "selector": {"mac": mac},
                "metadata": {
                    "hostname": format!("node{i:06}"),
                    "ip": format!("10.{}.{}.{}", i >> 16, (i >> 8) & 0xff, i & 0xff),
                    "etcd_endpoints": "http://10.0.0.1:2379,http://10.0.0.2:2379,http://10.0.0.3:2379",
                },
            });
            let body = caas::write::canonical_json(&group);
            FileWrite::new(dir.join(format!("groups/node{i:06}.json")), body)
        })
        .collect()
}

/// Leaves `mib` MiB of another process's dirty data in `dir`: `dd` without any sync, waited
/// for, so each run starts with the same amount queued.
fn dirty_neighbour(dir: &Path, mib: usize) -> PathBuf {
    let path = dir.join("neighbour.img");
    let mut dd: Child = Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", path.display()))
        .args(["bs=1M", &format!("count={mib}")])
        .stderr(Stdio::null())
        .spawn()
        .expect("dd");
    assert!(dd.wait().unwrap().success(), "dd failed");
    path
}

/// Flushes everything pending on the file system of `dir`, outside the measurement.
fn settle(dir: &Path) {
    rustix::fs::syncfs(fs::File::open(dir).unwrap()).unwrap();
}

fn run_once(base: &Path, count: usize, flush: Flush, dirty: bool) -> Duration {
    let dir = tempfile::tempdir_in(base).unwrap();
    let batch = files(dir.path(), count);
    fs::create_dir(dir.path().join("groups")).unwrap();
    settle(dir.path());
    let neighbour = dirty.then(|| dirty_neighbour(base, dirty_mib()));
    let start = Instant::now();
    let outcomes = apply_changes_flushed(&batch, &[], flush).unwrap();
    let elapsed = start.elapsed();
    assert!(outcomes.iter().all(|o| o.action == Action::Created));
    if let Some(path) = neighbour {
        // Removing it drops whatever of it is still dirty: the next run starts quiet.
        fs::remove_file(path).unwrap();
    }
    drop(dir);
    settle(base);
    elapsed
}

fn main() {
    // `cargo test --benches` runs bench targets with `--bench` absent: stay quick there.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let base = base_dir();
    let sizes = env_list("CAAS_BENCH_SIZES", "100,1000,10000,100000");
    let chosen = env_list("CAAS_BENCH_FLUSH", "0,1,2,3,4,5,6");
    println!(
        "write::apply, new files in {} (chosen strategy: {})",
        base.display(),
        Flush::CHOSEN.name()
    );
    for count in sizes {
        // Small batches vary run to run; large ones take long enough to time once.
        let runs = if count <= 1000 { 5 } else { 1 };
        for dirty in [false, true] {
            let load = if dirty {
                format!("{} MiB of another process's dirty data", dirty_mib())
            } else {
                "quiet disk".to_owned()
            };
            for &index in &chosen {
                let flush = Flush::ALL[index];
                if flush == Flush::EachAtOnce && count > 10_000 {
                    // One journal commit after another (6.6 s for 10,000 files here): the
                    // slowest, and linear, so larger sizes say nothing new.
                    println!(
                        "{count} files, {load}, {}: skipped above 10,000",
                        flush.name()
                    );
                    continue;
                }
                let samples = (0..runs)
                    .map(|_| run_once(&base, count, flush, dirty))
                    .collect();
                common::summary(&format!("{count} files, {load}, {}", flush.name()), samples);
            }
        }
    }
}
