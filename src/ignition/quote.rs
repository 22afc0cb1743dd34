//! How a value is written into a template's YAML: as a double-quoted scalar that JSON and YAML 1.2
//! both read back as exactly that value, on one line, whatever it contains.

use std::fmt::Write as _;

use serde_json::Value;

/// `value` as a double-quoted scalar. Escaped: `"` and `\`, every control character (so the
/// result is one line), DEL and the C1 controls, the Unicode line and paragraph separators, the
/// byte-order mark and the non-characters U+FFFE/U+FFFF (which YAML does not allow raw), and `'`
/// (so the result cannot close a single-quoted scalar either). Everything else stays as it is.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    quote_into(value, &mut out);
    out
}

/// Appends [`quote`]`(value)` to `out`.
pub fn quote_into(value: &str, out: &mut String) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn needs_escape(c: char) -> bool {
    matches!(
        c,
        '\0'..='\x1f'
            | '\x7f'..='\u{9f}'
            | '\''
            | '\u{2028}'
            | '\u{2029}'
            | '\u{feff}'
            | '\u{fffe}'
            | '\u{ffff}'
    )
}

/// `value` as compact JSON on one line, strings quoted by [`quote`]; object keys are sorted
/// (serde_json's map), so the text is deterministic. A valid YAML flow node as well.
pub fn json(value: &Value) -> String {
    let mut out = String::new();
    json_into(value, &mut out);
    out
}

fn json_into(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => quote_into(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                json_into(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                quote_into(key, out);
                out.push_str(": ");
                json_into(item, out);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escapes_what_could_end_the_scalar_or_the_line() {
        assert_eq!(quote("plain"), r#""plain""#);
        assert_eq!(quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(quote("l1\nl2\r\t"), r#""l1\nl2\r\t""#);
        assert_eq!(quote("it's"), r#""it\u0027s""#);
        assert_eq!(
            quote("\u{0}\u{7f}\u{85}\u{2028}\u{feff}"),
            r#""\u0000\u007f\u0085\u2028\ufeff""#
        );
        assert_eq!(quote("été ✓ 🦀"), "\"été ✓ 🦀\"");
    }

    #[test]
    fn json_is_one_sorted_line() {
        let value = serde_json::json!({"b": [1, true, null], "a": "x\ny"});
        assert_eq!(json(&value), r#"{"a": "x\ny", "b": [1, true, null]}"#);
    }

    proptest! {
        #[test]
        fn json_and_yaml_read_back_the_exact_value(value in "\\PC*|[\\x00-\\x7f\\u{80}-\\u{a0}\\u{2028}\\u{feff}\\u{fffe}\\u{ffff}]*") {
            let quoted = quote(&value);
            prop_assert!(!quoted.contains('\n'));
            let from_json: String = serde_json::from_str(&quoted).unwrap();
            prop_assert_eq!(&from_json, &value);
            let from_yaml: String = serde_saphyr::from_str(&quoted).unwrap();
            prop_assert_eq!(&from_yaml, &value);
        }
    }
}
