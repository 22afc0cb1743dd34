//! Resolving a data directory once into the answers matchbox would give: for every selector
//! value set the groups name (and the default group), the `/ipxe` and `/ignition` bodies, or a
//! 404 where matchbox answers one.
//!
//! Selection is matchbox's own ([`select::order`]): among groups with the same selector
//! values, the first one matchbox tries is the one an entry holds. Between entries, a request
//! is answered by the first entry it matches in [`KEYSETS`] order, which is matchbox's order
//! whenever selectors use only `mac`, `os` and `uuid` (see [`KEYSETS`]); other keys are refused.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};

use crate::matchbox::Group;
use crate::matchbox::select;
use crate::matchbox::store::{ConfigKind, Store, is_raw_ignition, par_map};
use crate::matchbox::target::{Target, ipxe_script};

/// The selector key sets a tree resolves, in the order a request tries them. matchbox tries
/// groups with more selectors first, then the greater sorted `k=v,…` string first. For groups
/// that all match one request, the values of a shared key are equal, so the order only depends
/// on the key names: `uuid=…` > `os=…` > `mac=…`, and `mac=V,uuid=…` > `mac=V,os=…`.
pub const KEYSETS: [&[&str]; 8] = [
    &["mac", "os", "uuid"],
    &["os", "uuid"],
    &["mac", "uuid"],
    &["mac", "os"],
    &["uuid"],
    &["os"],
    &["mac"],
    &[],
];

/// The label keys a tree can resolve ahead of time.
pub const KEYS: [&str; 3] = ["mac", "os", "uuid"];

/// One resolved selector value set: its directory in the tree and what it answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// `t/<keys>/<value>/…`, relative to the tree's root.
    pub dir: String,
    /// The group file that answers (for reports and errors).
    pub group_file: String,
    /// The `/ipxe` body, `None` for a 404.
    pub ipxe: Option<Body>,
    /// The `/ignition` body, `None` for a 404.
    pub ignition: Option<Body>,
}

/// A body and its digest; one copy shared by every entry that answers with the same bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Body {
    pub sha256: Arc<str>,
    pub bytes: Arc<[u8]>,
}

impl Body {
    pub fn new(bytes: Vec<u8>) -> Body {
        Body {
            sha256: crate::write::sha256_hex(&bytes).into(),
            bytes: bytes.into(),
        }
    }
}

/// Every body read so far, by digest: 100,000 machines' Ignition files are read one by one
/// but mostly alike, and are held once each instead of once a machine.
#[derive(Default)]
struct Bodies(Mutex<HashMap<[u8; 32], Body>>);

impl Bodies {
    /// The body of `bytes`, the one already held when another had the same digest.
    fn of(&self, bytes: &[u8]) -> Body {
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        self.0
            .lock()
            .expect("body table")
            .entry(digest)
            .or_insert_with(|| Body {
                sha256: hex::encode(digest).into(),
                bytes: bytes.into(),
            })
            .clone()
    }
}

/// Two group files with identical selectors: the first one answers.
pub type Tie = (String, String);

/// A data directory resolved for one server version.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// Sorted by directory.
    pub entries: Vec<Entry>,
    /// The `/boot.ipxe` script.
    pub boot_ipxe: Body,
    /// Groups that tie with another (identical selectors): matchbox may answer with either.
    pub ties: Vec<Tie>,
}

/// Why a data directory cannot be served from a static tree.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "caas publish static reproduces matchbox v0.7–v0.9 (--target matchbox-0.8); {0} serves Ignition differently"
    )]
    Target(&'static str),
    #[error(
        "{0}: selects on a key other than mac, os or uuid, which a static tree cannot resolve ahead of time (serve these groups with matchbox)"
    )]
    Keys(String),
    #[error(
        "{0}: a selector value is not a plain word (letters, digits, '.', '_', ':', '-'), which a static tree cannot hold"
    )]
    Values(String),
    #[error(
        "{0}: the profile's Ignition is a template that matchbox renders per request; publish raw Ignition (.ign) instead"
    )]
    Templates(String),
}

/// Resolves the groups of `store` (as matchbox lists and loads them) into tree entries.
pub fn resolve(store: &Store, target: Target) -> anyhow::Result<Result<Resolved, Refusal>> {
    if target != Target::Matchbox08 {
        return Ok(Err(Refusal::Target(target.name())));
    }
    let listed = match store.group_list() {
        Ok(listed) => listed,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(err) => return Err(anyhow::Error::new(err).context("listing groups/")),
    };
    let (files, groups): (Vec<String>, Vec<Group>) = listed
        .into_iter()
        .map(|(path, group)| (path.display().to_string(), group))
        .unzip();
    if let Err(refusal) = check_selectors(&groups, &files) {
        return Ok(Err(refusal));
    }
    let (winners, ties) = winners(&groups, &files);
    let mut profiles: Vec<&str> = winners
        .iter()
        .map(|(_, index)| groups[*index].profile.as_str())
        .collect();
    profiles.sort_unstable();
    profiles.dedup();
    let reader = Reader {
        store,
        target,
        bodies: Bodies::default(),
    };
    let answers: HashMap<&str, Answer> = profiles
        .iter()
        .copied()
        .zip(par_map(profiles.clone(), |id| reader.read(id)))
        .collect();
    let resolved: Vec<(Entry, Option<String>)> = winners
        .into_iter()
        .map(|(dir, index)| {
            let answer = &answers[groups[index].profile.as_str()];
            let entry = Entry {
                dir,
                group_file: files[index].clone(),
                ipxe: answer.ipxe.clone(),
                ignition: answer.ignition.clone(),
            };
            (entry, answer.template.then(|| files[index].clone()))
        })
        .collect();
    let templates: Vec<String> = resolved.iter().filter_map(|(_, t)| t.clone()).collect();
    if !templates.is_empty() {
        return Ok(Err(Refusal::Templates(shown_files(&templates))));
    }
    Ok(Ok(Resolved {
        entries: resolved.into_iter().map(|(entry, _)| entry).collect(),
        boot_ipxe: Body::new(boot_ipxe(target).into_bytes()),
        ties,
    }))
}

/// Refuses keys other than [`KEYS`] and values that cannot be a directory name.
fn check_selectors(groups: &[Group], files: &[String]) -> Result<(), Refusal> {
    let mut keys = Vec::new();
    let mut values = Vec::new();
    for (group, file) in groups.iter().zip(files) {
        if group
            .selector
            .keys()
            .any(|key| !KEYS.contains(&key.as_str()))
        {
            keys.push(file.clone());
        } else if group
            .selector
            .values()
            .any(|v| !v.is_empty() && !is_plain(v))
        {
            values.push(file.clone());
        }
    }
    if !keys.is_empty() {
        return Err(Refusal::Keys(shown_files(&keys)));
    }
    if !values.is_empty() {
        return Err(Refusal::Values(shown_files(&values)));
    }
    Ok(())
}

/// A value that is safe as one path component and that the nginx configuration passes
/// through unchanged: starts with a letter or digit, then letters, digits, `._:-`.
pub fn is_plain(value: &str) -> bool {
    value.len() <= 200
        && value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
}

fn shown_files(files: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut text = files[..files.len().min(SHOWN)].join(", ");
    if files.len() > SHOWN {
        text.push_str(&format!(" and {} more", files.len() - SHOWN));
    }
    text
}

/// For each selector value set, the group matchbox tries first among those that have it
/// (sorted by directory); and the groups tied with a winner, in the order matchbox tries them.
///
/// [`select::order`] is a stable sort by a key that only depends on the selector, and a
/// directory names exactly one selector (keys and plain values, checked before): so among
/// groups with one directory the first listed is the first tried, and only the tied groups
/// need sorting. Sorting all 200,000 groups of a large lab by their selector strings was most
/// of the time spent here.
fn winners(groups: &[Group], files: &[String]) -> (Vec<(String, usize)>, Vec<Tie>) {
    let dirs = par_map((0..groups.len()).collect(), |index| {
        entry_dir(&groups[index])
    });
    let mut first: HashMap<&str, usize> = HashMap::with_capacity(groups.len());
    let mut tied: Vec<(usize, usize)> = Vec::new();
    for (index, dir) in dirs.iter().enumerate() {
        match first.get(dir.as_str()) {
            Some(&winner) => tied.push((winner, index)),
            None => {
                first.insert(dir, index);
            }
        }
    }
    let tied_groups: Vec<&Group> = tied.iter().map(|&(_, index)| &groups[index]).collect();
    let ties = select::order(&tied_groups)
        .into_iter()
        .map(|k| (files[tied[k].0].clone(), files[tied[k].1].clone()))
        .collect();
    let mut winners: Vec<(String, usize)> = first
        .into_values()
        .map(|index| (dirs[index].clone(), index))
        .collect();
    winners.sort_unstable();
    (winners, ties)
}

/// The tree directory of a selector: `t/<key+key>/<component>/…`, or `t/default`.
pub fn entry_dir(group: &Group) -> String {
    if group.selector.is_empty() {
        return "t/default".to_owned();
    }
    let keys: Vec<&str> = group.selector.keys().map(String::as_str).collect();
    let mut dir = format!("t/{}", keys.join("+"));
    for value in group.selector.values() {
        dir.push('/');
        dir.push_str(&component(value));
    }
    dir
}

/// A label value as a path component: `none` for an empty (or missing) label, `v-<value>`.
pub fn component(value: &str) -> String {
    if value.is_empty() {
        "none".to_owned()
    } else {
        format!("v-{value}")
    }
}

/// matchbox's own `/boot.ipxe`: chains to `/ipxe` with the labels iPXE knows.
pub fn boot_ipxe(target: Target) -> String {
    let labels: Vec<String> = target
        .boot_labels()
        .iter()
        .map(|label| match *label {
            "mac" => "mac=${mac:hexhyp}".to_owned(),
            "arch" => "arch=${buildarch}".to_owned(),
            other => format!("{other}=${{{other}}}"),
        })
        .collect();
    format!("#!ipxe\nchain ipxe?{}\n", labels.join("&"))
}

/// What matchbox answers for the groups that name one profile (with matchbox v0.7–v0.9 the
/// answers depend on the profile alone).
#[derive(Clone, Debug, Default)]
struct Answer {
    ipxe: Option<Body>,
    ignition: Option<Body>,
    /// The profile's Ignition is a template, which a tree cannot hold.
    template: bool,
}

/// Reads what matchbox answers for a profile; each body is held once ([`Bodies`]).
struct Reader<'a> {
    store: &'a Store,
    target: Target,
    bodies: Bodies,
}

impl Reader<'_> {
    /// `/ipxe` and `/ignition` (`None`: 404) for groups naming profile `id`.
    fn read(&self, id: &str) -> Answer {
        // Files are read into one buffer a thread: only the bodies kept are copied out of it.
        thread_local! {
            static BUFFER: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(16 * 1024));
        }
        BUFFER.with_borrow_mut(|bytes| {
            // matchbox reads `profiles/<id>.json`; an empty id names no file it can read.
            if id.is_empty() {
                return Answer::default();
            }
            let Ok(profile) = self.store.profile_in(id, bytes) else {
                return Answer::default();
            };
            let ipxe = ipxe_script(profile.boot.as_ref(), self.target)
                .ok()
                .map(|script| self.bodies.of(script.as_bytes()));
            let name = &profile.ignition_id;
            let (ignition, template) = match self.store.config_in(ConfigKind::Ignition, name, bytes)
            {
                Err(_) => (None, false),
                // matchbox v0.7–v0.9 serves raw Ignition byte for byte.
                Ok(()) if is_raw_ignition(name) => (Some(self.bodies.of(bytes)), false),
                Ok(()) => (None, true),
            };
            Answer {
                ipxe,
                ignition,
                template,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(selector: &[(&str, &str)]) -> Group {
        Group {
            selector: selector
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Group::default()
        }
    }

    #[test]
    fn keysets_follow_matchbox_precedence() {
        // For groups that all match one request, KEYSETS lists them in matchbox's order.
        let m = "52:54:00:00:00:01";
        let groups: Vec<Group> = KEYSETS
            .iter()
            .map(|keys| {
                let pairs: Vec<(&str, &str)> = keys
                    .iter()
                    .map(|k| (*k, if *k == "mac" { m } else { "x" }))
                    .collect();
                group(&pairs)
            })
            .collect();
        assert_eq!(
            select::order(&groups),
            (0..KEYSETS.len()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn the_group_matchbox_tries_first_wins_and_ties_come_in_its_order() {
        let m = "52:54:00:00:00:01";
        let groups = [
            group(&[("os", "x")]),
            group(&[("mac", m)]),
            group(&[("os", "x")]),
            group(&[("mac", m)]),
            group(&[("mac", m), ("os", "x")]),
            group(&[("mac", m), ("os", "x")]),
            group(&[]),
            group(&[("mac", m)]),
        ];
        let files: Vec<String> = (0..groups.len()).map(|i| format!("g{i}")).collect();
        let (winners, ties) = winners(&groups, &files);
        let dirs = |pairs: &[(&str, usize)]| -> Vec<(String, usize)> {
            pairs.iter().map(|(d, i)| (d.to_string(), *i)).collect()
        };
        assert_eq!(
            winners,
            dirs(&[
                ("t/default", 6),
                (&format!("t/mac+os/v-{m}/v-x"), 4),
                (&format!("t/mac/v-{m}"), 1),
                ("t/os/v-x", 0),
            ])
        );
        let tie = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        assert_eq!(
            ties,
            vec![
                tie("g4", "g5"),
                tie("g0", "g2"),
                tie("g1", "g3"),
                tie("g1", "g7")
            ]
        );
    }

    #[test]
    fn entry_dirs_name_keys_and_values() {
        assert_eq!(entry_dir(&group(&[])), "t/default");
        assert_eq!(
            entry_dir(&group(&[("mac", "52:54:00:00:00:01"), ("os", "installed")])),
            "t/mac+os/v-52:54:00:00:00:01/v-installed"
        );
        assert_eq!(entry_dir(&group(&[("os", "")])), "t/os/none");
    }

    #[test]
    fn plain_values_cannot_leave_a_directory() {
        for bad in ["", "..", ".x", "a/b", "a b", "a%2f", "ä"] {
            assert!(!is_plain(bad), "{bad:?}");
        }
        for good in ["installed", "52:54:00:00:00:01", "uuid-1", "A.b_c"] {
            assert!(is_plain(good), "{good:?}");
        }
    }

    #[test]
    fn boot_ipxe_is_matchbox_0_8s() {
        assert_eq!(
            boot_ipxe(Target::Matchbox08),
            "#!ipxe\nchain ipxe?uuid=${uuid}&mac=${mac:hexhyp}&domain=${domain}&hostname=${hostname}&serial=${serial}\n"
        );
    }
}
