//! A real Linux kernel (Debian's cloud kernel, under QEMU TCG) boots a busybox initramfs that
//! gets an address by DHCP and runs `caas discover` against a `caas api` on 127.0.0.1: the
//! interfaces, DMI identity and kernel command line come from the running guest, not from
//! fixtures. The guest reaches nothing but that API (`restrict=on` + `guestfwd`).
//!
//! Needs `qemu-system-x86` (bookworm-backports), `linux-image-cloud-amd64` and `busybox-static`
//! (scripts/install-test-deps.sh installs them).

mod common;

use std::fs;
use std::process::{Command, Stdio};

use caas::discovery::store::Store;
use common::api::Api;
use common::guest::{
    API_IN_GUEST, BOOT_LIMIT, initramfs, kernel, module_load_order, needs, strip_ansi,
    wait_for_guest,
};

const GUEST_MAC: &str = "52:54:00:12:34:56";
const GUEST_UUID: &str = "5e1f0c3a-7d4b-4c1e-9a2f-00c0ffee0001";
const GUEST_SERIAL: &str = "CAAS-E2E-0001";
#[test]
fn a_booting_kernel_reports_itself_to_caas_api() {
    let (vmlinuz, modules) = kernel();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("caas.db");
    let api = Api::start(&db, &[]);
    let port = api.port();

    let image = initramfs(
        dir.path(),
        &module_load_order(&modules, &["virtio_pci", "virtio_net"]),
        port,
    );
    let serial = dir.path().join("serial.log");
    let cmdline = format!(
        "console=ttyS0 panic=-1 flatcar.first_boot=1 \
         ignition.config.url=http://{API_IN_GUEST}:{port}/ignition?uuid={GUEST_UUID}&mac={}",
        GUEST_MAC.replace(':', "-")
    );
    let mut qemu = Command::new("qemu-system-x86_64")
        .args([
            "-accel",
            "tcg",
            "-m",
            "512",
            "-nographic",
            "-no-reboot",
            "-monitor",
            "none",
        ])
        .arg("-kernel")
        .arg(&vmlinuz)
        .arg("-initrd")
        .arg(&image)
        .args(["-append", &cmdline])
        .args([
            "-netdev",
            // One relay per guest connection: the `tcp:` form opens a single host connection
            // when QEMU starts, which the API's header timeout closes if the guest boots slowly.
            &format!(
                "user,id=n0,restrict=on,\
                 guestfwd=tcp:{API_IN_GUEST}:{port}-cmd:/bin/busybox nc 127.0.0.1 {port}"
            ),
            "-device",
            &format!("virtio-net-pci,netdev=n0,mac={GUEST_MAC}"),
            "-smbios",
            &format!("type=1,uuid={GUEST_UUID},serial={GUEST_SERIAL}"),
        ])
        .stdin(Stdio::null())
        .stdout(fs::File::create(&serial).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| needs(&format!("qemu-system-x86_64: {e}")));
    let exited = wait_for_guest(&mut qemu);
    let api_log = api.log();
    drop(api);
    let log = strip_ansi(&fs::read_to_string(&serial).unwrap_or_default());
    let context = format!("serial log:\n{log}\ncaas api log:\n{}", api_log);
    assert!(
        exited.is_some(),
        "the guest did not finish within {BOOT_LIMIT:?}\n{context}"
    );
    assert!(
        log.contains("CAAS-DISCOVER-EXIT 0"),
        "caas discover failed in the guest\n{context}"
    );
    assert!(
        log.contains(&format!(
            "reported {GUEST_MAC} to http://{API_IN_GUEST}:{port}/discovery: new (1 machine known)"
        )),
        "{context}"
    );

    let machines = Store::open_read_only(&db).unwrap().machines().unwrap();
    assert_eq!(machines.len(), 1, "{context}");
    let machine = &machines[0];
    let report = &machine.report;
    assert_eq!(machine.mac, GUEST_MAC);
    // From the kernel command line (iPXE's ${uuid}) and from the firmware (QEMU's SMBIOS).
    assert_eq!(report.boot_info.uuid, GUEST_UUID);
    assert_eq!(report.boot_info.product_uuid.as_deref(), Some(GUEST_UUID));
    assert_eq!(report.boot_info.serial.as_deref(), Some(GUEST_SERIAL));
    assert_eq!(report.hostname.as_deref(), Some("caas-guest"));
    // The address QEMU's DHCP server handed out, read back from the guest kernel.
    assert_eq!(
        machine.boot_ipv4(),
        Some([10, 0, 2, 15].into()),
        "{report:?}"
    );
    let eth0 = report.boot_interface().unwrap();
    assert_eq!(eth0.name, "eth0");
    assert!(
        eth0.addresses
            .iter()
            .any(|a| a.to_string() == "10.0.2.15/24"),
        "{eth0:?}"
    );
    let lo = report.interfaces.iter().find(|i| i.name == "lo").unwrap();
    assert_eq!(lo.mac, "");
    assert_eq!(lo.ipv4.unwrap().to_string(), "127.0.0.1/8");
}
