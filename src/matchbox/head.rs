//! A group's selector and profile, read in one pass that builds nothing else: what selection
//! needs of every group file, when only one group's answer is wanted (`caas explain`).
//!
//! [`Group::parse`] keeps every key of the document in order (Go merges repeated fields) and
//! converts metadata into values; for 10,000 groups that is most of the time spent. The plain
//! form every writer produces (each field once, no `null`, no escapes in the selector) needs
//! none of it: [`group_head`] checks the whole document with the same JSON parser and the same
//! nesting limit, borrows the strings it looks at, and gives up on anything else. The caller
//! then decodes that file with [`Group::parse`], which has the final word; so a head is only
//! ever a shortcut to the same selector and profile.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::decode::keys_match;
use super::group::{Group, Selector, normalize_selector};

/// The group in `bytes` with only its selector (normalised) and profile filled in, when the
/// file is in the plain form; `None` when it needs [`Group::parse`] (which may still load it).
pub fn group_head(bytes: &[u8]) -> Option<Group> {
    let text = super::decode::go_text(bytes);
    let mut deserializer = serde_json::Deserializer::from_slice(&text);
    let head = deserializer.deserialize_any(HeadVisitor).ok()?;
    deserializer.end().ok()?;
    Some(Group {
        selector: normalize_selector(head.selector).ok()?,
        profile: head.profile.to_owned(),
        ..Group::default()
    })
}

/// The fields of a group file, in [`Group::from_doc`]'s terms.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Id,
    Name,
    Profile,
    Selector,
    Metadata,
}

const FIELDS: [(&str, Field); 5] = [
    ("id", Field::Id),
    ("name", Field::Name),
    ("profile", Field::Profile),
    ("selector", Field::Selector),
    ("metadata", Field::Metadata),
];

fn field(key: &str) -> Option<Field> {
    FIELDS
        .iter()
        .find(|(name, _)| keys_match(key, name))
        .map(|&(_, field)| field)
}

#[derive(Default)]
struct Head<'de> {
    profile: &'de str,
    selector: Selector,
}

/// Anything outside the plain form: the caller decodes the file in full instead.
fn not_plain<E: de::Error>() -> E {
    E::custom("not the plain form")
}

struct HeadVisitor;

impl<'de> Visitor<'de> for HeadVisitor {
    type Value = Head<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a group object")
    }

    /// A `null` file is an empty group, as Go decodes it.
    fn visit_unit<E: de::Error>(self) -> Result<Head<'de>, E> {
        Ok(Head::default())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Head<'de>, A::Error> {
        let mut head = Head::default();
        let mut seen: Vec<Field> = Vec::new();
        while let Some(key) = map.next_key::<&'de str>()? {
            let Some(field) = field(key) else {
                map.next_value::<Checked>()?;
                continue;
            };
            if seen.contains(&field) {
                // Go merges repeated fields: the full decoder knows how.
                return Err(not_plain());
            }
            seen.push(field);
            match field {
                Field::Id | Field::Name => {
                    map.next_value::<&'de str>()?;
                }
                Field::Profile => head.profile = map.next_value()?,
                Field::Selector => head.selector = map.next_value_seed(PlainSelector)?,
                Field::Metadata => {
                    map.next_value_seed(PlainObject)?;
                }
            }
        }
        Ok(head)
    }
}

/// A selector of plain strings (no `null`, no escapes), later keys overwriting earlier ones as
/// Go's map does.
struct PlainSelector;

impl<'de> DeserializeSeed<'de> for PlainSelector {
    type Value = Selector;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Selector, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for PlainSelector {
    type Value = Selector;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of strings")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Selector, A::Error> {
        // Collected, then sorted once (the last of equal keys kept): inserting each pair into
        // the sorted vector would cost a file with many keys quadratic time.
        let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
        while let Some((key, value)) = map.next_entry::<&'de str, &'de str>()? {
            pairs.push((key.to_owned(), value.to_owned()));
        }
        Ok(pairs.into_iter().collect())
    }
}

/// An object of any JSON (metadata), checked as [`super::decode::GoJson`] reads it.
struct PlainObject;

impl<'de> DeserializeSeed<'de> for PlainObject {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for PlainObject {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        CheckedVisitor.visit_map(map).map(|_| ())
    }
}

/// Any JSON value, parsed exactly as [`super::decode::GoJson`] parses it (same calls, so the
/// same syntax, number and nesting rules) and then dropped. Not [`serde::de::IgnoredAny`]: serde_json
/// skips those without its nesting limit or its number range check.
struct Checked;

impl<'de> de::Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Checked, D::Error> {
        deserializer.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_entry::<Checked, Checked>()?.is_some() {}
        Ok(Checked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The head agrees with the full decoder whenever it gives an answer.
    fn agrees(bytes: &[u8]) -> Result<(), TestCaseError> {
        if let Some(head) = group_head(bytes) {
            let full = Group::parse(bytes);
            prop_assert!(
                full.is_ok(),
                "{:?}: head {head:?}, full {full:?}",
                String::from_utf8_lossy(bytes)
            );
            let full = full.unwrap();
            prop_assert_eq!(&head.selector, &full.selector);
            prop_assert_eq!(&head.profile, &full.profile);
        }
        Ok(())
    }

    #[test]
    fn plain_groups_are_read() {
        let head = group_head(
            br#"{"id": "n1", "name": "N", "profile": "p", "selector": {"MAC": "52-54-00-00-00-01", "os": "installed"},
                "metadata": {"a": [1, {"b": null}], "n": 1e3}, "extra": {"x": [true]}}"#,
        )
        .unwrap();
        assert_eq!(head.profile, "p");
        assert_eq!(
            head.selector.get("MAC").map(String::as_str),
            Some("52:54:00:00:00:01")
        );
        assert_eq!(
            head.selector.get("os").map(String::as_str),
            Some("installed")
        );
        assert_eq!(group_head(b"null"), Some(Group::default()));
        assert_eq!(group_head(b"{}"), Some(Group::default()));
        // A repeated key: the last value counts, as in Go's map and the full decoder.
        let doc = br#"{"selector": {"os": "a", "mac": "52:54:00:00:00:01", "os": "b"}}"#;
        let head = group_head(doc).unwrap();
        assert_eq!(head.selector.get("os").map(String::as_str), Some("b"));
        assert_eq!(head.selector.len(), 2);
        assert_eq!(head, Group::parse(doc).unwrap());
    }

    #[test]
    fn anything_else_goes_to_the_full_decoder() {
        for doc in [
            &br#"{"profile": "a", "Profile": "b"}"#[..],
            br#"{"selector": {"a": "1"}, "Selector": {"b": "2"}}"#,
            br#"{"profile": null}"#,
            br#"{"selector": {"os": null}}"#,
            br#"{"profile": "caf\u00e9"}"#,
            br#"{"selector": {"mac": "52:54:00"}}"#,
            br#"{"metadata": []}"#,
            br#"{"id": 5}"#,
            br#"{"metadata": {"n": 1e400}}"#,
            br#"[]"#,
            br#"{} {}"#,
            b"\xef\xbb\xbf{}",
        ] {
            assert_eq!(group_head(doc), None, "{}", String::from_utf8_lossy(doc));
        }
        // Nested past serde_json's limit, where the full decoder fails too.
        let deep = format!(
            r#"{{"metadata": {{"a": {}{}}}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert_eq!(group_head(deep.as_bytes()), None);
        assert!(Group::parse(deep.as_bytes()).is_err());
    }

    fn arb_value() -> impl Strategy<Value = String> {
        let leaf = prop::sample::select(vec![
            "null",
            "true",
            "1",
            "-2.5",
            "1e400",
            "\"x\"",
            "\"caf\\u00e9\"",
            "\"\\ud800\"",
            "\"52-54-00-00-00-01\"",
            "\"52:54:00\"",
            "[]",
            "{}",
        ])
        .prop_map(str::to_owned);
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec((arb_key(), inner), 0..4).prop_map(|pairs| {
                    let members: Vec<String> = pairs
                        .into_iter()
                        .map(|(k, v)| format!("\"{k}\":{v}"))
                        .collect();
                    format!("{{{}}}", members.join(","))
                }),
            ]
        })
    }

    fn arb_key() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "id",
            "ID",
            "name",
            "profile",
            "Profile",
            "selector",
            "Selector",
            "ſelector",
            "metadata",
            "mac",
            "MAC",
            "os",
            "x",
            "pro\\u0066ile",
        ])
    }

    proptest! {
        #[test]
        fn the_head_never_disagrees_with_the_full_decoder(
            pairs in prop::collection::vec((arb_key(), arb_value()), 0..6),
            raw in prop::collection::vec(any::<u8>(), 0..8),
        ) {
            let members: Vec<String> = pairs.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            let doc = format!("{{{}}}", members.join(","));
            agrees(doc.as_bytes())?;
            let mut bytes = doc.into_bytes();
            bytes.extend(raw);
            agrees(&bytes)?;
        }
    }
}
