//! Benchmarks for `caas lint` and `caas explain` (the design's speed bars): `cargo bench --bench lint`.
//!
//! A data directory for 10,000 machines is built once through the one write path: per machine a
//! group (mac selector, metadata), a profile (Flatcar, relative assets, an Ignition URL) and a
//! raw Ignition 3.3.0 file; plus a default discovery group, and the assets the profiles name.
//! Then:
//! - `lint::lint_dir` in-process (bar: under 0.5 s), and the whole `caas lint` process;
//! - one `caas explain --mac …` process on that directory (bar: under 20 ms at 10,000 groups),
//!   its peak memory, and `explain_dir` in-process: reading every group file (`--no-index`),
//!   then with the group index warm.
//!
//! Figures are printed, never asserted: timing thresholds do not belong in tests.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use caas::explain::{Options, explain_dir, render_text};
use caas::lint::lint_dir;
use caas::matchbox::target::Target;
use caas::matchbox::{Boot, Group, Profile};
use caas::write::{FileWrite, apply, canonical_json};
use common::{mac, summary};
use serde_json::json;

const MACHINES: usize = 10_000;
const VERSION: &str = "3975.2.0";

fn profile(id: &str, ignition: &str) -> Profile {
    let assets = format!("/assets/flatcar/{VERSION}");
    Profile {
        id: id.into(),
        name: id.into(),
        boot: Some(Boot {
            kernel: format!("{assets}/flatcar_production_pxe.vmlinuz"),
            initrd: vec![format!("{assets}/flatcar_production_pxe_image.cpio.gz")],
            args: Some(vec![
                "initrd=flatcar_production_pxe_image.cpio.gz".into(),
                "ignition.config.url=http://matchbox.lab:8080/ignition?uuid=${uuid}&mac=${mac:hexhyp}".into(),
                "flatcar.first_boot=yes".into(),
                "console=ttyS0".into(),
            ]),
            cmdline: None,
        }),
        ignition_id: ignition.into(),
        ..Profile::default()
    }
}

fn ignition(hostname: &str) -> Vec<u8> {
    canonical_json(&json!({
        "ignition": {"version": "3.3.0"},
        "passwd": {"users": [{"name": "core", "sshAuthorizedKeys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOpZ lab"]}]},
        "storage": {"files": [{
            "path": "/etc/hostname",
            "mode": 420,
            "contents": {"source": format!("data:,{hostname}%0A")}
        }]},
        "systemd": {"units": [{
            "name": "etcd-member.service",
            "enabled": true,
            "contents": "[Unit]\nDescription=etcd\n[Service]\nExecStart=/usr/bin/etcd\n[Install]\nWantedBy=multi-user.target\n"
        }]}
    }))
}

fn tree(dir: &Path) -> Vec<FileWrite> {
    let mut files = Vec::new();
    let add = |files: &mut Vec<FileWrite>, rel: String, bytes: Vec<u8>| {
        files.push(FileWrite::new(dir.join(rel), bytes))
    };
    for i in 0..MACHINES {
        let id = format!("node{i:05}");
        let mut group = Group {
            id: id.clone(),
            name: id.clone(),
            profile: id.clone(),
            ..Group::default()
        };
        group.selector.insert("mac".into(), mac(i));
        group
            .metadata
            .insert("hostname".into(), format!("{id}.lab").into());
        group
            .metadata
            .insert("role".into(), if i < 3 { "etcd" } else { "worker" }.into());
        add(&mut files, format!("groups/{id}.json"), group.to_json());
        add(
            &mut files,
            format!("profiles/{id}.json"),
            profile(&id, &format!("{id}.ign")).to_json(),
        );
        add(
            &mut files,
            format!("ignition/{id}.ign"),
            ignition(&format!("{id}.lab")),
        );
    }
    let default = Group {
        id: "discovery".into(),
        name: "discovery".into(),
        profile: "discovery".into(),
        ..Group::default()
    };
    add(
        &mut files,
        "groups/discovery.json".into(),
        default.to_json(),
    );
    add(
        &mut files,
        "profiles/discovery.json".into(),
        profile("discovery", "discovery.ign").to_json(),
    );
    add(
        &mut files,
        "ignition/discovery.ign".into(),
        ignition("discovery"),
    );
    for name in [
        "flatcar_production_pxe.vmlinuz",
        "flatcar_production_pxe_image.cpio.gz",
    ] {
        add(
            &mut files,
            format!("assets/flatcar/{VERSION}/{name}"),
            b"placeholder".to_vec(),
        );
    }
    files
}

/// CPU time used so far (user + system), by this process and by its waited-for children, from
/// /proc/self/stat (in USER_HZ ticks, 100 per second on Linux). The machine may be shared: wall
/// time then includes waiting for a core, CPU time does not.
fn cpu_times() -> (Duration, Duration) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<u64> = stat[stat.rfind(')').unwrap() + 2..]
        .split(' ')
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // After the command: state(0) … utime(11) stime(12) cutime(13) cstime(14).
    let tick = Duration::from_millis(10);
    (
        tick * (fields[11] + fields[12]) as u32,
        tick * (fields[13] + fields[14]) as u32,
    )
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split(' ').next().unwrap_or("?").to_owned())
        .unwrap_or_default()
}

/// Runs `command` `runs` times; prints wall-time figures and the CPU time per run.
fn bench_process(label: &str, runs: usize, mut command: impl FnMut(usize) -> Command) {
    let (_, before) = cpu_times();
    let mut samples = Vec::new();
    for i in 0..runs {
        let mut command = command(i);
        let start = Instant::now();
        let output = command.output().unwrap();
        samples.push(start.elapsed());
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let (_, after) = cpu_times();
    summary(label, samples);
    println!(
        "  CPU (user + system) per process: {:.2?}; load average {}",
        (after - before) / runs as u32,
        load_average()
    );
}

fn bench_dir(base: &Path, label: &str) {
    let dir = tempfile::tempdir_in(base).unwrap();
    let files = tree(dir.path());
    let start = Instant::now();
    apply(&files).unwrap();
    println!(
        "built the {MACHINES}-machine tree on {label} ({} files) in {:.2?}",
        files.len(),
        start.elapsed()
    );
    drop(files);

    let findings = lint_dir(dir.path(), Target::Matchbox011).unwrap();
    assert!(
        findings.is_empty(),
        "the generated tree must lint clean: {:?}",
        &findings[..findings.len().min(5)]
    );
    let (before, _) = cpu_times();
    let mut in_process = Vec::new();
    for _ in 0..10 {
        let start = Instant::now();
        let findings = lint_dir(dir.path(), Target::Matchbox011).unwrap();
        in_process.push(start.elapsed());
        assert!(findings.is_empty());
    }
    let (after, _) = cpu_times();
    summary(
        &format!("lint_dir, {MACHINES} machines, {label}, in-process"),
        in_process,
    );
    println!(
        "  CPU (user + system, all threads) per run: {:.2?}; load average {}",
        (after - before) / 10,
        load_average()
    );

    let caas = env!("CARGO_BIN_EXE_caas");
    bench_process(
        &format!("`caas lint`, {MACHINES} machines, {label}, whole process"),
        10,
        |_| {
            let mut command = Command::new(caas);
            command.args(["-q", "lint"]).arg(dir.path());
            command
        },
    );
    // The group index trusts only files that settled (see `caas::matchbox::group_index`).
    std::thread::sleep(caas::matchbox::group_index::RACY);
    let cache = tempfile::tempdir().unwrap();
    for (index, cache) in [
        ("every file read", None),
        ("group index", Some(cache.path())),
    ] {
        bench_explain(dir.path(), &format!("{label}, {index}"), cache);
        bench_process(
            &format!("`caas explain`, {MACHINES} machines, {label}, {index}, whole process"),
            30,
            |i| {
                let mut command = Command::new(caas);
                command.arg("--data-dir").arg(dir.path()).args([
                    "explain",
                    "--mac",
                    &mac(i * 311 % MACHINES),
                ]);
                match cache {
                    Some(cache) => command.env("XDG_CACHE_HOME", cache),
                    None => command.arg("--no-index"),
                };
                command
            },
        );
    }
}

/// `explain_dir` in-process for `runs` machines, and the peak memory of one `caas explain`,
/// with the group index in `cache` or without one.
fn bench_explain(dir: &Path, label: &str, cache: Option<&Path>) {
    let runs = 30;
    let (before, _) = cpu_times();
    let mut samples = Vec::new();
    for i in 0..runs {
        let query = vec![("mac".to_owned(), mac(i * 311 % MACHINES))];
        let start = Instant::now();
        let explanation = explain_dir(
            dir,
            Target::Matchbox011,
            &query,
            Options {
                cache,
                every_group: false,
            },
        )
        .unwrap();
        let text = render_text(&explanation);
        samples.push(start.elapsed());
        // Its own group and the default are listed; the other machines' groups are counted.
        assert!(explanation.group.is_some() && explanation.candidates.len() == 2);
        assert!(explanation.unlisted == MACHINES - 1 && text.contains("--all lists them"));
    }
    let (after, _) = cpu_times();
    summary(
        &format!("explain_dir + render_text, {MACHINES} machines, {label}, in-process"),
        samples,
    );
    println!(
        "  CPU (user + system, all threads) per run: {:.2?}",
        (after - before) / runs as u32
    );
    let mut command = Command::new("/usr/bin/time");
    command
        .args(["-f", "%M"])
        .arg(env!("CARGO_BIN_EXE_caas"))
        .arg("--data-dir")
        .arg(dir)
        .args(["explain", "--mac", &mac(4242)]);
    match cache {
        Some(cache) => command.env("XDG_CACHE_HOME", cache),
        None => command.arg("--no-index"),
    };
    let output = command.output().unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let kib: f64 = (stderr.lines().last())
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0.0);
    println!(
        "`caas explain`, {MACHINES} machines, {label}: peak memory {:.1} MiB",
        kib / 1024.0
    );
}

/// `caas explain` on matchbox's own etcd3 example (5 groups, 6 profiles): a lab-sized tree.
fn bench_explain_example() {
    let source =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/matchbox-examples/v0.8.3");
    let dir = tempfile::tempdir().unwrap();
    for (from, to) in [
        ("profiles", "profiles"),
        ("ignition", "ignition"),
        ("groups/etcd3", "groups"),
    ] {
        std::fs::create_dir_all(dir.path().join(to)).unwrap();
        for entry in std::fs::read_dir(source.join(from)).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.path().join(to).join(entry.file_name())).unwrap();
        }
    }
    let caas = env!("CARGO_BIN_EXE_caas");
    bench_process(
        "`caas explain`, matchbox's etcd3 example, whole process",
        50,
        |_| {
            let mut command = Command::new(caas);
            command.arg("--data-dir").arg(dir.path()).args([
                "explain",
                "--target",
                "matchbox-0.8",
                "--mac",
                "52:54:00:a1:9c:ae",
            ]);
            command
        },
    );
}

fn main() {
    // `cargo test --benches` runs bench targets with `--bench` absent: stay quick there.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    bench_explain_example();
    bench_dir(&std::env::temp_dir(), "disk");
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        bench_dir(shm, "tmpfs");
    }
}
