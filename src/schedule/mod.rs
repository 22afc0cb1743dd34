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
use crate::discovery::store::RoleChanges;
use crate::error::invalid;
use crate::generate::{Compat, boot_with_args, os_boot};
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
    /// Ignition spec of the configs (checked against the OS and `compat`).
    pub spec: Spec,
    /// The server the profiles are written for.
    pub compat: Option<Compat>,
    /// Templates that add to or override the built-in ones.
    pub templates_dir: Option<PathBuf>,
    pub matchbox_url: Option<MatchboxUrl>,
    /// The discovery API URL, recorded in the groups' metadata for templates.
    pub api_url: Option<MatchboxUrl>,
    /// Compare with the disk only; write nothing.
    pub plan: bool,
    /// The published etcd release the roles run (`current`: what `assets/etcd/current` names).
    pub etcd_version: Id,
    /// Workers (normalised boot MACs) whose roles to free, and whose files to remove.
    pub release: Vec<String>,
}

/// What a run decided and did.
pub struct Run {
    pub schedule: Schedule,
    /// Every file of the schedule; empty while waiting for machines.
    pub files: Vec<FileWrite>,
    /// What happened (or, planned, would happen) to each file.
    pub outcomes: Vec<Outcome>,
    /// The roles `--release` freed.
    pub released: Vec<Assignment>,
}

/// Schedules `discovered` (first seen first) in `data_dir`: reads the roles already written,
/// assigns, renders every file, and writes them in one go (or, with `plan`, compares only).
pub fn once(
    data_dir: &DataDir,
    discovered: &[discovery::machine::Machine],
    options: &Options,
) -> Result<Run> {
    let existing = state::read_assignments(data_dir)?;
    let decision = decide(data_dir, discovered, &existing, options)?;
    finish(data_dir, discovered, options, &existing, decision)
}

/// [`once`] with the machines and the roles in a store (`--db`) that several provisioning
/// servers share: in one transaction no other scheduler's interleaves with, the roles the store
/// records and those this data dir holds (a data dir written before roles were recorded, or by
/// a server that ran alone) are the existing roles; the new ones are recorded and the released
/// ones removed (unless planning); then this data dir is written from all of them. Two servers
/// end with the same files, whoever ran first.
pub fn once_in_store(
    data_dir: &DataDir,
    store: &dyn discovery::storage::RoleStore,
    options: &Options,
) -> Result<Run> {
    let on_disk = state::read_assignments(data_dir)?;
    let mut decided = None;
    store.with_roles(!options.plan, &mut |machines, recorded| {
        let recorded = recorded
            .iter()
            .map(state::from_stored)
            .collect::<Result<Vec<_>>>()?;
        let only_on_disk: Vec<Assignment> = on_disk
            .iter()
            .filter(|a| !recorded.contains(a))
            .cloned()
            .collect();
        // A store without roles yet takes the data dir's (written before roles were
        // recorded). Once it has some, it is the truth: a role only on disk was released
        // through another server, and its files go here too.
        let (existing, released_elsewhere) = if recorded.is_empty() {
            (only_on_disk, Vec::new())
        } else {
            (recorded.clone(), only_on_disk)
        };
        let mut decision = decide(data_dir, machines, &existing, options)?;
        let changes = RoleChanges {
            add: (decision.schedule.members.iter())
                .chain(&decision.schedule.workers)
                .filter(|a| !recorded.contains(a))
                .map(state::to_stored)
                .collect(),
            remove: (decision.released.iter())
                .filter(|a| recorded.contains(a))
                .map(state::to_stored)
                .collect(),
        };
        decision.released.extend(released_elsewhere.iter().cloned());
        let mut existing = existing;
        existing.extend(released_elsewhere);
        decided = Some((decision, existing, machines.to_vec()));
        Ok(changes)
    })?;
    let (decision, existing, machines) = decided.expect("the store ran the decision");
    finish(data_dir, &machines, options, &existing, decision)
}

/// What a run decided: the schedule, the roles `--release` freed, and those it kept.
struct Decision {
    schedule: Schedule,
    released: Vec<Assignment>,
    kept: Vec<Assignment>,
}

/// The roles for `discovered`, keeping `existing` but the released ones; notices logged.
fn decide(
    data_dir: &DataDir,
    discovered: &[discovery::machine::Machine],
    existing: &[Assignment],
    options: &Options,
) -> Result<Decision> {
    let released = released_roles(existing, &options.release)?;
    let kept: Vec<Assignment> = existing
        .iter()
        .filter(|a| !released.contains(a))
        .cloned()
        .collect();
    let params = Params {
        etcd_members: options.etcd_members,
        workers: options.workers,
    };
    // A released machine gets no other role in the same run.
    let mut input = scheduler_input(discovered);
    input.retain(|m| !released.iter().any(|r| r.mac == m.mac));
    let schedule = assign::assign(&input, &kept, &params).map_err(|err| {
        invalid(format!(
            "{}: the scheduled groups disagree: {err}",
            data_dir.groups_dir().display()
        ))
    })?;
    for notice in &schedule.notices {
        tracing::warn!("{notice}");
    }
    Ok(Decision {
        schedule,
        released,
        kept,
    })
}

/// Renders and writes (or, planning, compares) the files of a decision, and removes those of
/// the released roles.
fn finish(
    data_dir: &DataDir,
    discovered: &[discovery::machine::Machine],
    options: &Options,
    existing: &[Assignment],
    decision: Decision,
) -> Result<Run> {
    let Decision {
        schedule,
        released,
        kept,
    } = decision;
    if schedule.waiting.is_some() {
        return Ok(Run {
            schedule,
            files: Vec::new(),
            outcomes: Vec::new(),
            released,
        });
    }
    let files = render(data_dir, options, &schedule)?;
    let removals = release_removals(data_dir, options, existing, &released, &schedule)?;
    for role in &released {
        if input_admitted(discovered, &role.mac) {
            tracing::warn!(
                "{} is still admitted: the next run gives it a role again unless it is \
                 forgotten (caas machines forget {})",
                role.mac,
                role.mac
            );
        }
    }
    check_not_taken(data_dir, &files, &kept)?;
    let write = WriteOptions {
        dry_run: options.plan,
    };
    let outcomes = write::write_changes(&files, &removals, write)?;
    Ok(Run {
        schedule,
        files,
        outcomes,
        released,
    })
}

fn input_admitted(discovered: &[discovery::machine::Machine], mac: &str) -> bool {
    discovered.iter().any(|m| m.mac == mac && m.is_admitted())
}

/// The workers `--release` names; a member, or a MAC with no role, is an input error.
fn released_roles(existing: &[Assignment], release: &[String]) -> Result<Vec<Assignment>> {
    release
        .iter()
        .map(|mac| match existing.iter().find(|a| a.mac == *mac) {
            Some(a) if a.role == assign::Role::Worker => Ok(a.clone()),
            Some(a) => Err(invalid(format!(
                "--release {mac}: it is {}, an etcd member: caas never changes the membership \
                 of a formed cluster (etcdctl member remove, then remove its files yourself)",
                a.id()
            ))),
            None => Err(invalid(format!(
                "--release {mac}: no role written by caas schedule has this MAC"
            ))),
        })
        .collect()
}

/// The files the released workers leave: each one's group, and the workers' shared profile
/// and config once no worker is left. Only files whose bytes are exactly what the scheduler
/// writes for them (rendered again now, with this run's flags) are removed: a group edited
/// since is refused (removing it is what frees the role, so the release would be half done),
/// a shared file edited since is kept with a warning.
fn release_removals(
    data_dir: &DataDir,
    options: &Options,
    existing: &[Assignment],
    released: &[Assignment],
    after: &Schedule,
) -> Result<Vec<PathBuf>> {
    if released.is_empty() {
        return Ok(Vec::new());
    }
    let of_role = |role| {
        let mut list: Vec<Assignment> = existing
            .iter()
            .filter(|a| a.role == role)
            .cloned()
            .collect();
        list.sort_by_key(|a| a.index);
        list
    };
    let before = Schedule {
        members: of_role(assign::Role::EtcdMember),
        workers: of_role(assign::Role::Worker),
        waiting: None,
        pending: 0,
        notices: Vec::new(),
    };
    let written: std::collections::HashMap<PathBuf, Vec<u8>> = render(data_dir, options, &before)?
        .into_iter()
        .map(|file| (file.path, file.bytes))
        .collect();
    let unchanged = |path: &PathBuf| -> Result<Option<bool>> {
        match fs::read(path) {
            Ok(bytes) => Ok(Some(written.get(path) == Some(&bytes))),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
        }
    };
    let mut removals = Vec::new();
    for role in released {
        for path in plan::own_paths(data_dir, role)? {
            match unchanged(&path)? {
                Some(true) => removals.push(path),
                None => {}
                Some(false) => {
                    return Err(invalid(format!(
                        "--release {}: {} is not what caas schedule writes for {} with these \
                         flags (edited since, or other flags than the run that wrote it): \
                         nothing was removed; remove the file yourself to free the role",
                        role.mac,
                        path.display(),
                        role.id()
                    )));
                }
            }
        }
    }
    if after.workers.is_empty() {
        for path in plan::shared_worker_paths(data_dir)? {
            match unchanged(&path)? {
                Some(true) => removals.push(path),
                None => {}
                Some(false) => tracing::warn!(
                    "{} changed since caas schedule wrote it: kept, although no worker is left",
                    path.display()
                ),
            }
        }
    }
    Ok(removals)
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
            admitted: machine.is_admitted(),
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
    let boot = boot_with_args(
        os.kernel,
        os.initrd,
        os.args,
        &options.args,
        base,
        options.compat,
    )?;
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
    let spec = engine.spec();
    Ok(
        etcd::published_binary_for(&data_dir.assets_dir(), version, arch, matchbox_url, spec)?
            .vars(),
    )
}
