//! `caas gen ignition`: the built-in templates against the real `ignition-validate`, and every
//! kind of bad input (unknown key, wrong type, undefined variable, injection attempt), each of
//! which exits 2 and writes nothing.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{
    assert_one_line_error, caas, caas_in, ignition_validate, ignition_validate_all, tree_state,
};
use serde_json::{Value, json};

/// A data dir that already holds a config, so "writes nothing" is checked against real files.
fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    caas_in(dir.path())
        .args(["gen", "ignition", "--template", "ssh", "--id", "existing"])
        .args(["--var", "ssh_authorized_keys=ssh-ed25519 AAAA existing@lab"])
        .assert()
        .success();
    ignition_validate(&dir.path().join("ignition/existing.ign"));
    dir
}

fn read_config(dir: &Path, id: &str) -> Value {
    serde_json::from_slice(&fs::read(dir.join(format!("ignition/{id}.ign"))).unwrap()).unwrap()
}

/// Writes a template file next to (not inside) the data dir.
fn template(dir: &tempfile::TempDir, name: &str, source: &str) -> PathBuf {
    let path = dir.path().join(name);
    fs::write(&path, source).unwrap();
    path
}

const ETCD_VARS: [&str; 6] = [
    "etcd_name=node1",
    "etcd_initial_cluster=node1=http://10.0.0.11:2380,node2=http://10.0.0.12:2380,node3=http://10.0.0.13:2380",
    "etcd_initial_advertise_peer_urls=http://10.0.0.11:2380",
    "etcd_advertise_client_urls=http://10.0.0.11:2379",
    ETCD_BINARY_URL,
    ETCD_BINARY_HASH,
];
const ETCD_BINARY_URL: &str = "etcd_binary_url=http://matchbox.lab:8080/assets/etcd/v3.5.21/etcd";
const ETCD_BINARY_HASH: &str =
    "etcd_binary_hash=sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn every_built_in_template_renders_a_config_ignition_validate_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let keys =
        r#"ssh_authorized_keys=["ssh-ed25519 AAAAC3Nza key1@lab", "ssh-rsa AAAAB3Nza key2@lab"]"#;
    let cases: Vec<(&str, Vec<&str>)> = vec![
        (
            "discovery",
            vec![
                "matchbox_url=http://matchbox.lab:8080",
                "api_url=http://caas.lab:5000",
                keys,
            ],
        ),
        ("etcd-member", ETCD_VARS.to_vec()),
        (
            "etcd-gateway",
            vec![
                "etcd_endpoints=http://10.0.0.11:2379,http://10.0.0.12:2379",
                ETCD_BINARY_URL,
                ETCD_BINARY_HASH,
                keys,
            ],
        ),
        (
            "install",
            vec![
                "install_device=/dev/sda",
                "os_channel=stable",
                "os_version=4081.2.0",
                keys,
            ],
        ),
        ("ssh", vec![keys]),
    ];
    for (name, vars) in &cases {
        caas_in(dir.path())
            .args(["gen", "ignition", "--template", name, "--id", name, "--var"])
            .args(vars)
            .assert()
            .success()
            .stdout(format!(
                "created {}\n",
                dir.path().join(format!("ignition/{name}.ign")).display()
            ));
    }
    assert_eq!(ignition_validate_all(dir.path()), cases.len());

    // A rerun with the same inputs touches nothing.
    let before = tree_state(dir.path());
    for (name, vars) in &cases {
        caas_in(dir.path())
            .args(["gen", "ignition", "--template", name, "--id", name, "--var"])
            .args(vars)
            .assert()
            .success()
            .stdout(format!(
                "unchanged {}\n",
                dir.path().join(format!("ignition/{name}.ign")).display()
            ));
    }
    assert_eq!(tree_state(dir.path()), before);

    let member = read_config(dir.path(), "etcd-member");
    let dropin = member["systemd"]["units"][0]["contents"].as_str().unwrap();
    assert!(
        dropin.contains("Environment=\"ETCD_NAME=node1\"\n"),
        "{dropin}"
    );
    let ssh = read_config(dir.path(), "ssh");
    assert_eq!(
        ssh["passwd"]["users"][0]["sshAuthorizedKeys"],
        json!([
            "ssh-ed25519 AAAAC3Nza key1@lab",
            "ssh-rsa AAAAB3Nza key2@lab"
        ])
    );
}

#[test]
fn an_unknown_key_exits_2_names_template_and_line_and_writes_nothing() {
    let dir = data_dir();
    let work = tempfile::tempdir().unwrap();
    let path = template(
        &work,
        "typo.yaml.tera",
        "storage:\n  files:\n    - path: /etc/motd\n      mode: 0644\n      contentz:\n        source: {{ text | data_url }}\n",
    );
    let before = tree_state(dir.path());
    let out = caas_in(dir.path())
        .args([
            "gen",
            "ignition",
            "--template",
            path.to_str().unwrap(),
            "--id",
            "x",
        ])
        .args(["--var", "text=hello"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert_one_line_error(
        &out.stderr,
        "rendered line 5 (\"contentz:\"): unknown key \"contentz\"",
    );
    assert_one_line_error(&out.stderr, "typo.yaml.tera");
    assert!(out.stdout.is_empty());
    assert_eq!(tree_state(dir.path()), before);
}

#[test]
fn a_wrong_type_exits_2_and_writes_nothing() {
    let dir = data_dir();
    let work = tempfile::tempdir().unwrap();
    let path = template(
        &work,
        "types.yaml.tera",
        "systemd:\n  units:\n    - name: a.service\n      enabled: {{ enabled }}\n",
    );
    let before = tree_state(dir.path());
    let out = caas_in(dir.path())
        .args([
            "gen",
            "ignition",
            "--template",
            path.to_str().unwrap(),
            "--id",
            "x",
        ])
        .args(["--var", "enabled=sometimes"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert_one_line_error(
        &out.stderr,
        "rendered line 4 (\"enabled: \\\"sometimes\\\"\")",
    );
    assert_eq!(tree_state(dir.path()), before);

    // A list where Ignition has a string.
    let path = template(
        &work,
        "list.yaml.tera",
        "passwd:\n  users:\n    - name: [a, b]\n",
    );
    caas_in(dir.path())
        .args([
            "gen",
            "ignition",
            "--template",
            path.to_str().unwrap(),
            "--id",
            "x",
        ])
        .assert()
        .code(2);
    assert_eq!(tree_state(dir.path()), before);
}

#[test]
fn an_undefined_variable_exits_2_naming_it_and_the_variables_given() {
    let dir = data_dir();
    let before = tree_state(dir.path());
    let out = caas_in(dir.path())
        .args(["gen", "ignition", "--template", "discovery", "--id", "d"])
        .args(["--var", "matchbox_url=http://matchbox.lab:8080", "extra=1"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert_one_line_error(
        &out.stderr,
        "template \"discovery\" needs variable \"api_url\", which is not given (variables given: extra, matchbox_url)",
    );
    assert_eq!(tree_state(dir.path()), before);
}

#[test]
fn an_injection_attempt_through_a_variable_exits_2_and_writes_nothing() {
    let dir = data_dir();
    let work = tempfile::tempdir().unwrap();
    // Raw, this value would turn `mode` into 420 and add a root-owned file to the config.
    let payload = "420\n    - path: /etc/sudoers.d/evil\n      contents: {source: \"data:,ALL\"}";
    let path = template(
        &work,
        "motd.yaml.tera",
        "storage:\n  files:\n    - path: /etc/motd\n      mode: {{ mode }}\n",
    );
    let vars_file = work.path().join("vars.json");
    fs::write(
        &vars_file,
        serde_json::to_vec(&json!({"mode": payload})).unwrap(),
    )
    .unwrap();
    let before = tree_state(dir.path());
    for how in [
        ["--var", &format!("mode={payload}")],
        ["--vars-file", vars_file.to_str().unwrap()],
    ] {
        let out = caas_in(dir.path())
            .args([
                "gen",
                "ignition",
                "--template",
                path.to_str().unwrap(),
                "--id",
                "motd",
            ])
            .args(how)
            .assert()
            .code(2)
            .get_output()
            .clone();
        assert_one_line_error(&out.stderr, "rendered line 4");
        assert_eq!(tree_state(dir.path()), before);
    }
}

/// Values that would change a YAML document if written raw. Each must come out of the config
/// exactly as given, in the field the template put it, with nothing else changed.
const PAYLOADS: &[&str] = &[
    "plain",
    "with \"double\" and 'single' quotes",
    "line one\nline two\n  indented: true",
    "key: value",
    "# not a comment",
    "{a: 1}",
    "[1, 2]",
    "---\nstorage: {}",
    "...",
    "back\\slash \\n \\\" \\u0041",
    "unicode é ✓ 🦀 \u{2028} \u{85} \u{feff}",
    "& anchor *alias ! tag | literal > folded % directive @ `",
    "\t tabs \r\n and \u{7} bell",
    "%m %% specifiers ${X} $(id)",
    "",
    " leading and trailing space ",
];

#[test]
fn no_value_can_change_the_structure_of_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let path = template(
        &work,
        "echo.yaml.tera",
        r#"passwd:
  users:
    - name: core
      gecos: {{ v }}
      groups: [{{ v }}, {{ "x-" ~ v }}]
storage:
  files:
    - path: {{ "/etc/caas/" ~ (v | sha512) }}
      contents:
        source: {{ v | data_url }}
        verification: {hash: {{ v | sha512 }}}
      mode: 0600
systemd:
  units:
    - name: echo.service
      contents: |
        [Service]
        # {{ v }}
        Environment={{ "V=" ~ v }}
        ExecStart=/bin/echo {{ v | quote }}
{# {{ v }} in a comment #}
"#,
    );
    for (i, payload) in PAYLOADS.iter().enumerate() {
        let id = format!("p{i}");
        // A vars file keeps every payload a string (a --var value that parses as JSON is typed).
        let vars = work.path().join(format!("{id}.json"));
        fs::write(&vars, serde_json::to_vec(&json!({ "v": payload })).unwrap()).unwrap();
        caas_in(dir.path())
            .args([
                "gen",
                "ignition",
                "--template",
                path.to_str().unwrap(),
                "--id",
                &id,
            ])
            .arg("--vars-file")
            .arg(&vars)
            .assert()
            .success();
        let config = read_config(dir.path(), &id);
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(
            keys(&config),
            ["ignition", "passwd", "storage", "systemd"],
            "{payload:?}"
        );
        let user = &config["passwd"]["users"][0];
        assert_eq!(keys(user), ["gecos", "groups", "name"], "{payload:?}");
        assert_eq!(user["gecos"], *payload);
        assert_eq!(user["groups"], json!([payload, format!("x-{payload}")]));
        let files = config["storage"]["files"].as_array().unwrap();
        assert_eq!(files.len(), 1, "{payload:?}");
        assert_eq!(keys(&files[0]), ["contents", "mode", "path"], "{payload:?}");
        assert_eq!(files[0]["mode"], 0o600);
        let units = config["systemd"]["units"].as_array().unwrap();
        assert_eq!(units.len(), 1, "{payload:?}");
        let contents = units[0]["contents"].as_str().unwrap();
        // Inside the unit file every value is one line.
        assert_eq!(contents.lines().count(), 4, "{payload:?}: {contents}");
        let line = contents.lines().nth(2).unwrap();
        let value: String =
            serde_json::from_str(line.strip_prefix("Environment=").unwrap()).unwrap();
        assert_eq!(value, format!("V={payload}"), "{payload:?}");
    }
    assert_eq!(ignition_validate_all(dir.path()), PAYLOADS.len());
}

#[test]
fn a_template_that_glues_a_value_to_text_is_refused_before_any_value_is_seen() {
    let dir = data_dir();
    let work = tempfile::tempdir().unwrap();
    let before = tree_state(dir.path());
    for (name, source, needle) in [
        (
            "quoted.yaml.tera",
            "passwd:\n  users:\n    - name: \"{{ user }}\"\n",
            "line 3: a {{ … }} value inside a quoted YAML string",
        ),
        (
            "glued.yaml.tera",
            "passwd:\n  users: [{name: core-{{ user }}}]\n",
            "line 2: a {{ … }} value must be a whole YAML value",
        ),
        (
            "safe.yaml.tera",
            "passwd:\n  users:\n    - name: {{ user | safe }}\n",
            "`safe` filter is not available",
        ),
    ] {
        let path = template(&work, name, source);
        let out = caas_in(dir.path())
            .args([
                "gen",
                "ignition",
                "--template",
                path.to_str().unwrap(),
                "--id",
                "u",
            ])
            .args(["--var", "user=ops"])
            .assert()
            .code(2)
            .get_output()
            .clone();
        assert_one_line_error(&out.stderr, needle);
        assert_eq!(tree_state(dir.path()), before);
    }
}

#[test]
fn templates_dir_adds_and_overrides_built_in_templates() {
    let dir = tempfile::tempdir().unwrap();
    let templates = tempfile::tempdir().unwrap();
    fs::write(
        templates.path().join("ssh.yaml.tera"),
        "passwd:\n  users:\n    - name: {{ user }}\n",
    )
    .unwrap();
    fs::write(
        templates.path().join("hello.yaml.tera"),
        "{% include \"ssh\" %}\nstorage:\n  files:\n    - path: /etc/hello\n      contents: {source: {{ (\"hi \" ~ user) | data_url }}}\n",
    )
    .unwrap();
    caas_in(dir.path())
        .args([
            "gen",
            "ignition",
            "--template",
            "hello",
            "--id",
            "h",
            "--var",
            "user=ops",
        ])
        .arg("--templates")
        .arg(templates.path())
        .assert()
        .success();
    let config = read_config(dir.path(), "h");
    assert_eq!(config["passwd"]["users"], json!([{"name": "ops"}]));
    assert_eq!(
        config["storage"]["files"][0]["contents"]["source"],
        "data:,hi%20ops"
    );

    // The same through the environment.
    caas_in(dir.path())
        .env("CAAS_TEMPLATES", templates.path())
        .args([
            "gen",
            "ignition",
            "--template",
            "ssh",
            "--id",
            "s",
            "--var",
            "user=env",
        ])
        .assert()
        .success();
    assert_eq!(
        read_config(dir.path(), "s")["passwd"]["users"],
        json!([{"name": "env"}])
    );
    ignition_validate_all(dir.path());

    let out = caas_in(dir.path())
        .args(["gen", "ignition", "--template", "nope", "--id", "n"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert_one_line_error(
        &out.stderr,
        "no template \"nope\": the templates are discovery, etcd-gateway, etcd-member, install, ssh",
    );
}

#[test]
fn spec_3_4_writes_the_same_config_with_its_version() {
    let dir = tempfile::tempdir().unwrap();
    for (id, spec) in [("v33", "3.3"), ("v34", "3.4")] {
        caas_in(dir.path())
            .args([
                "gen",
                "ignition",
                "--template",
                "etcd-member",
                "--id",
                id,
                "--spec",
                spec,
                "--var",
            ])
            .args(ETCD_VARS)
            .assert()
            .success();
    }
    let mut v34 = read_config(dir.path(), "v34");
    assert_eq!(v34["ignition"]["version"], "3.4.0");
    // ignition-validate 2.14 knows specs up to 3.3.0 only: the 3.4.0 config must be the 3.3.0
    // one (which it validates) but for the version.
    v34["ignition"]["version"] = json!("3.3.0");
    assert_eq!(v34, read_config(dir.path(), "v33"));
    ignition_validate(&dir.path().join("ignition/v33.ign"));
    let (parsed, warnings) = ignition_config::Config::parse_slice(
        &fs::read(dir.path().join("ignition/v34.ign")).unwrap(),
    )
    .unwrap();
    assert!(matches!(parsed, ignition_config::Config::V3_4(_)) && warnings.is_empty());
    fs::remove_file(dir.path().join("ignition/v34.ign")).unwrap();
}

#[test]
fn bad_flags_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["--template", "ssh", "--id", "../x"],
        vec!["--template", "ssh", "--id", "x", "--spec", "2.4"],
        vec!["--template", "ssh", "--id", "x", "--var", "novalue"],
        vec![
            "--template",
            "ssh",
            "--id",
            "x",
            "--var",
            "a=1",
            "--var",
            "a=2",
        ],
        vec!["--template", "./missing.yaml.tera", "--id", "x"],
        vec![
            "--template",
            "ssh",
            "--id",
            "x",
            "--vars-file",
            "missing.yaml",
        ],
        vec![
            "--template",
            "ssh",
            "--id",
            "x",
            "--templates",
            "/nonexistent/dir",
        ],
    ] {
        caas_in(dir.path())
            .args(["gen", "ignition"])
            .args(&args)
            .assert()
            .code(2);
    }
    assert!(tree_state(dir.path()).is_empty());
    caas()
        .args(["gen", "ignition", "--help"])
        .assert()
        .success();
}

#[test]
fn vars_file_errors_name_the_vars_file_flag_and_its_content() {
    let dir = data_dir();
    let work = tempfile::tempdir().unwrap();
    let before = tree_state(dir.path());
    let run = |vars_file: &Path| {
        caas_in(dir.path())
            .args(["gen", "ignition", "--template", "ssh", "--id", "x"])
            .arg("--vars-file")
            .arg(vars_file)
            .assert()
            .code(2)
            .get_output()
            .stderr
            .clone()
    };

    let missing = work.path().join("missing.yaml");
    let stderr = run(&missing);
    assert_one_line_error(
        &stderr,
        &format!("--vars-file {}: no such file", missing.display()),
    );
    assert!(!String::from_utf8_lossy(&stderr).contains("--metadata-file"));

    let list = work.path().join("list.yaml");
    fs::write(&list, "- a\n- b\n").unwrap();
    let stderr = run(&list);
    assert_one_line_error(&stderr, "list.yaml: variables must be an object");
    assert!(!String::from_utf8_lossy(&stderr).contains("metadata"));

    let bad = work.path().join("bad.yaml");
    fs::write(&bad, "a: [1 2\nb: c\n").unwrap();
    let stderr = String::from_utf8_lossy(&run(&bad)).into_owned();
    assert!(
        stderr.starts_with(&format!("error: {} line ", bad.display())),
        "{stderr}"
    );
    assert_eq!(stderr.matches("error:").count(), 1, "{stderr}");
    assert!(!stderr.contains("-->"), "no source snippet: {stderr}");

    assert_eq!(tree_state(dir.path()), before);
}

#[test]
fn the_discovery_template_embeds_the_api_ca_and_passes_it_to_discover() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_pem = params.self_signed(&key).unwrap().pem();
    let vars = dir.path().join("vars.json");
    let write_vars = |ca: &str| {
        fs::write(
            &vars,
            serde_json::to_vec(&json!({
                "matchbox_url": "http://matchbox.lab:8080",
                "api_url": "https://caas.lab:5000",
                "api_ca_cert": ca,
            }))
            .unwrap(),
        )
        .unwrap();
    };
    write_vars(&ca_pem);
    let data = dir.path().join("data");
    caas_in(&data)
        .args(["gen", "ignition", "--template", "discovery", "--id", "d"])
        .arg("--vars-file")
        .arg(&vars)
        .assert()
        .success();
    ignition_validate(&data.join("ignition/d.ign"));
    let config = read_config(&data, "d");
    let unit = config["systemd"]["units"][0]["contents"].as_str().unwrap();
    assert!(
        unit.contains("Environment=CAAS_API_CA_CERT=/etc/caas/api-ca.pem\n"),
        "{unit}"
    );
    let files = config["storage"]["files"].as_array().unwrap();
    let ca_file = files
        .iter()
        .find(|f| f["path"] == "/etc/caas/api-ca.pem")
        .expect("the CA file is in the config");
    let source = ca_file["contents"]["source"].as_str().unwrap();
    let decoded = percent_encoding::percent_decode_str(source.strip_prefix("data:,").unwrap())
        .decode_utf8()
        .unwrap();
    assert_eq!(decoded, ca_pem);
    let script = files[0]["contents"]["source"].as_str().unwrap();
    let script = percent_encoding::percent_decode_str(script.strip_prefix("data:,").unwrap())
        .decode_utf8()
        .unwrap();
    assert!(
        script.contains(r#"ca=(--ca-cert "$CAAS_API_CA_CERT")"#)
            && script.contains(r#"discover --api "$CAAS_API_URL" "${ca[@]}""#),
        "{script}"
    );

    // A private key given as the CA certificate is refused: it would be served to anyone.
    write_vars(&format!("{ca_pem}{}", key.serialize_pem()));
    let before = tree_state(&data);
    let out = caas_in(&data)
        .args(["gen", "ignition", "--template", "discovery", "--id", "d2"])
        .arg("--vars-file")
        .arg(&vars)
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert_one_line_error(&out.stderr, "api_ca_cert holds a private key");
    assert_eq!(tree_state(&data), before);
}

#[test]
fn a_secret_in_a_generated_config_is_warned_about_and_still_written() {
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let path = template(
        &work,
        "tls.yaml.tera",
        "storage:\n  files:\n    - path: /etc/ssl/server.key\n      mode: 0600\n      contents:\n        source: {{ key | data_url }}\n",
    );
    let key = rcgen::KeyPair::generate().unwrap().serialize_pem();
    let vars = work.path().join("vars.json");
    fs::write(&vars, serde_json::to_vec(&json!({"key": key})).unwrap()).unwrap();
    let out = caas_in(dir.path())
        .args(["gen", "ignition", "--id", "tls", "--template"])
        .arg(&path)
        .arg("--vars-file")
        .arg(&vars)
        .assert()
        .success()
        .get_output()
        .clone();
    let written = dir.path().join("ignition/tls.ign");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "warning: {}: a PEM private key in /etc/ssl/server.key in a config anyone on the \
             network can read (matchbox serves it over plain HTTP unless run with -web-ssl): \
             serve matchbox over https, or deliver the secret another way\n",
            written.display()
        )
    );
    ignition_validate(&written);

    // SSH public keys are not secrets: the built-in ssh template warns about nothing.
    let out = caas_in(dir.path())
        .args(["gen", "ignition", "--template", "ssh", "--id", "ssh"])
        .args([
            "--var",
            "ssh_authorized_keys=ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA key@lab",
        ])
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
