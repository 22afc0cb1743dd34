//! matchbox groups: `groups/<id>.json`, which machines (selector) get which profile, with what
//! template metadata.

use serde::Serialize;
use serde_json::{Map, Value};

use super::decode::{DecodeError, GoJson, GoObject, parse_go};
use super::mac;

/// Labels a machine must carry, all of them, for the group to match. Empty: the default group.
/// A map kept as one sorted vector: most groups have one or two selectors, and a large lab
/// holds tens of thousands of them (a `BTreeMap` would allocate a node of eleven pairs each).
/// Serialize it with [`serialize_selector`].
pub type Selector = litemap::LiteMap<String, String>;

/// Serializes a selector as an object, empty ones too (`LiteMap` writes an empty map as a
/// human-readable format's list, `[]`, which matchbox cannot read).
pub fn serialize_selector<S: serde::Serializer>(
    selector: &Selector,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(selector.iter())
}

/// A group as matchbox reads it. Files are not checked for an id or a profile by matchbox; a
/// group without a profile matches and then fails every request with a 404.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Group {
    pub id: String,
    pub name: String,
    pub profile: String,
    #[serde(serialize_with = "serialize_selector")]
    pub selector: Selector,
    pub metadata: Map<String, Value>,
}

impl Group {
    /// Decodes a group file with matchbox's rules: `mac` selectors are normalised, and an
    /// unparsable one makes the whole group invalid (matchbox skips it).
    pub fn parse(bytes: &[u8]) -> Result<Group, DecodeError> {
        Group::from_doc(&parse_go(bytes)?)
    }

    /// Decodes an already parsed group file. A `null` file is an empty group: no selectors (a
    /// default group) and no profile, as Go decodes it.
    pub fn from_doc(doc: &GoJson) -> Result<Group, DecodeError> {
        let root = GoObject::root(doc)?;
        let selector = normalize_selector(root.string_map("selector")?)
            .map_err(|err| DecodeError::Invalid(format!("selector: {err}")))?;
        Ok(Group {
            id: root.string("id")?,
            name: root.string("name")?,
            profile: root.string("profile")?,
            selector,
            metadata: root.any_map("metadata")?,
        })
    }

    /// The canonical file bytes: fixed key order, 2-space indent, trailing newline.
    pub fn to_json(&self) -> Vec<u8> {
        crate::write::canonical_json(self)
    }

    /// A group without selectors matches every machine.
    pub fn is_default(&self) -> bool {
        self.selector.is_empty()
    }
}

/// Whether a selector or label key is matchbox's `mac` (compared in any letter case).
pub fn is_mac_key(key: &str) -> bool {
    key.eq_ignore_ascii_case("mac")
}

/// Applies matchbox's only selector normalisation: `mac` values become lower case with colons.
pub fn normalize_selector(
    selector: impl IntoIterator<Item = (String, String)>,
) -> Result<Selector, mac::MacError> {
    selector
        .into_iter()
        .map(|(key, value)| {
            let value = if is_mac_key(&key) {
                mac::normalize(&value)?
            } else {
                value
            };
            Ok((key, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn normalises_mac_selectors_like_matchbox() {
        let group = Group::parse(
            br#"{"id": "node1", "profile": "etcd3", "selector": {"MAC": "52-DA-00-89-D8-10", "os": "installed"}}"#,
        )
        .unwrap();
        assert_eq!(
            group.selector.get("MAC").map(String::as_str),
            Some("52:da:00:89:d8:10")
        );
        assert_eq!(
            group.selector.get("os").map(String::as_str),
            Some("installed")
        );
        assert!(group.metadata.is_empty());
    }

    #[test]
    fn a_bad_mac_or_a_non_string_selector_invalidates_the_group() {
        let err = Group::parse(br#"{"selector": {"mac": "52:54:00"}}"#).unwrap_err();
        assert!(err.to_string().contains("\"52:54:00\""), "{err}");
        assert!(Group::parse(br#"{"selector": {"os": true}}"#).is_err());
        assert!(Group::parse(br#"{"metadata": []}"#).is_err());
    }

    #[test]
    fn files_without_id_or_selector_are_default_groups() {
        let group =
            Group::parse(br#"{"name": "install", "profile": "p", "metadata": {"n": 1}}"#).unwrap();
        assert!(group.is_default());
        assert_eq!(group.id, "");
        assert_eq!(group.metadata["n"], json!(1));
    }

    #[test]
    fn a_null_file_is_an_empty_default_group() {
        let group = Group::parse(b"null").unwrap();
        assert_eq!(group, Group::default());
        assert!(group.is_default());
    }

    #[test]
    fn writes_canonical_json_with_sorted_maps() {
        let mut group = Group {
            id: "g".into(),
            name: "G".into(),
            profile: "p".into(),
            ..Group::default()
        };
        group.selector.insert("os".into(), "installed".into());
        group
            .selector
            .insert("mac".into(), "52:54:00:a1:9c:ae".into());
        group
            .metadata
            .insert("z".into(), json!({"b": 1, "a": [true]}));
        group.metadata.insert("a".into(), json!("x"));
        let text = String::from_utf8(group.to_json()).unwrap();
        let expected = r#"{
  "id": "g",
  "name": "G",
  "profile": "p",
  "selector": {
    "mac": "52:54:00:a1:9c:ae",
    "os": "installed"
  },
  "metadata": {
    "a": "x",
    "z": {
      "a": [
        true
      ],
      "b": 1
    }
  }
}
"#;
        assert_eq!(text, expected);
        assert_eq!(Group::parse(text.as_bytes()).unwrap(), group);
        // A default group's empty selector is still an object.
        let default = Group {
            profile: "p".into(),
            ..Group::default()
        };
        let text = String::from_utf8(default.to_json()).unwrap();
        assert!(text.contains("\"selector\": {}"), "{text}");
        assert_eq!(Group::parse(text.as_bytes()).unwrap(), default);
    }
}
