//! Reading JSON the way matchbox's Go code reads it.
//!
//! matchbox decodes profiles and groups with Go's `encoding/json`
//! (<https://pkg.go.dev/encoding/json#Unmarshal>) into Go structs. caas reads the same files
//! with the same rules, so what it reads is what the server will serve. The facts relied on:
//!
//! - Object keys match struct fields by exact name, else case-insensitively (Unicode simple
//!   folding); unknown keys are ignored.
//! - Keys are applied in document order, each into the same value, so when several keys match
//!   one field (`profile` and `Profile`, or `boot` twice) the later one is decoded over the
//!   earlier: a string or a slice is replaced, a map keeps its entries and gains (or
//!   overwrites) the later object's, a pointer to a struct keeps its struct and the later
//!   object's fields are decoded into it, so fields merge.
//! - `null` leaves a string (or a struct, the top-level one included) as it was, and sets a
//!   map, slice or pointer to nil. A top-level `null` therefore decodes to the zero value: an
//!   empty group, a profile without an id.
//! - Inside a `map[string]interface{}` value (metadata), an object is built afresh: of two
//!   equal keys the later wins, nothing merges.
//! - A value of the wrong type fails the whole file (matchbox then skips it); decoding goes on,
//!   and the first such error is the one returned.
//! - Invalid UTF-8 inside a string becomes U+FFFD, one per invalid byte (Go's
//!   `utf8.DecodeRune` consumes one byte of an invalid sequence), and a `\uXXXX` escape of a
//!   surrogate that is not the first half of a valid pair becomes U+FFFD too; the file loads.
//!
//! The syntax and the nesting limit stay serde_json's: a document is parsed by serde_json into
//! [`GoJson`], which keeps every key in document order, repeated ones included.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why a file cannot be decoded; matchbox would skip it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON at all; line and column are 1-based, as editors count.
    #[error("invalid JSON at line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    /// JSON, but a value has a type the Go struct cannot hold.
    #[error("field {field}: expected {expected}, found {found}")]
    Type {
        field: String,
        /// Where the value is, step by step from the top-level object (lint locates it).
        path: Vec<PathSeg>,
        expected: &'static str,
        found: &'static str,
    },
    /// JSON with the right types, but matchbox's validation rejects it.
    #[error("{0}")]
    Invalid(String),
}

/// One step into a JSON document: a field, a map key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSeg {
    /// A struct field as the schema names it: the file may spell it in any letter case, and
    /// of several such keys the last one counts (Go's decoding).
    Key(String),
    /// A key of a map (selector, metadata), or a key no field reads, as the file spells it.
    MapKey(String),
    Index(usize),
}

impl std::fmt::Display for PathSeg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathSeg::Key(key) | PathSeg::MapKey(key) => f.write_str(key),
            PathSeg::Index(i) => write!(f, "{i}"),
        }
    }
}

/// A JSON document as Go's decoder walks it: objects keep every key, in document order,
/// repeated ones included.
#[derive(Clone, Debug, PartialEq)]
pub enum GoJson {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<GoJson>),
    Object(Vec<(String, GoJson)>),
}

impl GoJson {
    /// The plain JSON value: of repeated keys the last wins, as serde_json reads them.
    pub fn to_value(&self) -> Value {
        match self {
            GoJson::Null => Value::Null,
            GoJson::Bool(b) => Value::Bool(*b),
            GoJson::Number(n) => Value::Number(n.clone()),
            GoJson::String(s) => Value::String(s.clone()),
            GoJson::Array(items) => Value::Array(items.iter().map(GoJson::to_value).collect()),
            GoJson::Object(pairs) => {
                let mut map = Map::new();
                for (key, value) in pairs {
                    map.insert(key.clone(), value.to_value());
                }
                Value::Object(map)
            }
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            GoJson::Null => "null",
            GoJson::Bool(_) => "a boolean",
            GoJson::Number(_) => "a number",
            GoJson::String(_) => "a string",
            GoJson::Array(_) => "an array",
            GoJson::Object(_) => "an object",
        }
    }
}

impl<'de> Deserialize<'de> for GoJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<GoJson, D::Error> {
        struct GoJsonVisitor;
        impl<'de> Visitor<'de> for GoJsonVisitor {
            type Value = GoJson;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E>(self) -> Result<GoJson, E> {
                Ok(GoJson::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<GoJson, E> {
                Ok(GoJson::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<GoJson, E> {
                Ok(GoJson::Number(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<GoJson, E> {
                Ok(GoJson::Number(v.into()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<GoJson, E> {
                Ok(serde_json::Number::from_f64(v).map_or(GoJson::Null, GoJson::Number))
            }
            fn visit_str<E>(self, v: &str) -> Result<GoJson, E> {
                Ok(GoJson::String(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<GoJson, E> {
                Ok(GoJson::String(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<GoJson, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(GoJson::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<GoJson, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry::<String, GoJson>()? {
                    pairs.push(pair);
                }
                Ok(GoJson::Object(pairs))
            }
        }
        deserializer.deserialize_any(GoJsonVisitor)
    }
}

/// Parses `bytes` as one JSON value, keeping the position of a syntax error.
pub fn parse_json(bytes: &[u8]) -> Result<Value, DecodeError> {
    parse_go(bytes).map(|doc| doc.to_value())
}

/// Parses `bytes` as Go reads them: invalid UTF-8 and lone surrogate escapes become U+FFFD,
/// every key is kept in order. Syntax errors keep their position.
pub fn parse_go(bytes: &[u8]) -> Result<GoJson, DecodeError> {
    let text = go_text(bytes);
    serde_json::from_slice(&text).map_err(|err| DecodeError::Syntax {
        line: err.line(),
        column: err.column(),
        message: syntax_message(&err),
    })
}

/// The bytes with what Go's decoder replaces by U+FFFD already replaced: every byte of
/// invalid UTF-8, and every `\u` escape of a surrogate that does not begin a valid pair
/// (written `\ufffd`, the same length). Outside strings such bytes are a syntax error for
/// both decoders alike. Valid input is returned as it is.
pub(crate) fn go_text(bytes: &[u8]) -> Cow<'_, [u8]> {
    let text: Cow<'_, [u8]> = match std::str::from_utf8(bytes) {
        Ok(_) => Cow::Borrowed(bytes),
        Err(_) => {
            let mut out = Vec::with_capacity(bytes.len() + 16);
            for chunk in bytes.utf8_chunks() {
                out.extend_from_slice(chunk.valid().as_bytes());
                for _ in chunk.invalid() {
                    out.extend_from_slice("\u{fffd}".as_bytes());
                }
            }
            Cow::Owned(out)
        }
    };
    if !text
        .windows(3)
        .any(|w| w[0] == b'\\' && w[1] == b'u' && matches!(w[2], b'd' | b'D'))
    {
        return text;
    }
    let hex4 = |s: &[u8], at: usize| -> Option<u32> {
        let digits = s.get(at..at + 4)?;
        u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
    };
    let escape = |s: &[u8], at: usize| -> Option<u32> {
        (s.get(at) == Some(&b'\\') && s.get(at + 1) == Some(&b'u'))
            .then(|| hex4(s, at + 2))
            .flatten()
    };
    let src = text.to_vec();
    let mut out = Vec::with_capacity(src.len());
    let (mut i, mut in_string) = (0, false);
    while i < src.len() {
        let b = src[i];
        if !in_string {
            in_string = b == b'"';
            out.push(b);
            i += 1;
            continue;
        }
        match b {
            b'"' => {
                in_string = false;
                out.push(b);
                i += 1;
            }
            b'\\' => match escape(&src, i) {
                Some(0xD800..=0xDBFF) if matches!(escape(&src, i + 6), Some(0xDC00..=0xDFFF)) => {
                    out.extend_from_slice(&src[i..i + 12]);
                    i += 12;
                }
                Some(0xD800..=0xDFFF) => {
                    out.extend_from_slice(b"\\ufffd");
                    i += 6;
                }
                _ => {
                    let end = (i + 2).min(src.len());
                    out.extend_from_slice(&src[i..end]);
                    i = end;
                }
            },
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

fn syntax_message(err: &serde_json::Error) -> String {
    // serde_json appends " at line L column C"; the position is carried separately.
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// The JSON type name used in messages.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Go's `encoding/json` key matching: an exact match, else a case-insensitive one.
///
/// Go folds with Unicode simple case folding, so `ſ` (long s) matches `s` and the Kelvin sign
/// matches `k`; comparing both the upper- and the lower-case forms covers those.
pub fn keys_match(key: &str, field: &str) -> bool {
    if key.is_ascii() && field.is_ascii() {
        // Only non-ASCII characters fold onto ASCII ones; between ASCII strings this is all.
        return key.eq_ignore_ascii_case(field);
    }
    key == field
        || key.eq_ignore_ascii_case(field)
        || key.to_uppercase() == field.to_uppercase()
        || key.to_lowercase() == field.to_lowercase()
}

/// A JSON object read through Go's field-matching rules; `path` names it in errors.
#[derive(Clone, Copy)]
pub struct GoObject<'a> {
    pairs: &'a [(String, GoJson)],
    path: &'a str,
}

const NO_PAIRS: &[(String, GoJson)] = &[];

impl<'a> GoObject<'a> {
    /// Views `value` as an object; anything else is a type error at `path` (`""` for the root).
    pub fn new(value: &'a GoJson, path: &'a str) -> Result<GoObject<'a>, DecodeError> {
        match value {
            GoJson::Object(pairs) => Ok(GoObject { pairs, path }),
            other => Err(DecodeError::Type {
                field: if path.is_empty() {
                    "(top level)".into()
                } else {
                    path.into()
                },
                path: schema_path(path),
                expected: "an object",
                found: other.type_name(),
            }),
        }
    }

    /// The top-level object of a document: `null` decodes as an empty object (Go leaves the
    /// zero value), anything else but an object is a type error.
    pub fn root(value: &'a GoJson) -> Result<GoObject<'a>, DecodeError> {
        match value {
            GoJson::Null => Ok(GoObject {
                pairs: NO_PAIRS,
                path: "",
            }),
            other => GoObject::new(other, ""),
        }
    }

    /// Every value given for `field`, in document order, `null`s included.
    pub fn all(&self, field: &'a str) -> impl Iterator<Item = &'a GoJson> + 'a {
        self.pairs
            .iter()
            .filter(move |(key, _)| keys_match(key, field))
            .map(|(_, value)| value)
    }

    /// Whether any key names `field`, even with `null`.
    pub fn has(&self, field: &'a str) -> bool {
        self.all(field).next().is_some()
    }

    fn field_path(&self, field: &str) -> String {
        if self.path.is_empty() {
            field.to_owned()
        } else {
            format!("{}.{field}", self.path)
        }
    }

    fn type_error(
        &self,
        field: &str,
        inner: Option<PathSeg>,
        expected: &'static str,
        found: &GoJson,
    ) -> DecodeError {
        let shown = match &inner {
            None => field.to_owned(),
            Some(PathSeg::Index(i)) => format!("{field}[{i}]"),
            Some(PathSeg::Key(key) | PathSeg::MapKey(key)) => format!("{field}.{key}"),
        };
        let mut path = schema_path(self.path);
        path.push(PathSeg::Key(field.to_owned()));
        path.extend(inner);
        DecodeError::Type {
            field: self.field_path(&shown),
            path,
            expected,
            found: found.type_name(),
        }
    }

    /// A string field; absent gives `""`, Go's zero value; `null` keeps what an earlier key
    /// gave; the last string wins.
    pub fn string(&self, field: &'a str) -> Result<String, DecodeError> {
        let mut out = String::new();
        for value in self.all(field) {
            match value {
                GoJson::Null => {}
                GoJson::String(s) => out.clone_from(s),
                other => return Err(self.type_error(field, None, "a string", other)),
            }
        }
        Ok(out)
    }

    /// An array of strings, `None` when absent or when the last key gives `null`; the last
    /// array wins whole; a `null` element becomes `""`.
    pub fn strings_opt(&self, field: &'a str) -> Result<Option<Vec<String>>, DecodeError> {
        let mut out = None;
        for value in self.all(field) {
            out = match value {
                GoJson::Null => None,
                GoJson::Array(items) => Some(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| match item {
                            GoJson::String(s) => Ok(s.clone()),
                            GoJson::Null => Ok(String::new()),
                            other => Err(self.type_error(
                                field,
                                Some(PathSeg::Index(i)),
                                "a string",
                                other,
                            )),
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                ),
                other => return Err(self.type_error(field, None, "an array of strings", other)),
            };
        }
        Ok(out)
    }

    /// [`GoObject::strings_opt`], absent as empty.
    pub fn strings(&self, field: &'a str) -> Result<Vec<String>, DecodeError> {
        Ok(self.strings_opt(field)?.unwrap_or_default())
    }

    /// An object of strings (Go `map[string]string`): every object given merges into one map
    /// (later keys overwrite), `null` empties it; a `null` value becomes `""`.
    pub fn string_map(&self, field: &'a str) -> Result<BTreeMap<String, String>, DecodeError> {
        let mut out = BTreeMap::new();
        for value in self.all(field) {
            match value {
                GoJson::Null => out.clear(),
                GoJson::Object(pairs) => {
                    for (key, value) in pairs {
                        let value = match value {
                            GoJson::String(s) => s.clone(),
                            GoJson::Null => String::new(),
                            other => {
                                return Err(self.type_error(
                                    field,
                                    Some(PathSeg::MapKey(key.clone())),
                                    "a string",
                                    other,
                                ));
                            }
                        };
                        out.insert(key.clone(), value);
                    }
                }
                other => return Err(self.type_error(field, None, "an object of strings", other)),
            }
        }
        Ok(out)
    }

    /// An object of any JSON (Go `map[string]interface{}`): objects given merge key by key,
    /// each value taken whole; `null` empties it.
    pub fn any_map(&self, field: &'a str) -> Result<Map<String, Value>, DecodeError> {
        let mut out = Map::new();
        for value in self.all(field) {
            match value {
                GoJson::Null => out.clear(),
                GoJson::Object(pairs) => {
                    for (key, value) in pairs {
                        out.insert(key.clone(), value.to_value());
                    }
                }
                other => return Err(self.type_error(field, None, "an object", other)),
            }
        }
        Ok(out)
    }

    /// A pointer to a struct: each object given is decoded into the same struct with `merge`
    /// (fields merge); `null` resets it to `None`. Errors inside name it `field` (structs nest
    /// one level deep in matchbox's files).
    pub fn object<T: Default>(
        &self,
        field: &'a str,
        mut merge: impl FnMut(&mut T, GoObject<'a>) -> Result<(), DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        let mut out: Option<T> = None;
        for value in self.all(field) {
            match value {
                GoJson::Null => out = None,
                other => {
                    let object = GoObject::new(other, field)?;
                    merge(out.get_or_insert_with(T::default), object)?;
                }
            }
        }
        Ok(out)
    }
}

/// A dotted schema path (`"boot"`, `""` for the root) as steps; schema field names hold no dots.
fn schema_path(path: &str) -> Vec<PathSeg> {
    path.split('.')
        .filter(|step| !step.is_empty())
        .map(|step| PathSeg::Key(step.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn go(value: Value) -> GoJson {
        parse_go(value.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn repeated_keys_apply_in_order_like_go() {
        let doc = parse_go(
            br#"{"profile": "a", "Profile": "b", "name": "n", "NAME": null,
                "selector": {"mac": "m", "os": "x"}, "Selector": {"os": "y", "r": "1"},
                "metadata": {"a": {"x": 1}, "k": 1}, "metadata": {"a": {"y": 2}},
                "args": ["1"], "args": ["2"]}"#,
        )
        .unwrap();
        let obj = GoObject::new(&doc, "").unwrap();
        assert_eq!(obj.string("profile").unwrap(), "b");
        assert_eq!(
            obj.string("name").unwrap(),
            "n",
            "null keeps the earlier string"
        );
        let selector = obj.string_map("selector").unwrap();
        assert_eq!(
            selector.into_iter().collect::<Vec<_>>(),
            [("mac", "m"), ("os", "y"), ("r", "1")].map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        let metadata = obj.any_map("metadata").unwrap();
        assert_eq!(Value::Object(metadata), json!({"a": {"y": 2}, "k": 1}));
        assert_eq!(obj.strings("args").unwrap(), vec!["2"]);
        let doc = parse_go(br#"{"selector": {"a": "1"}, "selector": null}"#).unwrap();
        let obj = GoObject::new(&doc, "").unwrap();
        assert!(obj.string_map("selector").unwrap().is_empty());
    }

    #[test]
    fn invalid_text_becomes_replacement_characters_like_go() {
        let s = |bytes: &[u8]| match parse_go(bytes).unwrap() {
            GoJson::String(s) => s,
            other => panic!("{other:?}"),
        };
        assert_eq!(s(b"\"caf\xe9\""), "caf\u{fffd}");
        // Go replaces every byte of an invalid sequence on its own.
        assert_eq!(s(b"\"\xe9\x80x\""), "\u{fffd}\u{fffd}x");
        assert_eq!(s(br#""\ud800""#), "\u{fffd}");
        assert_eq!(
            s(br#""\udc00\ud83d\ude00\ud800\u0041""#),
            "\u{fffd}\u{1f600}\u{fffd}A"
        );
        assert_eq!(
            s(br#""\\ud800""#),
            "\\ud800",
            "an escaped backslash is no escape"
        );
        assert!(parse_go(b"{\xe9: 1}").is_err());
    }

    #[test]
    fn keys_match_like_go() {
        assert!(keys_match("ignition_id", "ignition_id"));
        assert!(keys_match("Ignition_ID", "ignition_id"));
        assert!(keys_match("ſelector", "selector"));
        assert!(keys_match("\u{212a}ernel", "kernel"));
        assert!(!keys_match("ignitionId", "ignition_id"));
    }

    #[test]
    fn fields_read_with_go_zero_values() {
        let value = go(json!({"ID": "x", "args": ["a", null], "sel": {"k": null}, "n": null}));
        let obj = GoObject::new(&value, "").unwrap();
        assert_eq!(obj.string("id").unwrap(), "x");
        assert_eq!(obj.string("n").unwrap(), "");
        assert_eq!(obj.string("missing").unwrap(), "");
        assert_eq!(obj.strings("args").unwrap(), vec!["a", ""]);
        assert_eq!(obj.string_map("sel").unwrap()["k"], "");
    }

    #[test]
    fn wrong_types_fail_with_the_field_named() {
        let value = go(json!({"boot": {"initrd": [1]}, "selector": {"mac": 5}}));
        let obj = GoObject::new(&value, "").unwrap();
        let boot = GoObject::new(obj.all("boot").next().unwrap(), "boot").unwrap();
        assert_eq!(
            boot.strings("initrd").unwrap_err().to_string(),
            "field boot.initrd[0]: expected a string, found a number"
        );
        assert_eq!(
            obj.string_map("selector").unwrap_err().to_string(),
            "field selector.mac: expected a string, found a number"
        );
        match boot.strings("initrd").unwrap_err() {
            DecodeError::Type { path, .. } => assert_eq!(
                path,
                vec![
                    PathSeg::Key("boot".into()),
                    PathSeg::Key("initrd".into()),
                    PathSeg::Index(0)
                ]
            ),
            other => panic!("{other:?}"),
        }
        assert!(GoObject::new(&go(json!([])), "").is_err());
        assert!(
            GoObject::root(&GoJson::Null)
                .unwrap()
                .string("id")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let err = parse_json(b"{\n  \"id\": \"x\",\n}").unwrap_err();
        match err {
            DecodeError::Syntax { line, column, .. } => assert_eq!((line, column), (3, 1)),
            other => panic!("{other:?}"),
        }
        assert!(parse_json(b"").is_err());
        assert!(parse_json(b"{} {}").is_err());
    }
}
