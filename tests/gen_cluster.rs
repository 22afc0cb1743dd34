//! `caas gen cluster`: the built-in example end to end (matchbox's own reading of the files,
//! the real `ignition-validate`, reruns), bad specs, and the record behind `--prune`.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use caas::matchbox::{Group, Profile};
use common::{assert_one_line_error, caas_in, ignition_validate_all, publish_etcd, tree_state};
use serde_json::{Value, json};

fn group(dir: &Path, id: &str) -> Group {
    Group::parse(&fs::read(dir.join(format!("groups/{id}.json"))).unwrap()).unwrap()
}

fn profile(dir: &Path, id: &str) -> Profile {
    Profile::parse(&fs::read(dir.join(format!("profiles/{id}.json"))).unwrap()).unwrap()
}

fn config(dir: &Path, id: &str) -> Value {
    serde_json::from_slice(&fs::read(dir.join(format!("ignition/{id}.ign"))).unwrap()).unwrap()
}

/// The names of the files under `dir/sub`, sorted.
fn names(dir: &Path, sub: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir.join(sub))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn the_built_in_example_is_a_whole_lab_and_a_rerun_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    publish_etcd(dir.path());
    let out = caas_in(dir.path())
        .args(["gen", "cluster"])
        .assert()
        .success()
        .get_output()
        .clone();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 21, "{stdout}");
    assert!(
        stdout.lines().all(|line| line.starts_with("created ")),
        "{stdout}"
    );

    assert_eq!(
        names(dir.path(), "profiles"),
        [
            "discovery.json",
            "install.json",
            "node1.json",
            "node2.json",
            "node3.json",
            "node4.json"
        ]
    );
    assert_eq!(
        names(dir.path(), "groups"),
        [
            "discovery.json",
            "node1-installed.json",
            "node1.json",
            "node2-installed.json",
            "node2.json",
            "node3-installed.json",
            "node3.json",
            "node4.json"
        ]
    );
    assert_eq!(
        names(dir.path(), "ignition"),
        [
            "discovery.ign",
            "install.ign",
            "node1.ign",
            "node2.ign",
            "node3.ign",
            "node4.ign"
        ]
    );
    assert_eq!(ignition_validate_all(dir.path()), 6);

    // The default group serves discovery to unknown machines.
    let discovery = group(dir.path(), "discovery");
    assert!(discovery.is_default());
    assert_eq!(discovery.profile, "discovery");
    let unit = &config(dir.path(), "discovery")["systemd"]["units"][0];
    assert!(
        unit["contents"]
            .as_str()
            .unwrap()
            .contains("Environment=\"CAAS_API_URL=http://caas.example.com:5000\"")
    );

    // An installing machine: the installer on its MAC, its role once installed. The installed
    // group has one more selector, so matchbox ranks it first when os=installed is asked for.
    let install = group(dir.path(), "node1");
    assert_eq!(install.profile, "install");
    assert_eq!(install.selector.len(), 1);
    let installed = group(dir.path(), "node1-installed");
    assert_eq!(installed.profile, "node1");
    assert_eq!(
        installed.selector.get("mac").map(String::as_str),
        Some("52:54:00:a1:9c:ae")
    );
    assert_eq!(
        installed.selector.get("os").map(String::as_str),
        Some("installed")
    );
    assert_eq!(installed.metadata["etcd_name"], "node1");
    assert_eq!(
        installed.metadata["etcd_initial_cluster"],
        "node1=http://10.0.0.11:2380,node2=http://10.0.0.12:2380,node3=http://10.0.0.13:2380"
    );
    let installer = config(dir.path(), "install");
    let unit = installer["systemd"]["units"][0]["contents"]
        .as_str()
        .unwrap();
    assert!(
        unit.contains("Environment=\"CAAS_INSTALL_DEVICE=/dev/sda\""),
        "{unit}"
    );
    let member = config(dir.path(), "node2");
    let dropin = member["systemd"]["units"][0]["contents"].as_str().unwrap();
    assert!(dropin.contains("Environment=\"ETCD_ADVERTISE_CLIENT_URLS=http://10.0.0.12:2379\""));
    assert!(dropin.contains("Environment=\"ETCD_INITIAL_CLUSTER_TOKEN=example\""));
    assert_eq!(
        member["passwd"]["users"][0]["name"], "core",
        "the spec's SSH keys reach every role"
    );

    // A machine that boots from the network every time: one group, its own kernel arguments.
    let node4 = group(dir.path(), "node4");
    assert_eq!(node4.profile, "node4");
    let boot = profile(dir.path(), "node4").boot.unwrap();
    assert_eq!(
        boot.args.unwrap(),
        [
            "initrd=flatcar_production_pxe_image.cpio.gz",
            "ignition.config.url=http://matchbox.example.com:8080/ignition?uuid=${uuid}&mac=${mac:hexhyp}",
            "flatcar.first_boot=yes",
            "console=tty0",
            "console=ttyS0",
            "flatcar.autologin"
        ]
    );
    let gateway = config(dir.path(), "node4");
    let dropin = gateway["systemd"]["units"][0]["contents"].as_str().unwrap();
    assert!(dropin.contains(
        "Environment=\"CAAS_ETCD_ENDPOINTS=10.0.0.11:2379,10.0.0.12:2379,10.0.0.13:2379\""
    ));
    assert_eq!(profile(dir.path(), "node1").ignition_id, "node1.ign");

    // Rerun: same bytes, same mtimes, every file reported unchanged.
    let before = tree_state(dir.path());
    let out = caas_in(dir.path())
        .args(["gen", "cluster"])
        .assert()
        .success()
        .get_output()
        .clone();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.lines().all(|line| line.starts_with("unchanged ")),
        "{stdout}"
    );
    assert!(out.stderr.is_empty());
    assert_eq!(tree_state(dir.path()), before);

    // The example file in the repository is the one built in.
    let from_file = tempfile::tempdir().unwrap();
    publish_etcd(from_file.path());
    caas_in(from_file.path())
        .args(["-q", "gen", "cluster", "-f"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/lab.yaml"))
        .assert()
        .success();
    let strip = |state: std::collections::BTreeMap<std::path::PathBuf, (Vec<u8>, _)>,
                 root: &Path| {
        state
            .into_iter()
            .map(|(path, (bytes, _))| (path.strip_prefix(root).unwrap().to_owned(), bytes))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        strip(tree_state(from_file.path()), from_file.path()),
        strip(before, dir.path())
    );
    assert_eq!(ignition_validate_all(from_file.path()), 6);
}

#[test]
fn published_assets_pin_the_release_in_every_profile_and_the_installer() {
    let dir = tempfile::tempdir().unwrap();
    publish_etcd(dir.path());
    let release = dir.path().join("assets/flatcar/4081.2.0");
    fs::create_dir_all(&release).unwrap();
    std::os::unix::fs::symlink("4081.2.0", dir.path().join("assets/flatcar/current")).unwrap();
    caas_in(dir.path())
        .args(["-q", "gen", "cluster"])
        .assert()
        .success();
    let boot = profile(dir.path(), "node2").boot.unwrap();
    assert_eq!(
        boot.kernel,
        "http://matchbox.example.com:8080/assets/flatcar/4081.2.0/flatcar_production_pxe.vmlinuz"
    );
    let installer = config(dir.path(), "install");
    let unit = installer["systemd"]["units"][0]["contents"]
        .as_str()
        .unwrap();
    assert!(
        unit.contains("Environment=\"CAAS_INSTALL_VERSION=4081.2.0\""),
        "{unit}"
    );
    ignition_validate_all(dir.path());
}

#[test]
fn a_bad_spec_exits_2_names_file_and_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    publish_etcd(dir.path());
    caas_in(dir.path())
        .args(["-q", "gen", "cluster"])
        .assert()
        .success();
    let before = tree_state(dir.path());
    let work = tempfile::tempdir().unwrap();
    let example = caas::cluster::EXAMPLE;
    let line_of = |text: &str| {
        example
            .lines()
            .position(|line| line.contains(text))
            .unwrap()
            + 1
    };
    let rol = format!(
        "lab.yaml line {}: unknown field `rol`",
        line_of("role: etcd-gateway")
    );
    let bad_ip = format!("lab.yaml line {}: ", line_of("ip: 10.0.0.11"));
    let cases = [
        (
            example.replace("    role: etcd-gateway", "    rol: etcd-gateway"),
            rol.as_str(),
        ),
        (
            example.replace("52:54:00:b2:2f:86", "52:54:00:a1:9c:ae"),
            "mac 52:54:00:a1:9c:ae is machine node1's too",
        ),
        (
            example.replace("name: node3", "name: discovery"),
            "would both write profiles/discovery.json",
        ),
        (
            example.replace("role: etcd-gateway", "role: web"),
            "no template \"web\"",
        ),
        (
            example.replace("api_url: http://caas.example.com:5000\n", ""),
            "the default group (role discovery): template \"discovery\" needs variable \"api_url\"",
        ),
        (
            example
                .replace("    ip: 10.0.0.11\n", "")
                .replace("    ip: 10.0.0.12\n", "")
                .replace("    ip: 10.0.0.13\n", ""),
            "machine node1 (role etcd-member): template \"etcd-member\" needs variables",
        ),
        (example.replace("os: flatcar", "os: coreos"), "spec 2.x"),
        (
            example.replace("device: /dev/sda", "device: sda"),
            "not a device path",
        ),
        (
            example.replace("ip: 10.0.0.11", "ip: 10.0.0.300"),
            bad_ip.as_str(),
        ),
        (
            example.replace("ip: 10.0.0.11", "ip: 10.0.0.300"),
            "ip \"10.0.0.300\" is not an IPv4 or IPv6 address",
        ),
        (
            example.replace("ip: 10.0.0.11", "ip: 0.0.0.0"),
            "ip \"0.0.0.0\" is not an address a machine can have",
        ),
        (
            example.replace("ip: 10.0.0.12", "ip: 10.0.0.11"),
            "machines[1] (node2): ip 10.0.0.11 is machine node1's too",
        ),
    ];
    for (spec, needle) in cases {
        let path = work.path().join("lab.yaml");
        fs::write(&path, &spec).unwrap();
        let out = caas_in(dir.path())
            .args(["gen", "cluster", "-f"])
            .arg(&path)
            .assert()
            .code(2)
            .get_output()
            .clone();
        assert_one_line_error(&out.stderr, needle);
        assert!(out.stdout.is_empty());
        assert_eq!(tree_state(dir.path()), before, "{needle}");
    }
    let out = caas_in(dir.path())
        .args(["gen", "cluster", "-f", "/nonexistent/lab.yaml"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert_one_line_error(&out.stderr, "no such file");
}

#[test]
fn removed_machines_are_reported_then_pruned_and_nothing_else_is_touched() {
    // The data dir sits inside `root`, so a path escaping it stays in the test's own space.
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let dir = &data;
    publish_etcd(dir);
    let work = tempfile::tempdir().unwrap();
    let spec = work.path().join("lab.yaml");
    fs::write(&spec, caas::cluster::EXAMPLE).unwrap();
    caas_in(dir.as_path())
        .args(["-q", "gen", "cluster", "-f"])
        .arg(&spec)
        .assert()
        .success();
    // Files caas did not write for this lab, and one it wrote then a person edited.
    fs::write(
        dir.as_path().join("groups/hand-written.json"),
        b"{\"id\": \"x\"}\n",
    )
    .unwrap();
    let mut edited = fs::read(dir.as_path().join("groups/node2.json")).unwrap();
    edited.extend_from_slice(b" ");
    fs::write(dir.as_path().join("groups/node2.json"), &edited).unwrap();

    // node2 and node3 leave the spec.
    let smaller = caas::cluster::EXAMPLE
        .replace("  - name: node2\n    mac: 52:54:00:b2:2f:86\n    role: etcd-member\n    ip: 10.0.0.12\n", "")
        .replace("  - name: node3\n    mac: 52:54:00:c3:61:77\n    role: etcd-member\n    ip: 10.0.0.13\n", "");
    assert_ne!(smaller, caas::cluster::EXAMPLE);
    fs::write(&spec, &smaller).unwrap();
    let out = caas_in(dir.as_path())
        .args(["gen", "cluster", "-f"])
        .arg(&spec)
        .assert()
        .success()
        .get_output()
        .clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("7 file(s) written for lab example are no longer in the spec; rerun with --prune to remove them: groups/node2-installed.json, groups/node3-installed.json, groups/node3.json, ignition/node2.ign, ignition/node3.ign, profiles/node2.json, profiles/node3.json\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("changed since, so caas leaves them alone: groups/node2.json"),
        "{stderr}"
    );
    assert!(
        dir.as_path().join("profiles/node3.json").exists(),
        "reported, not removed"
    );

    // A dry run says what --prune removes, and removes nothing.
    let before = tree_state(dir.as_path());
    let out = caas_in(dir.as_path())
        .args(["gen", "cluster", "--prune", "--dry-run", "-f"])
        .arg(&spec)
        .assert()
        .success()
        .get_output()
        .clone();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.matches("would remove ").count(), 7, "{stdout}");
    assert_eq!(tree_state(dir.as_path()), before);

    let out = caas_in(dir.as_path())
        .args(["gen", "cluster", "--prune", "--format", "json", "-f"])
        .arg(&spec)
        .assert()
        .success()
        .get_output()
        .clone();
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let removed: Vec<&str> = summary["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|file| file["action"] == "removed")
        .map(|file| file["path"].as_str().unwrap())
        .collect();
    assert_eq!(removed.len(), 7, "{summary}");
    for gone in [
        "profiles/node2.json",
        "profiles/node3.json",
        "groups/node3.json",
        "ignition/node3.ign",
    ] {
        assert!(!dir.as_path().join(gone).exists(), "{gone}");
    }
    assert_eq!(
        fs::read(dir.as_path().join("groups/node2.json")).unwrap(),
        edited
    );
    assert!(dir.as_path().join("groups/hand-written.json").exists());
    assert!(dir.as_path().join("groups/node1.json").exists());

    // The record now names exactly what the spec writes.
    let record: Value =
        serde_json::from_slice(&fs::read(dir.as_path().join("clusters/example.json")).unwrap())
            .unwrap();
    let recorded: Vec<&String> = record["files"].as_object().unwrap().keys().collect();
    assert_eq!(recorded.len(), 12, "{record}");
    assert!(
        !recorded
            .iter()
            .any(|path| path.contains("node2") || path.contains("node3"))
    );

    // A record edited to name other files cannot get them removed.
    let mut record = record;
    record["files"]["../outside.json"] = json!(caas::write::sha256_hex(b"x"));
    record["files"]["assets/caas/caas"] = json!(caas::write::sha256_hex(b"x"));
    fs::write(
        dir.as_path().join("clusters/example.json"),
        serde_json::to_vec(&record).unwrap(),
    )
    .unwrap();
    fs::create_dir_all(dir.as_path().join("assets/caas")).unwrap();
    fs::write(dir.as_path().join("assets/caas/caas"), b"x").unwrap();
    let outside = root.path().join("outside.json");
    fs::write(&outside, b"x").unwrap();
    caas_in(dir.as_path())
        .args(["-q", "gen", "cluster", "--prune", "-f"])
        .arg(&spec)
        .assert()
        .success();
    assert!(dir.as_path().join("assets/caas/caas").exists());
    assert!(outside.exists());
    ignition_validate_all(dir.as_path());
}

#[test]
fn flags_override_the_spec_urls() {
    let dir = tempfile::tempdir().unwrap();
    publish_etcd(dir.path());
    caas_in(dir.path())
        .args([
            "-q",
            "gen",
            "cluster",
            "--matchbox-url",
            "http://10.1.0.1:8080/",
            "--api-url",
            "http://10.1.0.2:5000",
        ])
        .assert()
        .success();
    let boot = profile(dir.path(), "discovery").boot.unwrap();
    assert!(
        boot.kernel.starts_with("http://10.1.0.1:8080/assets/"),
        "{}",
        boot.kernel
    );
    let unit = config(dir.path(), "discovery")["systemd"]["units"][0]["contents"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        unit.contains("Environment=\"CAAS_MATCHBOX_URL=http://10.1.0.1:8080\""),
        "{unit}"
    );
    assert!(
        unit.contains("Environment=\"CAAS_API_URL=http://10.1.0.2:5000\""),
        "{unit}"
    );
    caas_in(dir.path())
        .args(["gen", "cluster", "--api-url", "caas.lab:5000"])
        .assert()
        .code(2);
    ignition_validate_all(dir.path());
}

#[test]
fn print_example_prints_the_built_in_spec() {
    let dir = tempfile::tempdir().unwrap();
    caas_in(dir.path())
        .args(["gen", "cluster", "--print-example"])
        .assert()
        .success()
        .stdout(caas::cluster::EXAMPLE);
    assert!(tree_state(dir.path()).is_empty());
}

/// examples/Makefile's `config` target is `caas gen cluster -f lab.yaml`.
#[test]
fn the_example_makefile_writes_the_lab() {
    let dir = tempfile::tempdir().unwrap();
    publish_etcd(dir.path());
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let status = Command::new("make")
        .arg("-C")
        .arg(&examples)
        .arg("--no-print-directory")
        .arg("config")
        .arg(format!("CAAS={}", env!("CARGO_BIN_EXE_caas")))
        .arg(format!("DATA_DIR={}", dir.path().display()))
        .status()
        .expect("make runs");
    assert!(status.success());
    assert_eq!(ignition_validate_all(dir.path()), 6);
    assert!(dir.path().join("clusters/example.json").exists());
}

/// A big lab is written under a small open-file limit: the write path keeps no descriptor per
/// file (a batch holding each temp file open failed past `ulimit -n`).
#[test]
fn a_lab_larger_than_the_open_file_limit_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut spec =
        String::from("os: flatcar\nmatchbox_url: http://m:8080\ndefault: null\nmachines:\n");
    for i in 0..200 {
        spec.push_str(&format!(
            "  - {{name: n{i}, mac: \"52:54:00:00:{:02x}:{:02x}\", role: ssh, vars: {{ssh_authorized_keys: k{i}}}}}\n",
            i >> 8,
            i & 0xff
        ));
    }
    let path = work.path().join("lab.yaml");
    fs::write(&path, spec).unwrap();
    let status = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 64 && exec \"$0\" -q --data-dir \"$1\" gen cluster -f \"$2\"")
        .arg(env!("CARGO_BIN_EXE_caas"))
        .arg(dir.path())
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(names(dir.path(), "groups").len(), 200);
    assert_eq!(
        config(dir.path(), "n199")["passwd"]["users"][0]["sshAuthorizedKeys"],
        json!(["k199"])
    );
    assert_eq!(ignition_validate_all(dir.path()), 200);
}

#[test]
fn caas_lint_finds_nothing_in_the_built_in_example_on_any_matchbox() {
    let dir = tempfile::tempdir().unwrap();
    publish_etcd(dir.path());
    caas_in(dir.path())
        .args(["gen", "cluster"])
        .assert()
        .success();
    for target in ["matchbox-0.11", "matchbox-0.8"] {
        let out = caas_in(dir.path())
            .args([
                "lint", "--deny", "warnings", "--format", "json", "--target", target,
            ])
            .assert()
            .success();
        let findings: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
        assert_eq!(findings, json!([]), "{target}");
    }
    // The same lab with an edited group that no longer outranks the installer must not pass.
    let installed = dir.path().join("groups/node1-installed.json");
    let mut group: Value = serde_json::from_slice(&fs::read(&installed).unwrap()).unwrap();
    group["selector"].as_object_mut().unwrap().remove("os");
    fs::write(&installed, serde_json::to_vec(&group).unwrap()).unwrap();
    caas_in(dir.path()).args(["lint"]).assert().code(1);
}

/// The disk an installer config wipes.
fn install_device(dir: &Path, id: &str) -> String {
    let unit = config(dir, id)["systemd"]["units"][0]["contents"]
        .as_str()
        .unwrap()
        .to_owned();
    let line = unit
        .lines()
        .find(|line| line.starts_with("Environment=\"CAAS_INSTALL_DEVICE="))
        .unwrap_or_else(|| panic!("no install device in {unit}"));
    line.trim_start_matches("Environment=\"CAAS_INSTALL_DEVICE=")
        .trim_end_matches('"')
        .to_owned()
}

#[test]
fn a_machine_with_its_own_install_disk_gets_its_own_installer() {
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let spec = work.path().join("lab.yaml");
    fs::write(
        &spec,
        "name: disks\nos: flatcar\nmatchbox_url: http://m:8080\ndefault: null\n\
         install: {device: /dev/sda}\nssh_authorized_keys: [\"ssh-ed25519 AAAA k\"]\nmachines:\n\
         \x20 - {name: a, mac: \"52:54:00:00:00:01\", role: ssh}\n\
         \x20 - {name: b, mac: \"52:54:00:00:00:02\", role: ssh, vars: {install_device: /dev/nvme0n1}}\n\
         \x20 - {name: c, mac: \"52:54:00:00:00:03\", role: ssh}\n\
         \x20 - {name: d, mac: \"52:54:00:00:00:04\", role: ssh, install: {device: /dev/vdb}}\n",
    )
    .unwrap();
    caas_in(dir.path())
        .args(["-q", "gen", "cluster", "-f"])
        .arg(&spec)
        .assert()
        .success();

    // The lab's disk stays shared; b and d each get an installer of their own.
    assert_eq!(
        names(dir.path(), "ignition"),
        [
            "a.ign",
            "b.ign",
            "c.ign",
            "d.ign",
            "install-b.ign",
            "install-d.ign",
            "install.ign"
        ]
    );
    assert_eq!(install_device(dir.path(), "install"), "/dev/sda");
    assert_eq!(install_device(dir.path(), "install-b"), "/dev/nvme0n1");
    assert_eq!(install_device(dir.path(), "install-d"), "/dev/vdb");
    for (machine, installer) in [
        ("a", "install"),
        ("b", "install-b"),
        ("c", "install"),
        ("d", "install-d"),
    ] {
        assert_eq!(group(dir.path(), machine).profile, installer, "{machine}");
        assert_eq!(
            profile(dir.path(), installer).ignition_id,
            format!("{installer}.ign")
        );
        // Installed, every machine gets its role, not an installer.
        assert_eq!(
            group(dir.path(), &format!("{machine}-installed")).profile,
            machine
        );
    }
    assert_eq!(ignition_validate_all(dir.path()), 7);
    caas_in(dir.path())
        .args(["lint", "--deny", "warnings"])
        .assert()
        .success();

    // A disk named for a machine that does not install is an error, never ignored.
    fs::write(
        &spec,
        "os: flatcar\nmatchbox_url: http://m:8080\nmachines:\n\
         \x20 - {name: a, mac: \"52:54:00:00:00:01\", role: ssh, vars: {install_device: /dev/nvme0n1}}\n",
    )
    .unwrap();
    let out = caas_in(dir.path())
        .args(["gen", "cluster", "-f"])
        .arg(&spec)
        .assert()
        .code(2);
    assert_one_line_error(&out.get_output().stderr, "does not install to disk");
}

#[test]
fn a_bad_api_url_flag_is_blamed_on_the_flag_not_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    let out = caas_in(dir.path())
        .args(["gen", "cluster", "--api-url", "ftp://x"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert_one_line_error(&out.stderr, "--api-url");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("example"), "{stderr}");
    assert!(tree_state(dir.path()).is_empty());
}

#[test]
fn ipxe_commands_in_spec_args_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let example = caas::cluster::EXAMPLE;
    for (at, word) in [("spec", ";"), ("machine", "||"), ("spec", "#x")] {
        let spec = if at == "spec" {
            example.replacen(
                "  - console=tty0\n",
                &format!("  - {word:?}\n  - echo\n"),
                1,
            )
        } else {
            example.replacen(
                "      - flatcar.autologin\n",
                &format!("      - {word:?}\n"),
                1,
            )
        };
        assert_ne!(spec, example);
        let path = dir.path().join("lab.yaml");
        fs::write(&path, spec).unwrap();
        let data = dir.path().join("bootcfg");
        // The lab's etcd roles run a published etcd release; beyond it nothing is written.
        common::publish_etcd(&data);
        let published = tree_state(&data);
        let out = caas_in(&data)
            .args(["gen", "cluster", "-f"])
            .arg(&path)
            .assert()
            .code(2);
        assert_one_line_error(&out.get_output().stderr, &format!("{word:?}"));
        assert_eq!(tree_state(&data), published, "{at} {word}");
    }
}

#[test]
fn a_secret_served_over_plain_http_is_warned_about() {
    let work = tempfile::tempdir().unwrap();
    let templates = work.path().join("templates");
    fs::create_dir_all(&templates).unwrap();
    fs::write(
        templates.join("app.yaml.tera"),
        "storage:\n  files:\n    - path: /etc/app/token\n      mode: 0600\n      contents:\n        source: {{ app_token | data_url }}\n",
    )
    .unwrap();
    let lab = |matchbox: &str| {
        let path = work.path().join(format!("lab-{}.yaml", matchbox.len()));
        fs::write(
            &path,
            format!(
                "name: app\nos: flatcar\nmatchbox_url: {matchbox}\ndefault: null\n\
                 vars:\n  app_token: q8ZrT3xKp1LmN7vB2cWd9FgH4jYs6AeU\n\
                 machines:\n  - name: app1\n    mac: 52:54:00:00:00:01\n    role: app\n"
            ),
        )
        .unwrap();
        path
    };
    let dir = tempfile::tempdir().unwrap();
    let out = caas_in(dir.path())
        .args(["-q", "gen", "cluster", "--templates"])
        .arg(&templates)
        .arg("-f")
        .arg(lab("http://matchbox.lab:8080"))
        .assert()
        .success()
        .get_output()
        .clone();
    // -q keeps only errors: the warning needs the default level.
    assert!(out.stderr.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let out = caas_in(dir.path())
        .args(["gen", "cluster", "--templates"])
        .arg(&templates)
        .arg("-f")
        .arg(lab("http://matchbox.lab:8080"))
        .assert()
        .success()
        .get_output()
        .clone();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "warning: {}: a token-looking value in a file named like a secret in /etc/app/token \
             in a config anyone on the network can read (machines fetch it from \
             http://matchbox.lab:8080): serve matchbox over https, or deliver the secret \
             another way\n",
            dir.path().join("ignition/app1.ign").display()
        )
    );
    ignition_validate_all(dir.path());

    // Served over https: nothing to say.
    let dir = tempfile::tempdir().unwrap();
    let out = caas_in(dir.path())
        .args(["gen", "cluster", "--templates"])
        .arg(&templates)
        .arg("-f")
        .arg(lab("https://matchbox.lab:8443"))
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
