//! Benchmarks for the generators (the design's speed bars): `cargo bench --bench gen`.
//!
//! - 10,000 group files written in-process through the one write path (first write and the
//!   unchanged rerun);
//! - the wall time of one `caas gen group` process, as shell loops run it.
//!
//! Figures are printed, never asserted: timing thresholds do not belong in tests.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use caas::matchbox::Group;
use caas::write::{FileWrite, apply};
use common::summary;

fn groups(dir: &Path, count: usize) -> Vec<FileWrite> {
    (0..count)
        .map(|i| {
            let mut group = Group {
                id: format!("node{i:05}"),
                name: format!("node{i:05}"),
                profile: "worker".into(),
                ..Group::default()
            };
            group.selector.insert(
                "mac".into(),
                format!(
                    "52:54:00:{:02x}:{:02x}:{:02x}",
                    i >> 16,
                    (i >> 8) & 0xff,
                    i & 0xff
                ),
            );
            group
                .metadata
                .insert("hostname".into(), format!("node{i:05}.lab").into());
            FileWrite::new(
                dir.join(format!("groups/{}.json", group.id)),
                group.to_json(),
            )
        })
        .collect()
}

/// Writes 10,000 groups under `base` five times. File creation dominates on a slow disk, so the
/// same run on tmpfs shows caas's own share.
fn bench_in_process_writes(base: &Path, label: &str) {
    let mut first = Vec::new();
    let mut rerun = Vec::new();
    for _ in 0..5 {
        let dir = tempfile::tempdir_in(base).unwrap();
        let files = groups(dir.path(), 10_000);
        let start = Instant::now();
        apply(&files).unwrap();
        first.push(start.elapsed());
        let start = Instant::now();
        apply(&files).unwrap();
        rerun.push(start.elapsed());
    }
    summary(
        &format!("10,000 group writes, in-process, {label}, created"),
        first,
    );
    summary(
        &format!("10,000 group writes, in-process, {label}, unchanged rerun"),
        rerun,
    );
}

fn bench_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let caas = env!("CARGO_BIN_EXE_caas");
    let run = |i: usize| {
        let status = Command::new(caas)
            .arg("--data-dir")
            .arg(dir.path())
            .args([
                "-q",
                "gen",
                "group",
                "--id",
                &format!("node{i}"),
                "--profile",
                "worker",
                "--allow-missing-profile",
                "--selector",
                &format!("mac=52:54:00:00:00:{:02x}", i % 256),
            ])
            .status()
            .unwrap();
        assert!(status.success());
    };
    for i in 0..20 {
        run(i); // warm the page cache
    }
    let mut created = Vec::new();
    for i in 100..400 {
        let start = Instant::now();
        run(i);
        created.push(start.elapsed());
    }
    let mut unchanged = Vec::new();
    for i in 100..400 {
        let start = Instant::now();
        run(i);
        unchanged.push(start.elapsed());
    }
    summary("one `caas gen group` process, created", created);
    summary("one `caas gen group` process, unchanged", unchanged);
}

fn main() {
    // `cargo test --benches` runs bench targets with `--bench` absent: stay quick there.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    bench_in_process_writes(&std::env::temp_dir(), "disk");
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        bench_in_process_writes(shm, "tmpfs");
    }
    bench_one_process();
}
