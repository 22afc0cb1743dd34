//! The discovery store: one SQLite file, one row per machine keyed by its normalised boot MAC.
//!
//! ```sql
//! machines(mac TEXT UNIQUE, report TEXT, first_seen INTEGER, last_seen INTEGER, updates INTEGER,
//!          admission TEXT ('pending' | 'admitted'), admitted_by TEXT, admitted_at INTEGER)
//! forgotten(mac TEXT PRIMARY KEY, forgotten_at INTEGER, forgotten_by TEXT)
//! ```
//! `report` is the JSON [`Report::to_json`](super::report::Report::to_json) wrote; times are
//! milliseconds since the Unix epoch; `updates` counts the reports after the first. A repost
//! replaces the report (the 2016 store kept the first one and still said `update: true`).
//! `admission` is `pending` until an `--admit` rule or an operator admits the machine
//! ([`super::admission`]); `forgotten` holds the machines an operator forgot, so that one that
//! reports again comes back pending whatever the rules say (approving it clears the entry).
//!
//! Schema versions (`PRAGMA user_version`): 1 had no admission; 2 adds the three admission
//! columns and `forgotten`. Opening a version 1 store for writing migrates it in one
//! transaction, and the machines it held are admitted, `by` "schema 1 (before admission)":
//! they could already get a role, so an upgrade takes nothing away from a running lab.
//!
//! Durability: WAL journal, `synchronous=FULL`, so a committed transaction is on disk. The
//! server writes through one [`Writer`] thread that groups the POSTs waiting at the same moment
//! into one transaction ("group commit") and answers each only after that transaction commits:
//! one fsync for many machines, and still no 200 before the data is durable.
//!
//! Readers (the server's GETs, `caas schedule`) open the file read-only; with WAL they never
//! block the writer and always see a committed state.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail};
use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot};

use super::admission::{Admission, Change, Changed, State};
use super::machine::{Machine, from_millis, to_millis};
#[cfg(test)]
use super::report::Report as Reported;
use super::storage::machine_from_row;

/// How long a connection waits for a lock another one holds.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The schema version this caas writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 2;

/// A new store (version 0: the file was just created).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS machines (
    id INTEGER PRIMARY KEY,
    mac TEXT NOT NULL UNIQUE,
    report TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    updates INTEGER NOT NULL DEFAULT 0,
    admission TEXT NOT NULL DEFAULT 'pending' CHECK (admission IN ('pending', 'admitted')),
    admitted_by TEXT,
    admitted_at INTEGER
);
CREATE INDEX IF NOT EXISTS machines_by_first_seen ON machines (first_seen, mac);
CREATE TABLE IF NOT EXISTS forgotten (
    mac TEXT PRIMARY KEY,
    forgotten_at INTEGER NOT NULL,
    forgotten_by TEXT NOT NULL
);
";

/// The roles `caas schedule` recorded (both engines keep the same table): one row per role,
/// a machine in one role at most, a role held by one machine at most. Added beside the
/// machines without a schema version of its own: older caas ignore the table.
const ROLES_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS roles (
    role TEXT NOT NULL,
    idx INTEGER NOT NULL,
    mac TEXT NOT NULL UNIQUE,
    ipv4 TEXT NOT NULL,
    PRIMARY KEY (role, idx)
);
";

/// A role as the store records it (`caas schedule` converts it to and from its own model).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRole {
    /// The role's name (`etcd-member`, `worker`).
    pub role: String,
    pub index: i64,
    pub mac: String,
    pub ipv4: String,
}

/// What a scheduler changes in the recorded roles.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoleChanges {
    /// Roles given now.
    pub add: Vec<StoredRole>,
    /// Roles freed (`--release`).
    pub remove: Vec<StoredRole>,
}

/// What `caas schedule` decides inside the roles transaction: given the machines (first seen
/// first) and the recorded roles, what changes.
pub type DecideRoles<'a> = dyn FnMut(&[Machine], &[StoredRole]) -> anyhow::Result<RoleChanges> + 'a;
/// Version 1 → 2: admission. `?1` is the time of the migration.
const MIGRATE_1_TO_2: &str = "
ALTER TABLE machines ADD COLUMN admission TEXT NOT NULL DEFAULT 'pending'
    CHECK (admission IN ('pending', 'admitted'));
ALTER TABLE machines ADD COLUMN admitted_by TEXT;
ALTER TABLE machines ADD COLUMN admitted_at INTEGER;
CREATE TABLE forgotten (
    mac TEXT PRIMARY KEY,
    forgotten_at INTEGER NOT NULL,
    forgotten_by TEXT NOT NULL
);
";

/// Who admitted the machines a version 1 store held (see the module comment).
pub const MIGRATED_BY: &str = "schema 1 (before admission)";

/// The columns of a [`Row`], in its order.
const ROW_COLUMNS: &str =
    "mac, report, first_seen, last_seen, updates, admission, admitted_by, admitted_at";

/// One stored machine as raw columns: what a streaming reader gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub mac: String,
    pub report: String,
    pub first_seen: i64,
    pub last_seen: i64,
    pub updates: i64,
    pub admission: State,
    pub admitted_by: Option<String>,
    pub admitted_at: Option<i64>,
}

impl Row {
    /// The admission these columns hold.
    pub fn admission(&self) -> Admission {
        Admission {
            state: self.admission,
            by: self.admitted_by.clone(),
            at: self.admitted_at.map(from_millis),
        }
    }

    fn read(row: &rusqlite::Row) -> rusqlite::Result<Row> {
        let admission: String = row.get(5)?;
        Ok(Row {
            mac: row.get(0)?,
            report: row.get(1)?,
            first_seen: row.get(2)?,
            last_seen: row.get(3)?,
            updates: row.get(4)?,
            // The column's CHECK constraint allows nothing else.
            admission: State::from_name(&admission).unwrap_or(State::Pending),
            admitted_by: row.get(6)?,
            admitted_at: row.get(7)?,
        })
    }
}

/// A report to store: the machine's normalised boot MAC, the report's JSON, and the `--admit`
/// rule that admits it, if one does.
#[derive(Clone, Copy, Debug)]
pub struct Upsert<'a> {
    pub mac: &'a str,
    pub report: &'a str,
    pub admitted_by: Option<&'a str>,
}

/// What a stored report did: the machine count afterwards and whether the MAC was known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    pub total: u64,
    pub update: bool,
}

/// A connection to the store.
pub struct Store {
    // Dropped before the lock: the connection closes (and checkpoints) while it is held.
    conn: Connection,
    path: PathBuf,
    /// Rows in the table; kept by the (single) writer.
    count: u64,
    /// The database file itself, locked by the one process that writes (not by readers).
    lock: Option<Arc<DbFile>>,
}

/// The database file a writer opened and locked: an exclusive `flock` on the file itself, so
/// that no other path to it (a symlink, a hard link, `..`) lets a second writer in, and its
/// identity (device, inode), to tell whether the path still names it.
///
/// `flock` locks are separate from the POSIX record locks SQLite takes on the same file, but
/// closing any descriptor of a file drops every POSIX lock the process holds on it: this one
/// must be closed after the process's last SQLite connection to the file (whoever holds the
/// last clone of the `Arc` decides).
#[derive(Debug)]
pub struct DbFile {
    _file: fs::File,
    path: PathBuf,
    dev: u64,
    ino: u64,
}

/// Why the store cannot take a report.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The path no longer names the file being written (deleted, or replaced): what is
    /// committed now would not be found by the next start. The server answers 503.
    #[error("{0}")]
    Gone(String),
    /// The database cannot be reached now (a PostgreSQL server down or restarting): the
    /// report was not stored; the same POST succeeds once it is back. 503.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else (a full disk, an I/O error, the writer stopped): 500.
    #[error("{0}")]
    Failed(String),
}

impl DbFile {
    /// Checks that the path still names this file (same device and inode).
    pub fn check(&self) -> Result<(), StoreError> {
        use std::os::unix::fs::MetadataExt as _;
        let gone = |why: String| {
            StoreError::Gone(format!(
                "the database file {} {why} while caas api was writing to it: restart caas api",
                self.path.display()
            ))
        };
        match fs::metadata(&self.path) {
            Ok(meta) if meta.dev() == self.dev && meta.ino() == self.ino => Ok(()),
            Ok(_) => Err(gone("was replaced by another file".into())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                Err(gone("was deleted".into()))
            }
            Err(err) => Err(gone(format!("cannot be checked ({err})"))),
        }
    }

    /// Opens (creating if needed) and locks the file `path` names; refused while another
    /// process holds the lock, whatever path it used.
    fn lock(path: &Path) -> anyhow::Result<DbFile> {
        use std::os::unix::fs::MetadataExt as _;
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .context("opening it")?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                bail!("another process (caas api) is writing to it")
            }
            Err(fs::TryLockError::Error(err)) => return Err(err).context("locking it"),
        }
        let meta = file.metadata().context("reading its metadata")?;
        let locked = DbFile {
            _file: file,
            path: path.to_owned(),
            dev: meta.dev(),
            ino: meta.ino(),
        };
        // Replaced between the open and the lock: the lock is on a file nobody else will open.
        locked
            .check()
            .map_err(|_| anyhow::anyhow!("it was replaced while being opened: try again"))?;
        Ok(locked)
    }
}

/// Brings a store of `version` to [`SCHEMA_VERSION`], in one transaction.
fn migrate(conn: &Connection, version: i64) -> anyhow::Result<()> {
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let migrated = (|| -> anyhow::Result<()> {
        match version {
            0 => conn.execute_batch(SCHEMA)?,
            1 => {
                conn.execute_batch(MIGRATE_1_TO_2)?;
                conn.execute(
                    "UPDATE machines SET admission = 'admitted', admitted_by = ?1, admitted_at = ?2",
                    params![MIGRATED_BY, to_millis(SystemTime::now())],
                )?;
            }
            other => bail!("unknown schema version {other}"),
        }
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        Ok(())
    })();
    match migrated {
        Ok(()) => conn
            .execute_batch("COMMIT")
            .context("committing the schema"),
        Err(err) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(err.context(format!("migrating the schema from version {version}")))
        }
    }
}

impl Store {
    /// Opens (creating if needed) the store for writing: WAL, synchronous=FULL, schema. One
    /// process at a time: a second writer is refused, whichever path names the file.
    pub fn open(path: &Path) -> anyhow::Result<Store> {
        let context = || format!("opening the discovery store {}", path.display());
        let lock = Arc::new(DbFile::lock(path).with_context(context)?);
        let conn = Connection::open(path).with_context(context)?;
        conn.busy_timeout(BUSY_TIMEOUT).with_context(context)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))
            .with_context(context)?;
        if !mode.eq_ignore_ascii_case("wal") {
            bail!(
                "{}: SQLite refused WAL mode (journal_mode is {mode:?})",
                context()
            );
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .with_context(context)?;
        // After a checkpoint empties the WAL, cut the file back to this size.
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
            .with_context(context)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .with_context(context)?;
        if version > SCHEMA_VERSION {
            bail!(
                "{}: it was written by a newer caas (schema {version}, this one knows {SCHEMA_VERSION})",
                context()
            );
        }
        migrate(&conn, version).with_context(context)?;
        let mut store = Store {
            conn,
            path: path.to_owned(),
            count: 0,
            lock: Some(lock),
        };
        store.count = store.count()?;
        Ok(store)
    }

    /// Opens an existing store for reading only (what `caas schedule --db` uses; safe while
    /// `caas api` runs).
    pub fn open_read_only(path: &Path) -> anyhow::Result<Store> {
        let context = || format!("opening the discovery store {} read-only", path.display());
        if !path.is_file() {
            bail!("{}: no such file", context());
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(context)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .with_context(context)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .with_context(context)?;
        check_schema(version).map_err(|why| anyhow::anyhow!("{}: {why}", context()))?;
        Ok(Store {
            conn,
            path: path.to_owned(),
            count: 0,
            lock: None,
        })
    }

    /// Opens the store to record roles (`caas schedule once --db FILE`): read-write, but
    /// without the writer's lock, as `caas api` may be running: SQLite's own locks order the
    /// two. `record` false (a plan): read-only.
    pub fn open_for_roles(path: &Path, record: bool) -> anyhow::Result<Store> {
        if !record {
            return Store::open_read_only(path);
        }
        let context = || format!("opening the discovery store {}", path.display());
        if !path.is_file() {
            bail!("{}: no such file", context());
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(context)?;
        conn.busy_timeout(BUSY_TIMEOUT).with_context(context)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .with_context(context)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .with_context(context)?;
        check_schema(version).map_err(|why| anyhow::anyhow!("{}: {why}", context()))?;
        Ok(Store {
            conn,
            path: path.to_owned(),
            count: 0,
            lock: None,
        })
    }

    /// Runs `decide` on the machines and the recorded roles in one transaction, and (when
    /// `record`) records the roles it returns. `BEGIN IMMEDIATE` takes SQLite's write lock
    /// first: no other scheduler reads the roles until this one has committed its own.
    pub fn with_roles(&self, record: bool, decide: &mut DecideRoles<'_>) -> anyhow::Result<()> {
        let context = || format!("recording the roles in {}", self.path.display());
        self.conn
            .execute_batch(if record { "BEGIN IMMEDIATE" } else { "BEGIN" })
            .with_context(context)?;
        let result = self.roles_transaction(record, decide);
        let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let ended = self.conn.execute_batch(end).with_context(context);
        result?;
        ended
    }

    fn roles_transaction(&self, record: bool, decide: &mut DecideRoles<'_>) -> anyhow::Result<()> {
        if record {
            self.conn.execute_batch(ROLES_SCHEMA)?;
        }
        let recorded = self.recorded_roles()?;
        let machines = self.machines()?;
        let changes = decide(&machines, &recorded)?;
        if record {
            let mut remove = self
                .conn
                .prepare_cached("DELETE FROM roles WHERE role = ?1 AND idx = ?2 AND mac = ?3")?;
            for role in &changes.remove {
                remove
                    .execute(params![role.role, role.index, role.mac])
                    .with_context(|| format!("releasing {} {}", role.role, role.mac))?;
            }
            let mut insert = self.conn.prepare_cached(
                "INSERT INTO roles (role, idx, mac, ipv4) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for role in &changes.add {
                insert
                    .execute(params![role.role, role.index, role.mac, role.ipv4])
                    .with_context(|| format!("recording {} {}", role.role, role.mac))?;
            }
        }
        Ok(())
    }

    /// The recorded roles (none while no scheduler has recorded any).
    fn recorded_roles(&self) -> anyhow::Result<Vec<StoredRole>> {
        let exists: i64 = self.conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'roles'",
            [],
            |row| row.get(0),
        )?;
        if exists == 0 {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare_cached("SELECT role, idx, mac, ipv4 FROM roles ORDER BY role, idx")?;
        let roles = stmt
            .query_map([], |row| {
                Ok(StoredRole {
                    role: row.get(0)?,
                    index: row.get(1)?,
                    mac: row.get(2)?,
                    ipv4: row.get(3)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(roles)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The locked database file of a store opened for writing.
    pub fn db_file(&self) -> Option<Arc<DbFile>> {
        self.lock.clone()
    }

    /// Whether the path still names the file being written (always true for a reader).
    pub fn check_file(&self) -> Result<(), StoreError> {
        self.lock.as_ref().map_or(Ok(()), |lock| lock.check())
    }

    /// The number of stored machines.
    pub fn count(&self) -> anyhow::Result<u64> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM machines", [], |row| row.get(0))
            .with_context(|| format!("counting machines in {}", self.path.display()))?;
        Ok(n as u64)
    }

    /// Stores reports (normalised boot MAC, report JSON) in one transaction, every machine
    /// new to the store pending. See [`Store::upsert_admitting`].
    pub fn upsert_batch(
        &mut self,
        items: &[(&str, &str)],
        now: SystemTime,
    ) -> anyhow::Result<Vec<Ack>> {
        let items: Vec<Upsert> = items
            .iter()
            .map(|(mac, report)| Upsert {
                mac,
                report,
                admitted_by: None,
            })
            .collect();
        self.upsert_admitting(&items, now)
    }

    /// Stores reports in one transaction: inserted, or replacing the machine's report. A
    /// pending machine becomes admitted when its item carries a rule (`admitted_by`), unless
    /// an operator forgot it; an admitted one stays admitted. Returns one [`Ack`] per item, in
    /// order. All or nothing.
    pub fn upsert_admitting(
        &mut self,
        items: &[Upsert],
        now: SystemTime,
    ) -> anyhow::Result<Vec<Ack>> {
        let now = to_millis(now);
        let mut count = self.count;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context("starting a transaction")?;
        let mut acks = Vec::with_capacity(items.len());
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO machines (mac, report, first_seen, last_seen, updates,
                                           admission, admitted_by, admitted_at)
                     SELECT ?1, ?2, ?3, ?3, 0,
                            CASE WHEN admit THEN 'admitted' ELSE 'pending' END,
                            CASE WHEN admit THEN ?4 END, CASE WHEN admit THEN ?3 END
                     FROM (SELECT ?4 IS NOT NULL
                                  AND NOT EXISTS (SELECT 1 FROM forgotten WHERE mac = ?1) AS admit)
                     WHERE true
                     ON CONFLICT (mac) DO UPDATE SET report = excluded.report,
                         last_seen = excluded.last_seen, updates = updates + 1,
                         admitted_by = iif(admission = 'pending', excluded.admitted_by, admitted_by),
                         admitted_at = iif(admission = 'pending', excluded.admitted_at, admitted_at),
                         admission = iif(admission = 'pending', excluded.admission, admission)
                     RETURNING updates",
                )
                .context("preparing the upsert")?;
            for Upsert {
                mac,
                report,
                admitted_by,
            } in items
            {
                let updates: i64 = stmt
                    .query_row(params![mac, report, now, admitted_by], |row| row.get(0))
                    .with_context(|| format!("storing the report of {mac}"))?;
                let update = updates > 0;
                if !update {
                    count += 1;
                }
                acks.push(Ack {
                    total: count,
                    update,
                });
            }
        }
        tx.commit().context("committing reports")?;
        self.count = count;
        Ok(acks)
    }

    /// Calls `f` with every machine, first seen first (then by MAC), from one consistent
    /// snapshot; stops at the first error `f` returns.
    pub fn for_each_row(&self, mut f: impl FnMut(Row) -> anyhow::Result<()>) -> anyhow::Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {ROW_COLUMNS} FROM machines ORDER BY first_seen, mac"
            ))
            .context("reading machines")?;
        let mut rows = stmt.query([]).context("reading machines")?;
        while let Some(row) = rows.next().context("reading machines")? {
            f(Row::read(row)?)?;
        }
        Ok(())
    }

    /// The machine whose boot MAC is `mac` (normalised), if it is in the store.
    pub fn row(&self, mac: &str) -> anyhow::Result<Option<Row>> {
        use rusqlite::OptionalExtension as _;
        self.conn
            .query_row(
                &format!("SELECT {ROW_COLUMNS} FROM machines WHERE mac = ?1"),
                [mac],
                Row::read,
            )
            .optional()
            .with_context(|| format!("reading {mac} from {}", self.path.display()))
    }

    /// Applies an operator's change in one transaction; nothing at all when a MAC it names is
    /// not in the store (see [`Changed`]).
    pub fn apply_change(&mut self, change: &Change, now: SystemTime) -> anyhow::Result<Changed> {
        let now = to_millis(now);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context("starting a transaction")?;
        let mut changed = Changed::default();
        let state_of = |mac: &str| -> anyhow::Result<Option<String>> {
            use rusqlite::OptionalExtension as _;
            tx.query_row(
                "SELECT admission FROM machines WHERE mac = ?1",
                [mac],
                |row| row.get(0),
            )
            .optional()
            .with_context(|| format!("reading {mac}"))
        };
        match change {
            Change::Approve { by, .. } => {
                let macs: Vec<String> = match change.macs() {
                    Some(macs) => macs,
                    None => {
                        let mut stmt = tx.prepare(
                            "SELECT mac FROM machines WHERE admission = 'pending'
                             ORDER BY first_seen, mac",
                        )?;
                        stmt.query_map([], |row| row.get(0))?
                            .collect::<Result<_, _>>()
                            .context("reading pending machines")?
                    }
                };
                for mac in macs {
                    match state_of(&mac)?.as_deref() {
                        None => changed.unknown.push(mac),
                        Some("admitted") => changed.unchanged.push(mac),
                        Some(_) => {
                            tx.execute(
                                "UPDATE machines SET admission = 'admitted', admitted_by = ?2,
                                     admitted_at = ?3 WHERE mac = ?1",
                                params![mac, by, now],
                            )
                            .with_context(|| format!("admitting {mac}"))?;
                            tx.execute("DELETE FROM forgotten WHERE mac = ?1", [&mac])?;
                            changed.changed.push(mac);
                        }
                    }
                }
            }
            Change::Forget { by, .. } => {
                for mac in &change.macs().unwrap_or_default() {
                    if state_of(mac)?.is_none() {
                        changed.unknown.push(mac.clone());
                        continue;
                    }
                    tx.execute("DELETE FROM machines WHERE mac = ?1", [mac])
                        .with_context(|| format!("forgetting {mac}"))?;
                    tx.execute(
                        "INSERT INTO forgotten (mac, forgotten_at, forgotten_by) VALUES (?1, ?2, ?3)
                         ON CONFLICT (mac) DO UPDATE SET forgotten_at = excluded.forgotten_at,
                             forgotten_by = excluded.forgotten_by",
                        params![mac, now, by],
                    )
                    .with_context(|| format!("forgetting {mac}"))?;
                    changed.changed.push(mac.clone());
                }
            }
        }
        if !changed.unknown.is_empty() {
            // Dropping the transaction rolls it back.
            changed.changed.clear();
            changed.unchanged.clear();
            return Ok(changed);
        }
        tx.commit().context("committing the change")?;
        self.count = self.count()?;
        Ok(changed)
    }

    /// Every machine, first seen first (then by MAC).
    pub fn machines(&self) -> anyhow::Result<Vec<Machine>> {
        let mut machines = Vec::new();
        self.for_each_row(|row| {
            machines.push(machine_from_row(row)?);
            Ok(())
        })
        .with_context(|| format!("reading {}", self.path.display()))?;
        Ok(machines)
    }

    /// [`Store::apply_change`] now, and into the file the path names, as the writer thread
    /// acknowledges it.
    fn change_now(&mut self, change: &Change) -> Result<Changed, StoreError> {
        self.apply_change(change, SystemTime::now())
            .map_err(|err| StoreError::Failed(crate::error::one_line(&err)))
            .and_then(|changed| self.check_file().map(|()| changed))
    }

    /// Copies the WAL back into the database, from the writer's connection between two
    /// batches. Under sustained load the checkpointer thread alone never catches up: the WAL
    /// only starts over when a transaction begins with all of it copied back, and the writer
    /// keeps appending. Run by the writer, the copy finishes (nothing is appended meanwhile),
    /// so the next commit starts the WAL over (and `journal_size_limit` cuts the file back).
    ///
    /// Readers holding an old snapshot (a long listing) keep their part of the WAL: past
    /// [`WAL_FRAMES_HIGH`] frames, at most once per [`RESTART_EVERY`], the writer waits up to
    /// [`RESTART_WAIT`] for them (a RESTART checkpoint) rather than let the WAL grow.
    fn checkpoint(&self, last_restart: &mut Instant) -> anyhow::Result<()> {
        let frames = |mode: &str| {
            self.conn
                .query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
                    Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
                })
                .with_context(|| format!("{mode} checkpoint"))
        };
        let (log, _) = frames("PASSIVE")?;
        if log > WAL_FRAMES_HIGH && last_restart.elapsed() >= RESTART_EVERY {
            *last_restart = Instant::now();
            self.conn.busy_timeout(RESTART_WAIT)?;
            let restarted = frames("RESTART");
            self.conn.busy_timeout(BUSY_TIMEOUT)?;
            let (log, copied) = restarted?;
            tracing::debug!(
                log,
                copied,
                "WAL over {WAL_FRAMES_HIGH} frames: restart checkpoint"
            );
        }
        Ok(())
    }

    /// SQLite's own consistency check of the whole file.
    pub fn integrity_check(&self) -> anyhow::Result<()> {
        let result: String = self
            .conn
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))?;
        if result != "ok" {
            bail!("{}: integrity check: {result}", self.path.display());
        }
        Ok(())
    }
}

/// A report waiting for its transaction.
struct Report {
    mac: String,
    report: String,
    admitted_by: Option<String>,
    reply: oneshot::Sender<Result<Ack, StoreError>>,
}

/// What the writer thread is asked to do.
enum Job {
    /// Grouped with the reports waiting at the same moment into one transaction.
    Report(Report),
    /// An operator's change, in a transaction of its own.
    Change(Change, oneshot::Sender<Result<Changed, StoreError>>),
}

/// The single writer: a thread that owns the read-write connection and commits reports in
/// groups. Cloning shares the same thread; it stops when every clone is dropped.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

/// Largest group committed at once (bounds one transaction's latency).
const MAX_BATCH: usize = 1024;

impl Writer {
    /// Starts the writer thread on `store`, and a checkpointer beside it. The handle joins
    /// them: after the last `Writer` is dropped, the writer commits what it has, and the
    /// database is checkpointed and closed.
    ///
    /// Checkpoints (copying the WAL back into the database file, and its fsync) never run
    /// inside a commit, so they do not stall the POSTs waiting for that commit: the
    /// checkpointer's connection copies every second, and the writer itself, after every
    /// [`CHECKPOINT_AFTER_REPORTS`] reports or [`CHECKPOINT_AFTER_COMMITS`] commits, between
    /// two batches (see [`Store::checkpoint`]),
    /// which is what keeps the WAL bounded under sustained load.
    pub fn spawn(mut store: Store) -> anyhow::Result<(Writer, thread::JoinHandle<()>)> {
        store
            .conn
            .pragma_update(None, "wal_autocheckpoint", 0)
            .context("configuring checkpoints")?;
        let checkpointer = checkpointer(&store.path)?;
        let (jobs, mut queue) = mpsc::channel::<Job>(8 * MAX_BATCH);
        let handle = thread::Builder::new()
            .name("caas-store".into())
            .spawn(move || {
                let mut batch: Vec<Report> = Vec::with_capacity(MAX_BATCH);
                let mut written = 0;
                let mut commits = 0;
                let mut last_restart = Instant::now();
                // A change that arrived while reports were being gathered: it runs after them.
                let mut change = None;
                while let Some(job) = queue.blocking_recv() {
                    match job {
                        Job::Change(what, reply) => {
                            let _ = reply.send(store.change_now(&what));
                            continue;
                        }
                        Job::Report(report) => batch.push(report),
                    }
                    while batch.len() < MAX_BATCH {
                        match queue.try_recv() {
                            Ok(Job::Report(report)) => batch.push(report),
                            Ok(Job::Change(what, reply)) => {
                                change = Some((what, reply));
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    let items: Vec<Upsert> = batch
                        .iter()
                        .map(|job| Upsert {
                            mac: &job.mac,
                            report: &job.report,
                            admitted_by: job.admitted_by.as_deref(),
                        })
                        .collect();
                    let items_len = items.len();
                    // Committed, and into the file the path names (the one the next start
                    // opens): only then is a report acknowledged.
                    let stored = store
                        .upsert_admitting(&items, SystemTime::now())
                        .map_err(|err| StoreError::Failed(crate::error::one_line(&err)))
                        .and_then(|acks| store.check_file().map(|()| acks));
                    match stored {
                        Ok(acks) => {
                            for (job, ack) in batch.drain(..).zip(acks) {
                                let _ = job.reply.send(Ok(ack));
                            }
                        }
                        Err(err) => {
                            tracing::error!("{err}");
                            for job in batch.drain(..) {
                                let _ = job.reply.send(Err(err.clone()));
                            }
                        }
                    }
                    if let Some((what, reply)) = change.take() {
                        let _ = reply.send(store.change_now(&what));
                    }
                    // Between two batches, nothing is appended to the WAL while it is copied
                    // back: the checkpoint can finish, and the next commit starts the WAL over.
                    written += items_len;
                    commits += 1;
                    if written >= CHECKPOINT_AFTER_REPORTS || commits >= CHECKPOINT_AFTER_COMMITS {
                        written = 0;
                        commits = 0;
                        if let Err(err) = store.checkpoint(&mut last_restart) {
                            tracing::warn!("checkpointing the discovery store: {err:#}");
                        }
                    }
                }
                // Stop the checkpointer first, so that closing this connection (the last one)
                // checkpoints everything and removes the WAL.
                let (stop, thread) = checkpointer;
                drop(stop);
                let _ = thread.join();
                drop(store);
            })
            .context("starting the store writer thread")?;
        Ok((Writer { jobs }, handle))
    }

    /// Stores one report (admitted by the rule `admitted_by`, if one admits it); resolves once
    /// it is durable in the file the store's path names.
    pub async fn upsert(
        &self,
        mac: String,
        report: String,
        admitted_by: Option<String>,
    ) -> Result<Ack, StoreError> {
        let stopped = || StoreError::Failed("the store writer has stopped".into());
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Report(Report {
                mac,
                report,
                admitted_by,
                reply,
            }))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Applies an operator's change; resolves once it is durable (or refused).
    pub async fn change(&self, change: Change) -> Result<Changed, StoreError> {
        let stopped = || StoreError::Failed("the store writer has stopped".into());
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Change(change, reply))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// The writer checkpoints after this many reports, or this many commits (each commit appends
/// the pages it changed: a few for a lone report), whichever comes first: a few MiB of WAL.
const CHECKPOINT_AFTER_REPORTS: usize = 2000;
const CHECKPOINT_AFTER_COMMITS: usize = 256;
/// WAL frames (pages) past which the writer waits a little for readers to leave the WAL.
const WAL_FRAMES_HIGH: i64 = 16 * 1024;
/// How long the writer waits for them, and how often at most.
const RESTART_WAIT: Duration = Duration::from_millis(20);
const RESTART_EVERY: Duration = Duration::from_secs(1);

/// How often the checkpointer copies the WAL into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// A thread with its own connection that runs a PASSIVE checkpoint every second (never blocking
/// the writer); it stops when the sender is dropped.
fn checkpointer(path: &Path) -> anyhow::Result<(std_mpsc::Sender<()>, thread::JoinHandle<()>)> {
    let conn = Connection::open(path)
        .with_context(|| format!("opening {} for checkpoints", path.display()))?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    let (stop, stopped) = std_mpsc::channel::<()>();
    let thread = thread::Builder::new()
        .name("caas-checkpoint".into())
        .spawn(move || {
            while let Err(std_mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(CHECKPOINT_EVERY)
            {
                if let Err(err) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                    row.get::<_, i64>(0)
                }) {
                    tracing::warn!("checkpointing the discovery store: {err}");
                }
            }
        })
        .context("starting the checkpoint thread")?;
    Ok((stop, thread))
}

/// Read-only connections for the server's GETs, reused between requests.
pub struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Store>>,
}

/// Idle read connections kept open.
const MAX_IDLE_READERS: usize = 4;

impl Readers {
    pub fn new(path: &Path) -> Readers {
        Readers {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Opens a first connection now, so that a file that is not a store is refused here.
    pub fn open(path: &Path) -> anyhow::Result<Readers> {
        let readers = Readers::new(path);
        let first = Store::open_read_only(path)?;
        readers.idle.lock().expect("readers lock").push(first);
        Ok(readers)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on a read-only connection (blocking: call from a blocking thread).
    pub fn with<T>(&self, f: impl FnOnce(&Store) -> anyhow::Result<T>) -> anyhow::Result<T> {
        let reused = self.idle.lock().expect("readers lock").pop();
        let store = match reused {
            Some(store) => store,
            None => Store::open_read_only(&self.path)?,
        };
        let result = f(&store);
        let mut idle = self.idle.lock().expect("readers lock");
        if idle.len() < MAX_IDLE_READERS {
            idle.push(store);
        }
        result
    }
}

/// The schema of a store opened without migrating it must be this binary's; otherwise the
/// error says what to do about it.
fn check_schema(version: i64) -> anyhow::Result<()> {
    match version {
        SCHEMA_VERSION => Ok(()),
        1 => bail!(
            "it was written by an older caas (schema 1, before admission): start caas api (or \
             caas machines approve --db) on it once to migrate it"
        ),
        newer if newer > SCHEMA_VERSION => bail!(
            "it was written by a newer caas (schema {newer}, this one knows {SCHEMA_VERSION})"
        ),
        other => {
            bail!("not a caas discovery store (schema version {other}, expected {SCHEMA_VERSION})")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::admission::Selection;
    use serde_json::json;
    use std::time::Duration;

    fn report(mac: &str, hostname: &str) -> String {
        Reported::from_value(json!({
            "boot-info": {"mac": mac},
            "hostname": hostname,
            "interfaces": [{"name": "eth0", "mac": mac}]
        }))
        .unwrap()
        .to_json()
    }

    #[test]
    fn a_repost_replaces_the_report_and_counts_the_update() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("caas.db");
        let mut store = Store::open(&path).unwrap();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let t1 = t0 + Duration::from_secs(5);
        let a = "52:54:00:00:00:0a";
        let b = "52:54:00:00:00:0b";
        let acks = store
            .upsert_batch(&[(b, &report(b, "b1")), (a, &report(a, "a1"))], t0)
            .unwrap();
        assert_eq!(
            acks,
            [
                Ack {
                    total: 1,
                    update: false
                },
                Ack {
                    total: 2,
                    update: false
                }
            ]
        );
        let acks = store.upsert_batch(&[(b, &report(b, "b2"))], t1).unwrap();
        assert_eq!(
            acks,
            [Ack {
                total: 2,
                update: true
            }]
        );
        drop(store);

        let store = Store::open_read_only(&path).unwrap();
        let machines = store.machines().unwrap();
        // Same first-seen time: ordered by MAC.
        assert_eq!(
            machines.iter().map(|m| m.mac.as_str()).collect::<Vec<_>>(),
            [a, b]
        );
        assert_eq!(machines[1].report.hostname.as_deref(), Some("b2"));
        assert_eq!(machines[1].first_seen, Some(t0));
        assert_eq!(machines[1].last_seen, Some(t1));
        assert_eq!(machines[1].updates, 1);
        assert_eq!(machines[0].updates, 0);
        store.integrity_check().unwrap();

        // Reopened for writing, the count carries on.
        let mut store = Store::open(&path).unwrap();
        let c = "52:54:00:00:00:0c";
        assert_eq!(
            store.upsert_batch(&[(c, &report(c, "c"))], t1).unwrap(),
            [Ack {
                total: 3,
                update: false
            }]
        );
    }

    #[test]
    fn one_writer_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("caas.db");
        let first = Store::open(&path).unwrap();
        let second = Store::open(&path).err().unwrap();
        assert!(
            format!("{second:#}").contains("another process"),
            "{second:#}"
        );
        // Readers are welcome while it writes.
        assert_eq!(Store::open_read_only(&path).unwrap().count().unwrap(), 0);
        drop(first);
        Store::open(&path).unwrap();
    }

    #[test]
    fn no_other_path_to_the_file_lets_a_second_writer_in() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("caas.db");
        let first = Store::open(&path).unwrap();
        let symlink = dir.path().join("symlink.db");
        std::os::unix::fs::symlink(&path, &symlink).unwrap();
        let hard = dir.path().join("hard.db");
        std::fs::hard_link(&path, &hard).unwrap();
        let dotted = dir.path().join(".").join("caas.db");
        for other in [&symlink, &hard, &dotted] {
            let err = Store::open(other).err().unwrap();
            assert!(format!("{err:#}").contains("another process"), "{err:#}");
        }
        drop(first);
        Store::open(&hard).unwrap();
    }

    #[test]
    fn nothing_is_acknowledged_into_a_file_the_path_no_longer_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("caas.db");
        let (writer, handle) = Writer::spawn(Store::open(&path).unwrap()).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mac = |i: u32| format!("52:54:00:00:00:{i:02x}");
        let post = |i: u32| runtime.block_on(writer.upsert(mac(i), report(&mac(i), "h"), None));
        assert!(post(1).is_ok());
        // Moved away: the path names nothing.
        let aside = dir.path().join("aside.db");
        std::fs::rename(&path, &aside).unwrap();
        let err = post(2).unwrap_err();
        assert!(
            matches!(&err, StoreError::Gone(m) if m.contains("was deleted")),
            "{err:?}"
        );
        // Another file in its place.
        std::fs::write(&path, b"").unwrap();
        let err = post(3).unwrap_err();
        assert!(
            matches!(&err, StoreError::Gone(m) if m.contains("replaced")),
            "{err:?}"
        );
        // Back where it was: acknowledged again.
        std::fs::rename(&aside, &path).unwrap();
        assert!(post(4).is_ok());
        drop(writer);
        handle.join().unwrap();
    }

    #[test]
    fn the_wal_stays_bounded_under_sustained_reports() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("caas.db");
        let (writer, handle) = Writer::spawn(Store::open(&path).unwrap()).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        // 40,000 reports of about 1 KiB (40 MiB of rows) from 256 clients that never pause:
        // the writer is never idle, so only its own checkpoints can start the WAL over.
        let padding = "x".repeat(900);
        runtime.block_on(async {
            let tasks: Vec<_> = (0..256u32)
                .map(|client| {
                    let writer = writer.clone();
                    let padding = padding.clone();
                    tokio::spawn(async move {
                        for k in 0..(40_000 / 256) {
                            let n = k * 256 + client;
                            let mac = format!(
                                "52:54:00:{:02x}:{:02x}:{:02x}",
                                n >> 16,
                                (n >> 8) & 0xff,
                                n & 0xff
                            );
                            let json = report(&mac, &padding);
                            writer.upsert(mac, json, None).await.unwrap();
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        });
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        // The file only grows until a checkpoint starts the log over: its size is the peak.
        let wal_size = std::fs::metadata(&wal).unwrap().len();
        let db_size = std::fs::metadata(&path).unwrap().len();
        drop(writer);
        handle.join().unwrap();
        // Without the writer's checkpoints the log reaches ~100 MiB here; with them it peaks
        // at 9–16 MiB on an idle machine and somewhat higher on a loaded one, where batches
        // grow between checkpoints. The bound tells the two apart without depending on load.
        assert!(wal_size < 40 << 20, "the WAL reached {wal_size} bytes");
        assert!(db_size + wal_size > 30 << 20, "{db_size} + {wal_size}");
    }

    #[test]
    fn admission_is_kept_per_machine_and_forgotten_machines_come_back_pending() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("caas.db")).unwrap();
        let (a, b) = ("52:54:00:00:00:01", "52:54:00:00:00:02");
        let (ra, rb) = (report(a, "a"), report(b, "b"));
        let now = SystemTime::now();
        let item = |mac, report, admitted_by| Upsert {
            mac,
            report,
            admitted_by,
        };
        store
            .upsert_admitting(&[item(a, &ra, Some("rule all")), item(b, &rb, None)], now)
            .unwrap();
        let state = |store: &Store, mac| store.row(mac).unwrap().map(|row| row.admission);
        assert_eq!(state(&store, a), Some(State::Admitted));
        assert_eq!(state(&store, b), Some(State::Pending));
        // A repost neither un-admits nor changes who admitted.
        store.upsert_admitting(&[item(a, &ra, None)], now).unwrap();
        assert_eq!(
            store.row(a).unwrap().unwrap().admitted_by.as_deref(),
            Some("rule all")
        );

        let forget = Change::Forget {
            macs: vec![a.into(), "52:54:00:00:00:09".into()],
            by: "operator t (cli)".into(),
        };
        let changed = store.apply_change(&forget, now).unwrap();
        assert_eq!(changed.unknown, ["52:54:00:00:00:09"]);
        assert_eq!(
            state(&store, a),
            Some(State::Admitted),
            "nothing half-applied"
        );
        let forget = Change::Forget {
            macs: vec![a.into()],
            by: "operator t (cli)".into(),
        };
        assert_eq!(store.apply_change(&forget, now).unwrap().changed, [a]);
        assert_eq!(state(&store, a), None);
        assert_eq!(store.count().unwrap(), 1);
        store
            .upsert_admitting(&[item(a, &ra, Some("rule all"))], now)
            .unwrap();
        assert_eq!(
            state(&store, a),
            Some(State::Pending),
            "forgotten beats the rule"
        );

        let approve = Change::Approve {
            which: Selection::All,
            by: "operator t (cli)".into(),
        };
        let changed = store.apply_change(&approve, now).unwrap();
        assert_eq!(
            changed.changed,
            [a, b],
            "first seen (the same here), then by MAC"
        );
        let row = store.row(a).unwrap().unwrap();
        assert_eq!(row.admission().by.as_deref(), Some("operator t (cli)"));
        assert_eq!(row.admission().at, Some(from_millis(to_millis(now))));

        // A MAC named twice is one machine, not an unknown one.
        let twice = Change::Forget {
            macs: vec![b.into(), b.into()],
            by: "operator t (cli)".into(),
        };
        assert_eq!(store.apply_change(&twice, now).unwrap().changed, [b]);
    }

    #[test]
    fn a_schema_1_store_is_migrated_and_its_machines_stay_admitted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE machines (id INTEGER PRIMARY KEY, mac TEXT NOT NULL UNIQUE,
                     report TEXT NOT NULL, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL,
                     updates INTEGER NOT NULL DEFAULT 0);
                 PRAGMA user_version = 1;",
            )
            .unwrap();
            conn.execute(
                "INSERT INTO machines (mac, report, first_seen, last_seen) VALUES (?1, ?2, 1, 1)",
                params!["52:54:00:00:00:01", report("52:54:00:00:00:01", "old")],
            )
            .unwrap();
        }
        let err = Store::open_read_only(&path).err().unwrap().to_string();
        assert!(err.contains("schema 1"), "{err}");
        drop(Store::open(&path).unwrap());
        let store = Store::open_read_only(&path).unwrap();
        let row = store.row("52:54:00:00:00:01").unwrap().unwrap();
        assert_eq!(row.admission, State::Admitted);
        assert_eq!(row.admitted_by.as_deref(), Some(MIGRATED_BY));
        assert!(store.machines().unwrap()[0].is_admitted());
    }

    #[test]
    fn read_only_opens_refuse_what_is_not_a_store() {
        let dir = tempfile::tempdir().unwrap();
        let missing = Store::open_read_only(&dir.path().join("none.db"))
            .err()
            .unwrap();
        assert!(format!("{missing:#}").contains("no such file"));
        let other = dir.path().join("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        let err = Store::open_read_only(&other).err().unwrap();
        assert!(
            format!("{err:#}").contains("not a caas discovery store"),
            "{err:#}"
        );
        let text = dir.path().join("text.db");
        std::fs::write(&text, "not sqlite at all, just text that is long enough").unwrap();
        assert!(Store::open(&text).is_err());
    }

    #[test]
    fn the_writer_groups_concurrent_reports() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("caas.db");
        let (writer, handle) = Writer::spawn(Store::open(&path).unwrap()).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let acks = runtime.block_on(async {
            let tasks: Vec<_> = (0..300u32)
                .map(|i| {
                    let writer = writer.clone();
                    tokio::spawn(async move {
                        let mac = format!("52:54:00:00:{:02x}:{:02x}", i / 256, i % 256);
                        let json = report(&mac, "h");
                        writer.upsert(mac, json, None).await.unwrap()
                    })
                })
                .collect();
            let mut acks = Vec::new();
            for task in tasks {
                acks.push(task.await.unwrap());
            }
            acks
        });
        drop(writer);
        handle.join().unwrap();
        // The last connection closed after a final checkpoint: no WAL left behind.
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        assert!(!Path::new(&wal).exists());
        // Each insert saw a distinct count: no two were counted as the same machine.
        let mut totals: Vec<u64> = acks.iter().map(|a| a.total).collect();
        totals.sort_unstable();
        assert_eq!(totals, (1..=300).collect::<Vec<_>>());
        assert!(acks.iter().all(|a| !a.update));
        let readers = Readers::new(&path);
        assert_eq!(readers.with(|s| s.count()).unwrap(), 300);
        assert_eq!(readers.with(|s| s.machines()).unwrap().len(), 300);
    }
}
