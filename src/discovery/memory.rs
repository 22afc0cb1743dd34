//! An in-memory [`Storage`]: the HTTP handlers' in-process tests run against it (no file, no
//! database), and it can be told to be down, as a database can be.
//!
//! It keeps the same rules as the real engines: one row per MAC, a repost replaces the report
//! and counts an update, rows listed first seen first, then by MAC.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use super::machine::to_millis;
use super::storage::{BoxFuture, Storage, StoreRead};
use super::store::{Ack, Row, StoreError};

/// Machines kept in a map, lost when dropped.
#[derive(Default)]
pub struct MemoryStorage {
    rows: Mutex<BTreeMap<String, Row>>,
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

    fn upsert_now(&self, mac: String, report: String) -> Result<Ack, StoreError> {
        self.available()?;
        let now = to_millis(SystemTime::now());
        let mut rows = self.rows.lock().expect("rows lock");
        let update = match rows.get_mut(&mac) {
            Some(row) => {
                row.report = report;
                row.last_seen = now;
                row.updates += 1;
                true
            }
            None => {
                let row = Row {
                    mac: mac.clone(),
                    report,
                    first_seen: now,
                    last_seen: now,
                    updates: 0,
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
    fn upsert(&self, mac: String, report: String) -> BoxFuture<'_, Result<Ack, StoreError>> {
        let stored = self.upsert_now(mac, report);
        Box::pin(async move { stored })
    }

    fn health(&self) -> anyhow::Result<u64> {
        self.count()
    }

    fn close(&self) -> anyhow::Result<()> {
        self.closed.store(true, Ordering::SeqCst);
        Ok(())
    }
}
