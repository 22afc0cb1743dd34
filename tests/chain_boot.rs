//! `caas chain build` media booted in QEMU (TCG): each test starts an HTTP server on
//! 127.0.0.1, builds media whose boot URL points at it (the guest reaches it through a
//! `guestfwd` on a `restrict=on` user network), boots them, and passes when iPXE requests the
//! boot URL. A boot that does not get there fails after a bounded wait with the serial console
//! in the message; QEMU is always killed.

mod common;

use std::fs::{self, File};
use std::io::{BufRead as _, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use common::caas;

/// Generous: the machine is shared with other builds, and TCG emulates every instruction.
const BOOT_LIMIT: Duration = Duration::from_secs(180);
/// The host address QEMU's user network forwards to 127.0.0.1 (see `netdev`).
const GUEST_SERVER: &str = "10.0.2.100";
/// OVMF, the UEFI firmware for QEMU (Debian package ovmf).
const OVMF: &str = "/usr/share/ovmf/OVMF.fd";

/// One HTTP request the server saw.
#[derive(Clone, Debug)]
struct Request {
    path: String,
    user_agent: String,
}

/// A boot-script server: answers 404 to the first `failures` requests, then a tiny iPXE script.
struct BootServer {
    port: u16,
    requests: mpsc::Receiver<Request>,
}

impl BootServer {
    fn start(failures: usize) -> BootServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        let count = Arc::new(AtomicUsize::new(0));
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (tx, count) = (tx.clone(), Arc::clone(&count));
                thread::spawn(move || serve(stream, &tx, &count, failures));
            }
        });
        BootServer { port, requests: rx }
    }

    fn url(&self) -> String {
        format!("http://{GUEST_SERVER}:{}/boot.ipxe", self.port)
    }
}

/// QEMU's guestfwd carries every guest connection over one host connection, one after the
/// other, and never closes it: read requests as a stream, answer each with a Content-Length.
fn serve(mut stream: TcpStream, tx: &mpsc::Sender<Request>, count: &AtomicUsize, failures: usize) {
    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        if request_line.trim().is_empty() {
            continue;
        }
        let mut user_agent = String::new();
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                match name.to_ascii_lowercase().as_str() {
                    "user-agent" => user_agent = value.trim().to_owned(),
                    "content-length" => length = value.trim().parse().unwrap_or(0),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let n = count.fetch_add(1, Ordering::SeqCst);
        let response = if n < failures {
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_owned()
        } else {
            let script = "#!ipxe\necho caas-test: boot script served\n";
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{script}",
                script.len()
            )
        };
        let _ = tx.send(Request { path, user_agent });
        if stream.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// A running QEMU, killed when dropped.
struct Qemu {
    child: Child,
    serial: PathBuf,
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Qemu {
    /// Boots with `args` on a user network that reaches only the boot server; the serial
    /// console goes to `dir/serial.log`. `bootfile` is handed out by QEMU's DHCP.
    fn boot(dir: &Path, server: &BootServer, args: &[&str], bootfile: Option<&str>) -> Qemu {
        let netdev = bootfile.map_or(String::new(), |b| format!(",bootfile={b}"));
        // No option ROM on the NIC: the only iPXE in the machine is the one under test.
        Qemu::boot_net(dir, server, args, &netdev, "virtio-net-pci,romfile=")
    }

    /// [`Qemu::boot`] with more `-netdev user` options (`netdev_options`, each starting with a
    /// comma) and the NIC (`nic`: a `-device` without its `netdev=`).
    fn boot_net(
        dir: &Path,
        server: &BootServer,
        args: &[&str],
        netdev_options: &str,
        nic: &str,
    ) -> Qemu {
        let port = server.port;
        let mut netdev = format!("user,id=n0,restrict=on{netdev_options}");
        netdev.push_str(&format!(
            ",guestfwd=tcp:{GUEST_SERVER}:{port}-tcp:127.0.0.1:{port}"
        ));
        let serial = dir.join("serial.log");
        let child = Command::new("qemu-system-x86_64")
            .args(["-accel", "tcg", "-m", "512", "-nographic", "-no-reboot"])
            .args(["-netdev", &netdev])
            .args(["-device", &format!("{nic},netdev=n0")])
            .args(args)
            .stdin(Stdio::null())
            .stdout(File::create(&serial).unwrap())
            .stderr(File::create(dir.join("qemu.stderr")).unwrap())
            .spawn()
            .expect("running qemu-system-x86_64 (Debian package qemu-system-x86)");
        Qemu { child, serial }
    }

    /// The serial console so far, without ANSI escapes and carriage returns.
    fn console(&self) -> String {
        let raw = fs::read(&self.serial).unwrap_or_default();
        let stderr =
            fs::read_to_string(self.serial.with_file_name("qemu.stderr")).unwrap_or_default();
        let mut text = String::new();
        let mut chars = String::from_utf8_lossy(&raw).into_owned();
        chars.retain(|c| c != '\r');
        let mut iter = chars.chars().peekable();
        while let Some(c) = iter.next() {
            if c == '\u{1b}' {
                // CSI: ESC [ params final-byte; other escapes: ESC + one char.
                if iter.peek() == Some(&'[') {
                    iter.next();
                    for c in iter.by_ref() {
                        if c.is_ascii_alphabetic() {
                            break;
                        }
                    }
                } else {
                    iter.next();
                }
                continue;
            }
            text.push(c);
        }
        if !stderr.trim().is_empty() {
            text.push_str("\n--- qemu stderr ---\n");
            text.push_str(&stderr);
        }
        text
    }

    /// Waits until `done` holds for the requests seen so far; panics with the console log if
    /// QEMU exits or [`BOOT_LIMIT`] passes first.
    fn wait_for(
        &mut self,
        server: &BootServer,
        what: &str,
        done: impl Fn(&[Request]) -> bool,
    ) -> Vec<Request> {
        let start = Instant::now();
        let mut seen = Vec::new();
        loop {
            if let Ok(request) = server.requests.recv_timeout(Duration::from_millis(500)) {
                seen.push(request);
                if done(&seen) {
                    return seen;
                }
                continue;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "QEMU exited ({status}) before {what}; requests: {seen:?}\n--- serial console ---\n{}",
                    self.console()
                );
            }
            if start.elapsed() > BOOT_LIMIT {
                panic!(
                    "no {what} within {BOOT_LIMIT:?}; requests: {seen:?}\n--- serial console ---\n{}",
                    self.console()
                );
            }
        }
    }
}

fn from_ipxe(request: &Request) -> bool {
    request.path == "/boot.ipxe" && request.user_agent.starts_with("iPXE/")
}

/// Builds `targets` for the server's URL into `dir/chain`.
fn build(dir: &Path, server: &BootServer, targets: &str) -> PathBuf {
    let out = dir.join("chain");
    caas()
        .args([
            "chain",
            "build",
            "--boot-url",
            &server.url(),
            "--target",
            targets,
        ])
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    out
}

#[test]
fn lkrn_with_the_script_as_initrd_chains_and_retries() {
    let dir = tempfile::tempdir().unwrap();
    // The first request fails: the script must say so, wait, and ask again.
    let server = BootServer::start(1);
    let out = build(dir.path(), &server, "lkrn");
    let lkrn = out.join("ipxe.lkrn");
    let script = out.join("chain.ipxe");
    let mut qemu = Qemu::boot(
        dir.path(),
        &server,
        &[
            "-kernel",
            lkrn.to_str().unwrap(),
            "-initrd",
            script.to_str().unwrap(),
        ],
        None,
    );
    let seen = qemu.wait_for(&server, "second iPXE request of /boot.ipxe", |seen| {
        seen.iter().filter(|r| from_ipxe(r)).count() >= 2
    });
    assert!(seen.iter().all(from_ipxe), "{seen:?}");
    let console = qemu.console();
    // The console wraps at 80 columns: match messages across line ends.
    let flat = console.replace('\n', "");
    for message in [
        "caas: attempt 1: DHCP on every network interface",
        "caas: got 10.0.2.15 on ",
        &format!("chaining {}", server.url()),
        &format!(
            "caas: could not boot from {}; retrying in 5 s",
            server.url()
        ),
        "caas: attempt 2: DHCP",
    ] {
        assert!(
            flat.contains(message),
            "{message:?} missing from the console:\n{console}"
        );
    }
}

#[test]
fn iso_boots_on_bios_and_requests_the_boot_url() {
    let dir = tempfile::tempdir().unwrap();
    let server = BootServer::start(0);
    let out = build(dir.path(), &server, "iso");
    let iso = out.join("caas-chain.iso");
    let mut qemu = Qemu::boot(
        dir.path(),
        &server,
        &["-cdrom", iso.to_str().unwrap(), "-boot", "d"],
        None,
    );
    qemu.wait_for(&server, "iPXE request of /boot.ipxe", |seen| {
        seen.iter().any(from_ipxe)
    });
    let console = qemu.console();
    assert!(console.contains("ISOLINUX"), "{console}");
    assert!(console.contains("caas: got 10.0.2.15"), "{console}");
}

#[test]
fn usb_image_boots_as_a_bios_disk_and_requests_the_boot_url() {
    let dir = tempfile::tempdir().unwrap();
    let server = BootServer::start(0);
    let out = build(dir.path(), &server, "usb");
    let drive = format!(
        "file={},format=raw,if=ide,snapshot=on",
        out.join("caas-chain-usb.img").display()
    );
    let mut qemu = Qemu::boot(dir.path(), &server, &["-drive", &drive, "-boot", "c"], None);
    qemu.wait_for(&server, "iPXE request of /boot.ipxe", |seen| {
        seen.iter().any(from_ipxe)
    });
    let console = qemu.console();
    assert!(console.contains("Booting from Hard Disk"), "{console}");
    assert!(console.contains("caas: got 10.0.2.15"), "{console}");
}

/// The ISO's UEFI entry boots the ipxe.efi found next to ipxe.lkrn. Debian 12's (2019) cannot
/// read the chain script, as caas says; it does a plain DHCP boot, so QEMU's DHCP hands it the
/// boot URL here, as `caas chain dnsmasq` would on a real network.
#[test]
fn iso_boots_on_uefi_into_the_ipxe_efi_it_carries() {
    let dir = tempfile::tempdir().unwrap();
    let server = BootServer::start(0);
    let out = dir.path().join("chain");
    let assert = caas()
        .args([
            "chain",
            "build",
            "--boot-url",
            &server.url(),
            "--target",
            "iso",
        ])
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    assert!(stdout.contains("note: UEFI: the images boot "), "{stdout}");
    let iso = out.join("caas-chain.iso");
    let mut qemu = Qemu::boot(
        dir.path(),
        &server,
        &["-bios", OVMF, "-cdrom", iso.to_str().unwrap(), "-boot", "d"],
        Some(&server.url()),
    );
    qemu.wait_for(&server, "iPXE (UEFI) request of /boot.ipxe", |seen| {
        seen.iter().any(from_ipxe)
    });
    let console = qemu.console();
    assert!(console.contains("DVD-ROM"), "{console}");
    assert!(console.contains("iPXE"), "{console}");
}

/// The iPXE source tree the tests build from, prepared (unpacked and built once without a
/// script) by scripts/ipxe/build.sh in the test cache.
fn ipxe_source() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/ipxe/build.sh");
    let output = Command::new(&script)
        .stderr(Stdio::inherit())
        .output()
        .expect("running scripts/ipxe/build.sh");
    assert!(output.status.success(), "{} failed", script.display());
    let src = PathBuf::from(String::from_utf8(output.stdout).unwrap().trim());
    assert!(src.join("Makefile").is_file(), "{}", src.display());
    src
}

/// Size and modification time of every file under `dir`: what a build would change.
fn file_times(dir: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                dirs.push(entry.path());
            } else {
                files.push((entry.path(), meta.len(), meta.modified().unwrap()));
            }
        }
    }
    files.sort();
    files
}

/// The machine's PXE firmware: an e1000 NIC with QEMU's PXE ROM for it (Debian package
/// ipxe-qemu; SeaBIOS does not offer that package's virtio-net ROM for booting).
const PXE_NIC: &str = "e1000,romfile=/usr/lib/ipxe/qemu/pxe-e1000.rom";

/// The 2016 flow: iPXE built from source with the chain script embedded (`make EMBED=`),
/// PXE-booted. The PXE firmware gets `undionly.kpxe` by TFTP from QEMU's user network (dnsmasq
/// needs a bridge, which a test without privileges cannot have), and the embedded script
/// chains the boot URL. The build runs in a cached copy of the source, so only the embedded
/// script is recompiled; the source tree itself is left as it was.
#[test]
fn undionly_kpxe_built_from_source_pxe_boots_and_runs_the_embedded_script() {
    let src = ipxe_source();
    let build_dir = src.parent().unwrap().parent().unwrap().join("caas-build");
    let before = file_times(&src);
    let dir = tempfile::tempdir().unwrap();
    let server = BootServer::start(0);
    let out = dir.path().join("chain");
    let assert = caas()
        .args(["chain", "build", "--boot-url", &server.url()])
        .args(["--target", "kpxe", "--ipxe-src"])
        .arg(&src)
        .arg("--ipxe-build-dir")
        .arg(&build_dir)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    assert!(stdout.contains("created "), "{stdout}");
    let mut names: Vec<String> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["SHA256SUMS", "undionly.kpxe"]);
    assert_eq!(file_times(&src), before, "the build wrote into --ipxe-src");

    let tftp = format!(",tftp={},bootfile=undionly.kpxe", out.display());
    let mut qemu = Qemu::boot_net(dir.path(), &server, &["-boot", "n"], &tftp, PXE_NIC);
    qemu.wait_for(&server, "iPXE request of /boot.ipxe", |seen| {
        seen.iter().any(from_ipxe)
    });
    let console = qemu.console();
    let flat = console.replace('\n', "");
    for message in [
        // The firmware's iPXE (Debian's 2019 ROM) loads the one just built.
        "undionly.kpxe",
        "iPXE 2.0.0+",
        // The embedded script runs.
        "caas: attempt 1: DHCP on every network interface",
        &format!("chaining {}", server.url()),
    ] {
        assert!(
            flat.contains(message),
            "{message:?} missing from the console:\n{console}"
        );
    }
}

/// The UEFI entry of the ISO built with a current `ipxe.efi` (iPXE 1.21.1 or later, here the
/// one scripts/ipxe/build.sh built): it reads `autoexec.ipxe` from the EFI system partition and
/// runs the chain script. QEMU's DHCP hands out no boot file, so only the script can bring iPXE
/// to the boot URL.
#[test]
fn iso_on_uefi_with_a_current_ipxe_efi_runs_the_chain_script() {
    let src = ipxe_source();
    let dir = tempfile::tempdir().unwrap();
    let server = BootServer::start(0);
    let out = dir.path().join("chain");
    let assert = caas()
        .args(["chain", "build", "--boot-url", &server.url()])
        .args(["--target", "iso", "--ipxe-dir"])
        .arg(src.join("bin-x86_64-efi"))
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    assert!(
        stdout.contains("which runs the chain script from the EFI system partition"),
        "{stdout}"
    );
    let iso = out.join("caas-chain.iso");
    let mut qemu = Qemu::boot(
        dir.path(),
        &server,
        &["-bios", OVMF, "-cdrom", iso.to_str().unwrap(), "-boot", "d"],
        None,
    );
    qemu.wait_for(&server, "iPXE (UEFI) request of /boot.ipxe", |seen| {
        seen.iter().any(from_ipxe)
    });
    let console = qemu.console();
    let flat = console.replace('\n', "");
    for message in [
        "iPXE 2.0.0+",
        "caas: attempt 1: DHCP on every network interface",
        &format!("chaining {}", server.url()),
    ] {
        assert!(
            flat.contains(message),
            "{message:?} missing from the console:\n{console}"
        );
    }
}
