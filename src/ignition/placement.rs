//! Where a template may insert a value.
//!
//! Every `{{ … }}` in a caas template writes a double-quoted scalar ([`super::quote`]): one line,
//! every quote escaped. That keeps a value from changing the document only if the scalar is a
//! whole YAML node. Glued to other text it would not be: in `{a: "x{{ v }}"}` or `[ab{{ v }}]`
//! the value's own quotes would end the author's scalar and its content would be read as YAML.
//! So before a template is used, this module checks, from the template source alone (no value
//! can change the verdict), that every `{{ … }}` is one of:
//!
//! - a whole value or key: after the line's indentation, `- `, `: `, `? `, `[`, `{` or (in a
//!   flow collection) `,`, and before the end of the line, ` #`, `,`, `]`, `}` or `:`;
//! - inside a block scalar (`contents: |` and more indented lines): the value stays on its line;
//! - inside a comment.
//!
//! Text captured by `{% set x %}…{% endset %}` or `{% filter … %}` is written raw when it is
//! output, so those blocks may not contain `{{ … }}` at all.
//!
//! The check reads a skeleton of the template: statement and comment tags removed (with Tera's
//! `-` whitespace trimming), every `{{ … }}` replaced by a marker, `{% raw %}` text kept as is.
//! Both branches of an `{% if %}` and a loop's body are all in the skeleton, so a value next to
//! text from another branch is refused even when the two never meet: the check errs on the safe
//! side.

use std::fmt;

/// A `{{ … }}` in a place where a value could change the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Misplaced {
    /// 1-based line of the `{{` in the template source.
    pub line: usize,
    pub why: &'static str,
}

impl fmt::Display for Misplaced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.why)
    }
}

const MARK: char = '\0';

const GLUED: &str = "a {{ … }} value must be a whole YAML value or key (or sit inside a block \
                     scalar or a comment), not part of other text: caas writes it as a quoted \
                     string; join text inside the tag instead, as in {{ \"prefix-\" ~ value }}";
const QUOTED: &str = "a {{ … }} value inside a quoted YAML string: caas quotes values itself; \
                      write {{ \"text \" ~ value }} without the surrounding quotes";
const CAPTURED: &str = "{% set %} blocks and {% filter %} sections are output raw, so they may \
                        not contain {{ … }} values: build the text with ~ and filters in one tag";

/// Checks every `{{ … }}` of `source` (see the module documentation). Tera has already parsed
/// the template, so tags are well formed.
pub fn check(source: &str) -> Result<(), Misplaced> {
    let (skeleton, lines) = skeleton(source)?;
    check_skeleton(&skeleton, &lines)
}

#[derive(Debug)]
enum Piece<'a> {
    Text(&'a str),
    Expr {
        line: usize,
        trim_left: bool,
        trim_right: bool,
    },
    Stmt {
        body: &'a str,
        trim_left: bool,
        trim_right: bool,
    },
    Comment {
        trim_left: bool,
        trim_right: bool,
    },
}

/// Splits a template into text and tags; a tag's end is found outside its string literals.
fn pieces(source: &str) -> Vec<Piece<'_>> {
    let bytes = source.as_bytes();
    let mut pieces = Vec::new();
    let mut text_start = 0;
    let mut i = 0;
    let mut raw = false;
    let line_at = |pos: usize| source[..pos].bytes().filter(|&b| b == b'\n').count() + 1;
    while i + 1 < bytes.len() {
        if bytes[i] != b'{' || !matches!(bytes[i + 1], b'{' | b'%' | b'#') {
            i += 1;
            continue;
        }
        let kind = bytes[i + 1];
        let close: &[u8] = match kind {
            b'{' => b"}}",
            b'%' => b"%}",
            _ => b"#}",
        };
        let Some(end) = find_tag_end(bytes, i + 2, close, kind != b'#') else {
            break;
        };
        let inner = &source[i + 2..end];
        let trim_left = inner.starts_with('-');
        let trim_right = inner.ends_with('-') && inner.len() > 1;
        let body = inner.trim_start_matches('-').trim_end_matches('-').trim();
        if raw {
            if kind == b'%' && body == "endraw" {
                pieces.push(Piece::Text(&source[text_start..i]));
                raw = false;
                text_start = end + 2;
            }
            i = end + 2;
            continue;
        }
        pieces.push(Piece::Text(&source[text_start..i]));
        let line = line_at(i);
        pieces.push(match kind {
            b'{' => Piece::Expr {
                line,
                trim_left,
                trim_right,
            },
            b'%' => Piece::Stmt {
                body,
                trim_left,
                trim_right,
            },
            _ => Piece::Comment {
                trim_left,
                trim_right,
            },
        });
        if kind == b'%' && body == "raw" {
            raw = true;
        }
        i = end + 2;
        text_start = i;
    }
    pieces.push(Piece::Text(&source[text_start..]));
    pieces
}

fn find_tag_end(bytes: &[u8], mut i: usize, close: &[u8], strings: bool) -> Option<usize> {
    let mut quote = None;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) => {
                if b == b'\\' && q != b'`' {
                    i += 1;
                } else if b == q {
                    quote = None;
                }
            }
            None if strings && matches!(b, b'"' | b'\'' | b'`') => quote = Some(b),
            None if bytes[i..].starts_with(close) => return Some(i),
            None => {}
        }
        i += 1;
    }
    None
}

/// The text a template writes, with a [`MARK`] per `{{ … }}`, and the source line of each mark.
fn skeleton(source: &str) -> Result<(String, Vec<usize>), Misplaced> {
    let mut out = String::with_capacity(source.len());
    let mut lines = Vec::new();
    let mut captured = 0usize;
    let mut skip_ws = false;
    let trim_end = |out: &mut String| {
        let kept = out.trim_end().len();
        out.truncate(kept);
    };
    for piece in pieces(source) {
        match piece {
            Piece::Text(text) => {
                let text = if skip_ws { text.trim_start() } else { text };
                skip_ws = false;
                if captured == 0 {
                    out.push_str(text);
                }
            }
            Piece::Expr {
                line,
                trim_left,
                trim_right,
            } => {
                if captured > 0 {
                    return Err(Misplaced {
                        line,
                        why: CAPTURED,
                    });
                }
                if trim_left {
                    trim_end(&mut out);
                }
                out.push(MARK);
                lines.push(line);
                skip_ws = trim_right;
            }
            Piece::Stmt {
                body,
                trim_left,
                trim_right,
            } => {
                if trim_left && captured == 0 {
                    trim_end(&mut out);
                }
                let words: Vec<&str> = body.split_whitespace().collect();
                match words.as_slice() {
                    ["set" | "set_global", _name] => captured += 1,
                    ["filter", ..] => captured += 1,
                    ["endset" | "endfilter", ..] => captured = captured.saturating_sub(1),
                    _ => {}
                }
                skip_ws = trim_right;
            }
            Piece::Comment {
                trim_left,
                trim_right,
            } => {
                if trim_left && captured == 0 {
                    trim_end(&mut out);
                }
                skip_ws = trim_right;
            }
        }
    }
    Ok((out, lines))
}

/// Reads the skeleton as YAML far enough to know, for each mark, whether it stands as a whole
/// node, inside a block scalar or comment, or glued to other text.
fn check_skeleton(skeleton: &str, lines: &[usize]) -> Result<(), Misplaced> {
    let mut marks = lines.iter().copied();
    let mut block_parent: Option<usize> = None;
    let mut quote: Option<char> = None;
    let mut flow_depth = 0usize;
    // The previous structure line ended inside a plain scalar; a line indented deeper than this
    // column (its key's, or its sequence dash's) continues that scalar.
    let mut open_plain: Option<usize> = None;

    for line in skeleton.split('\n') {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let blank = line.trim().is_empty();
        if let Some(parent) = block_parent {
            if blank || indent > parent {
                marks
                    .by_ref()
                    .take(line.matches(MARK).count())
                    .for_each(drop);
                continue;
            }
            block_parent = None;
        }
        if blank {
            continue;
        }

        let chars: Vec<char> = line.chars().collect();
        let continues_plain =
            quote.is_none() && flow_depth == 0 && open_plain.is_some_and(|at| indent > at);
        let mut at_node_start = quote.is_none() && !continues_plain;
        let mut in_plain = continues_plain;
        let mut key_col = indent;
        let mut scalar_start = indent;
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            if let Some(q) = quote {
                if c == MARK {
                    return Err(misplaced(&mut marks, QUOTED));
                }
                if q == '"' && c == '\\' {
                    i += 2;
                    continue;
                }
                if c == q {
                    if q == '\'' && next == Some('\'') {
                        i += 2;
                        continue;
                    }
                    quote = None;
                }
                i += 1;
                continue;
            }
            let after_space = i == 0 || chars[i - 1] == ' ' || chars[i - 1] == '\t';
            match c {
                ' ' | '\t' => {}
                '#' if after_space => {
                    // A comment: whatever it holds, it ends with the line.
                    let rest = &chars[i..];
                    marks
                        .by_ref()
                        .take(rest.iter().filter(|&&c| c == MARK).count())
                        .for_each(drop);
                    break;
                }
                MARK => {
                    if !at_node_start {
                        return Err(misplaced(&mut marks, GLUED));
                    }
                    let mut j = i + 1;
                    while j < chars.len() && matches!(chars[j], ' ' | '\t') {
                        j += 1;
                    }
                    let closed = match chars.get(j) {
                        None => true,
                        Some(',' | ']' | '}' | ':') => true,
                        Some('#') => j > i + 1,
                        Some(_) => false,
                    };
                    if !closed {
                        return Err(misplaced(&mut marks, GLUED));
                    }
                    marks.next();
                    scalar_start = i;
                    at_node_start = false;
                    in_plain = false;
                }
                '"' | '\'' if at_node_start => {
                    quote = Some(c);
                    scalar_start = i;
                    at_node_start = false;
                }
                '[' | '{' if at_node_start || flow_depth > 0 && !in_plain => {
                    flow_depth += 1;
                    at_node_start = true;
                }
                ']' | '}' if flow_depth > 0 => {
                    flow_depth -= 1;
                    at_node_start = false;
                    in_plain = false;
                }
                ',' if flow_depth > 0 => {
                    at_node_start = true;
                    in_plain = false;
                }
                ':' if matches!(next, None | Some(' ' | '\t')) || flow_depth > 0 && !in_plain => {
                    key_col = scalar_start;
                    at_node_start = true;
                    in_plain = false;
                }
                '-' | '?' if at_node_start && matches!(next, None | Some(' ' | '\t')) => {
                    key_col = i;
                }
                '&' | '!' if at_node_start => {
                    // An anchor or a tag: the node itself follows.
                    while i + 1 < chars.len() && !matches!(chars[i + 1], ' ' | '\t') {
                        i += 1;
                    }
                }
                '|' | '>' if at_node_start => {
                    let mut j = i + 1;
                    while j < chars.len() && matches!(chars[j], '1'..='9' | '+' | '-') {
                        j += 1;
                    }
                    let rest: String = chars[j..].iter().collect();
                    let rest = rest.trim_start();
                    if rest.is_empty() || rest.starts_with('#') {
                        if rest.contains(MARK) {
                            marks
                                .by_ref()
                                .take(rest.matches(MARK).count())
                                .for_each(drop);
                        }
                        block_parent = Some(indent);
                        break;
                    }
                    scalar_start = i;
                    at_node_start = false;
                    in_plain = true;
                }
                _ => {
                    if at_node_start {
                        scalar_start = i;
                    }
                    at_node_start = false;
                    in_plain = true;
                }
            }
            i += 1;
        }
        open_plain = if in_plain && quote.is_none() && flow_depth == 0 {
            if continues_plain {
                open_plain
            } else {
                Some(key_col)
            }
        } else {
            None
        };
    }
    Ok(())
}

fn misplaced(marks: &mut impl Iterator<Item = usize>, why: &'static str) -> Misplaced {
    Misplaced {
        line: marks.next().unwrap_or(0),
        why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(template: &str) {
        if let Err(err) = check(template) {
            panic!("{template:?} was refused: {err}");
        }
    }

    fn refused(template: &str, line: usize) {
        match check(template) {
            Ok(()) => panic!("{template:?} was accepted"),
            Err(err) => assert_eq!(err.line, line, "{template:?}: {err}"),
        }
    }

    #[test]
    fn whole_values_and_keys_are_accepted() {
        ok("path: {{ path }}\n");
        ok("- {{ item }}\n- {{ other }}  # note\n");
        ok("{{ key }}: value\n");
        ok("list: [{{ a }}, {{ b }}]\nmap: {k: {{ v }}, {{ k2 }}: 1}\n");
        ok("a:\n  b:\n    - name: {{ n }}\n      mode: {{ m }}\n");
        ok("key: !!str {{ v }}\n");
        ok("users:\n{% for u in users %}\n  - name: {{ u.name }}\n{% endfor %}\n");
        ok("- name: {{ n }}\n  mode: {{ m }}\n- path: /etc/x\n  mode: {{ m }}\n");
        ok("k: {{ a if a else b }}\n");
        ok("flow: [\n  {{ a }},\n  {{ b }}\n]\n");
        ok("# a comment mentioning {{ v }} and \"{{ w }}\"\n");
        ok("k: v # trailing {{ c }}\n");
        ok("text: it's {% raw %}{{ not a tag }}{% endraw %}\n");
    }

    #[test]
    fn block_scalars_take_values_anywhere_on_their_lines() {
        ok(
            "contents: |\n  [Service]\n  Environment=\"X={{ x }}\"\n  ExecStart=/bin/echo {{ y }} and {{ z }}\n\nnext: {{ n }}\n",
        );
        ok("- |-\n  a {{ v }}\n  {% if w %}\n  b {{ w }}\n  {% endif %}\n");
        ok("units:\n  - contents: >\n      folded {{ v }}\n    name: {{ n }}\n");
    }

    #[test]
    fn values_glued_to_text_are_refused() {
        refused("key: abc{{ v }}\n", 1);
        refused("key: {{ v }}abc\n", 1);
        refused("key: abc {{ v }}\n", 1);
        refused("key: {{ a }}{{ b }}\n", 1);
        refused("key: {{ a }} {{ b }}\n", 1);
        refused("ok: 1\nlist: [ab{{ v }}]\n", 2);
        refused("key:{{ v }}\n", 1);
        refused("k:\n  {{- v }}\n", 2);
        refused("key: x\n  {{ v }}\n", 2);
        refused("k: {% if a %}text{% endif %}{{ v }}\n", 1);
        // Both branches are in the skeleton: use `a if c else b` inside one tag.
        refused("k: {% if a %}{{ a }}{% else %}{{ b }}{% endif %}\n", 1);
        refused("- foo\n  {{ v }}\n", 2);
        refused("key: abc\n{{- v }}\n", 2);
        refused("contents: |\n  body\nafter {{ v }}\n", 3);
    }

    #[test]
    fn values_inside_quoted_scalars_are_refused() {
        refused("key: \"abc {{ v }}\"\n", 1);
        refused("key: '{{ v }}'\n", 1);
        refused("m: {a: \"{{ v }}\"}\n", 1);
        refused("key: \"multi\n  line {{ v }}\"\n", 2);
    }

    #[test]
    fn captured_text_may_not_hold_values() {
        ok(
            "{% set script %}{% raw %}#!/bin/sh\necho \"${X}\"{% endraw %}{% endset %}\nsource: {{ script | data_url }}\n",
        );
        refused("{% set s %}\nname={{ v }}\n{% endset %}\n", 2);
        refused("{% filter upper %}{{ v }}{% endfilter %}\n", 1);
        ok("{% set x = \"a\" ~ v %}\nk: {{ x }}\n");
    }

    #[test]
    fn tag_ends_inside_string_literals_are_not_tag_ends() {
        ok("k: {{ \"}}\" ~ v }}\n");
        refused("k: x{{ \"}}\" ~ v }}\n", 1);
    }
}
