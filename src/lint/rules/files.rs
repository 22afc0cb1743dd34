//! The entries of `groups/` and `profiles/` as files: what matchbox lists, reads and decodes.

use super::{Findings, Rule};
use crate::lint::facts::{Dir, Facts};
use crate::lint::{Code, Severity};
use crate::matchbox::decode::DecodeError;
use crate::matchbox::spans::{self, Part, Pos};
use crate::matchbox::store::LoadError;

pub const STRAY_ENTRY: Rule = Rule {
    code: Code::StrayEntry,
    severity: Severity::Error,
    summary: "a subdirectory or non-JSON entry matchbox reads another file for, or a file it cannot read",
    check: stray_entries,
};

fn stray_entries(facts: &Facts<'_>, out: &mut Findings) {
    for file in &facts.files {
        let dir = file.dir.name();
        if file.is_dir {
            out.add_as(
                Severity::Warning,
                &file.entry_path,
                Pos::START,
                format!(
                    "a subdirectory in {dir}/: matchbox does not look inside it, and reads {dir}/{}.json for it",
                    file.stem
                ),
            );
        } else if !file.is_json_file {
            let consequence = match file.error {
                Some(err) if err.is_not_found() => {
                    "which does not exist (an INFO \"no such file\" on every request)"
                }
                Some(_) => "which does not load",
                None => "so that file is read a second time",
            };
            let what = match file.dir {
                Dir::Groups => "matchbox reads",
                Dir::Profiles => "matchbox would read",
            };
            out.add_as(
                Severity::Warning,
                &file.entry_path,
                Pos::START,
                format!(
                    "not a .json file: {what} {dir}/{}.json for it, {consequence}",
                    file.stem
                ),
            );
        } else if file.source.is_none() {
            let why = file.error.map(ToString::to_string).unwrap_or_default();
            out.add(file.path, Pos::START, format!("cannot be read: {why}"));
        }
    }
}

pub const JSON_SYNTAX: Rule = Rule {
    code: Code::JsonSyntax,
    severity: Severity::Error,
    summary: "a profile or group file that is not JSON",
    check: json_syntax,
};

fn json_syntax(facts: &Facts<'_>, out: &mut Findings) {
    for file in &facts.files {
        let Some(source) = file.source.filter(|_| file.is_json_file) else {
            continue;
        };
        if source.json.is_some() {
            continue;
        }
        if let Some(LoadError::Decode(DecodeError::Syntax {
            line,
            column,
            message,
        })) = file.error
        {
            out.add(
                file.path,
                spans::from_serde(&source.bytes, *line, *column),
                format!("not JSON: {message}; matchbox skips this file"),
            );
        }
    }
}

pub const WRONG_TYPE: Rule = Rule {
    code: Code::WrongType,
    severity: Severity::Error,
    summary: "a value of a type matchbox cannot decode: it skips the file",
    check: wrong_types,
};

fn wrong_types(facts: &Facts<'_>, out: &mut Findings) {
    for file in &facts.files {
        let Some((bytes, _)) = file.parsed() else {
            continue;
        };
        if let Some(LoadError::Decode(err @ DecodeError::Type { path, .. })) = file.error {
            let kind = match file.dir {
                Dir::Groups => "group",
                Dir::Profiles => "profile",
            };
            out.add(
                file.path,
                spans::locate_or_parent(bytes, path, Part::Value),
                format!("{err}: matchbox cannot decode this {kind} and skips it"),
            );
        }
    }
}
