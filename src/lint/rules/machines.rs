//! What the machines a group selects end up with: the data its templates need, the group their
//! Ignition URL selects, and whether the installed system installs again.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::{Findings, Rule};
use crate::lint::facts::{Config, Facts, GroupFact, ProfileFact, ProfileLink, key};
use crate::lint::{Code, Severity};
use crate::matchbox::Group;
use crate::matchbox::boot::IgnitionUrl;
use crate::matchbox::select::{self, Labels, selector_string};
use crate::matchbox::spans::{self, Part};
use crate::matchbox::store::{ConfigKind, is_raw_ignition};
use crate::matchbox::template;

pub const TEMPLATE_MISSING_KEY: Rule = Rule {
    code: Code::TemplateMissingKey,
    severity: Severity::Error,
    summary: "a template referencing a key that a group using it does not provide",
    check: template_missing_keys,
};

/// Template references each group's data cannot satisfy (`missingkey=error` → 404).
fn template_missing_keys(facts: &Facts<'_>, out: &mut Findings) {
    for group in &facts.groups {
        let Some(fact) = facts.profile_of(group) else {
            continue;
        };
        let mut data = None;
        for named in &fact.configs {
            if named.kind == ConfigKind::Ignition && is_raw_ignition(named.name) {
                continue;
            }
            let Config::Template(file) = named.config else {
                continue;
            };
            let Ok(info) = &file.scan else { continue };
            let data = data.get_or_insert_with(|| template::template_data(group.group));
            let mut reported: Vec<String> = Vec::new();
            for reference in &info.required {
                let Some(missing) = template::missing_key(data, &reference.path) else {
                    continue;
                };
                if reported.contains(&missing) {
                    continue;
                }
                let at = spans::position(&file.bytes, reference.offset);
                out.add(
                    group.path,
                    spans::locate_or_parent(group.bytes, &[key("metadata")], Part::Key),
                    format!(
                        "{}:{}:{} uses .{}, but this group has no {missing:?} in its metadata or selectors: matchbox renders with missingkey=error and answers 404 for /{}",
                        named.path.display(),
                        at.line,
                        at.column,
                        reference.path.join("."),
                        named.kind.dir_name()
                    ),
                );
                reported.push(missing);
            }
        }
    }
}

/// The labels an Ignition URL sends for the machines of `group`: literal values as written;
/// iPXE variables stand for the machine's own values, known where the group selects on that
/// key and unknown otherwise.
fn url_labels(url: &IgnitionUrl, group: &Group) -> Labels {
    const UNKNOWN: &str = "\u{0}unknown";
    let pairs: Vec<(String, String)> = url
        .query
        .iter()
        .map(|(k, v)| {
            let value = if v.contains("${") {
                group
                    .selector
                    .get(k)
                    .cloned()
                    .unwrap_or_else(|| UNKNOWN.to_owned())
            } else {
                v.clone()
            };
            (k.clone(), value)
        })
        .collect();
    select::labels_from_query(pairs).0
}

/// The group boots the profile at `path`.
fn boots(group: &GroupFact<'_>, path: &Path) -> bool {
    matches!(group.profile, ProfileLink::Loaded(p) if p == path)
}

pub const IGNITION_URL_LABELS: Rule = Rule {
    code: Code::IgnitionUrlLabels,
    severity: Severity::Error,
    summary: "an Ignition URL whose labels make matchbox pick another group (or none)",
    check: ignition_url_labels,
};

/// Ignition URLs whose labels make matchbox answer the machines of a group with another
/// group's Ignition (or a 404). Checked for groups that matchbox's own `/boot.ipxe` chain can
/// select (their selector keys are labels that chain sends).
fn ignition_url_labels(facts: &Facts<'_>, out: &mut Findings) {
    let boot_labels = facts.target.boot_labels();
    // (profile, argument) → affected groups and what they get.
    let mut problems: BTreeMap<(&Path, usize), Vec<String>> = BTreeMap::new();
    for group in &facts.groups {
        let selector = &group.group.selector;
        if !selector.keys().all(|k| boot_labels.contains(&k.as_str())) {
            continue;
        }
        let Some(fact) = facts.profile_of(group) else {
            continue;
        };
        for url in &fact.config_urls {
            let outcome = match facts.winner(&url_labels(url, group.group)) {
                Some(w) if std::ptr::eq(w, group) || w.group.selector == *selector => continue,
                Some(w) if boots(w, fact.path) && is_raw_ignition(&fact.profile.ignition_id) => {
                    continue;
                }
                Some(w) => format!("selects {} instead", w.path.display()),
                None => "matches no group (404)".to_owned(),
            };
            let selector = if selector.is_empty() {
                "default group".to_owned()
            } else {
                selector_string(selector)
            };
            problems
                .entry((fact.path, url.arg))
                .or_default()
                .push(format!("{} ({selector}) {outcome}", group.path.display()));
        }
    }
    for ((path, arg), affected) in problems {
        if let Some(fact) = facts.profile(path) {
            report_url_labels(fact, arg, affected, out);
        }
    }
}

pub const IGNITION_URL_DROPPED: Rule = Rule {
    code: Code::IgnitionUrlLabels,
    severity: Severity::Error,
    summary: "an Ignition URL with a query pair matchbox drops (a `;` in it, a bad `%` escape)",
    check: ignition_url_dropped,
};

/// Query pairs of Ignition URLs that never reach matchbox's selection: Go 1.17 and later
/// reject a pair with `;` in it (and any Go a bad escape), and matchbox ignores the error.
fn ignition_url_dropped(facts: &Facts<'_>, out: &mut Findings) {
    for fact in facts.profiles() {
        for url in &fact.config_urls {
            for pair in &url.dropped {
                let why = if pair.contains(';') {
                    "contains `;`, which Go (1.17 and later, as matchbox is built) rejects as a query separator"
                } else {
                    "has a `%` not followed by two hex digits"
                };
                out.add(
                    fact.path,
                    fact.arg_pos(url.arg),
                    format!(
                        "{}: the query pair {pair:?} {why}: matchbox drops it, so /ignition selects without it (separate pairs with `&`)",
                        url.key
                    ),
                );
            }
        }
    }
}

fn report_url_labels(
    fact: &ProfileFact<'_>,
    arg: usize,
    affected: Vec<String>,
    out: &mut Findings,
) {
    let Some(url) = fact.config_urls.iter().find(|u| u.arg == arg) else {
        return;
    };
    let shown = affected.len();
    let mut list: Vec<String> = affected.into_iter().take(3).collect();
    if shown > 3 {
        list.push(format!("and {} more", shown - 3));
    }
    let sent: Vec<&str> = url.query.iter().map(|(k, _)| k.as_str()).collect();
    out.add(
        fact.path,
        fact.arg_pos(arg),
        format!(
            "{} sends only the labels {sent:?}, so matchbox does not answer with the group that booted the machine: {}; add the selector keys to the query (e.g. mac=${{mac:hexhyp}})",
            url.key,
            list.join("; ")
        ),
    );
}

pub const INSTALL_LOOP: Rule = Rule {
    code: Code::InstallLoop,
    severity: Severity::Warning,
    summary: "a profile that installs to disk with nothing that stops it reinstalling",
    check: install_loops,
};

/// Installers whose installed system would install again.
fn install_loops(facts: &Facts<'_>, out: &mut Findings) {
    // (key, value) → groups with that selector pair.
    let mut postings: HashMap<(&str, &str), Vec<&GroupFact<'_>>> = HashMap::new();
    let mut with_selectors = Vec::new();
    for group in &facts.groups {
        for (k, v) in &group.group.selector {
            postings
                .entry((k.as_str(), v.as_str()))
                .or_default()
                .push(group);
        }
        if !group.group.selector.is_empty() {
            with_selectors.push(group);
        }
    }
    for group in &facts.groups {
        let Some(fact) = facts.profile_of(group) else {
            continue;
        };
        if fact.ignition_installs() {
            // The installer fetches the installed system's config itself (a URL in its
            // script, typically with os=installed): a more specific group must answer it
            // with a config that does not install.
            let candidates: &[&GroupFact<'_>] = match (group.group.selector.iter())
                .filter_map(|(k, v)| postings.get(&(k.as_str(), v.as_str())))
                .min_by_key(|list| list.len())
            {
                Some(list) => list,
                None => &with_selectors,
            };
            if !escapes(facts, group, candidates) {
                reinstalls_by_ignition(group, fact, out);
            }
        } else if fact.kargs_install {
            reinstalls_by_kargs(facts, group, fact, out);
        }
    }
}

/// A more specific group among `candidates` answers the installed system with a config that
/// does not install (a missing profile there is reported as such, not as a loop).
fn escapes(facts: &Facts<'_>, group: &GroupFact<'_>, candidates: &[&GroupFact<'_>]) -> bool {
    let selector = &group.group.selector;
    candidates.iter().any(|h| {
        !std::ptr::eq(*h, group)
            && h.group.selector.len() > selector.len()
            && selector
                .iter()
                .all(|(k, v)| h.group.selector.get(k) == Some(v))
            && !installs_by_ignition(facts, h)
    })
}

fn installs_by_ignition(facts: &Facts<'_>, group: &GroupFact<'_>) -> bool {
    facts
        .profile_of(group)
        .is_some_and(ProfileFact::ignition_installs)
}

fn reinstalls_by_ignition(group: &GroupFact<'_>, fact: &ProfileFact<'_>, out: &mut Findings) {
    let ignition = fact
        .ignition()
        .map(|named| named.path.display().to_string())
        .unwrap_or_default();
    out.add(
        group.path,
        spans::locate_or_parent(group.bytes, &[key("profile")], Part::Value),
        format!(
            "profile {:?} installs to disk ({ignition}), and no more specific group (such as one adding os=installed) answers these machines with a config that does not: the installed system gets the installer's config again and reinstalls",
            fact.profile.id
        ),
    );
}

/// The Fedora CoreOS live installer hands the installed system the config at
/// `coreos.inst.ignition_url`: a loop if that config installs again.
fn reinstalls_by_kargs(
    facts: &Facts<'_>,
    group: &GroupFact<'_>,
    fact: &ProfileFact<'_>,
    out: &mut Findings,
) {
    let Some(url) = &fact.install_url else {
        return;
    };
    let Some(w) = facts.winner(&url_labels(url, group.group)) else {
        return;
    };
    if installs_by_ignition(facts, w) {
        out.add(
            group.path,
            spans::locate_or_parent(group.bytes, &[key("profile")], Part::Value),
            format!(
                "profile {:?} installs to disk with {}, which matchbox answers from {}, whose config installs to disk again",
                fact.profile.id,
                url.key,
                w.path.display()
            ),
        );
    }
}
