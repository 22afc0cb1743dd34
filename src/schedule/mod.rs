//! `caas schedule once`: discovered machines become an etcd cluster and its workers.
//!
//! - [`assign`]: who gets which role (pure, sticky);
//! - [`state`]: the roles already written, read back from the data dir's groups;
//! - [`plan`]: the groups, profiles and Ignition configs a schedule stands for.
//!
//! The command reads the discovered machines and the existing roles, assigns, renders every
//! file, then writes them in one call to [`crate::write`] (or, with `--plan`, only compares).

pub mod assign;
pub mod plan;
pub mod state;

use std::collections::HashSet;
use std::fs;
use std::io;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::assets::etcd;
use crate::cli::{Format, GlobalArgs, ScheduleCommand, ScheduleOnceArgs};
use crate::discovery;
use crate::error::{EXIT_INVALID, invalid};
use crate::ids::Id;
use crate::ignition::{Engine, TemplateSet};
use crate::matchbox::DataDir;
use crate::matchbox::generate::{boot_with_args, os_boot};
use crate::matchbox::server::MatchboxUrl;
use crate::os::Arch;
use crate::write::{self, Action, Outcome};
use assign::{Assignment, Params, Schedule};

/// How long `--api` may take to list the machines.
const API_TIMEOUT: Duration = Duration::from_secs(60);

/// `caas schedule …`.
pub fn run(global: &GlobalArgs, command: &ScheduleCommand) -> Result<ExitCode> {
    match command {
        ScheduleCommand::Once(args) => once(global, args),
    }
}

/// `caas schedule once`: exit 0, or with `--plan` 2 when files would change.
pub fn once(global: &GlobalArgs, args: &ScheduleOnceArgs) -> Result<ExitCode> {
    let members = usize::from(args.etcd_members);
    if members % 2 == 0 && !args.allow_even {
        return Err(invalid(format!(
            "--etcd-members {members} is even: a cluster of {members} tolerates no more failures \
             than one of {}; pass --allow-even to use it anyway",
            members - 1
        )));
    }
    args.os
        .check_reads_ignition_v3()
        .map_err(|err| invalid(format!("--os {}: {err}", args.os.dir_name())))?;
    let data_dir = DataDir::new(&global.data_dir);
    let discovered = read_machines(args)?;
    let existing = state::read_assignments(&data_dir)?;
    let params = Params {
        etcd_members: members,
        workers: args.workers,
    };
    let input = scheduler_input(&discovered);
    let schedule = assign::assign(&input, &existing, &params).map_err(|err| {
        invalid(format!(
            "{}: the scheduled groups disagree: {err}",
            data_dir.groups_dir().display()
        ))
    })?;
    for notice in &schedule.notices {
        tracing::warn!("{notice}");
    }

    let outcomes = if schedule.waiting.is_some() {
        Vec::new()
    } else {
        let files = render(&data_dir, args, &schedule)?;
        check_not_taken(&data_dir, &files, &existing)?;
        if args.plan {
            write::plan(&files)?
        } else {
            write::apply(&files)?
        }
    };
    let mut out = io::stdout().lock();
    report(&mut out, args, &schedule, &outcomes, global.quiet).context("writing the report")?;
    let pending = outcomes.iter().any(|o| o.action != Action::Unchanged);
    Ok(if args.plan && pending {
        ExitCode::from(EXIT_INVALID)
    } else {
        ExitCode::SUCCESS
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

/// The discovered machines, first seen first, from whichever source was named.
fn read_machines(args: &ScheduleOnceArgs) -> Result<Vec<discovery::machine::Machine>> {
    if let Some(api) = &args.api {
        return discovery::client::fetch_machines(api, API_TIMEOUT)
            .context("reading the discovered machines from --api");
    }
    if let Some(db) = &args.db {
        if !db.is_file() {
            return Err(invalid(format!("--db {}: no such file", db.display())));
        }
        return discovery::store::Store::open_read_only(db)?.machines();
    }
    let path = args
        .discovery
        .as_ref()
        .expect("clap requires --api, --db or --discovery");
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Err(invalid(format!(
                "--discovery {}: no such file",
                path.display()
            )));
        }
        Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
    };
    discovery::machine::machines_from_json(&bytes)
        .map_err(|err| invalid(format!("{}: {err:#}", path.display())))
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
    args: &ScheduleOnceArgs,
    schedule: &Schedule,
) -> Result<Vec<write::FileWrite>> {
    let base = args.matchbox_url.as_ref();
    let (_, os) = os_boot(data_dir, args.os, &args.version, args.arch, base)?;
    let boot = boot_with_args(os.kernel, os.initrd, os.args, &args.args, base, None)?;
    let engine = Engine::new(
        TemplateSet::with_dir(args.templates.dir.as_deref())?,
        args.spec,
    )?;
    let mut vars = Map::new();
    vars.extend(etcd_binary_vars(
        data_dir,
        &engine,
        &args.etcd_version,
        args.arch,
        base,
    )?);
    if !args.ssh_authorized_keys.is_empty() {
        vars.insert(
            "ssh_authorized_keys".into(),
            Value::from(args.ssh_authorized_keys.clone()),
        );
    }
    plan::files(
        schedule,
        &plan::Inputs {
            data_dir,
            boot: &boot,
            engine: &engine,
            vars: &vars,
            api_url: args.api_url.as_ref().map(MatchboxUrl::as_str),
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

#[derive(Serialize)]
struct RoleView<'a> {
    id: String,
    mac: &'a str,
    ipv4: String,
}

impl<'a> From<&'a Assignment> for RoleView<'a> {
    fn from(assignment: &'a Assignment) -> Self {
        RoleView {
            id: assignment.id(),
            mac: &assignment.mac,
            ipv4: assignment.ip.to_string(),
        }
    }
}

#[derive(Serialize)]
struct Waiting {
    discovered: usize,
    needed: usize,
}

#[derive(Serialize)]
struct Report<'a> {
    plan: bool,
    waiting: Option<Waiting>,
    members: Vec<RoleView<'a>>,
    workers: Vec<RoleView<'a>>,
    notices: Vec<String>,
    files: &'a [Outcome],
}

fn report(
    out: &mut impl io::Write,
    args: &ScheduleOnceArgs,
    schedule: &Schedule,
    outcomes: &[Outcome],
    quiet: bool,
) -> io::Result<()> {
    if args.format == Format::Json {
        let report = Report {
            plan: args.plan,
            waiting: schedule
                .waiting
                .map(|(discovered, needed)| Waiting { discovered, needed }),
            members: schedule.members.iter().map(RoleView::from).collect(),
            workers: schedule.workers.iter().map(RoleView::from).collect(),
            notices: schedule.notices.iter().map(ToString::to_string).collect(),
            files: outcomes,
        };
        return out.write_all(&write::canonical_json(&report));
    }
    if quiet {
        return Ok(());
    }
    if let Some((discovered, needed)) = schedule.waiting {
        return writeln!(
            out,
            "{discovered}/{needed} machines discovered, waiting: nothing written"
        );
    }
    for member in &schedule.members {
        writeln!(out, "{} {} {}", member.id(), member.mac, member.ip)?;
    }
    for worker in &schedule.workers {
        writeln!(out, "{} {} {}", worker.id(), worker.mac, worker.ip)?;
    }
    let mut counts = [0usize; 3];
    for outcome in outcomes {
        match outcome.action {
            Action::Created => counts[0] += 1,
            Action::Updated => counts[1] += 1,
            _ => counts[2] += 1,
        }
        if outcome.action != Action::Unchanged {
            writeln!(
                out,
                "{} {}",
                outcome.action.describe(args.plan),
                outcome.path.display()
            )?;
        }
    }
    let [created, updated, unchanged] = counts;
    let verb = if args.plan { "would be " } else { "" };
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    writeln!(
        out,
        "{}, {}: {} {verb}created, {updated} {verb}updated, {unchanged} unchanged",
        plural(schedule.members.len(), "etcd member"),
        plural(schedule.workers.len(), "worker"),
        plural(created, "file"),
    )
}
