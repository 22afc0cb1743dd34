//! `caas schedule once`: discovered machines become an etcd cluster and its workers.
//!
//! - [`assign`]: who gets which role (pure, sticky);
//! - [`state`]: the roles already written, read back from the data dir's groups;
//! - [`plan`]: the groups, profiles and Ignition configs a schedule stands for.
//!
//! [`once`] reads the existing roles, assigns the discovered machines, renders every file, then
//! writes them in one call to [`crate::write`] (or, with `plan`, only compares).

pub mod assign;
pub mod plan;
pub mod state;

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use serde_json::{Map, Value};

use crate::assets::etcd;
use crate::discovery;
use crate::error::invalid;
use crate::generate::{boot_with_args, os_boot};
use crate::ids::Id;
use crate::ignition::{Engine, Spec, TemplateSet};
use crate::matchbox::DataDir;
use crate::matchbox::server::MatchboxUrl;
use crate::os::{Arch, Os};
use crate::write::{self, FileWrite, Outcome, WriteOptions};
use assign::{Assignment, Params, Schedule, WorkerLimit};

/// What a schedule run is asked for, besides the machines.
#[derive(Clone, Debug)]
pub struct Options {
    /// Size of the etcd cluster.
    pub etcd_members: usize,
    pub workers: WorkerLimit,
    /// The OS and published release the roles boot.
    pub os: Os,
    pub version: Id,
    pub arch: Arch,
    /// Kernel arguments added to every role's profile.
    pub args: Vec<String>,
    /// SSH keys for the `core` user of every machine.
    pub ssh_authorized_keys: Vec<String>,
    /// Ignition spec of the configs.
    pub spec: Spec,
    /// Templates that add to or override the built-in ones.
    pub templates_dir: Option<PathBuf>,
    pub matchbox_url: Option<MatchboxUrl>,
    /// The discovery API URL, recorded in the groups' metadata for templates.
    pub api_url: Option<MatchboxUrl>,
    /// Compare with the disk only; write nothing.
    pub plan: bool,
    /// The published etcd release the roles run (`current`: what `assets/etcd/current` names).
    pub etcd_version: Id,
}

/// What a run decided and did.
pub struct Run {
    pub schedule: Schedule,
    /// Every file of the schedule; empty while waiting for machines.
    pub files: Vec<FileWrite>,
    /// What happened (or, planned, would happen) to each file.
    pub outcomes: Vec<Outcome>,
}

/// Schedules `discovered` (first seen first) in `data_dir`: reads the roles already written,
/// assigns, renders every file, and writes them in one go (or, with `plan`, compares only).
pub fn once(
    data_dir: &DataDir,
    discovered: &[discovery::machine::Machine],
    options: &Options,
) -> Result<Run> {
    let existing = state::read_assignments(data_dir)?;
    let schedule = decide(data_dir, discovered, &existing, options)?;
    finish(data_dir, options, schedule, &existing)
}

/// [`once`] with the machines and the roles in a store (`--db`) that several provisioning
/// servers share: in one transaction no other scheduler's interleaves with, the roles the store
/// records and those this data dir holds (a data dir written before roles were recorded, or by
/// a server that ran alone) are the existing roles; the new ones are recorded (unless
/// planning); then this data dir is written from all of them. Two servers end with the same
/// files, whoever ran first.
pub fn once_in_store(
    data_dir: &DataDir,
    store: &dyn discovery::storage::RoleStore,
    options: &Options,
) -> Result<Run> {
    let on_disk = state::read_assignments(data_dir)?;
    let mut decided = None;
    store.with_roles(!options.plan, &mut |machines, recorded| {
        let mut existing = recorded
            .iter()
            .map(state::from_stored)
            .collect::<Result<Vec<_>>>()?;
        let only_on_disk: Vec<Assignment> = on_disk
            .iter()
            .filter(|a| !existing.contains(a))
            .cloned()
            .collect();
        existing.extend(only_on_disk);
        let schedule = decide(data_dir, machines, &existing, options)?;
        let new = schedule
            .members
            .iter()
            .chain(&schedule.workers)
            .filter(|a| {
                !recorded
                    .iter()
                    .any(|r| state::from_stored(r).ok().as_ref() == Some(*a))
            })
            .map(state::to_stored)
            .collect();
        decided = Some((schedule, existing));
        Ok(new)
    })?;
    let (schedule, existing) = decided.expect("the store ran the decision");
    finish(data_dir, options, schedule, &existing)
}

/// The roles for `discovered`, keeping `existing`; notices logged.
fn decide(
    data_dir: &DataDir,
    discovered: &[discovery::machine::Machine],
    existing: &[Assignment],
    options: &Options,
) -> Result<Schedule> {
    let params = Params {
        etcd_members: options.etcd_members,
        workers: options.workers,
    };
    let input = scheduler_input(discovered);
    let schedule = assign::assign(&input, existing, &params).map_err(|err| {
        invalid(format!(
            "{}: the scheduled groups disagree: {err}",
            data_dir.groups_dir().display()
        ))
    })?;
    for notice in &schedule.notices {
        tracing::warn!("{notice}");
    }
    Ok(schedule)
}

/// Renders and writes (or, planning, compares) the files of `schedule`.
fn finish(
    data_dir: &DataDir,
    options: &Options,
    schedule: Schedule,
    existing: &[Assignment],
) -> Result<Run> {
    if schedule.waiting.is_some() {
        return Ok(Run {
            schedule,
            files: Vec::new(),
            outcomes: Vec::new(),
        });
    }
    let files = render(data_dir, options, &schedule)?;
    check_not_taken(data_dir, &files, existing)?;
    let write = WriteOptions {
        dry_run: options.plan,
    };
    let outcomes = write::write_changes(&files, &[], write)?;
    Ok(Run {
        schedule,
        files,
        outcomes,
    })
}

/// Refuses to replace a file that belongs to no role the scheduler already gave: a profile or
/// config of the same name written by `gen cluster` or by hand. A file with the very bytes
/// this run writes is accepted (a run killed after some of its renames left it).
fn check_not_taken(
    data_dir: &DataDir,
    files: &[write::FileWrite],
    existing: &[Assignment],
) -> Result<()> {
    let mut ours = HashSet::new();
    for assignment in existing {
        ours.extend(plan::own_paths(data_dir, assignment)?);
    }
    if existing.iter().any(|a| a.role == assign::Role::Worker) {
        ours.extend(plan::shared_worker_paths(data_dir)?);
    }
    for file in files.iter().filter(|file| !ours.contains(&file.path)) {
        let taken = match fs::read(&file.path) {
            Ok(bytes) => bytes != file.bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => false,
            Err(err) => {
                return Err(err).with_context(|| format!("reading {}", file.path.display()));
            }
        };
        if taken {
            return Err(invalid(format!(
                "{} exists and was not written by caas schedule: remove or rename it, or give \
                 that machine another name",
                file.path.display()
            )));
        }
    }
    Ok(())
}

/// What the pure assignment needs of each machine. First-seen times order the machines when
/// every machine has one; a list of bare reports is ordered by its position.
fn scheduler_input(machines: &[discovery::machine::Machine]) -> Vec<assign::Machine> {
    let timed = machines.iter().all(|m| m.first_seen.is_some());
    machines
        .iter()
        .enumerate()
        .map(|(position, machine)| assign::Machine {
            mac: machine.mac.clone(),
            ip: machine.boot_ipv4(),
            first_seen: match machine.first_seen {
                Some(time) if timed => discovery::machine::to_millis(time),
                _ => position as i64,
            },
        })
        .collect()
}

fn render(
    data_dir: &DataDir,
    options: &Options,
    schedule: &Schedule,
) -> Result<Vec<write::FileWrite>> {
    let base = options.matchbox_url.as_ref();
    let (_, os) = os_boot(data_dir, options.os, &options.version, options.arch, base)?;
    let boot = boot_with_args(os.kernel, os.initrd, os.args, &options.args, base, None)?;
    let engine = Engine::new(
        TemplateSet::with_dir(options.templates_dir.as_deref())?,
        options.spec,
    )?;
    let mut vars = Map::new();
    vars.extend(etcd_binary_vars(
        data_dir,
        &engine,
        &options.etcd_version,
        options.arch,
        base,
    )?);
    if !options.ssh_authorized_keys.is_empty() {
        vars.insert(
            "ssh_authorized_keys".into(),
            Value::from(options.ssh_authorized_keys.clone()),
        );
    }
    plan::files(
        schedule,
        &plan::Inputs {
            data_dir,
            boot: &boot,
            engine: &engine,
            vars: &vars,
            api_url: options.api_url.as_ref().map(MatchboxUrl::as_str),
        },
    )
}

/// The published etcd binary's URL and digest, when the role templates run it.
fn etcd_binary_vars(
    data_dir: &DataDir,
    engine: &Engine,
    version: &Id,
    arch: Arch,
    matchbox_url: Option<&MatchboxUrl>,
) -> Result<Map<String, Value>> {
    let runs_etcd = [plan::MEMBER_TEMPLATE, plan::WORKER_TEMPLATE]
        .iter()
        .filter_map(|template| engine.variables(template))
        .any(|vars| vars.referenced.contains(etcd::URL_VAR));
    if !runs_etcd {
        return Ok(Map::new());
    }
    let Some(matchbox_url) = matchbox_url else {
        return Err(invalid(
            "--matchbox-url is needed: the etcd roles download etcd from matchbox",
        ));
    };
    Ok(etcd::published_binary(&data_dir.assets_dir(), version, arch, matchbox_url)?.vars())
}
