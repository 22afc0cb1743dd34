//! The whole network boot, with real parts at every step:
//!
//! chain media from `caas chain build` (iPXE + the chain script) → DHCP from QEMU → the boot URL
//! on a stock nginx serving a caas data directory → the iPXE script matchbox answers for this
//! machine (`caas explain` renders it byte for byte) → the profile's kernel and initrd from
//! `assets/` (relative URLs, resolved by iPXE against the server) → the kernel command line,
//! with `${uuid}` and `${mac:hexhyp}` filled in by iPXE → `caas discover` in the booted guest →
//! `caas api` → `caas schedule once` → `caas explain` sends the machine to its etcd group.
//!
//! The guest reaches only the two servers on 127.0.0.1 (`restrict=on`; each guest connection
//! is relayed by its own `busybox nc`).

mod common;

use std::fs;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use caas::discovery::store::Store;
use common::api::Api;
use common::guest::{
    API_IN_GUEST, BOOT_LIMIT, initramfs, kernel, module_load_order, strip_ansi, wait_for_guest,
};
use common::{caas_in, ignition_validate_all};
use serde_json::Value;

const GUEST_MAC: &str = "52:54:00:65:32:01";
const GUEST_UUID: &str = "5e1f0c3a-7d4b-4c1e-9a2f-00c0ffee00e2";
/// Where the guest reaches nginx (QEMU relays it to 127.0.0.1).
const MATCHBOX_IN_GUEST: &str = "10.0.2.101";

/// A stock nginx serving `root` on an ephemeral port of 127.0.0.1; stopped when dropped.
struct Nginx {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Nginx {
    fn start(root: &Path) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = dir.path().display();
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{}}\n\
             http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n\
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             server {{\n    listen 127.0.0.1:{port};\n    root {};\n  }}\n}}\n",
            root.display()
        );
        fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let child = Command::new("/usr/sbin/nginx")
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .arg("-p")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.path().join("stderr.log")).unwrap())
            .spawn()
            .expect("nginx runs (scripts/install-test-deps.sh installs nginx-light)");
        let nginx = Nginx { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not start: {}",
                nginx.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
        nginx
    }

    fn log(&self) -> String {
        ["stderr.log", "error.log", "access.log"]
            .iter()
            .map(|f| fs::read_to_string(self.dir.path().join(f)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn caas_json(data: &Path, args: &[&str]) -> Value {
    let out = caas_in(data).args(args).assert().success();
    serde_json::from_slice(&out.get_output().stdout).unwrap()
}

#[test]
fn chain_media_boot_a_generated_profile_that_reports_to_caas_api() {
    let (vmlinuz, modules) = kernel();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bootcfg");
    // The 2016 behaviour, asked for: the guest is admitted as soon as it reports.
    let api = Api::start(&dir.path().join("caas.db"), &["--admit", "all"]);
    let api_port = api.port();

    // The release under assets/: a real kernel, and an initramfs that runs `caas discover`.
    let release = data.join("assets/e2e/1.0.0");
    fs::create_dir_all(&release).unwrap();
    fs::copy(&vmlinuz, release.join("vmlinuz")).unwrap();
    let image = initramfs(
        dir.path(),
        &module_load_order(&modules, &["virtio_pci", "virtio_net"]),
        api_port,
    );
    fs::copy(&image, release.join("initramfs.cpio")).unwrap();
    let nginx = Nginx::start(&data);
    let matchbox = format!("http://{MATCHBOX_IN_GUEST}:{}", nginx.port);

    // The discovery profile and the default group, as an operator writes them with caas: every
    // machine not yet known boots into discovery.
    caas_in(&data)
        .args(["gen", "profile", "--id", "e2e", "--matchbox-url", &matchbox])
        .args(["--kernel", "/assets/e2e/1.0.0/vmlinuz"])
        .args(["--initrd", "/assets/e2e/1.0.0/initramfs.cpio"])
        .args(["--arg", "console=ttyS0", "panic=-1"])
        .arg(format!(
            "ignition.config.url={matchbox}/ignition?uuid=${{uuid}}&mac=${{mac:hexhyp}}"
        ))
        .assert()
        .success();
    caas_in(&data)
        .args(["gen", "group", "--id", "e2e", "--profile", "e2e"])
        .assert()
        .success();
    caas_in(&data)
        .args(["gen", "ignition", "--template", "ssh", "--id", "e2e"])
        .args(["--var", "ssh_authorized_keys=ssh-ed25519 AAAA e2e"])
        .assert()
        .success();
    // What matchbox's /ipxe answers this machine, served where the chain script looks.
    let explained = caas_json(&data, &["explain", "--mac", GUEST_MAC, "--format", "json"]);
    assert_eq!(explained["group"]["id"], "e2e");
    fs::write(data.join("boot.ipxe"), explained["ipxe"].as_str().unwrap()).unwrap();

    // Chain media pointing at the server, as the machine would boot them.
    let chain = dir.path().join("chain");
    caas_in(&data)
        .args(["chain", "build", "--target", "lkrn", "--out"])
        .arg(&chain)
        .args(["--boot-url", &format!("{matchbox}/boot.ipxe")])
        .assert()
        .success();

    let relay = |port: u16| format!("cmd:/bin/busybox nc 127.0.0.1 {port}");
    let serial = dir.path().join("serial.log");
    let mut qemu = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-m", "768", "-nographic", "-no-reboot"])
        .args(["-monitor", "none", "-kernel"])
        .arg(chain.join("ipxe.lkrn"))
        .arg("-initrd")
        .arg(chain.join("chain.ipxe"))
        .args([
            "-netdev",
            &format!(
                "user,id=n0,restrict=on,guestfwd=tcp:{API_IN_GUEST}:{api_port}-{},\
                 guestfwd=tcp:{MATCHBOX_IN_GUEST}:{}-{}",
                relay(api_port),
                nginx.port,
                relay(nginx.port)
            ),
            "-device",
            &format!("virtio-net-pci,netdev=n0,mac={GUEST_MAC},romfile="),
            "-smbios",
            &format!("type=1,uuid={GUEST_UUID}"),
        ])
        .stdin(Stdio::null())
        .stdout(fs::File::create(&serial).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("qemu-system-x86_64 runs (scripts/install-test-deps.sh installs it)");
    let exited = wait_for_guest(&mut qemu);
    let context = || {
        format!(
            "serial log:\n{}\nnginx:\n{}\ncaas api:\n{}",
            strip_ansi(&fs::read_to_string(&serial).unwrap_or_default()),
            nginx.log(),
            api.log()
        )
    };
    assert!(
        exited.is_some(),
        "the guest did not finish within {BOOT_LIMIT:?}\n{}",
        context()
    );
    let log = strip_ansi(&fs::read_to_string(&serial).unwrap_or_default());
    assert!(log.contains("CAAS-DISCOVER-EXIT 0"), "{}", context());

    // iPXE fetched what the profile names, from the server the chain script chained to.
    let access = nginx.log();
    for path in [
        "/boot.ipxe",
        "/assets/e2e/1.0.0/vmlinuz",
        "/assets/e2e/1.0.0/initramfs.cpio",
    ] {
        assert!(
            access.contains(&format!("GET {path} HTTP/1.1\" 200")),
            "{path} was not served\n{}",
            context()
        );
    }
    // The booted kernel's command line carried the machine's identity as iPXE filled it in.
    let machines = Store::open_read_only(&dir.path().join("caas.db"))
        .unwrap()
        .machines()
        .unwrap();
    assert_eq!(machines.len(), 1, "{}", context());
    assert_eq!(machines[0].mac, GUEST_MAC);
    assert_eq!(machines[0].report.boot_info.uuid, GUEST_UUID);
    assert_eq!(machines[0].boot_ipv4(), Some([10, 0, 2, 15].into()));

    // The discovered machine becomes a one-member etcd cluster, and matchbox would now send
    // it to that group rather than the default one; the tree lints clean.
    common::publish_etcd(&data);
    caas_in(&data)
        .args([
            "schedule",
            "once",
            "--etcd-members",
            "1",
            "--matchbox-url",
            &matchbox,
        ])
        .args(["--api", &api.url])
        .args(api.token_args())
        .assert()
        .success();
    let explained = caas_json(&data, &["explain", "--mac", GUEST_MAC, "--format", "json"]);
    assert_eq!(explained["group"]["id"], "etcd-0");
    assert_eq!(ignition_validate_all(&data), 2);
    caas_in(&data)
        .args(["lint", "--deny", "warnings"])
        .assert()
        .success();
}
