//! Secrets in a config matchbox serves: matchbox hands `/ignition` to any client that names a
//! machine's labels, so over plain `http://` whatever a config carries is readable by anyone on
//! the provisioning network.
//!
//! What counts as a secret, keeping false positives low:
//! - a PEM private key (`-----BEGIN … PRIVATE KEY-----`), in a file Ignition writes or a unit;
//! - a password hash: a user's `passwordHash`, or a crypt-style hash (`$6$…`, `$y$…`, …) in a
//!   file (a shadow file);
//! - a token-looking value (one word of 20 or more characters, letters and digits mixed,
//!   random-looking) under a key that says token, secret, password or key (`TOKEN=…`,
//!   `api_key: …`), or as the whole content of a file whose name says so.
//!
//! Public material is not secret: SSH public keys (`ssh-ed25519 AAAA…`, several words), PEM
//! certificates and public keys, paths and URLs.
//! Pure functions: the caller says where the config came from and how it is served.

use serde_json::Value;

use super::decode::PathSeg;
use super::ignition::decode_data_url;

/// A secret found in a config: where (a JSON path, or a line of a template) and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Secret {
    /// The JSON path of the value holding it (raw Ignition).
    pub at: Vec<PathSeg>,
    /// What it is, for a message: `a PEM private key in /etc/ssl/server.key`.
    pub what: String,
}

/// Words in a key or file name that say its value is secret.
const SECRET_WORDS: [&str; 6] = ["token", "secret", "password", "passwd", "credential", "key"];

/// The secrets of an Ignition config (any spec version), in document order.
pub fn in_ignition(config: &Value) -> Vec<Secret> {
    let mut found = Vec::new();
    for (i, user) in array(config, &["passwd", "users"]).iter().enumerate() {
        if user["passwordHash"].as_str().is_some_and(|h| !h.is_empty()) {
            let name = user["name"].as_str().unwrap_or("?");
            found.push(Secret {
                at: path(&["passwd", "users"], i, &["passwordHash"]),
                what: format!("the password hash of user {name} (passwordHash)"),
            });
        }
    }
    for (i, file) in array(config, &["storage", "files"]).iter().enumerate() {
        let name = file["path"].as_str().unwrap_or("?");
        // The file's contents, then what it appends, each with the JSON path of its source.
        let mut sources = vec![(
            path(&["storage", "files"], i, &["contents", "source"]),
            file["contents"]["source"].as_str(),
        )];
        for (j, append) in (file["append"].as_array().into_iter().flatten()).enumerate() {
            let mut at = path(&["storage", "files"], i, &["append"]);
            at.extend([PathSeg::Index(j), PathSeg::Key("source".into())]);
            sources.push((at, append["source"].as_str()));
        }
        for (at, source) in sources {
            let Some(content) = source.and_then(decode_data_url) else {
                continue;
            };
            if let Some(what) = in_content(name, &String::from_utf8_lossy(&content)) {
                found.push(Secret {
                    at,
                    what: format!("{what} in {name}"),
                });
            }
        }
    }
    for (i, unit) in array(config, &["systemd", "units"]).iter().enumerate() {
        let name = unit["name"].as_str().unwrap_or("?");
        if let Some(what) = unit["contents"].as_str().and_then(|c| in_content(name, c)) {
            found.push(Secret {
                at: path(&["systemd", "units"], i, &["contents"]),
                what: format!("{what} in unit {name}"),
            });
        }
        for (j, dropin) in (unit["dropins"].as_array().into_iter().flatten()).enumerate() {
            let dropin_name = dropin["name"].as_str().unwrap_or("?");
            if let Some(what) = dropin["contents"]
                .as_str()
                .and_then(|c| in_content(dropin_name, c))
            {
                let mut at = path(&["systemd", "units"], i, &["dropins"]);
                at.extend([PathSeg::Index(j), PathSeg::Key("contents".into())]);
                found.push(Secret {
                    at,
                    what: format!("{what} in drop-in {dropin_name} of unit {name}"),
                });
            }
        }
    }
    found
}

/// The secrets of a template's text (a Butane or Container Linux Config template), by line
/// (1-based): private keys, password hashes and token-looking values, as they appear in it.
pub fn in_template(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let what = if is_private_key_header(line) {
            Some("a PEM private key".to_owned())
        } else if let Some(key) = password_hash_key(line) {
            Some(format!("a password hash ({key})"))
        } else {
            crypt_hash(line)
                .map(|kind| format!("a password hash ({kind})"))
                .or_else(|| secret_assignment(line).map(|key| token_message(&key)))
        };
        if let Some(what) = what {
            found.push((i + 1, what));
        }
    }
    found
}

/// What secret the content of a file (or unit) named `name` holds, if any.
fn in_content(name: &str, content: &str) -> Option<String> {
    if content.lines().any(is_private_key_header) {
        return Some("a PEM private key".into());
    }
    if let Some(kind) = content.lines().find_map(crypt_hash) {
        return Some(format!("a password hash ({kind})"));
    }
    if let Some(key) = content.lines().find_map(secret_assignment) {
        return Some(token_message(&key));
    }
    let base = name.rsplit('/').next().unwrap_or(name).to_ascii_lowercase();
    let public = base.ends_with(".pub")
        || base.contains("authorized_keys")
        || base.ends_with(".crt")
        || base.ends_with(".cert");
    let trimmed = content.trim();
    if !public && says_secret(&base) && looks_random(trimmed) {
        return Some("a token-looking value in a file named like a secret".into());
    }
    None
}

fn token_message(key: &str) -> String {
    format!("a token-looking value of {key}")
}

fn is_private_key_header(line: &str) -> bool {
    let line = line.trim();
    line.starts_with("-----BEGIN ") && line.ends_with("PRIVATE KEY-----")
}

/// A `passwordHash`/`password_hash` key with a non-empty value on a template line.
fn password_hash_key(line: &str) -> Option<&'static str> {
    let trimmed = line.trim_start().trim_start_matches('-').trim_start();
    for key in ["passwordHash", "password_hash"] {
        let quoted = format!("\"{key}\"");
        let rest = trimmed
            .strip_prefix(key)
            .or_else(|| trimmed.strip_prefix(quoted.as_str()));
        if let Some(value) = rest.and_then(|r| r.trim_start().strip_prefix(':')) {
            let value = value
                .trim()
                .trim_matches(|c| c == '"' || c == '\'' || c == ',');
            if !value.is_empty() {
                return Some(key);
            }
        }
    }
    None
}

/// The crypt(3) scheme of a password hash in `line` (`$6$`, `$y$`, …), if there is one.
fn crypt_hash(line: &str) -> Option<String> {
    const SCHEMES: [&str; 9] = ["1", "2a", "2b", "2y", "5", "6", "7", "y", "gy"];
    let mut rest = line;
    while let Some(at) = rest.find('$') {
        rest = &rest[at + 1..];
        let Some((scheme, after)) = rest.split_once('$') else {
            break;
        };
        if SCHEMES.contains(&scheme) {
            // The salt and hash: crypt's alphabet (and `$` between parameters), long enough
            // that a shell variable or a price is not taken for one.
            let body: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '/' | '$'))
                .collect();
            if body.len() >= 20 && body.contains('$') {
                return Some(format!("${scheme}$…"));
            }
        }
    }
    None
}

/// The key of a `KEY=value` or `key: value` line (also `export KEY=…` and systemd's
/// `Environment=KEY=…`) whose key says secret and whose value looks random.
fn secret_assignment(line: &str) -> Option<String> {
    let mut line = line.trim();
    for prefix in ["export ", "Environment=", "Environment=\"", "- "] {
        line = line.strip_prefix(prefix).unwrap_or(line);
    }
    let line = line.trim_start_matches('"');
    let split = line.find(['=', ':'])?;
    let (key, value) = (line[..split].trim(), line[split + 1..].trim());
    let key = key.trim_matches(|c| c == '"' || c == '\'');
    if key.is_empty() || key.contains(char::is_whitespace) || !says_secret(&key.to_lowercase()) {
        return None;
    }
    let value = value
        .trim_end_matches(',')
        .trim_matches(|c| c == '"' || c == '\'');
    looks_random(value).then(|| key.to_owned())
}

fn says_secret(name: &str) -> bool {
    SECRET_WORDS.iter().any(|word| name.contains(word))
}

/// One word that looks like a random token: at least 20 characters of a token alphabet,
/// letters and digits mixed, not a path or URL, and about as varied as random text (Shannon
/// entropy of at least 3.5 bits a character; English words and repeated patterns stay below).
fn looks_random(value: &str) -> bool {
    let token_char =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '_' | '-' | '.' | '~');
    if value.len() < 20
        || !value.chars().all(token_char)
        || value.starts_with(['/', '.'])
        || !value.chars().any(|c| c.is_ascii_digit())
        || !value.chars().any(|c| c.is_ascii_alphabetic())
    {
        return false;
    }
    let mut counts = [0u32; 128];
    for b in value.bytes() {
        counts[usize::from(b & 0x7f)] += 1;
    }
    let n = value.len() as f64;
    let entropy: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum();
    entropy >= 3.5
}

fn array<'a>(config: &'a Value, keys: &[&str]) -> &'a [Value] {
    let mut value = config;
    for key in keys {
        value = &value[*key];
    }
    value.as_array().map_or(&[], Vec::as_slice)
}

fn path(list: &[&str], index: usize, rest: &[&str]) -> Vec<PathSeg> {
    let mut at: Vec<PathSeg> = list.iter().map(|k| PathSeg::Key((*k).into())).collect();
    at.push(PathSeg::Index(index));
    at.extend(rest.iter().map(|k| PathSeg::Key((*k).into())));
    at
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data(text: &str) -> String {
        format!(
            "data:,{}",
            percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC)
        )
    }

    const TOKEN: &str = "q8ZrT3xKp1LmN7vB2cWd9FgH4jYs6AeU";
    const KEY_PEM: &str =
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n";
    const SSH_PUBLIC: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA you@example.com";
    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ8Zr3xKp1LmN7vB2cWd9FgH4jYs6AeUwCgYIKoZIzj0E\n-----END CERTIFICATE-----\n";

    fn whats(config: &Value) -> Vec<String> {
        in_ignition(config).into_iter().map(|s| s.what).collect()
    }

    #[test]
    fn secrets_in_files_units_and_users_are_found() {
        let config = json!({
            "ignition": {"version": "3.3.0"},
            "passwd": {"users": [
                {"name": "core", "sshAuthorizedKeys": [SSH_PUBLIC]},
                {"name": "admin", "passwordHash": "$6$rounds=4096$saltsalt$abcdefghijklmnopqrstuvwxyz0123456789"}
            ]},
            "storage": {"files": [
                {"path": "/etc/ssl/server.key", "contents": {"source": data(KEY_PEM)}},
                {"path": "/etc/shadow.d/x", "contents": {"source": data("root:$y$j9T$abcdefghijklmnop$0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg:19000::::::\n")}},
                {"path": "/etc/caas/join-token", "contents": {"source": data(&format!("{TOKEN}\n"))}},
                {"path": "/etc/app.env", "append": [{"source": data(&format!("API_TOKEN={TOKEN}\n"))}]}
            ]},
            "systemd": {"units": [
                {"name": "a.service", "contents": format!("[Service]\nEnvironment=\"CLIENT_SECRET={TOKEN}\"\n")},
                {"name": "b.service", "dropins": [{"name": "10-x.conf", "contents": format!("[Service]\nEnvironment=api_key={TOKEN}\n")}]}
            ]}
        });
        assert_eq!(
            whats(&config),
            [
                "the password hash of user admin (passwordHash)",
                "a PEM private key in /etc/ssl/server.key",
                "a password hash ($y$…) in /etc/shadow.d/x",
                "a token-looking value in a file named like a secret in /etc/caas/join-token",
                "a token-looking value of API_TOKEN in /etc/app.env",
                "a token-looking value of CLIENT_SECRET in unit a.service",
                "a token-looking value of api_key in drop-in 10-x.conf of unit b.service",
            ]
        );
        let at = &in_ignition(&config)[4].at;
        assert_eq!(
            at,
            &[
                PathSeg::Key("storage".into()),
                PathSeg::Key("files".into()),
                PathSeg::Index(3),
                PathSeg::Key("append".into()),
                PathSeg::Index(0),
                PathSeg::Key("source".into()),
            ]
        );
    }

    #[test]
    fn public_material_and_ordinary_values_are_not_secrets() {
        let config = json!({
            "ignition": {"version": "3.3.0"},
            "passwd": {"users": [{"name": "core", "sshAuthorizedKeys": [SSH_PUBLIC], "passwordHash": ""}]},
            "storage": {"files": [
                {"path": "/home/core/.ssh/authorized_keys", "contents": {"source": data(SSH_PUBLIC)}},
                {"path": "/etc/ssh/ssh_host_ed25519_key.pub", "contents": {"source": data(SSH_PUBLIC)}},
                {"path": "/etc/caas/api-ca.pem", "contents": {"source": data(CERT)}},
                {"path": "/etc/ssl/certs/key-ca.crt", "contents": {"source": data(CERT)}},
                {"path": "/etc/etcd.env", "contents": {"source": data("ETCD_KEY_FILE=/etc/ssl/etcd/peer-key.pem\nETCD_NAME=etcd-0\nMACHINE_KEY=node1\n")}},
                {"path": "/opt/bin/run", "contents": {"source": data("#!/bin/sh\necho \"$1$2$3\" costs $5\nkey=$(cat /run/key)\n")}},
                {"path": "/etc/keymap", "contents": {"source": data("us\n")}},
                {"path": "/opt/bin/etcd", "contents": {"source": "http://matchbox/assets/etcd"}, "verification": {"hash": "sha512-0123456789abcdef0123456789abcdef"}}
            ]},
            "systemd": {"units": [{"name": "x.service", "contents": "[Service]\nEnvironment=CAAS_API_URL=https://caas.lab:5000\nEnvironment=KEYS=aaaaaaaaaaaaaaaaaaaaaaaaaaaa1\n"}]}
        });
        assert_eq!(whats(&config), Vec::<String>::new());
    }

    #[test]
    fn templates_are_scanned_line_by_line() {
        let text = format!(
            "passwd:\n  users:\n    - name: core\n      password_hash: \"$6$x\"\n      ssh_authorized_keys:\n        - {SSH_PUBLIC}\nstorage:\n  files:\n    - path: /etc/k\n      contents:\n        inline: |\n          -----BEGIN RSA PRIVATE KEY-----\n          TOKEN={TOKEN}\n          password_hash: {{{{.hash}}}}\n"
        );
        assert_eq!(
            in_template(&text),
            [
                (4, "a password hash (password_hash)".to_owned()),
                (12, "a PEM private key".to_owned()),
                (13, "a token-looking value of TOKEN".to_owned()),
                (14, "a password hash (password_hash)".to_owned()),
            ]
        );
    }
}
