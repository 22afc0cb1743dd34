//! `caas gen group`: every flag and every bad input.

mod common;

use std::fs;
use std::path::Path;

use common::{assert_one_line_error, caas_in, tree_state};
use serde_json::{Value, json};

/// A data dir with one profile, `p`.
fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    caas_in(dir.path())
        .args(["gen", "profile", "--id", "p", "--kernel", "/k"])
        .assert()
        .success();
    dir
}

fn read_group(dir: &Path, id: &str) -> Value {
    serde_json::from_slice(&fs::read(dir.join(format!("groups/{id}.json"))).unwrap()).unwrap()
}

#[test]
fn writes_a_default_group() {
    let dir = data_dir();
    caas_in(dir.path())
        .args(["gen", "group", "--id", "default", "--profile", "p"])
        .assert()
        .success()
        .stdout(format!(
            "created {}\n",
            dir.path().join("groups/default.json").display()
        ));
    assert_eq!(
        fs::read_to_string(dir.path().join("groups/default.json")).unwrap(),
        "{\n  \"id\": \"default\",\n  \"name\": \"default\",\n  \"profile\": \"p\",\n  \"selector\": {},\n  \"metadata\": {}\n}\n"
    );
}

#[test]
fn mac_selectors_are_normalised_in_every_form_matchbox_accepts() {
    let dir = data_dir();
    for (i, mac) in ["52-DA-00-89-D8-10", "52:da:00:89:d8:10", "52DA.0089.D810"]
        .iter()
        .enumerate()
    {
        let id = format!("m{i}");
        caas_in(dir.path())
            .args(["gen", "group", "--id", &id, "--profile", "p"])
            .args(["--selector", &format!("mac={mac}"), "os=installed"])
            .assert()
            .success();
        assert_eq!(
            read_group(dir.path(), &id)["selector"],
            json!({"mac": "52:da:00:89:d8:10", "os": "installed"})
        );
    }
}

#[test]
fn metadata_keeps_json_types_and_flags_override_the_file() {
    let dir = data_dir();
    let yaml = dir.path().join("meta.yaml");
    fs::write(
        &yaml,
        "etcd_name: node1\ncount: 2\nkeys:\n  - ssh-ed25519 AAAA\nnested: {a: 1}\n",
    )
    .unwrap();
    caas_in(dir.path())
        .args([
            "gen",
            "group",
            "--id",
            "g",
            "--profile",
            "p",
            "--name",
            "Node 1",
        ])
        .arg("--metadata-file")
        .arg(&yaml)
        .args([
            "--metadata",
            "count=3",
            "enabled=true",
            "list=[1,2]",
            "version=3227.2.0",
            "quoted=\"true\"",
        ])
        .assert()
        .success();
    assert_eq!(
        read_group(dir.path(), "g"),
        json!({
            "id": "g",
            "name": "Node 1",
            "profile": "p",
            "selector": {},
            "metadata": {
                "count": 3,
                "enabled": true,
                "etcd_name": "node1",
                "keys": ["ssh-ed25519 AAAA"],
                "list": [1, 2],
                "nested": {"a": 1},
                "quoted": "true",
                "version": "3227.2.0"
            }
        })
    );

    let json_file = dir.path().join("meta.json");
    fs::write(&json_file, r#"{"a": {"b": [1, "x"]}}"#).unwrap();
    caas_in(dir.path())
        .args([
            "gen",
            "group",
            "--id",
            "j",
            "--profile",
            "p",
            "--metadata-file",
        ])
        .arg(&json_file)
        .assert()
        .success();
    assert_eq!(
        read_group(dir.path(), "j")["metadata"],
        json!({"a": {"b": [1, "x"]}})
    );
}

#[test]
fn a_missing_profile_is_allowed_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let out = caas_in(dir.path())
        .args(["gen", "group", "--id", "g", "--profile", "later"])
        .assert()
        .code(2);
    assert_one_line_error(&out.get_output().stderr, "\"later\"");
    assert!(tree_state(dir.path()).is_empty());
    caas_in(dir.path())
        .args([
            "gen",
            "group",
            "--id",
            "g",
            "--profile",
            "later",
            "--allow-missing-profile",
        ])
        .assert()
        .success();
    assert_eq!(read_group(dir.path(), "g")["profile"], "later");
}

#[test]
fn data_dir_comes_from_the_flag_the_environment_or_the_default() {
    let dir = data_dir();
    caas_in(dir.path())
        .args(["gen", "group", "--id", "flag", "--profile", "p"])
        .assert()
        .success();
    assert!(dir.path().join("groups/flag.json").is_file());

    common::caas()
        .env("CAAS_DATA_DIR", dir.path())
        .args(["gen", "group", "--id", "env", "--profile", "p"])
        .assert()
        .success();
    assert!(dir.path().join("groups/env.json").is_file());

    let cwd = tempfile::tempdir().unwrap();
    common::caas()
        .current_dir(cwd.path())
        .args([
            "gen",
            "group",
            "--id",
            "default",
            "--profile",
            "p",
            "--allow-missing-profile",
        ])
        .assert()
        .success();
    assert!(cwd.path().join("bootcfg/groups/default.json").is_file());
}

#[test]
fn quiet_prints_nothing_and_verbose_is_accepted() {
    let dir = data_dir();
    caas_in(dir.path())
        .args(["-q", "gen", "group", "--id", "q", "--profile", "p"])
        .assert()
        .success()
        .stdout("")
        .stderr("");
    caas_in(dir.path())
        .args(["gen", "group", "--id", "q", "--profile", "p", "-vv"])
        .assert()
        .success()
        .stdout(format!(
            "unchanged {}\n",
            dir.path().join("groups/q.json").display()
        ));
    caas_in(dir.path())
        .args(["-q", "-v", "gen", "group", "--id", "q", "--profile", "p"])
        .assert()
        .code(2);
}

#[test]
fn rerun_with_changes_updates_in_place() {
    let dir = data_dir();
    let run = |value: &str| {
        caas_in(dir.path())
            .args(["gen", "group", "--id", "g", "--profile", "p", "--metadata"])
            .arg(format!("v={value}"))
            .assert()
            .success()
    };
    run("1").stdout(predicates::str::starts_with("created "));
    run("1").stdout(predicates::str::starts_with("unchanged "));
    run("2").stdout(predicates::str::starts_with("updated "));
    assert_eq!(read_group(dir.path(), "g")["metadata"]["v"], 2);
}

#[test]
fn bad_inputs_exit_2_with_one_line_and_write_nothing() {
    let dir = data_dir();
    caas_in(dir.path())
        .args(["gen", "group", "--id", "existing", "--profile", "p"])
        .assert()
        .success();
    let list = dir.path().join("list.yaml");
    fs::write(&list, "- a\n- b\n").unwrap();
    let broken = dir.path().join("broken.json");
    fs::write(&broken, "{\"a\": ").unwrap();
    let broken_yaml = dir.path().join("broken.yaml");
    fs::write(&broken_yaml, "a: [1, 2\n").unwrap();
    let list = list.to_str().unwrap().to_owned();
    let broken = broken.to_str().unwrap().to_owned();
    let broken_yaml = broken_yaml.to_str().unwrap().to_owned();
    let before = tree_state(dir.path());
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--id", "../g", "--profile", "p"], "\"../g\""),
        (vec!["--id", "/etc/g", "--profile", "p"], "\"/etc/g\""),
        (vec!["--id", "g", "--profile", "../p"], "\"../p\""),
        (vec!["--id", "g g", "--profile", "p"], "\"g g\""),
        (
            vec![
                "--id",
                "existing",
                "--profile",
                "p",
                "--selector",
                "mac=52:54:00:a1:9c",
            ],
            "\"52:54:00:a1:9c\"",
        ),
        (
            vec![
                "--id",
                "existing",
                "--profile",
                "p",
                "--selector",
                "mac=not-a-mac",
            ],
            "\"not-a-mac\"",
        ),
        (
            vec![
                "--id",
                "existing",
                "--profile",
                "p",
                "--selector",
                "novalue",
            ],
            "\"novalue\"",
        ),
        (
            vec![
                "--id",
                "existing",
                "--profile",
                "p",
                "--selector",
                "os=a",
                "os=b",
            ],
            "--selector os",
        ),
        (
            vec![
                "--id",
                "existing",
                "--profile",
                "p",
                "--metadata",
                "k=1",
                "k=2",
            ],
            "--metadata k",
        ),
        (
            vec!["--id", "existing", "--profile", "p", "--metadata", "=v"],
            "\"=v\"",
        ),
        (
            vec!["--id", "existing", "--profile", "missing"],
            "\"missing\"",
        ),
        (
            vec![
                "--id",
                "existing",
                "--profile",
                "p",
                "--metadata-file",
                "/nonexistent/m.json",
            ],
            "/nonexistent/m.json",
        ),
        (
            vec![
                "--id",
                "existing",
                "--profile",
                "p",
                "--metadata-file",
                &list,
            ],
            "must be an object",
        ),
        (
            vec![
                "--id",
                "existing",
                "--profile",
                "p",
                "--metadata-file",
                &broken,
            ],
            "broken.json",
        ),
        (
            vec![
                "--id",
                "existing",
                "--profile",
                "p",
                "--metadata-file",
                "/dev/zero",
            ],
            "--metadata-file /dev/zero: larger than 67108864 bytes, the most caas reads from it",
        ),
        (
            vec![
                "--id",
                "existing",
                "--profile",
                "p",
                "--metadata-file",
                &broken_yaml,
            ],
            "broken.yaml",
        ),
    ];
    for (args, needle) in cases {
        let out = caas_in(dir.path())
            .args(["gen", "group"])
            .args(&args)
            .assert()
            .code(2);
        assert_one_line_error(&out.get_output().stderr, needle);
        assert_eq!(tree_state(dir.path()), before, "{args:?} changed the tree");
    }
}
