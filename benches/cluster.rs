//! `caas gen cluster` for 10,000 machines (the design's speed bar: group + profile + Ignition each,
//! under 1 s): `cargo bench --bench cluster`.
//!
//! - in-process: reading the spec, planning (rendering every config), and the one write, on
//!   the temp dir's disk and on /dev/shm (tmpfs), where file creation costs little, so caas's
//!   own share shows;
//! - the same with every machine's config distinct (nothing shared between renders);
//! - the unchanged rerun;
//! - the whole `caas gen cluster -f` process.
//!
//! Figures are printed, never asserted: timing thresholds do not belong in tests.

mod common;

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use caas::cluster::spec::{LabSpec, Overrides, from_yaml};
use caas::matchbox::DataDir;
use caas::write::apply_changes;
use common::summary;

const MACHINES: usize = 10_000;

/// A lab of `MACHINES`: three etcd members and gateways for the rest. With `distinct`, every
/// gateway listens on its own port, so no two configs are the same.
fn spec(distinct: bool) -> String {
    let mut spec = String::from(
        "name: bench\nos: flatcar\nchannel: stable\nmatchbox_url: http://10.0.0.1:8080\n\
         api_url: http://10.0.0.1:5000\nssh_authorized_keys: [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA bench\"]\n\
         args: [console=ttyS0]\nmachines:\n",
    );
    for i in 0..MACHINES {
        let mac = format!(
            "52:54:00:{:02x}:{:02x}:{:02x}",
            i >> 16,
            (i >> 8) & 0xff,
            i & 0xff
        );
        if i < 3 {
            let _ = writeln!(
                spec,
                "  - {{name: node{i:05}, mac: \"{mac}\", role: etcd-member, ip: 10.0.{}.{}}}",
                i / 250,
                i % 250 + 2
            );
        } else if distinct {
            let _ = writeln!(
                spec,
                "  - {{name: node{i:05}, mac: \"{mac}\", role: etcd-gateway, vars: {{etcd_gateway_listen: \"127.0.0.1:{}\"}}}}",
                20000 + i
            );
        } else {
            let _ = writeln!(
                spec,
                "  - {{name: node{i:05}, mac: \"{mac}\", role: etcd-gateway}}"
            );
        }
    }
    spec
}

fn bench_in_process(base: &Path, where_: &str, distinct: bool) {
    let text = spec(distinct);
    let kind = if distinct {
        "every config distinct"
    } else {
        "gateways share a config"
    };
    let (mut plan, mut write, mut total, mut rerun) = (vec![], vec![], vec![], vec![]);
    for _ in 0..5 {
        let dir = tempfile::tempdir_in(base).unwrap();
        common::publish_etcd(dir.path());
        let data_dir = DataDir::new(dir.path());
        let start = Instant::now();
        let lab = from_yaml::<LabSpec>(&text, "bench.yaml")
            .unwrap()
            .validate("bench.yaml", &Overrides::default())
            .unwrap();
        let changes = caas::cluster::changes(&data_dir, &lab, None, false).unwrap();
        let planned = start.elapsed();
        let outcomes = apply_changes(&changes.files, &changes.removals).unwrap();
        let elapsed = start.elapsed();
        assert_eq!(outcomes.len(), 3 * MACHINES + 3 + 1);
        plan.push(planned);
        write.push(elapsed - planned);
        total.push(elapsed);

        let start = Instant::now();
        let changes = caas::cluster::changes(&data_dir, &lab, None, false).unwrap();
        apply_changes(&changes.files, &changes.removals).unwrap();
        rerun.push(start.elapsed());
    }
    let label = format!("gen cluster, {MACHINES} machines ({kind}), in-process, {where_}");
    summary(&format!("{label}: read + plan + render"), plan);
    summary(&format!("{label}: write {} files", 3 * MACHINES + 4), write);
    summary(&format!("{label}: total"), total);
    summary(&format!("{label}: unchanged rerun"), rerun);
}

fn bench_process(base: &Path, where_: &str) {
    let work = tempfile::tempdir().unwrap();
    let spec_path = work.path().join("lab.yaml");
    std::fs::write(&spec_path, spec(false)).unwrap();
    let (mut first, mut again) = (vec![], vec![]);
    for _ in 0..3 {
        let dir = tempfile::tempdir_in(base).unwrap();
        common::publish_etcd(dir.path());
        let run = || {
            let start = Instant::now();
            let status = Command::new(env!("CARGO_BIN_EXE_caas"))
                .arg("--data-dir")
                .arg(dir.path())
                .args(["-q", "gen", "cluster", "-f"])
                .arg(&spec_path)
                .status()
                .unwrap();
            assert!(status.success());
            start.elapsed()
        };
        first.push(run());
        again.push(run());
    }
    summary(
        &format!("`caas gen cluster -f` process, {MACHINES} machines, {where_}, created"),
        first,
    );
    summary(
        &format!("`caas gen cluster -f` process, {MACHINES} machines, {where_}, unchanged"),
        again,
    );
}

fn main() {
    // `cargo test --benches` runs bench targets with `--bench` absent: stay quick there.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let disk = std::env::temp_dir();
    let shm = Path::new("/dev/shm");
    let mut places = vec![(disk.as_path(), "disk (temp dir)")];
    if shm.is_dir() {
        places.push((shm, "tmpfs (/dev/shm)"));
    }
    for (base, where_) in &places {
        bench_in_process(base, where_, false);
        bench_in_process(base, where_, true);
        bench_process(base, where_);
    }
}
