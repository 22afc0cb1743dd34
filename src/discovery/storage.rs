//! The storage seam: what `caas api`, `caas schedule` and the listings need from a discovery
//! store, whatever engine keeps it.
//!
//! - [`StoreRead`]: count the machines, stream their rows from one consistent snapshot, read
//!   them as [`Machine`]s (what `schedule --db` and the listings use);
//! - [`Storage`]: a store `caas api` writes to: [`Storage::upsert`] resolves once the report is
//!   committed (engines group the reports that arrive together into one transaction),
//!   [`Storage::health`] says whether a report would be accepted now, [`Storage::close`] commits
//!   what is pending and lets go of the store.
//!
//! Engines: [`SqliteStorage`] (the single-file store of [`super::store`]),
//! [`PgStorage`] (PostgreSQL, several servers on one database) and the in-memory
//! [`super::memory::MemoryStorage`] the HTTP handlers are tested with. [`open`] and
//! [`open_read_only`] open the one `--db` names.
//!
//! Reads are blocking (the server runs them on blocking threads, where a streamed listing also
//! waits for its client); the upsert is a future, as every POST waits for a commit.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::thread;

use anyhow::Context as _;

use super::admission::{Change, Changed};
use super::location::Location;
use super::machine::{Machine, from_millis};
use super::postgres::{Access, PgStorage};
use super::report::Report;
use super::store::{Ack, DbFile, DecideRoles, Readers, Row, Store, StoreError, Writer};

/// A boxed future that can move between threads (what [`Storage::upsert`] returns).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Reading a discovery store.
pub trait StoreRead: Send + Sync {
    /// Where the store is, for messages (a path; never a password).
    fn describe(&self) -> String;

    /// The number of stored machines.
    fn count(&self) -> anyhow::Result<u64>;

    /// Calls `f` with every machine, first seen first (then by MAC), from one consistent
    /// snapshot; stops at the first error `f` returns. Blocking.
    fn for_each_row(&self, f: &mut dyn FnMut(Row) -> anyhow::Result<()>) -> anyhow::Result<()>;

    /// The machine whose boot MAC is `mac` (normalised), if the store has it.
    fn row(&self, mac: &str) -> anyhow::Result<Option<Row>> {
        let mut found = None;
        self.for_each_row(&mut |row| {
            if row.mac == mac {
                found = Some(row);
            }
            Ok(())
        })?;
        Ok(found)
    }

    /// Every machine, first seen first (then by MAC).
    fn machines(&self) -> anyhow::Result<Vec<Machine>> {
        let mut machines = Vec::new();
        self.for_each_row(&mut |row| {
            machines.push(machine_from_row(row)?);
            Ok(())
        })
        .with_context(|| format!("reading {}", self.describe()))?;
        Ok(machines)
    }
}

/// A discovery store `caas api` writes to.
pub trait Storage: StoreRead {
    /// Stores one report (normalised boot MAC, report JSON): inserted, or replacing the
    /// machine's report. A pending machine becomes admitted when `admitted_by` (the `--admit`
    /// rule that admits it) is given, unless an operator forgot it; an admitted one stays
    /// admitted. Resolves once the report is committed, never before.
    fn upsert(
        &self,
        mac: String,
        report: String,
        admitted_by: Option<String>,
    ) -> BoxFuture<'_, Result<Ack, StoreError>>;

    /// Applies an operator's change (approve, forget), all or nothing: when a MAC it names is
    /// unknown, nothing changes and [`Changed::unknown`] names it. Resolves once committed.
    fn change(&self, change: Change) -> BoxFuture<'_, Result<Changed, StoreError>>;

    /// Whether the store takes reports now; the machine count when it does. Blocking.
    fn health(&self) -> anyhow::Result<u64>;

    /// Commits what is pending and stops writing; later upserts fail. Blocking.
    fn close(&self) -> anyhow::Result<()>;
}

/// Below this much free space a commit can fail at any moment (the write-ahead log grows by
/// pages, a checkpoint needs room), so the store says it is unhealthy before reports fail.
const MIN_FREE_BYTES: u64 = 8 << 20;

/// An error when the file system holding the database `db` is (nearly) full.
fn check_free_space(db: &Path) -> anyhow::Result<()> {
    let dir = db
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let stat = rustix::fs::statvfs(dir)
        .with_context(|| format!("reading the free space of {}", dir.display()))?;
    let free = stat.f_bavail.saturating_mul(stat.f_frsize);
    if free < MIN_FREE_BYTES {
        anyhow::bail!(
            "the file system holding {} has {free} bytes free: new reports may not be stored",
            db.display()
        );
    }
    Ok(())
}

/// Where `caas schedule once --db` records the roles it gives, so that schedulers on several
/// provisioning servers agree.
pub trait RoleStore {
    /// Calls `decide` with the machines (first seen first) and the roles recorded so far, in
    /// one transaction that no other scheduler's interleaves with, then records the roles it
    /// returns and commits (`record` false, for a plan: records nothing).
    fn with_roles(&self, record: bool, decide: &mut DecideRoles<'_>) -> anyhow::Result<()>;
}

/// The store `--db` names, opened for `caas schedule once` (read-only when `record` is false).
pub fn open_roles(location: &Location, record: bool) -> anyhow::Result<Box<dyn RoleStore>> {
    Ok(match location {
        Location::Sqlite(path) => Box::new(Store::open_for_roles(path, record)?),
        Location::Postgres(url) => {
            let access = if record {
                Access::Schedule
            } else {
                Access::Read
            };
            Box::new(PgStorage::open(url, access)?)
        }
    })
}

impl RoleStore for Store {
    fn with_roles(&self, record: bool, decide: &mut DecideRoles<'_>) -> anyhow::Result<()> {
        Store::with_roles(self, record, decide)
    }
}

/// A stored row as the scheduler reads it.
pub fn machine_from_row(row: Row) -> anyhow::Result<Machine> {
    let report = Report::from_slice(row.report.as_bytes())
        .with_context(|| format!("the stored report of {} is unreadable", row.mac))?;
    let admission = Some(row.admission());
    Ok(Machine {
        admission,
        mac: row.mac,
        first_seen: Some(from_millis(row.first_seen)),
        last_seen: Some(from_millis(row.last_seen)),
        updates: row.updates.max(0) as u64,
        report,
    })
}

/// The SQLite store as `caas api` uses it: one group-committing [`Writer`] thread, pooled
/// read-only connections, and the lock on the database file.
pub struct SqliteStorage {
    path: PathBuf,
    writer: Mutex<Option<Writer>>,
    writer_thread: Mutex<Option<thread::JoinHandle<()>>>,
    readers: Readers,
    /// Declared last: dropped after every connection of this process to the file (see
    /// [`DbFile`]).
    db_file: Option<Arc<DbFile>>,
}

impl SqliteStorage {
    /// Opens (creating if needed) the store for writing; refused while another process writes
    /// to it.
    pub fn open(path: &Path) -> anyhow::Result<SqliteStorage> {
        let store = Store::open(path)?;
        let db_file = store.db_file();
        let (writer, writer_thread) = Writer::spawn(store)?;
        Ok(SqliteStorage {
            path: path.to_owned(),
            writer: Mutex::new(Some(writer)),
            writer_thread: Mutex::new(Some(writer_thread)),
            readers: Readers::new(path),
            db_file,
        })
    }
}

impl StoreRead for SqliteStorage {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn count(&self) -> anyhow::Result<u64> {
        self.readers.count()
    }

    fn for_each_row(&self, f: &mut dyn FnMut(Row) -> anyhow::Result<()>) -> anyhow::Result<()> {
        self.readers.for_each_row(f)
    }

    fn row(&self, mac: &str) -> anyhow::Result<Option<Row>> {
        self.readers.row(mac)
    }
}

impl Storage for SqliteStorage {
    fn upsert(
        &self,
        mac: String,
        report: String,
        admitted_by: Option<String>,
    ) -> BoxFuture<'_, Result<Ack, StoreError>> {
        let writer = self.writer.lock().expect("writer lock").clone();
        Box::pin(async move {
            match writer {
                Some(writer) => writer.upsert(mac, report, admitted_by).await,
                None => Err(StoreError::Failed("the store writer has stopped".into())),
            }
        })
    }

    fn change(&self, change: Change) -> BoxFuture<'_, Result<Changed, StoreError>> {
        let writer = self.writer.lock().expect("writer lock").clone();
        Box::pin(async move {
            match writer {
                Some(writer) => writer.change(change).await,
                None => Err(StoreError::Failed("the store writer has stopped".into())),
            }
        })
    }

    fn health(&self) -> anyhow::Result<u64> {
        if let Some(file) = &self.db_file {
            file.check()?;
        }
        check_free_space(&self.path)?;
        self.readers.count()
    }

    fn close(&self) -> anyhow::Result<()> {
        // The last Writer gone, the thread commits what it holds and closes the database.
        drop(self.writer.lock().expect("writer lock").take());
        let thread = self.writer_thread.lock().expect("writer lock").take();
        match thread.map(thread::JoinHandle::join) {
            Some(Err(_)) => anyhow::bail!("the store writer thread panicked"),
            _ => Ok(()),
        }
    }
}

/// A SQLite store opened read-only: what `caas schedule --db FILE` reads (safe while `caas
/// api` writes to it).
pub fn open_sqlite_read_only(path: &Path) -> anyhow::Result<Readers> {
    Readers::open(path)
}

/// The store `--db` names, opened for `caas api` (created or migrated if needed).
pub fn open(location: &Location) -> anyhow::Result<Arc<dyn Storage>> {
    Ok(match location {
        Location::Sqlite(path) => Arc::new(SqliteStorage::open(path)?),
        Location::Postgres(url) => Arc::new(PgStorage::open(url, Access::Write)?),
    })
}

/// The store `--db` names, opened for reading (`caas schedule --db`; safe while `caas api`
/// writes to it).
pub fn open_read_only(location: &Location) -> anyhow::Result<Box<dyn StoreRead>> {
    Ok(match location {
        Location::Sqlite(path) => Box::new(open_sqlite_read_only(path)?),
        Location::Postgres(url) => Box::new(PgStorage::open(url, Access::Read)?),
    })
}

impl StoreRead for Readers {
    fn describe(&self) -> String {
        self.path().display().to_string()
    }

    fn count(&self) -> anyhow::Result<u64> {
        self.with(|store| store.count())
    }

    fn for_each_row(&self, f: &mut dyn FnMut(Row) -> anyhow::Result<()>) -> anyhow::Result<()> {
        self.with(|store| store.for_each_row(f))
    }

    fn row(&self, mac: &str) -> anyhow::Result<Option<Row>> {
        self.with(|store| store.row(mac))
    }
}
