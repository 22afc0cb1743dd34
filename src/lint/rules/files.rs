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
        if file.is_dir && file.dir == Dir::Profiles {
            // matchbox never lists profiles/: it reads profiles/<id>.json for the id a group
            // names, and an id `sub/p` reads profiles/sub/p.json.
            let prefix = format!("{}/", file.stem);
            if facts
                .groups
                .iter()
                .any(|g| g.group.profile.starts_with(&prefix))
            {
                continue;
            }
            out.add_as(
                Severity::Warning,
                &file.entry_path,
                Pos::START,
                format!(
                    "a subdirectory in profiles/ that no group uses: matchbox reads profiles/{0}/<id>.json only for a group naming profile \"{0}/<id>\"",
                    file.stem
                ),
            );
        } else if file.is_dir {
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

pub const CAAS_LEFTOVER: Rule = Rule {
    code: Code::CaasLeftover,
    severity: Severity::Warning,
    summary: "temp files a killed caas write left behind (.caas-*.tmp), reported once",
    check: caas_leftovers,
};

/// One finding for all of them: they are caas's, not the operator's data.
fn caas_leftovers(facts: &Facts<'_>, out: &mut Findings) {
    let Some(first) = facts.leftovers.first() else {
        return;
    };
    let count = facts.leftovers.len();
    out.add(
        first,
        Pos::START,
        format!(
            "{count} temp file{} left by a caas write that was killed (.caas-*.tmp, this one \
             first): not part of the data; the next caas command that writes this directory \
             removes them",
            if count == 1 { "" } else { "s" }
        ),
    );
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
        if source.is_json {
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
        let Some(bytes) = file.parsed() else {
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
