//! Groups: their selectors, their ids and the profile they name.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use serde_json::Value;

use super::{Findings, Rule};
use crate::lint::facts::{Config, Dir, Facts, GroupFact, ProfileLink, key, map_key};
use crate::lint::{Code, Severity};
use crate::matchbox::decode::{DecodeError, keys_match};
use crate::matchbox::group::is_mac_key;
use crate::matchbox::select::{self, selector_string};
use crate::matchbox::spans::{self, Part, Pos};
use crate::matchbox::store::LoadError;
use crate::matchbox::{Selector, mac};

pub const INVALID_MAC: Rule = Rule {
    code: Code::InvalidMac,
    severity: Severity::Error,
    summary: "a mac selector that is not a MAC address: matchbox skips the group",
    check: invalid_macs,
};

fn invalid_macs(facts: &Facts<'_>, out: &mut Findings) {
    for file in facts.files.iter().filter(|f| f.dir == Dir::Groups) {
        let Some(bytes) = file.parsed() else {
            continue;
        };
        if let Some(LoadError::Decode(DecodeError::Invalid(_))) = file.error
            && let Some(json) = file.json()
        {
            invalid_macs_in(file.path, bytes, &json, out);
        }
    }
}

fn invalid_macs_in(path: &Path, bytes: &[u8], json: &Value, out: &mut Findings) {
    let Some((selector_key, Value::Object(selector))) = json
        .as_object()
        .and_then(|root| root.iter().find(|(k, _)| keys_match(k, "selector")))
    else {
        return;
    };
    for (name, value) in selector {
        let Some(text) = value.as_str() else { continue };
        if !is_mac_key(name) {
            continue;
        }
        if let Err(err) = mac::normalize(text) {
            let pos =
                spans::locate_or_parent(bytes, &[key(selector_key), map_key(name)], Part::Value);
            out.add(
                path,
                pos,
                format!("selector {name}: {err}; matchbox skips this group"),
            );
        }
    }
}

pub const SELECTOR_CASE: Rule = Rule {
    code: Code::SelectorCase,
    severity: Severity::Error,
    summary: "a selector a booting machine never matches: an upper-case label name or uuid",
    check: selector_cases,
};

/// Selectors written in a case iPXE never sends: label names (`MAC`, `UUID`) are compared
/// as they are, and `${uuid}` expands in lower case (dmidecode prints it in upper case).
fn selector_cases(facts: &Facts<'_>, out: &mut Findings) {
    let labels = facts.target.boot_labels();
    for group in &facts.groups {
        for (name, value) in &group.group.selector {
            let lower = name.to_ascii_lowercase();
            let at = |part| {
                spans::locate_or_parent(group.bytes, &[key("selector"), map_key(name)], part)
            };
            if lower != *name && labels.contains(&lower.as_str()) {
                out.add(
                    group.path,
                    at(Part::Key),
                    format!(
                        "selector key {name:?}: matchbox compares label names as they are and iPXE sends {lower:?}, so this group never matches a booting machine; write {lower:?}"
                    ),
                );
            } else if name == "uuid" && value.chars().any(|c| c.is_ascii_uppercase()) {
                out.add(
                    group.path,
                    at(Part::Value),
                    format!(
                        "selector uuid {value:?} has upper-case letters: iPXE sends ${{uuid}} in lower case and matchbox compares as it is, so this group never matches; write {:?}",
                        value.to_ascii_lowercase()
                    ),
                );
            }
        }
    }
}

pub const METADATA_RENDER: Rule = Rule {
    code: Code::MetadataRender,
    severity: Severity::Warning,
    summary: "metadata matchbox renders otherwise than written: big numbers, lists, `request`, keys differing in case",
    check: metadata_renders,
};

/// Metadata that comes out of `/metadata` (and templates) otherwise than it was written:
/// matchbox reads it into Go's `map[string]interface{}`, so numbers are float64 and print as
/// Go's `%v` does (`1e+06` from 1000000), `/metadata` leaves lists out and upper-cases names
/// (`k` and `K` both print as `K=`), and `request` is replaced by the request's own data.
fn metadata_renders(facts: &Facts<'_>, out: &mut Findings) {
    for group in &facts.groups {
        let metadata = &group.group.metadata;
        let mut upper: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for name in metadata.keys() {
            upper.entry(name.to_uppercase()).or_default().push(name);
        }
        let mut report = |path: &[&str], message: String| {
            let mut segs = vec![key("metadata")];
            segs.extend(path.iter().map(|p| map_key(p)));
            out.add(
                group.path,
                spans::locate_or_parent(group.bytes, &segs, Part::Key),
                message,
            );
        };
        if metadata.contains_key("request") {
            report(
                &["request"],
                "metadata \"request\": matchbox replaces it with the request's own data (query, raw_query) in templates and /metadata".into(),
            );
        }
        for (name, names) in &upper {
            if names.len() > 1 {
                report(
                    &[names[1]],
                    format!(
                        "metadata keys {names:?} differ only in case: /metadata prints each as {name}=, in no defined order"
                    ),
                );
            }
        }
        // Lists are how templates take repeated values (`ssh_authorized_keys`): that
        // /metadata leaves them out matters only where no template can read them.
        let lists_matter = facts.profile_of(group).is_some_and(|fact| {
            !fact
                .configs
                .iter()
                .any(|named| matches!(named.config, Config::Template(_)))
        });
        for (name, value) in metadata {
            if name != "request" {
                metadata_value(&[name.as_str()], value, lists_matter, &mut report);
            }
        }
    }
}

/// Numbers Go prints in exponent form and lists `/metadata` drops, below `path`.
fn metadata_value(
    path: &[&str],
    value: &Value,
    lists_matter: bool,
    report: &mut dyn FnMut(&[&str], String),
) {
    let dotted = path.join(".");
    match value {
        Value::Number(n) => {
            let Some(f) = n.as_f64() else { return };
            let printed = go_print_float(f);
            if printed.contains('e') {
                report(
                    path,
                    format!(
                        "metadata {dotted} = {n}: matchbox reads JSON numbers as float64 and prints it as {printed} in /metadata and templates; write it as a string (\"{n}\")"
                    ),
                );
            }
        }
        Value::Array(_) if lists_matter => report(
            path,
            format!(
                "metadata {dotted} is a list, and the profile has no template to use it: /metadata leaves lists out"
            ),
        ),
        Value::Object(map) => {
            for (name, inner) in map {
                let mut deeper = path.to_vec();
                deeper.push(name);
                metadata_value(&deeper, inner, lists_matter, report);
            }
        }
        _ => {}
    }
}

/// A float64 as Go's `fmt` prints it with `%v`: the shortest digits, in exponent form
/// (`1e+06`, `4.200000001e+09`) when the decimal exponent is below -4 or 6 or more.
pub fn go_print_float(f: f64) -> String {
    if f == 0.0 || !f.is_finite() {
        return format!("{f}");
    }
    let sci = format!("{f:e}"); // shortest round-trip digits: "4.200000001e9"
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("a decimal exponent");
    if (-4..6).contains(&exp) {
        return format!("{f}");
    }
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.abs())
}

pub const MISSING_PROFILE: Rule = Rule {
    code: Code::MissingProfile,
    severity: Severity::Error,
    summary: "a group whose profile is missing, does not load or is not named",
    check: missing_profiles,
};

fn missing_profiles(facts: &Facts<'_>, out: &mut Findings) {
    for group in &facts.groups {
        let pos = || spans::locate_or_parent(group.bytes, &[key("profile")], Part::Value);
        match group.profile {
            ProfileLink::Loaded(_) => {}
            ProfileLink::Unnamed => out.add(
                group.path,
                pos(),
                "the group names no profile: matchbox selects it and then answers 404 (\"No profile named\")",
            ),
            ProfileLink::Failed(loaded) => {
                let why = match &loaded.result {
                    Err(err) if err.is_not_found() => {
                        format!("{} does not exist", loaded.path.display())
                    }
                    Err(err) => format!("{} does not load ({err})", loaded.path.display()),
                    Ok(_) => continue,
                };
                out.add(
                    group.path,
                    pos(),
                    format!(
                        "profile {:?}: {why}: matchbox selects this group and then answers 404",
                        group.group.profile
                    ),
                );
            }
        }
    }
}

pub const DUPLICATE_ID: Rule = Rule {
    code: Code::DuplicateId,
    severity: Severity::Warning,
    summary: "two groups with the same id",
    check: duplicate_ids,
};

fn duplicate_ids(facts: &Facts<'_>, out: &mut Findings) {
    let mut ids: HashMap<&str, &Path> = HashMap::new();
    for group in facts.groups.iter().filter(|g| !g.group.id.is_empty()) {
        if let Some(first) = ids.get(group.group.id.as_str()) {
            out.add(
                group.path,
                spans::locate_or_parent(group.bytes, &[key("id")], Part::Value),
                format!(
                    "id {:?} is also the id of {} (the gRPC API and terraform address groups by id)",
                    group.group.id,
                    first.display()
                ),
            );
        } else {
            ids.insert(&group.group.id, group.path);
        }
    }
}

fn selector_pos(group: &GroupFact<'_>) -> Pos {
    spans::locate_or_parent(group.bytes, &[key("selector")], Part::Key)
}

pub const DUPLICATE_SELECTOR: Rule = Rule {
    code: Code::DuplicateSelector,
    severity: Severity::Error,
    summary: "groups with identical selector sets: matchbox picks one in no defined order",
    check: duplicate_selectors,
};

fn duplicate_selectors(facts: &Facts<'_>, out: &mut Findings) {
    let mut first: HashMap<&Selector, &GroupFact<'_>> = HashMap::new();
    for group in &facts.groups {
        let selector = &group.group.selector;
        let Some(earlier) = first.get(selector) else {
            first.insert(selector, group);
            continue;
        };
        let what = if selector.is_empty() {
            "a second default group (no selector)".to_owned()
        } else {
            format!("the same selectors ({})", selector_string(selector))
        };
        out.add(
            group.path,
            selector_pos(group),
            format!(
                "{what} as {}: matchbox's sort is not stable, so either group may answer these machines",
                earlier.path.display()
            ),
        );
    }
}

pub const SELECTOR_OVERLAP: Rule = Rule {
    code: Code::SelectorOverlap,
    severity: Severity::Warning,
    summary: "groups with as many selectors each that can match the same machine",
    check: selector_overlaps,
};

/// Distinct selector sets (the first group with each) by size, then by key set.
type BySize<'f, 't> = BTreeMap<usize, BTreeMap<Vec<&'f str>, Vec<&'f GroupFact<'t>>>>;

fn selector_overlaps(facts: &Facts<'_>, out: &mut Findings) {
    let mut seen: HashSet<&Selector> = HashSet::new();
    let mut by_size: BySize<'_, '_> = BTreeMap::new();
    for group in &facts.groups {
        let selector = &group.group.selector;
        if !seen.insert(selector) {
            continue; // a duplicate-selector
        }
        by_size
            .entry(selector.len())
            .or_default()
            .entry(selector.keys().map(String::as_str).collect())
            .or_default()
            .push(group);
    }
    for keysets in by_size.values() {
        let keysets: Vec<(&Vec<&str>, &Vec<&GroupFact<'_>>)> = keysets.iter().collect();
        for (a, (keys_a, members_a)) in keysets.iter().enumerate() {
            for (keys_b, members_b) in &keysets[a + 1..] {
                overlaps_between(keys_a, members_a, keys_b, members_b, out);
            }
        }
    }
}

/// Groups of two key sets of one size that match a common machine: those that agree on the
/// keys both sets have.
fn overlaps_between<'f, 't>(
    keys_a: &[&str],
    members_a: &[&'f GroupFact<'t>],
    keys_b: &[&str],
    members_b: &[&'f GroupFact<'t>],
    out: &mut Findings,
) {
    let shared: Vec<&str> = keys_a
        .iter()
        .filter(|k| keys_b.contains(k))
        .copied()
        .collect();
    let project = |group: &'f GroupFact<'t>| -> Vec<&'t str> {
        let selector: &'t Selector = &group.group.selector;
        (shared.iter())
            .map(|&k| selector.get(k).map_or("", String::as_str))
            .collect()
    };
    let mut by_projection: HashMap<Vec<&str>, Vec<&GroupFact<'_>>> = HashMap::new();
    for group in members_a {
        by_projection.entry(project(group)).or_default().push(group);
    }
    for gb in members_b {
        let Some(others) = by_projection.get(&project(gb)) else {
            continue;
        };
        report_overlap(others[0], gb, others.len() - 1, out);
    }
}

fn report_overlap(ga: &GroupFact<'_>, gb: &GroupFact<'_>, like: usize, out: &mut Findings) {
    let mut machine = ga.group.selector.clone();
    machine.extend(gb.group.selector.clone());
    let machine = selector_string(&machine);
    let (winner, loser) = if select::precedence(&ga.group.selector, &gb.group.selector).is_le() {
        (ga, gb)
    } else {
        (gb, ga)
    };
    let more = if like > 0 {
        format!(" (and {like} other groups like it)")
    } else {
        String::new()
    };
    out.add(
        gb.path,
        selector_pos(gb),
        format!(
            "{} has as many selectors as this group and both match a machine with {machine}{more}: matchbox answers it with {} only because {:?} sorts after {:?}",
            ga.path.display(),
            winner.path.display(),
            selector_string(&winner.group.selector),
            selector_string(&loser.group.selector),
        ),
    );
}
