//! An in-memory [`Storage`]: the HTTP handlers' in-process tests run against it (no file, no
//! database), and it can be told to be down, as a database can be.
//!
//! It keeps the same rules as the real engines: one row per MAC, a repost replaces the report
//! and counts an update, rows listed first seen first, then by MAC.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use super::admission::{Change, Changed, State};
use super::machine::to_millis;
use super::storage::{BoxFuture, Storage, StoreRead};
use super::store::{Ack, Row, StoreError};

/// Machines kept in a map, lost when dropped.
#[derive(Default)]
pub struct MemoryStorage {
    rows: Mutex<BTreeMap<String, Row>>,
    /// The MACs an operator forgot (until approved again).
    forgotten: Mutex<BTreeSet<String>>,
    down: AtomicBool,
    closed: AtomicBool,
}

impl MemoryStorage {
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }

    /// While down, upserts fail as unavailable and the health check fails.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn available(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Failed("the store is closed".into()));
        }
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(
                "the in-memory store is down".into(),
            ));
        }
        Ok(())
    }

    fn upsert_now(
        &self,
        mac: String,
        report: String,
        admitted_by: Option<String>,
    ) -> Result<Ack, StoreError> {
        self.available()?;
        let now = to_millis(SystemTime::now());
        let forgotten = self
            .forgotten
            .lock()
            .expect("forgotten lock")
            .contains(&mac);
        let admitted_by = admitted_by.filter(|_| !forgotten);
        let mut rows = self.rows.lock().expect("rows lock");
        let update = match rows.get_mut(&mac) {
            Some(row) => {
                row.report = report;
                row.last_seen = now;
                row.updates += 1;
                if row.admission == State::Pending && admitted_by.is_some() {
                    row.admission = State::Admitted;
                    row.admitted_by = admitted_by;
                    row.admitted_at = Some(now);
                }
                true
            }
            None => {
                let row = Row {
                    mac: mac.clone(),
                    report,
                    first_seen: now,
                    last_seen: now,
                    updates: 0,
                    admission: if admitted_by.is_some() {
                        State::Admitted
                    } else {
                        State::Pending
                    },
                    admitted_at: admitted_by.as_ref().map(|_| now),
                    admitted_by,
                };
                rows.insert(mac, row);
                false
            }
        };
        Ok(Ack {
            total: rows.len() as u64,
            update,
        })
    }
}

impl MemoryStorage {
    fn change_now(&self, change: &Change) -> Result<Changed, StoreError> {
        self.available()?;
        let now = to_millis(SystemTime::now());
        let mut rows = self.rows.lock().expect("rows lock");
        let mut forgotten = self.forgotten.lock().expect("forgotten lock");
        let mut changed = Changed::default();
        let macs: Vec<String> = change.macs().unwrap_or_else(|| {
            let mut pending: Vec<&Row> = rows
                .values()
                .filter(|row| row.admission == State::Pending)
                .collect();
            pending.sort_by(|a, b| (a.first_seen, &a.mac).cmp(&(b.first_seen, &b.mac)));
            pending.into_iter().map(|row| row.mac.clone()).collect()
        });
        changed.unknown = macs
            .iter()
            .filter(|mac| !rows.contains_key(*mac))
            .cloned()
            .collect();
        if !changed.unknown.is_empty() {
            return Ok(changed);
        }
        for mac in macs {
            match change {
                Change::Approve { by, .. } => {
                    let row = rows.get_mut(&mac).expect("checked above");
                    if row.admission == State::Admitted {
                        changed.unchanged.push(mac);
                        continue;
                    }
                    row.admission = State::Admitted;
                    row.admitted_by = Some(by.clone());
                    row.admitted_at = Some(now);
                    forgotten.remove(&mac);
                }
                Change::Forget { .. } => {
                    rows.remove(&mac);
                    forgotten.insert(mac.clone());
                }
            }
            changed.changed.push(mac);
        }
        Ok(changed)
    }
}

impl StoreRead for MemoryStorage {
    fn describe(&self) -> String {
        "memory".into()
    }

    fn count(&self) -> anyhow::Result<u64> {
        self.available()?;
        Ok(self.rows.lock().expect("rows lock").len() as u64)
    }

    fn for_each_row(&self, f: &mut dyn FnMut(Row) -> anyhow::Result<()>) -> anyhow::Result<()> {
        self.available()?;
        // A snapshot, as the engines give: the lock is not held while `f` runs.
        let mut rows: Vec<Row> = self
            .rows
            .lock()
            .expect("rows lock")
            .values()
            .cloned()
            .collect();
        rows.sort_by(|a, b| (a.first_seen, &a.mac).cmp(&(b.first_seen, &b.mac)));
        rows.into_iter().try_for_each(f)
    }
}

impl Storage for MemoryStorage {
    fn upsert(
        &self,
        mac: String,
        report: String,
        admitted_by: Option<String>,
    ) -> BoxFuture<'_, Result<Ack, StoreError>> {
        let stored = self.upsert_now(mac, report, admitted_by);
        Box::pin(async move { stored })
    }

    fn change(&self, change: Change) -> BoxFuture<'_, Result<Changed, StoreError>> {
        let changed = self.change_now(&change);
        Box::pin(async move { changed })
    }

    fn health(&self) -> anyhow::Result<u64> {
        self.count()
    }

    fn close(&self) -> anyhow::Result<()> {
        self.closed.store(true, Ordering::SeqCst);
        Ok(())
    }
}
