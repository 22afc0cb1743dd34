//! Templates under `ignition/`, `cloud/` and `generic/`, checked as text.
//!
//! matchbox renders them with Go's `text/template` and `missingkey=error`, so a reference to a
//! key that the group does not provide makes every request for it a 404 (the template rendering
//! of matchbox's HTTP server, <https://github.com/poseidon/matchbox>). The data is the group's
//! metadata, its selectors (lower-cased keys, overriding metadata) and `request` (`query`,
//! `raw_query`).
//!
//! caas does not run Go templates; it scans the actions (`{{ … }}`) for field references on
//! the top-level data (`.key`, `.key.sub`) outside `range`/`with` blocks (where `.` changes
//! meaning), and treats a key as optional inside `{{ if index . "key" }}`, the idiom matchbox's
//! own examples use to guard optional keys (`index` on a missing key yields no value, not an
//! error).

use serde_json::{Map, Value};

use crate::matchbox::target::TemplateDialect;

/// A top-level field reference in a template: `.a.b` → `["a", "b"]`, at a byte offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRef {
    pub path: Vec<String>,
    pub offset: usize,
}

/// Why a template does not parse as Go template text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub offset: usize,
    pub message: String,
}

/// What a template needs from the group that serves it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TemplateInfo {
    /// References that fail when the key is missing.
    pub required: Vec<FieldRef>,
}

/// Scans the actions of `text`.
pub fn scan(text: &str) -> Result<TemplateInfo, SyntaxError> {
    let mut blocks = Blocks::default();
    let mut info = TemplateInfo::default();
    let mut at = 0;
    while let Some(action) = next_action(text, at) {
        let action = action?;
        at = action.end;
        let body = action.body;
        if body.starts_with("/*") {
            continue; // comment
        }
        let word = body
            .split(|c: char| c.is_whitespace() || c == '(')
            .next()
            .unwrap_or("");
        // The pipeline of `range`/`with` is evaluated with the outer `.`.
        let refs = field_refs(body, action.offset);
        match word {
            "if" => {
                blocks.require(&mut info, refs);
                blocks.0.push((Block::If, index_guard(&body[2..])));
            }
            "range" | "with" | "define" | "block" => {
                blocks.require(&mut info, refs);
                blocks.0.push((Block::Rebind, None));
            }
            "else" => {
                blocks.require(&mut info, refs);
                // `else if` re-guards; a plain else keeps the block but drops its guard.
                // (`{{else}}` of range/with runs with the outer `.`; it stays skipped, which
                // can only miss a finding, never invent one.)
                if let Some(top) = blocks.0.last_mut() {
                    let rest = body[4..].trim_start();
                    top.1 = rest.strip_prefix("if").and_then(index_guard);
                }
            }
            "end" => {
                if blocks.0.pop().is_none() {
                    return Err(SyntaxError {
                        offset: action.open,
                        message: "unexpected {{end}}".into(),
                    });
                }
            }
            _ => blocks.require(&mut info, refs),
        }
    }
    if !blocks.0.is_empty() {
        return Err(SyntaxError {
            offset: text.len(),
            message: "missing {{end}}".into(),
        });
    }
    Ok(info)
}

/// The byte ranges of every action (`{{` to `}}` inclusive), in order.
pub fn action_spans(text: &str) -> Result<Vec<std::ops::Range<usize>>, SyntaxError> {
    let mut spans = Vec::new();
    let mut at = 0;
    while let Some(action) = next_action(text, at) {
        let action = action?;
        spans.push(action.open..action.end);
        at = action.end;
    }
    Ok(spans)
}

/// One action, `{{ … }}`.
struct Action<'a> {
    /// The offset of its `{{`.
    open: usize,
    /// What is inside, without trim markers and leading space.
    body: &'a str,
    /// The offset of `body`.
    offset: usize,
    /// The offset just past its `}}`.
    end: usize,
}

/// The next action at or after `at`.
fn next_action(text: &str, at: usize) -> Option<Result<Action<'_>, SyntaxError>> {
    let open = at + text[at..].find("{{")?;
    let body_start = open + 2;
    let Some(close) = find_close(text, body_start) else {
        return Some(Err(SyntaxError {
            offset: open,
            message: "unclosed action: `{{` without a matching `}}`".into(),
        }));
    };
    let mut body = &text[body_start..close];
    let mut offset = body_start;
    if let Some(rest) = body.strip_prefix('-') {
        body = rest;
        offset += 1;
    }
    let body = body.strip_suffix('-').unwrap_or(body);
    let trimmed = body.trim_start();
    Some(Ok(Action {
        open,
        body: trimmed,
        offset: offset + (body.len() - trimmed.len()),
        end: close + 2,
    }))
}

#[derive(Clone, Copy, PartialEq)]
enum Block {
    /// `if` (and `else if`): `.` unchanged; may guard a key.
    If,
    /// `range` / `with` / `define` / `block`: `.` rebound.
    Rebind,
}

/// The blocks open at an action, each `if` with the key it guards.
#[derive(Default)]
struct Blocks(Vec<(Block, Option<String>)>);

impl Blocks {
    /// Keeps the references that fail on a missing key: those outside every block that rebinds
    /// `.` and not guarded by an enclosing `if`.
    fn require(&self, info: &mut TemplateInfo, refs: Vec<FieldRef>) {
        if self.0.iter().any(|(block, _)| *block == Block::Rebind) {
            return;
        }
        for r in refs {
            let first = r.path[0].as_str();
            if self
                .0
                .iter()
                .any(|(_, guard)| guard.as_deref() == Some(first))
            {
                continue;
            }
            info.required.push(r);
        }
    }
}

/// The offset of the `}}` closing the action that starts at `from`, skipping string literals.
fn find_close(text: &str, from: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if bytes.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// `index . "key"` at the start of an `if` condition guards `key`.
fn index_guard(cond: &str) -> Option<String> {
    let rest = cond.trim_start().strip_prefix("index")?;
    let rest = rest.trim_start().strip_prefix('.')?;
    let rest = rest.trim_start().strip_prefix('"')?;
    let end = rest.find('"')?;
    Some(rest[..end].to_owned())
}

/// Field chains on `.` in an action body: `.a`, `.a.b`; not `$x.a`, `(f).a` or literals.
fn field_refs(body: &str, offset: usize) -> Vec<FieldRef> {
    let bytes = body.as_bytes();
    let mut refs = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' | b'`' => {
                let quote = bytes[i];
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    if quote == b'"' && bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'.' => {
                let prev = i.checked_sub(1).map(|p| bytes[p]);
                let starts_chain = prev
                    .is_none_or(|p| p.is_ascii_whitespace() || p == b'(' || p == b'|' || p == b',');
                let start = i;
                let mut path = Vec::new();
                while i < bytes.len() && bytes[i] == b'.' {
                    let name_start = i + 1;
                    let mut j = name_start;
                    while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_')
                    {
                        j += 1;
                    }
                    if j == name_start {
                        break;
                    }
                    path.push(body[name_start..j].to_owned());
                    i = j;
                }
                if starts_chain && !path.is_empty() && !path[0].as_bytes()[0].is_ascii_digit() {
                    refs.push(FieldRef {
                        path,
                        offset: offset + start,
                    });
                }
                if i == start {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    refs
}

/// The data matchbox renders a group's templates with (`collectVariables`): metadata, then
/// selectors with lower-cased keys, then `request`. Only the shape matters here.
pub fn template_data(group: &crate::matchbox::Group) -> Map<String, Value> {
    let mut data = group.metadata.clone();
    for (key, value) in &group.selector {
        data.insert(key.to_lowercase(), Value::String(value.clone()));
    }
    let mut request = Map::new();
    request.insert("query".into(), Value::Object(Map::new()));
    request.insert("raw_query".into(), Value::String(String::new()));
    data.insert("request".into(), Value::Object(request));
    data
}

/// The first reference `data` cannot satisfy, as the dotted path that fails.
pub fn missing_key(data: &Map<String, Value>, path: &[String]) -> Option<String> {
    // `request.query.<label>` depends on the request: not checked.
    if path.first().map(String::as_str) == Some("request") {
        return None;
    }
    let mut current = data;
    for (depth, key) in path.iter().enumerate() {
        match current.get(key) {
            None => return Some(path[..=depth].join(".")),
            Some(Value::Object(map)) => current = map,
            // A field of a non-map fails too, but that is a type problem of the data,
            // not a missing key: leave it to the template author.
            Some(_) => return None,
        }
    }
    None
}

/// The dialect a template is written in, from its top-level `variant:` key (Butane has one,
/// Container Linux Configs and Fuze do not), with its `version:` when it has one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dialect {
    pub dialect: TemplateDialect,
    pub variant: Option<(String, usize)>,
    pub version: Option<(String, usize)>,
}

pub fn dialect(text: &str) -> Dialect {
    let top_level = |key: &str| -> Option<(String, usize)> {
        let mut offset = 0;
        for line in text.split_inclusive('\n') {
            if let Some(rest) = line.strip_prefix(key).and_then(|r| r.strip_prefix(':')) {
                let value = rest
                    .split('#')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .trim_matches(|c| c == '"' || c == '\'')
                    .to_owned();
                return Some((
                    value,
                    offset + key.len() + 1 + (rest.len() - rest.trim_start().len()),
                ));
            }
            offset += line.len();
        }
        None
    };
    let variant = top_level("variant");
    Dialect {
        dialect: if variant.is_some() {
            TemplateDialect::Butane
        } else {
            TemplateDialect::ContainerLinuxConfig
        },
        variant,
        version: top_level("version"),
    }
}

/// Whether matchbox v0.11's Butane can translate `variant`/`version` to a spec it serves
/// (3.4 or older): fcos up to 1.5.0 and flatcar up to 1.1.0. `None`: a variant caas does not know.
pub fn butane_servable(variant: &str, version: &str) -> Option<bool> {
    let parts: Vec<u64> = version
        .split('.')
        .map(|p| p.parse().unwrap_or(u64::MAX))
        .collect();
    let (major, minor) = (parts.first().copied()?, parts.get(1).copied().unwrap_or(0));
    match variant {
        "fcos" => Some(major == 1 && minor <= 5),
        "flatcar" => Some(major == 1 && minor <= 1),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn required(text: &str) -> Vec<String> {
        scan(text)
            .unwrap()
            .required
            .into_iter()
            .map(|r| r.path.join("."))
            .collect()
    }

    #[test]
    fn finds_top_level_references() {
        assert_eq!(
            required("a {{.etcd_name}} b {{ .x.y }}"),
            vec!["etcd_name", "x.y"]
        );
        assert_eq!(required("{{- .trimmed -}}"), vec!["trimmed"]);
        assert_eq!(required("{{ printf \"%s\" .a }} {{ \".lit\" }}"), vec!["a"]);
        assert_eq!(required("{{ $x.field }} {{ 1.5 }}"), Vec::<String>::new());
    }

    #[test]
    fn range_and_with_rebind_dot_and_index_guards() {
        let text = "{{ if index . \"ssh_authorized_keys\" }}\n{{ range $e := .ssh_authorized_keys }}{{ .inner }}{{$e}}{{end}}\n{{end}}";
        assert_eq!(required(text), Vec::<String>::new());
        let text = "{{if index . \"baseurl\"}}-b {{.baseurl}}{{end}} {{.coreos_channel}}";
        assert_eq!(required(text), vec!["coreos_channel"]);
        // `if .x` itself fails on a missing key.
        assert_eq!(required("{{if .x}}{{end}}"), vec!["x"]);
        assert_eq!(required("{{ range .list }}{{ . }}{{ end }}"), vec!["list"]);
    }

    #[test]
    fn unbalanced_actions_are_syntax_errors() {
        assert!(scan("{{ .a ").is_err());
        assert!(scan("{{ if .a }}").is_err());
        assert!(scan("{{ end }}").is_err());
        assert!(scan("{{/* a comment }} */}}").is_ok());
        assert!(scan("{{ \"}}\" }}").is_ok());
    }

    #[test]
    fn missing_keys_against_group_data() {
        let mut group = crate::matchbox::Group::default();
        group
            .metadata
            .insert("a".into(), serde_json::json!({"b": 1}));
        group
            .selector
            .insert("MAC".into(), "52:54:00:00:00:01".into());
        let data = template_data(&group);
        let path = |s: &str| s.split('.').map(String::from).collect::<Vec<_>>();
        assert_eq!(missing_key(&data, &path("a.b")), None);
        assert_eq!(missing_key(&data, &path("a.c")), Some("a.c".into()));
        assert_eq!(missing_key(&data, &path("mac")), None);
        assert_eq!(missing_key(&data, &path("request.query.os")), None);
        assert_eq!(missing_key(&data, &path("nope")), Some("nope".into()));
    }

    #[test]
    fn dialects() {
        let d = dialect("---\nvariant: flatcar\nversion: 1.1.0\n");
        assert_eq!(d.dialect, TemplateDialect::Butane);
        assert_eq!(d.variant.as_ref().unwrap().0, "flatcar");
        assert_eq!(d.version.as_ref().unwrap().0, "1.1.0");
        assert_eq!(
            dialect("systemd:\n  units: []\n").dialect,
            TemplateDialect::ContainerLinuxConfig
        );
        assert_eq!(butane_servable("fcos", "1.5.0"), Some(true));
        assert_eq!(butane_servable("fcos", "1.6.0"), Some(false));
        assert_eq!(butane_servable("flatcar", "1.1.0"), Some(true));
        assert_eq!(butane_servable("openshift", "4.14.0"), None);
    }
}
