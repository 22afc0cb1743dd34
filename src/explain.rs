//! `caas explain`: which group, profile, iPXE script and Ignition matchbox gives a machine, and
//! why the other groups lost. A thin I/O layer: the data directory is read with
//! [`crate::matchbox::store`] and the decision is [`crate::matchbox::select::select`].
//! In a large lab most groups are other machines' and share no label with the request: past
//! [`UNRELATED_LISTED_UP_TO`] they are counted, not explained one by one (`--all` lists them).
//!
//! Selection needs only each group's selector (and the winner's profile), so every group file
//! is read for those alone ([`Store::group_heads`]), or, in a large data directory, taken from
//! the group index for the files that did not change since ([`group_index`]); the one or two
//! groups that answer are then read whole, for their ids and metadata.

use std::io;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::Serialize;

use crate::error::invalid;
use crate::matchbox::group::serialize_selector;
use crate::matchbox::ignition::check_raw;
use crate::matchbox::select::{self, DroppedLabel, Labels, Outcome, selector_string};
use crate::matchbox::store::{ConfigKind, Entry, Store, is_raw_ignition};
use crate::matchbox::target::{Target, TemplateDialect, ipxe_script};
use crate::matchbox::{Group, Profile, Selector, boot, clc, group_index, spans, template};

/// Everything `explain` found out, in the order a request goes through matchbox.
#[derive(Clone, Debug, Serialize)]
pub struct Explanation {
    pub target: Target,
    /// The labels matchbox derives from the request.
    pub labels: Labels,
    /// Query parameters matchbox drops (an invalid MAC).
    pub dropped: Vec<DroppedLabel>,
    /// Group files matchbox cannot load, with why (it skips them).
    pub skipped: Vec<Skipped>,
    /// The winning group, if any.
    pub group: Option<GroupView>,
    /// Other groups with the winner's exact selectors: matchbox may answer with either.
    pub tied: Vec<String>,
    pub profile: Option<ProfileView>,
    /// The script `/ipxe` returns, byte for byte.
    pub ipxe: Option<String>,
    pub ignition: Option<IgnitionView>,
    /// The loaded groups in the order matchbox tries them, with the outcome: every group that
    /// matches the labels or shares one with the request, and the others too unless there are
    /// more than a few (or every group, when asked).
    pub candidates: Vec<CandidateView>,
    /// How many groups lost that [`Explanation::candidates`] leaves out: they share no label
    /// with the request (another machine's groups, in a large lab).
    pub unlisted: usize,
    /// Why `/ipxe` answers 404, when it does.
    pub not_found: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Skipped {
    pub file: String,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct GroupView {
    pub file: String,
    pub id: String,
    pub name: String,
    pub profile: String,
    #[serde(serialize_with = "serialize_selector")]
    pub selector: Selector,
}

#[derive(Clone, Debug, Serialize)]
pub struct ProfileView {
    pub file: String,
    pub id: String,
    pub name: String,
    pub ignition_id: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct IgnitionView {
    /// The Ignition URL on the kernel line as this machine fetches it (iPXE variables filled
    /// in from its labels); `None` when the kernel line has none.
    pub url: Option<String>,
    /// The group matchbox answers that request with (it may differ from the `/ipxe` group).
    pub group: Option<String>,
    pub name: String,
    pub file: String,
    /// `raw` or `template`.
    pub kind: &'static str,
    /// What the server does with it for this machine.
    pub served: String,
    /// Whether `/ignition` gives the machine a usable config: `null` when caas cannot tell
    /// (a Container Linux Config template using what caas does not model).
    pub ok: Option<bool>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CandidateView {
    pub file: String,
    #[serde(serialize_with = "serialize_selector")]
    pub selector: Selector,
    #[serde(flatten)]
    pub outcome: Outcome,
    pub reason: String,
}

/// How `explain` goes about answering; the answer itself does not depend on it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options<'a> {
    /// Where the group index is kept ([`group_index`]); `None` reads every group file.
    pub cache: Option<&'a Path>,
    /// List every group that lost, not just those related to the request.
    pub every_group: bool,
}

/// Unrelated losers (groups sharing no label with the request) are listed while there are at
/// most this many: a small lab's every group fits on a screen, a large lab's other machines
/// are counted instead of filling it.
pub const UNRELATED_LISTED_UP_TO: usize = 10;

/// Explains the request `query` (parameters in order) against the data directory `root`.
pub fn explain_dir(
    root: &Path,
    target: Target,
    query: &[(String, String)],
    options: Options,
) -> Result<Explanation> {
    if !root.is_dir() {
        return Err(invalid(format!(
            "data directory {} does not exist",
            root.display()
        )));
    }
    let store = Store::new(root);
    let (labels, dropped) = select::labels_from_query(query.iter().map(|(k, v)| (k, v)));
    let entries = match group_index::group_heads(&store, options.cache) {
        Ok((entries, _)) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(err) => {
            return Err(err).with_context(|| format!("listing {}", root.join("groups").display()));
        }
    };
    let (mut listing, skipped) = loaded_groups(&store, entries);
    // Another machine's group shares no label with the request: past a few, they are counted.
    let unrelated = |group: &Group| {
        !(group.selector.iter()).any(|(k, v)| labels.get(k) == Some(v))
            && !select::matches(&group.selector, &labels)
    };
    let list_all = options.every_group
        || listing.groups.iter().filter(|g| unrelated(g)).count() <= UNRELATED_LISTED_UP_TO;
    let selection = select::select_keeping(&listing.groups, &listing.order, &labels, |g| {
        list_all || !unrelated(g)
    });
    let reasons: Vec<String> = (selection.candidates.iter())
        .map(|c| reason(&c.outcome, &listing, c.index))
        .collect();
    let mut explanation = Explanation {
        target,
        labels: labels.clone(),
        dropped,
        skipped,
        group: None,
        tied: (selection.tied.iter())
            .map(|&i| display(&listing.files[i]))
            .collect(),
        profile: None,
        ipxe: None,
        ignition: None,
        candidates: Vec::new(),
        unlisted: selection.omitted,
        not_found: None,
    };
    match selection.winner {
        Some(winner) => explain_winner(&store, &listing, winner, &mut explanation),
        None => {
            explanation.not_found = Some(format!(
                "no group matches the labels {}: matchbox answers 404 for /ipxe and /ignition",
                if labels.is_empty() {
                    "(none)".to_owned()
                } else {
                    shown_labels(&labels)
                }
            ))
        }
    }
    // Last, as nothing else needs them: each listed group's selector moves into its line.
    explanation.candidates = (selection.candidates.into_iter().zip(reasons))
        .map(|(c, reason)| CandidateView {
            file: display(&listing.files[c.index]),
            selector: std::mem::take(&mut listing.groups[c.index].selector),
            reason,
            outcome: c.outcome,
        })
        .collect();
    Ok(explanation)
}

/// The winning group, its profile, the iPXE script and the Ignition its machines get; stops at
/// the first 404.
fn explain_winner(store: &Store, listing: &Listing, winner: usize, explanation: &mut Explanation) {
    let target = explanation.target;
    let files = &listing.files;
    let group = &whole(store, listing, winner);
    explanation.group = Some(GroupView {
        file: display(&files[winner]),
        id: group.id.clone(),
        name: group.name.clone(),
        profile: group.profile.clone(),
        selector: group.selector.clone(),
    });
    if group.profile.is_empty() {
        explanation.not_found = Some(format!(
            "{} names no profile: matchbox answers 404 (\"No profile named\")",
            display(&files[winner])
        ));
        return;
    }
    let loaded = store.profile(&group.profile);
    let profile = match &loaded.result {
        Ok(profile) => profile.clone(),
        Err(err) => {
            explanation.not_found = Some(format!(
                "{} names profile {:?}, but {}: {err}: matchbox answers 404",
                display(&files[winner]),
                group.profile,
                loaded.path.display()
            ));
            return;
        }
    };
    explanation.profile = Some(ProfileView {
        file: display(&loaded.path),
        id: profile.id.clone(),
        name: profile.name.clone(),
        ignition_id: profile.ignition_id.clone(),
    });
    explanation.ignition = Some(ignition_for(
        store,
        target,
        listing,
        &explanation.labels,
        (winner, group),
        &profile,
    ));
    match ipxe_script(profile.boot.as_ref(), target) {
        Ok(script) => explanation.ipxe = Some(script),
        Err(err) => {
            explanation.not_found = Some(format!(
                "profile {}: {err}: matchbox answers 404 for /ipxe",
                loaded.path.display()
            ))
        }
    }
}

/// Group `index` with every field, for the groups that answer (selection read only their
/// selectors and profiles). A file that no longer reads is taken as selection saw it.
fn whole(store: &Store, listing: &Listing, index: usize) -> Group {
    store
        .group_file(&listing.files[index])
        .unwrap_or_else(|_| listing.groups[index].clone())
}

/// The groups matchbox selects from (listing order), the file each was read from, and the
/// order matchbox tries them in ([`select::order`], sorted once for both selections).
struct Listing {
    groups: Vec<Group>,
    files: Vec<PathBuf>,
    order: Vec<usize>,
}

/// The groups matchbox would select from, and the files it skips.
fn loaded_groups(store: &Store, entries: Vec<Entry<Group>>) -> (Listing, Vec<Skipped>) {
    let mut groups = Vec::with_capacity(entries.len());
    let mut files = Vec::with_capacity(entries.len());
    let mut skipped = Vec::new();
    for entry in entries {
        match entry.loaded.result {
            Ok(group) => {
                groups.push(group);
                files.push(entry.loaded.path);
            }
            Err(err) => skipped.push(Skipped {
                file: display(&store.root().join("groups").join(&entry.name)),
                reason: format!("matchbox reads {}: {err}", entry.loaded.path.display()),
            }),
        }
    }
    let order = select::order(&groups);
    let listing = Listing {
        groups,
        files,
        order,
    };
    (listing, skipped)
}

/// What `/ignition` gives the booted machine: matchbox selects again, with the labels of the
/// Ignition URL on the kernel line (iPXE fills its variables from the machine's own values).
fn ignition_for(
    store: &Store,
    target: Target,
    listing: &Listing,
    labels: &Labels,
    (winner, winner_group): (usize, &Group),
    profile: &Profile,
) -> IgnitionView {
    let args = profile
        .boot
        .as_ref()
        .map(|boot| target.kernel_args(boot))
        .unwrap_or_default();
    let Some(url) = boot::ignition_urls(&args, &boot::CONFIG_URL_KEYS)
        .into_iter()
        .next()
    else {
        // No URL to follow: what the same labels get from /ignition.
        return ignition_view(store, target, winner_group, profile);
    };
    let fetched = expand_ipxe(&url.url, labels);
    let pairs: Vec<(String, String)> = url
        .query
        .iter()
        .map(|(k, v)| (k.clone(), expand_ipxe(v, labels)))
        .collect();
    let (request, _) = select::labels_from_query(pairs);
    let (groups, files) = (&listing.groups, &listing.files);
    let Some(w) = select::winner_in(groups, &listing.order, &request) else {
        return IgnitionView {
            url: Some(fetched),
            group: None,
            name: profile.ignition_id.clone(),
            file: String::new(),
            kind: "none",
            served: format!(
                "the OS fetches {}, and no group matches its labels {}{}: /ignition answers 404",
                url.key,
                shown_labels(&request),
                dropped_pairs(&url.dropped)
            ),
            ok: Some(false),
        };
    };
    let mut view = if w == winner {
        ignition_view(store, target, winner_group, profile)
    } else {
        let other = store.profile(&groups[w].profile);
        match &other.result {
            Ok(other_profile) => {
                ignition_view(store, target, &whole(store, listing, w), other_profile)
            }
            Err(err) => IgnitionView {
                url: None,
                group: None,
                name: String::new(),
                file: String::new(),
                kind: "none",
                served: format!(
                    "{} answers it and names profile {:?}, but {}: {err}: /ignition answers 404",
                    display(&files[w]),
                    groups[w].profile,
                    other.path.display()
                ),
                ok: Some(false),
            },
        }
    };
    view.url = Some(fetched);
    view.group = Some(display(&files[w]));
    view.served.push_str(&dropped_pairs(&url.dropped));
    view
}

/// ` (matchbox drops the query pairs "a;b"…)`, when it drops any.
fn dropped_pairs(dropped: &[String]) -> String {
    if dropped.is_empty() {
        return String::new();
    }
    format!(" (matchbox drops the query pairs {dropped:?}: a `;` in a pair, or a bad `%` escape)")
}

/// Fills iPXE settings (`${uuid}`, `${mac:hexhyp}`, `${net0/mac}`, `${hostname}`, …) from the
/// machine's labels, as iPXE does before fetching; an unknown setting expands to nothing.
fn expand_ipxe(text: &str, labels: &Labels) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let setting = &rest[start + 2..start + len];
        let (name, kind) = setting.split_once(':').unwrap_or((setting, ""));
        let name = name.rsplit('/').next().unwrap_or(name);
        let label = match name {
            "buildarch" => "arch",
            other => other,
        };
        let value = labels.get(label).cloned().unwrap_or_default();
        out.push_str(&if name == "mac" && kind == "hexhyp" {
            value.replace(':', "-")
        } else {
            value
        });
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    out
}

/// What `/ignition` gives a machine that group `group` answers with `profile`.
fn ignition_view(store: &Store, target: Target, group: &Group, profile: &Profile) -> IgnitionView {
    let name = profile.ignition_id.clone();
    if name.is_empty() {
        return IgnitionView {
            url: None,
            group: None,
            name,
            file: String::new(),
            kind: "none",
            served: "the profile names no ignition_id: /ignition answers 404".into(),
            ok: Some(false),
        };
    }
    let (path, bytes) = match store.config(ConfigKind::Ignition, &name) {
        Ok(found) => found,
        Err(err) => {
            let file = store
                .resolve("ignition", &name)
                .map(|p| display(&p))
                .unwrap_or_default();
            return IgnitionView {
                url: None,
                group: None,
                served: format!("{file}: {err}: /ignition answers 404"),
                name,
                file,
                kind: if is_raw_ignition(&profile.ignition_id) {
                    "raw"
                } else {
                    "template"
                },
                ok: Some(false),
            };
        }
    };
    let file = display(&path);
    let (kind, (served, ok)) = if is_raw_ignition(&name) {
        ("raw", raw_served(&bytes, target))
    } else {
        ("template", template_served(&bytes, group, target))
    };
    IgnitionView {
        url: None,
        group: None,
        name,
        file,
        kind,
        served,
        ok,
    }
}

/// What the server does with a raw Ignition file, and whether the machine gets a usable config.
fn raw_served(bytes: &[u8], target: Target) -> (String, Option<bool>) {
    let (info, problems) = check_raw(bytes, target);
    let broken = problems.iter().find(|p| p.kind.breaks());
    let spec = || info.spec.map(|s| s.to_string()).unwrap_or_default();
    match (broken, target.parses_raw_ignition()) {
        (Some(problem), true) => (
            format!(
                "{}: matchbox cannot parse it and serves an empty config (HTTP 200)",
                problem.message
            ),
            Some(false),
        ),
        (Some(problem), false) => (
            format!(
                "served byte for byte, and it is broken: {}",
                problem.message
            ),
            Some(false),
        ),
        (None, true) => (
            format!(
                "raw Ignition spec {}, parsed and served as spec 3.4.0",
                spec()
            ),
            Some(true),
        ),
        (None, false) => (
            format!("raw Ignition spec {}, served byte for byte", spec()),
            Some(true),
        ),
    }
}

/// What the server does with an Ignition template for `group`, and whether the machine gets a
/// usable config (`None`: caas cannot tell).
fn template_served(bytes: &[u8], group: &Group, target: Target) -> (String, Option<bool>) {
    let text = String::from_utf8_lossy(bytes);
    let data = template::template_data(group);
    let missing = template::scan(&text).map(|info| {
        info.required
            .iter()
            .find_map(|r| template::missing_key(&data, &r.path).map(|m| (m, r.offset)))
    });
    let dialect = template::dialect(&text).dialect;
    match (missing, target.template_dialect(), dialect) {
        (Err(err), _, _) => (
            format!(
                "the template does not parse ({}): /ignition answers 404",
                err.message
            ),
            Some(false),
        ),
        (Ok(Some((key, offset))), _, _) => {
            let at = spans::position(bytes, offset);
            (
                format!(
                    "line {}:{} uses {key:?}, which this group does not provide: /ignition answers 404",
                    at.line, at.column
                ),
                Some(false),
            )
        }
        (Ok(None), TemplateDialect::Butane, TemplateDialect::ContainerLinuxConfig) => (
            "a Container Linux Config template, which this matchbox no longer reads: /ignition answers 404".into(),
            Some(false),
        ),
        (Ok(None), TemplateDialect::Butane, TemplateDialect::Butane) => (
            "a Butane template: rendered with this group's metadata, translated, served as Ignition 3.4.0".into(),
            Some(true),
        ),
        (Ok(None), TemplateDialect::ContainerLinuxConfig, _) if target == Target::Bootcfg04 => (
            "a Fuze template: bootcfg renders it with this group's metadata and transpiles it to Ignition 2.0.0; caas does not model the Fuze transpiler, so whether it accepts the template is not verified".into(),
            None,
        ),
        (Ok(None), TemplateDialect::ContainerLinuxConfig, _) => clc_served(&text),
    }
}

/// What matchbox v0.8's Container Linux Config transpiler makes of a template (see
/// [`clc::check`]).
fn clc_served(text: &str) -> (String, Option<bool>) {
    let notes = clc::check(text);
    let Some(note) = clc::verdict(&notes) else {
        return (
            "a Container Linux Config template: rendered with this group's metadata, transpiled, served as Ignition 2.2.0".into(),
            Some(true),
        );
    };
    let at = format!("line {}:{}", note.pos.line, note.pos.column);
    match note.kind {
        clc::Kind::Rejected => (
            format!(
                "a Container Linux Config template the transpiler rejects ({at}: {}): /ignition answers 404",
                note.message
            ),
            Some(false),
        ),
        clc::Kind::Misread => (
            format!("{}: served, but not as written", note.message),
            Some(false),
        ),
        clc::Kind::Unverified | clc::Kind::Ignored => (
            format!(
                "a Container Linux Config template, transpiled to Ignition 2.2.0 if the transpiler accepts it, which caas cannot verify ({at}: {})",
                note.message
            ),
            None,
        ),
    }
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

fn shown_selector(selector: &Selector) -> String {
    if selector.is_empty() {
        "default: no selector".into()
    } else {
        selector_string(selector)
    }
}

fn shown_labels(labels: &Labels) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why a candidate won or lost, in words.
fn reason(outcome: &Outcome, listing: &Listing, index: usize) -> String {
    let (groups, files) = (&listing.groups, &listing.files);
    match outcome {
        Outcome::Selected => "every selector matches, and no group before it matched".into(),
        Outcome::Mismatch(m) => match &m.got {
            Some(got) => format!("{} is {got:?}, the group wants {:?}", m.key, m.want),
            None => format!(
                "the request has no {} label, the group wants {:?}",
                m.key, m.want
            ),
        },
        Outcome::Outranked { by } => {
            let (mine, theirs) = (&groups[index].selector, &groups[*by].selector);
            if theirs.len() != mine.len() {
                format!(
                    "matches too, but {} comes first with more selectors ({} vs {})",
                    display(&files[*by]),
                    theirs.len(),
                    mine.len()
                )
            } else {
                format!(
                    "matches too, but {} comes first: as many selectors, and {:?} sorts after {:?} (matchbox tries the greater first)",
                    display(&files[*by]),
                    selector_string(theirs),
                    selector_string(mine)
                )
            }
        }
        Outcome::Tied { with } => format!(
            "matches with the same selectors as {}: matchbox's sort is not stable, it may answer with either",
            display(&files[*with])
        ),
    }
}

/// The text report.
pub fn render_text(e: &Explanation) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!("target:   {}", e.target.name()));
    line(format!(
        "labels:   {}",
        if e.labels.is_empty() {
            "(none)".to_owned()
        } else {
            shown_labels(&e.labels)
        }
    ));
    for d in &e.dropped {
        line(format!(
            "dropped:  {}={}: {} (matchbox drops the label)",
            d.key, d.value, d.reason
        ));
    }
    if let Some(group) = &e.group {
        line(format!(
            "group:    {}  [{}]",
            group.file,
            shown_selector(&group.selector)
        ));
        for tied in &e.tied {
            line(format!(
                "          tied with {tied}: matchbox may answer with either"
            ));
        }
    }
    if let Some(profile) = &e.profile {
        line(format!("profile:  {}  (id {:?})", profile.file, profile.id));
    }
    if let Some(ignition) = &e.ignition {
        let file = if ignition.file.is_empty() {
            String::new()
        } else {
            format!("{}: ", ignition.file)
        };
        line(format!("ignition: {file}{}", ignition.served));
        if let Some(url) = &ignition.url {
            let answered = match &ignition.group {
                Some(group) => format!(" (answered by {group})"),
                None => String::new(),
            };
            line(format!("          fetched as {url}{answered}"));
        }
    }
    if let Some(script) = &e.ipxe {
        line(String::new());
        line("/ipxe:".into());
        out.push_str(script);
    }
    render_lists(e, &mut out);
    out
}

/// The groups in the order matchbox tries them, and the files it skips.
fn render_lists(e: &Explanation, out: &mut String) {
    if !e.candidates.is_empty() || e.unlisted > 0 {
        out.push('\n');
        out.push_str("groups, in the order matchbox tries them:\n");
        for c in &e.candidates {
            let verdict = match c.outcome {
                Outcome::Selected => "selected",
                Outcome::Tied { .. } => "tied",
                _ => "lost",
            };
            out.push_str(&format!(
                "  {verdict:<8} {}  [{}]: {}\n",
                c.file,
                shown_selector(&c.selector),
                c.reason
            ));
        }
        if e.unlisted > 0 {
            out.push_str(&format!(
                "  and {} more groups that share no label with the request (--all lists them)\n",
                e.unlisted
            ));
        }
    }
    if !e.skipped.is_empty() {
        out.push('\n');
        out.push_str("skipped by matchbox:\n");
        for s in &e.skipped {
            out.push_str(&format!("  {}: {}\n", s.file, s.reason));
        }
    }
}
