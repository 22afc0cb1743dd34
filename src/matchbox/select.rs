//! matchbox's group selection, as a pure function (`SelectGroup` in
//! <https://github.com/poseidon/matchbox/blob/v0.8.3/matchbox/server/server.go>, identical in
//! bootcfg v0.4, matchbox v0.8.3 and since).
//!
//! 1. The request's query parameters become labels; for a repeated key only the first value
//!    counts. A key equal to `mac` in any letter case has its value parsed as a MAC and
//!    normalised; a value that does not parse drops the label (so the machine can fall through
//!    to a default group). Keys keep their spelling: `MAC=` does not satisfy a `mac` selector.
//! 2. Groups are ordered by the number of selectors, most first; equal counts by their sorted
//!    `k=v,k=v` strings, greatest first in byte order (matchbox reverses an ascending sort).
//!    matchbox's sort is not stable, so groups with identical selector sets come in no defined
//!    order; here they keep their listing order, and [`Selection::tied`] says so.
//! 3. The first group whose every selector equals the label of the same key wins. A missing
//!    label reads as `""` (Go's map lookup), so a selector with an empty value matches machines
//!    that do not send that label.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::group::{Group, Selector, is_mac_key};
use super::mac;

/// A request's labels, after matchbox's normalisation.
pub type Labels = BTreeMap<String, String>;

/// A query parameter matchbox drops instead of turning into a label.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DroppedLabel {
    pub key: String,
    pub value: String,
    pub reason: String,
}

/// Turns query parameters (in request order) into labels as matchbox's `labelsFromRequest`
/// does, with the parameters it drops.
pub fn labels_from_query<K, V>(
    pairs: impl IntoIterator<Item = (K, V)>,
) -> (Labels, Vec<DroppedLabel>)
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    // Only the first value of a key counts (`url.Values.Get`).
    let mut first: Vec<(String, String)> = Vec::new();
    for (key, value) in pairs {
        let (key, value) = (key.as_ref(), value.as_ref());
        if !first.iter().any(|(k, _)| k == key) {
            first.push((key.to_owned(), value.to_owned()));
        }
    }
    let mut labels = Labels::new();
    let mut dropped = Vec::new();
    for (key, value) in first {
        if is_mac_key(&key) {
            match mac::normalize(&value) {
                Ok(normal) => {
                    labels.insert(key, normal);
                }
                Err(err) => dropped.push(DroppedLabel {
                    key,
                    value,
                    reason: err.to_string(),
                }),
            }
        } else {
            labels.insert(key, value);
        }
    }
    (labels, dropped)
}

/// matchbox's `selectorString`: the `k=v` pairs sorted as strings, joined with commas.
pub fn selector_string(selector: &Selector) -> String {
    // Built without the formatting machinery: selection makes one per group.
    let pair = |(k, v): (&String, &String)| {
        let mut pair = String::with_capacity(k.len() + 1 + v.len());
        pair.push_str(k);
        pair.push('=');
        pair.push_str(v);
        pair
    };
    if selector.len() == 1 {
        return selector.iter().map(pair).collect();
    }
    let mut pairs: Vec<String> = selector.iter().map(pair).collect();
    pairs.sort();
    pairs.join(",")
}

/// matchbox's precedence between two selectors: `Less` means "tried first".
pub fn precedence(a: &Selector, b: &Selector) -> Ordering {
    b.len()
        .cmp(&a.len())
        .then_with(|| selector_string(b).cmp(&selector_string(a)))
}

/// The order in which matchbox tries `groups` (indices into the slice). Groups with identical
/// selector sets keep their relative (listing) order.
pub fn order<G: Borrow<Group>>(groups: &[G]) -> Vec<usize> {
    let keys: Vec<(usize, String)> = groups
        .iter()
        .map(|group| {
            let selector = &group.borrow().selector;
            (selector.len(), selector_string(selector))
        })
        .collect();
    let mut order: Vec<usize> = (0..groups.len()).collect();
    order.sort_by(|&a, &b| keys[b].cmp(&keys[a]));
    order
}

/// The first selector of `selector` (in key order) that `labels` do not satisfy.
pub fn mismatch(selector: &Selector, labels: &Labels) -> Option<Mismatch> {
    selector.iter().find_map(|(key, want)| {
        let got = labels.get(key);
        (got.map_or("", String::as_str) != want).then(|| Mismatch {
            key: key.clone(),
            want: want.clone(),
            got: got.cloned(),
        })
    })
}

/// Whether `labels` satisfy every selector of `selector` ([`mismatch`] is `None`), without
/// building the mismatch.
pub fn matches(selector: &Selector, labels: &Labels) -> bool {
    (selector.iter()).all(|(key, want)| labels.get(key).map_or("", String::as_str) == want)
}

/// A selector a request does not satisfy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    pub key: String,
    pub want: String,
    /// The request's label for that key; `None` when it sends none.
    pub got: Option<String>,
}

/// What happened to one group during selection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    /// This group answers the request.
    Selected,
    /// A selector does not match the request's labels.
    Mismatch(Mismatch),
    /// Every selector matches, but the winner comes earlier in matchbox's order.
    Outranked { by: usize },
    /// Every selector matches and the selector set is the winner's: matchbox's unstable sort
    /// may pick either.
    Tied { with: usize },
}

/// One group in matchbox's order with its outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Candidate {
    /// Index into the groups given to [`select`].
    pub index: usize,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// The result of [`select`]: every group in the order matchbox tries them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Selection {
    pub winner: Option<usize>,
    /// Other matching groups with the winner's exact selector set (undefined order in matchbox).
    pub tied: Vec<usize>,
    pub candidates: Vec<Candidate>,
    /// Groups that do not match and are not in `candidates` ([`select_keeping`]).
    pub omitted: usize,
}

impl Selection {
    /// The groups that did not win, with the reason each lost.
    pub fn losers(&self) -> impl Iterator<Item = &Candidate> {
        self.candidates
            .iter()
            .filter(|c| c.outcome != Outcome::Selected)
    }
}

/// Selects the group matchbox would answer `labels` with, and why every other group lost.
/// `groups` in listing order (`&[Group]` or `&[&Group]`); indices in the result refer to it.
pub fn select<G: Borrow<Group>>(groups: &[G], labels: &Labels) -> Selection {
    select_in(groups, &order(groups), labels)
}

/// [`select`] with the groups' [`order`] already known (a caller asking twice sorts once).
pub fn select_in<G: Borrow<Group>>(groups: &[G], order: &[usize], labels: &Labels) -> Selection {
    select_keeping(groups, order, labels, |_| true)
}

/// [`select_in`], with only the groups that do not match and that `keep` accepts among the
/// candidates; the others are counted (a report on one machine of a large lab leaves out the
/// other machines' groups without building why each lost).
pub fn select_keeping<G: Borrow<Group>>(
    groups: &[G],
    order: &[usize],
    labels: &Labels,
    keep: impl Fn(&Group) -> bool,
) -> Selection {
    let mut winner: Option<usize> = None;
    let mut tied = Vec::new();
    let mut candidates = Vec::with_capacity(groups.len());
    let mut omitted = 0;
    for &index in order {
        let group = groups[index].borrow();
        if !matches(&group.selector, labels) && !keep(group) {
            omitted += 1;
            continue;
        }
        let outcome = match mismatch(&group.selector, labels) {
            Some(m) => Outcome::Mismatch(m),
            None => match winner {
                None => {
                    winner = Some(index);
                    Outcome::Selected
                }
                Some(w) if groups[w].borrow().selector == group.selector => {
                    tied.push(index);
                    Outcome::Tied { with: w }
                }
                Some(w) => Outcome::Outranked { by: w },
            },
        };
        candidates.push(Candidate { index, outcome });
    }
    Selection {
        winner,
        tied,
        candidates,
        omitted,
    }
}

/// [`select`]'s winner alone, with the groups' [`order`] already known.
pub fn winner_in<G: Borrow<Group>>(
    groups: &[G],
    order: &[usize],
    labels: &Labels,
) -> Option<usize> {
    (order.iter().copied()).find(|&index| matches(&groups[index].borrow().selector, labels))
}

/// Answers "which group wins for these labels" in time proportional to the number of distinct
/// selector key sets, not groups: lint asks it once per group of a 10,000-machine tree.
/// Always agrees with [`select`]'s winner.
#[derive(Clone, Debug)]
pub struct SelectIndex {
    keysets: Vec<KeySet>,
}

#[derive(Clone, Debug)]
struct KeySet {
    keys: Vec<String>,
    /// Selector values (in `keys` order) → the group tried first among those with them.
    first: HashMap<Vec<String>, usize>,
}

impl SelectIndex {
    pub fn new<G: Borrow<Group>>(groups: &[G]) -> SelectIndex {
        let mut by_keys: BTreeMap<Vec<String>, HashMap<Vec<String>, usize>> = BTreeMap::new();
        // Visit groups in matchbox's order so the first entry kept is the one tried first.
        for index in order(groups) {
            let selector = &groups[index].borrow().selector;
            let keys: Vec<String> = selector.keys().cloned().collect();
            let values: Vec<String> = selector.values().cloned().collect();
            by_keys
                .entry(keys)
                .or_default()
                .entry(values)
                .or_insert(index);
        }
        let mut keysets: Vec<KeySet> = by_keys
            .into_iter()
            .map(|(keys, first)| KeySet { keys, first })
            .collect();
        // Largest key sets first: a hit there outranks any hit in a smaller set, so the scan
        // can stop at the first key-set size that has one.
        keysets.sort_by_key(|keyset| std::cmp::Reverse(keyset.keys.len()));
        SelectIndex { keysets }
    }

    /// The winning group for `labels`, as [`select`] would pick it.
    pub fn winner<G: Borrow<Group>>(&self, groups: &[G], labels: &Labels) -> Option<usize> {
        let mut best: Option<usize> = None;
        let mut best_len = None;
        for keyset in &self.keysets {
            if best_len.is_some_and(|len| keyset.keys.len() < len) {
                break;
            }
            let values: Vec<String> = keyset
                .keys
                .iter()
                .map(|key| labels.get(key).cloned().unwrap_or_default())
                .collect();
            if let Some(&index) = keyset.first.get(&values) {
                best = match best {
                    Some(b)
                        if precedence(
                            &groups[b].borrow().selector,
                            &groups[index].borrow().selector,
                        )
                        .is_le() =>
                    {
                        Some(b)
                    }
                    _ => Some(index),
                };
                best_len = Some(keyset.keys.len());
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn group(id: &str, selector: &[(&str, &str)]) -> Group {
        Group {
            id: id.into(),
            profile: id.into(),
            selector: selector
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Group::default()
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        labels_from_query(pairs.iter().copied()).0
    }

    #[test]
    fn more_selectors_win() {
        let groups = vec![
            group("default", &[]),
            group("node1", &[("mac", "52:54:00:a1:9c:ae")]),
            group(
                "installed",
                &[("mac", "52:54:00:a1:9c:ae"), ("os", "installed")],
            ),
        ];
        let l = labels(&[("mac", "52-54-00-A1-9C-AE"), ("os", "installed")]);
        assert_eq!(select(&groups, &l).winner, Some(2));
        let l = labels(&[("mac", "52-54-00-A1-9C-AE")]);
        assert_eq!(select(&groups, &l).winner, Some(1));
        let l = labels(&[("uuid", "x")]);
        assert_eq!(select(&groups, &l).winner, Some(0));
    }

    #[test]
    fn equal_counts_break_ties_in_reverse_byte_order() {
        // "uuid=u" > "mac=m": the uuid group is tried first.
        let groups = vec![
            group("by-mac", &[("mac", "52:54:00:00:00:01")]),
            group("by-uuid", &[("uuid", "u")]),
        ];
        let l = labels(&[("mac", "52:54:00:00:00:01"), ("uuid", "u")]);
        let selection = select(&groups, &l);
        assert_eq!(selection.winner, Some(1));
        assert_eq!(
            selection.candidates[1],
            Candidate {
                index: 0,
                outcome: Outcome::Outranked { by: 1 }
            }
        );
        // The pairs are sorted as strings: "a.b=1" < "a=1" ('.' < '=').
        assert!(selector_string(&group("x", &[("a", "1"), ("a.b", "1")]).selector) == "a.b=1,a=1");
    }

    #[test]
    fn labels_follow_matchbox() {
        let (l, dropped) = labels_from_query([
            ("mac", "zz"),
            ("MAC", "52-54-00-00-00-01"),
            ("os", "a"),
            ("os", "b"),
        ]);
        assert_eq!(l.get("mac"), None);
        assert_eq!(l["MAC"], "52:54:00:00:00:01");
        assert_eq!(l["os"], "a");
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0].key, "mac");
        // A first invalid value wins over a later valid one, and is dropped.
        let (l, _) = labels_from_query([("mac", "bad"), ("mac", "52:54:00:00:00:01")]);
        assert!(l.is_empty());
    }

    #[test]
    fn an_empty_selector_value_matches_a_missing_label() {
        let groups = vec![group("empty-os", &[("os", "")])];
        assert_eq!(select(&groups, &labels(&[])).winner, Some(0));
        assert_eq!(select(&groups, &labels(&[("os", "x")])).winner, None);
    }

    #[test]
    fn identical_selector_sets_are_reported_as_ties() {
        let groups = vec![group("a", &[]), group("b", &[])];
        let selection = select(&groups, &labels(&[]));
        assert_eq!(selection.winner, Some(0));
        assert_eq!(selection.tied, vec![1]);
    }

    #[test]
    fn no_match_lists_every_mismatch() {
        let groups = vec![group("node1", &[("mac", "52:54:00:00:00:01")])];
        let selection = select(&groups, &labels(&[("mac", "52:54:00:00:00:02")]));
        assert_eq!(selection.winner, None);
        assert_eq!(
            selection.candidates[0].outcome,
            Outcome::Mismatch(Mismatch {
                key: "mac".into(),
                want: "52:54:00:00:00:01".into(),
                got: Some("52:54:00:00:00:02".into())
            })
        );
    }

    fn arb_groups() -> impl Strategy<Value = Vec<Group>> {
        let selector = prop::collection::btree_map(
            prop::sample::select(vec!["mac", "uuid", "os", "a", "a.b"]),
            prop::sample::select(vec!["", "1", "2"]),
            0..4,
        );
        prop::collection::vec(selector, 0..12).prop_map(|selectors| {
            selectors
                .into_iter()
                .enumerate()
                .map(|(i, s)| Group {
                    id: format!("g{i}"),
                    selector: s
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect(),
                    ..Group::default()
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn the_index_and_the_winner_alone_agree_with_select(groups in arb_groups(), pairs in prop::collection::vec(
            (prop::sample::select(vec!["mac", "uuid", "os", "a", "a.b", "x"]), prop::sample::select(vec!["", "1", "2"])), 0..5)) {
            let (l, _) = labels_from_query(pairs);
            let index = SelectIndex::new(&groups);
            let selection = select(&groups, &l);
            let winner = selection.winner;
            prop_assert_eq!(index.winner(&groups, &l), winner);
            prop_assert_eq!(winner_in(&groups, &order(&groups), &l), winner);
            // Keeping only some losers changes nothing else, and counts the rest.
            let keep = |group: &Group| group.selector.len().is_multiple_of(2);
            let kept = select_keeping(&groups, &order(&groups), &l, keep);
            prop_assert_eq!(kept.winner, winner);
            prop_assert_eq!(&kept.tied, &selection.tied);
            let expected: Vec<Candidate> = (selection.candidates.iter())
                .filter(|c| !matches!(c.outcome, Outcome::Mismatch(_)) || keep(&groups[c.index]))
                .cloned()
                .collect();
            prop_assert_eq!(kept.omitted, selection.candidates.len() - expected.len());
            prop_assert_eq!(kept.candidates, expected);
        }
    }
}
