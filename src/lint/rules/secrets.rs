//! Secrets in configs matchbox serves over plain HTTP: matchbox answers `/ignition` to any
//! client that names a machine's labels, so anyone on the provisioning network can read them.

use std::collections::BTreeMap;
use std::path::Path;

use super::{Findings, Rule};
use crate::lint::facts::{Config, Facts};
use crate::lint::{Code, Severity};
use crate::matchbox::secrets;
use crate::matchbox::spans::{self, Part, Pos};

pub const SECRET_OVER_HTTP: Rule = Rule {
    code: Code::SecretOverHttp,
    severity: Severity::Warning,
    summary: "a private key, password hash or token in a config served over plain http://",
    check: secrets_over_http,
};

fn secrets_over_http(facts: &Facts<'_>, out: &mut Findings) {
    // Each config once, with the first profile (by file) that fetches it over http.
    let mut served: BTreeMap<&Path, (&Path, &str, &Config)> = BTreeMap::new();
    for fact in facts.profiles() {
        let Some(url) = (fact.config_urls.iter())
            .map(|url| url.url.as_str())
            .find(|url| url.starts_with("http://"))
        else {
            continue;
        };
        let Some(named) = fact.ignition() else {
            continue;
        };
        let entry = served
            .entry(named.path.as_path())
            .or_insert((fact.path, url, named.config));
        if fact.path < entry.0 {
            *entry = (fact.path, url, named.config);
        }
    }
    for (config_path, (profile, url, config)) in served {
        let served_how = format!(
            "served over plain HTTP ({} boots with {url}): anyone on the network can read it; \
             serve matchbox over https, or deliver the secret another way",
            profile.display()
        );
        for (pos, what) in found(config) {
            out.add(config_path, pos, format!("{what} in a config {served_how}"));
        }
    }
}

/// The secrets of a config and where they are in its file.
fn found(config: &Config) -> Vec<(Pos, String)> {
    match config {
        Config::Unreadable(_) => Vec::new(),
        Config::Raw { bytes, .. } => {
            let Ok(json) = serde_json::from_slice(bytes) else {
                return Vec::new();
            };
            secrets::in_ignition(&json)
                .into_iter()
                .map(|secret| {
                    let pos = spans::locate_or_parent(bytes, &secret.at, Part::Value);
                    (pos, secret.what)
                })
                .collect()
        }
        Config::Template(file) => secrets::in_template(&String::from_utf8_lossy(&file.bytes))
            .into_iter()
            .map(|(line, what)| (Pos { line, column: 1 }, what))
            .collect(),
    }
}
