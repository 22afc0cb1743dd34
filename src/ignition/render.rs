//! The Tera environment caas renders Ignition templates in: every value is escaped by
//! [`quote`](super::quote::quote), raw output is refused, and the filters made for Ignition
//! (`quote`, `json`, `data_url`, `base64`, `sha512`) are registered.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use base64::Engine as _;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha512};
use tera::{Context, Kwargs, State, Tera};

use super::placement;
use super::quote;
use super::templates::{Template, TemplateSet};
use crate::error::invalid;

/// Characters a data URL keeps as they are: RFC 3986 unreserved ones.
const DATA_URL_KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A Tera environment holding a set of templates, each checked by [`placement::check`].
pub struct Renderer {
    tera: Tera,
    variables: BTreeMap<String, Variables>,
}

/// The variables a template (with what it includes) reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Variables {
    /// Every top-level variable it refers to.
    pub referenced: BTreeSet<String>,
    /// Those it never tests with `is defined` / `is not defined` nor gives a `default`: a
    /// render without one of them is refused. (Tera itself would only refuse one written
    /// out directly; joined with `~` an undefined value silently becomes "".)
    pub required: BTreeSet<String>,
}

impl Renderer {
    /// Compiles every template of `set`. A syntax error or a misplaced `{{ … }}` is an
    /// [`InvalidInput`](crate::error::InvalidInput) naming the template and the line.
    pub fn new(set: &TemplateSet) -> anyhow::Result<Renderer> {
        let mut tera = Tera::new();
        // Every template, whatever its name, is escaped with the YAML quoting below.
        tera.autoescape_on([""]);
        tera.set_escape_fn(escape_yaml);
        register_filters(&mut tera);
        let templates: Vec<&Template> = set.iter().collect();
        tera.add_raw_templates(
            templates
                .iter()
                .map(|t| (t.name.as_str(), t.source.as_ref())),
        )
        .map_err(|err| invalid(describe_tera_error(&err, None)))?;
        for template in &templates {
            placement::check(&template.source).map_err(|misplaced| {
                invalid(format!("template {:?} {misplaced}", template.name))
            })?;
        }
        let mut variables = BTreeMap::new();
        for template in &templates {
            let referenced: BTreeSet<String> = tera
                .get_template_variables(&template.name)
                .map_err(|err| invalid(describe_tera_error(&err, Some(&template.name))))?
                .into_iter()
                .map(str::to_owned)
                .collect();
            let mut optional = BTreeSet::new();
            for name in include_closure(set, &template.name) {
                if let Some(included) = set.get(&name) {
                    optional.extend(optional_names(&included.source));
                }
            }
            let required = referenced.difference(&optional).cloned().collect();
            variables.insert(
                template.name.clone(),
                Variables {
                    referenced,
                    required,
                },
            );
        }
        Ok(Renderer { tera, variables })
    }

    /// What `name` reads; `None` for an unknown template.
    pub fn variables(&self, name: &str) -> Option<&Variables> {
        self.variables.get(name)
    }

    /// Renders `name` with `vars`; an undefined variable is an error that names it and lists
    /// the variables there are.
    pub fn render(&self, name: &str, vars: &Map<String, Value>) -> anyhow::Result<String> {
        if let Some(variables) = self.variables.get(name) {
            let missing: Vec<&str> = variables
                .required
                .iter()
                .filter(|var| !vars.contains_key(var.as_str()))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                let given: Vec<&str> = vars.keys().map(String::as_str).collect();
                return Err(invalid(format!(
                    "template {name:?} needs {} {}, which {} not given (variables given: {})",
                    if missing.len() == 1 {
                        "variable"
                    } else {
                        "variables"
                    },
                    missing
                        .iter()
                        .map(|v| format!("{v:?}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    if missing.len() == 1 { "is" } else { "are" },
                    if given.is_empty() {
                        "none".to_owned()
                    } else {
                        given.join(", ")
                    },
                )));
            }
        }
        let context = Context::from_serialize(vars)
            .map_err(|err| invalid(format!("template variables: {err}")))?;
        self.tera
            .render(name, &context)
            .map_err(|err| invalid(describe_tera_error(&err, Some(name))))
    }
}

/// `name` and every template it includes, directly or not.
fn include_closure(set: &TemplateSet, name: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![name.to_owned()];
    while let Some(current) = todo.pop() {
        if !seen.insert(current.clone()) {
            continue;
        }
        if let Some(template) = set.get(&current) {
            todo.extend(included_names(&template.source));
        }
    }
    seen
}

/// The template names of `{% include "name" %}` tags.
fn included_names(source: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find("include") {
        let before = rest[..at].trim_end_matches([' ', '-']);
        rest = &rest[at + "include".len()..];
        if !before.ends_with("{%") {
            continue;
        }
        let after = rest.trim_start();
        if let Some(quoted) = after.strip_prefix('"').or_else(|| after.strip_prefix('\''))
            && let Some(end) = quoted.find(['"', '\''])
        {
            names.push(quoted[..end].to_owned());
        }
    }
    names
}

/// Variables a template treats as optional: tested with `is defined` / `is not defined`, or
/// given a `default`.
fn optional_names(source: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for marker in [" is defined", " is not defined"] {
        for (at, _) in source.match_indices(marker) {
            names.extend(identifier_before(&source[..at]));
        }
    }
    for (at, _) in source.match_indices("default(") {
        let before = source[..at].trim_end();
        if let Some(before) = before.strip_suffix('|') {
            names.extend(identifier_before(before));
        }
    }
    names
}

/// The root of the dotted identifier ending `text` (`user` for `… user.groups`).
fn identifier_before(text: &str) -> Option<String> {
    let text = text.trim_end();
    let start = text
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .map_or(0, |i| i + 1);
    let ident = &text[start..];
    let root = ident.split('.').next().unwrap_or_default();
    (!root.is_empty() && !root.starts_with(|c: char| c.is_ascii_digit())).then(|| root.to_owned())
}

/// The escape function of every template: a value becomes one double-quoted scalar.
fn escape_yaml(input: &str, out: &mut dyn io::Write) -> io::Result<()> {
    out.write_all(quote::quote(input).as_bytes())
}

fn register_filters(tera: &mut Tera) {
    // `{{ x | safe }}` would write a value raw, where it could change the document.
    tera.register_filter(
        "safe",
        |_: &tera::Value, _: Kwargs, _: &State| -> tera::TeraResult<tera::Value> {
            Err(tera::Error::message(
                "the `safe` filter is not available in caas templates: values are always \
                 quoted (use `json` to insert a list or a map)",
            ))
        },
    );
    tera.register_filter("quote", |value: &tera::Value, _: Kwargs, _: &State| {
        let text = match value.as_str() {
            Some(text) => quote::quote(text),
            None => quote::quote(&value.to_string()),
        };
        tera::Value::safe_string(&text)
    });
    tera.register_filter("json", |value: &tera::Value, _: Kwargs, _: &State| {
        let json: Value = serde_json::to_value(value)
            .map_err(|err| tera::Error::message(format!("cannot write as JSON: {err}")))?;
        Ok::<_, tera::Error>(tera::Value::safe_string(&quote::json(&json)))
    });
    tera.register_filter("data_url", |value: &str, _: Kwargs, _: &State| {
        data_url(value.as_bytes())
    });
    tera.register_filter("base64", |value: &str, _: Kwargs, _: &State| {
        base64::engine::general_purpose::STANDARD.encode(value.as_bytes())
    });
    tera.register_filter("sha512", |value: &str, _: Kwargs, _: &State| {
        format!("sha512-{}", hex::encode(Sha512::digest(value.as_bytes())))
    });
}

/// An RFC 2397 data URL holding `bytes`, percent-encoded: what Ignition's `contents.source`
/// takes for inline file contents.
pub fn data_url(bytes: &[u8]) -> String {
    let mut url = String::with_capacity(6 + bytes.len() * 3 / 2);
    url.push_str("data:,");
    match std::str::from_utf8(bytes) {
        Ok(text) => url.extend(utf8_percent_encode(text, DATA_URL_KEEP)),
        Err(_) => url.extend(percent_encoding::percent_encode(bytes, DATA_URL_KEEP)),
    }
    url
}

/// One line: `template "x" line N: message` (Tera's own reports span several lines).
fn describe_tera_error(err: &tera::Error, template: Option<&str>) -> String {
    let mut message = match err.kind() {
        tera::ErrorKind::SyntaxError(report) | tera::ErrorKind::RenderingError(report) => {
            format!(
                "template {:?} line {}: {}",
                report.filename(),
                report.span().start_line,
                report.message()
            )
        }
        kind => match template {
            Some(name) => format!("template {name:?}: {kind}"),
            None => kind.to_string(),
        },
    };
    // A filter's own error comes as the source of Tera's.
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ignition::templates::TemplateSet;

    fn render(source: &str, vars: Value) -> anyhow::Result<String> {
        let mut set = TemplateSet::empty();
        set.add_source("t", source.to_owned());
        let renderer = Renderer::new(&set)?;
        renderer.render("t", vars.as_object().unwrap())
    }

    #[test]
    fn every_value_is_one_quoted_scalar() {
        let out = render(
            "a: {{ a }}\nb: {{ n }}\nc: {{ \"x-\" ~ a }}\n",
            serde_json::json!({"a": "it: \"q\"\n#", "n": 420}),
        )
        .unwrap();
        assert_eq!(
            out,
            "a: \"it: \\\"q\\\"\\n#\"\nb: 420\nc: \"x-it: \\\"q\\\"\\n#\"\n"
        );
    }

    #[test]
    fn filters_for_ignition() {
        let out = render(
            "q: {{ n | quote }}\nj: {{ l | json }}\nd: {{ t | data_url }}\nb: {{ t | base64 }}\nh: {{ t | sha512 }}\n",
            serde_json::json!({"n": 1, "l": ["a", {"k": true}], "t": "hi there\n"}),
        )
        .unwrap();
        let expected_hash = hex::encode(Sha512::digest(b"hi there\n"));
        assert_eq!(
            out,
            format!(
                "q: \"1\"\nj: [\"a\", {{\"k\": true}}]\nd: \"data:,hi%20there%0A\"\nb: \"aGkgdGhlcmUK\"\nh: \"sha512-{expected_hash}\"\n"
            )
        );
    }

    #[test]
    fn raw_output_is_refused() {
        let err = render("a: {{ v | safe }}\n", serde_json::json!({"v": "x"})).unwrap_err();
        assert!(err.to_string().contains("`safe` filter"), "{err}");
    }

    #[test]
    fn an_undefined_variable_is_named_with_the_ones_there_are() {
        let err = render(
            "a: {{ here }}\nb: {{ missing }}\n",
            serde_json::json!({"here": 1, "other": 2}),
        )
        .unwrap_err();
        let message = err.to_string();
        assert_eq!(
            message,
            "template \"t\" needs variable \"missing\", which is not given (variables given: here, other)"
        );
        // What Tera finds while rendering (a missing field) comes on one line with its line.
        let err = render(
            "a: 1\nb: {{ m.missing }}\n",
            serde_json::json!({"m": {"k": 1}}),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("template \"t\" line 2:"), "{err}");
        assert!(err.contains("`missing`"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn a_variable_joined_with_text_is_required_too() {
        let err = render(
            "a: {{ \"x=\" ~ needed }}\nb: {{ maybe | default(value=1) }}\n{% if opt is defined %}c: {{ opt }}{% endif %}\n",
            serde_json::json!({"given": 1}),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "template \"t\" needs variable \"needed\", which is not given (variables given: given)"
        );
        let out = render(
            "a: {{ \"x=\" ~ needed }}\nb: {{ maybe | default(value=1) }}\n{% if opt is defined %}c: {{ opt }}{% endif %}\n",
            serde_json::json!({"needed": "y"}),
        )
        .unwrap();
        assert_eq!(out, "a: \"x=y\"\nb: 1\n\n");
    }

    #[test]
    fn optional_variables_are_found_in_included_templates() {
        assert_eq!(
            included_names("{% include \"_users\" %}\n{%- include '_b' -%}"),
            vec!["_users", "_b"]
        );
        assert_eq!(
            optional_names(
                "{% if a is defined %}{% if b.c is not defined %}{{ d|default(value=1) }}"
            ),
            ["a", "b", "d"].into_iter().map(String::from).collect()
        );
    }

    proptest::proptest! {
        /// Whatever a value holds, the rendered YAML has the shape the template gave it and
        /// holds the value exactly where the template put it.
        #[test]
        fn no_value_changes_the_shape_of_the_document(v in "\\PC*|[\\x00-\\x7f\\u{85}\\u{2028}\\u{feff}]*") {
            // Keys the template writes itself: the value as a key would collide with them.
            proptest::prop_assume!(!["a", "list", "map", "block", "last", "k"].contains(&v.as_str()));
            let out = render(
                "a: {{ v }}\nlist:\n  - {{ v }}\n  - [{{ v }}, {{ \"x\" ~ v }}]\nmap: {k: {{ v }}, {{ v }}: 1}\n{{ v }}: key\nblock: |\n  line {{ v }}\n# {{ v }}\nlast: {{ v | json }}\n",
                serde_json::json!({ "v": v }),
            )
            .unwrap();
            let parsed: Value = serde_saphyr::from_str(&out).unwrap();
            let quoted = super::quote::quote(&v);
            let mut expected = serde_json::json!({
                "a": v,
                "list": [v, [v, format!("x{v}")]],
                "map": {"k": v},
                "block": format!("line {quoted}\n"),
                "last": v,
            });
            expected["map"][v.as_str()] = 1.into();
            expected[v.as_str()] = "key".into();
            proptest::prop_assert_eq!(parsed, expected);
        }
    }

    #[test]
    fn data_urls_keep_only_unreserved_characters() {
        assert_eq!(data_url(b"a-b_c.d~e"), "data:,a-b_c.d~e");
        assert_eq!(data_url("é #\n".as_bytes()), "data:,%C3%A9%20%23%0A");
        assert_eq!(data_url(&[0xff, 0x00]), "data:,%FF%00");
    }
}
