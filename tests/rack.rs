//! The virtual rack: the lab caas describes must actually form, with real parts at every step.
//!
//! In a private network namespace (a bridge, one tap per VM): dnsmasq running the configuration
//! `caas chain dnsmasq --mode full` writes, stock matchbox v0.8.3 serving the data directory and
//! its assets, and `caas api`. Four QEMU (TCG) VMs with fixed MACs: three boot from their NIC's
//! iPXE ROM, one from the ISO `caas chain build` makes. The OS they boot is the stand-in
//! (scripts/standin-os: Debian's kernel, systemd, the real Ignition and etcd), published as a
//! Flatcar release from a local mirror signed with a test key and fetched by
//! `caas assets fetch flatcar`, so caas's own assets path is used.
//!
//! The flow: `gen cluster` with discovery as the default role → all four boot discovery →
//! `caas discover` in each reports to `caas api` → `schedule once --etcd-members 3 --workers
//! all` → dnsmasq restarts with the addresses the roles were given pinned (`caas chain dnsmasq
//! --hosts-from`) and a lease pool that no longer holds them → the VMs are reset → each gets
//! exactly its scheduled address, three etcd members and one gateway come up from their own
//! Ignition → `etcdctl` from the host side of the bridge sees the cluster.
//!
//! Runs as root (network namespaces); every wait is a bounded poll; on failure each VM's serial
//! console tail and the servers' logs are printed.

#[path = "assets_support/mod.rs"]
mod assets_support;
mod common;
mod rack_support;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use assets_support::pgp::{Keys, Signer};
use assets_support::server::Server;
use common::{caas_in, tree_state};
use rack_support::{Boot, Netns, Vm, have, needs, require_root, run, standin_os, wait_for};
use serde_json::Value;

const GATEWAY: &str = Netns::GATEWAY;
/// The version the stand-in is published as.
const VERSION: &str = "9999.0.0";
const KERNEL: &str = "flatcar_production_pxe.vmlinuz";
const INITRD: &str = "flatcar_production_pxe_image.cpio.gz";
/// Kernel arguments every VM boots with: the serial console the test reads, and no check of
/// the timer interrupt, which a TCG guest on a busy host can fail ("IO-APIC + timer doesn't
/// work!", a kernel panic).
const ARGS: [&str; 2] = ["console=ttyS0", "no_timer_check"];
/// One TCG boot of the stand-in takes about a minute on an idle 2-core machine; four at once
/// on a loaded one, several.
const BOOT_LIMIT: Duration = Duration::from_secs(900);
const POLL: Duration = Duration::from_secs(2);

/// The tests here take turns: TCG VMs share the machine's few cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn take_turn() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---- stage (i): the stand-in OS applies an Ignition config ----

/// The stand-in booted directly (`-kernel`/`-initrd`, QEMU user networking that reaches only a
/// test server): Ignition fetches the config from `ignition.config.url`, writes its file, and
/// systemd starts the unit it enabled, which reads that file.
#[test]
fn the_standin_os_applies_its_ignition_config_and_runs_its_units() {
    require_root();
    let _turn = take_turn();
    let (kernel, initrd) = standin_os();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start();
    let config = serde_json::json!({
        "ignition": {"version": "3.3.0"},
        "storage": {"files": [{
            "path": "/etc/caas-test/greeting",
            "mode": 420,
            "contents": {"source": "data:,hello%20from%20ignition"}
        }]},
        "systemd": {"units": [{
            "name": "caas-test.service",
            "enabled": true,
            "contents": "[Unit]\nDescription=caas test unit\n\n[Service]\nType=oneshot\n\
                ExecStart=/bin/sh -c 'echo \"caas-test: $(cat /etc/caas-test/greeting)\" >/dev/ttyS0'\n\n\
                [Install]\nWantedBy=multi-user.target\n"
        }]}
    });
    let path = dir.path().join("config.ign");
    fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    common::ignition_validate(&path);
    server.put("/config.ign", fs::read(&path).unwrap());

    if !Path::new("/bin/busybox").is_file() {
        needs("no /bin/busybox (package busybox-static)");
    }
    let port = server.base.rsplit(':').next().unwrap().to_owned();
    // Each guest connection gets its own relay to the server on 127.0.0.1.
    let netdev = format!(
        "user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:80-cmd:/bin/busybox nc 127.0.0.1 {port}"
    );
    let boot = Boot::Kernel {
        kernel,
        initrd,
        append: format!(
            "{} flatcar.first_boot=yes ignition.config.url=http://10.0.2.100/config.ign",
            ARGS.join(" ")
        ),
    };
    let vm = Vm::start(
        "standin",
        "52:54:00:77:00:99",
        "7e57a11d-0000-4000-8000-000000000099",
        &netdev,
        &boot,
        dir.path(),
        None,
    );
    let started = Instant::now();
    wait_for(
        "the unit Ignition enabled to print the file Ignition wrote",
        BOOT_LIMIT,
        POLL,
        || {
            vm.assert_running();
            let console = vm.console();
            assert!(
                !console.contains("caas-standin: ignition failed"),
                "{}",
                vm.tail(80)
            );
            console
                .contains("caas-test: hello from ignition")
                .then_some(())
        },
        || vm.tail(80),
    );
    let console = vm.console();
    let applied = console
        .find("caas-standin: ignition applied (enabled: caas-test.service)")
        .unwrap_or_else(|| panic!("no 'ignition applied' marker\n{}", vm.tail(80)));
    assert!(applied < console.find("caas-test: hello from ignition").unwrap());
    eprintln!(
        "stand-in: Ignition applied and its unit ran {:.1?} after QEMU started",
        started.elapsed()
    );
}

// ---- stages (ii) and (iii): the rack ----

struct Machine {
    mac: &'static str,
    uuid: &'static str,
    iso: bool,
}

/// The lease pool while machines are discovered, and the one after scheduling: disjoint, so
/// that a machine keeps its discovery address after the reset only through its reservation
/// (as when leases are lost or the pool is changed).
const DISCOVERY_POOL: (&str, &str) = ("10.77.0.100", "10.77.0.149");
const LATER_POOL: (&str, &str) = ("10.77.0.150", "10.77.0.199");

const MACHINES: [Machine; 4] = [
    Machine {
        mac: "52:54:00:77:00:01",
        uuid: "7e57a11d-0000-4000-8000-000000000001",
        iso: false,
    },
    Machine {
        mac: "52:54:00:77:00:02",
        uuid: "7e57a11d-0000-4000-8000-000000000002",
        iso: false,
    },
    Machine {
        mac: "52:54:00:77:00:03",
        uuid: "7e57a11d-0000-4000-8000-000000000003",
        iso: false,
    },
    Machine {
        mac: "52:54:00:77:00:04",
        uuid: "7e57a11d-0000-4000-8000-000000000004",
        iso: true,
    },
];

fn matchbox_url() -> String {
    format!("http://{GATEWAY}:8080")
}

fn api_url() -> String {
    format!("http://{GATEWAY}:5000")
}

/// The stand-in, published as Flatcar release [`VERSION`] on a mirror signed by a test key, and
/// fetched into `data` by `caas assets fetch flatcar`.
fn publish_standin_as_flatcar(data: &Path, work: &Path, mirror: &Server) {
    let (kernel, initrd) = standin_os();
    let keys = Keys::generate();
    let keyring = work.join("test-keyring.asc");
    fs::write(&keyring, keys.keyring()).unwrap();
    for (name, file) in [(KERNEL, &kernel), (INITRD, &initrd)] {
        let bytes = fs::read(file).unwrap();
        let path = format!("/flatcar/amd64-usr/{VERSION}/{name}");
        mirror.put(&format!("{path}.sig"), keys.sign(Signer::Good, &bytes));
        mirror.put(&path, bytes);
    }
    caas_ok(
        caas_in(data)
            .args([
                "assets",
                "fetch",
                "flatcar",
                "--version",
                VERSION,
                "--base-url",
            ])
            .arg(mirror.url("/flatcar"))
            .arg("--keyring")
            .arg(&keyring),
    );
}

/// Runs caas; it must succeed. Returns its stdout.
fn caas_ok(cmd: &mut assert_cmd::Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The machines `caas api` lists: MAC → report.
fn discovered(ns: &Netns) -> BTreeMap<String, Value> {
    let out = ns
        .command("curl")
        .args(["-fsS", "--max-time", "5"])
        .arg(format!("{}/discovery/machines", api_url()))
        .output()
        .unwrap();
    if !out.status.success() {
        return BTreeMap::new();
    }
    let Ok(value) = serde_json::from_slice::<Value>(&out.stdout) else {
        return BTreeMap::new();
    };
    let mut machines = BTreeMap::new();
    let list = value
        .as_array()
        .cloned()
        .or_else(|| value.get("machines").and_then(Value::as_array).cloned())
        .unwrap_or_default();
    for machine in list {
        let mac = machine
            .pointer("/boot-info/mac")
            .or_else(|| machine.get("mac"))
            .and_then(Value::as_str)
            .map(str::to_lowercase);
        if let Some(mac) = mac {
            machines.insert(mac.replace('-', ":"), machine);
        }
    }
    machines
}

/// The IPv4 address a discovered machine reported for its boot interface.
fn reported_ipv4(record: &Value, mac: &str) -> Option<std::net::Ipv4Addr> {
    record
        .pointer("/report/interfaces")?
        .as_array()?
        .iter()
        .find(|iface| iface["mac"].as_str() == Some(mac))?["ipv4"]
        .as_str()?
        .parse()
        .ok()
}

/// `caas chain dnsmasq --mode full` for the bridge, leasing `pool`; with `hosts_from`, the
/// addresses its groups carry pinned.
fn write_dnsmasq_conf(data: &Path, out: &Path, pool: (&str, &str), hosts_from: Option<&Path>) {
    let mut cmd = caas_in(data);
    cmd.args(["chain", "dnsmasq", "--mode", "full", "--server", GATEWAY])
        .args([
            "--interface",
            "br0",
            "--range",
            &format!("{},{}", pool.0, pool.1),
        ])
        .args(["--router", GATEWAY, "--tftp-root", "/usr/lib/ipxe", "--out"])
        .arg(out);
    if let Some(data_dir) = hosts_from {
        cmd.arg("--hosts-from").arg(data_dir);
    }
    caas_ok(&mut cmd);
}

/// dnsmasq in the namespace with `conf`, keeping its leases in `leases`.
fn start_dnsmasq(ns: &mut Netns, work: &Path, conf: &Path, leases: &Path) {
    let mut dnsmasq = ns.command("dnsmasq");
    dnsmasq
        .arg("--keep-in-foreground")
        .arg(format!("--conf-file={}", conf.display()))
        .arg(format!("--dhcp-leasefile={}", leases.display()))
        .arg(format!("--pid-file={}", work.join("dnsmasq.pid").display()))
        .args(["--log-facility=-", "--user=root", "--port=0"]);
    let log = conf.with_extension("log");
    ns.spawn("dnsmasq", dnsmasq, &log);
}

/// MAC → address of a dnsmasq lease file (`expiry mac ip name client-id` lines).
fn leases(file: &Path) -> BTreeMap<String, String> {
    fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace().skip(1);
            Some((fields.next()?.to_owned(), fields.next()?.to_owned()))
        })
        .collect()
}

/// The role groups `schedule once` wrote: MAC → (group id, metadata).
fn scheduled(data: &Path) -> BTreeMap<String, (String, Value)> {
    let mut roles = BTreeMap::new();
    for entry in fs::read_dir(data.join("groups")).unwrap() {
        let group: Value =
            serde_json::from_slice(&fs::read(entry.unwrap().path()).unwrap()).unwrap();
        let id = group["id"].as_str().unwrap_or_default().to_owned();
        if let Some(mac) = group.pointer("/selector/mac").and_then(Value::as_str)
            && (id.starts_with("etcd-") || id.starts_with("worker-"))
        {
            roles.insert(mac.to_owned(), (id, group["metadata"].clone()));
        }
    }
    roles
}

/// caas inside the namespace, with no CAAS_* variable from the caller.
fn caas_in_ns(ns: &Netns) -> Command {
    let mut cmd = ns.command(env!("CARGO_BIN_EXE_caas"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CAAS_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// `etcdctl` (v3 API) inside the namespace.
fn etcdctl(ns: &Netns, endpoints: &str, args: &[&str]) -> Option<String> {
    let out = ns
        .command("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([
            "--dial-timeout=3s",
            "--command-timeout=5s",
            "--endpoints",
            endpoints,
        ])
        .args(args)
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn a_virtual_rack_boots_reports_schedules_and_forms_an_etcd_cluster() {
    require_root();
    let _turn = take_turn();
    for tool in ["dnsmasq", "etcd", "etcdctl", "curl"] {
        if !have(tool) {
            needs(&format!("no {tool}"));
        }
    }
    if !Path::new("/usr/lib/ipxe/undionly.kpxe").is_file() {
        needs("no /usr/lib/ipxe/undionly.kpxe (package ipxe)");
    }
    let wall = Instant::now();
    let matchbox = rack_support::matchbox();
    // CAAS_RACK_KEEP=1 keeps the data dir, the serial consoles and the servers' logs.
    let tmp = tempfile::Builder::new()
        .prefix("caas-rack.")
        .disable_cleanup(std::env::var_os("CAAS_RACK_KEEP").is_some())
        .tempdir()
        .unwrap();
    let work = tmp.path();
    eprintln!("virtual rack: working in {}", work.display());
    let data = work.join("bootcfg");
    fs::create_dir_all(&data).unwrap();

    // Assets: the stand-in as a Flatcar release, and caas for the discovery role.
    let mirror = Server::start();
    publish_standin_as_flatcar(&data, work, &mirror);
    publish_caas(&data);
    publish_etcd(&data, work, &mirror);

    // The lab: every machine caas does not know yet boots discovery.
    let spec = work.join("rack.yaml");
    fs::write(
        &spec,
        format!(
            "name: rack\nos: flatcar\nversion: current\nmatchbox_url: {}\napi_url: {}\n\
             args: [{}]\ndefault: discovery\n",
            matchbox_url(),
            api_url(),
            ARGS.join(", ")
        ),
    )
    .unwrap();
    caas_ok(caas_in(&data).args(["gen", "cluster", "-f"]).arg(&spec));

    // Boot media and DHCP from caas chain.
    let chain = work.join("chain");
    caas_ok(
        caas_in(&data)
            .args(["chain", "build", "--target", "iso", "--boot-url"])
            .arg(format!("{}/boot.ipxe", matchbox_url()))
            .arg("--out")
            .arg(&chain),
    );
    let iso = chain.join("caas-chain.iso");
    assert!(iso.is_file());
    // No address pinned yet: machines get whatever the pool gives them until they have a role.
    let dnsmasq_conf = work.join("dnsmasq.conf");
    write_dnsmasq_conf(&data, &dnsmasq_conf, DISCOVERY_POOL, None);

    // The network and its servers.
    let mut ns = Netns::create("rack");
    start_dnsmasq(&mut ns, work, &dnsmasq_conf, &work.join("leases"));
    let mut server = ns.command(&matchbox);
    server
        .arg("-address")
        .arg(format!("{GATEWAY}:8080"))
        .arg("-data-path")
        .arg(&data)
        .arg("-assets-path")
        .arg(data.join("assets"))
        .args(["-log-level", "debug"]);
    ns.spawn("matchbox", server, &work.join("matchbox.log"));
    let mut api = caas_in_ns(&ns);
    api.args(["api", "--listen", &format!("{GATEWAY}:5000"), "--db"])
        .arg(work.join("caas.db"));
    ns.spawn("caas api", api, &work.join("api.log"));
    for url in [
        format!("{}/boot.ipxe", matchbox_url()),
        format!("{}/discovery/machines", api_url()),
    ] {
        wait_for(
            &format!("{url} to answer"),
            Duration::from_secs(60),
            Duration::from_millis(200),
            || {
                ns.command("curl")
                    .args(["-fs", "-o", "/dev/null", "--max-time", "2", &url])
                    .stderr(std::process::Stdio::null())
                    .status()
                    .unwrap()
                    .success()
                    .then_some(())
            },
            || ns.logs(20),
        );
    }

    // Four machines.
    let mut vms = Vec::new();
    for (i, m) in MACHINES.iter().enumerate() {
        let tap = ns.tap();
        let netdev = format!("tap,id=n0,ifname={tap},script=no,downscript=no");
        let boot = if m.iso {
            Boot::Cdrom(iso.clone())
        } else {
            Boot::Network
        };
        vms.push(Vm::start(
            &format!("rack{i}"),
            m.mac,
            m.uuid,
            &netdev,
            &boot,
            work,
            Some(&ns),
        ));
    }
    let context = |vms: &[Vm], ns: &Netns| {
        let mut text = String::new();
        for vm in vms {
            text.push_str(&vm.tail(40));
        }
        text.push_str(&ns.logs(30));
        text
    };

    // Discovery: each machine reports itself.
    let mut discovered_after: BTreeMap<String, Duration> = BTreeMap::new();
    let reports = wait_for(
        "all four machines to report to caas api",
        BOOT_LIMIT,
        POLL,
        || {
            ns.assert_running();
            for vm in &vms {
                vm.assert_running();
            }
            let found = discovered(&ns);
            for vm in &vms {
                if found.contains_key(vm.mac.as_str()) {
                    discovered_after
                        .entry(vm.mac.clone())
                        .or_insert_with(|| vm.started.elapsed());
                }
            }
            (MACHINES.iter().all(|m| found.contains_key(m.mac))).then_some(found)
        },
        || context(&vms, &ns),
    );
    let in_pool = |ip: std::net::Ipv4Addr, pool: (&str, &str)| {
        ip >= pool.0.parse::<std::net::Ipv4Addr>().unwrap()
            && ip <= pool.1.parse::<std::net::Ipv4Addr>().unwrap()
    };
    let mut reported = BTreeMap::new();
    for m in &MACHINES {
        let ip = reported_ipv4(&reports[m.mac], m.mac)
            .unwrap_or_else(|| panic!("{} reported no address: {}", m.mac, reports[m.mac]));
        assert!(in_pool(ip, DISCOVERY_POOL), "{} reported {ip}", m.mac);
        reported.insert(m.mac, ip);
    }

    // Roles: three etcd members, one worker (an etcd gateway).
    let schedule = |ns: &Netns| {
        let mut cmd = caas_in_ns(ns);
        cmd.arg("--data-dir")
            .arg(&data)
            .args([
                "schedule",
                "once",
                "--etcd-members",
                "3",
                "--workers",
                "all",
                "--api",
            ])
            .arg(api_url())
            .arg("--matchbox-url")
            .arg(matchbox_url())
            .arg("--api-url")
            .arg(api_url())
            .arg("--arg")
            .args(ARGS);
        run(&mut cmd)
    };
    let report = schedule(&ns);
    let roles = scheduled(&data);
    assert_eq!(roles.len(), 4, "{report}\n{roles:?}");
    let before = tree_state(&data);
    let again = schedule(&ns);
    assert_eq!(
        tree_state(&data),
        before,
        "a rerun of schedule once changed files: {again}"
    );
    common::ignition_validate_all(&data.join("ignition"));

    // Each role was given with the address its machine reported.
    let ip_of = |mac: &str| -> String {
        roles[mac].1["ipv4"]
            .as_str()
            .unwrap_or_else(|| panic!("no ipv4 in the group of {mac}: {roles:?}"))
            .to_owned()
    };
    for m in &MACHINES {
        assert_eq!(ip_of(m.mac), reported[m.mac].to_string(), "{roles:?}");
    }

    // Pin those addresses and move the pool away from them; the old leases are gone.
    let pinned_conf = work.join("dnsmasq-pinned.conf");
    write_dnsmasq_conf(&data, &pinned_conf, LATER_POOL, Some(&data));
    let pinned = fs::read_to_string(&pinned_conf).unwrap();
    for m in &MACHINES {
        let line = format!("dhcp-host={},{},{}\n", m.mac, ip_of(m.mac), roles[m.mac].0);
        assert!(pinned.contains(&line), "{line:?} missing:\n{pinned}");
    }
    ns.stop("dnsmasq");
    let pinned_leases = work.join("leases-pinned");
    start_dnsmasq(&mut ns, work, &pinned_conf, &pinned_leases);

    // Reset every machine into its role.
    let mut marks = BTreeMap::new();
    for vm in &mut vms {
        marks.insert(vm.mac.clone(), vm.reset());
    }

    let members: Vec<(&String, &(String, Value))> = roles
        .iter()
        .filter(|(_, (id, _))| id.starts_with("etcd-"))
        .collect();
    let worker = roles
        .iter()
        .find(|(_, (id, _))| id.starts_with("worker-"))
        .expect("one worker");
    assert_eq!(members.len(), 3, "{roles:?}");
    let member_endpoints: Vec<String> = members
        .iter()
        .map(|(mac, _)| format!("http://{}:2379", ip_of(mac)))
        .collect();
    let all_members = member_endpoints.join(",");

    // Every member healthy.
    let mut healthy_after: BTreeMap<String, Duration> = BTreeMap::new();
    wait_for(
        "three healthy etcd members",
        BOOT_LIMIT,
        POLL,
        || {
            ns.assert_running();
            for vm in &vms {
                vm.assert_running();
                let console = vm.console();
                let after_reset = console.get(marks[&vm.mac]..).unwrap_or_default();
                if let Some(at) = after_reset.find("caas-standin: ignition failed") {
                    panic!(
                        "{}: {}\n{}",
                        vm.name,
                        after_reset[at..].lines().next().unwrap_or_default(),
                        context(&vms, &ns)
                    );
                }
            }
            for ((mac, _), endpoint) in members.iter().zip(&member_endpoints) {
                if !healthy_after.contains_key(*mac)
                    && etcdctl(&ns, endpoint, &["endpoint", "health"]).is_some()
                {
                    let vm = vms.iter().find(|vm| &vm.mac == *mac).unwrap();
                    healthy_after.insert((*mac).clone(), vm.started.elapsed());
                }
            }
            (healthy_after.len() == 3).then_some(())
        },
        || context(&vms, &ns),
    );

    // The members are the scheduled ones, with their peer URLs, all started.
    let list = etcdctl(&ns, &all_members, &["member", "list", "-w", "json"])
        .unwrap_or_else(|| panic!("etcdctl member list failed\n{}", context(&vms, &ns)));
    let list: Value = serde_json::from_str(&list).unwrap();
    let listed = list["members"].as_array().unwrap();
    assert_eq!(listed.len(), 3, "{list}");
    for (mac, (id, metadata)) in &members {
        let name = metadata["etcd_name"].as_str().unwrap_or(id);
        let peer = format!("http://{}:2380", ip_of(mac));
        let member = listed
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("no started member {name} in {list}"));
        assert_eq!(member["peerURLs"], serde_json::json!([peer]), "{list}");
        assert!(
            !member["clientURLs"].as_array().unwrap().is_empty(),
            "{name} is not started: {list}"
        );
    }

    // A key put on member 0 is read back through the worker's gateway.
    let member0 = members
        .iter()
        .find(|(_, (id, _))| id == "etcd-0")
        .map(|(mac, _)| format!("http://{}:2379", ip_of(mac)))
        .expect("etcd-0");
    etcdctl(&ns, &member0, &["put", "caas-rack", "formed"])
        .unwrap_or_else(|| panic!("put on etcd-0 failed\n{}", context(&vms, &ns)));
    let gateway = format!("http://{}:2379", ip_of(worker.0));
    let worker_vm = vms.iter().find(|vm| &vm.mac == worker.0).unwrap();
    let read = wait_for(
        "the key through the worker's etcd gateway",
        BOOT_LIMIT,
        POLL,
        || etcdctl(&ns, &gateway, &["get", "caas-rack", "--print-value-only"]),
        || context(&vms, &ns),
    );
    assert_eq!(read.trim(), "formed");
    healthy_after.insert(worker.0.clone(), worker_vm.started.elapsed());

    // Every machine got exactly its scheduled address from the pinned dnsmasq, none from the
    // new pool.
    let leased = leases(&pinned_leases);
    for m in &MACHINES {
        assert_eq!(
            leased.get(m.mac).map(String::as_str),
            Some(ip_of(m.mac).as_str()),
            "{} after its reset (leases: {leased:?})",
            m.mac
        );
    }

    // Still nothing to change.
    let again = schedule(&ns);
    assert_eq!(
        tree_state(&data),
        before,
        "a rerun of schedule once changed files: {again}"
    );

    eprintln!("virtual rack: formed in {:.1?} (wall)", wall.elapsed());
    for (i, m) in MACHINES.iter().enumerate() {
        eprintln!(
            "  rack{i} {} {:<9} {:<11} {}: discovery after {:.1?}; after its reset, etcd healthy \
             (members) or read through its gateway (worker) {:.1?}",
            m.mac,
            roles[m.mac].0,
            ip_of(m.mac),
            if m.iso { "ISO" } else { "PXE" },
            discovered_after.get(m.mac).copied().unwrap_or_default(),
            healthy_after.get(m.mac).copied().unwrap_or_default(),
        );
    }
    drop(vms);
    drop(ns);
}

/// caas for the discovery role, under `assets/caas/`: `caas assets fetch caas` publishes the
/// static build `make static` leaves next to this test's build (`make check` runs it first).
fn publish_caas(data: &Path) {
    let debug = Path::new(env!("CARGO_BIN_EXE_caas"));
    let target = debug
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/caas");
    let binary = target.join("x86_64-unknown-linux-musl/static/caas");
    if !binary.is_file() {
        panic!(
            "no static caas at {}: run `make static` (or `make check`, which runs it)",
            binary.display()
        );
    }
    caas_ok(
        caas_in(data)
            .args(["assets", "fetch", "caas", "--binary"])
            .arg(&binary),
    );
}

/// etcd for the etcd roles, published by `caas assets fetch etcd` from a mirror that serves
/// Debian's etcd (packages etcd-server and etcd-client) as an upstream-shaped release:
/// `etcd-v<V>-linux-amd64.tar.gz` holding `etcd-v<V>-linux-amd64/{etcd,etcdctl}`, and
/// `SHA256SUMS`.
fn publish_etcd(data: &Path, work: &Path, mirror: &Server) {
    let version = run(Command::new("etcd").arg("--version"));
    let version = version
        .lines()
        .find_map(|l| l.strip_prefix("etcd Version: "))
        .unwrap_or_else(|| panic!("etcd --version: {version}"))
        .trim()
        .to_owned();
    let version = format!("v{version}");
    let name = format!("etcd-{version}-linux-amd64");
    let tree = work.join("etcd-release");
    fs::create_dir_all(tree.join(&name)).unwrap();
    for binary in ["etcd", "etcdctl"] {
        let path = run(Command::new("sh").args(["-c", &format!("command -v {binary}")]));
        fs::copy(path.trim(), tree.join(&name).join(binary)).unwrap();
    }
    let archive = format!("{name}.tar.gz");
    run(Command::new("tar")
        .arg("-czf")
        .arg(tree.join(&archive))
        .arg("-C")
        .arg(&tree)
        .arg(&name));
    let bytes = fs::read(tree.join(&archive)).unwrap();
    let sums = run(Command::new("sha256sum").arg(&archive).current_dir(&tree));
    mirror.put(&format!("/etcd/{version}/{archive}"), bytes);
    mirror.put(&format!("/etcd/{version}/SHA256SUMS"), sums.into_bytes());
    caas_ok(
        caas_in(data)
            .args([
                "assets",
                "fetch",
                "etcd",
                "--version",
                &version,
                "--base-url",
            ])
            .arg(mirror.url(&format!("/etcd/{version}/"))),
    );
}
