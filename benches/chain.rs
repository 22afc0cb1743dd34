//! Benchmarks for `caas chain`: `cargo bench --bench chain`.
//!
//! - the chain script rendered in-process;
//! - one `caas chain build` process for the script alone, and for the ISO, against the same
//!   image built by the bare tools (mformat, mmd, mcopy, xorriso) from a shell script, which is
//!   the floor for any ISO builder that uses them;
//! - one `caas chain dnsmasq` process.
//!
//! Figures are printed, never asserted: timing thresholds do not belong in tests.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use caas::chain::script;
use caas::chain::url::BootUrl;
use common::summary;

const URL: &str = "http://matchbox.lab:8080/boot.ipxe";

fn time(runs: usize, mut f: impl FnMut(usize)) -> Vec<Duration> {
    f(usize::MAX); // warm the page cache
    (0..runs)
        .map(|i| {
            let start = Instant::now();
            f(i);
            start.elapsed()
        })
        .collect()
}

fn bench_render() {
    let url = BootUrl::parse("--boot-url", URL).unwrap();
    let n = 10_000;
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(script::render(&url).unwrap());
    }
    println!(
        "chain script render, in-process: {:.2?} per script ({n} renders)",
        start.elapsed() / n
    );
}

fn caas_build(out: &std::path::Path, target: &str) {
    let status = Command::new(env!("CARGO_BIN_EXE_caas"))
        .args([
            "-q",
            "chain",
            "build",
            "--boot-url",
            URL,
            "--target",
            target,
        ])
        .arg("--out")
        .arg(out)
        .status()
        .unwrap();
    assert!(status.success());
}

/// The ISO caas builds, made by the tools directly (same files, same options).
const BARE_TOOLS: &str = r#"
set -eu
cd "$1"
mkdir -p tree efi
cp /usr/lib/ISOLINUX/isolinux.bin /usr/lib/syslinux/modules/bios/ldlinux.c32 /usr/lib/ipxe/ipxe.lkrn tree/
printf '#!ipxe\ndhcp\nchain http://matchbox.lab:8080/boot.ipxe\n' > tree/chain.ipxe
printf 'DEFAULT c\nLABEL c\n KERNEL ipxe.lkrn\n INITRD chain.ipxe\n' > tree/isolinux.cfg
cp /usr/lib/ipxe/ipxe.efi efi/BOOTX64.EFI
truncate -s 2M tree/efi.img
mformat -i tree/efi.img -N CAA50001 -v CAAS_EFI -h 64 -s 32 -T 4096 ::
mmd -i tree/efi.img ::/EFI ::/EFI/BOOT
mcopy -m -i tree/efi.img efi/BOOTX64.EFI ::/EFI/BOOT/BOOTX64.EFI
mcopy -m -i tree/efi.img tree/chain.ipxe ::/autoexec.ipxe
xorriso -no_rc -as mkisofs -quiet -o out.iso -r -J -V CAAS_CHAIN -b isolinux.bin -c boot.cat \
  -no-emul-boot -boot-load-size 4 -boot-info-table -eltorito-alt-boot -e efi.img -no-emul-boot tree
"#;

fn bench_processes() {
    let script_runs = time(50, |_| {
        let dir = tempfile::tempdir().unwrap();
        caas_build(dir.path(), "script");
    });
    summary(
        "one `caas chain build --target script` process",
        script_runs,
    );

    let iso_runs = time(10, |_| {
        let dir = tempfile::tempdir().unwrap();
        caas_build(dir.path(), "iso");
    });
    summary("one `caas chain build --target iso` process", iso_runs);

    let bare_runs = time(10, |_| {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("bash")
            .args(["-c", BARE_TOOLS, "bare"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    });
    summary(
        "the same ISO from the bare tools (mformat, mmd, mcopy, xorriso in bash)",
        bare_runs,
    );

    let dir = tempfile::tempdir().unwrap();
    caas_build(dir.path(), "iso");
    let rerun = time(10, |_| caas_build(dir.path(), "iso"));
    summary(
        "`caas chain build --target iso` rerun, outputs unchanged",
        rerun,
    );

    let dnsmasq = time(50, |_| {
        let status = Command::new(env!("CARGO_BIN_EXE_caas"))
            .args([
                "chain", "dnsmasq", "--server", "10.0.0.2", "--range", "10.0.0.0",
            ])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    });
    summary("one `caas chain dnsmasq` process (to stdout)", dnsmasq);
}

fn main() {
    // `cargo test --benches` runs bench targets with `--bench` absent: stay quick there.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    bench_render();
    bench_processes();
}
