//! Container Linux Config templates as matchbox v0.7–v0.9 turns them into Ignition 2.2.0.
//!
//! matchbox renders the template, then its transpiler (coreos/container-linux-config-transpiler)
//! reads the YAML into typed structs (go-yaml v2: a value of the wrong type is an error),
//! converts it and validates the result with Ignition 2.2's rules. Any error makes `/ignition`
//! answer 404, logged as `error parsing/converting Container Linux config: … no filesystem
//! specified`. Keys it does not know are only warnings: the transpiler drops them, so raw
//! Ignition JSON saved under a template name (`node.json`) loses `contents.source` and the like
//! and comes out as files with no contents.
//!
//! caas does not run the transpiler. It reads the template with every action `{{ … }}` masked
//! (the mask keeps lines and columns) and checks what it models: the key names and value types
//! of every section, and the rules that reject storage files, directories and links, systemd and
//! networkd units and passwd entries. What it does not model (the `ignition`, `etcd`, `flannel`,
//! `docker`, `locksmith` and `update` sections, disks, RAID and filesystems, a value that an
//! action decides, a structure that actions shape) it reports as [`Kind::Unverified`], never
//! as fine. Values rendered into unit files are assumed to stay on one line.

use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use super::spans::Pos;
use super::template;

/// What a finding means for the machines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The transpiler rejects the config: `/ignition` answers 404.
    Rejected,
    /// Raw Ignition JSON read as a Container Linux Config: served, but not what was written.
    Misread,
    /// A key the transpiler does not know: dropped, with a warning in matchbox's log.
    Ignored,
    /// Something caas does not model: it cannot say whether the transpiler accepts it.
    Unverified,
}

/// One finding in a template, at a line and column of the template's text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub pos: Pos,
    pub kind: Kind,
    pub message: String,
}

/// The upshot of [`check`] for one machine: the first note that decides it.
pub fn verdict(notes: &[Note]) -> Option<&Note> {
    [
        Kind::Rejected,
        Kind::Misread,
        Kind::Unverified,
        Kind::Ignored,
    ]
    .iter()
    .find_map(|kind| notes.iter().find(|n| n.kind == *kind))
}

/// A character no template writes: each action's characters become it, so a value (or a key)
/// that holds one came from an action.
const MASK: char = '\u{e000}';

/// Checks a Container Linux Config template as matchbox v0.8's transpiler would.
pub fn check(text: &str) -> Vec<Note> {
    let Ok(actions) = template::action_spans(text) else {
        return Vec::new(); // template-syntax reports it; matchbox answers 404 before this
    };
    let masked = mask(text, &actions);
    let mut notes: Vec<Note> = raw_ignition(text).into_iter().collect();
    notes.extend(walk_document(&masked, !actions.is_empty()));
    soften_conditional(&mut notes, &conditional_lines(text, &actions));
    notes
}

/// `text` with every character of every action (but newlines) replaced by [`MASK`], or by
/// spaces for actions that print nothing (`if`, `range`, `end`, comments…): Go leaves their
/// lines blank.
fn mask(text: &str, actions: &[Range<usize>]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for range in actions {
        out.push_str(&text[at..range.start]);
        let fill = if control_word(&text[range.clone()]).is_some() {
            ' '
        } else {
            MASK
        };
        for c in text[range.clone()].chars() {
            out.push(if c == '\n' { '\n' } else { fill });
        }
        at = range.end;
    }
    out.push_str(&text[at..]);
    out
}

/// The keyword of an action that prints nothing itself: `if`, `else`, `end`, `range`, `with`,
/// `define`, `block`, or `/*` for a comment.
fn control_word(action: &str) -> Option<&'static str> {
    let body = action
        .trim_start_matches("{{")
        .trim_start_matches('-')
        .trim_start();
    if body.starts_with("/*") {
        return Some("/*");
    }
    let word = body
        .split(|c: char| c.is_whitespace() || c == '}' || c == '-')
        .next()?;
    ["if", "else", "end", "range", "with", "define", "block"]
        .into_iter()
        .find(|w| *w == word)
}

/// The lines (1-based, inclusive) from each `if`/`range`/`with` to its `end`: what lies
/// there renders for some groups only, or more than once.
fn conditional_lines(text: &str, actions: &[Range<usize>]) -> Vec<Range<usize>> {
    let line_of = |offset: usize| 1 + text[..offset].matches('\n').count();
    let mut open = Vec::new();
    let mut blocks = Vec::new();
    for range in actions {
        match control_word(&text[range.clone()]) {
            Some("if" | "range" | "with" | "define" | "block") => open.push(range.start),
            Some("end") => {
                if let Some(start) = open.pop() {
                    blocks.push(line_of(start)..line_of(range.end) + 1);
                }
            }
            _ => {}
        }
    }
    blocks
}

/// A rejection inside a conditional block holds only for groups that render it.
fn soften_conditional(notes: &mut [Note], blocks: &[Range<usize>]) {
    for note in notes {
        if note.kind == Kind::Rejected && blocks.iter().any(|b| b.contains(&note.pos.line)) {
            note.kind = Kind::Unverified;
            note.message = format!(
                "{} (inside an if/range block: the transpiler rejects it for groups that render it)",
                note.message
            );
        }
    }
}

/// Raw Ignition JSON (an object with `ignition.version`) under a template's name.
fn raw_ignition(text: &str) -> Option<Note> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let version = value.get("ignition")?.get("version")?.as_str()?;
    Some(Note {
        pos: Pos::START,
        kind: Kind::Misread,
        message: format!(
            "raw Ignition JSON (spec {version}) under a template's name: matchbox reads it as a \
             Container Linux Config, which knows none of Ignition's own keys (ignition.version, \
             contents.source, …) and drops them, so files come out empty or the transpiler \
             rejects it; name it .ign to have it served as it is"
        ),
    })
}

fn walk_document(masked: &str, has_actions: bool) -> Vec<Note> {
    if masked.trim().is_empty() {
        return Vec::new(); // "Configuration is empty": a warning, an empty config
    }
    let options = serde_saphyr::options! { legacy_octal_numbers: true, with_snippet: false };
    let root: Node = match serde_saphyr::from_str_with_options(masked, options) {
        Ok(root) => root,
        Err(err) => {
            let pos = err
                .location()
                .filter(|l| l.line() > 0)
                .map_or(Pos::START, |l| Pos {
                    line: l.line() as usize,
                    column: l.column().max(1) as usize,
                });
            let message = err.without_snippet().to_string();
            return vec![if has_actions {
                Note {
                    pos,
                    kind: Kind::Unverified,
                    message: format!(
                        "with its actions masked the template is not YAML ({message}): what \
                         they render decides whether the transpiler can read it"
                    ),
                }
            } else {
                Note {
                    pos,
                    kind: Kind::Rejected,
                    message: format!("not YAML the transpiler can read: {message}"),
                }
            }];
        }
    };
    let mut walker = Walker::default();
    // A Butane file's `variant` and `version`: ignored, and template-dialect says so already.
    if let Y::Map(entries) = &root.value
        && entries.iter().any(|(k, _)| k.value == "variant")
    {
        walker.butane = true;
    }
    walker.node(&root, &CONFIG, "");
    walker.rules(&root);
    walker.notes
}

/// The shape of a Container Linux Config (the transpiler's `yaml:` tags).
enum Shape {
    Str,
    Int,
    Bool,
    StrList,
    Obj(&'static [(&'static str, Shape)]),
    List(&'static Shape),
    /// A section caas knows exists but does not model.
    Unmodelled,
}

const OWNER: Shape = Shape::Obj(&[("id", Shape::Int), ("name", Shape::Str)]);
const VERIFICATION: Shape = Shape::Obj(&[(
    "hash",
    Shape::Obj(&[("function", Shape::Str), ("sum", Shape::Str)]),
)]);
const FILE: Shape = Shape::Obj(&[
    ("filesystem", Shape::Str),
    ("path", Shape::Str),
    ("user", OWNER),
    ("group", OWNER),
    ("mode", Shape::Int),
    (
        "contents",
        Shape::Obj(&[
            (
                "remote",
                Shape::Obj(&[
                    ("url", Shape::Str),
                    ("compression", Shape::Str),
                    ("verification", VERIFICATION),
                ]),
            ),
            ("inline", Shape::Str),
            ("local", Shape::Str),
        ]),
    ),
    ("overwrite", Shape::Bool),
    ("append", Shape::Bool),
]);
const DIRECTORY: Shape = Shape::Obj(&[
    ("filesystem", Shape::Str),
    ("path", Shape::Str),
    ("user", OWNER),
    ("group", OWNER),
    ("mode", Shape::Int),
    ("overwrite", Shape::Bool),
]);
const LINK: Shape = Shape::Obj(&[
    ("filesystem", Shape::Str),
    ("path", Shape::Str),
    ("user", OWNER),
    ("group", OWNER),
    ("hard", Shape::Bool),
    ("target", Shape::Str),
    ("overwrite", Shape::Bool),
]);
const DROPIN: Shape = Shape::Obj(&[("name", Shape::Str), ("contents", Shape::Str)]);
const UNIT: Shape = Shape::Obj(&[
    ("name", Shape::Str),
    ("enable", Shape::Bool),
    ("enabled", Shape::Bool),
    ("mask", Shape::Bool),
    ("contents", Shape::Str),
    ("dropins", Shape::List(&DROPIN)),
]);
const NETWORKD_UNIT: Shape = Shape::Obj(&[
    ("name", Shape::Str),
    ("contents", Shape::Str),
    ("dropins", Shape::List(&DROPIN)),
]);
const USER: Shape = Shape::Obj(&[
    ("name", Shape::Str),
    ("password_hash", Shape::Str),
    ("ssh_authorized_keys", Shape::StrList),
    ("create", Shape::Unmodelled),
    ("uid", Shape::Int),
    ("gecos", Shape::Str),
    ("home_dir", Shape::Str),
    ("no_create_home", Shape::Bool),
    ("primary_group", Shape::Str),
    ("groups", Shape::StrList),
    ("no_user_group", Shape::Bool),
    ("system", Shape::Bool),
    ("no_log_init", Shape::Bool),
    ("shell", Shape::Str),
]);
const GROUP: Shape = Shape::Obj(&[
    ("name", Shape::Str),
    ("gid", Shape::Int),
    ("password_hash", Shape::Str),
    ("system", Shape::Bool),
]);
const CONFIG: Shape = Shape::Obj(&[
    ("ignition", Shape::Unmodelled),
    (
        "storage",
        Shape::Obj(&[
            ("disks", Shape::Unmodelled),
            ("raid", Shape::Unmodelled),
            ("filesystems", Shape::Unmodelled),
            ("files", Shape::List(&FILE)),
            ("directories", Shape::List(&DIRECTORY)),
            ("links", Shape::List(&LINK)),
        ]),
    ),
    ("systemd", Shape::Obj(&[("units", Shape::List(&UNIT))])),
    (
        "networkd",
        Shape::Obj(&[("units", Shape::List(&NETWORKD_UNIT))]),
    ),
    (
        "passwd",
        Shape::Obj(&[
            ("users", Shape::List(&USER)),
            ("groups", Shape::List(&GROUP)),
        ]),
    ),
    ("etcd", Shape::Unmodelled),
    ("flannel", Shape::Unmodelled),
    ("update", Shape::Unmodelled),
    ("docker", Shape::Unmodelled),
    ("locksmith", Shape::Unmodelled),
]);

#[derive(Default)]
struct Walker {
    notes: Vec<Note>,
    butane: bool,
}

impl Walker {
    fn note(&mut self, pos: Pos, kind: Kind, message: String) {
        self.notes.push(Note { pos, kind, message });
    }

    /// A value that breaks a rule: certain when no action wrote it, unverified otherwise.
    fn broken(&mut self, node: &Node, path: &str, why: &str) {
        if node.templated() {
            self.note(
                node.pos,
                Kind::Unverified,
                format!("{path} comes from an action, and the transpiler requires that {why}"),
            );
        } else {
            self.note(node.pos, Kind::Rejected, format!("{path}: {why}"));
        }
    }

    /// Key names and value types, as go-yaml v2 reads them into the transpiler's structs.
    fn node(&mut self, node: &Node, shape: &Shape, path: &str) {
        if matches!(node.value, Y::Null) {
            return; // the zero value
        }
        match shape {
            Shape::Unmodelled => self.note(
                node.pos,
                Kind::Unverified,
                format!(
                    "caas does not model {path}: whether the transpiler accepts it is not checked"
                ),
            ),
            Shape::Str => {
                if !node.is_scalar() {
                    self.broken(node, path, "it is a single value");
                }
            }
            Shape::Int => {
                if !matches!(node.value, Y::Int(_)) {
                    self.broken(node, path, "it is an integer");
                }
            }
            Shape::Bool => {
                if !node.is_bool() {
                    self.broken(node, path, "it is true or false");
                }
            }
            Shape::StrList => match &node.value {
                Y::Seq(items) => {
                    for (i, item) in items.iter().enumerate() {
                        self.node(item, &Shape::Str, &format!("{path}.{i}"));
                    }
                }
                _ => self.broken(node, path, "it is a list"),
            },
            Shape::List(item_shape) => match &node.value {
                Y::Seq(items) => {
                    for (i, item) in items.iter().enumerate() {
                        self.node(item, item_shape, &format!("{path}.{i}"));
                    }
                }
                _ => self.broken(node, path, "it is a list"),
            },
            Shape::Obj(fields) => self.object(node, fields, path),
        }
    }

    fn object(&mut self, node: &Node, fields: &[(&str, Shape)], path: &str) {
        let Y::Map(entries) = &node.value else {
            return self.broken(
                node,
                if path.is_empty() {
                    "the document"
                } else {
                    path
                },
                "it is a mapping",
            );
        };
        for (key, value) in entries {
            let child = if path.is_empty() {
                key.value.clone()
            } else {
                format!("{path}.{}", key.value)
            };
            let at = Pos {
                line: key.referenced.line() as usize,
                column: key.referenced.column().max(1) as usize,
            };
            if key.value.contains(MASK) {
                self.note(
                    at,
                    Kind::Unverified,
                    format!(
                        "an action writes a key in {}: what it renders shapes the config",
                        if path.is_empty() {
                            "the document"
                        } else {
                            path
                        }
                    ),
                );
                continue;
            }
            match fields.iter().find(|(name, _)| *name == key.value) {
                Some((_, shape)) => self.node(value, shape, &child),
                None if self.butane && path.is_empty() && ["variant", "version"].contains(&key.value.as_str()) => {}
                None => self.note(
                    at,
                    Kind::Ignored,
                    format!("unknown key {child}: the Container Linux Config transpiler ignores it (a typo, a Butane or an Ignition key?)"),
                ),
            }
        }
    }

    /// The rules the transpiler and Ignition 2.2's validation apply to what the walk read.
    fn rules(&mut self, root: &Node) {
        for (i, file) in root.items(&["storage", "files"]).iter().enumerate() {
            self.file(file, &format!("storage.files.{i}"));
        }
        for (i, dir) in root.items(&["storage", "directories"]).iter().enumerate() {
            self.fs_node(dir, &format!("storage.directories.{i}"));
        }
        for (i, link) in root.items(&["storage", "links"]).iter().enumerate() {
            self.fs_node(link, &format!("storage.links.{i}"));
        }
        for (i, unit) in root.items(&["systemd", "units"]).iter().enumerate() {
            let path = format!("systemd.units.{i}");
            self.unit(
                unit,
                &path,
                SYSTEMD_EXTENSIONS,
                "invalid systemd unit extension",
            );
        }
        for (i, unit) in root.items(&["networkd", "units"]).iter().enumerate() {
            let path = format!("networkd.units.{i}");
            self.unit(
                unit,
                &path,
                NETWORKD_EXTENSIONS,
                "invalid networkd unit extension",
            );
        }
    }

    /// A file, directory or link: a filesystem, an absolute path, an owner named one way.
    fn fs_node(&mut self, node: &Node, path: &str) {
        if !matches!(node.value, Y::Map(_)) {
            return;
        }
        match node.get("filesystem") {
            Some(fs) if fs.text().is_some_and(|t| !t.is_empty()) => {}
            Some(fs) if fs.templated() => self.broken(fs, &format!("{path}.filesystem"), "it names a filesystem"),
            _ => self.note(node.pos, Kind::Rejected, format!("{path}: no filesystem specified (Container Linux Configs need `filesystem: root`)")),
        }
        match node.get("path") {
            Some(p) if p.text().is_some_and(|t| t.starts_with('/')) => {}
            Some(p) => self.broken(
                p,
                &format!("{path}.path"),
                "it is absolute (path not absolute)",
            ),
            None => self.note(
                node.pos,
                Kind::Rejected,
                format!("{path}: path not absolute (no path)"),
            ),
        }
        for owner in ["user", "group"] {
            if let Some(o) = node.get(owner)
                && o.get("id").is_some_and(|v| !matches!(v.value, Y::Null))
                && o.get("name")
                    .and_then(Node::text)
                    .is_some_and(|t| !t.is_empty())
            {
                self.note(
                    o.pos,
                    Kind::Rejected,
                    format!("{path}.{owner}: cannot set both id and name"),
                );
            }
        }
        if let Some(mode) = node.get("mode")
            && let Y::Int(m) = mode.value
            && !(0..=0o7777).contains(&m)
        {
            self.note(
                mode.pos,
                Kind::Rejected,
                format!("{path}.mode: illegal file mode {m:#o}"),
            );
        }
    }

    fn file(&mut self, file: &Node, path: &str) {
        self.fs_node(file, path);
        let truthy = |key: &str| file.get(key).is_some_and(Node::is_true);
        if truthy("append") && truthy("overwrite") {
            self.note(
                file.pos,
                Kind::Rejected,
                format!("{path}: cannot set both append and overwrite to true"),
            );
        }
        let Some(contents) = file.get("contents") else {
            return;
        };
        let remote = contents.get("remote");
        let url = remote.and_then(|r| r.get("url"));
        let set = |n: Option<&Node>| n.is_some_and(|n| n.text().is_some_and(|t| !t.is_empty()));
        let sources = [url, contents.get("inline"), contents.get("local")]
            .into_iter()
            .filter(|n| set(*n))
            .count();
        if sources > 1 {
            self.note(contents.pos, Kind::Rejected, format!("{path}.contents: only one of the following can be set: local, inline, remote.url"));
        }
        if let Some(local) = contents.get("local").filter(|n| set(Some(n))) {
            self.note(local.pos, Kind::Rejected, format!("{path}.contents.local: local files require the transpiler's --files-dir, which matchbox never sets"));
        }
        if let Some(url) = url.filter(|n| set(Some(n))) {
            self.url(url, &format!("{path}.contents.remote.url"));
        }
        let Some(remote) = remote else {
            return;
        };
        if let Some(c) = remote.get("compression")
            && !matches!(c.text(), None | Some("" | "gzip"))
        {
            self.broken(
                c,
                &format!("{path}.contents.remote.compression"),
                "it is empty or gzip (invalid compression method)",
            );
        }
        if let Some(hash) = remote.get("verification").and_then(|v| v.get("hash")) {
            self.hash(hash, &format!("{path}.contents.remote.verification.hash"));
        }
    }

    /// Ignition 2.2 reads http, https, tftp, s3, oem and data URLs.
    fn url(&mut self, url: &Node, path: &str) {
        let Some(text) = url.text() else { return };
        let scheme = text
            .split_once(':')
            .map(|(s, _)| s.to_ascii_lowercase())
            .filter(|s| {
                s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            });
        match scheme.as_deref() {
            Some("http" | "https" | "tftp" | "s3" | "oem") => {}
            Some("data") if super::ignition::decode_data_url(text).is_some() => {}
            _ => self.broken(
                url,
                path,
                "it is an http, https, tftp, s3, oem or data URL (invalid url scheme)",
            ),
        }
    }

    /// `function` and `sum`, joined as Ignition 2.2 reads them: sha512 and 128 hex digits.
    fn hash(&mut self, hash: &Node, path: &str) {
        let function = hash.get("function");
        let sum = hash.get("sum");
        let (Some(f), Some(s)) = (function.and_then(Node::text), sum.and_then(Node::text)) else {
            return;
        };
        if f.is_empty() || s.is_empty() {
            return; // the transpiler drops a half-given hash
        }
        if hash.templated_within() {
            self.note(
                hash.pos,
                Kind::Unverified,
                format!("{path} comes from an action: its function and size are not checked"),
            );
        } else if f != "sha512" {
            self.note(
                hash.pos,
                Kind::Rejected,
                format!("{path}: unrecognized hash function {f:?} (Ignition 2.2 takes sha512)"),
            );
        } else if s.len() != 128 {
            self.note(
                hash.pos,
                Kind::Rejected,
                format!(
                    "{path}: incorrect size for hash sum ({} characters, sha512 has 128)",
                    s.len()
                ),
            );
        }
    }

    fn unit(&mut self, unit: &Node, path: &str, extensions: &[&str], wrong: &str) {
        if !matches!(unit.value, Y::Map(_)) {
            return;
        }
        let name = unit.get("name");
        let ext_ok = |n: &str| extensions.iter().any(|e| extension(n) == Some(e));
        match name {
            Some(n) if n.text().is_some_and(ext_ok) => {}
            Some(n) => self.broken(
                n,
                &format!("{path}.name"),
                &format!("it ends in {} ({wrong})", extensions.join(", ")),
            ),
            None => self.note(
                unit.pos,
                Kind::Rejected,
                format!("{path}: no name ({wrong})"),
            ),
        }
        if let Some(contents) = unit.get("contents") {
            self.unit_contents(contents, &format!("{path}.contents"));
        }
        for (i, dropin) in unit.items(&["dropins"]).iter().enumerate() {
            let dpath = format!("{path}.dropins.{i}");
            match dropin.get("name") {
                Some(n) if n.text().is_some_and(|t| extension(t) == Some(".conf")) => {}
                Some(n) => self.broken(
                    n,
                    &format!("{dpath}.name"),
                    "it ends in .conf (invalid drop-in extension)",
                ),
                None => self.note(
                    dropin.pos,
                    Kind::Rejected,
                    format!("{dpath}: no name (invalid drop-in extension)"),
                ),
            }
            if let Some(contents) = dropin.get("contents") {
                self.unit_contents(contents, &format!("{dpath}.contents"));
            }
        }
    }

    fn unit_contents(&mut self, contents: &Node, path: &str) {
        let Some(text) = contents.text() else { return };
        if let Err(err) = unit_syntax(text) {
            self.broken(
                contents,
                path,
                &format!("it parses as a unit file (invalid unit content: {err})"),
            );
        }
    }
}

const SYSTEMD_EXTENSIONS: &[&str] = &[
    ".service",
    ".socket",
    ".device",
    ".mount",
    ".automount",
    ".swap",
    ".target",
    ".path",
    ".timer",
    ".snapshot",
    ".slice",
    ".scope",
];
const NETWORKD_EXTENSIONS: &[&str] = &[".link", ".netdev", ".network"];

/// Go's `path.Ext`: from the last dot of the last element.
fn extension(name: &str) -> Option<&str> {
    let base = name.rsplit('/').next().unwrap_or(name);
    base.rfind('.').map(|i| &base[i..])
}

/// Whether go-systemd's unit parser (Ignition 2.2's `validateUnitContent`) reads `text`: a
/// section header closes with `]` and nothing follows it, an option line has a `=`. Text
/// before the first section is skipped, as that parser does.
pub fn unit_syntax(text: &str) -> Result<(), String> {
    let mut lines = text.split('\n').peekable();
    let mut in_section = false;
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        let continues = |l: &str| l.trim_end_matches(' ').ends_with('\\');
        if trimmed.starts_with('#') || trimmed.starts_with(';') {
            let mut current = line;
            while continues(current) {
                let Some(next) = lines.next() else { break };
                current = next;
            }
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix('[') {
            let Some(close) = rest.find(']') else {
                return Err("unable to find end of section".into());
            };
            if !rest[close + 1..].trim().is_empty() {
                return Err(format!(
                    "found garbage after section name [{}]",
                    &rest[..close]
                ));
            }
            in_section = true;
            continue;
        }
        if !in_section || trimmed.trim().is_empty() {
            continue;
        }
        if !trimmed.contains('=') {
            return Err(if lines.peek().is_some() {
                "unexpected newline encountered while parsing option name".into()
            } else {
                "EOF".into()
            });
        }
        let mut current = line;
        while current.ends_with('\\') {
            let Some(next) = lines.next() else { break };
            if next.trim().is_empty() {
                break;
            }
            current = next;
        }
    }
    Ok(())
}

/// A YAML node with where it starts.
struct Node {
    pos: Pos,
    value: Y,
}

enum Y {
    Map(Vec<(Spanned<String>, Node)>),
    Seq(Vec<Node>),
    Str(String),
    Bool(bool),
    Int(i128),
    Float,
    Null,
}

impl Node {
    fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Y::Map(entries) => entries
                .iter()
                .rev()
                .find(|(k, _)| k.value == key)
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The items of the list at `path` below this node (none when it is not a list).
    fn items(&self, path: &[&str]) -> &[Node] {
        let mut node = self;
        for key in path {
            match node.get(key) {
                Some(child) => node = child,
                None => return &[],
            }
        }
        match &node.value {
            Y::Seq(items) => items,
            _ => &[],
        }
    }

    fn text(&self) -> Option<&str> {
        match &self.value {
            Y::Str(s) => Some(s),
            _ => None,
        }
    }

    fn is_scalar(&self) -> bool {
        !matches!(self.value, Y::Map(_) | Y::Seq(_))
    }

    /// go-yaml v2 reads YAML 1.1 booleans: `yes`, `no`, `on`, `off` too.
    fn is_bool(&self) -> bool {
        match &self.value {
            Y::Bool(_) => true,
            Y::Str(s) => YAML11_TRUE.contains(&s.as_str()) || YAML11_FALSE.contains(&s.as_str()),
            _ => false,
        }
    }

    fn is_true(&self) -> bool {
        match &self.value {
            Y::Bool(b) => *b,
            Y::Str(s) => YAML11_TRUE.contains(&s.as_str()),
            _ => false,
        }
    }

    fn templated(&self) -> bool {
        matches!(&self.value, Y::Str(s) if s.contains(MASK))
    }

    fn templated_within(&self) -> bool {
        match &self.value {
            Y::Map(entries) => entries
                .iter()
                .any(|(k, v)| k.value.contains(MASK) || v.templated_within()),
            Y::Seq(items) => items.iter().any(Node::templated_within),
            _ => self.templated(),
        }
    }
}

const YAML11_TRUE: &[&str] = &["y", "Y", "yes", "Yes", "YES", "on", "On", "ON"];
const YAML11_FALSE: &[&str] = &["n", "N", "no", "No", "NO", "off", "Off", "OFF"];

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
        let spanned = Spanned::<Y>::deserialize(deserializer)?;
        Ok(Node {
            pos: Pos {
                line: (spanned.referenced.line() as usize).max(1),
                column: (spanned.referenced.column() as usize).max(1),
            },
            value: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for Y {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Y, D::Error> {
        struct YVisitor;
        impl<'de> Visitor<'de> for YVisitor {
            type Value = Y;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML node")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Y, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    entries.push((key, map.next_value::<Node>()?));
                }
                Ok(Y::Map(entries))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Y, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Node>()? {
                    items.push(item);
                }
                Ok(Y::Seq(items))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Y, E> {
                Ok(Y::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Y, E> {
                Ok(Y::Int(v.into()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Y, E> {
                Ok(Y::Int(v.into()))
            }
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<Y, E> {
                Ok(Y::Int(v))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<Y, E> {
                Ok(Y::Int(i128::try_from(v).unwrap_or(i128::MAX)))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Y, E> {
                Ok(Y::Float)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Y, E> {
                Ok(Y::Str(v.to_owned()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Y, E> {
                Ok(Y::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Y, E> {
                Ok(Y::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Y, D::Error> {
                Y::deserialize(d)
            }
        }
        deserializer.deserialize_any(YVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(Kind, usize, usize)> {
        check(text)
            .into_iter()
            .map(|n| (n.kind, n.pos.line, n.pos.column))
            .collect()
    }

    #[test]
    fn a_file_without_a_filesystem_is_rejected_where_go_says() {
        let text = "storage:\n  files:\n    - path: /etc/hostname\n      contents:\n        inline: \"{{.hostname}}\"\n";
        let notes = check(text);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert_eq!(notes[0].kind, Kind::Rejected);
        assert!(notes[0].message.contains("no filesystem specified"));
        // matchbox logs "error at line 3, column 7".
        assert_eq!((notes[0].pos.line, notes[0].pos.column), (3, 7));
        let fixed = text.replace("- path", "- filesystem: root\n      path");
        assert_eq!(kinds(&fixed), vec![]);
    }

    #[test]
    fn values_from_actions_are_unverified_not_rejected() {
        let text = "storage:\n  files:\n    - filesystem: root\n      path: \"{{.p}}\"\n      mode: {{.mode}}\n";
        let got = kinds(text);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got.iter().all(|(k, _, _)| *k == Kind::Unverified));
    }

    #[test]
    fn unknown_and_unmodelled_keys() {
        let got = kinds("varient: flatcar\netcd:\n  name: x\n");
        assert_eq!(got, vec![(Kind::Ignored, 1, 1), (Kind::Unverified, 3, 3)]);
        // Butane's own keys: template-dialect reports them.
        assert_eq!(kinds("variant: flatcar\nversion: 1.0.0\n"), vec![]);
    }

    #[test]
    fn units_and_types() {
        let text = "systemd:\n  units:\n    - name: hello\n      enable: maybe\n      contents: |\n        [Service]\n        ExecStart\n";
        let got: Vec<Kind> = check(text).into_iter().map(|n| n.kind).collect();
        assert_eq!(got, vec![Kind::Rejected; 3]);
        assert!(
            unit_syntax("[Unit]\nDescription=x\n\n[Service]\nExecStart=/bin/a \\\n  b\n# c\n")
                .is_ok()
        );
        assert!(unit_syntax("[Unit\n").is_err());
        assert!(unit_syntax("[Unit] x\n").is_err());
    }

    #[test]
    fn control_actions_print_nothing_and_soften_what_they_enclose() {
        let text = "{{ if index . \"keys\" }}\npasswd:\n  users:\n    - name: core\n      ssh_authorized_keys:\n        {{ range $k := .keys }}\n        - {{$k}}\n        {{end}}\n{{end}}\n";
        assert_eq!(kinds(text), vec![]);
        let text = "{{ if .x }}\nstorage:\n  files:\n    - path: /a\n{{ end }}\n";
        assert_eq!(kinds(text), vec![(Kind::Unverified, 4, 7)]);
    }

    #[test]
    fn raw_ignition_json_is_misread() {
        let json = r#"{"ignition": {"version": "2.2.0"}, "storage": {"files": [{"filesystem": "root", "path": "/etc/x", "contents": {"source": "data:,x"}}]}}"#;
        let notes = check(json);
        assert_eq!(notes[0].kind, Kind::Misread);
        assert_eq!(verdict(&notes).unwrap().kind, Kind::Misread);
    }
}
