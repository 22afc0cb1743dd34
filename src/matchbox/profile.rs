//! matchbox profiles: `profiles/<id>.json`, the boot settings and config ids of a machine class.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use super::decode::{DecodeError, GoJson, GoObject, parse_go};

/// A profile as matchbox (v0.5 and later) and bootcfg v0.4 read it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Profile {
    pub id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot: Option<Boot>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ignition_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cloud_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub generic_id: String,
}

/// How iPXE boots the machine: `kernel <kernel> <args>`, one `initrd` line per entry, `boot`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Boot {
    pub kernel: String,
    /// Each entry is one `initrd` line and may carry iPXE options (`--name main /assets/…`).
    pub initrd: Vec<String>,
    /// Kernel arguments, joined with spaces; may hold iPXE variables such as `${uuid}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// The pre-v0.5 form of the arguments, the only one bootcfg v0.4 reads: a map whose empty
    /// values are bare flags. matchbox v0.7 and later ignore it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<Map<String, Value>>,
}

impl Profile {
    /// Decodes a profile file with matchbox's rules; the error is why matchbox would skip it.
    pub fn parse(bytes: &[u8]) -> Result<Profile, DecodeError> {
        Profile::from_doc(&parse_go(bytes)?)
    }

    /// Decodes an already parsed profile file. `boot` given more than once is decoded into the
    /// same struct, field by field, as Go does; a `null` file is a profile without an id.
    pub fn from_doc(doc: &GoJson) -> Result<Profile, DecodeError> {
        let root = GoObject::root(doc)?;
        let boot = root.object("boot", Boot::merge)?;
        let profile = Profile {
            id: root.string("id")?,
            name: root.string("name")?,
            boot,
            ignition_id: root.string("ignition_id")?,
            cloud_id: root.string("cloud_id")?,
            generic_id: root.string("generic_id")?,
        };
        if profile.id.is_empty() {
            // matchbox's Profile.AssertValid: the one check it makes on a loaded profile.
            return Err(DecodeError::Invalid("profile has no id".into()));
        }
        Ok(profile)
    }

    /// The canonical file bytes: fixed key order, 2-space indent, trailing newline.
    pub fn to_json(&self) -> Vec<u8> {
        crate::write::canonical_json(self)
    }
}

impl Boot {
    /// Decodes one `boot` object into `self`: the fields it gives replace, the others stay.
    fn merge(&mut self, boot: GoObject<'_>) -> Result<(), DecodeError> {
        if boot.has("kernel") {
            let kernel = boot.string("kernel")?;
            if boot.all("kernel").any(|v| !matches!(v, GoJson::Null)) {
                self.kernel = kernel;
            }
        }
        if boot.has("initrd") {
            self.initrd = boot.strings("initrd")?;
        }
        if boot.has("args") {
            self.args = boot.strings_opt("args")?;
        }
        // Read leniently: matchbox ignores the field whatever its type; lint reports it for
        // the targets that read it. Objects merge as a Go map does, `null` resets it.
        for value in boot.all("cmdline") {
            match value {
                GoJson::Null => self.cmdline = None,
                GoJson::Object(_) => {
                    let map = self.cmdline.get_or_insert_with(Map::new);
                    if let Value::Object(more) = value.to_value() {
                        map.extend(more);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The kernel arguments whichever form the file uses (`args`, else `cmdline`, as bootcfg
    /// v0.4 renders it: keys sorted, empty values as bare flags).
    pub fn effective_args(&self) -> Vec<String> {
        if let Some(args) = &self.args {
            return args.clone();
        }
        let Some(cmdline) = &self.cmdline else {
            return Vec::new();
        };
        let sorted: BTreeMap<&String, &Value> = cmdline.iter().collect();
        sorted
            .into_iter()
            .map(|(key, value)| match value {
                Value::String(s) if s.is_empty() => key.clone(),
                Value::String(s) => format!("{key}={s}"),
                other => format!("{key}={other}"),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_matchbox_reads() {
        let profile = Profile::parse(
            br#"{"ID": "flatcar", "Name": "Flatcar", "ignitionId": "ignored",
                "boot": {"kernel": "/k", "initrd": ["/i"], "args": ["a=1", "b"]},
                "unknown": {"x": 1}}"#,
        )
        .unwrap();
        assert_eq!(profile.id, "flatcar");
        assert_eq!(profile.name, "Flatcar");
        assert_eq!(
            profile.ignition_id, "",
            "camelCase does not match ignition_id"
        );
        let boot = profile.boot.unwrap();
        assert_eq!(boot.initrd, vec!["/i"]);
        assert_eq!(boot.effective_args(), vec!["a=1", "b"]);
    }

    #[test]
    fn boot_given_twice_merges_field_by_field() {
        let profile = Profile::parse(
            br#"{"id": "p", "boot": {"kernel": "/k", "initrd": ["/i"], "args": ["a"]},
                "Boot": {"args": ["b"], "kernel": null}}"#,
        )
        .unwrap();
        let boot = profile.boot.unwrap();
        assert_eq!(
            (boot.kernel.as_str(), boot.initrd.as_slice()),
            ("/k", &["/i".to_owned()][..])
        );
        assert_eq!(boot.args, Some(vec!["b".to_owned()]));
        let profile = Profile::parse(br#"{"id": "p", "boot": {"kernel": "/k"}, "boot": null}"#);
        assert_eq!(profile.unwrap().boot, None);
        assert_eq!(
            Profile::parse(b"null").unwrap_err().to_string(),
            "profile has no id"
        );
    }

    #[test]
    fn rejects_what_matchbox_skips() {
        assert!(Profile::parse(br#"{"name": "no id"}"#).is_err());
        assert!(Profile::parse(br#"{"id": "x", "boot": {"initrd": "/i"}}"#).is_err());
        assert!(Profile::parse(br#"{"id": 3}"#).is_err());
        assert!(Profile::parse(b"[]").is_err());
    }

    #[test]
    fn cmdline_renders_sorted_with_bare_flags() {
        let profile = Profile::parse(
            br#"{"id": "old", "boot": {"kernel": "/k", "cmdline": {"coreos.first_boot": "", "coreos.config.url": "http://b/ignition"}}}"#,
        )
        .unwrap();
        assert_eq!(
            profile.boot.unwrap().effective_args(),
            vec!["coreos.config.url=http://b/ignition", "coreos.first_boot"]
        );
    }

    #[test]
    fn writes_canonical_json() {
        let profile = Profile {
            id: "p".into(),
            name: "P".into(),
            boot: Some(Boot {
                kernel: "/k".into(),
                initrd: vec!["/i".into()],
                args: Some(vec!["x".into()]),
                cmdline: None,
            }),
            ignition_id: "p.ign".into(),
            ..Profile::default()
        };
        let text = String::from_utf8(profile.to_json()).unwrap();
        assert_eq!(
            text,
            "{\n  \"id\": \"p\",\n  \"name\": \"P\",\n  \"boot\": {\n    \"kernel\": \"/k\",\n    \"initrd\": [\n      \"/i\"\n    ],\n    \"args\": [\n      \"x\"\n    ]\n  },\n  \"ignition_id\": \"p.ign\"\n}\n"
        );
        assert_eq!(Profile::parse(text.as_bytes()).unwrap(), profile);
    }
}
