//! The discovery store in PostgreSQL: several `caas api` (and `caas schedule`) on one database.
//!
//! ```sql
//! caas_schema(id INT PRIMARY KEY, version INT)          -- one row: the schema version
//! caas_machines(mac TEXT PRIMARY KEY, report TEXT, first_seen BIGINT, last_seen BIGINT,
//!               updates BIGINT)                          -- as in the SQLite store
//! caas_machine_count(id INT PRIMARY KEY, n BIGINT)       -- one row: the machine count
//! ```
//!
//! Writes: each process groups the POSTs waiting at the same moment into one transaction
//! (group commit, as the SQLite writer does), and answers them once it has committed. A repost
//! is an `INSERT … ON CONFLICT (mac) DO UPDATE`, atomic whichever instance stores it. Within a
//! transaction the machines are written in MAC order and the count row last, so that two
//! instances' transactions lock rows in the same order and never deadlock; the count row
//! gives every new machine its own `total_elt`.
//!
//! The database down: connections fail, the POSTs of the batch get
//! [`StoreError::Unavailable`] (503), and the pool connects anew on the next request.
//!
//! Schema: created and migrated on first use, in one transaction that holds the schema row
//! (`SELECT … FOR UPDATE`), so that instances starting together migrate once; a database whose
//! schema is newer than this caas knows is refused.
//!
//! Portability: the SQL is what PostgreSQL and CockroachDB both run: no `SERIAL`, no
//! advisory locks, no PL/pgSQL; `ON CONFLICT (column)`, `RETURNING`, `FOR UPDATE`. A
//! transaction that fails with a serialization failure (CockroachDB's way of resolving
//! conflicts) or a deadlock is retried.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures_util::TryStreamExt as _;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::error::SqlState;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::admission::{Change, Changed, Selection, State};
use super::location::redact;
use super::machine::to_millis;
use super::pg_tls::{self, TlsMode};
use super::storage::{BoxFuture, RoleStore, Storage, StoreRead, machine_from_row};
use super::store::{Ack, DecideRoles, Row, StoreError, StoredRole, Upsert};

/// The schema version this caas writes.
pub const SCHEMA_VERSION: i32 = 3;

/// Migration `n` (1-based) takes the schema from version `n - 1` to `n`.
const MIGRATIONS: [&[&str]; 3] = [
    &[
        "CREATE TABLE IF NOT EXISTS caas_machines (
        mac TEXT PRIMARY KEY,
        report TEXT NOT NULL,
        first_seen BIGINT NOT NULL,
        last_seen BIGINT NOT NULL,
        updates BIGINT NOT NULL DEFAULT 0
    )",
        "CREATE INDEX IF NOT EXISTS caas_machines_by_first_seen ON caas_machines (first_seen, mac)",
        "CREATE TABLE IF NOT EXISTS caas_machine_count (id INT PRIMARY KEY, n BIGINT NOT NULL)",
        "INSERT INTO caas_machine_count (id, n) SELECT 1, count(*) FROM caas_machines
        ON CONFLICT (id) DO NOTHING",
    ],
    &[
        // The roles `caas schedule` gives: a machine in one role at most, a role held by one
        // machine at most, whatever happens.
        "CREATE TABLE IF NOT EXISTS caas_roles (
        role TEXT NOT NULL,
        idx INT NOT NULL,
        mac TEXT NOT NULL UNIQUE,
        ipv4 TEXT NOT NULL,
        PRIMARY KEY (role, idx)
    )",
        // The row schedulers lock (see `roles_transaction`).
        "CREATE TABLE IF NOT EXISTS caas_schedule_lock (id INT PRIMARY KEY)",
        "INSERT INTO caas_schedule_lock (id) VALUES (1) ON CONFLICT (id) DO NOTHING",
    ],
    &[
        // Admission. The machines already stored could get a role: they are admitted, by the
        // migration (added with that default, which new rows never use: the upsert sets them).
        "ALTER TABLE caas_machines ADD COLUMN IF NOT EXISTS admission TEXT NOT NULL
            DEFAULT 'admitted' CHECK (admission IN ('pending', 'admitted'))",
        "ALTER TABLE caas_machines ADD COLUMN IF NOT EXISTS admitted_by TEXT
            DEFAULT 'PostgreSQL schema 2 (before admission)'",
        "ALTER TABLE caas_machines ADD COLUMN IF NOT EXISTS admitted_at BIGINT",
        "ALTER TABLE caas_machines ALTER COLUMN admission SET DEFAULT 'pending'",
        "ALTER TABLE caas_machines ALTER COLUMN admitted_by DROP DEFAULT",
        "CREATE TABLE IF NOT EXISTS caas_forgotten (
            mac TEXT PRIMARY KEY,
            forgotten_at BIGINT NOT NULL,
            forgotten_by TEXT NOT NULL
        )",
    ],
];

/// `$4`: the `--admit` rule that admits the machine, if one does. A new machine is admitted
/// by it unless an operator forgot the machine; a pending one becomes admitted the same way;
/// an admitted one stays admitted.
const UPSERT: &str = "INSERT INTO caas_machines (mac, report, first_seen, last_seen, updates,
        admission, admitted_by, admitted_at)
    SELECT $1::TEXT, $2::TEXT, $3::BIGINT, $3::BIGINT, 0,
        CASE WHEN a.admit THEN 'admitted' ELSE 'pending' END,
        CASE WHEN a.admit THEN $4::TEXT END,
        CASE WHEN a.admit THEN $3::BIGINT END
    FROM (SELECT ($4::TEXT IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM caas_forgotten f WHERE f.mac = $1)) AS admit) AS a
    ON CONFLICT (mac) DO UPDATE SET report = excluded.report, last_seen = excluded.last_seen,
        updates = caas_machines.updates + 1,
        admitted_by = CASE WHEN caas_machines.admission = 'pending'
            THEN excluded.admitted_by ELSE caas_machines.admitted_by END,
        admitted_at = CASE WHEN caas_machines.admission = 'pending'
            THEN excluded.admitted_at ELSE caas_machines.admitted_at END,
        admission = CASE WHEN caas_machines.admission = 'pending'
            THEN excluded.admission ELSE caas_machines.admission END
    RETURNING updates";
const ADD_TO_COUNT: &str = "UPDATE caas_machine_count SET n = n + $1 WHERE id = 1 RETURNING n";
const ROWS: &str = "SELECT mac, report, first_seen, last_seen, updates, admission, admitted_by,
        admitted_at FROM caas_machines ORDER BY first_seen, mac";
const ROW: &str = "SELECT mac, report, first_seen, last_seen, updates, admission, admitted_by,
        admitted_at FROM caas_machines WHERE mac = $1";
const COUNT: &str = "SELECT n FROM caas_machine_count WHERE id = 1";

/// Largest group committed at once (bounds one transaction's latency).
const MAX_BATCH: usize = 1024;
/// Connections per process: the writer's, and readers (listings, health checks, schedule).
const POOL_SIZE: usize = 8;
/// How long a request waits for a connection, or for one to be made.
const POOL_WAIT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Tries of a transaction that lost a conflict (serialization failure, deadlock).
const TRIES: usize = 5;

/// A report waiting for its transaction.
struct Job {
    mac: String,
    report: String,
    admitted_by: Option<String>,
    reply: oneshot::Sender<Result<Ack, StoreError>>,
}

/// A stored row's columns, in [`ROWS`]' order.
fn read_row(row: &tokio_postgres::Row) -> Result<Row, tokio_postgres::Error> {
    let admission: String = row.try_get(5)?;
    Ok(Row {
        mac: row.try_get(0)?,
        report: row.try_get(1)?,
        first_seen: row.try_get(2)?,
        last_seen: row.try_get(3)?,
        updates: row.try_get(4)?,
        // The column's CHECK constraint allows nothing else.
        admission: State::from_name(&admission).unwrap_or(State::Pending),
        admitted_by: row.try_get(6)?,
        admitted_at: row.try_get(7)?,
    })
}

/// A PostgreSQL discovery store: a connection pool and, for writers, the group-commit task.
/// It runs its own small async runtime, so that the same store serves `caas api` (from its
/// handlers) and `caas schedule` (from plain code).
pub struct PgStorage {
    describe: String,
    pool: Pool,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    writer_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Declared last: dropped after the pool and the tasks that use it.
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    handle: tokio::runtime::Handle,
}

/// How a store is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `caas api`: schema created or migrated, the group-commit writer started.
    Write,
    /// Readers (`schedule --db --plan`): the schema must be there already, at this caas's
    /// version.
    Read,
    /// `caas schedule once`: schema created or migrated, no writer.
    Schedule,
}

impl PgStorage {
    /// Connects to `url`, checks (or, writing, creates and migrates) the schema.
    pub fn open(url: &str, access: Access) -> anyhow::Result<PgStorage> {
        let describe = redact(url);
        let context = || format!("opening the discovery store {describe}");
        let pool = pool(url).with_context(context)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("caas-pg")
            .enable_all()
            .build()
            .context("starting the database runtime")?;
        let handle = runtime.handle().clone();
        {
            let pool = pool.clone();
            runtime
                .block_on(async move {
                    let mut client = pool.get().await.map_err(anyhow::Error::from)?;
                    match access {
                        Access::Write | Access::Schedule => migrate(&mut client).await,
                        Access::Read => check_schema(&client).await,
                    }
                })
                .with_context(context)?;
        }
        let (jobs, writer_task) = match access {
            Access::Write => {
                let (jobs, queue) = mpsc::channel::<Job>(8 * MAX_BATCH);
                let task = runtime.spawn(write_batches(pool.clone(), queue));
                (Some(jobs), Some(task))
            }
            Access::Read | Access::Schedule => (None, None),
        };
        Ok(PgStorage {
            describe,
            pool,
            jobs: Mutex::new(jobs),
            writer_task: Mutex::new(writer_task),
            runtime: Mutex::new(Some(runtime)),
            handle,
        })
    }

    /// Runs `future` on the store's runtime and waits for it (blocking: never call from async
    /// code).
    fn run<T: Send + 'static>(
        &self,
        future: impl Future<Output = T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let (done, result) = std::sync::mpsc::channel();
        self.handle.spawn(async move {
            let _ = done.send(future.await);
        });
        result
            .recv()
            .map_err(|_| anyhow::anyhow!("the database runtime has stopped"))
    }

    /// The schema version recorded in the database (tests set it to check refusals).
    pub fn set_schema_version_for_tests(&self, version: i32) -> anyhow::Result<()> {
        let pool = self.pool.clone();
        self.run(async move {
            let client = pool.get().await?;
            client
                .execute(
                    "UPDATE caas_schema SET version = $1 WHERE id = 1",
                    &[&version],
                )
                .await?;
            anyhow::Ok(())
        })?
    }
}

/// The connection pool for `url` (no connection made yet).
fn pool(url: &str) -> anyhow::Result<Pool> {
    let (plain_url, tls) = pg_tls::split_url(url)?;
    let mut config: tokio_postgres::Config = plain_url
        .parse()
        .map_err(|err| anyhow::anyhow!("not a PostgreSQL URL caas can use: {err}"))?;
    config.ssl_mode(match tls.mode {
        TlsMode::Off => tokio_postgres::config::SslMode::Disable,
        TlsMode::VerifyChain | TlsMode::VerifyFull => tokio_postgres::config::SslMode::Require,
    });
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("caas");
    }
    let connector = MakeRustlsConnect::new(pg_tls::client_config(&tls)?);
    let manager = Manager::from_config(
        config,
        connector,
        ManagerConfig {
            // A connection whose server went away is closed: checking that costs nothing. A
            // connection that broke unnoticed fails one batch (503), and is dropped then.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(POOL_SIZE)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(POOL_WAIT))
        .create_timeout(Some(POOL_WAIT))
        .recycle_timeout(Some(POOL_WAIT))
        .build()
        .context("setting up the connection pool")
}

/// Creates the schema or brings it to [`SCHEMA_VERSION`], once whoever else starts at the same
/// time; refuses a newer schema.
async fn migrate(client: &mut deadpool_postgres::Client) -> anyhow::Result<()> {
    // Two processes creating the table at once: one of them may fail on the catalog's unique
    // index; the table is there then.
    for attempt in 0..TRIES {
        match client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS caas_schema (id INT PRIMARY KEY, version INT NOT NULL)",
            )
            .await
        {
            Ok(()) => break,
            Err(err) if attempt + 1 < TRIES && is_conflict_or_duplicate(&err) => continue,
            Err(err) => return Err(err).context("creating the schema table"),
        }
    }
    for attempt in 0..TRIES {
        match migrate_once(client).await {
            Ok(()) => return Ok(()),
            Err(MigrateError::Db(err)) if attempt + 1 < TRIES && is_conflict_or_duplicate(&err) => {
                continue;
            }
            Err(MigrateError::Db(err)) => return Err(err).context("migrating the schema"),
            Err(MigrateError::Other(err)) => return Err(err),
        }
    }
    unreachable!("the last try returns")
}

enum MigrateError {
    Db(tokio_postgres::Error),
    Other(anyhow::Error),
}

impl From<tokio_postgres::Error> for MigrateError {
    fn from(err: tokio_postgres::Error) -> Self {
        MigrateError::Db(err)
    }
}

async fn migrate_once(client: &mut deadpool_postgres::Client) -> Result<(), MigrateError> {
    let tx = client.transaction().await?;
    tx.execute(
        "INSERT INTO caas_schema (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING",
        &[],
    )
    .await?;
    // Held until the commit: a second process waits here, then finds the schema migrated.
    let version: i32 = tx
        .query_one(
            "SELECT version FROM caas_schema WHERE id = 1 FOR UPDATE",
            &[],
        )
        .await?
        .get(0);
    if version > SCHEMA_VERSION {
        return Err(MigrateError::Other(newer_schema(version)));
    }
    for (done, steps) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        for step in *steps {
            tx.batch_execute(step).await?;
        }
        tracing::info!("discovery store schema migrated to version {}", done + 1);
    }
    tx.execute(
        "UPDATE caas_schema SET version = $1 WHERE id = 1",
        &[&SCHEMA_VERSION],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

fn newer_schema(version: i32) -> anyhow::Error {
    anyhow::anyhow!(
        "it was written by a newer caas (schema {version}, this one knows {SCHEMA_VERSION})"
    )
}

/// A reader's check: the schema is there, at this caas's version.
async fn check_schema(client: &deadpool_postgres::Client) -> anyhow::Result<()> {
    let row = client
        .query_opt("SELECT version FROM caas_schema WHERE id = 1", &[])
        .await;
    let version: i32 = match row {
        Ok(Some(row)) => row.get(0),
        Ok(None) => bail!("not a caas discovery store (no schema version)"),
        Err(err) if err.code() == Some(&SqlState::UNDEFINED_TABLE) => {
            bail!("no caas discovery store in this database yet (caas api creates it)")
        }
        Err(err) => return Err(err).context("reading the schema version"),
    };
    if version > SCHEMA_VERSION {
        return Err(newer_schema(version));
    }
    if version < SCHEMA_VERSION {
        bail!(
            "the store has schema {version}, this caas needs {SCHEMA_VERSION}: start this \
             caas's `caas api` on it once to migrate it"
        );
    }
    Ok(())
}

/// Lost a conflict with another transaction (worth trying again), or created what another
/// process created at the same moment.
fn is_conflict_or_duplicate(err: &tokio_postgres::Error) -> bool {
    matches!(
        err.code(),
        Some(code) if *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
            || *code == SqlState::UNIQUE_VIOLATION
            || *code == SqlState::DUPLICATE_TABLE
            || *code == SqlState::DUPLICATE_OBJECT
    )
}

/// Lost a conflict with another transaction: the transaction may simply run again.
fn is_conflict(err: &tokio_postgres::Error) -> bool {
    matches!(
        err.code(),
        Some(code) if *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// What a failed write means for the POSTs waiting on it: the database unreachable, shutting
/// down or out of connections is 503 (try again: it will work once it is back); anything else
/// is 500.
fn store_error(err: &tokio_postgres::Error) -> StoreError {
    let message = format!("the database: {}", one_line_pg(err));
    match err.code() {
        None => StoreError::Unavailable(message),
        Some(code) => {
            let class = &code.code()[..2];
            if matches!(class, "08" | "40" | "53" | "57") {
                StoreError::Unavailable(message)
            } else {
                StoreError::Failed(message)
            }
        }
    }
}

fn one_line_pg(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let mut text = err.to_string();
            let mut source = std::error::Error::source(err);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            text
        }
    }
}

fn pool_error(err: &deadpool_postgres::PoolError) -> StoreError {
    match err {
        deadpool_postgres::PoolError::Backend(err) => store_error(err),
        other => StoreError::Unavailable(format!("the database: {other}")),
    }
}

/// The group-commit loop: takes the reports waiting, commits them in one transaction, answers
/// each. Ends when every sender is gone, after the last batch.
async fn write_batches(pool: Pool, mut queue: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let items: Vec<Upsert> = batch
            .iter()
            .map(|job: &Job| Upsert {
                mac: &job.mac,
                report: &job.report,
                admitted_by: job.admitted_by.as_deref(),
            })
            .collect();
        let stored = upsert_batch(&pool, &items, SystemTime::now()).await;
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
    }
}

/// Stores reports (normalised boot MAC, report JSON) in one transaction, tried again when it
/// loses a conflict. One [`Ack`] per item, in order. All or nothing.
pub async fn upsert_batch(
    pool: &Pool,
    items: &[Upsert<'_>],
    now: SystemTime,
) -> Result<Vec<Ack>, StoreError> {
    let now = to_millis(now);
    // MAC order (the same MAC twice: in arrival order): every transaction locks rows in the
    // same order.
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| (items[i].mac, i));
    let mut client = pool.get().await.map_err(|err| pool_error(&err))?;
    let mut tries = 0;
    let mut reconnected = false;
    loop {
        tries += 1;
        match upsert_transaction(&mut client, items, &order, now).await {
            Ok(acks) => return Ok(acks),
            Err(err) if tries < TRIES && is_conflict(&err) => continue,
            // A pooled connection the server dropped (it restarted): once, on a new one.
            Err(err) if !reconnected && is_lost_connection(&err) => {
                reconnected = true;
                client = reconnect(pool, client).await?;
            }
            Err(err) => return Err(store_error(&err)),
        }
    }
}

/// The connection broke (closed, reset, or the server shutting down): nothing was committed,
/// and a new connection may work.
fn is_lost_connection(err: &tokio_postgres::Error) -> bool {
    err.is_closed()
        || match err.code() {
            None => true,
            Some(code) => code.code().starts_with("08") || *code == SqlState::ADMIN_SHUTDOWN,
        }
}

/// Drops a broken connection from the pool and takes another.
async fn reconnect(
    pool: &Pool,
    broken: deadpool_postgres::Client,
) -> Result<deadpool_postgres::Client, StoreError> {
    drop(deadpool_postgres::Object::take(broken));
    pool.get().await.map_err(|err| pool_error(&err))
}

/// Runs `query` on a pooled connection; when that connection turns out broken, once more on a
/// new one.
async fn with_client<T, F>(pool: &Pool, query: F) -> anyhow::Result<T>
where
    F: AsyncFn(&deadpool_postgres::Client) -> Result<T, tokio_postgres::Error>,
{
    let client = pool.get().await?;
    match query(&client).await {
        Err(err) if is_lost_connection(&err) => {
            let client = reconnect(pool, client).await?;
            Ok(query(&client).await?)
        }
        other => Ok(other?),
    }
}

async fn upsert_transaction(
    client: &mut deadpool_postgres::Client,
    items: &[Upsert<'_>],
    order: &[usize],
    now: i64,
) -> Result<Vec<Ack>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let upsert = tx.prepare_cached(UPSERT).await?;
    // Sent one after the other without waiting (pipelined), run in this order.
    let (tx_ref, upsert_ref, now_ref) = (&tx, &upsert, &now);
    let queries = order.iter().map(|&i| {
        let Upsert {
            mac,
            report,
            admitted_by,
        } = &items[i];
        async move {
            tx_ref
                .query_one(upsert_ref, &[mac, report, now_ref, admitted_by])
                .await
        }
    });
    let rows = futures_util::future::try_join_all(queries).await?;
    let mut updated = vec![false; items.len()];
    for (&i, row) in order.iter().zip(&rows) {
        updated[i] = row.get::<_, i64>(0) > 0;
    }
    let inserted = updated.iter().filter(|update| !**update).count() as i64;
    let total: i64 = tx.query_one(ADD_TO_COUNT, &[&inserted]).await?.get(0);
    tx.commit().await?;
    // The count before this batch, then one more for each new machine, in arrival order.
    let mut running = (total - inserted).max(0) as u64;
    Ok(updated
        .into_iter()
        .map(|update| {
            if !update {
                running += 1;
            }
            Ack {
                total: running,
                update,
            }
        })
        .collect())
}

/// Schedulers take this lock first: a transaction-scoped advisory lock, in the form both
/// PostgreSQL and CockroachDB run (CockroachDB has no `pg_advisory_xact_lock`). A second
/// scheduler waits here until the first has committed, then reads the roles it recorded; it
/// never decides from a state another scheduler is changing. (SERIALIZABLE would also prevent
/// the interleaving, by aborting one of two overlapping schedulers and making it start over;
/// the lock makes it wait instead, which for a rare, short transaction is simpler and never
/// fails.) The unique keys of `caas_roles` hold even if something bypassed the lock.
const SCHEDULE_LOCK: &str = "SELECT id FROM caas_schedule_lock WHERE id = 1 FOR UPDATE";
const RECORDED_ROLES: &str = "SELECT role, idx, mac, ipv4 FROM caas_roles ORDER BY role, idx";
const RECORD_ROLE: &str = "INSERT INTO caas_roles (role, idx, mac, ipv4) VALUES ($1, $2, $3, $4)";
const RELEASE_ROLE: &str = "DELETE FROM caas_roles WHERE role = $1 AND idx = $2 AND mac = $3";

/// Applies an operator's change in one transaction (tried again when it loses a conflict);
/// nothing at all when a MAC it names is not in the store.
async fn apply_change(
    pool: &Pool,
    change: &Change,
    now: SystemTime,
) -> Result<Changed, StoreError> {
    let now = to_millis(now);
    let mut client = pool.get().await.map_err(|err| pool_error(&err))?;
    let mut tries = 0;
    loop {
        tries += 1;
        match change_transaction(&mut client, change, now).await {
            Ok(changed) => return Ok(changed),
            Err(err) if tries < TRIES && is_conflict(&err) => continue,
            Err(err) => return Err(store_error(&err)),
        }
    }
}

async fn change_transaction(
    client: &mut deadpool_postgres::Client,
    change: &Change,
    now: i64,
) -> Result<Changed, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let mut changed = Changed::default();
    let state_of = "SELECT admission FROM caas_machines WHERE mac = $1 FOR UPDATE";
    match change {
        Change::Approve { which, by } => {
            let macs: Vec<String> = match which {
                Selection::Macs(macs) => macs.clone(),
                Selection::All => tx
                    .query(
                        "SELECT mac FROM caas_machines WHERE admission = 'pending'
                         ORDER BY first_seen, mac",
                        &[],
                    )
                    .await?
                    .iter()
                    .map(|row| row.get(0))
                    .collect(),
            };
            for mac in macs {
                let state: Option<String> =
                    tx.query_opt(state_of, &[&mac]).await?.map(|r| r.get(0));
                match state.as_deref() {
                    None => changed.unknown.push(mac),
                    Some("admitted") => changed.unchanged.push(mac),
                    Some(_) => {
                        tx.execute(
                            "UPDATE caas_machines SET admission = 'admitted', admitted_by = $2,
                                 admitted_at = $3 WHERE mac = $1",
                            &[&mac, by, &now],
                        )
                        .await?;
                        tx.execute("DELETE FROM caas_forgotten WHERE mac = $1", &[&mac])
                            .await?;
                        changed.changed.push(mac);
                    }
                }
            }
        }
        Change::Forget { macs, by } => {
            for mac in macs {
                if tx.query_opt(state_of, &[mac]).await?.is_none() {
                    changed.unknown.push(mac.clone());
                    continue;
                }
                tx.execute("DELETE FROM caas_machines WHERE mac = $1", &[mac])
                    .await?;
                tx.execute(
                    "INSERT INTO caas_forgotten (mac, forgotten_at, forgotten_by)
                     VALUES ($1, $2, $3)
                     ON CONFLICT (mac) DO UPDATE SET forgotten_at = excluded.forgotten_at,
                         forgotten_by = excluded.forgotten_by",
                    &[mac, &now, by],
                )
                .await?;
                changed.changed.push(mac.clone());
            }
            if changed.unknown.is_empty() {
                // The count row last, as the upserts take it.
                let forgotten = -(changed.changed.len() as i64);
                tx.query_one(ADD_TO_COUNT, &[&forgotten]).await?;
            }
        }
    }
    if !changed.unknown.is_empty() {
        // Dropping the transaction rolls it back.
        changed.changed.clear();
        changed.unchanged.clear();
        return Ok(changed);
    }
    tx.commit().await?;
    Ok(changed)
}

impl RoleStore for PgStorage {
    fn with_roles(&self, record: bool, decide: &mut DecideRoles<'_>) -> anyhow::Result<()> {
        let pool = self.pool.clone();
        // Called from plain code (`caas schedule`), never from async code: blocking here is
        // fine, and `decide` need not move to another thread.
        self.handle.block_on(async move {
            let mut client = pool.get().await?;
            let mut tries = 0;
            loop {
                tries += 1;
                match roles_transaction(&mut client, record, decide).await {
                    Ok(()) => return Ok(()),
                    Err(MigrateError::Db(err)) if tries < TRIES && is_conflict(&err) => continue,
                    Err(MigrateError::Db(err)) => {
                        return Err(err)
                            .context(format!("recording the roles in {}", self.describe));
                    }
                    Err(MigrateError::Other(err)) => return Err(err),
                }
            }
        })
    }
}

async fn roles_transaction(
    client: &mut deadpool_postgres::Client,
    record: bool,
    decide: &mut DecideRoles<'_>,
) -> Result<(), MigrateError> {
    let tx = client.transaction().await?;
    if record {
        tx.query_one(SCHEDULE_LOCK, &[]).await?;
    }
    let recorded = tx
        .query(RECORDED_ROLES, &[])
        .await?
        .into_iter()
        .map(|row| StoredRole {
            role: row.get(0),
            index: i64::from(row.get::<_, i32>(1)),
            mac: row.get(2),
            ipv4: row.get(3),
        })
        .collect::<Vec<_>>();
    let mut machines = Vec::new();
    for row in tx.query(ROWS, &[]).await? {
        machines.push(machine_from_row(read_row(&row)?).map_err(MigrateError::Other)?);
    }
    let changes = decide(&machines, &recorded).map_err(MigrateError::Other)?;
    if !record {
        return Ok(());
    }
    let remove = tx.prepare(RELEASE_ROLE).await?;
    for role in &changes.remove {
        let index = i32::try_from(role.index).unwrap_or(i32::MAX);
        tx.execute(&remove, &[&role.role, &index, &role.mac])
            .await?;
    }
    let insert = tx.prepare(RECORD_ROLE).await?;
    for role in &changes.add {
        let index = i32::try_from(role.index).map_err(|_| {
            MigrateError::Other(anyhow::anyhow!("role index {} too large", role.index))
        })?;
        tx.execute(&insert, &[&role.role, &index, &role.mac, &role.ipv4])
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

impl StoreRead for PgStorage {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn row(&self, mac: &str) -> anyhow::Result<Option<Row>> {
        let pool = self.pool.clone();
        let mac = mac.to_owned();
        self.run(async move {
            let client = pool.get().await?;
            let row = client.query_opt(ROW, &[&mac]).await?;
            anyhow::Ok(row.map(|row| read_row(&row)).transpose()?)
        })?
    }

    fn count(&self) -> anyhow::Result<u64> {
        let pool = self.pool.clone();
        let n: i64 = self.run(async move {
            with_client(&pool, async |client| {
                Ok(client.query_one(COUNT, &[]).await?.get(0))
            })
            .await
        })??;
        Ok(n.max(0) as u64)
    }

    fn for_each_row(&self, f: &mut dyn FnMut(Row) -> anyhow::Result<()>) -> anyhow::Result<()> {
        // One statement: one snapshot. Rows come through a small channel, so that `f` (which
        // may wait for a slow HTTP client) runs here, outside the runtime, and a reader that
        // stops dropping the channel ends the query.
        let (rows, mut received) = mpsc::channel::<anyhow::Result<Row>>(256);
        let pool = self.pool.clone();
        self.handle.spawn(async move {
            let streamed = async {
                let client = pool.get().await?;
                let stream = client
                    .query_raw(ROWS, std::iter::empty::<i64>())
                    .await
                    .context("reading machines")?;
                let mut stream = std::pin::pin!(stream);
                while let Some(row) = stream.try_next().await.context("reading machines")? {
                    let row = read_row(&row)?;
                    if rows.send(Ok(row)).await.is_err() {
                        break;
                    }
                }
                anyhow::Ok(())
            }
            .await;
            if let Err(err) = streamed {
                let _ = rows.send(Err(err)).await;
            }
        });
        while let Some(row) = received.blocking_recv() {
            f(row?)?;
        }
        Ok(())
    }
}

impl Storage for PgStorage {
    fn upsert(
        &self,
        mac: String,
        report: String,
        admitted_by: Option<String>,
    ) -> BoxFuture<'_, Result<Ack, StoreError>> {
        let jobs = self.jobs.lock().expect("jobs lock").clone();
        Box::pin(async move {
            let stopped = || StoreError::Failed("the store writer has stopped".into());
            let jobs = jobs.ok_or_else(stopped)?;
            let (reply, answer) = oneshot::channel();
            jobs.send(Job {
                mac,
                report,
                admitted_by,
                reply,
            })
            .await
            .map_err(|_| stopped())?;
            answer.await.map_err(|_| stopped())?
        })
    }

    fn change(&self, change: Change) -> BoxFuture<'_, Result<Changed, StoreError>> {
        let pool = self.pool.clone();
        let handle = self.handle.clone();
        Box::pin(async move {
            // On the store's runtime, whoever awaits this.
            handle
                .spawn(async move { apply_change(&pool, &change, SystemTime::now()).await })
                .await
                .map_err(|_| StoreError::Failed("the change was interrupted".into()))?
        })
    }

    fn health(&self) -> anyhow::Result<u64> {
        self.count()
    }

    fn close(&self) -> anyhow::Result<()> {
        drop(self.jobs.lock().expect("jobs lock").take());
        let task = self.writer_task.lock().expect("writer lock").take();
        if let Some(task) = task {
            self.run(task)?
                .map_err(|_| anyhow::anyhow!("the store writer task panicked"))?;
        }
        self.pool.close();
        if let Some(runtime) = self.runtime.lock().expect("runtime lock").take() {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
        Ok(())
    }
}

impl Drop for PgStorage {
    fn drop(&mut self) {
        // Dropped from async code (a test's runtime), a runtime may not block.
        if let Some(runtime) = self.runtime.lock().expect("runtime lock").take() {
            runtime.shutdown_background();
        }
    }
}
