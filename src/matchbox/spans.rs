//! Where a key or value sits in a JSON file, for `path:line:col` findings.
//!
//! serde_json reports positions for syntax errors only. Files that parsed are walked again
//! here, lazily and only when a finding needs a position: a small scanner that follows a path
//! of keys and indices through the raw bytes and returns the byte offset of the key or value.
//! A field's keys match the way Go's `encoding/json` matches struct fields, in any letter case,
//! and of repeated ones the last counts, as in Go (`"profile": "a", "Profile": "b"` is `b`); a
//! map key (selector, metadata) matches only itself.

use crate::matchbox::decode::{PathSeg, keys_match};

/// A 1-based line and column (in characters) of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    pub const START: Pos = Pos { line: 1, column: 1 };
}

/// Which end of a member to point at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Key,
    Value,
}

/// The line and column of byte `offset` in `bytes`.
pub fn position(bytes: &[u8], offset: usize) -> Pos {
    let offset = offset.min(bytes.len());
    let before = &bytes[..offset];
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let column = 1 + String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count();
    Pos { line, column }
}

/// serde_json's (line, byte column) as a [`Pos`] with a character column.
pub fn from_serde(bytes: &[u8], line: usize, byte_column: usize) -> Pos {
    if line == 0 {
        return Pos::START;
    }
    let line_start = if line == 1 {
        0
    } else {
        match bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(line - 2)
        {
            Some((i, _)) => i + 1,
            None => {
                return Pos {
                    line,
                    column: byte_column.max(1),
                };
            }
        }
    };
    let end = (line_start + byte_column.saturating_sub(1)).min(bytes.len());
    let column = 1 + String::from_utf8_lossy(&bytes[line_start..end])
        .chars()
        .count();
    Pos { line, column }
}

/// The position of the member at `path` (or of the whole document for an empty path).
pub fn locate(bytes: &[u8], path: &[PathSeg], part: Part) -> Option<Pos> {
    locate_offset(bytes, path, part).map(|offset| position(bytes, offset))
}

/// [`locate`], or the closest ancestor that exists, or the start of the file.
pub fn locate_or_parent(bytes: &[u8], path: &[PathSeg], part: Part) -> Pos {
    if let Some(pos) = locate(bytes, path, part) {
        return pos;
    }
    (0..path.len())
        .rev()
        .find_map(|len| locate(bytes, &path[..len], Part::Key))
        .unwrap_or(Pos::START)
}

/// The byte offset of the member at `path`.
pub fn locate_offset(bytes: &[u8], path: &[PathSeg], part: Part) -> Option<usize> {
    let mut scanner = Scanner { bytes, at: 0 };
    scanner.skip_bom();
    scanner.ws();
    let (key_at, value_at) = if path.is_empty() {
        (scanner.at, scanner.at)
    } else {
        find(bytes, scanner.at, path)?
    };
    Some(match part {
        Part::Key => key_at,
        Part::Value => value_at,
    })
}

/// The (key, value) offsets of the member at `path` inside the value at `at`. Of several
/// members a step matches, the last one in which the rest of the path exists counts: Go
/// decodes repeated fields in order, the later over the earlier, and merges objects.
fn find(bytes: &[u8], at: usize, path: &[PathSeg]) -> Option<(usize, usize)> {
    let (seg, rest) = path.split_first()?;
    let members = Scanner { bytes, at }.members(seg)?;
    members.into_iter().rev().find_map(|(key_at, value_at)| {
        if rest.is_empty() {
            Some((key_at, value_at))
        } else {
            find(bytes, value_at, rest)
        }
    })
}

struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_bom(&mut self) {
        if self.bytes.starts_with(b"\xEF\xBB\xBF") {
            self.at = 3;
        }
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        self.ws();
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// The members `seg` names in the object or array at the cursor, in document order, as
    /// (key offset, value offset). A field matches its keys the way Go matches struct fields
    /// (any letter case); a map key, only itself.
    fn members(&mut self, seg: &PathSeg) -> Option<Vec<(usize, usize)>> {
        self.ws();
        match (self.peek()?, seg) {
            (b'{', seg) => {
                let matches = |key: &str| match seg {
                    PathSeg::Key(field) => keys_match(key, field),
                    PathSeg::MapKey(want) => key == want,
                    PathSeg::Index(i) => key == i.to_string(),
                };
                self.at += 1;
                let mut found = Vec::new();
                self.ws();
                if self.peek()? == b'}' {
                    return None;
                }
                loop {
                    self.ws();
                    let key_at = self.at;
                    let key = self.string()?;
                    self.eat(b':')?;
                    self.ws();
                    if matches(&key) {
                        found.push((key_at, self.at));
                    }
                    self.skip_value()?;
                    self.ws();
                    match self.peek()? {
                        b',' => self.at += 1,
                        b'}' => break,
                        _ => return None,
                    }
                }
                Some(found)
            }
            (b'[', PathSeg::Index(want)) => {
                self.at += 1;
                self.ws();
                if self.peek()? == b']' {
                    return None;
                }
                let mut index = 0;
                loop {
                    self.ws();
                    if index == *want {
                        return Some(vec![(self.at, self.at)]);
                    }
                    self.skip_value()?;
                    self.ws();
                    match self.peek()? {
                        b',' => self.at += 1,
                        _ => return None,
                    }
                    index += 1;
                }
            }
            _ => None,
        }
    }

    /// Reads a string at the cursor, decoding escapes.
    fn string(&mut self) -> Option<String> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.at;
        self.skip_string()?;
        serde_json::from_slice(&self.bytes[start..self.at]).ok()
    }

    fn skip_string(&mut self) -> Option<()> {
        self.at += 1;
        loop {
            match self.peek()? {
                b'"' => {
                    self.at += 1;
                    return Some(());
                }
                b'\\' => self.at += 2,
                _ => self.at += 1,
            }
        }
    }

    fn skip_value(&mut self) -> Option<()> {
        self.ws();
        match self.peek()? {
            b'"' => self.skip_string(),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.skip_string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.at += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.at += 1;
                }
            }
            _ => {
                while !matches!(
                    self.peek(),
                    None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
                ) {
                    self.at += 1;
                }
                Some(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> PathSeg {
        PathSeg::Key(k.into())
    }

    const DOC: &str = "{\n  \"id\": \"x\",\n  \"Boot\": {\"kernel\": \"/k\", \"initrd\": [\"a\", {\"z\": \"}\"}, \"c\"]},\n  \"sélector\": {\"mac\": 5}\n}\n";

    #[test]
    fn finds_keys_and_values() {
        let bytes = DOC.as_bytes();
        assert_eq!(
            locate(bytes, &[key("id")], Part::Key),
            Some(Pos { line: 2, column: 3 })
        );
        assert_eq!(
            locate(bytes, &[key("id")], Part::Value),
            Some(Pos { line: 2, column: 9 })
        );
        // Go's case-insensitive field matching.
        assert_eq!(
            locate(bytes, &[key("boot"), key("kernel")], Part::Value),
            Some(Pos {
                line: 3,
                column: 22
            })
        );
        assert_eq!(
            locate(
                bytes,
                &[key("boot"), key("initrd"), PathSeg::Index(2)],
                Part::Value
            ),
            Some(Pos {
                line: 3,
                column: 56
            })
        );
        // Columns count characters, not bytes.
        assert_eq!(
            locate(bytes, &[key("sélector"), key("mac")], Part::Value),
            Some(Pos {
                line: 4,
                column: 23
            })
        );
        assert_eq!(locate(bytes, &[key("missing")], Part::Key), None);
        assert_eq!(
            locate_or_parent(bytes, &[key("boot"), key("args")], Part::Key),
            Pos { line: 3, column: 3 }
        );
    }

    #[test]
    fn the_last_repeated_key_counts() {
        let bytes = br#"{"id": "a", "id": "b"}"#;
        assert_eq!(
            locate(bytes, &[key("id")], Part::Value),
            Some(Pos {
                line: 1,
                column: 19
            })
        );
    }

    #[test]
    fn serde_positions_become_character_columns() {
        let bytes = "{\"é\": tru}".as_bytes();
        let err = serde_json::from_slice::<serde_json::Value>(bytes).unwrap_err();
        let pos = from_serde(bytes, err.line(), err.column());
        assert_eq!(pos.line, 1);
        assert!(pos.column < err.column(), "{pos:?} vs {}", err.column());
    }
}
