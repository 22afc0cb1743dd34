//! `caas gen ignition --spec 2.x`: every built-in template, for every 2.x version, through
//! Ignition's own spec 2.x parser (the oracle of tests/common/ignition2.rs, stronger than the
//! published 2.x JSON schemas: it runs Ignition's validation too), and configs that parser
//! refuses are refused by caas as well, on one line, writing nothing.

mod common;

use std::fs;
use std::path::Path;

use common::{assert_one_line_error, caas_in, ignition2, tree_state};
use serde_json::{Value, json};

const SPECS: [&str; 4] = ["2.0", "2.1", "2.2", "2.3"];

fn sha512_hash() -> String {
    format!("etcd_binary_hash=sha512-{}", "ab".repeat(64))
}

fn built_in_cases() -> Vec<(&'static str, Vec<String>)> {
    let keys =
        r#"ssh_authorized_keys=["ssh-ed25519 AAAAC3Nza key1@lab", "ssh-rsa AAAAB3Nza key2@lab"]"#;
    let users = r#"users=[{"name": "ops", "ssh_authorized_keys": ["ssh-ed25519 AAAA ops@lab"], "groups": ["sudo", "docker"]}]"#;
    let url = "etcd_binary_url=http://matchbox.lab:8080/assets/etcd/v3.5.21/etcd".to_owned();
    let s = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let mut member = s(&[
        "etcd_name=node1",
        "etcd_initial_cluster=node1=http://10.0.0.11:2380,node2=http://10.0.0.12:2380",
        "etcd_initial_advertise_peer_urls=http://10.0.0.11:2380",
        "etcd_advertise_client_urls=http://10.0.0.11:2379",
        keys,
    ]);
    member.extend([url.clone(), sha512_hash()]);
    let mut gateway = s(&["etcd_endpoints=http://10.0.0.11:2379", keys]);
    gateway.extend([url, sha512_hash()]);
    vec![
        (
            "discovery",
            s(&[
                "matchbox_url=http://matchbox.lab:8080",
                "api_url=http://caas.lab:5000",
                keys,
            ]),
        ),
        ("etcd-member", member),
        ("etcd-gateway", gateway),
        (
            "install",
            s(&["install_device=/dev/sda", "os_channel=stable", keys]),
        ),
        ("ssh", s(&[keys, users])),
    ]
}

#[test]
fn every_built_in_template_for_every_2x_spec_passes_ignitions_own_parser() {
    let dir = tempfile::tempdir().unwrap();
    for spec in SPECS {
        for (name, vars) in built_in_cases() {
            let id = format!("{name}-{}", spec.replace('.', "_"));
            caas_in(dir.path())
                .args([
                    "gen",
                    "ignition",
                    "--spec",
                    spec,
                    "--template",
                    name,
                    "--id",
                    &id,
                ])
                .arg("--var")
                .args(&vars)
                .assert()
                .success();
            let path = dir.path().join(format!("ignition/{id}.ign"));
            ignition2::assert_valid(&path);
            let config: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
            assert_eq!(config["ignition"]["version"], format!("{spec}.0"));
            // caas's own 2.x types read back what it wrote (unknown keys refused).
            serde_json::from_value::<caas::ignition::v2::Config>(config.clone()).unwrap();
        }
    }
    // 2.0 keeps users' creation fields under `create`, later versions on the user.
    let ssh20: Value =
        serde_json::from_slice(&fs::read(dir.path().join("ignition/ssh-2_0.ign")).unwrap())
            .unwrap();
    assert_eq!(
        ssh20["passwd"]["users"][1]["create"],
        json!({"groups": ["sudo", "docker"]})
    );
    let ssh21: Value =
        serde_json::from_slice(&fs::read(dir.path().join("ignition/ssh-2_1.ign")).unwrap())
            .unwrap();
    assert_eq!(
        ssh21["passwd"]["users"][1]["groups"],
        json!(["sudo", "docker"])
    );
}

/// What a translation that ignored a version's limits would write, which Ignition refuses (or
/// ignores with a warning), and the 3.x-shaped template caas must refuse for that version.
struct Bad {
    spec: &'static str,
    template: &'static str,
    naive: Value,
    caas_says: &'static str,
}

fn bad_cases() -> Vec<Bad> {
    let file = |extra: Value| {
        let mut f = json!({"filesystem": "root", "path": "/etc/x", "mode": 420});
        f.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        f
    };
    vec![
        Bad {
            spec: "2.2",
            template: "storage:\n  files:\n    - path: /opt/etcd\n      contents:\n        source: http://m/etcd\n        verification:\n          hash: sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
            naive: json!({"ignition": {"version": "2.2.0"}, "storage": {"files": [file(json!({"path": "/opt/etcd", "contents": {"source": "http://m/etcd", "verification": {"hash": "sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}}}))]}}),
            caas_says: "verifies sha512 digests only",
        },
        Bad {
            spec: "2.0",
            template: "storage:\n  directories:\n    - path: /var/lib/x\n",
            naive: json!({"ignition": {"version": "2.0.0"}, "storage": {"directories": [{"filesystem": "root", "path": "/var/lib/x", "mode": 493}]}}),
            caas_says: "Ignition spec 2.0.0 has no directories (added in 2.1.0)",
        },
        Bad {
            spec: "2.0",
            template: "systemd:\n  units:\n    - name: a.service\n      enabled: false\n",
            naive: json!({"ignition": {"version": "2.0.0"}, "systemd": {"units": [{"name": "a.service", "enabled": false}]}}),
            caas_says: "can enable a unit, not disable one",
        },
        Bad {
            spec: "2.1",
            template: "storage:\n  files:\n    - path: etc/x\n",
            naive: json!({"ignition": {"version": "2.1.0"}, "storage": {"files": [file(json!({"path": "etc/x"}))]}}),
            caas_says: "not an absolute path",
        },
        Bad {
            spec: "2.3",
            template: "systemd:\n  units:\n    - name: caas.bogus\n",
            naive: json!({"ignition": {"version": "2.3.0"}, "systemd": {"units": [{"name": "caas.bogus"}]}}),
            caas_says: "caas.bogus",
        },
        Bad {
            spec: "2.0",
            template: "storage:\n  files:\n    - path: /etc/x\n      contents:\n        source: tftp://h/x\n",
            naive: json!({"ignition": {"version": "2.0.0"}, "storage": {"files": [file(json!({"contents": {"source": "tftp://h/x"}}))]}}),
            caas_says: "has no tftp URLs (added in 2.1.0)",
        },
    ]
}

#[test]
fn configs_ignitions_parser_refuses_are_refused_by_caas_on_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fs::create_dir_all(data.join("ignition")).unwrap();
    for (i, bad) in bad_cases().iter().enumerate() {
        let naive = dir.path().join(format!("naive-{i}.json"));
        fs::write(&naive, serde_json::to_vec(&bad.naive).unwrap()).unwrap();
        let verdict = ignition2::check(&naive);
        assert_ne!(
            verdict.code, 0,
            "Ignition {} takes {}: {}",
            bad.spec, bad.naive, verdict.report
        );
        let template = dir.path().join(format!("bad-{i}.yaml.tera"));
        fs::write(&template, bad.template).unwrap();
        let before = tree_state(&data);
        let stderr = refused_gen_ignition(&data, bad.spec, &template);
        assert_one_line_error(&stderr, bad.caas_says);
        assert_eq!(tree_state(&data), before);
    }
}

#[test]
fn a_declared_3x_version_is_refused_for_a_2x_spec() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("t.yaml.tera");
    fs::write(&template, "ignition:\n  version: 3.3.0\n").unwrap();
    let stderr = refused_gen_ignition(&dir.path().join("data"), "2.0", &template);
    assert_one_line_error(&stderr, "but the output is spec 2.0.0");
}

/// `caas gen ignition --spec SPEC --template TEMPLATE` in `data`, which must exit 2: its stderr.
fn refused_gen_ignition(data: &Path, spec: &str, template: &Path) -> Vec<u8> {
    caas_in(data)
        .args(["gen", "ignition", "--spec", spec, "--id", "x", "--template"])
        .arg(template)
        .assert()
        .code(2)
        .get_output()
        .stderr
        .clone()
}
