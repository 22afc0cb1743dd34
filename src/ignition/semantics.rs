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

/// Checks a typed config already written as JSON; the error names the field.
pub fn check(config: &Value) -> Result<(), String> {
    let storage = &config["storage"];
    let mut paths = HashSet::new();
    for kind in ["files", "directories", "links"] {
        for (i, node) in items(&storage[kind]).enumerate() {
            let at = format!("storage.{kind}.{i}");
            let path = node["path"].as_str().unwrap_or_default();
            if !path.starts_with('/') {
                return Err(format!("{at}.path {path:?} is not an absolute path"));
            }
            let normal = path.trim_end_matches('/');
            if !paths.insert(normal.to_owned()) {
                return Err(format!("{at}.path {path:?} is given more than once"));
            }
            if let Some(mode) = node["mode"].as_i64()
                && !(0..=0o7777).contains(&mode)
            {
                return Err(format!("{at}.mode {mode} is not a file mode (0 to 0o7777)"));
            }
            check_resource(&node["contents"], &format!("{at}.contents"))?;
            for (j, append) in items(&node["append"]).enumerate() {
                check_resource(append, &format!("{at}.append.{j}"))?;
            }
        }
    }
    for (i, link) in items(&storage["links"]).enumerate() {
        if link["target"].as_str().is_none_or(str::is_empty) {
            return Err(format!("storage.links.{i}.target is missing"));
        }
    }

    let mut units = HashSet::new();
    for (i, unit) in items(&config["systemd"]["units"]).enumerate() {
        let name = unit["name"].as_str().unwrap_or_default();
        if !UNIT_SUFFIXES
            .iter()
            .any(|s| name.ends_with(s) && name.len() > s.len())
            || name.contains('/')
        {
            return Err(format!(
                "systemd.units.{i}.name {name:?} is not a unit name (like example.service)"
            ));
        }
        if !units.insert(name) {
            return Err(format!(
                "systemd.units.{i}.name {name:?} is given more than once"
            ));
        }
        let mut dropins = HashSet::new();
        for (j, dropin) in items(&unit["dropins"]).enumerate() {
            let dropin_name = dropin["name"].as_str().unwrap_or_default();
            if !dropin_name.ends_with(".conf") || dropin_name.contains('/') {
                return Err(format!(
                    "systemd.units.{i}.dropins.{j}.name {dropin_name:?} must be a file name \
                     ending in .conf"
                ));
            }
            if !dropins.insert(dropin_name) {
                return Err(format!(
                    "systemd.units.{i}.dropins.{j}.name {dropin_name:?} is given more than once"
                ));
            }
        }
    }

    let mut users = HashSet::new();
    for (i, user) in items(&config["passwd"]["users"]).enumerate() {
        let name = user["name"].as_str().unwrap_or_default();
        if name.is_empty() {
            return Err(format!("passwd.users.{i}.name is empty"));
        }
        if !users.insert(name) {
            return Err(format!(
                "passwd.users.{i}.name {name:?} is given more than once"
            ));
        }
    }
    Ok(())
}

fn items(value: &Value) -> impl Iterator<Item = &Value> {
    value.as_array().into_iter().flatten()
}

fn check_resource(resource: &Value, at: &str) -> Result<(), String> {
    if let Some(source) = resource["source"].as_str() {
        let scheme = source.split_once(':').map(|(scheme, _)| scheme);
        if !scheme.is_some_and(|scheme| SCHEMES.contains(&scheme)) {
            return Err(format!(
                "{at}.source {:?} is not a URL Ignition fetches ({})",
                truncate(source),
                SCHEMES.join(", ")
            ));
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
            return Err(format!(
                "{at}.verification.hash {:?} is not sha512-<128 hex digits> or sha256-<64 hex digits>",
                truncate(hash)
            ));
        }
    }
    Ok(())
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
                json!({"storage": {"files": [{"path": "/x"}], "directories": [{"path": "/x/"}]}}),
                "more than once",
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
