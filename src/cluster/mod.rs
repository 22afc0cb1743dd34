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
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::assets::etcd;
use crate::cli::{GenClusterArgs, GlobalArgs};
use crate::error::invalid;
use crate::ignition::{Engine, TemplateSet};
use crate::matchbox::DataDir;
use crate::matchbox::generate::os_boot;
use crate::write::{FileWrite, write_and_report_changes};
use spec::{Lab, LabSpec, Overrides, from_yaml};

/// The built-in example lab, `caas gen cluster` without `-f`.
pub const EXAMPLE: &str = include_str!("../../examples/lab.yaml");
const EXAMPLE_ORIGIN: &str = "the built-in example lab (examples/lab.yaml)";

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

/// `caas gen cluster`.
pub fn gen_cluster(global: &GlobalArgs, args: &GenClusterArgs) -> Result<()> {
    if args.print_example {
        io::stdout()
            .write_all(EXAMPLE.as_bytes())
            .context("writing the example")?;
        return Ok(());
    }
    let (text, origin) = match &args.file {
        Some(path) => (read_spec(path)?, path.display().to_string()),
        None => (EXAMPLE.to_owned(), EXAMPLE_ORIGIN.to_owned()),
    };
    let overrides = Overrides {
        matchbox_url: args.matchbox_url.clone(),
        api_url: args.api_url.clone(),
    };
    let lab = from_yaml::<LabSpec>(&text, &origin)?.validate(&origin, &overrides)?;
    let data_dir = DataDir::new(&global.data_dir);
    let changes = changes(&data_dir, &lab, args.templates.dir.as_deref(), args.prune)?;
    write_and_report_changes(&changes.files, &changes.removals, &args.write, global.quiet)?;
    if !changes.stale.is_empty() {
        tracing::warn!(
            "{} file(s) written for lab {} are no longer in the spec; rerun with --prune to \
             remove them: {}",
            changes.stale.len(),
            lab.name,
            changes.stale.join(", ")
        );
    }
    if !changes.modified.is_empty() {
        tracing::warn!(
            "{} file(s) written for lab {} are no longer in the spec but were changed since, \
             so caas leaves them alone: {}",
            changes.modified.len(),
            lab.name,
            changes.modified.join(", ")
        );
    }
    Ok(())
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

fn read_spec(path: &Path) -> Result<String> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            Err(invalid(format!("-f {}: no such file", path.display())))
        }
        Err(err) if err.kind() == io::ErrorKind::InvalidData => {
            Err(invalid(format!("{} is not UTF-8 text", path.display())))
        }
        Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
    }
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
        Some(etcd::published_binary(
            &data_dir.assets_dir(),
            &lab.etcd_version,
            lab.arch,
            &lab.matchbox_url,
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
