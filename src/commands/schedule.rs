//! `caas schedule once`: read the discovered machines, schedule, report.

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde::Serialize;

use crate::cli::{GlobalArgs, ScheduleCommand, ScheduleOnceArgs};
use crate::discovery;
use crate::discovery::client::Operator;
use crate::discovery::location::Location;
use crate::error::{EXIT_INVALID, invalid};
use crate::generate::{SpecFlags, output_spec};
use crate::input::UserFile;
use crate::matchbox::DataDir;
use crate::report::{ChangeReport, Fields, Format, NoFields, print_changes};
use crate::schedule::assign::Assignment;
use crate::schedule::{self, Options, Run};
use crate::write::Action;

/// How long `--api` may take to list the machines.
const API_TIMEOUT: Duration = Duration::from_secs(60);

/// `caas schedule …`.
pub fn run(global: &GlobalArgs, command: &ScheduleCommand) -> Result<ExitCode> {
    match command {
        ScheduleCommand::Once(args) => once(global, args),
    }
}

/// Where the discovered machines come from: `--api`, `--db` or `--discovery`.
#[derive(Clone, Debug)]
enum MachineSource {
    /// A running `caas api` (its base URL) and the operator token.
    Api(String, Operator),
    /// The store of `caas api`, read-only.
    Db(Location),
    /// A saved `GET /discovery/machines` (or `/discovery`) list.
    File(PathBuf),
}

impl MachineSource {
    /// The source the flags name (clap requires exactly one).
    fn from_args(args: &ScheduleOnceArgs) -> Result<MachineSource> {
        match (&args.api, &args.db, &args.discovery) {
            (Some(api), _, _) => {
                let operator = Operator::from_files(
                    args.operator_token_file.as_deref(),
                    args.ca_cert.as_deref(),
                )?;
                Ok(MachineSource::Api(api.clone(), operator))
            }
            (None, Some(db), _) => Ok(MachineSource::Db(db.clone())),
            (None, None, Some(path)) => Ok(MachineSource::File(path.clone())),
            (None, None, None) => Err(invalid(
                "give --api URL, --db FILE or --discovery FILE.json",
            )),
        }
    }
}

/// `caas schedule once`: exit 0, or with `--plan` 2 when files would change.
fn once(global: &GlobalArgs, args: &ScheduleOnceArgs) -> Result<ExitCode> {
    let members = usize::from(args.etcd_members);
    if members % 2 == 0 && !args.allow_even {
        return Err(invalid(format!(
            "--etcd-members {members} is even: a cluster of {members} tolerates no more failures \
             than one of {}; pass --allow-even to use it anyway",
            members - 1
        )));
    }
    let flags = SpecFlags {
        os: "--os",
        spec: "--spec",
    };
    let spec = output_spec(args.os, args.compat, args.spec, flags)?;
    let source = MachineSource::from_args(args)?;
    let data_dir = DataDir::new(&global.data_dir);
    let options = Options {
        etcd_members: members,
        workers: args.workers,
        os: args.os,
        version: args.version.clone(),
        arch: args.arch,
        args: args.args.clone(),
        ssh_authorized_keys: args.ssh_authorized_keys.clone(),
        spec,
        compat: args.compat,
        templates_dir: args.templates.dir.clone(),
        matchbox_url: args.matchbox_url.clone(),
        api_url: args.api_url.clone(),
        plan: args.plan,
        etcd_version: args.etcd_version.clone(),
        release: args.release.clone(),
    };
    let run = match &source {
        // The store: the roles are recorded there too, so that the servers sharing it agree.
        MachineSource::Db(db) => {
            if let Location::Sqlite(path) = db
                && !path.is_file()
            {
                return Err(invalid(format!("--db {}: no such file", path.display())));
            }
            let store = discovery::storage::open_roles(db, !args.plan)?;
            let _lock = super::lock_data_dir(global, "caas schedule once", args.plan)?;
            schedule::once_in_store(&data_dir, store.as_ref(), &options)?
        }
        _ => {
            let discovered = read_machines(&source)?;
            let _lock = super::lock_data_dir(global, "caas schedule once", args.plan)?;
            schedule::once(&data_dir, &discovered, &options)?
        }
    };
    let changes = ChangeReport {
        dry_run: args.plan,
        format: args.format,
        quiet: global.quiet,
    };
    let mut out = io::stdout().lock();
    report(&mut out, &run, &changes).context("writing the report")?;
    let pending = run.outcomes.iter().any(|o| o.action != Action::Unchanged);
    Ok(if args.plan && pending {
        ExitCode::from(EXIT_INVALID)
    } else {
        ExitCode::SUCCESS
    })
}

/// The discovered machines, first seen first, from `source`.
fn read_machines(source: &MachineSource) -> Result<Vec<discovery::machine::Machine>> {
    let path = match source {
        MachineSource::Api(api, operator) => {
            return discovery::client::fetch_machines(api, API_TIMEOUT, operator)
                .context("reading the discovered machines from --api");
        }
        MachineSource::Db(db) => {
            return discovery::storage::open_read_only(db)?.machines();
        }
        MachineSource::File(path) => path,
    };
    let bytes = UserFile::new("--discovery", path)
        .with_limit(discovery::client::MACHINES_BODY_LIMIT)
        .read()?;
    discovery::machine::machines_from_json(&bytes)
        .map_err(|err| invalid(format!("{}: {err:#}", path.display())))
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
    /// Admitted machines with a boot address (the JSON name predates admission).
    discovered: usize,
    needed: usize,
}

/// What `schedule once` adds to its change report: the roles, and why some were not given.
#[derive(Serialize)]
struct ScheduleFields<'a> {
    plan: bool,
    waiting: Option<Waiting>,
    /// Machines without a role waiting for admission.
    pending: usize,
    members: Vec<RoleView<'a>>,
    workers: Vec<RoleView<'a>>,
    released: Vec<RoleView<'a>>,
    notices: Vec<String>,
}

/// JSON: the change report with the roles. Text: the roles (`<id> <mac> <ipv4>`), every file,
/// and a count of what changed; or that the schedule waits for more machines.
fn report(out: &mut impl io::Write, run: &Run, report: &ChangeReport) -> io::Result<()> {
    let schedule = &run.schedule;
    if report.format == Format::Json {
        let fields = Fields {
            digests: false,
            json: ScheduleFields {
                plan: report.dry_run,
                waiting: schedule
                    .waiting
                    .map(|(discovered, needed)| Waiting { discovered, needed }),
                pending: schedule.pending,
                members: schedule.members.iter().map(RoleView::from).collect(),
                workers: schedule.workers.iter().map(RoleView::from).collect(),
                released: run.released.iter().map(RoleView::from).collect(),
                notices: schedule.notices.iter().map(ToString::to_string).collect(),
            },
        };
        return print_changes(out, &run.files, &run.outcomes, report, &fields);
    }
    if !report.prints_text() {
        return Ok(());
    }
    if schedule.pending > 0 {
        let n = schedule.pending;
        writeln!(
            out,
            "{n} machine{} pending admission, given no role: caas machines list --pending; \
             caas machines approve MAC…",
            if n == 1 { "" } else { "s" }
        )?;
    }
    if let Some((discovered, needed)) = schedule.waiting {
        // Once some machines wait for admission, "discovered" would undercount them.
        let counted = if schedule.pending > 0 {
            "admitted"
        } else {
            "discovered"
        };
        return writeln!(
            out,
            "{discovered}/{needed} machines {counted}, waiting: nothing written"
        );
    }
    for role in &run.released {
        writeln!(out, "released {} {} {}", role.id(), role.mac, role.ip)?;
    }
    for role in schedule.members.iter().chain(&schedule.workers) {
        writeln!(out, "{} {} {}", role.id(), role.mac, role.ip)?;
    }
    print_changes(
        out,
        &run.files,
        &run.outcomes,
        report,
        &Fields::<NoFields>::default(),
    )?;
    let count = |action: Action| run.outcomes.iter().filter(|o| o.action == action).count();
    let (created, updated) = (count(Action::Created), count(Action::Updated));
    let removed = count(Action::Removed);
    let unchanged = run.outcomes.len() - created - updated - removed;
    let verb = if report.dry_run { "would be " } else { "" };
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let removed = if removed > 0 {
        format!(", {removed} {verb}removed")
    } else {
        String::new()
    };
    writeln!(
        out,
        "{}, {}: {} {verb}created, {updated} {verb}updated{removed}, {unchanged} unchanged",
        plural(schedule.members.len(), "etcd member"),
        plural(schedule.workers.len(), "worker"),
        plural(created, "file"),
    )
}
