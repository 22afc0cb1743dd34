//! Reruns change nothing; a killed process leaves every file old or new, never partial.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{caas_in, tree_state};

fn group_command(dir: &Path, i: usize) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_caas"));
    cmd.arg("--data-dir").arg(dir).args([
        "gen",
        "group",
        "--id",
        &format!("node{i:04}"),
        "--profile",
        "worker",
        "--selector",
        &format!("mac=52-54-00-00-{:02X}-{:02X}", i / 256, i % 256),
        "--metadata",
        &format!("index={i}"),
        &format!("hostname=node{i:04}.lab"),
    ]);
    cmd
}

/// Runs `caas gen group` for 1,000 machines on two threads; returns every stdout line.
fn write_1000_groups(dir: &Path) -> Vec<String> {
    let halves: Vec<Vec<String>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|half| {
                scope.spawn(move || {
                    (half * 500..(half + 1) * 500)
                        .map(|i| {
                            let out = group_command(dir, i).output().unwrap();
                            assert!(out.status.success(), "{out:?}");
                            String::from_utf8(out.stdout).unwrap()
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    halves.into_iter().flatten().collect()
}

#[test]
fn rerunning_1000_group_writes_changes_no_byte_and_no_mtime() {
    let dir = tempfile::tempdir().unwrap();
    caas_in(dir.path())
        .args(["gen", "profile", "--id", "worker", "--kernel", "/k"])
        .assert()
        .success();
    let first = write_1000_groups(dir.path());
    assert!(first.iter().all(|line| line.starts_with("created ")));
    let before = tree_state(dir.path());
    assert_eq!(before.len(), 1001);
    // mtimes have a coarse granularity on some file systems: make a touch detectable.
    thread::sleep(Duration::from_millis(20));
    let second = write_1000_groups(dir.path());
    assert!(
        second.iter().all(|line| line.starts_with("unchanged ")),
        "{:?}",
        second.iter().find(|l| !l.starts_with("unchanged "))
    );
    assert_eq!(tree_state(dir.path()), before);
}

/// Deterministic pseudo-random numbers (a 64-bit LCG): reproducible kill times.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound
    }
}

fn big_metadata(path: &Path, variant: usize) {
    let mut text = String::from("{");
    for i in 0..150_000 {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&format!("\"key{i:06}\": \"value {variant} {i}\""));
    }
    text.push('}');
    fs::write(path, text).unwrap();
}

fn assert_every_json_file_is_whole(dir: &Path) {
    for sub in ["groups", "profiles"] {
        let Ok(entries) = fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".json") {
                let bytes = fs::read(&path).unwrap();
                let value: serde_json::Value = serde_json::from_slice(&bytes)
                    .unwrap_or_else(|err| panic!("{} is partial: {err}", path.display()));
                assert!(value.get("id").is_some(), "{}", path.display());
            } else {
                assert!(
                    name.starts_with(".caas-") && name.ends_with(".tmp"),
                    "unexpected file {name}"
                );
            }
        }
    }
}

#[test]
fn sigkill_in_the_middle_of_writes_leaves_no_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bootcfg");
    caas_in(&data)
        .args(["gen", "profile", "--id", "p", "--kernel", "/k"])
        .assert()
        .success();
    let variants: Vec<_> = (0..2)
        .map(|v| {
            let path = dir.path().join(format!("meta{v}.json"));
            big_metadata(&path, v);
            path
        })
        .collect();

    // How long one large write takes here, so the kills spread over the whole of it.
    let start = Instant::now();
    caas_in(&data)
        .args([
            "gen",
            "group",
            "--id",
            "big0",
            "--profile",
            "p",
            "--metadata-file",
        ])
        .arg(&variants[0])
        .assert()
        .success();
    let span = start.elapsed().as_micros() as u64;

    let mut rng = Lcg(0x5eed);
    let mut interrupted = 0;
    for round in 0..40 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_caas"))
            .arg("--data-dir")
            .arg(&data)
            .args([
                "gen",
                "group",
                "--id",
                &format!("big{}", round % 3),
                "--profile",
                "p",
            ])
            .arg("--metadata-file")
            .arg(&variants[round % 2])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        thread::sleep(Duration::from_micros(rng.next(span + 1)));
        if child.try_wait().unwrap().is_none() {
            interrupted += 1;
        }
        child.kill().unwrap();
        let _ = child.wait();
        assert_every_json_file_is_whole(&data);
    }
    assert!(
        interrupted >= 10,
        "only {interrupted} of 40 kills hit a running process"
    );
}
