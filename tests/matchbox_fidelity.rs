//! caas reads data directories byte for byte as matchbox does (Go's `encoding/json` and its
//! file store): each case is asked of the real matchbox v0.8.3 and `caas explain` (and `caas
//! lint` where it matters) must agree with what the server answers.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

use common::caas_in;
use common::matchbox::Matchbox;
use serde_json::Value;

const PROFILE_A: &str = r#"{"id": "a", "boot": {"kernel": "/a/vmlinuz", "args": ["from=a"]}}"#;
const PROFILE_B: &str = r#"{"id": "b", "boot": {"kernel": "/b/vmlinuz", "args": ["from=b"]}}"#;

/// A data directory from (path, bytes) pairs; paths are bytes too, to write names that are
/// not UTF-8.
fn data_dir(files: &[(&[u8], &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["groups", "profiles", "ignition"] {
        fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    for (rel, bytes) in files {
        let path = dir.path().join(OsStr::from_bytes(rel));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }
    dir
}

fn explain(dir: &Path, mac: &str) -> Value {
    let output = caas_in(dir)
        .args([
            "explain",
            "--target",
            "matchbox-0.8",
            "--format",
            "json",
            "--mac",
            mac,
        ])
        .output()
        .unwrap();
    serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!("{err}: {}", String::from_utf8_lossy(&output.stderr));
    })
}

/// Asks matchbox and caas for the `/ipxe` script of `mac`, asserts they agree, returns it
/// (`None` for a 404) with caas's report.
fn agree(server: &Matchbox, dir: &Path, mac: &str) -> (Option<String>, Value) {
    let served = server.ipxe(&format!("mac={mac}"));
    let report = explain(dir, mac);
    assert_eq!(
        report["ipxe"].as_str(),
        served.as_deref(),
        "caas explain and matchbox disagree for {mac}: {report:#}"
    );
    (served, report)
}

fn lint(dir: &Path) -> Vec<Value> {
    let output = common::caas()
        .args(["-q", "lint", "--target", "matchbox-0.8", "--format", "json"])
        .arg(dir)
        .output()
        .unwrap();
    serde_json::from_slice::<Value>(&output.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn script(kernel: &str, args: &str) -> String {
    format!("#!ipxe\nkernel {kernel} {args}\nboot\n")
}

#[test]
fn the_last_of_two_keys_for_one_field_wins() {
    let dir = data_dir(&[
        (b"profiles/a.json", PROFILE_A.as_bytes()),
        (b"profiles/b.json", PROFILE_B.as_bytes()),
        (
            b"groups/g.json",
            br#"{"id": "g", "profile": "a", "Profile": "b", "selector": {"mac": "52:54:00:00:00:01"}}"#,
        ),
        (
            b"groups/h.json",
            br#"{"id": "h", "PROFILE": "b", "profile": "a", "selector": {"mac": "52:54:00:00:00:02"}}"#,
        ),
    ]);
    let server = Matchbox::start(dir.path());
    let (served, report) = agree(&server, dir.path(), "52:54:00:00:00:01");
    assert_eq!(served.unwrap(), script("/b/vmlinuz", "from=b"));
    assert_eq!(report["group"]["profile"], "b");
    let (served, report) = agree(&server, dir.path(), "52:54:00:00:00:02");
    assert_eq!(served.unwrap(), script("/a/vmlinuz", "from=a"));
    assert_eq!(report["group"]["profile"], "a");
}

#[test]
fn two_selector_objects_merge() {
    // Merged, the group needs both labels: a machine sending only the MAC falls through to the
    // default group.
    let dir = data_dir(&[
        (b"profiles/a.json", PROFILE_A.as_bytes()),
        (b"profiles/b.json", PROFILE_B.as_bytes()),
        (
            b"groups/g.json",
            br#"{"id": "g", "profile": "b", "selector": {"mac": "52:54:00:00:00:01"}, "Selector": {"os": "installed"}}"#,
        ),
        (b"groups/default.json", br#"{"id": "default", "profile": "a"}"#),
    ]);
    let server = Matchbox::start(dir.path());
    let (served, report) = agree(&server, dir.path(), "52:54:00:00:00:01");
    assert_eq!(served.unwrap(), script("/a/vmlinuz", "from=a"));
    assert_eq!(report["group"]["id"], "default");
    let query = "mac=52:54:00:00:00:01&os=installed";
    let served = server.ipxe(query).unwrap();
    assert_eq!(served, script("/b/vmlinuz", "from=b"));
    let output = caas_in(dir.path())
        .args(["explain", "--target", "matchbox-0.8", "--format", "json"])
        .args(["--mac", "52:54:00:00:00:01", "os=installed"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["ipxe"].as_str(), Some(served.as_str()), "{report:#}");
    assert_eq!(
        report["group"]["selector"],
        serde_json::json!({"mac": "52:54:00:00:00:01", "os": "installed"})
    );
}

#[test]
fn boot_given_twice_merges_its_fields() {
    let dir = data_dir(&[
        (
            b"profiles/p.json",
            br#"{"id": "p", "boot": {"kernel": "/k"}, "Boot": {"args": ["console=ttyS0"]}}"#,
        ),
        (b"groups/g.json", br#"{"id": "g", "profile": "p"}"#),
    ]);
    let server = Matchbox::start(dir.path());
    let (served, _) = agree(&server, dir.path(), "52:54:00:00:00:01");
    assert_eq!(served.unwrap(), script("/k", "console=ttyS0"));
    let findings = lint(dir.path());
    assert!(
        findings
            .iter()
            .all(|f| !f["message"].as_str().unwrap().contains("no kernel")),
        "{findings:#?}"
    );
}

#[test]
fn invalid_text_in_a_group_loads_with_replacement_characters() {
    let dir = data_dir(&[
        (b"profiles/a.json", PROFILE_A.as_bytes()),
        (b"profiles/b.json", PROFILE_B.as_bytes()),
        (
            b"groups/latin1.json",
            b"{\"id\": \"l\", \"name\": \"caf\xe9\", \"profile\": \"b\", \"selector\": {\"mac\": \"52:54:00:00:00:01\"}, \"metadata\": {\"k\": \"caf\xe9\"}}",
        ),
        (
            b"groups/surrogate.json",
            br#"{"id": "s", "name": "\ud800", "profile": "b", "selector": {"mac": "52:54:00:00:00:02"}, "metadata": {"k": "x\ud800y"}}"#,
        ),
        (b"groups/default.json", br#"{"id": "default", "profile": "a"}"#),
    ]);
    let server = Matchbox::start(dir.path());
    for (mac, id, name, value) in [
        ("52:54:00:00:00:01", "l", "caf\u{fffd}", "caf\u{fffd}"),
        ("52:54:00:00:00:02", "s", "\u{fffd}", "x\u{fffd}y"),
    ] {
        let (served, report) = agree(&server, dir.path(), mac);
        assert_eq!(served.unwrap(), script("/b/vmlinuz", "from=b"));
        assert_eq!(report["group"]["id"], id);
        assert_eq!(report["group"]["name"], name);
        assert_eq!(report["skipped"], serde_json::json!([]));
        let (status, metadata) = server.get(&format!("/metadata?mac={mac}"));
        assert_eq!(status, 200);
        let metadata = String::from_utf8(metadata).unwrap();
        assert!(metadata.contains(&format!("K={value}\n")), "{metadata}");
    }
    let findings = lint(dir.path());
    assert!(
        findings
            .iter()
            .all(|f| !f["message"].as_str().unwrap().contains("skip")),
        "{findings:#?}"
    );
}

#[test]
fn a_null_group_file_is_an_empty_default_group() {
    // `a.json` lists before `default.json`: the two tie and matchbox takes the first, which
    // has no profile, so every machine gets a 404.
    let dir = data_dir(&[
        (b"profiles/a.json", PROFILE_A.as_bytes()),
        (b"groups/a.json", b"null"),
        (
            b"groups/default.json",
            br#"{"id": "default", "profile": "a"}"#,
        ),
    ]);
    let server = Matchbox::start(dir.path());
    let (served, report) = agree(&server, dir.path(), "52:54:00:00:00:01");
    assert_eq!(served, None);
    assert_eq!(report["group"]["profile"], "");
    assert!(
        report["group"]["file"]
            .as_str()
            .unwrap()
            .ends_with("a.json")
    );
    assert!(!report["tied"].as_array().unwrap().is_empty(), "{report:#}");
    assert!(report["not_found"].is_string());
    let findings = lint(dir.path());
    let about_null: Vec<&Value> = findings
        .iter()
        .filter(|f| f["path"].as_str().unwrap().ends_with("groups/a.json"))
        .collect();
    assert!(
        about_null
            .iter()
            .any(|f| f["message"].as_str().unwrap().contains("no profile")),
        "{findings:#?}"
    );
    assert!(
        about_null
            .iter()
            .all(|f| !f["message"].as_str().unwrap().contains("skip")),
        "{findings:#?}"
    );

    // Alone, the null group is the default group: still a 404, never "skipped".
    let dir = data_dir(&[
        (b"profiles/a.json", PROFILE_A.as_bytes()),
        (b"groups/n.json", b"null"),
    ]);
    let server = Matchbox::start(dir.path());
    let (served, report) = agree(&server, dir.path(), "52:54:00:00:00:01");
    assert_eq!(served, None);
    assert_eq!(report["skipped"], serde_json::json!([]));
}

#[test]
fn a_group_file_name_that_is_not_utf8_is_read() {
    let dir = data_dir(&[
        (b"profiles/a.json", PROFILE_A.as_bytes()),
        (b"profiles/b.json", PROFILE_B.as_bytes()),
        (
            b"groups/caf\xe9.json",
            br#"{"id": "g", "profile": "b", "selector": {"mac": "52:54:00:00:00:01"}}"#,
        ),
        (
            b"groups/default.json",
            br#"{"id": "default", "profile": "a"}"#,
        ),
    ]);
    let server = Matchbox::start(dir.path());
    let (served, report) = agree(&server, dir.path(), "52:54:00:00:00:01");
    assert_eq!(served.unwrap(), script("/b/vmlinuz", "from=b"));
    assert_eq!(report["group"]["id"], "g");
    assert!(
        report["group"]["file"]
            .as_str()
            .unwrap()
            .contains("caf\u{fffd}.json"),
        "{report:#}"
    );
    let findings = lint(dir.path());
    assert!(
        findings
            .iter()
            .all(|f| !f["message"].as_str().unwrap().contains("no such file")),
        "{findings:#?}"
    );
}

/// A small deterministic generator (xorshift), so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

#[test]
fn groups_written_every_which_way_agree_with_matchbox() {
    let mut rng = Rng(0x5eed_caa5);
    let mut files: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"profiles/a.json".to_vec(), PROFILE_A.as_bytes().to_vec()),
        (b"profiles/b.json".to_vec(), PROFILE_B.as_bytes().to_vec()),
        (
            b"profiles/c.json".to_vec(),
            br#"{"id": "c", "boot": {"kernel": "/c", "args": ["one"]}, "BOOT": {"args": ["two"], "initrd": ["/i"]}, "boot": {"kernel": null}}"#.to_vec(),
        ),
        (
            b"groups/default.json".to_vec(),
            br#"{"id": "default", "profile": "a"}"#.to_vec(),
        ),
    ];
    let mut macs = Vec::new();
    for i in 0..40 {
        let mac = format!("52:54:00:00:01:{i:02x}");
        let mut pairs: Vec<Vec<u8>> = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let key = rng.pick(&["profile", "Profile", "PROFILE", "pRoFiLe"]);
            let value = rng.pick(&["\"a\"", "\"b\"", "\"c\"", "\"nope\"", "null"]);
            pairs.push(format!("\"{key}\": {value}").into_bytes());
        }
        let name: &[u8] = match rng.below(4) {
            0 => b"\"caf\xe9\"",
            1 => br#""\ud800\udc00\udfff""#,
            2 => b"\"\xe9\x80\xff\"",
            _ => b"\"plain\"",
        };
        pairs.push([b"\"name\": ".as_slice(), name].concat());
        let mac_in_second = rng.below(2) == 1;
        let extra = rng.pick(&["", ", \"os\": \"x\"", ", \"region\": \"\""]);
        let first = if mac_in_second {
            format!("{{\"rack\": \"\"{extra}}}")
        } else {
            format!("{{\"mac\": \"{mac}\"{extra}}}")
        };
        pairs.push(format!("\"selector\": {first}").into_bytes());
        if mac_in_second || rng.below(2) == 1 {
            let key = rng.pick(&["selector", "Selector", "SELECTOR"]);
            pairs.push(format!("\"{key}\": {{\"mac\": \"{mac}\"}}").into_bytes());
        }
        for _ in 0..rng.below(3) {
            let j = rng.below(pairs.len());
            let k = rng.below(pairs.len());
            pairs.swap(j, k);
        }
        let body = [b"{".as_slice(), &pairs.join(b", ".as_slice()), b"}"].concat();
        files.push((format!("groups/g{i:02}.json").into_bytes(), body));
        macs.push(mac);
    }
    let borrowed: Vec<(&[u8], &[u8])> = files
        .iter()
        .map(|(path, body)| (path.as_slice(), body.as_slice()))
        .collect();
    let dir = data_dir(&borrowed);
    let server = Matchbox::start(dir.path());
    let mut served = std::collections::BTreeSet::new();
    for mac in &macs {
        let (script, _) = agree(&server, dir.path(), mac);
        served.insert(script);
    }
    // The cases are not all alike: several scripts and 404s come out.
    assert!(served.len() >= 3, "{served:?}");
}

fn explain_args(dir: &Path, args: &[&str]) -> Value {
    let output = caas_in(dir)
        .args(["explain", "--target", "matchbox-0.8", "--format", "json"])
        .args(args)
        .output()
        .unwrap();
    serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!("{err}: {}", String::from_utf8_lossy(&output.stderr));
    })
}

/// A profile `id` serving `ignition_id`, and a group sending machines with `os=<id>` to it.
fn config_case(id: &str, ignition_id: &str) -> [(Vec<u8>, Vec<u8>); 2] {
    [
        (
            format!("profiles/{id}.json").into_bytes(),
            format!(r#"{{"id": "{id}", "boot": {{"kernel": "/k"}}, "ignition_id": "{ignition_id}"}}"#)
                .into_bytes(),
        ),
        (
            format!("groups/{id}.json").into_bytes(),
            format!(
                r#"{{"id": "{id}", "profile": "{id}", "selector": {{"os": "{id}"}}, "metadata": {{"hostname": "node-{id}"}}}}"#
            )
            .into_bytes(),
        ),
    ]
}

fn owned_dir(files: &[(Vec<u8>, Vec<u8>)]) -> tempfile::TempDir {
    let borrowed: Vec<(&[u8], &[u8])> = files
        .iter()
        .map(|(path, body)| (path.as_slice(), body.as_slice()))
        .collect();
    data_dir(&borrowed)
}

const CLC_NO_FILESYSTEM: &str = "storage:\n  files:\n    - path: /etc/hostname\n      contents:\n        inline: \"{{.hostname}}\"\n";
const CLC_GOOD: &str = "storage:\n  files:\n    - filesystem: root\n      path: /etc/hostname\n      mode: 0644\n      contents:\n        inline: \"{{.hostname}}\"\nsystemd:\n  units:\n    - name: hello.service\n      enable: true\n      contents: |\n        [Service]\n        ExecStart=/usr/bin/echo hello\n        [Install]\n        WantedBy=multi-user.target\n";
const BUTANE: &str = "variant: flatcar\nversion: 1.0.0\nstorage:\n  files:\n    - path: /etc/hostname\n      mode: 0644\n      contents:\n        inline: \"{{.hostname}}\"\nsystemd:\n  units:\n    - name: hello.service\n      enabled: true\n      contents: |\n        [Unit]\n        Description=Hello\n        [Service]\n        ExecStart=/usr/bin/echo hello\n        [Install]\n        WantedBy=multi-user.target\n";
const IGNITION_2_JSON: &str = r#"{"ignition": {"version": "2.2.0"}, "storage": {"files": [{"filesystem": "root", "path": "/etc/hostname", "mode": 420, "contents": {"source": "data:,node1"}}]}}"#;
const IGNITION_3_JSON: &str = r#"{"ignition": {"version": "3.3.0"}, "storage": {"files": [{"path": "/etc/hostname", "mode": 420, "contents": {"source": "data:,node1"}}]}}"#;
const CLC_ETCD: &str = "etcd:\n  name: \"{{.hostname}}\"\n";

#[test]
fn container_linux_config_templates_as_the_transpiler_reads_them() {
    let cases: [(&str, &str, &str, u16, Option<bool>); 6] = [
        ("nofs", "nofs.yaml", CLC_NO_FILESYSTEM, 404, Some(false)),
        ("good", "good.yaml", CLC_GOOD, 200, Some(true)),
        ("butane", "butane.yaml", BUTANE, 404, Some(false)),
        ("ign2", "node.json", IGNITION_2_JSON, 200, Some(false)),
        ("ign3", "node3.json", IGNITION_3_JSON, 404, Some(false)),
        ("etcd", "etcd.yaml", CLC_ETCD, 200, None),
    ];
    let mut files = Vec::new();
    for (id, name, text, _, _) in &cases {
        files.extend(config_case(id, name));
        files.push((
            format!("ignition/{name}").into_bytes(),
            text.as_bytes().to_vec(),
        ));
    }
    let dir = owned_dir(&files);
    let server = Matchbox::start(dir.path());
    for (id, name, _, status, ok) in &cases {
        let (served, body) = server.get(&format!("/ignition?os={id}"));
        assert_eq!(
            served,
            *status,
            "{name}: {}",
            String::from_utf8_lossy(&body)
        );
        let report = explain_args(dir.path(), &[&format!("os={id}")]);
        assert_eq!(
            report["ignition"]["ok"].as_bool(),
            *ok,
            "{name}: {report:#}"
        );
        if *status == 404 {
            assert!(
                report["ignition"]["served"]
                    .as_str()
                    .unwrap()
                    .contains("404"),
                "{name}: {report:#}"
            );
        }
    }
    // What the 200 of raw Ignition 2.2 JSON read as a Container Linux Config carries: the
    // file, without its contents (`contents.source` is no Container Linux Config key).
    let (_, body) = server.get("/ignition?os=ign2");
    let served: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        served["storage"]["files"][0]["contents"]["source"],
        "data:,"
    );
    let (_, body) = server.get("/ignition?os=good");
    let served: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        served["storage"]["files"][0]["contents"]["source"],
        "data:,node-good"
    );

    let findings = lint(dir.path());
    let at = |name: &str| -> Vec<(String, String)> {
        findings
            .iter()
            .filter(|f| {
                f["path"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!("ignition/{name}"))
            })
            .map(|f| {
                (
                    f["code"].as_str().unwrap().to_owned(),
                    f["severity"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let has = |name: &str, code: &str, severity: &str| {
        assert!(
            at(name).contains(&(code.to_owned(), severity.to_owned())),
            "{name}: {code} {severity}: {findings:#?}"
        );
    };
    has("nofs.yaml", "template-invalid", "error");
    has("butane.yaml", "template-invalid", "error");
    has("node.json", "template-invalid", "error");
    has("node3.json", "template-invalid", "error");
    has("etcd.yaml", "template-unverified", "warning");
    assert_eq!(at("good.yaml"), vec![], "{findings:#?}");
    // The position matchbox logs: "error at line 3, column 7 / no filesystem specified".
    let nofs = findings
        .iter()
        .find(|f| f["path"].as_str().unwrap().ends_with("nofs.yaml"))
        .unwrap();
    assert_eq!(
        (nofs["line"].as_u64(), nofs["column"].as_u64()),
        (Some(3), Some(7))
    );
    assert!(
        nofs["message"]
            .as_str()
            .unwrap()
            .contains("no filesystem specified")
    );
}

#[test]
fn a_semicolon_in_an_ignition_url_drops_that_query_pair() {
    // The installed system's URL glues its labels with `;`: matchbox (Go 1.17 and later) drops
    // the whole pair, selects with no labels, finds no group and answers 404.
    let dir = data_dir(&[
        (
            b"profiles/semi.json",
            br#"{"id": "semi", "boot": {"kernel": "/k", "args": ["flatcar.first_boot=yes", "flatcar.config.url=http://matchbox.lab:8080/ignition?mac=${mac:hexhyp};os=installed"]}, "ignition_id": "semi.ign"}"#,
        ),
        (b"ignition/semi.ign", br#"{"ignition": {"version": "3.3.0"}}"#),
        (
            b"groups/boot.json",
            br#"{"id": "boot", "profile": "semi", "selector": {"mac": "52:54:00:00:00:01"}}"#,
        ),
        (
            b"groups/installed.json",
            br#"{"id": "installed", "profile": "semi", "selector": {"mac": "52:54:00:00:00:01", "os": "installed"}}"#,
        ),
    ]);
    let server = Matchbox::start(dir.path());
    let (_, report) = agree(&server, dir.path(), "52:54:00:00:00:01");
    let url = report["ignition"]["url"].as_str().unwrap();
    let path = url.strip_prefix("http://matchbox.lab:8080").unwrap();
    assert_eq!(path, "/ignition?mac=52-54-00-00-00-01;os=installed");
    assert_eq!(server.get(path).0, 404);
    assert_eq!(report["ignition"]["ok"], false, "{report:#}");
    let served = report["ignition"]["served"].as_str().unwrap();
    assert!(served.contains("404") && served.contains(';'), "{served}");
    // Written with `&`, the same labels select the installed group.
    assert_eq!(
        server.get("/ignition?mac=52-54-00-00-00-01&os=installed").0,
        200
    );
    let findings = lint(dir.path());
    assert!(
        findings.iter().any(|f| f["code"] == "ignition-url-labels"
            && f["severity"] == "error"
            && f["message"].as_str().unwrap().contains("contains `;`")),
        "{findings:#?}"
    );
}

#[test]
fn a_profile_in_a_subdirectory_is_served_by_its_path() {
    let dir = data_dir(&[
        (
            b"profiles/sub/p.json",
            br#"{"id": "sub/p", "boot": {"kernel": "/sub/k", "args": ["a=1"]}}"#,
        ),
        (b"groups/g.json", br#"{"id": "g", "profile": "sub/p"}"#),
    ]);
    let server = Matchbox::start(dir.path());
    let (served, _) = agree(&server, dir.path(), "52:54:00:00:00:01");
    assert_eq!(served.unwrap(), script("/sub/k", "a=1"));
    let findings = lint(dir.path());
    assert_eq!(findings, Vec::<Value>::new());
    // A subdirectory no group names a profile in is still reported, truthfully.
    fs::create_dir(dir.path().join("profiles/other")).unwrap();
    let findings = lint(dir.path());
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let message = findings[0]["message"].as_str().unwrap();
    assert!(message.contains("no group uses"), "{message}");
    assert!(!message.contains("does not look inside"), "{message}");
}

#[test]
fn a_profile_without_a_kernel_gets_an_empty_kernel_line() {
    let dir = data_dir(&[
        (
            b"profiles/p.json",
            br#"{"id": "p", "boot": {"args": ["x=1"]}}"#,
        ),
        (b"groups/g.json", br#"{"id": "g", "profile": "p"}"#),
    ]);
    let server = Matchbox::start(dir.path());
    let (served, _) = agree(&server, dir.path(), "52:54:00:00:00:01");
    assert_eq!(served.unwrap(), "#!ipxe\nkernel  x=1\nboot\n");
    let findings = lint(dir.path());
    let boot = findings
        .iter()
        .find(|f| f["code"] == "missing-boot")
        .expect("missing-boot");
    assert!(
        !boot["message"].as_str().unwrap().contains("404"),
        "{boot:#}"
    );
}

fn codes_at(findings: &[Value], file: &str) -> Vec<String> {
    findings
        .iter()
        .filter(|f| f["path"].as_str().unwrap().ends_with(file))
        .map(|f| f["code"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn selectors_in_a_case_ipxe_never_sends_never_match() {
    // iPXE's chain sends lower-case label names and `${uuid}` in lower case.
    let uuid = "1c2d3e4f-0000-4000-8000-00000000abcd";
    let dir = data_dir(&[
        (b"profiles/a.json", PROFILE_A.as_bytes()),
        (b"profiles/b.json", PROFILE_B.as_bytes()),
        (
            b"groups/upper-uuid.json",
            format!(
                r#"{{"id": "u", "profile": "b", "selector": {{"uuid": "{}"}}}}"#,
                uuid.to_uppercase()
            )
            .as_bytes(),
        ),
        (
            b"groups/upper-key.json",
            br#"{"id": "k", "profile": "b", "selector": {"MAC": "52:54:00:00:00:02"}}"#,
        ),
        (
            b"groups/default.json",
            br#"{"id": "default", "profile": "a"}"#,
        ),
    ]);
    let server = Matchbox::start(dir.path());
    let query = format!("uuid={uuid}&mac=52-54-00-00-00-02");
    let served = server.ipxe(&query).unwrap();
    assert_eq!(served, script("/a/vmlinuz", "from=a"));
    let report = explain_args(dir.path(), &["--uuid", uuid, "--mac", "52:54:00:00:00:02"]);
    assert_eq!(report["ipxe"].as_str(), Some(served.as_str()), "{report:#}");
    assert_eq!(report["group"]["id"], "default");
    let findings = lint(dir.path());
    for file in ["upper-uuid.json", "upper-key.json"] {
        let codes = codes_at(&findings, file);
        assert!(
            codes.contains(&"selector-case".to_owned()),
            "{file}: {findings:#?}"
        );
    }

    // `caas gen group` writes the uuid as iPXE sends it.
    let output = caas_in(dir.path())
        .args(["gen", "group", "--id", "gen", "--profile", "b"])
        .args(["--selector", &format!("uuid={}", uuid.to_uppercase())])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let written: Value =
        serde_json::from_slice(&fs::read(dir.path().join("groups/gen.json")).unwrap()).unwrap();
    assert_eq!(written["selector"]["uuid"], uuid);
}

#[test]
fn metadata_comes_out_as_go_prints_it() {
    let dir = data_dir(&[
        (
            b"profiles/p.json",
            br#"{"id": "p", "boot": {"kernel": "/k"}, "ignition_id": "t.yaml"}"#,
        ),
        (
            b"ignition/t.yaml",
            b"storage:\n  files:\n    - filesystem: root\n      path: /etc/big\n      mode: 0644\n      contents:\n        inline: \"{{.big}}\"\n",
        ),
        (
            b"groups/g.json",
            br#"{"id": "g", "profile": "p", "selector": {"mac": "52:54:00:00:00:01"}, "metadata": {"big": 1000000, "huge": 4200000001, "small": 999999, "list": [1, 2], "request": "mine", "k": "a", "K": "b", "nested": {"n": 2000000}}}"#,
        ),
        (b"profiles/q.json", br#"{"id": "q", "boot": {"kernel": "/k"}}"#),
        (
            b"groups/h.json",
            br#"{"id": "h", "profile": "q", "selector": {"mac": "52:54:00:00:00:02"}, "metadata": {"keys": ["a", "b"], "one": "x"}}"#,
        ),
    ]);
    let server = Matchbox::start(dir.path());
    let (status, body) = server.get("/metadata?mac=52:54:00:00:00:01");
    assert_eq!(status, 200);
    let body = String::from_utf8(body).unwrap();
    let mut lines: Vec<&str> = body.lines().collect();
    lines.sort();
    for line in [
        "BIG=1e+06",
        "HUGE=4.200000001e+09",
        "SMALL=999999",
        "NESTED_N=2e+06",
    ] {
        assert!(lines.contains(&line), "{line}: {body}");
    }
    assert!(!body.contains("LIST"), "{body}");
    assert!(!body.contains("mine"), "{body}");
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("K=")).count(),
        2,
        "{body}"
    );
    let (status, body) = server.get("/ignition?mac=52:54:00:00:00:01");
    assert_eq!(status, 200);
    let ignition: Value = serde_json::from_slice(&body).unwrap();
    let source = ignition["storage"]["files"][0]["contents"]["source"]
        .as_str()
        .unwrap();
    assert!(source.starts_with("data:,1e"), "{source}");

    let findings = lint(dir.path());
    let messages: Vec<&str> = findings
        .iter()
        .filter(|f| f["code"] == "metadata-render")
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    for needle in [
        "1e+06",
        "4.200000001e+09",
        "nested.n",
        "\"request\"",
        "differ only in case",
    ] {
        assert!(
            messages.iter().any(|m| m.contains(needle)),
            "{needle}: {messages:#?}"
        );
    }
    assert!(
        messages.iter().all(|m| !m.contains("999999")),
        "{messages:#?}"
    );
    // g's list reaches its template; h's can only reach /metadata, which leaves it out.
    assert_eq!(messages.len(), 6, "{messages:#?}");
    assert!(
        messages
            .iter()
            .any(|m| m.contains("metadata keys is a list")),
        "{messages:#?}"
    );
    let (_, body) = server.get("/metadata?mac=52:54:00:00:00:02");
    assert_eq!(
        String::from_utf8(body)
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("KEYS"))
            .count(),
        0
    );
}

#[test]
fn a_newline_in_a_kernel_argument_runs_as_an_ipxe_command() {
    let dir = data_dir(&[
        (
            b"profiles/p.json",
            br#"{"id": "p", "boot": {"kernel": "/k", "args": ["a=1\nshell", "b=2"]}}"#,
        ),
        (b"groups/g.json", br#"{"id": "g", "profile": "p"}"#),
    ]);
    let server = Matchbox::start(dir.path());
    let (served, _) = agree(&server, dir.path(), "52:54:00:00:00:01");
    // The script gains a line of its own: iPXE runs `shell b=2`.
    assert_eq!(served.unwrap(), "#!ipxe\nkernel /k a=1\nshell b=2\nboot\n");
    let findings = lint(dir.path());
    assert!(
        findings
            .iter()
            .any(|f| f["code"] == "ipxe-command" && f["severity"] == "error"),
        "{findings:#?}"
    );
}
