//! `caas explain`: matchbox's selection and its `/ipxe` script, byte for byte, on matchbox's own
//! examples and on trees built for one rule each.

mod common;

use common::{caas_in, matchbox_example, matchbox_examples, write_tree};
use serde_json::Value;

/// The `/ipxe` scripts of matchbox's example profiles, as matchbox renders them (`#!ipxe`,
/// `kernel <kernel> <args joined by spaces>`, one `initrd` line per entry, `boot`).
const FLATCAR: &str = "#!ipxe
kernel /assets/flatcar/3227.2.0/flatcar_production_pxe.vmlinuz initrd=flatcar_production_pxe_image.cpio.gz flatcar.config.url=http://matchbox.example.com:8080/ignition?uuid=${uuid}&mac=${mac:hexhyp} flatcar.first_boot=yes flatcar.autologin
initrd /assets/flatcar/3227.2.0/flatcar_production_pxe_image.cpio.gz
boot
";

const FEDORA_COREOS: &str = "#!ipxe
kernel /assets/fedora-coreos/fedora-coreos-36.20220906.3.2-live-kernel-x86_64 initrd=main coreos.live.rootfs_url=http://matchbox.example.com:8080/assets/fedora-coreos/fedora-coreos-36.20220906.3.2-live-rootfs.x86_64.img ignition.firstboot ignition.platform.id=metal ignition.config.url=http://matchbox.example.com:8080/ignition?uuid=${uuid}&mac=${mac:hexhyp}
initrd --name main /assets/fedora-coreos/fedora-coreos-36.20220906.3.2-live-initramfs.x86_64.img
boot
";

const FEDORA_COREOS_INSTALL: &str = "#!ipxe
kernel /assets/fedora-coreos/fedora-coreos-36.20220906.3.2-live-kernel-x86_64 initrd=main coreos.live.rootfs_url=http://matchbox.example.com:8080/assets/fedora-coreos/fedora-coreos-36.20220906.3.2-live-rootfs.x86_64.img coreos.inst.install_dev=/dev/vda coreos.inst.ignition_url=http://matchbox.example.com:8080/ignition?uuid=${uuid}&mac=${mac:hexhyp}
initrd --name main /assets/fedora-coreos/fedora-coreos-36.20220906.3.2-live-initramfs.x86_64.img
boot
";

/// v0.8.3: etcd3, etcd3-gateway, install-reboot, simple and simple-install boot the same way.
const CONTAINER_LINUX: &str = "#!ipxe
kernel /assets/coreos/1967.3.0/coreos_production_pxe.vmlinuz initrd=coreos_production_pxe_image.cpio.gz coreos.config.url=http://matchbox.example.com:8080/ignition?uuid=${uuid}&mac=${mac:hexhyp} coreos.first_boot=yes console=tty0 console=ttyS0 coreos.autologin
initrd /assets/coreos/1967.3.0/coreos_production_pxe_image.cpio.gz
boot
";

const GRUB: &str = "#!ipxe
kernel (http;matchbox.example.com:8080)/assets/coreos/1967.3.0/coreos_production_pxe.vmlinuz coreos.config.url=http://matchbox.example.com:8080/ignition coreos.first_boot=yes console=tty0 console=ttyS0 coreos.autologin
initrd (http;matchbox.example.com:8080)/assets/coreos/1967.3.0/coreos_production_pxe_image.cpio.gz
boot
";

/// Runs `caas explain --format json` and returns (exit code, report, stderr).
fn explain_json(dir: &std::path::Path, args: &[&str]) -> (i32, Value, String) {
    let output = caas_in(dir)
        .args(["explain", "--format", "json"])
        .args(args)
        .output()
        .unwrap();
    let report = serde_json::from_slice(&output.stdout).unwrap();
    (
        output.status.code().unwrap(),
        report,
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// (version, example, request arguments, expected winning group file, expected profile id,
/// expected script).
type Case = (
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static str,
    &'static str,
    &'static str,
);

const CASES: &[Case] = &[
    (
        "head",
        "flatcar",
        &["--mac", "52:54:00:a1:9c:ae"],
        "default.json",
        "flatcar",
        FLATCAR,
    ),
    (
        "head",
        "flatcar-install",
        &["--mac", "52:54:00:a1:9c:ae"],
        "install.json",
        "flatcar-install",
        FLATCAR,
    ),
    (
        "head",
        "flatcar-install",
        &["--mac", "52:54:00:a1:9c:ae", "os=installed"],
        "flatcar.json",
        "flatcar",
        FLATCAR,
    ),
    (
        "head",
        "fedora-coreos",
        &[],
        "default.json",
        "fedora-coreos",
        FEDORA_COREOS,
    ),
    (
        "head",
        "fedora-coreos-install",
        &["--uuid", "u"],
        "default.json",
        "fedora-coreos-install",
        FEDORA_COREOS_INSTALL,
    ),
    (
        "v0.8.3",
        "etcd3",
        &["--mac", "52-54-00-B2-2F-86"],
        "node2.json",
        "etcd3",
        CONTAINER_LINUX,
    ),
    (
        "v0.8.3",
        "etcd3",
        &["--mac", "52:54:00:00:00:01"],
        "gateway.json",
        "etcd3-gateway",
        CONTAINER_LINUX,
    ),
    (
        "v0.8.3",
        "etcd3-install",
        &["--mac", "52:54:00:a1:9c:ae"],
        "install.json",
        "install-reboot",
        CONTAINER_LINUX,
    ),
    (
        "v0.8.3",
        "etcd3-install",
        &["--mac", "52:54:00:a1:9c:ae", "os=installed"],
        "node1.json",
        "etcd3",
        CONTAINER_LINUX,
    ),
    (
        "v0.8.3",
        "etcd3-install",
        &["--mac", "52:54:00:00:00:01", "os=installed"],
        "gateway.json",
        "etcd3-gateway",
        CONTAINER_LINUX,
    ),
    (
        "v0.8.3",
        "simple",
        &[],
        "default.json",
        "simple",
        CONTAINER_LINUX,
    ),
    (
        "v0.8.3",
        "simple-install",
        &[],
        "install.json",
        "simple-install",
        CONTAINER_LINUX,
    ),
    (
        "v0.8.3",
        "simple-install",
        &["os=installed"],
        "simple.json",
        "simple",
        CONTAINER_LINUX,
    ),
    ("v0.8.3", "grub", &[], "default.json", "grub", GRUB),
    (
        "v0.8.3",
        "bootkube-install",
        &["--mac", "52:54:00:a1:9c:ae"],
        "install.json",
        "install-reboot",
        CONTAINER_LINUX,
    ),
];

#[test]
fn ipxe_scripts_of_the_matchbox_examples_byte_for_byte() {
    for (version, example, args, group, profile, script) in CASES {
        let dir = matchbox_example(version, example);
        let target = if *version == "head" {
            "matchbox-0.11"
        } else {
            "matchbox-0.8"
        };
        let mut all = vec!["--target", target];
        all.extend_from_slice(args);
        let (code, report, stderr) = explain_json(dir.path(), &all);
        let context = format!("{version}/{example} {args:?}: {stderr}");
        assert_eq!(code, 0, "{context}");
        assert_eq!(
            report["group"]["file"],
            dir.path().join("groups").join(group).display().to_string(),
            "{context}"
        );
        assert_eq!(report["profile"]["id"], *profile, "{context}");
        assert_eq!(report["ipxe"].as_str().unwrap(), *script, "{context}");
        assert_eq!(
            report["ignition"]["ok"], true,
            "{context}: {}",
            report["ignition"]
        );

        // The text report carries the same script, verbatim.
        let output = caas_in(dir.path())
            .arg("explain")
            .args(&all)
            .output()
            .unwrap();
        let text = String::from_utf8(output.stdout).unwrap();
        assert!(
            text.contains(&format!("\n/ipxe:\n{script}")),
            "{context}: {text}"
        );
    }
}

#[test]
fn every_matchbox_example_explains_without_crashing() {
    for version in ["head", "v0.8.3"] {
        for example in matchbox_examples(version) {
            let dir = matchbox_example(version, &example);
            for args in [
                &[][..],
                &["--mac", "52:54:00:a1:9c:ae"],
                &["--mac", "52:54:00:a1:9c:ae", "os=installed"],
            ] {
                let (code, report, stderr) = explain_json(dir.path(), args);
                // Only the bootkube examples 404: their groups name profiles the examples do
                // not ship, and `bootkube` has no default group for a machine without labels.
                let expect_404 = example.starts_with("bootkube")
                    && report["group"]["profile"]
                        .as_str()
                        .is_none_or(|p| p.starts_with("bootkube"));
                assert_eq!(
                    code,
                    if expect_404 { 1 } else { 0 },
                    "{version}/{example} {args:?}: {stderr}"
                );
                assert_eq!(report["not_found"].is_null(), !expect_404);
            }
        }
    }
}

#[test]
fn a_group_naming_a_missing_profile_is_a_404() {
    let dir = matchbox_example("v0.8.3", "bootkube");
    let output = caas_in(dir.path())
        .args(["explain", "--mac", "52:54:00:a1:9c:ae"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    common::assert_one_line_error(
        &output.stderr,
        "bootkube-controller.json: no such file: matchbox answers 404",
    );
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("group:    ") && text.contains("node1.json"),
        "{text}"
    );
}

const PROFILE: &str = r#"{"id": "p", "boot": {"kernel": "/k", "initrd": ["/i"], "args": ["a=1"]}}"#;

fn tree(groups: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), &[("profiles/p.json", PROFILE)]);
    for (name, body) in groups {
        write_tree(dir.path(), &[(&format!("groups/{name}"), *body)]);
    }
    dir
}

#[test]
fn equal_counts_are_decided_by_reverse_byte_order() {
    // Both match a machine with that MAC and UUID; "uuid=u1" > "mac=52:…", so the uuid group
    // is tried first, whatever the file names.
    let dir = tree(&[
        (
            "a-by-uuid.json",
            r#"{"profile": "p", "selector": {"uuid": "u1"}}"#,
        ),
        (
            "z-by-mac.json",
            r#"{"profile": "p", "selector": {"mac": "52:54:00:a1:9c:ae"}}"#,
        ),
    ]);
    let (code, report, _) =
        explain_json(dir.path(), &["--mac", "52:54:00:a1:9c:ae", "--uuid", "u1"]);
    assert_eq!(code, 0);
    assert!(
        report["group"]["file"]
            .as_str()
            .unwrap()
            .ends_with("a-by-uuid.json")
    );
    let loser = &report["candidates"][1];
    assert_eq!(loser["outcome"], "outranked");
    assert!(
        loser["reason"]
            .as_str()
            .unwrap()
            .contains("\"uuid=u1\" sorts after \"mac=52:54:00:a1:9c:ae\""),
        "{loser}"
    );
    // With "a=1" against "b=1" the greater, "b=1", wins even though "a" lists first.
    let dir = tree(&[
        ("first.json", r#"{"profile": "p", "selector": {"a": "1"}}"#),
        ("second.json", r#"{"profile": "p", "selector": {"b": "1"}}"#),
    ]);
    let (_, report, _) = explain_json(dir.path(), &["a=1", "b=1"]);
    assert!(
        report["group"]["file"]
            .as_str()
            .unwrap()
            .ends_with("second.json")
    );
}

#[test]
fn an_invalid_mac_is_dropped_and_falls_through_to_the_default_group() {
    let dir = tree(&[
        ("default.json", r#"{"profile": "p"}"#),
        (
            "node1.json",
            r#"{"profile": "p", "selector": {"mac": "52:54:00:a1:9c:ae"}}"#,
        ),
    ]);
    // Five bytes: Go's net.ParseMAC rejects it, matchbox drops the label.
    let output = caas_in(dir.path())
        .args(["explain", "--mac", "52:54:00:a1:9c"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("dropped:  mac=52:54:00:a1:9c: invalid MAC address"),
        "{text}"
    );
    assert!(
        text.contains("group:    ") && text.contains("default.json  [default: no selector]"),
        "{text}"
    );
    assert!(text.contains("the request has no mac label"), "{text}");
    let (_, report, _) = explain_json(dir.path(), &["--mac", "52:54:00:a1:9c"]);
    assert_eq!(report["labels"], serde_json::json!({}));
    assert_eq!(report["dropped"][0]["key"], "mac");
    // The same machine with a MAC that parses (any of Go's forms) gets its own group.
    let (_, report, _) = explain_json(dir.path(), &["--mac", "5254.00a1.9cae"]);
    assert!(
        report["group"]["file"]
            .as_str()
            .unwrap()
            .ends_with("node1.json")
    );
    assert_eq!(report["ipxe"], "#!ipxe\nkernel /k a=1\ninitrd /i\nboot\n");
}

#[test]
fn no_match_exits_1_with_the_404_reason() {
    let dir = tree(&[(
        "node1.json",
        r#"{"profile": "p", "selector": {"mac": "52:54:00:a1:9c:ae"}}"#,
    )]);
    let output = caas_in(dir.path())
        .args(["explain", "--mac", "52:54:00:b2:2f:86"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    common::assert_one_line_error(
        &output.stderr,
        "error: no group matches the labels mac=52:54:00:b2:2f:86: matchbox answers 404 for /ipxe and /ignition",
    );
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("mac is \"52:54:00:b2:2f:86\", the group wants \"52:54:00:a1:9c:ae\""),
        "{text}"
    );
    assert!(!text.contains("/ipxe:"), "{text}");
}

#[test]
fn identical_selectors_are_reported_as_tied() {
    let dir = tree(&[
        ("a.json", r#"{"profile": "p"}"#),
        ("b.json", r#"{"profile": "p"}"#),
    ]);
    let (code, report, _) = explain_json(dir.path(), &[]);
    assert_eq!(code, 0);
    assert_eq!(report["tied"].as_array().unwrap().len(), 1);
    assert_eq!(report["candidates"][1]["outcome"], "tied");
}

#[test]
fn other_machines_groups_are_counted_past_a_few_and_all_listed_on_request() {
    let mac = |i: usize| format!("52:54:00:00:00:{i:02x}");
    let mut groups: Vec<(String, String)> = (0..=caas::explain::UNRELATED_LISTED_UP_TO + 1)
        .map(|i| {
            (
                format!("node{i:02}.json"),
                format!(r#"{{"profile": "p", "selector": {{"mac": "{}"}}}}"#, mac(i)),
            )
        })
        .collect();
    groups.push((
        "node03-installed.json".into(),
        format!(
            r#"{{"profile": "p", "selector": {{"mac": "{}", "os": "installed"}}}}"#,
            mac(3)
        ),
    ));
    groups.push(("default.json".into(), r#"{"profile": "p"}"#.into()));
    let groups: Vec<(&str, &str)> = (groups.iter())
        .map(|(name, body)| (name.as_str(), body.as_str()))
        .collect();
    let dir = tree(&groups);
    // Every MAC group but the machine's own.
    let others = caas::explain::UNRELATED_LISTED_UP_TO + 1;

    let output = caas_in(dir.path())
        .args(["explain", "--mac", &mac(3)])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8(output.stdout).unwrap();
    let listed: Vec<&str> = (text.lines())
        .skip_while(|line| !line.starts_with("groups, in the order"))
        .skip(1)
        .collect();
    // The group that wants `os=installed` shares the MAC: it is listed, with why it lost.
    assert_eq!(listed.len(), 4, "{text}");
    assert!(
        listed[0].contains("node03-installed.json")
            && listed[0].contains("the request has no os label"),
        "{text}"
    );
    assert!(listed[1].starts_with("  selected ") && listed[1].contains("node03.json"));
    assert!(listed[2].contains("default.json") && listed[2].contains("comes first"));
    assert_eq!(
        listed[3],
        format!(
            "  and {others} more groups that share no label with the request (--all lists them)"
        )
    );

    let (_, report, _) = explain_json(dir.path(), &["--mac", &mac(3)]);
    assert_eq!(report["candidates"].as_array().unwrap().len(), 3);
    assert_eq!(report["unlisted"], others);

    let (_, report, _) = explain_json(dir.path(), &["--all", "--mac", &mac(3)]);
    assert_eq!(report["candidates"].as_array().unwrap().len(), others + 3);
    assert_eq!(report["unlisted"], 0);
    let text = String::from_utf8(
        (caas_in(dir.path()).args(["explain", "--all", "--mac", &mac(3)]))
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(!text.contains("--all lists them"), "{text}");
    assert!(
        text.contains("mac is \"52:54:00:00:00:03\", the group wants \"52:54:00:00:00:0a\""),
        "{text}"
    );

    // One fewer other machine: few enough to list them all.
    std::fs::remove_file(dir.path().join("groups/node00.json")).unwrap();
    let (_, report, _) = explain_json(dir.path(), &["--mac", &mac(3)]);
    assert_eq!(report["candidates"].as_array().unwrap().len(), others + 2);
    assert_eq!(report["unlisted"], 0);
}

#[test]
fn skipped_groups_and_a_profile_without_boot() {
    let dir = tree(&[
        (
            "bad.json",
            r#"{"profile": "p", "selector": {"mac": "nope"}}"#,
        ),
        ("notes.txt", "x"),
        ("default.json", r#"{"profile": "noboot"}"#),
    ]);
    write_tree(
        dir.path(),
        &[("profiles/noboot.json", r#"{"id": "noboot"}"#)],
    );
    let (code, report, stderr) = explain_json(dir.path(), &[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("has no `boot` section") && stderr.contains("404 for /ipxe"),
        "{stderr}"
    );
    let skipped: Vec<&str> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["file"].as_str().unwrap())
        .collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(skipped[0].ends_with("bad.json") && skipped[1].ends_with("notes.txt"));
}

#[test]
fn bootcfg_renders_the_cmdline_map() {
    let dir = tree(&[("default.json", r#"{"profile": "old"}"#)]);
    write_tree(
        dir.path(),
        &[(
            "profiles/old.json",
            r#"{"id": "old", "boot": {"kernel": "/k", "initrd": ["/a", "/b"], "cmdline": {"coreos.first_boot": "", "coreos.config.url": "http://m/ignition"}}}"#,
        )],
    );
    let (code, report, _) = explain_json(dir.path(), &["--target", "bootcfg-0.4"]);
    assert_eq!(code, 0);
    assert_eq!(
        report["ipxe"],
        "#!ipxe\nkernel /k coreos.config.url=http://m/ignition coreos.first_boot\ninitrd /a /b \nboot\n"
    );
    // matchbox ignores `cmdline`: no arguments at all.
    let (_, report, _) = explain_json(dir.path(), &[]);
    assert_eq!(
        report["ipxe"],
        "#!ipxe\nkernel /k\ninitrd /a\ninitrd /b\nboot\n"
    );
}

#[test]
fn a_missing_data_dir_is_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let output = caas_in(&dir.path().join("nope"))
        .args(["explain"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    common::assert_one_line_error(&output.stderr, "does not exist");
}

#[test]
fn ignition_follows_the_url_on_the_kernel_line() {
    // node1 boots profile `p`, whose Ignition URL does not carry the MAC: the OS's /ignition
    // request is answered by the default group and its profile's config.
    let dir = tree(&[
        ("default.json", r#"{"profile": "fallback"}"#),
        (
            "node1.json",
            r#"{"profile": "p", "selector": {"mac": "52:54:00:a1:9c:ae"}}"#,
        ),
    ]);
    write_tree(
        dir.path(),
        &[
            (
                "profiles/p.json",
                r#"{"id": "p", "boot": {"kernel": "/k", "args": ["flatcar.config.url=http://m/ignition?uuid=${uuid}&host=${net0/hostname}", "flatcar.first_boot=1"]}, "ignition_id": "p.ign"}"#,
            ),
            (
                "profiles/fallback.json",
                r#"{"id": "fallback", "boot": {"kernel": "/k"}, "ignition_id": "fallback.ign"}"#,
            ),
            ("ignition/p.ign", r#"{"ignition": {"version": "3.3.0"}}"#),
            (
                "ignition/fallback.ign",
                r#"{"ignition": {"version": "3.4.0"}}"#,
            ),
        ],
    );
    let (code, report, _) =
        explain_json(dir.path(), &["--mac", "52:54:00:a1:9c:ae", "--uuid", "u1"]);
    assert_eq!(code, 0);
    assert!(
        report["group"]["file"]
            .as_str()
            .unwrap()
            .ends_with("node1.json")
    );
    let ignition = &report["ignition"];
    assert_eq!(ignition["url"], "http://m/ignition?uuid=u1&host=");
    assert!(
        ignition["group"]
            .as_str()
            .unwrap()
            .ends_with("default.json"),
        "{ignition}"
    );
    assert!(
        ignition["file"]
            .as_str()
            .unwrap()
            .ends_with("ignition/fallback.ign"),
        "{ignition}"
    );
    // With the MAC in the URL the machine's own group answers.
    write_tree(
        dir.path(),
        &[(
            "profiles/p.json",
            r#"{"id": "p", "boot": {"kernel": "/k", "args": ["flatcar.config.url=http://m/ignition?mac=${mac:hexhyp}", "flatcar.first_boot=1"]}, "ignition_id": "p.ign"}"#,
        )],
    );
    let (_, report, _) = explain_json(dir.path(), &["--mac", "52:54:00:a1:9c:ae"]);
    assert_eq!(
        report["ignition"]["url"],
        "http://m/ignition?mac=52-54-00-a1-9c-ae"
    );
    assert!(
        report["ignition"]["file"]
            .as_str()
            .unwrap()
            .ends_with("ignition/p.ign")
    );
}

/// `caas explain` in text and JSON, with the group index kept in `cache` or without one; and
/// how many groups the last run answered from the index and read.
fn explain_outputs(
    dir: &std::path::Path,
    cache: Option<&std::path::Path>,
    mac: &str,
) -> (Vec<u8>, String) {
    let mut both = Vec::new();
    let mut usage = String::new();
    for format in ["text", "json"] {
        let mut command = caas_in(dir);
        // Every group listed: each one's selector, as the index gave it, is in the output.
        command.args(["-vv", "explain", "--all", "--format", format, "--mac", mac]);
        match cache {
            Some(cache) => command.env("XDG_CACHE_HOME", cache),
            None => command.arg("--no-index"),
        };
        let output = command.output().unwrap();
        assert!(output.status.success(), "{output:?}");
        both.extend(output.stdout);
        let stderr = String::from_utf8(output.stderr).unwrap();
        usage = (stderr.lines())
            .find(|line| line.contains("group index"))
            .map(|line| {
                let fields: Vec<&str> = (line.split(' '))
                    .filter(|f| f.starts_with("indexed=") || f.starts_with("read="))
                    .collect();
                fields.join(" ")
            })
            .unwrap_or_default();
    }
    (both, usage)
}

#[test]
fn the_group_index_answers_as_reading_every_file_does() {
    // Enough groups for an index; one machine with an `os` group too.
    let groups = caas::matchbox::group_index::MIN_GROUPS + 20;
    let dir = tree(&[]);
    write_tree(
        dir.path(),
        &[("profiles/q.json", &PROFILE.replace("a=1", "a=2"))],
    );
    let mac = |i: usize| format!("52:54:00:00:{:02x}:{:02x}", i / 256, i % 256);
    let group = |i: usize, profile: &str| {
        format!(
            r#"{{"id": "m{i}", "profile": "{profile}", "selector": {{"mac": "{}"}}}}"#,
            mac(i)
        )
    };
    for i in 0..groups {
        write_tree(
            dir.path(),
            &[(&format!("groups/m{i:03}.json"), &group(i, "p"))],
        );
    }
    write_tree(
        dir.path(),
        &[(
            "groups/m007-installed.json",
            &format!(
                r#"{{"profile": "q", "selector": {{"mac": "{}", "os": "installed"}}}}"#,
                mac(7)
            ),
        )],
    );
    let cache = tempfile::tempdir().unwrap();
    let index_dir = cache.path().join("caas/group-index");
    let listed = groups + 1;
    // Files changed this recently are not indexed (their times could still repeat).
    std::thread::sleep(caas::matchbox::group_index::RACY);
    let (_, usage) = explain_outputs(dir.path(), None, &mac(0));
    assert_eq!(usage, "", "--no-index keeps no index");
    assert!(!index_dir.exists());
    for i in [0, 7, groups - 1] {
        let (unindexed, _) = explain_outputs(dir.path(), None, &mac(i));
        let (indexed, usage) = explain_outputs(dir.path(), Some(cache.path()), &mac(i));
        assert_eq!(indexed, unindexed);
        // Of the two runs, the text one wrote the index (the first time); the JSON one read
        // no group file.
        assert_eq!(usage, format!("indexed={listed} read=0"));
        assert_eq!(std::fs::read_dir(&index_dir).unwrap().count(), 1);
    }

    // Edited in place, with the same size: the index is not trusted for it.
    let (before, _) = explain_outputs(dir.path(), None, &mac(7));
    assert!(!String::from_utf8_lossy(&before).contains("a=2"));
    let edited = dir.path().join("groups/m007.json");
    std::fs::write(&edited, group(7, "q")).unwrap();
    let (unindexed, _) = explain_outputs(dir.path(), None, &mac(7));
    assert!(String::from_utf8_lossy(&unindexed).contains("a=2"));
    let (indexed, usage) = explain_outputs(dir.path(), Some(cache.path()), &mac(7));
    assert_eq!(indexed, unindexed);
    // Just changed: read, and not indexed until it settles.
    assert_eq!(usage, format!("indexed={} read=1", listed - 1));

    // A corrupt index is rebuilt (by the text run); the answer does not change.
    let index = std::fs::read_dir(&index_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(&index, b"not an index").unwrap();
    let (indexed, usage) = explain_outputs(dir.path(), Some(cache.path()), &mac(7));
    assert_eq!(indexed, unindexed);
    assert_eq!(usage, format!("indexed={} read=1", listed - 1));
    assert_ne!(std::fs::read(&index).unwrap(), b"not an index");
}
