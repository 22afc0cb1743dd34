//! `caas chain build`: outputs, reports, reproducibility, and refusals (booting the media is in
//! chain_boot.rs).

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::{assert_one_line_error, caas, tree_state};
use sha2::{Digest as _, Sha256};

const URL: &str = "http://matchbox.lab:8080/boot.ipxe";

fn sha256(path: &Path) -> String {
    hex::encode(Sha256::digest(fs::read(path).unwrap()))
}

#[test]
fn default_targets_are_the_script_and_the_iso() {
    let dir = tempfile::tempdir().unwrap();
    let assert = caas()
        .current_dir(dir.path())
        .args(["chain", "build", "--server", "matchbox.lab"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    let out = dir.path().join("chain");
    let mut names: Vec<String> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["SHA256SUMS", "caas-chain.iso", "chain.ipxe"]);
    let script = fs::read_to_string(out.join("chain.ipxe")).unwrap();
    assert!(
        script.contains(&format!("set caas-boot-url {URL}\n")),
        "{script}"
    );
    for name in &names {
        let line = format!("created ./chain/{name} sha256:{}", sha256(&out.join(name)));
        assert!(stdout.contains(&line), "{line:?} missing from:\n{stdout}");
    }
    let sums = fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    assert_eq!(
        sums,
        format!(
            "{}  chain.ipxe\n{}  caas-chain.iso\n",
            sha256(&out.join("chain.ipxe")),
            sha256(&out.join("caas-chain.iso"))
        )
    );
    // `sha256sum -c` agrees.
    let check = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&out)
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
}

#[test]
fn bad_boot_urls_exit_2_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("chain");
    for (flag, value, needle) in [
        ("--boot-url", "http://m:8080/boot ipxe", "' '"),
        ("--boot-url", "http://m:8080/\"boot\"", "quoting"),
        ("--boot-url", "http://m:8080/${mac}", "expand"),
        ("--boot-url", "http://m:8080/a\nchain http://evil/", "'\\n'"),
        ("--boot-url", "ftp://m/boot.ipxe", "scheme"),
        ("--boot-url", "matchbox.lab:8080", "scheme"),
        ("--boot-url", "http://u:p@m/boot.ipxe", "credentials"),
        ("--server", "m:8080/boot.ipxe", "'/'"),
        ("--server", "m:notaport", "--server"),
    ] {
        let assert = caas()
            .args(["chain", "build", flag, value, "--target", "script,iso"])
            .arg("--out")
            .arg(&out)
            .assert()
            .code(2);
        assert_one_line_error(&assert.get_output().stderr, flag);
        assert_one_line_error(&assert.get_output().stderr, needle);
        assert!(!out.exists(), "{value:?} wrote something");
    }
}

#[test]
fn boot_url_and_server_are_one_choice() {
    caas()
        .args(["chain", "build", "--target", "script"])
        .assert()
        .code(2);
    caas()
        .args(["chain", "build", "--boot-url", URL, "--server", "m"])
        .args(["--target", "script"])
        .assert()
        .code(2);
}

#[test]
fn lkrn_comes_with_boot_loader_entries() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("chain");
    caas()
        .args(["chain", "build", "--boot-url", URL, "--target", "lkrn"])
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    assert_eq!(
        fs::read(out.join("ipxe.lkrn")).unwrap(),
        fs::read("/usr/lib/ipxe/ipxe.lkrn").unwrap()
    );
    assert!(out.join("chain.ipxe").is_file(), "the initrd comes along");
    let syslinux = fs::read_to_string(out.join("syslinux.cfg")).unwrap();
    assert!(
        syslinux.contains("  KERNEL ipxe.lkrn\n  INITRD chain.ipxe\n"),
        "{syslinux}"
    );
    let pxelinux = fs::read_to_string(out.join("pxelinux.cfg/default")).unwrap();
    assert!(pxelinux.contains("INITRD chain.ipxe"), "{pxelinux}");
    let grub = fs::read_to_string(out.join("grub.cfg")).unwrap();
    assert!(grub.contains("linux16 /boot/ipxe.lkrn"), "{grub}");
    assert!(grub.contains("initrd16 /boot/chain.ipxe"), "{grub}");
}

fn build_all(out: &Path, epoch: &str) -> String {
    let assert = caas()
        .env("SOURCE_DATE_EPOCH", epoch)
        .args(["chain", "build", "--boot-url", URL])
        .args(["--target", "script,lkrn,iso,usb"])
        .arg("--out")
        .arg(out)
        .assert()
        .success();
    String::from_utf8_lossy(&assert.get_output().stdout).into_owned()
}

#[test]
fn media_are_reproducible_and_reruns_touch_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    build_all(&a, "1700000000");
    // A second later, in another directory: xorriso and mtools would stamp "now" if caas
    // did not fix every date.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    build_all(&b, "1700000000");
    let sums_a = fs::read_to_string(a.join("SHA256SUMS")).unwrap();
    assert_eq!(sums_a, fs::read_to_string(b.join("SHA256SUMS")).unwrap());
    assert_eq!(sums_a.lines().count(), 7, "{sums_a}");
    for name in ["caas-chain.iso", "caas-chain-usb.img"] {
        assert_eq!(
            fs::read(a.join(name)).unwrap(),
            fs::read(b.join(name)).unwrap()
        );
    }
    // The dates do come from SOURCE_DATE_EPOCH: another epoch, other images.
    build_all(&c, "1800000000");
    assert_ne!(
        fs::read(a.join("caas-chain.iso")).unwrap(),
        fs::read(c.join("caas-chain.iso")).unwrap()
    );

    let before = tree_state(&a);
    let stdout = build_all(&a, "1700000000");
    assert_eq!(tree_state(&a), before, "a rerun changes nothing");
    assert_eq!(stdout.matches("unchanged ").count(), 8, "{stdout}");
}

#[test]
fn images_carry_bios_and_uefi_boot_entries() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("chain");
    build_all(&out, "1700000000");
    for (image, hybrid) in [("caas-chain.iso", false), ("caas-chain-usb.img", true)] {
        let path = out.join(image);
        let report = Command::new("xorriso")
            .args(["-no_rc", "-indev"])
            .arg(&path)
            .args(["-report_el_torito", "plain", "-report_system_area", "plain"])
            .args(["-find", "/", "-exec", "lsdl"])
            .output()
            .unwrap();
        assert!(report.status.success(), "{report:?}");
        let text = String::from_utf8_lossy(&report.stdout).into_owned()
            + &String::from_utf8_lossy(&report.stderr);
        assert!(text.contains("Volume id    : 'CAAS_CHAIN'"), "{text}");
        assert!(
            text.contains("El Torito img path :   1  /isolinux.bin"),
            "{text}"
        );
        assert!(
            text.contains("El Torito img path :   2  /efi.img"),
            "{text}"
        );
        for file in [
            "isolinux.bin",
            "ldlinux.c32",
            "ipxe.lkrn",
            "chain.ipxe",
            "isolinux.cfg",
        ] {
            assert!(
                text.contains(&format!("'/{file}'")),
                "{file} missing: {text}"
            );
        }
        assert_eq!(
            text.contains("System area summary: MBR isohybrid"),
            hybrid,
            "{image}: {text}"
        );

        // The EFI system partition image: iPXE at the removable-media path, the script beside.
        let efi = dir.path().join(format!("{image}.efi.img"));
        let extract = Command::new("xorriso")
            .args(["-no_rc", "-osirrox", "on", "-indev"])
            .arg(&path)
            .args(["-extract", "/efi.img"])
            .arg(&efi)
            .output()
            .unwrap();
        assert!(extract.status.success(), "{extract:?}");
        for (inside, expected) in [
            (
                "::/EFI/BOOT/BOOTX64.EFI",
                fs::read("/usr/lib/ipxe/ipxe.efi").unwrap(),
            ),
            (
                "::/autoexec.ipxe",
                fs::read(out.join("chain.ipxe")).unwrap(),
            ),
        ] {
            let copy = Command::new("mtype")
                .env("MTOOLS_SKIP_CHECK", "1")
                .arg("-i")
                .arg(&efi)
                .arg(inside)
                .output()
                .unwrap();
            assert!(copy.status.success(), "{copy:?}");
            assert!(copy.stdout == expected, "{inside} differs in {image}");
        }
    }
}

#[test]
fn json_report_lists_every_file_with_its_sha256_and_the_uefi_note() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("chain");
    let assert = caas()
        .args([
            "chain",
            "build",
            "--boot-url",
            URL,
            "--target",
            "script,iso",
        ])
        .args(["--format", "json"])
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let report: serde_json::Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    assert_eq!(report["boot_url"], URL);
    assert_eq!(report["dry_run"], false);
    let files = report["files"].as_array().unwrap();
    assert_eq!(files.len(), 3);
    for file in files {
        let path = Path::new(file["path"].as_str().unwrap());
        assert_eq!(file["action"], "created");
        assert_eq!(file["sha256"], sha256(path).as_str());
        assert_eq!(file["size"], fs::metadata(path).unwrap().len());
    }
    let notes = report["notes"].as_array().unwrap();
    assert!(
        notes.iter().any(|n| n
            .as_str()
            .unwrap()
            .contains("cannot pick up the chain script")),
        "Debian's 2019 ipxe.efi must be called out: {notes:?}"
    );
}

#[test]
fn dry_run_writes_nothing_and_shows_the_script() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("chain");
    let assert = caas()
        .args([
            "chain",
            "build",
            "--boot-url",
            URL,
            "--target",
            "script,iso",
        ])
        .arg("--dry-run")
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    assert!(!out.exists());
    assert!(stdout.contains("would create "), "{stdout}");
    assert!(stdout.contains("#!ipxe\n"), "{stdout}");
    assert!(!stdout.contains("CD001"), "binary images are not printed");
}

#[test]
fn kpxe_and_efi_without_ipxe_source_explain_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("chain");
    for target in ["kpxe", "efi", "script,kpxe,efi"] {
        let assert = caas()
            .args(["chain", "build", "--boot-url", URL, "--target", target])
            .arg("--out")
            .arg(&out)
            .assert()
            .code(2);
        let stderr = &assert.get_output().stderr;
        assert_one_line_error(stderr, "--ipxe-src DIR");
        assert_one_line_error(stderr, "make EMBED=");
        assert_one_line_error(stderr, "caas chain dnsmasq");
        assert_one_line_error(stderr, "package ipxe");
        assert!(!out.exists());
    }
    let not_a_tree = dir.path().join("empty");
    fs::create_dir(&not_a_tree).unwrap();
    let assert = caas()
        .args(["chain", "build", "--boot-url", URL, "--target", "kpxe"])
        .arg("--ipxe-src")
        .arg(&not_a_tree)
        .arg("--out")
        .arg(&out)
        .assert()
        .code(2);
    assert_one_line_error(&assert.get_output().stderr, "not an iPXE source tree");
    assert!(!out.exists());
}

#[test]
fn a_missing_tool_names_its_package_and_leaves_old_outputs_alone() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("chain");
    caas()
        .args(["chain", "build", "--boot-url", URL, "--target", "script"])
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let before = tree_state(&out);
    let empty_path = dir.path().join("bin");
    fs::create_dir(&empty_path).unwrap();
    let assert = caas()
        .env("PATH", &empty_path)
        .args([
            "chain",
            "build",
            "--boot-url",
            "http://other:8080/boot.ipxe",
        ])
        .args(["--target", "script,iso"])
        .arg("--out")
        .arg(&out)
        .assert()
        .code(1);
    assert_one_line_error(
        &assert.get_output().stderr,
        "xorriso not found on PATH: install the Debian package xorriso",
    );
    assert_eq!(tree_state(&out), before, "nothing was written");

    // xorriso present but not mtools, with an ipxe.efi to put on the EFI system partition.
    let xorriso = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|dir| dir.join("xorriso"))
        .find(|p| p.is_file())
        .unwrap();
    std::os::unix::fs::symlink(xorriso, empty_path.join("xorriso")).unwrap();
    let assert = caas()
        .env("PATH", &empty_path)
        .args([
            "chain",
            "build",
            "--boot-url",
            "http://other:8080/boot.ipxe",
        ])
        .args(["--target", "script,iso"])
        .arg("--out")
        .arg(&out)
        .assert()
        .code(1);
    assert_one_line_error(
        &assert.get_output().stderr,
        "mformat not found on PATH: install the Debian package mtools",
    );
    assert_eq!(tree_state(&out), before, "nothing was written");
}

#[test]
fn ipxe_dir_is_searched_first() {
    let dir = tempfile::tempdir().unwrap();
    let ipxe = dir.path().join("ipxe");
    fs::create_dir(&ipxe).unwrap();
    fs::write(ipxe.join("ipxe.lkrn"), b"not really iPXE").unwrap();
    let out = dir.path().join("chain");
    caas()
        .args(["chain", "build", "--boot-url", URL, "--target", "lkrn"])
        .arg("--ipxe-dir")
        .arg(&ipxe)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    assert_eq!(fs::read(out.join("ipxe.lkrn")).unwrap(), b"not really iPXE");
}

#[test]
fn a_bad_source_date_epoch_is_an_input_error() {
    let dir = tempfile::tempdir().unwrap();
    let assert = caas()
        .env("SOURCE_DATE_EPOCH", "last tuesday")
        .args(["chain", "build", "--boot-url", URL, "--target", "script"])
        .arg("--out")
        .arg(dir.path().join("chain"))
        .assert()
        .code(2);
    assert_one_line_error(&assert.get_output().stderr, "SOURCE_DATE_EPOCH");
}
