//! Keys matchbox does not read. Go's `encoding/json` ignores unknown keys silently, so a
//! misspelling such as `ignitionId` (for `ignition_id`) or `selectors` (for `selector`) leaves
//! the field empty without a word: the profile serves no Ignition, the group matches every
//! machine. A key that looks like a field that is absent is an error; any other unknown key a
//! warning.

use serde_json::Value;

use super::{Findings, Rule};
use crate::lint::facts::{Dir, Facts};
use crate::lint::{Code, Local, Severity};
use crate::matchbox::decode::{PathSeg, keys_match};
use crate::matchbox::spans::{self, Part};

pub const MISSPELLED_KEY: Rule = Rule {
    code: Code::MisspelledKey,
    severity: Severity::Error,
    summary: "a key that looks like a field matchbox reads, which is then missing",
    check: check_keys,
};

pub const UNKNOWN_KEY: Rule = Rule {
    code: Code::UnknownKey,
    severity: Severity::Warning,
    summary: "a key matchbox does not read",
    check: check_keys,
};

/// Both rules read the same walk of the keys (done once per file); each keeps the findings
/// with its code.
fn check_keys(facts: &Facts<'_>, out: &mut Findings) {
    for file in &facts.files {
        let Some(bytes) = file.parsed() else {
            continue;
        };
        let schema = match file.dir {
            Dir::Groups => &GROUP,
            Dir::Profiles => &PROFILE,
        };
        let found = file.keys.get_or_init(|| match file.json() {
            Some(json) => check(bytes, &json, schema),
            None => Vec::new(),
        });
        out.add_locals(file.path, found.iter().cloned());
    }
}

/// The fields of one JSON object as matchbox's Go structs declare them.
pub struct Schema {
    pub fields: &'static [(&'static str, Consequence)],
    /// Fields whose value is an object with its own schema.
    pub nested: &'static [(&'static str, &'static Schema)],
}

/// What happens when a field is missing because its key was misspelled.
pub type Consequence = &'static str;

pub const BOOT: Schema = Schema {
    fields: &[
        ("kernel", "the iPXE script has no kernel to boot"),
        ("initrd", "no initrd is loaded"),
        ("args", "the kernel line gets no arguments"),
        (
            "cmdline",
            "bootcfg-0.4 puts no arguments on the kernel line",
        ),
    ],
    nested: &[],
};

pub const PROFILE: Schema = Schema {
    fields: &[
        ("id", "the profile has no id and matchbox skips it"),
        ("name", "the profile has no name"),
        (
            "boot",
            "the profile has no boot section and /ipxe answers 404",
        ),
        (
            "ignition_id",
            "the profile serves no Ignition and /ignition answers 404",
        ),
        ("cloud_id", "the profile serves no cloud-config"),
        ("generic_id", "the profile serves no generic config"),
    ],
    nested: &[("boot", &BOOT)],
};

pub const GROUP: Schema = Schema {
    fields: &[
        ("id", "the group has no id"),
        ("name", "the group has no name"),
        (
            "profile",
            "the group names no profile and every request it answers gets 404",
        ),
        (
            "selector",
            "the group has no selector: it becomes a default group matching every machine",
        ),
        ("metadata", "templates get none of this metadata"),
    ],
    nested: &[],
};

/// Unknown and misspelled keys of `json` (the whole file) against `schema`.
pub fn check(bytes: &[u8], json: &Value, schema: &Schema) -> Vec<Local> {
    let mut out = Vec::new();
    walk(bytes, json, schema, &mut Vec::new(), &mut out);
    out
}

fn walk(
    bytes: &[u8],
    value: &Value,
    schema: &Schema,
    path: &mut Vec<PathSeg>,
    out: &mut Vec<Local>,
) {
    let Value::Object(map) = value else { return };
    for (key, child) in map {
        let known = schema
            .fields
            .iter()
            .find(|(field, _)| keys_match(key, field));
        if let Some((field, _)) = known {
            if let Some((_, nested)) = schema.nested.iter().find(|(name, _)| name == field) {
                path.push(PathSeg::Key((*field).to_owned()));
                walk(bytes, child, nested, path, out);
                path.pop();
            }
            continue;
        }
        let mut at = path.clone();
        at.push(PathSeg::MapKey(key.clone()));
        let pos = spans::locate_or_parent(bytes, &at, Part::Key);
        let shown = at
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(".");
        let meant = schema.fields.iter().find(|(field, _)| {
            looks_like(key, field) && !map.keys().any(|other| keys_match(other, field))
        });
        out.push(match meant {
            Some((field, consequence)) => Local {
                pos,
                code: Code::MisspelledKey,
                severity: Severity::Error,
                message: format!(
                    "{shown:?} is not a field matchbox reads: did you mean {field:?}? matchbox ignores it, so {consequence}"
                ),
            },
            None => Local {
                pos,
                code: Code::UnknownKey,
                severity: Severity::Warning,
                message: format!("unknown key {shown:?}: matchbox ignores it"),
            },
        });
    }
}

/// Whether `key` is probably a misspelling of `field`: equal once case, `_` and `-` are
/// dropped (`ignitionId`, `Ignition-ID`), or one edit away (two for long names).
fn looks_like(key: &str, field: &str) -> bool {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| !matches!(c, '_' | '-' | ' '))
            .flat_map(char::to_lowercase)
            .collect()
    };
    let (k, f) = (norm(key), norm(field));
    if k == f {
        return true;
    }
    let budget = if f.chars().count() >= 8 { 2 } else { 1 };
    f.chars().count() >= 4 && levenshtein(&k, &f) <= budget
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(text: &str, schema: &Schema) -> Vec<(Code, String)> {
        let json: Value = serde_json::from_str(text).unwrap();
        check(text.as_bytes(), &json, schema)
            .into_iter()
            .map(|l| (l.code, l.message))
            .collect()
    }

    #[test]
    fn misspellings_are_errors_and_other_keys_warnings() {
        let found = codes(
            r#"{"id": "p", "ignitionId": "p.ign", "color": "blue", "boot": {"kernal": "/k", "Args": []}}"#,
            &PROFILE,
        );
        let kinds: Vec<Code> = found.iter().map(|(c, _)| *c).collect();
        // (in key order: boot.kernal, color, ignitionId)
        assert_eq!(
            kinds,
            vec![Code::MisspelledKey, Code::UnknownKey, Code::MisspelledKey]
        );
        assert!(found[0].1.contains("\"boot.kernal\""), "{found:?}");
        assert!(
            found[2].1.contains("did you mean \"ignition_id\""),
            "{found:?}"
        );
        let found = codes(r#"{"selectors": {"mac": "x"}, "profile": "p"}"#, &GROUP);
        assert_eq!(found[0].0, Code::MisspelledKey);
        assert!(found[0].1.contains("default group"));
        // With the real field present, the look-alike is just unknown.
        let found = codes(r#"{"selector": {}, "selectors": {}}"#, &GROUP);
        assert_eq!(found[0].0, Code::UnknownKey);
    }

    #[test]
    fn levenshtein_distances() {
        assert_eq!(levenshtein("kernal", "kernel"), 1);
        assert_eq!(levenshtein("", "abc"), 3);
        assert!(looks_like("Ignition-ID", "ignition_id"));
        assert!(!looks_like("ip", "id"));
    }
}
