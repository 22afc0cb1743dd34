//! A profile on its own: its id, its boot section and where its kernel arguments live.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

use super::{Findings, Rule};
use crate::lint::facts::{Dir, Facts, ProfileFact, key, map_key};
use crate::lint::{Code, Severity};
use crate::matchbox::decode::{DecodeError, keys_match, parse_json, type_name};
use crate::matchbox::spans::{self, Part, Pos};
use crate::matchbox::store::LoadError;

pub const MISSING_ID: Rule = Rule {
    code: Code::MissingId,
    severity: Severity::Error,
    summary: "a profile without an id: matchbox skips it",
    check: missing_ids,
};

fn missing_ids(facts: &Facts<'_>, out: &mut Findings) {
    for file in facts.files.iter().filter(|f| f.dir == Dir::Profiles) {
        let Some(bytes) = file.parsed() else {
            continue;
        };
        if let Some(LoadError::Decode(DecodeError::Invalid(why))) = file.error {
            out.add(
                file.path,
                spans::locate_or_parent(bytes, &[key("id")], Part::Value),
                format!("{why}: matchbox skips it, and every group naming it gets 404"),
            );
        }
    }
}

/// The profiles of `profiles/` that decode, in listing order.
fn listed<'f, 't>(facts: &'f Facts<'t>) -> impl Iterator<Item = &'f ProfileFact<'t>> {
    facts
        .files
        .iter()
        .filter(|f| f.dir == Dir::Profiles && f.parsed().is_some())
        .filter_map(|f| facts.profile(f.path))
}

pub const ID_MISMATCH: Rule = Rule {
    code: Code::IdMismatch,
    severity: Severity::Warning,
    summary: "a profile whose id differs from its file name",
    check: id_mismatches,
};

fn id_mismatches(facts: &Facts<'_>, out: &mut Findings) {
    for file in facts.files.iter().filter(|f| f.dir == Dir::Profiles) {
        let Some(fact) = file.parsed().and_then(|_| facts.profile(file.path)) else {
            continue;
        };
        if fact.profile.id != file.stem {
            out.add(
                fact.path,
                fact.at(&[key("id")], Part::Value),
                format!(
                    "id {:?} differs from the file name: matchbox looks profiles up by file name, so groups must name {:?}",
                    fact.profile.id, file.stem
                ),
            );
        }
    }
}

pub const DUPLICATE_ID: Rule = Rule {
    code: Code::DuplicateId,
    severity: Severity::Warning,
    summary: "two profiles with the same id",
    check: duplicate_ids,
};

fn duplicate_ids(facts: &Facts<'_>, out: &mut Findings) {
    let mut ids: HashMap<&str, &Path> = HashMap::new();
    for fact in listed(facts) {
        if let Some(first) = ids.get(fact.profile.id.as_str()) {
            out.add(
                fact.path,
                fact.at(&[key("id")], Part::Value),
                format!(
                    "id {:?} is also the id of {}",
                    fact.profile.id,
                    first.display()
                ),
            );
        } else {
            ids.insert(&fact.profile.id, fact.path);
        }
    }
}

pub const MISSING_BOOT: Rule = Rule {
    code: Code::MissingBoot,
    severity: Severity::Error,
    summary: "a profile without boot or without a kernel: /ipxe answers 404",
    check: missing_boot,
};

fn missing_boot(facts: &Facts<'_>, out: &mut Findings) {
    for fact in facts.profiles() {
        match &fact.profile.boot {
            None => out.add(
                fact.path,
                Pos::START,
                "the profile has no \"boot\": /ipxe and /grub answer 404 for every machine it is selected for",
            ),
            Some(boot) if boot.kernel.is_empty() => out.add(
                fact.path,
                fact.at(&[key("boot")], Part::Key),
                "\"boot\" has no kernel: the iPXE script matchbox renders has nothing to boot",
            ),
            Some(_) => {}
        }
    }
}

/// The profile's `boot` object as written (any case of the key, as Go decodes it), read
/// again from the file (lint keeps no JSON trees).
fn boot_json(fact: &ProfileFact<'_>) -> Option<serde_json::Map<String, Value>> {
    let Value::Object(mut root) = parse_json(fact.bytes).ok()? else {
        return None;
    };
    let key = root.keys().find(|k| keys_match(k, "boot"))?.clone();
    match root.remove(&key)? {
        Value::Object(boot) => Some(boot),
        _ => None,
    }
}

/// `boot.<field>` is present and not null.
fn has(fact: &ProfileFact<'_>, field: &str) -> bool {
    boot_json(fact).is_some_and(|b| b.iter().any(|(k, v)| keys_match(k, field) && !v.is_null()))
}

fn field_pos(fact: &ProfileFact<'_>, field: &str) -> Pos {
    fact.at(&[key("boot"), key(field)], Part::Key)
}

pub const CMDLINE_IGNORED: Rule = Rule {
    code: Code::CmdlineIgnored,
    severity: Severity::Error,
    summary: "boot.cmdline on a target that ignores it (matchbox v0.5 and later)",
    check: cmdline_ignored,
};

fn cmdline_ignored(facts: &Facts<'_>, out: &mut Findings) {
    if facts.target.reads_cmdline() {
        return;
    }
    for fact in facts.profiles() {
        let Some(boot) = &fact.profile.boot else {
            continue;
        };
        if boot.cmdline.is_none() && !has(fact, "cmdline") {
            continue;
        }
        let (severity, consequence) = if boot.args.is_some() {
            (Severity::Warning, "only boot.args reaches the kernel line")
        } else {
            (
                Severity::Error,
                "the kernel line gets none of these arguments",
            )
        };
        out.add_as(
            severity,
            fact.path,
            field_pos(fact, "cmdline"),
            format!(
                "{} ignores boot.cmdline (replaced by boot.args in matchbox v0.5): {consequence}",
                facts.target.name()
            ),
        );
    }
}

pub const ARGS_IGNORED: Rule = Rule {
    code: Code::ArgsIgnored,
    severity: Severity::Error,
    summary: "boot.args on bootcfg-0.4, which reads boot.cmdline only",
    check: args_ignored,
};

fn args_ignored(facts: &Facts<'_>, out: &mut Findings) {
    if !facts.target.reads_cmdline() {
        return;
    }
    for fact in facts.profiles() {
        if fact.profile.boot.is_none() || !has(fact, "args") {
            continue;
        }
        let (severity, consequence) = if has(fact, "cmdline") {
            (
                Severity::Warning,
                "only boot.cmdline reaches the kernel line",
            )
        } else {
            (Severity::Error, "the kernel line gets no arguments at all")
        };
        out.add_as(
            severity,
            fact.path,
            field_pos(fact, "args"),
            format!("bootcfg-0.4 does not read boot.args (added in matchbox v0.5): {consequence}; write boot.cmdline (caas gen profile --compat bootcfg-0.4)"),
        );
    }
}

pub const CMDLINE_TYPE: Rule = Rule {
    code: Code::WrongType,
    severity: Severity::Error,
    summary: "a boot.cmdline that is not a map of strings: bootcfg-0.4 skips the profile",
    check: cmdline_types,
};

fn cmdline_types(facts: &Facts<'_>, out: &mut Findings) {
    if !facts.target.reads_cmdline() {
        return;
    }
    for fact in facts.profiles() {
        if fact.profile.boot.is_none() {
            continue;
        }
        // bootcfg decodes cmdline as a map of strings; anything else fails the profile.
        let Some(boot) = boot_json(fact) else {
            continue;
        };
        let Some((_, map)) = boot.iter().find(|(k, _)| keys_match(k, "cmdline")) else {
            continue;
        };
        let bad = match map {
            Value::Object(entries) => entries
                .iter()
                .find(|(_, v)| !v.is_string() && !v.is_null())
                .map(|(k, v)| (vec![key("boot"), key("cmdline"), map_key(k)], type_name(v))),
            Value::Null => None,
            other => Some((vec![key("boot"), key("cmdline")], type_name(other))),
        };
        if let Some((segs, found)) = bad {
            out.add(
                fact.path,
                fact.at(&segs, Part::Value),
                format!("boot.cmdline must map names to strings, found {found}: bootcfg-0.4 cannot decode this profile and skips it"),
            );
        }
    }
}
