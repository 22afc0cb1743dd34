//! The virtual rack's parts: the stand-in OS (scripts/standin-os), stock matchbox, a private
//! network namespace with a bridge and one tap per VM, servers running inside it, and QEMU
//! VMs whose serial consoles go to files. Everything started here is stopped when dropped.
#![allow(dead_code)]

use std::cell::RefCell;
use std::fs;
use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::guest::strip_ansi;

pub fn needs(what: &str) -> ! {
    panic!(
        "{what}: run scripts/install-test-deps.sh as root (or `make check`) to install what the \
         virtual rack needs"
    )
}

/// The virtual rack runs as root (network namespaces, taps, mmdebstrap): CI does.
pub fn require_root() {
    let out = Command::new("id").arg("-u").output().expect("id -u");
    if String::from_utf8_lossy(&out.stdout).trim() != "0" {
        panic!("the virtual rack needs root (network namespaces, taps): run the tests as root");
    }
}

/// Where heavy test artifacts are cached, outside the clone (see scripts/install-test-deps.sh).
pub fn cache_root() -> PathBuf {
    std::env::var_os("CAAS_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/caas-test"))
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The stand-in OS's kernel and initramfs, built (or found in the cache) by
/// scripts/standin-os/build.sh.
pub fn standin_os() -> (PathBuf, PathBuf) {
    for tool in ["mmdebstrap", "zstd", "cpio"] {
        if !have(tool) {
            needs(&format!("no {tool}"));
        }
    }
    let started = Instant::now();
    let out = Command::new(repo().join("scripts/standin-os/build.sh"))
        .stdin(Stdio::null())
        .output()
        .expect("scripts/standin-os/build.sh runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scripts/standin-os/build.sh failed: {stderr}"
    );
    let dir = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .expect("build.sh prints the image directory")
        .to_owned();
    let dir = PathBuf::from(dir);
    let (kernel, initrd) = (dir.join("vmlinuz"), dir.join("initrd.img"));
    assert!(kernel.is_file() && initrd.is_file(), "{}", dir.display());
    eprintln!(
        "stand-in OS: {} ({:.1?}; {} MB initrd) {}",
        dir.display(),
        started.elapsed(),
        fs::metadata(&initrd).unwrap().len() / 1_000_000,
        stderr.trim()
    );
    (kernel, initrd)
}

/// Stock matchbox v0.8.3, built by scripts/install-test-deps.sh into the cache, which records
/// the binary's path in `<cache>/matchbox/current`.
pub fn matchbox() -> PathBuf {
    let record = cache_root().join("matchbox/current");
    let path = fs::read_to_string(&record)
        .unwrap_or_else(|_| needs(&format!("no matchbox ({} is missing)", record.display())));
    let path = PathBuf::from(path.trim());
    if !path.is_file() {
        needs(&format!("no matchbox at {}", path.display()));
    }
    path
}

pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Runs a command that must succeed; returns its stdout.
pub fn run(command: &mut Command) -> String {
    let out = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    check(command, &out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn check(command: &Command, out: &Output) {
    assert!(
        out.status.success(),
        "{command:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls `probe` every `every` until it returns `Some`, or panics after `limit` with `what`
/// and the output of `context` (serial tails, server logs).
pub fn wait_for<T>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut probe: impl FnMut() -> Option<T>,
    context: impl Fn() -> String,
) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = probe() {
            return value;
        }
        if started.elapsed() > limit {
            panic!(
                "timed out after {limit:?} waiting for {what}\n{}",
                context()
            );
        }
        thread::sleep(every);
    }
}

/// The last `lines` lines of a file (a serial console or a server log), ANSI escapes removed.
pub fn tail(path: &Path, lines: usize) -> String {
    let bytes = fs::read(path).unwrap_or_default();
    let text = strip_ansi(&String::from_utf8_lossy(&bytes));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A private network namespace (`ip netns add caas-rack-<pid>-<n>`) with a bridge `br0`
/// holding [`Netns::GATEWAY`]/24. Deleted, with everything still running in it, when dropped.
pub struct Netns {
    pub name: String,
    daemons: Vec<Daemon>,
    taps: usize,
}

impl Netns {
    /// The host side of the bridge: every server listens here.
    pub const GATEWAY: &'static str = "10.77.0.1";

    pub fn create(tag: &str) -> Netns {
        if !have("ip") {
            needs("no ip (package iproute2)");
        }
        let name = format!("caas-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns {
            name,
            daemons: Vec::new(),
            taps: 0,
        };
        for args in [
            vec!["link", "set", "lo", "up"],
            vec!["link", "add", "br0", "type", "bridge"],
            vec!["addr", "add", "10.77.0.1/24", "dev", "br0"],
            vec!["link", "set", "br0", "up"],
        ] {
            ns.ip(&args);
        }
        ns
    }

    /// `ip -n <ns> <args>`.
    pub fn ip(&self, args: &[&str]) -> String {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// A new tap on the bridge; returns its name.
    pub fn tap(&mut self) -> String {
        let tap = format!("tap{}", self.taps);
        self.taps += 1;
        self.ip(&["tuntap", "add", "dev", &tap, "mode", "tap"]);
        self.ip(&["link", "set", &tap, "master", "br0"]);
        self.ip(&["link", "set", &tap, "up"]);
        tap
    }

    /// `program args…` inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Starts a long-running server in the namespace, its stdout and stderr to `log`. It is
    /// stopped when the namespace is dropped.
    pub fn spawn(&mut self, name: &str, mut command: Command, log: &Path) {
        let file = fs::File::create(log).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {command:?}: {e}"));
        self.daemons.push(Daemon {
            name: name.to_owned(),
            child: RefCell::new(child),
            log: log.to_owned(),
        });
    }

    /// Stops the server started as `name` (to start it again with another configuration).
    pub fn stop(&mut self, name: &str) {
        let at = self
            .daemons
            .iter()
            .position(|daemon| daemon.name == name)
            .unwrap_or_else(|| panic!("no server {name} started"));
        let mut daemon = self.daemons.remove(at);
        let child = daemon.child.get_mut();
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Panics if a server has exited (with its log).
    pub fn assert_running(&self) {
        for daemon in &self.daemons {
            if let Some(status) = daemon.child.borrow_mut().try_wait().unwrap() {
                panic!(
                    "{} exited ({status}):\n{}",
                    daemon.name,
                    tail(&daemon.log, 40)
                );
            }
        }
    }

    /// Each server's log tail.
    pub fn logs(&self, lines: usize) -> String {
        let mut text = String::new();
        for daemon in &self.daemons {
            text.push_str(&format!(
                "---- {} ({}) ----\n{}\n",
                daemon.name,
                daemon.log.display(),
                tail(&daemon.log, lines)
            ));
        }
        text
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for daemon in &mut self.daemons {
            let child = daemon.child.get_mut();
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

struct Daemon {
    name: String,
    child: RefCell<Child>,
    log: PathBuf,
}

/// How a VM finds its boot path.
#[derive(Clone, Debug)]
pub enum Boot {
    /// Its virtio NIC's iPXE ROM (`-boot n`).
    Network,
    /// An ISO (`caas chain build --target iso`).
    Cdrom(PathBuf),
    /// A kernel and initramfs given to QEMU, with this command line.
    Kernel {
        kernel: PathBuf,
        initrd: PathBuf,
        append: String,
    },
}

/// A QEMU (TCG) VM: 1 GiB, one virtio NIC with a fixed MAC, serial console to a file, monitor
/// on a unix socket. Killed when dropped.
pub struct Vm {
    pub name: String,
    pub mac: String,
    pub serial: PathBuf,
    monitor: PathBuf,
    child: RefCell<Child>,
    pub started: Instant,
}

impl Vm {
    /// Starts the VM; `netdev` is QEMU's `-netdev` value (id `n0`), `wrap` the namespace it
    /// runs in (none for user networking).
    pub fn start(
        name: &str,
        mac: &str,
        uuid: &str,
        netdev: &str,
        boot: &Boot,
        dir: &Path,
        ns: Option<&Netns>,
    ) -> Vm {
        if !have("qemu-system-x86_64") {
            needs("no qemu-system-x86_64 (package qemu-system-x86)");
        }
        let serial = dir.join(format!("{name}.serial.log"));
        let monitor = dir.join(format!("{name}.monitor"));
        let mut cmd = match ns {
            Some(ns) => ns.command("qemu-system-x86_64"),
            None => Command::new("qemu-system-x86_64"),
        };
        cmd.args([
            "-accel", "tcg", "-m", "1024", "-smp", "1", "-display", "none",
        ])
        .args(["-name", name, "-uuid", uuid])
        .arg("-serial")
        .arg(format!("file:{}", serial.display()))
        .arg("-monitor")
        .arg(format!("unix:{},server=on,wait=off", monitor.display()))
        .args(["-netdev", netdev])
        .arg("-device")
        .arg(format!("virtio-net-pci,netdev=n0,mac={mac}"));
        match boot {
            Boot::Network => {
                cmd.args(["-boot", "n"]);
            }
            Boot::Cdrom(iso) => {
                cmd.arg("-cdrom").arg(iso).args(["-boot", "d"]);
            }
            Boot::Kernel {
                kernel,
                initrd,
                append,
            } => {
                cmd.arg("-kernel")
                    .arg(kernel)
                    .arg("-initrd")
                    .arg(initrd)
                    .args(["-append", append]);
            }
        }
        let log = dir.join(format!("{name}.qemu.log"));
        let file = fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Vm {
            name: name.to_owned(),
            mac: mac.to_owned(),
            serial,
            monitor,
            child: RefCell::new(child),
            started: Instant::now(),
        }
    }

    /// The serial console so far, ANSI escapes removed.
    pub fn console(&self) -> String {
        strip_ansi(&String::from_utf8_lossy(
            &fs::read(&self.serial).unwrap_or_default(),
        ))
    }

    pub fn tail(&self, lines: usize) -> String {
        format!(
            "---- {} ({}) serial tail ----\n{}\n",
            self.name,
            self.mac,
            tail(&self.serial, lines)
        )
    }

    /// Panics if QEMU has exited or the guest kernel panicked.
    pub fn assert_running(&self) {
        if let Some(status) = self.child.borrow_mut().try_wait().unwrap() {
            panic!("{}: QEMU exited ({status})\n{}", self.name, self.tail(60));
        }
        if self.console().contains("Kernel panic - not syncing") {
            panic!(
                "{}: the guest kernel panicked\n{}",
                self.name,
                self.tail(60)
            );
        }
    }

    /// A QEMU monitor command; returns its answer.
    pub fn monitor(&self, command: &str) -> String {
        let mut stream = wait_for(
            &format!("{}'s QEMU monitor", self.name),
            Duration::from_secs(30),
            Duration::from_millis(100),
            || UnixStream::connect(&self.monitor).ok(),
            String::new,
        );
        stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        stream.write_all(format!("{command}\n").as_bytes()).unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&answer).into_owned()
    }

    /// Presses the reset button; the serial console continues in the same file. Returns the
    /// console length at the reset, so later markers can be searched after it.
    pub fn reset(&mut self) -> usize {
        let mark = self.console().len();
        self.monitor("system_reset");
        self.started = Instant::now();
        mark
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let child = self.child.get_mut();
        let _ = child.kill();
        let _ = child.wait();
    }
}
