//! The large-lab path (the design's scale goals): `cargo bench --bench publish`.
//!
//! For each lab size (`CAAS_BENCH_SIZES`, default `1000,10000`; add `100000` for the full run),
//! on tmpfs (/dev/shm):
//! - `caas gen cluster` (and its unchanged rerun) and `caas schedule once` for that many
//!   machines: wall time and peak memory (`/usr/bin/time`);
//! - `caas publish static`: the first publish and the unchanged rerun;
//! - `GET /ipxe` for random machines (hyphenated MACs, half with `os=installed`) with `wrk`:
//!   requests/s and latency percentiles of nginx on the published tree (over 1 connection, the
//!   per-request cost, and over 16) against stock matchbox v0.8.3 on the data directory; and
//!   nginx answering `/boot.ipxe` alone, the floor a request costs on this machine.
//!
//! Figures are printed, never asserted: timing thresholds do not belong in tests.

mod common;

use std::fmt::Write as _;
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::mac;
use serde_json::json;

const CAAS: &str = env!("CARGO_BIN_EXE_caas");

fn sizes() -> Vec<usize> {
    std::env::var("CAAS_BENCH_SIZES")
        .unwrap_or_else(|_| "1000,10000".into())
        .split(',')
        .map(|n| n.trim().parse().expect("CAAS_BENCH_SIZES: numbers"))
        .collect()
}

/// A lab spec: three etcd members, gateways for the rest, every one installing to disk (two
/// groups per machine: the installer's MAC group and `os=installed`).
fn spec(machines: usize) -> String {
    let mut spec = String::from(
        "name: bench\nos: flatcar\nchannel: stable\nmatchbox_url: http://10.0.0.1:8080\n\
         api_url: http://10.0.0.1:5000\nssh_authorized_keys: [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA bench\"]\n\
         install: {device: /dev/sda}\nmachines:\n",
    );
    for i in 0..machines {
        let role = if i < 3 { "etcd-member" } else { "etcd-gateway" };
        let _ = writeln!(
            spec,
            "  - {{name: node{i:06}, mac: \"{}\", role: {role}, ip: {}}}",
            mac(i),
            // One address per machine, from 10.0.0.1 up: caas refuses an address given twice.
            std::net::Ipv4Addr::from(0x0a00_0001 + i as u32)
        );
    }
    spec
}

fn discovery(machines: usize) -> String {
    let records: Vec<_> = (0..machines)
        .map(|i| {
            let mac = mac(i);
            json!({
                "mac": mac,
                "first_seen": "2026-11-26T10:00:00.000Z",
                "report": {
                    "boot-info": {"mac": mac, "uuid": format!("uuid-{i}")},
                    "interfaces": [{"name": "eth0", "mac": mac,
                        "ipv4": format!("10.{}.{}.{}", i >> 16, (i >> 8) & 0xff, i & 0xff),
                        "netmask": 8}]
                }
            })
        })
        .collect();
    serde_json::to_string(&records).unwrap()
}

/// Runs `caas <args>` under `/usr/bin/time`: wall time and peak resident memory (MiB).
fn timed(data: &Path, args: &[&str]) -> (Duration, f64) {
    let start = Instant::now();
    let output = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(CAAS)
        .arg("--data-dir")
        .arg(data)
        .arg("-q")
        .args(args)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let elapsed = start.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "caas {args:?}: {stderr}");
    let kib: f64 = stderr
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0.0);
    (elapsed, kib / 1024.0)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn matchbox_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CAAS_TEST_MATCHBOX") {
        return path.into();
    }
    let mut found: Vec<PathBuf> = fs::read_dir("/var/cache/caas-test/matchbox")
        .expect("matchbox v0.8.3: run scripts/install-test-deps.sh")
        .filter_map(|e| Some(e.ok()?.path().join("matchbox")))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop().expect("matchbox v0.8.3 is built")
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_matchbox(data: &Path, port: u16) -> Server {
    let child = Command::new(matchbox_binary())
        .arg("-address")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-data-path")
        .arg(data)
        .args(["-assets-path", "", "-log-level", "error"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(port);
    Server(child)
}

/// nginx in the foreground, one process (as the equivalence test runs it).
fn start_nginx(prefix: &Path, conf: &Path, port: u16) -> Server {
    let temp = prefix.join("temp");
    fs::create_dir_all(&temp).unwrap();
    let main = format!(
        "daemon off;\nmaster_process off;\nuser root;\npid {p}/nginx.pid;\nerror_log {p}/error.log warn;\n\
         events {{ worker_connections 1024; }}\nhttp {{\n access_log off;\n client_body_temp_path {t};\n\
         proxy_temp_path {t};\n fastcgi_temp_path {t};\n uwsgi_temp_path {t};\n scgi_temp_path {t};\n\
         include {conf};\n}}\n",
        p = prefix.display(),
        t = temp.display(),
        conf = conf.display()
    );
    fs::write(prefix.join("nginx.conf"), main).unwrap();
    let child = Command::new("/usr/sbin/nginx")
        .arg("-p")
        .arg(prefix)
        .arg("-e")
        .arg(prefix.join("error.log"))
        .arg("-c")
        .arg(prefix.join("nginx.conf"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(port);
    Server(child)
}

/// A wrk script asking `/ipxe` for random machines among `machines`.
fn wrk_script(dir: &Path, machines: usize) -> PathBuf {
    let script = format!(
        r#"math.randomseed(42)
request = function()
  local i = math.random(0, {last})
  local os = ""
  if math.random(0, 1) == 1 then os = "&os=installed" end
  local path = string.format("/ipxe?uuid=u&mac=52-54-00-%02x-%02x-%02x&domain=%s",
    math.floor(i / 65536) % 256, math.floor(i / 256) % 256, i % 256, os)
  return wrk.format("GET", path)
end
"#,
        last = machines - 1
    );
    let path = dir.join("random.lua");
    fs::write(&path, script).unwrap();
    path
}

/// A wrk script asking `/boot.ipxe`, one file served as it is.
fn floor_script(dir: &Path) -> PathBuf {
    let path = dir.join("floor.lua");
    fs::write(
        &path,
        "request = function()\n  return wrk.format(\"GET\", \"/boot.ipxe\")\nend\n",
    )
    .unwrap();
    path
}

/// `connections` keep-alive connections from as many wrk threads as fit (at most 2): with one,
/// the latency is the server's per-request cost; with 16, requests queue for the 2 cores that
/// wrk and the server share, which the p99 shows.
fn wrk(label: &str, port: u16, script: &Path, seconds: u32, connections: u32) {
    let output = Command::new("wrk")
        .args([
            &format!("-t{}", connections.min(2)),
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            "--timeout",
            "60s",
        ])
        .arg("-s")
        .arg(script)
        .arg(format!("http://127.0.0.1:{port}"))
        .output()
        .expect("wrk is installed");
    let text = String::from_utf8_lossy(&output.stdout);
    let pick = |prefix: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .map(|l| l.split_whitespace().last().unwrap_or("").to_owned())
            .unwrap_or_else(|| "?".into())
    };
    println!(
        "  {label}: {} req/s, p50 {}, p99 {}, requests {}",
        pick("Requests/sec:"),
        pick("50%"),
        pick("99%"),
        text.lines()
            .find(|l| l.contains("requests in"))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or("?")
    );
}

fn bench_size(machines: usize) {
    println!("{machines} machines:");
    let base = tempfile::tempdir_in("/dev/shm").unwrap();
    let data = base.path().join("data");
    common::publish_etcd(&data);
    let spec_path = base.path().join("lab.yaml");
    fs::write(&spec_path, spec(machines)).unwrap();
    let spec_arg = spec_path.to_str().unwrap();
    let (wall, mib) = timed(&data, &["gen", "cluster", "-f", spec_arg]);
    println!("  gen cluster: {wall:.2?}, peak {mib:.0} MiB");
    // Every file is rendered and compared with what is on disk; nothing is written.
    let (wall, mib) = timed(&data, &["gen", "cluster", "-f", spec_arg]);
    println!("  gen cluster, unchanged rerun: {wall:.2?}, peak {mib:.0} MiB");

    let scheduled = base.path().join("scheduled");
    common::publish_etcd(&scheduled);
    let machines_path = base.path().join("machines.json");
    fs::write(&machines_path, discovery(machines)).unwrap();
    let (wall, mib) = timed(
        &scheduled,
        &[
            "schedule",
            "once",
            "--matchbox-url",
            "http://10.0.0.1:8080",
            "--discovery",
            machines_path.to_str().unwrap(),
        ],
    );
    println!("  schedule once: {wall:.2?}, peak {mib:.0} MiB");
    drop(fs::remove_dir_all(&scheduled));

    let out = base.path().join("published");
    let nginx_port = free_port();
    let matchbox_port = free_port();
    let publish_args = [
        "publish",
        "static",
        "--out",
        out.to_str().unwrap(),
        "--listen",
        &format!("127.0.0.1:{nginx_port}"),
    ]
    .map(str::to_owned);
    let args: Vec<&str> = publish_args.iter().map(String::as_str).collect();
    let (wall, mib) = timed(&data, &args);
    println!("  publish static: {wall:.2?}, peak {mib:.0} MiB");
    let (wall, _) = timed(&data, &args);
    println!("  publish static, unchanged rerun: {wall:.2?}");

    let script = wrk_script(base.path(), machines);
    let prefix = base.path().join("nginx");
    {
        let _nginx = start_nginx(&prefix, &out.join("nginx.conf"), nginx_port);
        wrk("nginx on the tree, 1 connection", nginx_port, &script, 5, 1);
        // The same server answering one static file with no lookup: what this machine's
        // loopback and scheduler cost a request, whatever the server does.
        wrk(
            "nginx, /boot.ipxe only (the machine's floor), 1 connection",
            nginx_port,
            &floor_script(base.path()),
            5,
            1,
        );
        wrk(
            "nginx on the tree, 16 connections",
            nginx_port,
            &script,
            5,
            16,
        );
    }
    {
        let _matchbox = start_matchbox(&data, matchbox_port);
        wrk(
            "matchbox v0.8.3, 16 connections",
            matchbox_port,
            &script,
            10,
            16,
        );
    }
}

fn main() {
    for machines in sizes() {
        bench_size(machines);
    }
}
