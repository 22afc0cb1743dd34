//! `caas lint`: one test per finding class, each on a minimal data directory with exactly that
//! defect; a clean directory with no finding; matchbox's own examples (v0.8.3 and current);
//! the command line (formats, exit codes).

mod common;

use std::fs;
use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;
use caas::lint::{Code, Finding, Severity, lint_dir};
use caas::matchbox::target::Target;
use common::{caas, caas_in, matchbox_example, matchbox_examples, write_tree};
use tempfile::TempDir;

const PROFILE: &str = r#"{
  "id": "flatcar",
  "name": "Flatcar",
  "boot": {
    "kernel": "/assets/flatcar/1/flatcar_production_pxe.vmlinuz",
    "initrd": ["/assets/flatcar/1/flatcar_production_pxe_image.cpio.gz"],
    "args": [
      "initrd=flatcar_production_pxe_image.cpio.gz",
      "flatcar.config.url=http://matchbox:8080/ignition?uuid=${uuid}&mac=${mac:hexhyp}",
      "flatcar.first_boot=yes"
    ]
  },
  "ignition_id": "flatcar.ign"
}
"#;

const DEFAULT_GROUP: &str = r#"{"id": "default", "name": "default", "profile": "flatcar"}
"#;

const NODE1: &str = r#"{
  "id": "node1",
  "profile": "flatcar",
  "selector": {"mac": "52:54:00:a1:9c:ae"},
  "metadata": {"hostname": "node1.lab"}
}
"#;

const IGNITION: &str = r#"{"ignition": {"version": "3.3.0"}}
"#;

/// A data directory with no finding on matchbox-0.8 and matchbox-0.11: a Flatcar profile with
/// its assets and raw Ignition, a default group and a MAC-selected group.
fn clean_files() -> Vec<(&'static str, String)> {
    vec![
        ("profiles/flatcar.json", PROFILE.into()),
        ("groups/default.json", DEFAULT_GROUP.into()),
        ("groups/node1.json", NODE1.into()),
        ("ignition/flatcar.ign", IGNITION.into()),
        (
            "assets/flatcar/1/flatcar_production_pxe.vmlinuz",
            "kernel".into(),
        ),
        (
            "assets/flatcar/1/flatcar_production_pxe_image.cpio.gz",
            "initrd".into(),
        ),
    ]
}

/// The clean tree with `changes` applied: `Some(content)` writes, `None` removes.
fn tree_with(changes: &[(&str, Option<&str>)]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let files = clean_files();
    let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
    write_tree(dir.path(), &files);
    for (rel, content) in changes {
        let path = dir.path().join(rel);
        match content {
            Some(content) => write_tree(dir.path(), &[(rel, content)]),
            None if path.is_dir() => fs::remove_dir_all(&path).unwrap(),
            None => fs::remove_file(&path).unwrap(),
        }
    }
    dir
}

fn lint(dir: &Path, target: Target) -> Vec<Finding> {
    lint_dir(dir, target).unwrap()
}

fn codes(findings: &[Finding]) -> Vec<Code> {
    findings.iter().map(|f| f.code).collect()
}

/// Asserts exactly one finding, of `code`, in `file` (relative to `dir`) at `line:column`.
fn assert_only(
    findings: &[Finding],
    dir: &Path,
    code: Code,
    file: &str,
    line: usize,
    column: usize,
) -> Finding {
    assert_eq!(codes(findings), vec![code], "{findings:#?}");
    let finding = findings[0].clone();
    assert_eq!(
        finding.path,
        dir.join(file).display().to_string(),
        "{finding:#?}"
    );
    assert_eq!((finding.line, finding.column), (line, column), "{finding}");
    finding
}

/// The profile with `from` replaced by `to` (which must occur once).
fn profile_with(from: &str, to: &str) -> String {
    assert_eq!(PROFILE.matches(from).count(), 1, "{from}");
    PROFILE.replace(from, to)
}

#[test]
fn the_clean_tree_has_no_finding() {
    let dir = tree_with(&[]);
    for target in [Target::Matchbox08, Target::Matchbox011] {
        assert_eq!(lint(dir.path(), target), vec![], "{target:?}");
    }
    // The bootcfg-0.4 form of the same profile: the `cmdline` map.
    let cmdline = profile_with(
        r#""args": [
      "initrd=flatcar_production_pxe_image.cpio.gz",
      "flatcar.config.url=http://matchbox:8080/ignition?uuid=${uuid}&mac=${mac:hexhyp}",
      "flatcar.first_boot=yes"
    ]"#,
        r#""cmdline": {
      "initrd": "flatcar_production_pxe_image.cpio.gz",
      "flatcar.config.url": "http://matchbox:8080/ignition?uuid=${uuid}&mac=${mac:hexhyp}",
      "flatcar.first_boot": "yes"
    }"#,
    );
    let dir = tree_with(&[("profiles/flatcar.json", Some(&cmdline))]);
    assert_eq!(lint(dir.path(), Target::Bootcfg04), vec![]);
}

#[test]
fn json_syntax() {
    let dir = tree_with(&[(
        "groups/node1.json",
        Some("{\n  \"id\": \"node1\",\n  \"profile\": \"flatcar\"\n"),
    )]);
    let f = assert_only(
        &lint(dir.path(), Target::Matchbox011),
        dir.path(),
        Code::JsonSyntax,
        "groups/node1.json",
        4,
        1,
    );
    assert_eq!(f.severity, Severity::Error);
    assert!(f.message.contains("matchbox skips this file"), "{f}");
}

#[test]
fn stray_entries_in_groups_and_profiles() {
    let dir = tree_with(&[
        ("groups/notes.txt", Some("not a group")),
        ("profiles/old/flatcar.json", Some(PROFILE)),
    ]);
    let findings = lint(dir.path(), Target::Matchbox011);
    assert_eq!(
        codes(&findings),
        vec![Code::StrayEntry, Code::StrayEntry],
        "{findings:#?}"
    );
    assert!(findings.iter().all(|f| f.severity == Severity::Warning));
    assert!(findings[0].path.ends_with("groups/notes.txt"));
    assert!(
        findings[0].message.contains("groups/notes.json"),
        "{}",
        findings[0]
    );
    assert!(findings[1].path.ends_with("profiles/old"));
    assert!(
        findings[1].message.contains("no group uses"),
        "{}",
        findings[1]
    );
}

#[test]
fn wrong_type_non_string_selector_value() {
    let node = NODE1.replace(
        r#""selector": {"mac": "52:54:00:a1:9c:ae"}"#,
        r#""selector": {"mac": "52:54:00:a1:9c:ae", "rack": 3}"#,
    );
    let dir = tree_with(&[("groups/node1.json", Some(&node))]);
    let f = assert_only(
        &lint(dir.path(), Target::Matchbox011),
        dir.path(),
        Code::WrongType,
        "groups/node1.json",
        4,
        52,
    );
    assert!(
        f.message
            .contains("field selector.rack: expected a string, found a number"),
        "{f}"
    );
}

#[test]
fn unknown_key() {
    let profile = profile_with(
        r#""name": "Flatcar","#,
        r#""name": "Flatcar", "color": "blue","#,
    );
    let dir = tree_with(&[("profiles/flatcar.json", Some(&profile))]);
    let f = assert_only(
        &lint(dir.path(), Target::Matchbox011),
        dir.path(),
        Code::UnknownKey,
        "profiles/flatcar.json",
        3,
        22,
    );
    assert_eq!(f.severity, Severity::Warning);
}

#[test]
fn misspelled_key() {
    let profile = profile_with(r#""name": "Flatcar","#, r#""nam": "Flatcar","#);
    let dir = tree_with(&[("profiles/flatcar.json", Some(&profile))]);
    let f = assert_only(
        &lint(dir.path(), Target::Matchbox011),
        dir.path(),
        Code::MisspelledKey,
        "profiles/flatcar.json",
        3,
        3,
    );
    assert!(f.message.contains("did you mean \"name\""), "{f}");

    // The issue's example: `ignitionId` is dropped by matchbox, so the profile serves no
    // Ignition while its kernel line fetches /ignition (a second, consequent finding).
    let profile = profile_with(
        r#""ignition_id": "flatcar.ign""#,
        r#""ignitionId": "flatcar.ign""#,
    );
    let dir = tree_with(&[("profiles/flatcar.json", Some(&profile))]);
    let findings = lint(dir.path(), Target::Matchbox011);
    assert_eq!(
        codes(&findings),
        vec![Code::MissingConfig, Code::MisspelledKey],
        "{findings:#?}"
    );
    assert!(findings[1].message.contains("did you mean \"ignition_id\""));
    assert!(
        findings[0].message.contains("names no ignition_id"),
        "{}",
        findings[0]
    );
}

#[test]
fn missing_id() {
    let dir = tree_with(&[(
        "profiles/spare.json",
        Some(r#"{"name": "no id", "boot": {"kernel": "/k"}}"#),
    )]);
    let f = assert_only(
        &lint(dir.path(), Target::Matchbox011),
        dir.path(),
        Code::MissingId,
        "profiles/spare.json",
        1,
        1,
    );
    assert_eq!(f.severity, Severity::Error);
}

#[test]
fn id_mismatch() {
    let dir = tree_with(&[(
        "profiles/spare.json",
        Some(r#"{"id": "other", "boot": {"kernel": "/k"}}"#),
    )]);
    let f = assert_only(
        &lint(dir.path(), Target::Matchbox011),
        dir.path(),
        Code::IdMismatch,
        "profiles/spare.json",
        1,
        8,
    );
    assert!(f.message.contains("groups must name \"spare\""), "{f}");
}

#[test]
fn duplicate_id() {
    let node2 = NODE1.replace("52:54:00:a1:9c:ae", "52:54:00:b2:2f:86");
    let dir = tree_with(&[("groups/node2.json", Some(&node2))]);
    let f = assert_only(
        &lint(dir.path(), Target::Matchbox011),
        dir.path(),
        Code::DuplicateId,
        "groups/node2.json",
        2,
        9,
    );
    assert!(f.message.contains("node1.json"), "{f}");
}

#[test]
fn missing_boot() {
    let dir = tree_with(&[(
        "profiles/spare.json",
        Some(r#"{"id": "spare", "ignition_id": "flatcar.ign"}"#),
    )]);
    let f = assert_only(
        &lint(dir.path(), Target::Matchbox011),
        dir.path(),
        Code::MissingBoot,
        "profiles/spare.json",
        1,
        1,
    );
    assert!(f.message.contains("/ipxe"), "{f}");
}

#[test]
fn cmdline_ignored_by_matchbox() {
    // Only `cmdline`: matchbox v0.5+ puts no argument on the kernel line (error).
    let dir = tree_with(&[(
        "profiles/spare.json",
        Some(r#"{"id": "spare", "boot": {"kernel": "/k", "cmdline": {"console": "ttyS0"}}}"#),
    )]);
    let f = assert_only(
        &lint(dir.path(), Target::Matchbox011),
        dir.path(),
        Code::CmdlineIgnored,
        "profiles/spare.json",
        1,
        42,
    );
    assert_eq!(f.severity, Severity::Error);
    // Both: `args` wins, `cmdline` is dead weight (warning).
    let profile = profile_with(
        r#""args": ["#,
        r#""cmdline": {"console": "ttyS0"}, "args": ["#,
    );
    let dir = tree_with(&[("profiles/flatcar.json", Some(&profile))]);
    let findings = lint(dir.path(), Target::Matchbox08);
    assert_eq!(codes(&findings), vec![Code::CmdlineIgnored]);
    assert_eq!(findings[0].severity, Severity::Warning);
}

#[test]
fn args_ignored_by_bootcfg() {
    let dir = tree_with(&[]);
    let f = assert_only(
        &lint(dir.path(), Target::Bootcfg04),
        dir.path(),
        Code::ArgsIgnored,
        "profiles/flatcar.json",
        7,
        5,
    );
    assert_eq!(f.severity, Severity::Error);
    assert!(f.message.contains("--compat bootcfg-0.4"), "{f}");
}

#[test]
fn missing_profile() {
    let node = NODE1.replace(r#""profile": "flatcar""#, r#""profile": "worker""#);
    let dir = tree_with(&[("groups/node1.json", Some(&node))]);
    let f = assert_only(
        &lint(dir.path(), Target::Matchbox011),
        dir.path(),
        Code::MissingProfile,
        "groups/node1.json",
        3,
        14,
    );
    assert!(
        f.message.contains("profiles/worker.json does not exist"),
        "{f}"
    );
}

#[test]
fn findings_point_at_the_key_go_decodes_last() {
    // Go's encoding/json applies `profile` and then `Profile` to the same field: the last one
    // wins, so a finding about the profile points there, not at the first spelling.
    let node = NODE1.replace(
        r#""profile": "flatcar","#,
        "\"profile\": \"flatcar\",\n  \"Profile\": \"worker\",",
    );
    let dir = tree_with(&[("groups/node1.json", Some(&node))]);
    let f = assert_only(
        &lint(dir.path(), Target::Matchbox011),
        dir.path(),
        Code::MissingProfile,
        "groups/node1.json",
        4,
        14,
    );
    assert!(
        f.message.contains("profiles/worker.json does not exist"),
        "{f}"
    );
    // The same the other way round: the first spelling is the one that names a missing file,
    // and the last one names the real profile, so nothing is wrong.
    let node = NODE1.replace(
        r#""profile": "flatcar","#,
        "\"Profile\": \"worker\",\n  \"profile\": \"flatcar\",",
    );
    let dir = tree_with(&[("groups/node1.json", Some(&node))]);
    assert_eq!(lint(dir.path(), Target::Matchbox011), vec![]);
    // A profile's `boot` given twice merges (Go decodes both into one struct): a finding
    // inside points into the object that holds the key, and of a field given in both
    // objects, into the last.
    let profile = profile_with(
        r#""ignition_id": "flatcar.ign""#,
        r#""ignition_id": "flatcar.ign",
  "Boot": {"initrd": ["/assets/flatcar/1/missing.cpio.gz"]}"#,
    );
    let dir = tree_with(&[("profiles/flatcar.json", Some(&profile))]);
    let findings = lint(dir.path(), Target::Matchbox011);
    let asset = findings
        .iter()
        .find(|f| f.code == Code::MissingAsset)
        .unwrap_or_else(|| panic!("{findings:#?}"));
    assert!(asset.message.contains("missing.cpio.gz"), "{asset}");
    assert_eq!((asset.line, asset.column), (14, 23), "{asset}");
    // Map keys are not fields: of `mac` and `MAC` in a selector, the finding about `mac` is
    // at `mac`.
    let node = NODE1.replace(
        r#""selector": {"mac": "52:54:00:a1:9c:ae"}"#,
        r#""selector": {"mac": "52:54:00:a1:9c", "MAC": "52:54:00:a1:9c:ae"}"#,
    );
    let dir = tree_with(&[("groups/node1.json", Some(&node))]);
    let findings = lint(dir.path(), Target::Matchbox011);
    let invalid = findings
        .iter()
        .find(|f| f.code == Code::InvalidMac)
        .unwrap_or_else(|| panic!("{findings:#?}"));
    assert_eq!((invalid.line, invalid.column), (4, 23), "{invalid}");
}

#[test]
fn missing_config() {
    let profile = profile_with(
        r#""ignition_id": "flatcar.ign""#,
        r#""ignition_id": "worker.ign""#,
    );
    let dir = tree_with(&[("profiles/flatcar.json", Some(&profile))]);
    let f = assert_only(
        &lint(dir.path(), Target::Matchbox011),
        dir.path(),
        Code::MissingConfig,
        "profiles/flatcar.json",
        13,
        18,
    );
    assert!(f.message.contains("ignition/worker.ign"), "{f}");
}

#[test]
fn missing_asset() {
    let dir = tree_with(&[(
        "assets/flatcar/1/flatcar_production_pxe_image.cpio.gz",
        None,
    )]);
    let f = assert_only(
        &lint(dir.path(), Target::Matchbox011),
        dir.path(),
        Code::MissingAsset,
        "profiles/flatcar.json",
        6,
        16,
    );
    assert!(
        f.message
            .contains("flatcar_production_pxe_image.cpio.gz does not exist"),
        "{f}"
    );
    // Without an assets/ directory (served from elsewhere) asset URLs are not checked.
    let dir = tree_with(&[("assets", None)]);
    assert_eq!(lint(dir.path(), Target::Matchbox011), vec![]);
}

#[test]
fn invalid_mac() {
    // Five bytes: the 2016 system's truncation bug.
    let node = NODE1.replace("52:54:00:a1:9c:ae", "52:54:00:a1:9c");
    let dir = tree_with(&[("groups/node1.json", Some(&node))]);
    let f = assert_only(
        &lint(dir.path(), Target::Matchbox011),
        dir.path(),
        Code::InvalidMac,
        "groups/node1.json",
        4,
        23,
    );
    assert!(f.message.contains("matchbox skips this group"), "{f}");
}

#[test]
fn duplicate_selector_two_default_groups() {
    let dir = tree_with(&[(
        "groups/zz-default.json",
        Some(r#"{"id": "zz", "profile": "flatcar"}"#),
    )]);
    let f = assert_only(
        &lint(dir.path(), Target::Matchbox011),
        dir.path(),
        Code::DuplicateSelector,
        "groups/zz-default.json",
        1,
        1,
    );
    assert!(f.message.contains("a second default group"), "{f}");
}

#[test]
fn selector_overlap_at_equal_specificity() {
    let dir = tree_with(&[(
        "groups/by-uuid.json",
        Some(r#"{"id": "by-uuid", "profile": "flatcar", "selector": {"uuid": "u1"}}"#),
    )]);
    let f = assert_only(
        &lint(dir.path(), Target::Matchbox011),
        dir.path(),
        Code::SelectorOverlap,
        "groups/by-uuid.json",
        1,
        41,
    );
    assert_eq!(f.severity, Severity::Warning);
    // "uuid=u1" sorts after "mac=…": matchbox tries the uuid group first.
    assert!(
        f.message.contains("answers it with") && f.message.contains("by-uuid.json only because"),
        "{f}"
    );
}

#[test]
fn ignition_invalid() {
    let dir = tree_with(&[(
        "ignition/flatcar.ign",
        Some(r#"{"ignition": {"version": "3.3.0"}, "storage": {"files": [{"path": 1}]}}"#),
    )]);
    let f = assert_only(
        &lint(dir.path(), Target::Matchbox011),
        dir.path(),
        Code::IgnitionInvalid,
        "ignition/flatcar.ign",
        1,
        67,
    );
    assert!(f.message.contains("empty config"), "{f}");
}

#[test]
fn ignition_unknown_key() {
    let dir = tree_with(&[(
        "ignition/flatcar.ign",
        Some("{\"ignition\": {\"version\": \"3.3.0\"},\n \"storage\": {\"filez\": []}}"),
    )]);
    let f = assert_only(
        &lint(dir.path(), Target::Matchbox011),
        dir.path(),
        Code::IgnitionUnknownKey,
        "ignition/flatcar.ign",
        2,
        14,
    );
    assert!(f.message.contains("$.storage.filez"), "{f}");
}

#[test]
fn ignition_version_per_target() {
    let dir = tree_with(&[(
        "ignition/flatcar.ign",
        Some(r#"{"ignition": {"version": "3.5.0"}}"#),
    )]);
    // matchbox v0.11 parses raw Ignition with the 3.4 parser: 3.5 becomes an empty config.
    let f = assert_only(
        &lint(dir.path(), Target::Matchbox011),
        dir.path(),
        Code::IgnitionVersion,
        "ignition/flatcar.ign",
        1,
        26,
    );
    assert_eq!(f.severity, Severity::Error);
    // matchbox v0.8 serves the bytes as they are, and Flatcar reads 3.5.
    assert_eq!(lint(dir.path(), Target::Matchbox08), vec![]);
    // Container Linux reads spec 2.x only: a warning on the profile that serves it.
    let coreos = PROFILE
        .replace(
            "/flatcar/1/flatcar_production_pxe",
            "/coreos/1/coreos_production_pxe",
        )
        .replace(
            "flatcar_production_pxe_image",
            "coreos_production_pxe_image",
        )
        .replace("flatcar.config.url", "coreos.config.url")
        .replace("flatcar.first_boot", "coreos.first_boot");
    let dir = tree_with(&[
        ("profiles/flatcar.json", Some(&coreos)),
        ("assets/coreos/1/coreos_production_pxe.vmlinuz", Some("k")),
        (
            "assets/coreos/1/coreos_production_pxe_image.cpio.gz",
            Some("i"),
        ),
        ("ignition/flatcar.ign", Some(IGNITION)),
    ]);
    let f = assert_only(
        &lint(dir.path(), Target::Matchbox08),
        dir.path(),
        Code::IgnitionVersion,
        "profiles/flatcar.json",
        13,
        18,
    );
    assert_eq!(f.severity, Severity::Error);
    assert!(
        f.message
            .contains("Container Linux reads Ignition spec 2.x only"),
        "{f}"
    );
}

/// Flatcar's etcd-member.service configured by a drop-in, as caas's etcd templates did before
/// they wrote a unit of their own.
const ETCD_MEMBER_DROPIN: &str = r#"{"ignition": {"version": "3.3.0"}, "systemd": {"units": [
  {"name": "etcd-member.service", "enabled": true, "dropins": [
    {"name": "20-etcd.conf", "contents": "[Service]\nEnvironment=ETCD_NAME=node1\n"}]}]}}
"#;

/// A data dir with one `os` profile (from `caas gen profile`), the default group on it, and
/// `config` as its raw Ignition.
fn unit_tree(os: &str, version: &str, config: &str) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    caas_in(dir.path())
        .args([
            "gen",
            "profile",
            "--id",
            "node",
            "--os",
            os,
            "--version",
            version,
        ])
        .args(["--matchbox-url", "http://matchbox:8080"])
        .assert()
        .success();
    caas_in(dir.path())
        .args(["gen", "group", "--id", "default", "--profile", "node"])
        .assert()
        .success();
    write_tree(dir.path(), &[("ignition/node.ign", config)]);
    dir
}

#[test]
fn missing_unit() {
    // Fedora CoreOS ships no etcd-member.service: the drop-in configures nothing.
    let dir = unit_tree("fedora-coreos", "42.20250410.3.1", ETCD_MEMBER_DROPIN);
    let findings = lint(dir.path(), Target::Matchbox011);
    assert_eq!(codes(&findings), vec![Code::MissingUnit], "{findings:#?}");
    let f = &findings[0];
    assert_eq!(f.severity, Severity::Error);
    assert_eq!(
        f.path,
        dir.path().join("profiles/node.json").display().to_string()
    );
    for needle in [
        "drops in on etcd-member.service (systemd.units.0)",
        "Fedora CoreOS does not ship",
        "Flatcar Container Linux and CoreOS Container Linux do",
    ] {
        assert!(f.message.contains(needle), "{needle}: {f}");
    }
    // Through the command line too, as an error.
    caas_in(dir.path()).args(["lint"]).assert().code(1);

    // Flatcar ships it: the same config is fine there.
    let dir = unit_tree("flatcar", "4081.2.0", ETCD_MEMBER_DROPIN);
    assert_eq!(lint(dir.path(), Target::Matchbox011), vec![]);
    // A unit the config writes itself, or one caas knows no OS for, is never reported.
    let own_unit = r#"{"ignition": {"version": "3.3.0"}, "systemd": {"units": [
      {"name": "etcd-member.service", "enabled": true, "contents": "[Service]\nExecStart=/opt/bin/etcd\n"},
      {"name": "docker.service", "dropins": [{"name": "10-x.conf", "contents": "[Service]\n"}]}]}}"#;
    let dir = unit_tree("fedora-coreos", "42.20250410.3.1", own_unit);
    assert_eq!(lint(dir.path(), Target::Matchbox011), vec![]);
}

const BUTANE: &str = "variant: flatcar\nversion: 1.1.0\nstorage:\n  files:\n    - path: /etc/hostname\n      contents:\n        inline: {{.hostname}}\n";

/// The clean tree serving a template instead of raw Ignition.
fn template_tree(template: &str, changes: &[(&str, Option<&str>)]) -> TempDir {
    let profile = profile_with(
        r#""ignition_id": "flatcar.ign""#,
        r#""ignition_id": "flatcar.yaml""#,
    );
    let mut all: Vec<(&str, Option<&str>)> = vec![
        ("profiles/flatcar.json", Some(&profile)),
        ("ignition/flatcar.yaml", Some(template)),
        ("ignition/flatcar.ign", None),
    ];
    all.extend_from_slice(changes);
    tree_with(&all)
}

#[test]
fn template_syntax() {
    let broken = BUTANE.replace("{{.hostname}}", "{{.hostname");
    let dir = template_tree(
        &broken,
        &[(
            "groups/default.json",
            Some(r#"{"profile": "flatcar", "metadata": {"hostname": "x"}}"#),
        )],
    );
    let f = assert_only(
        &lint(dir.path(), Target::Matchbox011),
        dir.path(),
        Code::TemplateSyntax,
        "ignition/flatcar.yaml",
        7,
        17,
    );
    assert!(f.message.contains("unclosed action"), "{f}");
}

#[test]
fn container_linux_config_templates_on_matchbox_0_8() {
    // What matchbox v0.8's transpiler rejects (tests/matchbox_fidelity.rs asks the real
    // server): here, each rule's code, severity and position.
    let cases: &[(&str, Code, Severity, usize, usize)] = &[
        (
            "storage:\n  files:\n    - path: /etc/hostname\n",
            Code::TemplateInvalid,
            Severity::Error,
            3,
            7,
        ),
        (
            "storage:\n  files:\n    - filesystem: root\n      path: etc/hostname\n",
            Code::TemplateInvalid,
            Severity::Error,
            4,
            13,
        ),
        (
            "systemd:\n  units:\n    - name: hello\n",
            Code::TemplateInvalid,
            Severity::Error,
            3,
            13,
        ),
        (
            "systemd:\n  unitz: []\n",
            Code::TemplateUnknownKey,
            Severity::Warning,
            2,
            3,
        ),
        (
            "locksmith:\n  reboot_strategy: off\n",
            Code::TemplateUnverified,
            Severity::Warning,
            2,
            3,
        ),
        (
            "storage:\n  files:\n    - filesystem: root\n      path: \"{{.request.raw_query}}\"\n",
            Code::TemplateUnverified,
            Severity::Warning,
            4,
            13,
        ),
    ];
    let group = (
        "groups/default.json",
        Some(r#"{"profile": "flatcar", "metadata": {"path": "/x"}}"#),
    );
    for (text, code, severity, line, column) in cases {
        let dir = template_tree(text, &[group]);
        let f = assert_only(
            &lint(dir.path(), Target::Matchbox08),
            dir.path(),
            *code,
            "ignition/flatcar.yaml",
            *line,
            *column,
        );
        assert_eq!(f.severity, *severity, "{text}: {f}");
        if *code == Code::TemplateUnverified {
            assert!(f.message.contains("cannot verify"), "{f}");
        }
    }
    // bootcfg v0.4's Fuze transpiler is not modelled at all: every template is unverified.
    let dir = template_tree(cases[0].0, &[group]);
    let on_bootcfg = lint(dir.path(), Target::Bootcfg04);
    assert!(
        on_bootcfg
            .iter()
            .any(|f| f.code == Code::TemplateUnverified && f.severity == Severity::Warning),
        "{on_bootcfg:#?}"
    );
}

#[test]
fn template_dialect() {
    // A Container Linux Config (no `variant:`): matchbox v0.10+ reads Butane only.
    let clc = "storage:\n  files:\n    - path: /etc/hostname\n      filesystem: root\n";
    let dir = template_tree(clc, &[]);
    let f = assert_only(
        &lint(dir.path(), Target::Matchbox011),
        dir.path(),
        Code::TemplateDialect,
        "ignition/flatcar.yaml",
        1,
        1,
    );
    assert_eq!(f.severity, Severity::Error);
    assert_eq!(lint(dir.path(), Target::Matchbox08), vec![]);
    // Butane fcos 1.6 emits Ignition 3.5, which matchbox v0.11 cannot parse.
    let dir = template_tree("variant: fcos\nversion: 1.6.0\n", &[]);
    let f = assert_only(
        &lint(dir.path(), Target::Matchbox011),
        dir.path(),
        Code::TemplateDialect,
        "ignition/flatcar.yaml",
        1,
        10,
    );
    assert!(f.message.contains("newer than 3.4"), "{f}");
}

#[test]
fn template_missing_key() {
    // node1 has `hostname` in its metadata; the default group does not.
    let dir = template_tree(BUTANE, &[]);
    let f = assert_only(
        &lint(dir.path(), Target::Matchbox011),
        dir.path(),
        Code::TemplateMissingKey,
        "groups/default.json",
        1,
        1,
    );
    assert!(
        f.message.contains("flatcar.yaml:7:19 uses .hostname"),
        "{f}"
    );
    // A guarded reference (`if index . "key"`) is fine, as in matchbox's own examples.
    let guarded = BUTANE.replace(
        "{{.hostname}}",
        "{{if index . \"hostname\"}}{{.hostname}}{{end}}",
    );
    assert_eq!(
        lint(template_tree(&guarded, &[]).path(), Target::Matchbox011),
        vec![]
    );
}

#[test]
fn initrd_name() {
    let profile = profile_with("initrd=flatcar_production_pxe_image.cpio.gz", "initrd=main");
    let dir = tree_with(&[("profiles/flatcar.json", Some(&profile))]);
    let f = assert_only(
        &lint(dir.path(), Target::Matchbox011),
        dir.path(),
        Code::InitrdName,
        "profiles/flatcar.json",
        8,
        7,
    );
    assert!(
        f.message.contains("flatcar_production_pxe_image.cpio.gz"),
        "{f}"
    );
}

#[test]
fn missing_first_boot() {
    let profile = profile_with(",\n      \"flatcar.first_boot=yes\"", "");
    let dir = tree_with(&[("profiles/flatcar.json", Some(&profile))]);
    let f = assert_only(
        &lint(dir.path(), Target::Matchbox011),
        dir.path(),
        Code::MissingFirstBoot,
        "profiles/flatcar.json",
        9,
        7,
    );
    assert!(f.message.contains("flatcar.first_boot"), "{f}");
}

#[test]
fn ignition_url_labels() {
    // The profile is shared by the default group and node1 (mac), and its Ignition URL does
    // not carry the MAC: node1's machines fetch /ignition as if they were anyone.
    let profile = profile_with("?uuid=${uuid}&mac=${mac:hexhyp}", "?uuid=${uuid}");
    // With raw Ignition that is harmless: both groups serve the same file through the same
    // profile, byte for byte.
    let dir = tree_with(&[("profiles/flatcar.json", Some(&profile))]);
    assert_eq!(lint(dir.path(), Target::Matchbox011), vec![]);
    // With a template it is not: node1's machines get the default group's rendering.
    let templated = profile.replace(
        r#""ignition_id": "flatcar.ign""#,
        r#""ignition_id": "flatcar.yaml""#,
    );
    let guarded = BUTANE.replace(
        "{{.hostname}}",
        "{{if index . \"hostname\"}}{{.hostname}}{{end}}",
    );
    let dir = template_tree(&guarded, &[("profiles/flatcar.json", Some(&templated))]);
    let f = assert_only(
        &lint(dir.path(), Target::Matchbox011),
        dir.path(),
        Code::IgnitionUrlLabels,
        "profiles/flatcar.json",
        9,
        7,
    );
    assert!(
        f.message
            .contains("node1.json (mac=52:54:00:a1:9c:ae) selects"),
        "{f}"
    );
    assert!(f.message.contains("default.json instead"), "{f}");
    // A MAC-only tree: without a default group, a URL without labels matches nothing (404).
    let bare = profile_with("?uuid=${uuid}&mac=${mac:hexhyp}", "");
    let dir = tree_with(&[
        ("profiles/flatcar.json", Some(&bare)),
        ("groups/default.json", None),
    ]);
    let f = assert_only(
        &lint(dir.path(), Target::Matchbox011),
        dir.path(),
        Code::IgnitionUrlLabels,
        "profiles/flatcar.json",
        9,
        7,
    );
    assert!(f.message.contains("matches no group (404)"), "{f}");
}

/// A raw Ignition config whose unit runs flatcar-install, hidden in a gzip+base64 data URL as
/// in matchbox's own flatcar-install example.
fn installer_ignition() -> String {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"#!/bin/bash -ex\ncurl -o ignition.json 'http://matchbox:8080/ignition?os=installed'\nflatcar-install -d /dev/vda -i ignition.json\nsystemctl reboot\n")
        .unwrap();
    let payload = base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap());
    format!(
        r#"{{"ignition": {{"version": "3.3.0"}}, "storage": {{"files": [{{"path": "/opt/installer", "mode": 320, "contents": {{"compression": "gzip", "source": "data:;base64,{payload}"}}}}]}}}}"#
    )
}

#[test]
fn install_loop() {
    let installer = installer_ignition();
    let dir = tree_with(&[
        ("ignition/flatcar.ign", Some(&installer)),
        ("groups/node1.json", None),
    ]);
    let f = assert_only(
        &lint(dir.path(), Target::Matchbox011),
        dir.path(),
        Code::InstallLoop,
        "groups/default.json",
        1,
        49,
    );
    assert!(f.message.contains("os=installed"), "{f}");
    // The install-to-disk pattern: a more specific group answers the installed system.
    let installed_profile = PROFILE
        .replace("\"flatcar\"", "\"installed\"")
        .replace("flatcar.ign", "installed.ign");
    let dir = tree_with(&[
        ("ignition/flatcar.ign", Some(&installer)),
        ("groups/node1.json", None),
        ("profiles/installed.json", Some(&installed_profile)),
        ("ignition/installed.ign", Some(IGNITION)),
        (
            "groups/installed.json",
            Some(r#"{"profile": "installed", "selector": {"os": "installed"}}"#),
        ),
    ]);
    assert_eq!(lint(dir.path(), Target::Matchbox011), vec![]);
}

#[test]
fn every_code_is_tested_and_documented() {
    let tests = fs::read_to_string(file!()).unwrap();
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    for code in Code::ALL {
        let variant = format!("Code::{code:?}");
        assert!(tests.contains(&variant), "no test asserts {variant}");
        assert!(
            readme.contains(&format!("`{}`", code.as_str())),
            "README.md does not document {code}"
        );
    }
}

// ---- matchbox's own examples ----

#[test]
fn current_matchbox_examples_lint_clean_for_matchbox_0_11() {
    let examples = matchbox_examples("head");
    assert_eq!(
        examples,
        [
            "fedora-coreos",
            "fedora-coreos-install",
            "flatcar",
            "flatcar-install"
        ]
    );
    for example in examples {
        let dir = matchbox_example("head", &example);
        assert_eq!(lint(dir.path(), Target::Matchbox011), vec![], "{example}");
    }
}

#[test]
fn matchbox_v0_8_3_examples_findings_are_all_justified() {
    let examples = matchbox_examples("v0.8.3");
    assert_eq!(
        examples,
        [
            "bootkube",
            "bootkube-install",
            "etcd3",
            "etcd3-install",
            "grub",
            "simple",
            "simple-install"
        ]
    );
    for example in &examples {
        let dir = matchbox_example("v0.8.3", example);
        let on = |f: &Finding| {
            f.path
                .strip_prefix(&format!("{}/", dir.path().display()))
                .unwrap()
                .to_owned()
        };

        // For the server they were written for, only the bootkube examples have findings:
        // their groups name the profiles bootkube-controller and bootkube-worker, which
        // v0.8.3's examples/profiles/ no longer ships (the bootkube cluster moved to
        // Terraform), so matchbox answers those machines 404.
        let findings = lint(dir.path(), Target::Matchbox08);
        let got: Vec<(String, Code)> = findings.iter().map(|f| (on(f), f.code)).collect();
        let expected: Vec<(String, Code)> = if example.starts_with("bootkube") {
            ["node1", "node2", "node3"]
                .iter()
                .map(|n| (format!("groups/{n}.json"), Code::MissingProfile))
                .collect()
        } else {
            vec![]
        };
        assert_eq!(got, expected, "{example} on matchbox-0.8: {findings:#?}");
        // The install examples' loop guard works: the installer's default group has more
        // specific `os=installed` groups, so no install-loop finding (checked above).

        // On matchbox v0.11 every `.yaml` under ignition/ is a Container Linux Config
        // template (no `variant:`), which matchbox dropped for Butane in v0.10: each is an
        // error there, on top of the bootkube profiles.
        let findings = lint(dir.path(), Target::Matchbox011);
        let mut got: Vec<(String, Code)> = findings.iter().map(|f| (on(f), f.code)).collect();
        got.retain(|(_, code)| *code != Code::MissingProfile);
        let expected: Vec<(String, Code)> = [
            "etcd3-gateway.yaml",
            "etcd3.yaml",
            "install-reboot.yaml",
            "ssh.yaml",
        ]
        .iter()
        .map(|name| (format!("ignition/{name}"), Code::TemplateDialect))
        .collect();
        assert_eq!(got, expected, "{example} on matchbox-0.11: {findings:#?}");
        assert!(findings.iter().all(|f| f.severity == Severity::Error));

        // bootcfg v0.4 reads `boot.cmdline` only: every v0.8.3 profile writes `args`.
        let findings = lint(dir.path(), Target::Bootcfg04);
        let args_ignored = findings
            .iter()
            .filter(|f| f.code == Code::ArgsIgnored)
            .count();
        assert_eq!(args_ignored, 6, "{example}: {findings:#?}");
    }
}

#[test]
fn current_examples_on_older_targets_flag_butane() {
    // The current examples ship Butane sources next to the raw Ignition they serve; matchbox
    // v0.8 would read them as Container Linux Configs (a warning, as they are not served), and
    // its transpiler rejects flatcar-install.yaml: a file without `filesystem: root`.
    let dir = matchbox_example("head", "flatcar");
    let findings = lint(dir.path(), Target::Matchbox08);
    assert_eq!(
        codes(&findings),
        vec![
            Code::TemplateDialect,
            Code::TemplateDialect,
            Code::TemplateInvalid,
            Code::TemplateDialect
        ],
        "{findings:#?}"
    );
    let invalid = &findings[2];
    assert!(
        invalid.path.ends_with("ignition/flatcar-install.yaml"),
        "{invalid}"
    );
    assert_eq!(invalid.severity, Severity::Error);
    assert!(
        invalid.message.contains("no filesystem specified"),
        "{invalid}"
    );
}

// ---- the command line ----

#[test]
fn text_output_and_exit_codes() {
    let dir = tree_with(&[("groups/notes.txt", Some("x"))]);
    // A warning alone: exit 0; with --deny warnings: exit 1.
    let output = caas().arg("lint").arg(dir.path()).output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        stdout,
        format!(
            "{}/groups/notes.txt:1:1: warning[stray-entry]: not a .json file: matchbox reads groups/notes.json for it, which does not exist (an INFO \"no such file\" on every request)\n",
            dir.path().display()
        )
    );
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("0 errors, 1 warning"), "{stderr}");
    let output = caas()
        .args(["lint", "--deny", "warnings"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));

    // An error: exit 1. The data dir comes from --data-dir when DIR is not given.
    let dir = tree_with(&[("groups/node1.json", Some("{"))]);
    let output = caas_in(dir.path()).args(["-q", "lint"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stderr.is_empty(), "-q prints no summary");
    assert!(
        String::from_utf8(output.stdout)
            .unwrap()
            .contains(":1:1: error[json-syntax]: ")
    );
}

#[test]
fn json_output_has_the_same_fields() {
    let dir = tree_with(&[
        ("groups/notes.txt", Some("x")),
        ("groups/node1.json", Some("{")),
    ]);
    let output = caas()
        .args(["-q", "lint", "--format", "json"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let array = value.as_array().unwrap();
    assert_eq!(array.len(), 2);
    let first = array[0].as_object().unwrap();
    let keys: Vec<&str> = first.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["code", "column", "line", "message", "path", "severity"]
    );
    assert_eq!(first["code"], "json-syntax");
    assert_eq!(first["severity"], "error");
    assert_eq!(
        (first["line"].as_u64(), first["column"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(array[1]["code"], "stray-entry");
    assert_eq!(array[1]["severity"], "warning");
    let clean = tree_with(&[]);
    let output = caas()
        .args(["lint", "--format", "json"])
        .arg(clean.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(String::from_utf8(output.stdout).unwrap(), "[]\n");
}

#[test]
fn bad_usage_exits_2() {
    let output = caas()
        .args(["lint", "--target", "matchbox-0.9", "."])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let missing = tempfile::tempdir().unwrap().path().join("nope");
    let output = caas().arg("lint").arg(&missing).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    common::assert_one_line_error(&output.stderr, "does not exist");
}

#[test]
fn lint_writes_nothing() {
    let dir = tree_with(&[("groups/node1.json", Some("{"))]);
    let before = common::tree_state(dir.path());
    caas().arg("lint").arg(dir.path()).output().unwrap();
    assert_eq!(common::tree_state(dir.path()), before);
}

#[test]
fn ipxe_command() {
    // A hand-written profile may hold several words in one string, or the words one by one.
    for (from, to) in [
        (
            "\"flatcar.first_boot=yes\"",
            "\"flatcar.first_boot=yes ; echo X\"",
        ),
        (
            "\"flatcar.first_boot=yes\"",
            "\"flatcar.first_boot=yes\", \"||\"",
        ),
        (
            "\"flatcar.first_boot=yes\"",
            "\"flatcar.first_boot=yes\", \"#x\"",
        ),
    ] {
        let profile = profile_with(from, to);
        let dir = tree_with(&[("profiles/flatcar.json", Some(&profile))]);
        let findings = lint(dir.path(), Target::Matchbox011);
        assert_eq!(codes(&findings), vec![Code::IpxeCommand], "{to}");
        assert_eq!(findings[0].severity, Severity::Error);
        assert!(findings[0].message.contains("iPXE"), "{}", findings[0]);
    }
}

#[test]
fn caas_leftover() {
    // What a killed `gen cluster` leaves: thousands of temp files, some half-written JSON.
    let mut changes: Vec<(String, Option<&str>)> = Vec::new();
    for i in 0..300 {
        changes.push((
            format!("groups/.caas-{i:06}.tmp"),
            Some("{\"id\": \"x\", \"pro"),
        ));
        changes.push((format!("profiles/.caas-{i:06}.tmp"), Some("")));
        changes.push((
            format!("ignition/.caas-{i:06}.tmp"),
            Some("{\"ignition\": {"),
        ));
    }
    let borrowed: Vec<(&str, Option<&str>)> = changes
        .iter()
        .map(|(path, text)| (path.as_str(), *text))
        .collect();
    let dir = tree_with(&borrowed);
    let findings = lint(dir.path(), Target::Matchbox011);
    assert_eq!(codes(&findings), vec![Code::CaasLeftover], "{findings:?}");
    let f = &findings[0];
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.message.contains("900 temp files"), "{f}");
    assert!(f.path.ends_with("groups/.caas-000000.tmp"), "{f}");
    // The next write removes them, after a killed writer's lock file.
    fs::write(dir.path().join(".caas.lock"), "pid 1: caas gen cluster\n").unwrap();
    caas_in(dir.path())
        .args([
            "-q",
            "gen",
            "group",
            "--id",
            "node1",
            "--profile",
            "flatcar",
        ])
        .args([
            "--selector",
            "mac=52:54:00:a1:9c:ae",
            "--metadata",
            "hostname=node1.lab",
        ])
        .assert()
        .success();
    assert_eq!(lint(dir.path(), Target::Matchbox011), vec![]);
}

/// What the real `ignition-validate` says of one file: `(line, column)` of its first error.
fn ignition_validate_error(path: &Path) -> Option<(usize, usize)> {
    let output = std::process::Command::new("ignition-validate")
        .arg(path)
        .output()
        .expect("ignition-validate runs (scripts/install-test-deps.sh installs it)");
    if output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    let after = text.split(", line ").nth(1).expect(&text);
    let (line, rest) = after.split_once(" col ").expect(&text);
    let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((line.parse().unwrap(), column.parse().unwrap()))
}

#[test]
fn raw_ignition_checks_agree_with_ignition_validate() {
    let v = r#"{"ignition":{"version":"3.3.0"},"#;
    let hash64 = "a".repeat(64);
    let cases = [
        format!(
            r#"{v}"storage":{{"files":[{{"path":"/etc/x","contents":{{"source":"data:,x"}}}}]}}}}"#
        ),
        format!(r#"{v}"storage":{{"files":[{{"path":"etc/x"}}]}}}}"#),
        format!(r#"{v}"storage":{{"directories":[{{"path":"/x/"}}]}}}}"#),
        format!(r#"{v}"storage":{{"files":[{{"path":"/x"}},{{"path":"/x"}}]}}}}"#),
        format!(r#"{v}"storage":{{"files":[{{"path":"/x","mode":4096}}]}}}}"#),
        format!(
            r#"{v}"storage":{{"files":[{{"path":"/x","contents":{{"source":"ftp://h/x"}}}}]}}}}"#
        ),
        format!(
            r#"{v}"storage":{{"files":[{{"path":"/x","contents":{{"source":"/relative"}}}}]}}}}"#
        ),
        format!(
            r#"{v}"storage":{{"files":[{{"path":"/x","contents":{{"source":"http://[::1"}}}}]}}}}"#
        ),
        format!(
            r#"{v}"storage":{{"files":[{{"path":"/x","contents":{{"source":"data:,x","verification":{{"hash":"md5-00"}}}}}}]}}}}"#
        ),
        format!(
            r#"{v}"storage":{{"files":[{{"path":"/x","contents":{{"source":"data:,x","verification":{{"hash":"sha256-{hash64}"}}}}}}]}}}}"#
        ),
        format!(r#"{v}"systemd":{{"units":[{{"name":"caas"}}]}}}}"#),
        format!(r#"{v}"systemd":{{"units":[{{"name":"a.service"}},{{"name":"a.service"}}]}}}}"#),
        format!(
            r#"{v}"systemd":{{"units":[{{"name":"a.service","dropins":[{{"name":"x"}}]}}]}}}}"#
        ),
        format!(r#"{v}"systemd":{{"units":[{{"name":"a/b.service"}}]}}}}"#),
        format!(r#"{v}"passwd":{{"users":[{{"name":"core"}},{{"name":"core"}}]}}}}"#),
    ];
    let mut refused = 0;
    for (i, config) in cases.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ignition/x.ign");
        write_tree(dir.path(), &[("ignition/x.ign", config.as_str())]);
        let oracle = ignition_validate_error(&path);
        let findings = lint(dir.path(), Target::Matchbox08);
        let invalid: Vec<&Finding> = findings
            .iter()
            .filter(|f| f.code == Code::IgnitionInvalid && f.severity == Severity::Error)
            .collect();
        match oracle {
            None => assert_eq!(invalid, Vec::<&Finding>::new(), "case {i}: {config}"),
            Some(at) => {
                refused += 1;
                assert_eq!(invalid.len(), 1, "case {i}: {config}: {findings:#?}");
                // On a repeated entry ignition-validate points just past its `{`; lint
                // points at the `{`. Everywhere else the positions are the same.
                let column = if invalid[0].message.contains("more than once") {
                    invalid[0].column + 1
                } else {
                    invalid[0].column
                };
                assert_eq!((invalid[0].line, column), at, "case {i}: {config}");
            }
        }
    }
    assert_eq!(refused, cases.len() - 3);
}

#[test]
fn selector_case() {
    // tests/matchbox_fidelity.rs shows the real matchbox never selecting these groups.
    let node = NODE1.replace(r#""mac": "52"#, r#""MAC": "52"#);
    let dir = tree_with(&[("groups/node1.json", Some(&node))]);
    let f = assert_only(
        &lint(dir.path(), Target::Matchbox011),
        dir.path(),
        Code::SelectorCase,
        "groups/node1.json",
        4,
        16,
    );
    assert!(f.message.contains("write \"mac\""), "{f}");
    let node = NODE1.replace(
        r#""mac": "52:54:00:a1:9c:ae""#,
        r#""uuid": "1C2D3E4F-0000-4000-8000-00000000ABCD""#,
    );
    let dir = tree_with(&[("groups/node1.json", Some(&node))]);
    let f = assert_only(
        &lint(dir.path(), Target::Matchbox011),
        dir.path(),
        Code::SelectorCase,
        "groups/node1.json",
        4,
        24,
    );
    assert!(f.message.contains("lower case"), "{f}");
}

#[test]
fn metadata_render() {
    let node = NODE1.replace(
        r#""hostname": "node1.lab""#,
        r#""hostname": "node1.lab", "size": 1000000"#,
    );
    let dir = tree_with(&[("groups/node1.json", Some(&node))]);
    let f = assert_only(
        &lint(dir.path(), Target::Matchbox011),
        dir.path(),
        Code::MetadataRender,
        "groups/node1.json",
        5,
        41,
    );
    assert!(f.message.contains("1e+06"), "{f}");
    assert_eq!(f.severity, Severity::Warning);
}

#[test]
fn secret_over_http() {
    let key_url = "data:,-----BEGIN%20PRIVATE%20KEY-----%0AMC4CAQAwBQYDK2VwBCIEIA%3D%3D%0A-----END%20PRIVATE%20KEY-----%0A";
    let ignition = format!(
        "{{\n  \"ignition\": {{\"version\": \"3.3.0\"}},\n  \"storage\": {{\"files\": [\n    {{\"path\": \"/etc/ssl/server.key\", \"contents\": {{\"source\": \"{key_url}\"}}}}\n  ]}},\n  \"passwd\": {{\"users\": [{{\"name\": \"admin\", \"passwordHash\": \"$6$saltsalt$abcdefghijklmnopqrstuvwxyz0123\"}}]}}\n}}\n"
    );
    let dir = tree_with(&[("ignition/flatcar.ign", Some(&ignition))]);
    let findings = lint(dir.path(), Target::Matchbox08);
    assert_eq!(
        codes(&findings),
        [Code::SecretOverHttp, Code::SecretOverHttp],
        "{findings:#?}"
    );
    let line4 = ignition.lines().nth(3).unwrap();
    let key = &findings[0];
    assert_eq!(
        key.path,
        dir.path()
            .join("ignition/flatcar.ign")
            .display()
            .to_string()
    );
    assert_eq!(key.severity, Severity::Warning);
    assert_eq!(
        (key.line, key.column),
        (4, line4.find("\"data:").unwrap() + 1),
        "{key}"
    );
    assert!(
        key.message.starts_with(&format!(
            "a PEM private key in /etc/ssl/server.key in a config served over plain HTTP ({} \
             boots with http://matchbox:8080/ignition?",
            dir.path().join("profiles/flatcar.json").display()
        )),
        "{key}"
    );
    let hash = &findings[1];
    assert_eq!(hash.line, 6, "{hash}");
    assert!(
        hash.message
            .starts_with("the password hash of user admin (passwordHash) in a config served"),
        "{hash}"
    );

    // The same config fetched over https: nothing to report.
    let https = profile_with(
        "http://matchbox:8080/ignition",
        "https://matchbox:8443/ignition",
    );
    let dir = tree_with(&[
        ("ignition/flatcar.ign", Some(&ignition)),
        ("profiles/flatcar.json", Some(&https)),
    ]);
    assert_eq!(lint(dir.path(), Target::Matchbox08), vec![]);

    // Public material over http is not a secret: SSH public keys and a CA certificate.
    let public = r#"{
  "ignition": {"version": "3.3.0"},
  "passwd": {"users": [{"name": "core", "sshAuthorizedKeys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA you@lab"]}]},
  "storage": {"files": [
    {"path": "/etc/caas/api-ca.pem", "contents": {"source": "data:,-----BEGIN%20CERTIFICATE-----%0AMIIBszCCAVmgAwIBAgIUQ8Zr3xKp1LmN7vB2cWd9FgH4jYs6AeUwCgYIKoZIzj0E%0A-----END%20CERTIFICATE-----%0A"}},
    {"path": "/home/core/.ssh/authorized_keys", "contents": {"source": "data:,ssh-ed25519%20AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA%20you%40lab"}}
  ]}
}
"#;
    let dir = tree_with(&[("ignition/flatcar.ign", Some(public))]);
    assert_eq!(lint(dir.path(), Target::Matchbox08), vec![]);

    // A template matchbox renders: found by line.
    let template = "variant: flatcar\nversion: 1.0.0\npasswd:\n  users:\n    - name: core\n      password_hash: {{.password_hash}}\n";
    let templated = profile_with("\"flatcar.ign\"", "\"flatcar.yaml\"");
    let dir = tree_with(&[
        ("ignition/flatcar.yaml", Some(template)),
        ("profiles/flatcar.json", Some(&templated)),
        (
            "groups/default.json",
            Some(r#"{"id": "default", "profile": "flatcar", "metadata": {"password_hash": "x"}}"#),
        ),
        (
            "groups/node1.json",
            Some(
                r#"{"id": "node1", "profile": "flatcar", "selector": {"mac": "52:54:00:a1:9c:ae"}, "metadata": {"password_hash": "x"}}"#,
            ),
        ),
    ]);
    let findings = lint(dir.path(), Target::Matchbox011);
    let secrets: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.code == Code::SecretOverHttp)
        .collect();
    assert_eq!(secrets.len(), 1, "{findings:#?}");
    assert_eq!(
        (secrets[0].path.as_str(), secrets[0].line, secrets[0].column),
        (
            dir.path().join("ignition/flatcar.yaml").to_str().unwrap(),
            6,
            1
        ),
        "{findings:#?}"
    );
}
