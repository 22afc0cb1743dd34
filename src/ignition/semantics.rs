//! Checks Ignition makes at boot that the typed structs cannot express, so a config that would
//! fail on the machine fails at generation instead: absolute and distinct paths, unit and
//! drop-in names, modes, hash formats, source URL schemes, distinct users.
//!
//! It is not a replacement for `ignition-validate` (the tests run that on every config caas
//! writes); it catches the mistakes a template author makes most.

use std::collections::HashSet;

use serde_json::Value;

const UNIT_SUFFIXES: &[&str] = &[
    ".service",
    ".socket",
    ".target",
    ".timer",
    ".mount",
    ".automount",
    ".path",
    ".slice",
    ".scope",
    ".device",
    ".swap",
];

const SCHEMES: &[&str] = &["data", "http", "https", "tftp", "s3", "gs", "arn"];

/// One thing Ignition refuses: the dotted path of the field (`storage.files.0.path`) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    pub path: String,
    pub message: String,
}

/// Checks a typed config already written as JSON; the error names the field (the first
/// problem). Stricter than Ignition where a config it accepts does nothing useful: a unit
/// name with a `/` (systemd never loads `a/b.service`).
pub fn check(config: &Value) -> Result<(), String> {
    match all_issues(config, true).into_iter().next() {
        Some(issue) => Err(issue.message),
        None => Ok(()),
    }
}

/// Every problem of a spec 3.x config that Ignition (and `ignition-validate`) refuses, in
/// document order of the sections.
pub fn issues(config: &Value) -> Vec<Issue> {
    all_issues(config, false)
}

fn all_issues(config: &Value, strict: bool) -> Vec<Issue> {
    let mut out = Issues(Vec::new());
    storage_issues(&config["storage"], &mut out);
    unit_issues(&config["systemd"]["units"], strict, &mut out);
    user_issues(&config["passwd"]["users"], &mut out);
    out.0
}

struct Issues(Vec<Issue>);

impl Issues {
    fn push(&mut self, path: String, message: String) {
        self.0.push(Issue { path, message });
    }
}

fn storage_issues(storage: &Value, out: &mut Issues) {
    let mut paths = HashSet::new();
    for kind in ["files", "directories", "links"] {
        for (i, node) in items(&storage[kind]).enumerate() {
            let at = format!("storage.{kind}.{i}");
            let path = node["path"].as_str().unwrap_or_default();
            if !path.starts_with('/') {
                out.push(
                    format!("{at}.path"),
                    format!("{at}.path {path:?} is not an absolute path"),
                );
            }
            if path.starts_with('/') && !is_simplified(path) {
                out.push(
                    format!("{at}.path"),
                    format!(
                        "{at}.path {path:?} is not fully simplified (no `//`, `.`, `..` or trailing `/`)"
                    ),
                );
            }
            if !paths.insert(path.to_owned()) {
                // Ignition points at the repeated entry itself.
                out.push(
                    at.clone(),
                    format!("{at}.path {path:?} is given more than once"),
                );
            }
            if let Some(mode) = node["mode"].as_i64()
                && !(0..=0o7777).contains(&mode)
            {
                out.push(
                    format!("{at}.mode"),
                    format!("{at}.mode {mode} is not a file mode (0 to 0o7777)"),
                );
            }
            check_resource(&node["contents"], &format!("{at}.contents"), out);
            for (j, append) in items(&node["append"]).enumerate() {
                check_resource(append, &format!("{at}.append.{j}"), out);
            }
        }
    }
    for (i, link) in items(&storage["links"]).enumerate() {
        if link["target"].as_str().is_none_or(str::is_empty) {
            out.push(
                format!("storage.links.{i}"),
                format!("storage.links.{i}.target is missing"),
            );
        }
    }
}

fn unit_issues(units: &Value, strict: bool, out: &mut Issues) {
    let mut names = HashSet::new();
    for (i, unit) in items(units).enumerate() {
        let name = unit["name"].as_str().unwrap_or_default();
        let at = format!("systemd.units.{i}.name");
        if !UNIT_SUFFIXES
            .iter()
            .any(|s| name.ends_with(s) && name.len() > s.len())
            || (strict && name.contains('/'))
        {
            out.push(
                at.clone(),
                format!("{at} {name:?} is not a unit name (like example.service)"),
            );
        }
        if !names.insert(name) {
            out.push(
                format!("systemd.units.{i}"),
                format!("{at} {name:?} is given more than once"),
            );
        }
        let mut dropins = HashSet::new();
        for (j, dropin) in items(&unit["dropins"]).enumerate() {
            let dropin_name = dropin["name"].as_str().unwrap_or_default();
            let at = format!("systemd.units.{i}.dropins.{j}.name");
            if !dropin_name.ends_with(".conf") || dropin_name.contains('/') {
                out.push(
                    at.clone(),
                    format!("{at} {dropin_name:?} must be a file name ending in .conf"),
                );
            }
            if !dropins.insert(dropin_name) {
                out.push(
                    format!("systemd.units.{i}.dropins.{j}"),
                    format!("{at} {dropin_name:?} is given more than once"),
                );
            }
        }
    }
}

fn user_issues(users: &Value, out: &mut Issues) {
    let mut names = HashSet::new();
    for (i, user) in items(users).enumerate() {
        let name = user["name"].as_str().unwrap_or_default();
        let at = format!("passwd.users.{i}.name");
        if name.is_empty() {
            out.push(at.clone(), format!("{at} is empty"));
        }
        if !names.insert(name) {
            out.push(
                format!("passwd.users.{i}"),
                format!("{at} {name:?} is given more than once"),
            );
        }
    }
}

/// Whether an absolute path is what Go's `path.Clean` makes of it.
fn is_simplified(path: &str) -> bool {
    path == "/"
        || (!path.ends_with('/')
            && path[1..]
                .split('/')
                .all(|part| !matches!(part, "" | "." | "..")))
}

fn items(value: &Value) -> impl Iterator<Item = &Value> {
    value.as_array().into_iter().flatten()
}

fn check_resource(resource: &Value, at: &str, out: &mut Issues) {
    if let Some(source) = resource["source"].as_str() {
        let scheme = source.split_once(':').map(|(scheme, _)| scheme);
        if scheme.is_some_and(|scheme| SCHEMES.contains(&scheme))
            && let Err(err) = url::Url::parse(source)
        {
            out.push(
                format!("{at}.source"),
                format!("{at}.source {:?} is not a URL: {err}", truncate(source)),
            );
        } else if !scheme.is_some_and(|scheme| SCHEMES.contains(&scheme)) {
            out.push(
                format!("{at}.source"),
                format!(
                    "{at}.source {:?} is not a URL Ignition fetches ({})",
                    truncate(source),
                    SCHEMES.join(", ")
                ),
            );
        }
    }
    if let Some(hash) = resource["verification"]["hash"].as_str() {
        let ok = match hash.split_once('-') {
            Some(("sha512", hex)) => hex.len() == 128,
            Some(("sha256", hex)) => hex.len() == 64,
            _ => false,
        } && hash.split_once('-').is_some_and(|(_, hex)| {
            hex.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        if !ok {
            out.push(
                format!("{at}.verification.hash"),
                format!(
                    "{at}.verification.hash {:?} is not sha512-<128 hex digits> or sha256-<64 hex digits>",
                    truncate(hash)
                ),
            );
        }
    }
}

fn truncate(text: &str) -> String {
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_a_plain_config() {
        let config = json!({
            "ignition": {"version": "3.3.0"},
            "storage": {"files": [{"path": "/etc/x", "mode": 420, "contents": {"source": "data:,x",
                "verification": {"hash": format!("sha512-{}", "a".repeat(128))}}}]},
            "systemd": {"units": [{"name": "a.service", "dropins": [{"name": "10-x.conf"}]}]},
            "passwd": {"users": [{"name": "core"}]}
        });
        check(&config).unwrap();
    }

    #[test]
    fn refuses_what_ignition_refuses_at_boot() {
        let cases = [
            (
                json!({"storage": {"files": [{"path": "etc/x"}]}}),
                "absolute",
            ),
            (
                json!({"storage": {"files": [{"path": "/x"}], "directories": [{"path": "/x"}]}}),
                "more than once",
            ),
            (
                json!({"storage": {"directories": [{"path": "/x/"}]}}),
                "simplified",
            ),
            (
                json!({"storage": {"files": [{"path": "/x", "mode": 4096}]}}),
                "file mode",
            ),
            (
                json!({"storage": {"files": [{"path": "/x", "contents": {"source": "ftp://h/x"}}]}}),
                "not a URL",
            ),
            (
                json!({"storage": {"files": [{"path": "/x", "contents": {"verification": {"hash": "md5-00"}}}]}}),
                "sha512",
            ),
            (
                json!({"systemd": {"units": [{"name": "caas"}]}}),
                "unit name",
            ),
            (
                json!({"systemd": {"units": [{"name": "a.service", "dropins": [{"name": "x"}]}]}}),
                ".conf",
            ),
            (
                json!({"passwd": {"users": [{"name": "core"}, {"name": "core"}]}}),
                "more than once",
            ),
        ];
        for (config, needle) in cases {
            let err = check(&config).unwrap_err();
            assert!(err.contains(needle), "{config}: {err}");
        }
    }
}
