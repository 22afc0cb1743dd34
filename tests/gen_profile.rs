//! `caas gen profile`: every flag, every bad input, and the golden profiles of each OS compared
//! with matchbox's own example data.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use common::{assert_one_line_error, caas_in, reference_dir, tree_state};
use serde_json::{Value, json};

const MATCHBOX: &str = "http://matchbox.example.com:8080";

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

fn gen_profile(dir: &Path, args: &[&str]) -> Value {
    let out = caas_in(dir)
        .args(["gen", "profile"])
        .args(args)
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let id = args[args.iter().position(|a| *a == "--id").unwrap() + 1];
    let path = dir.join(format!("profiles/{id}.json"));
    assert!(stdout.contains(&path.display().to_string()), "{stdout}");
    read_json(&path)
}

fn args_of(profile: &Value) -> Vec<String> {
    serde_json::from_value(profile["boot"]["args"].clone()).unwrap()
}

fn keys(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

fn basename(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

#[test]
fn flatcar_profile_matches_the_golden_file_and_matchbox_example() {
    let dir = tempfile::tempdir().unwrap();
    let profile = gen_profile(
        dir.path(),
        &[
            "--id",
            "flatcar",
            "--name",
            "Flatcar Linux",
            "--os",
            "flatcar",
            "--version",
            "3227.2.0",
            "--matchbox-url",
            MATCHBOX,
        ],
    );
    insta::assert_snapshot!(
        "flatcar_profile",
        fs::read_to_string(dir.path().join("profiles/flatcar.json")).unwrap()
    );

    let example = read_json(&reference_dir().join("matchbox-examples/head/profiles/flatcar.json"));
    assert_eq!(keys(&profile), keys(&example));
    assert_eq!(keys(&profile["boot"]), keys(&example["boot"]));
    assert_eq!(profile["ignition_id"], example["ignition_id"]);
    // matchbox's example serves the same files from the same release, relative to matchbox.
    assert_eq!(
        profile["boot"]["kernel"],
        format!("{MATCHBOX}{}", example["boot"]["kernel"].as_str().unwrap())
    );
    assert_eq!(
        profile["boot"]["initrd"][0],
        format!(
            "{MATCHBOX}{}",
            example["boot"]["initrd"][0].as_str().unwrap()
        )
    );
    let ours = args_of(&profile);
    for required in [
        "initrd=flatcar_production_pxe_image.cpio.gz",
        "flatcar.first_boot=yes",
    ] {
        assert!(args_of(&example).iter().any(|a| a == required));
        assert!(
            ours.iter().any(|a| a == required),
            "{ours:?} lacks {required}"
        );
    }
    // The example uses the legacy alias flatcar.config.url for the same URL.
    let config_url = |args: &[String], key: &str| {
        args.iter()
            .find_map(|a| a.strip_prefix(&format!("{key}=")).map(str::to_owned))
            .unwrap()
    };
    assert_eq!(
        config_url(&ours, "ignition.config.url"),
        config_url(&args_of(&example), "flatcar.config.url")
    );
}

#[test]
fn fedora_coreos_profile_matches_the_golden_file_and_matchbox_example() {
    let dir = tempfile::tempdir().unwrap();
    let profile = gen_profile(
        dir.path(),
        &[
            "--id",
            "fedora-coreos",
            "--name",
            "Fedora CoreOS",
            "--os",
            "fedora-coreos",
            "--version",
            "36.20220906.3.2",
            "--matchbox-url",
            MATCHBOX,
        ],
    );
    insta::assert_snapshot!(
        "fedora_coreos_profile",
        fs::read_to_string(dir.path().join("profiles/fedora-coreos.json")).unwrap()
    );

    let example =
        read_json(&reference_dir().join("matchbox-examples/head/profiles/fedora-coreos.json"));
    assert_eq!(keys(&profile), keys(&example));
    assert_eq!(keys(&profile["boot"]), keys(&example["boot"]));
    // matchbox's example keeps FCOS files flat under assets/fedora-coreos/; caas keeps one
    // directory per release. The file names (pre-F42 kernel name) are the same.
    assert_eq!(
        basename(profile["boot"]["kernel"].as_str().unwrap()),
        basename(example["boot"]["kernel"].as_str().unwrap())
    );
    let initrd = profile["boot"]["initrd"][0].as_str().unwrap();
    let example_initrd = example["boot"]["initrd"][0].as_str().unwrap();
    assert!(initrd.starts_with("--name main ") && example_initrd.starts_with("--name main "));
    assert_eq!(basename(initrd), basename(example_initrd));
    let ours = args_of(&profile);
    let theirs = args_of(&example);
    let key = |arg: &str| arg.split('=').next().unwrap().to_owned();
    let mut our_keys: Vec<_> = ours.iter().map(|a| key(a)).collect();
    let mut their_keys: Vec<_> = theirs.iter().map(|a| key(a)).collect();
    our_keys.sort();
    their_keys.sort();
    assert_eq!(our_keys, their_keys);
    for exact in [
        "initrd=main",
        "ignition.firstboot",
        "ignition.platform.id=metal",
    ] {
        assert!(ours.iter().any(|a| a == exact) && theirs.iter().any(|a| a == exact));
    }
    let rootfs = ours
        .iter()
        .find_map(|a| a.strip_prefix("coreos.live.rootfs_url="))
        .unwrap();
    assert_eq!(
        rootfs,
        format!(
            "{MATCHBOX}/assets/fedora-coreos/36.20220906.3.2/fedora-coreos-36.20220906.3.2-live-rootfs.x86_64.img"
        )
    );
}

#[test]
fn container_linux_profile_matches_the_golden_file_and_matchbox_v083_example() {
    let dir = tempfile::tempdir().unwrap();
    let profile = gen_profile(
        dir.path(),
        &[
            "--id",
            "etcd3",
            "--name",
            "etcd3",
            "--ignition",
            "etcd3.yaml",
            "--os",
            "coreos",
            "--version",
            "1967.3.0",
            "--matchbox-url",
            MATCHBOX,
            "--arg",
            "console=tty0",
            "console=ttyS0",
            "coreos.autologin",
        ],
    );
    insta::assert_snapshot!(
        "coreos_profile",
        fs::read_to_string(dir.path().join("profiles/etcd3.json")).unwrap()
    );
    let example = read_json(&reference_dir().join("matchbox-examples/v0.8.3/profiles/etcd3.json"));
    assert_eq!(keys(&profile), keys(&example));
    assert_eq!(profile["ignition_id"], example["ignition_id"]);
    assert_eq!(
        profile["boot"]["kernel"],
        format!("{MATCHBOX}{}", example["boot"]["kernel"].as_str().unwrap())
    );
    let mut ours = args_of(&profile);
    let mut theirs = args_of(&example);
    // The 2016 system's profile also set the PXE OEM id; otherwise the arguments are the same.
    ours.retain(|a| a != "coreos.oem.id=pxe");
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs);
}

#[test]
fn without_a_matchbox_url_assets_are_relative_and_config_urls_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = caas_in(dir.path())
        .args(["gen", "profile", "--id", "f", "--os", "flatcar"])
        .assert()
        .code(2);
    assert_one_line_error(&out.get_output().stderr, "--matchbox-url");
    assert!(!dir.path().join("profiles").exists());

    // The user may give the config URL themselves (tftp here); asset URLs stay relative.
    let profile = gen_profile(
        dir.path(),
        &[
            "--id",
            "f",
            "--os",
            "flatcar",
            "--arg",
            "ignition.config.url=tftp://10.0.0.1/f.ign",
        ],
    );
    assert_eq!(
        profile["boot"]["kernel"],
        "/assets/flatcar/current/flatcar_production_pxe.vmlinuz"
    );
    assert!(args_of(&profile).contains(&"ignition.config.url=tftp://10.0.0.1/f.ign".to_owned()));
}

#[test]
fn matchbox_url_comes_from_the_environment_too() {
    let dir = tempfile::tempdir().unwrap();
    caas_in(dir.path())
        .env("CAAS_MATCHBOX_URL", "http://10.1.0.1:8080/")
        .args(["gen", "profile", "--id", "c", "--os", "coreos"])
        .assert()
        .success();
    let profile = read_json(&dir.path().join("profiles/c.json"));
    assert!(args_of(&profile).contains(
        &"coreos.config.url=http://10.1.0.1:8080/ignition?uuid=${uuid}&mac=${mac:hexhyp}".into()
    ));
}

#[test]
fn arguments_replace_defaults_by_key_and_append_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let profile = gen_profile(
        dir.path(),
        &[
            "--id",
            "f",
            "--os",
            "flatcar",
            "--version",
            "4081.2.0",
            "--matchbox-url",
            MATCHBOX,
            "--arg",
            "flatcar.first_boot=1",
            "--arg",
            "console=ttyS0,115200n8",
            "flatcar.autologin",
        ],
    );
    assert_eq!(
        args_of(&profile),
        vec![
            "initrd=flatcar_production_pxe_image.cpio.gz".to_owned(),
            format!("ignition.config.url={MATCHBOX}/ignition?uuid=${{uuid}}&mac=${{mac:hexhyp}}"),
            "flatcar.first_boot=1".to_owned(),
            "console=ttyS0,115200n8".to_owned(),
            "flatcar.autologin".to_owned(),
        ]
    );
}

#[test]
fn explicit_kernel_and_initrds() {
    let dir = tempfile::tempdir().unwrap();
    let profile = gen_profile(
        dir.path(),
        &[
            "--id",
            "custom",
            "--ignition",
            "custom.yaml",
            "--kernel",
            "/assets/custom/vmlinuz",
            "--initrd=--name main /assets/custom/initrd.img",
            "--initrd",
            "/assets/custom/extra.img",
            "--arg",
            "initrd=main",
        ],
    );
    assert_eq!(
        profile,
        json!({
            "id": "custom",
            "name": "custom",
            "boot": {
                "kernel": "/assets/custom/vmlinuz",
                "initrd": ["--name main /assets/custom/initrd.img", "/assets/custom/extra.img"],
                "args": ["initrd=main"]
            },
            "ignition_id": "custom.yaml"
        })
    );
}

#[test]
fn bootcfg_compat_writes_the_cmdline_map() {
    let dir = tempfile::tempdir().unwrap();
    let profile = gen_profile(
        dir.path(),
        &[
            "--id",
            "old",
            "--os",
            "coreos",
            "--version",
            "1214.0.0",
            "--matchbox-url",
            "http://172.20.0.1:8080",
            "--compat",
            "bootcfg-0.4",
            "--arg",
            "coreos.autologin",
        ],
    );
    assert_eq!(profile["boot"].get("args"), None);
    assert_eq!(
        profile["boot"]["cmdline"],
        json!({
            "coreos.autologin": "",
            "coreos.config.url": "http://172.20.0.1:8080/ignition?uuid=${uuid}&mac=${mac:hexhyp}",
            "coreos.first_boot": "yes",
            "coreos.oem.id": "pxe",
            "initrd": "coreos_production_pxe_image.cpio.gz"
        })
    );

    let out = caas_in(dir.path())
        .args([
            "gen",
            "profile",
            "--id",
            "dup",
            "--kernel",
            "/k",
            "--compat",
            "bootcfg-0.4",
        ])
        .args(["--arg", "console=tty0", "console=ttyS0"])
        .assert()
        .code(2);
    assert_one_line_error(&out.get_output().stderr, "\"console\"");
    assert!(!dir.path().join("profiles/dup.json").exists());
}

fn publish_release(dir: &Path, os: &str, version: &str, files: &[(&str, &str)]) {
    let release = dir.join("assets").join(os).join(version);
    fs::create_dir_all(&release).unwrap();
    let entries: Vec<Value> = files
        .iter()
        .map(|(role, name)| json!({"role": role, "name": name, "sha256": "00"}))
        .collect();
    fs::write(
        release.join("caas-assets.json"),
        serde_json::to_vec(&json!({"os": os, "version": version, "files": entries})).unwrap(),
    )
    .unwrap();
    let current = dir.join("assets").join(os).join("current");
    let _ = fs::remove_file(&current);
    symlink(version, current).unwrap();
}

#[test]
fn current_is_pinned_to_the_published_release_and_names_come_from_its_manifest() {
    let dir = tempfile::tempdir().unwrap();
    publish_release(
        dir.path(),
        "fedora-coreos",
        "43.20251110.3.1",
        &[
            ("kernel", "fedora-coreos-43.20251110.3.1-live-kernel.x86_64"),
            (
                "initrd",
                "fedora-coreos-43.20251110.3.1-live-initramfs.x86_64.img",
            ),
            (
                "rootfs",
                "fedora-coreos-43.20251110.3.1-live-rootfs.x86_64.img",
            ),
        ],
    );
    let profile = gen_profile(
        dir.path(),
        &[
            "--id",
            "fcos",
            "--os",
            "fedora-coreos",
            "--matchbox-url",
            MATCHBOX,
        ],
    );
    assert_eq!(
        profile["boot"]["kernel"],
        format!(
            "{MATCHBOX}/assets/fedora-coreos/43.20251110.3.1/fedora-coreos-43.20251110.3.1-live-kernel.x86_64"
        )
    );

    // A manifest for another OS, or one without an initrd, is refused.
    publish_release(dir.path(), "flatcar", "1.0.0", &[("kernel", "k")]);
    let out = caas_in(dir.path())
        .args([
            "gen",
            "profile",
            "--id",
            "fl",
            "--os",
            "flatcar",
            "--matchbox-url",
            MATCHBOX,
        ])
        .assert()
        .code(2);
    assert_one_line_error(&out.get_output().stderr, "names no kernel or no initrd");
}

#[test]
fn arm64_fedora_coreos_names() {
    let dir = tempfile::tempdir().unwrap();
    let profile = gen_profile(
        dir.path(),
        &[
            "--id",
            "arm",
            "--os",
            "fedora-coreos",
            "--version",
            "42.20250410.3.1",
            "--arch",
            "arm64",
            "--matchbox-url",
            MATCHBOX,
        ],
    );
    assert!(
        profile["boot"]["kernel"]
            .as_str()
            .unwrap()
            .ends_with("fedora-coreos-42.20250410.3.1-live-kernel.aarch64")
    );
}

#[test]
fn dry_run_and_json_summary() {
    let dir = tempfile::tempdir().unwrap();
    let out = caas_in(dir.path())
        .args(["gen", "profile", "--id", "p", "--kernel", "/k", "--dry-run"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.starts_with("would create "), "{stdout}");
    assert!(stdout.contains("\"kernel\": \"/k\""), "{stdout}");
    assert!(
        tree_state(dir.path()).is_empty(),
        "--dry-run writes nothing"
    );

    let out = caas_in(dir.path())
        .args([
            "gen", "profile", "--id", "p", "--kernel", "/k", "--format", "json",
        ])
        .assert()
        .success();
    let summary: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(summary["dry_run"], false);
    assert_eq!(summary["files"][0]["action"], "created");
    let bytes = fs::read(dir.path().join("profiles/p.json")).unwrap();
    let digest = sha256_hex(&bytes);
    assert_eq!(summary["files"][0]["sha256"], digest);

    let out = caas_in(dir.path())
        .args([
            "gen",
            "profile",
            "--id",
            "p",
            "--kernel",
            "/k",
            "--format",
            "json",
            "--dry-run",
        ])
        .assert()
        .success();
    let summary: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(summary["dry_run"], true);
    assert_eq!(summary["files"][0]["action"], "unchanged");
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn bad_inputs_exit_2_with_one_line_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bootcfg");
    caas_in(&data)
        .args(["gen", "profile", "--id", "existing", "--kernel", "/k"])
        .assert()
        .success();
    let before = tree_state(dir.path());
    let long_id = "x".repeat(129);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--id", "../x", "--kernel", "/k"], "\"../x\""),
        (vec!["--id", "/abs", "--kernel", "/k"], "\"/abs\""),
        (vec!["--id", "", "--kernel", "/k"], "\"\""),
        (vec!["--id", "has space", "--kernel", "/k"], "\"has space\""),
        (vec!["--id", ".hidden", "--kernel", "/k"], "\".hidden\""),
        (vec!["--id", &long_id, "--kernel", "/k"], "limit is 128"),
        (
            vec![
                "--id",
                "existing",
                "--kernel",
                "/k",
                "--ignition",
                "../../etc/passwd",
            ],
            "\"../../etc/passwd\"",
        ),
        (
            vec!["--id", "existing", "--os", "flatcar", "--version", "../1"],
            "\"../1\"",
        ),
        (vec!["--id", "existing", "--os", "plan9"], "'plan9'"),
        (
            vec![
                "--id",
                "existing",
                "--os",
                "flatcar",
                "--matchbox-url",
                "matchbox:8080",
            ],
            "\"matchbox:8080\"",
        ),
        (
            vec![
                "--id",
                "existing",
                "--os",
                "flatcar",
                "--matchbox-url",
                "ftp://m/",
            ],
            "\"ftp://m/\"",
        ),
        (
            vec!["--id", "existing", "--kernel", "/k", "--arg", "a b"],
            "\"a b\"",
        ),
        (
            vec![
                "--id",
                "existing",
                "--kernel",
                "/k",
                "--arg",
                "x\nchain http://evil/",
            ],
            "\"x\\nchain http://evil/\"",
        ),
        (vec!["--id", "existing", "--kernel", "/k x"], "\"/k x\""),
        (
            vec![
                "--id",
                "existing",
                "--kernel",
                "/k",
                "--initrd",
                "/i\nshell",
            ],
            "\"/i\\nshell\"",
        ),
        (
            vec![
                "--id",
                "existing",
                "--os",
                "fedora-coreos",
                "--matchbox-url",
                MATCHBOX,
            ],
            "\"current\"",
        ),
        (
            vec!["--id", "existing", "--os", "flatcar"],
            "--matchbox-url",
        ),
    ];
    for (args, needle) in cases {
        let out = caas_in(&data)
            .args(["gen", "profile"])
            .args(&args)
            .assert()
            .code(2);
        assert_one_line_error(&out.get_output().stderr, needle);
        assert_eq!(tree_state(dir.path()), before, "{args:?} changed the tree");
    }
    // Neither or both sources: usage errors from clap, exit 2.
    caas_in(&data)
        .args(["gen", "profile", "--id", "x"])
        .assert()
        .code(2);
    caas_in(&data)
        .args([
            "gen", "profile", "--id", "x", "--os", "flatcar", "--kernel", "/k",
        ])
        .assert()
        .code(2);
    assert_eq!(tree_state(dir.path()), before);
}

#[test]
fn ipxe_commands_in_kernel_arguments_are_refused() {
    // matchbox writes the arguments into iPXE's `kernel` line word for word: these words would
    // end the command and run `echo X` (or comment the rest out) on every machine.
    let dir = tempfile::tempdir().unwrap();
    for injected in [
        &[";", "echo", "X"][..],
        &["||", "echo", "X"],
        &["&&", "echo", "X"],
        &["#", "X"],
        &["#X"],
    ] {
        let out = caas_in(dir.path())
            .args([
                "gen", "profile", "--id", "x", "--kernel", "/k", "--arg", "quiet",
            ])
            .args(injected.iter().flat_map(|arg| ["--arg", arg]))
            .assert()
            .code(2);
        assert_one_line_error(&out.get_output().stderr, &format!("{:?}", injected[0]));
        assert!(tree_state(dir.path()).is_empty(), "{injected:?}");
    }
    // Those characters inside a word are the kernel's business.
    caas_in(dir.path())
        .args(["-q", "gen", "profile", "--id", "x", "--kernel", "/k"])
        .args(["--arg", "a;b", "--arg", "x=a||b", "--arg", "y=#1"])
        .assert()
        .success();
}
