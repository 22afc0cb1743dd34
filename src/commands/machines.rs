//! `caas machines list|show|approve|forget`: on the store (`--db`) or through a running
//! `caas api` (`--api`, with the operator token).

use std::io::{self, Write as _};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result};
use serde_json::json;

use crate::cli::{
    GlobalArgs, InventoryArgs, MachinesApproveArgs, MachinesCommand, MachinesForgetArgs,
    MachinesListArgs, MachinesShowArgs,
};
use crate::discovery::admission::{Change, Changed, Selection, by_operator};
use crate::discovery::client::{Operator, fetch_machines, operator_call};
use crate::discovery::location::Location;
use crate::discovery::machine::{Machine, format_time};
use crate::discovery::postgres::{Access, PgStorage};
use crate::discovery::storage::{Storage as _, machine_from_row, open_read_only};
use crate::discovery::store::Store;
use crate::error::invalid;
use crate::report::Format;

/// How long one call to `--api` may take.
const API_TIMEOUT: Duration = Duration::from_secs(60);

/// `caas machines …`.
pub fn run(global: &GlobalArgs, command: &MachinesCommand) -> Result<()> {
    match command {
        MachinesCommand::List(args) => list(global, args),
        MachinesCommand::Show(args) => show(args),
        MachinesCommand::Approve(args) => approve(global, args),
        MachinesCommand::Forget(args) => forget(global, args),
    }
}

/// The inventory the flags name (clap requires one of `--db`, `--api`).
enum Inventory {
    Db(Location),
    Api(String, Operator),
}

impl Inventory {
    fn from_args(args: &InventoryArgs) -> Result<Inventory> {
        match (&args.db, &args.api) {
            (Some(db), _) => {
                if let Location::Sqlite(path) = db
                    && !path.is_file()
                {
                    return Err(invalid(format!("--db {}: no such file", path.display())));
                }
                Ok(Inventory::Db(db.clone()))
            }
            (None, Some(api)) => {
                let access = Operator::from_files(
                    args.operator_token_file.as_deref(),
                    args.ca_cert.as_deref(),
                )?;
                Ok(Inventory::Api(api.clone(), access))
            }
            (None, None) => Err(invalid("give --db FILE or --api URL")),
        }
    }

    fn machines(&self) -> Result<Vec<Machine>> {
        match self {
            Inventory::Db(db) => open_read_only(db)?.machines(),
            Inventory::Api(api, access) => fetch_machines(api, API_TIMEOUT, access),
        }
    }

    fn machine(&self, mac: &str) -> Result<Option<Machine>> {
        match self {
            Inventory::Db(db) => open_read_only(db)?
                .row(mac)?
                .map(machine_from_row)
                .transpose(),
            Inventory::Api(api, access) => {
                let path = format!("/discovery/machines/{mac}");
                match operator_call(api, "GET", &path, access, None, API_TIMEOUT) {
                    Ok(bytes) => Ok(Some(
                        serde_json::from_slice(&bytes).with_context(|| format!("GET {path}"))?,
                    )),
                    Err(err) if err.to_string().contains(" 404 ") => Ok(None),
                    Err(err) => Err(err),
                }
            }
        }
    }

    /// Applies `change` (its `by` is recorded for `--db`; the API records its own).
    fn change(&self, change: &Change, operator: &str) -> Result<Changed> {
        match self {
            // A database takes changes while caas api runs on it.
            Inventory::Db(Location::Postgres(url)) => {
                let store = PgStorage::open(url, Access::Schedule)?;
                let changed = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .context("starting a runtime")?
                    .block_on(store.change(change.clone()))
                    .map_err(|err| anyhow::anyhow!("{err}"))?;
                store.close()?;
                refuse_unknown(&changed)?;
                Ok(changed)
            }
            Inventory::Db(Location::Sqlite(db)) => {
                let mut store = Store::open(db).map_err(|err| {
                    err.context(
                        "caas api may be running on it: use --api URL --operator-token-file FILE",
                    )
                })?;
                let changed = store.apply_change(change, SystemTime::now())?;
                refuse_unknown(&changed)?;
                Ok(changed)
            }
            Inventory::Api(api, access) => {
                let (path, mut body) = match change {
                    Change::Approve {
                        which: Selection::All,
                        ..
                    } => ("/discovery/machines/approve", json!({"all": true})),
                    Change::Approve {
                        which: Selection::Macs(macs),
                        ..
                    } => ("/discovery/machines/approve", json!({"macs": macs})),
                    Change::Forget { macs, .. } => {
                        ("/discovery/machines/forget", json!({"macs": macs}))
                    }
                };
                body["operator"] = operator.into();
                let bytes = operator_call(api, "POST", path, access, Some(&body), API_TIMEOUT)?;
                serde_json::from_slice(&bytes).with_context(|| format!("POST {path}"))
            }
        }
    }
}

fn refuse_unknown(changed: &Changed) -> Result<()> {
    if changed.unknown.is_empty() {
        return Ok(());
    }
    Err(invalid(format!(
        "not in the inventory: {}; nothing was changed",
        changed.unknown.join(", ")
    )))
}

/// Who runs this command, as the store records it.
fn operator_name() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

fn list(global: &GlobalArgs, args: &MachinesListArgs) -> Result<()> {
    let mut machines = Inventory::from_args(&args.inventory)?.machines()?;
    if args.pending {
        machines.retain(|m| !m.is_admitted());
    }
    let mut out = io::stdout().lock();
    if args.format == Format::Json {
        serde_json::to_writer_pretty(&mut out, &machines)?;
        writeln!(out)?;
        return Ok(());
    }
    if global.quiet {
        return Ok(());
    }
    write_table(&mut out, &machines)?;
    Ok(())
}

/// `MAC STATE BOOT-IPV4 HOSTNAME LAST-SEEN ADMITTED-BY`, aligned.
fn write_table(out: &mut impl io::Write, machines: &[Machine]) -> io::Result<()> {
    let rows: Vec<[String; 6]> = machines
        .iter()
        .map(|m| {
            let admission = m.admission.clone();
            [
                m.mac.clone(),
                admission
                    .as_ref()
                    .map_or("admitted".into(), |a| a.state.to_string()),
                m.boot_ipv4().map_or("-".into(), |ip| ip.to_string()),
                m.report.hostname.clone().unwrap_or_else(|| "-".into()),
                m.last_seen.map_or("-".into(), format_time),
                admission.and_then(|a| a.by).unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let header = [
        "MAC",
        "STATE",
        "BOOT-IPV4",
        "HOSTNAME",
        "LAST-SEEN",
        "ADMITTED-BY",
    ]
    .map(String::from);
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:width$}  "));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    let pending = machines.iter().filter(|m| !m.is_admitted()).count();
    writeln!(out, "{} machines, {pending} pending", machines.len())
}

fn show(args: &MachinesShowArgs) -> Result<()> {
    let machine = Inventory::from_args(&args.inventory)?
        .machine(&args.mac)?
        .ok_or_else(|| invalid(format!("{} is not in the inventory", args.mac)))?;
    let mut out = io::stdout().lock();
    if args.format == Format::Json {
        serde_json::to_writer_pretty(&mut out, &machine)?;
        return Ok(writeln!(out)?);
    }
    let time = |t: Option<SystemTime>| t.map_or("-".into(), format_time);
    writeln!(out, "mac: {}", machine.mac)?;
    match &machine.admission {
        Some(admission) => {
            writeln!(out, "admission: {}", admission.state)?;
            if let Some(by) = &admission.by {
                writeln!(out, "admitted by: {by}")?;
                writeln!(out, "admitted at: {}", time(admission.at))?;
            }
        }
        None => writeln!(out, "admission: unknown")?,
    }
    let ip = machine.boot_ipv4().map_or("-".into(), |ip| ip.to_string());
    writeln!(out, "boot ipv4: {ip}")?;
    writeln!(out, "first seen: {}", time(machine.first_seen))?;
    writeln!(
        out,
        "last seen: {} ({} updates)",
        time(machine.last_seen),
        machine.updates
    )?;
    writeln!(out, "report:")?;
    serde_json::to_writer_pretty(&mut out, &machine.report)?;
    Ok(writeln!(out)?)
}

fn approve(global: &GlobalArgs, args: &MachinesApproveArgs) -> Result<()> {
    let inventory = Inventory::from_args(&args.inventory)?;
    let operator = operator_name();
    let which = if args.all {
        Selection::All
    } else {
        Selection::Macs(args.macs.clone())
    };
    let change = Change::Approve {
        which,
        by: by_operator(&operator, "caas machines --db"),
    };
    let changed = inventory.change(&change, &operator)?;
    report_change(
        global,
        args.format,
        &changed,
        "admitted",
        "already admitted",
    )
}

fn forget(global: &GlobalArgs, args: &MachinesForgetArgs) -> Result<()> {
    let inventory = Inventory::from_args(&args.inventory)?;
    let operator = operator_name();
    let change = Change::Forget {
        macs: args.macs.clone(),
        by: by_operator(&operator, "caas machines --db"),
    };
    let changed = inventory.change(&change, &operator)?;
    report_change(global, args.format, &changed, "forgotten", "")
}

fn report_change(
    global: &GlobalArgs,
    format: Format,
    changed: &Changed,
    done: &str,
    unchanged: &str,
) -> Result<()> {
    let mut out = io::stdout().lock();
    if format == Format::Json {
        serde_json::to_writer_pretty(&mut out, changed)?;
        return Ok(writeln!(out)?);
    }
    if global.quiet {
        return Ok(());
    }
    for mac in &changed.changed {
        writeln!(out, "{done} {mac}")?;
    }
    for mac in &changed.unchanged {
        writeln!(out, "{unchanged} {mac}")?;
    }
    if changed.changed.is_empty() && changed.unchanged.is_empty() {
        writeln!(out, "no machine was pending")?;
    }
    Ok(())
}
