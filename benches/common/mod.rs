//! What the benchmarks share: one way to print figures, and machine-like test data.
#![allow(dead_code)]

use std::time::Duration;

/// Prints min, median, p95 and max of `samples` under `label`; returns the median.
pub fn summary(label: &str, mut samples: Vec<Duration>) -> Duration {
    assert!(!samples.is_empty(), "{label}: no samples");
    samples.sort();
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "{label}: min {:.2?}, median {:.2?}, p95 {:.2?}, max {:.2?} ({} runs)",
        pick(0.0),
        pick(0.5),
        pick(0.95),
        pick(1.0),
        samples.len()
    );
    pick(0.5)
}

/// The `i`-th of up to 2^24 distinct MACs: `52:54:00:xx:xx:xx`.
pub fn mac(i: usize) -> String {
    format!(
        "52:54:00:{:02x}:{:02x}:{:02x}",
        (i >> 16) & 0xff,
        (i >> 8) & 0xff,
        i & 0xff
    )
}

/// Publishes a placeholder etcd release under `<data>/assets/etcd/` (as `caas assets fetch
/// etcd` leaves one), so the etcd roles' configs render.
pub fn publish_etcd(data: &std::path::Path) {
    let dir = data.join("assets/etcd/v3.5.21");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("etcd"), b"etcd").unwrap();
    let sha256 = caas::write::sha256_hex(b"etcd");
    let manifest = format!(
        r#"{{"os": "etcd", "version": "v3.5.21", "arch": "amd64",
            "files": [{{"role": "etcd", "name": "etcd", "sha256": "{sha256}", "size": 4}}]}}"#
    );
    std::fs::write(dir.join("caas-assets.json"), manifest).unwrap();
    let _ = std::os::unix::fs::symlink("v3.5.21", data.join("assets/etcd/current"));
}
