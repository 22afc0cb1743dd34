//! `caas publish static`: a data directory resolved once into a tree any static HTTP server
//! serves at constant cost, with the nginx configuration that maps machines' requests onto it.
//!
//! Layout of the output directory:
//! - `bodies/<sha256>`: every distinct `/ipxe` and `/ignition` body, written through
//!   [`crate::write`] (an unchanged body is never rewritten; content addressing means a body
//!   only ever appears or goes).
//! - `trees/<id>/`: one published version: `t/<keys>/<values>/{ipxe,ignition}` hard links to
//!   bodies (or `<endpoint>.404/` where matchbox answers 404), `boot.ipxe`, and `assets`
//!   linking to the data directory's assets. `<id>` is the digest of its content.
//! - `current`: a symlink to the tree being served, swapped with one rename; the previous tree
//!   is kept so a request that started on it finishes.
//! - `nginx.conf`: the server configuration (see [`nginx`]); it never depends on the data.

pub mod nginx;
pub mod resolve;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::Serialize;

use crate::error::invalid;
use crate::matchbox::store::Store;
use crate::matchbox::target::Target;
use crate::write::{self, FileWrite, Outcome, TreeEntry, WriteOptions};

pub use resolve::{Body, Entry, Resolved};

/// What to publish and how to serve it.
#[derive(Clone, Debug)]
pub struct PublishOptions {
    pub data_dir: PathBuf,
    pub out: PathBuf,
    pub target: Target,
    pub listen: String,
    pub metadata_upstream: Option<String>,
    pub dry_run: bool,
}

/// What a run did.
#[derive(Clone, Debug, Serialize)]
pub struct Published {
    /// `trees/<id>` now (or, planned, then) served.
    pub tree: String,
    /// Whether `current` already pointed at that tree (nothing to swap).
    pub tree_unchanged: bool,
    pub entries: usize,
    pub bodies_written: usize,
    pub bodies_unchanged: usize,
    pub bodies_removed: usize,
    /// nginx.conf's outcome.
    pub nginx_conf: Outcome,
    /// Groups with identical selectors: matchbox may answer with either, the tree with the first.
    pub ties: Vec<(String, String)>,
}

const BODIES: &str = "bodies";
const TREES: &str = "trees";
const CURRENT: &str = "current";

/// Resolves `options.data_dir` and publishes it under `options.out`.
pub fn publish(options: &PublishOptions) -> Result<Published> {
    if !options.data_dir.is_dir() {
        return Err(invalid(format!(
            "data directory {} does not exist",
            options.data_dir.display()
        )));
    }
    let store = Store::new(&options.data_dir);
    let resolved = resolve::resolve(&store, options.target)?.map_err(invalid)?;
    let out = absolute(&options.out)?;
    let bodies = bodies(&resolved);
    let mut files: Vec<FileWrite> = bodies
        .iter()
        .map(|(sha, body)| FileWrite::new(out.join(BODIES).join(sha), body.bytes.to_vec()))
        .collect();
    let conf = nginx::render(&nginx::NginxOptions {
        listen: &options.listen,
        root: &out.join(CURRENT),
        metadata_upstream: options.metadata_upstream.as_deref(),
    });
    files.push(FileWrite::new(out.join("nginx.conf"), conf.into_bytes()));
    let removals = stale_bodies(&out.join(BODIES), &bodies)?;
    let outcomes = write::write_changes(
        &files,
        &removals,
        WriteOptions {
            dry_run: options.dry_run,
        },
    )?;
    let id = &write::sha256_hex(manifest(&resolved, &options.data_dir, None)?.as_bytes())[..16];
    let current_target = fs::read_link(out.join(CURRENT)).ok();
    let tree_rel = PathBuf::from(TREES).join(id);
    let tree_unchanged =
        current_target.as_deref() == Some(tree_rel.as_path()) && out.join(&tree_rel).is_dir();
    if !options.dry_run && !tree_unchanged {
        let mut tree = Vec::new();
        manifest(&resolved, &options.data_dir, Some(&mut tree))?;
        swap_in(&out, &tree_rel, &tree, current_target.as_deref())?;
    }
    let count = |action: write::Action| {
        outcomes[..bodies.len()]
            .iter()
            .filter(|o| o.action == action)
            .count()
    };
    Ok(Published {
        tree: tree_rel.display().to_string(),
        tree_unchanged,
        entries: resolved.entries.len(),
        bodies_written: count(write::Action::Created) + count(write::Action::Updated),
        bodies_unchanged: count(write::Action::Unchanged),
        bodies_removed: removals.len(),
        nginx_conf: outcomes[bodies.len()].clone(),
        ties: resolved.ties,
    })
}

fn absolute(path: &Path) -> Result<PathBuf> {
    if path.is_absolute() {
        return Ok(path.to_owned());
    }
    Ok(std::env::current_dir()
        .context("reading the current directory")?
        .join(path))
}

/// Every distinct body, by digest.
fn bodies(resolved: &Resolved) -> BTreeMap<&str, &Body> {
    let mut bodies = BTreeMap::new();
    bodies.insert(&*resolved.boot_ipxe.sha256, &resolved.boot_ipxe);
    for entry in &resolved.entries {
        for body in [&entry.ipxe, &entry.ignition].into_iter().flatten() {
            bodies.insert(&*body.sha256, body);
        }
    }
    bodies
}

/// Bodies on disk that the new tree does not use (the trees still served hold their own links).
fn stale_bodies(dir: &Path, keep: &BTreeMap<&str, &Body>) -> Result<Vec<PathBuf>> {
    let listed = match fs::read_dir(dir) {
        Ok(listed) => listed,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err).with_context(|| format!("listing {}", dir.display())),
    };
    let mut stale = Vec::new();
    for entry in listed {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if name.len() == 64 && !keep.contains_key(name.as_ref()) {
            stale.push(dir.join(name.as_ref()));
        }
    }
    stale.sort();
    Ok(stale)
}

/// A text that names the tree's whole content (its digest is the tree id) and, with `entries`,
/// the tree's entries: an unchanged rerun only needs the text.
fn manifest(
    resolved: &Resolved,
    data_dir: &Path,
    mut entries: Option<&mut Vec<TreeEntry>>,
) -> Result<String> {
    use std::fmt::Write as _;
    // Link sources name a body; [`swap_in`] links it from `bodies/`.
    let body = |sha: &str| PathBuf::from(sha);
    let assets = absolute(data_dir)?.join("assets");
    let boot_sha = &resolved.boot_ipxe.sha256;
    let mut text = format!("boot.ipxe {boot_sha}\nassets {}\n", assets.display());
    if let Some(tree) = entries.as_deref_mut() {
        tree.reserve(3 * resolved.entries.len() + 3);
        tree.push(TreeEntry::Symlink {
            path: "assets".into(),
            target: assets,
        });
        tree.push(TreeEntry::Link {
            path: "boot.ipxe".into(),
            source: body(boot_sha),
        });
        tree.push(TreeEntry::Dir("t".into()));
    }
    for entry in &resolved.entries {
        let dir = Path::new(&entry.dir);
        if let Some(tree) = entries.as_deref_mut() {
            tree.push(TreeEntry::Dir(dir.to_owned()));
        }
        text.push_str(&entry.dir);
        for (name, answer) in [("ipxe", &entry.ipxe), ("ignition", &entry.ignition)] {
            match answer {
                Some(answer) => {
                    let _ = write!(text, " {name}={}", answer.sha256);
                    if let Some(tree) = entries.as_deref_mut() {
                        tree.push(TreeEntry::Link {
                            path: dir.join(name),
                            source: body(&answer.sha256),
                        });
                    }
                }
                None => {
                    let _ = write!(text, " {name}=404");
                    if let Some(tree) = entries.as_deref_mut() {
                        tree.push(TreeEntry::Dir(dir.join(format!("{name}.404"))));
                    }
                }
            }
        }
        text.push('\n');
    }
    Ok(text)
}

/// Builds the tree `tree_rel` under `out`, points `current` at it, and removes trees older
/// than the one it replaces.
fn swap_in(out: &Path, tree_rel: &Path, tree: &[TreeEntry], previous: Option<&Path>) -> Result<()> {
    let trees = out.join(TREES);
    fs::create_dir_all(&trees).with_context(|| format!("creating {}", trees.display()))?;
    let staged = trees.join(format!(".staging-{}", std::process::id()));
    write::remove_tree(&staged)?;
    write::build_linked_tree(&staged, &out.join(BODIES), tree)?;
    write::publish_dir(&staged, &out.join(tree_rel))?;
    write::replace_symlink(&out.join(CURRENT), tree_rel)?;
    for entry in fs::read_dir(&trees).with_context(|| format!("listing {}", trees.display()))? {
        let path = entry?.path();
        let rel = PathBuf::from(TREES).join(path.file_name().expect("a listed name"));
        if rel != tree_rel && Some(rel.as_path()) != previous {
            write::remove_tree(&path)?;
        }
    }
    Ok(())
}
