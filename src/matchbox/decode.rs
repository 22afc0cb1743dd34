//! Reading JSON the way matchbox's Go code reads it.
//!
//! matchbox decodes profiles and groups with Go's `encoding/json` into protobuf-generated
//! structs. That decoder matches object keys to field names case-insensitively, ignores unknown
//! keys, treats `null` as "leave the zero value", and fails the whole file when a value has the
//! wrong type (matchbox then skips the file). caas reads the same files with the same rules, so
//! what it reads is what the server will serve.

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

/// One step into a JSON document: an object key (as the schema names it, or as the file spells a
/// map key) or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

/// Parses `bytes` as one JSON value, keeping the position of a syntax error.
pub fn parse_json(bytes: &[u8]) -> Result<Value, DecodeError> {
    serde_json::from_slice(bytes).map_err(|err| DecodeError::Syntax {
        line: err.line(),
        column: err.column(),
        message: syntax_message(&err),
    })
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
    map: &'a Map<String, Value>,
    path: &'a str,
}

impl<'a> GoObject<'a> {
    /// Views `value` as an object; anything else is a type error at `path` (`""` for the root).
    pub fn new(value: &'a Value, path: &'a str) -> Result<GoObject<'a>, DecodeError> {
        match value {
            Value::Object(map) => Ok(GoObject { map, path }),
            other => Err(DecodeError::Type {
                field: if path.is_empty() {
                    "(top level)".into()
                } else {
                    path.into()
                },
                path: schema_path(path),
                expected: "an object",
                found: type_name(other),
            }),
        }
    }

    /// The value for `field`, `None` when absent or `null`.
    pub fn get(&self, field: &str) -> Option<&'a Value> {
        let value = self.map.get(field).or_else(|| {
            self.map
                .iter()
                .find(|(key, _)| keys_match(key, field))
                .map(|(_, value)| value)
        })?;
        (!value.is_null()).then_some(value)
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
        found: &Value,
    ) -> DecodeError {
        let shown = match &inner {
            None => field.to_owned(),
            Some(PathSeg::Index(i)) => format!("{field}[{i}]"),
            Some(PathSeg::Key(key)) => format!("{field}.{key}"),
        };
        let mut path = schema_path(self.path);
        path.push(PathSeg::Key(field.to_owned()));
        path.extend(inner);
        DecodeError::Type {
            field: self.field_path(&shown),
            path,
            expected,
            found: type_name(found),
        }
    }

    /// A string field; absent or `null` gives `""`, as Go's zero value.
    pub fn string(&self, field: &str) -> Result<String, DecodeError> {
        match self.get(field) {
            None => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(self.type_error(field, None, "a string", other)),
        }
    }

    /// An array of strings; a `null` element becomes `""`, as Go decodes it.
    pub fn strings(&self, field: &str) -> Result<Vec<String>, DecodeError> {
        match self.get(field) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(s) => Ok(s.clone()),
                    Value::Null => Ok(String::new()),
                    other => {
                        Err(self.type_error(field, Some(PathSeg::Index(i)), "a string", other))
                    }
                })
                .collect(),
            Some(other) => Err(self.type_error(field, None, "an array of strings", other)),
        }
    }

    /// An object of strings (Go `map[string]string`); a `null` value becomes `""`.
    pub fn string_map(
        &self,
        field: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, DecodeError> {
        match self.get(field) {
            None => Ok(Default::default()),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(key, value)| match value {
                    Value::String(s) => Ok((key.clone(), s.clone())),
                    Value::Null => Ok((key.clone(), String::new())),
                    other => Err(self.type_error(
                        field,
                        Some(PathSeg::Key(key.clone())),
                        "a string",
                        other,
                    )),
                })
                .collect(),
            Some(other) => Err(self.type_error(field, None, "an object of strings", other)),
        }
    }

    /// An object of any JSON (Go `map[string]interface{}`).
    pub fn any_map(&self, field: &str) -> Result<Map<String, Value>, DecodeError> {
        match self.get(field) {
            None => Ok(Map::new()),
            Some(Value::Object(map)) => Ok(map.clone()),
            Some(other) => Err(self.type_error(field, None, "an object", other)),
        }
    }

    /// The raw object, for callers that inspect keys (lint).
    pub fn map(&self) -> &'a Map<String, Value> {
        self.map
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
        let value = json!({"ID": "x", "args": ["a", null], "sel": {"k": null}, "n": null});
        let obj = GoObject::new(&value, "").unwrap();
        assert_eq!(obj.string("id").unwrap(), "x");
        assert_eq!(obj.string("n").unwrap(), "");
        assert_eq!(obj.string("missing").unwrap(), "");
        assert_eq!(obj.strings("args").unwrap(), vec!["a", ""]);
        assert_eq!(obj.string_map("sel").unwrap()["k"], "");
    }

    #[test]
    fn wrong_types_fail_with_the_field_named() {
        let value = json!({"boot": {"initrd": [1]}, "selector": {"mac": 5}});
        let obj = GoObject::new(&value, "").unwrap();
        let boot = GoObject::new(obj.get("boot").unwrap(), "boot").unwrap();
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
        assert!(GoObject::new(&json!([]), "").is_err());
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
