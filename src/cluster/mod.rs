//! `caas gen cluster`: every profile, group and Ignition config of a lab from one YAML spec.
//!
//! The spec is read and validated ([`spec`]), the release's boot settings are resolved from the
//! published assets, the whole file set is planned without touching the disk ([`plan`]), the
//! files an earlier run wrote and the spec no longer names are found from its record
//! ([`record`]), and everything goes to disk in one write: bad input writes nothing, and a
//! rerun with the same inputs touches nothing.

pub mod plan;
pub mod record;
pub mod spec;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::assets::etcd;
use crate::generate::os_boot;
use crate::ignition::{Engine, TemplateSet};
use crate::matchbox::DataDir;
use crate::write::FileWrite;
use spec::Lab;

/// The built-in example lab, `caas gen cluster` without `-f`.
pub const EXAMPLE: &str = include_str!("../../examples/lab.yaml");
/// How errors name the built-in example.
pub const EXAMPLE_ORIGIN: &str = "the built-in example lab (examples/lab.yaml)";

/// Everything one run changes.
#[derive(Debug)]
pub struct Changes {
    /// Every file of the lab, then the record.
    pub files: Vec<FileWrite>,
    /// Files an earlier run wrote that the spec no longer names, unchanged since (`--prune`).
    pub removals: Vec<PathBuf>,
    /// The same, when not pruning: reported, kept, still recorded.
    pub stale: Vec<String>,
    /// Files an earlier run wrote that were changed since: never removed, no longer recorded.
    pub modified: Vec<String>,
}

/// Whether a role of the lab runs the published etcd binary (its template takes
/// `etcd_binary_url`) without the spec's `vars` giving it.
fn runs_etcd(engine: &Engine, lab: &Lab) -> bool {
    if lab.vars.contains_key(etcd::URL_VAR) && lab.vars.contains_key(etcd::HASH_VAR) {
        return false;
    }
    lab.default_role
        .iter()
        .chain(lab.machines.iter().map(|m| &m.role))
        .filter_map(|role| engine.variables(role))
        .any(|vars| vars.referenced.contains(etcd::URL_VAR))
}

/// Plans every change for `lab` in `data_dir` (reads the disk, writes nothing): the lab's
/// files, its record, and what to do with the files an earlier run wrote.
pub fn changes(
    data_dir: &DataDir,
    lab: &Lab,
    templates_dir: Option<&Path>,
    prune: bool,
) -> Result<Changes> {
    let engine = Engine::new(TemplateSet::with_dir(templates_dir)?, lab.spec)?;
    let (os_version, boot) = os_boot(
        data_dir,
        lab.os,
        &lab.version,
        lab.arch,
        Some(&lab.matchbox_url),
    )?;
    let etcd_binary = if runs_etcd(&engine, lab) {
        Some(etcd::published_binary_for(
            &data_dir.assets_dir(),
            &lab.etcd_version,
            lab.arch,
            &lab.matchbox_url,
            lab.spec,
        )?)
    } else {
        None
    };
    let mut files = plan::plan(&plan::PlanInput {
        lab,
        data_dir,
        os_version: &os_version,
        boot: &boot,
        engine: &engine,
        etcd_binary: etcd_binary.as_ref(),
    })?;

    let planned: BTreeSet<String> = files
        .iter()
        .filter_map(|file| record::relative(data_dir, &file.path))
        .collect();
    let stale = match record::read(data_dir, &lab.name)? {
        Some(previous) => record::stale(data_dir, &previous, &planned)?,
        None => record::Stale::default(),
    };
    let (removals, kept) = if prune {
        let removals = stale
            .removable
            .iter()
            .map(|(relative, _)| data_dir.root().join(relative))
            .collect();
        (removals, Vec::new())
    } else {
        (Vec::new(), stale.removable.clone())
    };
    let record = record::record_file(data_dir, &lab.name, &files, &kept);
    files.push(record);
    Ok(Changes {
        files,
        removals,
        stale: kept.into_iter().map(|(relative, _)| relative).collect(),
        modified: stale.modified,
    })
}
