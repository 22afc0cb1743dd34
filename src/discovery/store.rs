//! The discovery store: one SQLite file, one row per machine keyed by its normalised boot MAC.
//!
//! ```sql
//! machines(mac TEXT UNIQUE, report TEXT, first_seen INTEGER, last_seen INTEGER, updates INTEGER)
//! ```
//! `report` is the JSON [`Report::to_json`](super::report::Report::to_json) wrote; times are
//! milliseconds since the Unix epoch; `updates` counts the reports after the first. A repost
//! replaces the report (the 2016 store kept the first one and still said `update: true`).
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

use super::machine::{Machine, to_millis};
#[cfg(test)]
use super::report::Report;
use super::storage::machine_from_row;

/// How long a connection waits for a lock another one holds.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The schema version this caas writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS machines (
    id INTEGER PRIMARY KEY,
    mac TEXT NOT NULL UNIQUE,
    report TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    updates INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS machines_by_first_seen ON machines (first_seen, mac);
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

/// What `caas schedule` decides inside the roles transaction: given the machines (first seen
/// first) and the recorded roles, the roles to add.
pub type DecideRoles<'a> =
    dyn FnMut(&[Machine], &[StoredRole]) -> anyhow::Result<Vec<StoredRole>> + 'a;

/// One stored machine as raw columns: what a streaming reader gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub mac: String,
    pub report: String,
    pub first_seen: i64,
    pub last_seen: i64,
    pub updates: i64,
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
        conn.execute_batch(SCHEMA).with_context(context)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .with_context(context)?;
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
        if version > SCHEMA_VERSION {
            bail!(
                "{}: it was written by a newer caas (schema {version}, this one knows {SCHEMA_VERSION})",
                context()
            );
        }
        if version != SCHEMA_VERSION {
            bail!(
                "{}: not a caas discovery store (schema version {version}, expected {SCHEMA_VERSION})",
                context()
            );
        }
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
        if version > SCHEMA_VERSION {
            bail!(
                "{}: it was written by a newer caas (schema {version}, this one knows {SCHEMA_VERSION})",
                context()
            );
        }
        if version != SCHEMA_VERSION {
            bail!(
                "{}: not a caas discovery store (schema version {version}, expected {SCHEMA_VERSION})",
                context()
            );
        }
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
        let new = decide(&machines, &recorded)?;
        if record {
            let mut insert = self.conn.prepare_cached(
                "INSERT INTO roles (role, idx, mac, ipv4) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for role in &new {
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

    /// Stores reports (normalised boot MAC, report JSON) in one transaction: inserted, or
    /// replacing the machine's report. Returns one [`Ack`] per item, in order. All or nothing.
    pub fn upsert_batch(
        &mut self,
        items: &[(&str, &str)],
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
                    "INSERT INTO machines (mac, report, first_seen, last_seen, updates)
                     VALUES (?1, ?2, ?3, ?3, 0)
                     ON CONFLICT (mac) DO UPDATE SET report = excluded.report,
                         last_seen = excluded.last_seen, updates = updates + 1
                     RETURNING updates",
                )
                .context("preparing the upsert")?;
            for (mac, report) in items {
                let updates: i64 = stmt
                    .query_row(params![mac, report, now], |row| row.get(0))
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
            .prepare_cached(
                "SELECT mac, report, first_seen, last_seen, updates FROM machines
                 ORDER BY first_seen, mac",
            )
            .context("reading machines")?;
        let mut rows = stmt.query([]).context("reading machines")?;
        while let Some(row) = rows.next().context("reading machines")? {
            f(Row {
                mac: row.get(0)?,
                report: row.get(1)?,
                first_seen: row.get(2)?,
                last_seen: row.get(3)?,
                updates: row.get(4)?,
            })?;
        }
        Ok(())
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
struct Job {
    mac: String,
    report: String,
    reply: oneshot::Sender<Result<Ack, StoreError>>,
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
                let mut batch = Vec::with_capacity(MAX_BATCH);
                let mut written = 0;
                let mut commits = 0;
                let mut last_restart = Instant::now();
                while let Some(job) = queue.blocking_recv() {
                    batch.push(job);
                    while batch.len() < MAX_BATCH {
                        match queue.try_recv() {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    let items: Vec<(&str, &str)> = batch
                        .iter()
                        .map(|job| (job.mac.as_str(), job.report.as_str()))
                        .collect();
                    let items_len = items.len();
                    // Committed, and into the file the path names (the one the next start
                    // opens): only then is a report acknowledged.
                    let stored = store
                        .upsert_batch(&items, SystemTime::now())
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

    /// Stores one report; resolves once it is durable in the file the store's path names.
    pub async fn upsert(&self, mac: String, report: String) -> Result<Ack, StoreError> {
        let stopped = || StoreError::Failed("the store writer has stopped".into());
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { mac, report, reply })
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn report(mac: &str, hostname: &str) -> String {
        Report::from_value(json!({
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
        let post = |i: u32| runtime.block_on(writer.upsert(mac(i), report(&mac(i), "h")));
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
                            writer.upsert(mac, json).await.unwrap();
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
                        writer.upsert(mac, json).await.unwrap()
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
