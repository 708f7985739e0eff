//! Monitors: what the session task keeps per monitor, and the handle users hold.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::{Map, Value as Json, json};
use tokio::sync::watch;

use super::{Client, Error, read_cache};
use crate::core::cache::{Cache, CacheError};
use crate::core::ops::Condition;
use crate::core::schema::{DatabaseSchema, SchemaError};

/// What to monitor in one table.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorRequest {
    /// Table name.
    pub table: String,
    /// Columns to monitor; `None` for all.
    pub columns: Option<Vec<String>>,
    /// Only rows matching all conditions (`monitor_cond`); `None` for all rows. Servers without
    /// `monitor_cond` ignore this and send every row.
    pub conditions: Option<Vec<Condition>>,
}

impl MonitorRequest {
    /// All columns of all rows of a table.
    pub fn table(table: &str) -> Self {
        Self {
            table: table.to_owned(),
            columns: None,
            conditions: None,
        }
    }

    /// Restricts the columns.
    pub fn columns(mut self, columns: &[&str]) -> Self {
        self.columns = Some(columns.iter().map(|c| (*c).to_owned()).collect());
        self
    }

    /// Restricts the rows.
    pub fn filter(mut self, conditions: Vec<Condition>) -> Self {
        self.conditions = Some(conditions);
        self
    }

    pub(crate) fn check(&self, schema: &DatabaseSchema) -> Result<(), SchemaError> {
        for c in self.columns.iter().flatten() {
            schema.column_type(&self.table, c)?;
        }
        for c in self.conditions.iter().flatten() {
            schema
                .check_value(&self.table, &c.column, &c.value)
                .or_else(|e| match e {
                    // `includes` conditions may carry subsets; the server checks those.
                    SchemaError::WrongType { .. } => Ok(()),
                    other => Err(other),
                })?;
        }
        schema.table(&self.table).map(|_| ())
    }

    fn to_json(&self, with_conditions: bool) -> Json {
        let mut o = Map::new();
        if let Some(c) = &self.columns {
            o.insert("columns".into(), json!(c));
        }
        if with_conditions && let Some(conds) = &self.conditions {
            o.insert(
                "where".into(),
                conds.iter().map(Condition::to_json).collect(),
            );
        }
        Json::Object(o)
    }
}

/// What the session task keeps to (re)establish a monitor and feed its cache.
pub(crate) struct Registration {
    pub(crate) monitor_id: String,
    pub(crate) db: String,
    pub(crate) requests: Vec<MonitorRequest>,
    pub(crate) cache: Arc<RwLock<Cache>>,
    pub(crate) changes: watch::Sender<u64>,
    /// Set when the server does not know `monitor_cond`.
    pub(crate) v1: bool,
}

impl Registration {
    pub(crate) fn new(
        client: Client,
        db: &str,
        schema: Arc<DatabaseSchema>,
        requests: Vec<MonitorRequest>,
        n: u64,
    ) -> (Self, Monitor) {
        let cache = Arc::new(RwLock::new(Cache::new(schema)));
        let (changes, rx) = watch::channel(0);
        let monitor_id = format!("nauti-monitor-{n}");
        let reg = Self {
            monitor_id: monitor_id.clone(),
            db: db.to_owned(),
            requests,
            cache: cache.clone(),
            changes,
            v1: false,
        };
        (
            reg,
            Monitor {
                client,
                monitor_id,
                cache,
                changes: rx,
            },
        )
    }

    pub(crate) fn method(&self) -> &'static str {
        if self.v1 { "monitor" } else { "monitor_cond" }
    }

    pub(crate) fn params(&self) -> Vec<Json> {
        let mut tables = Map::new();
        for r in &self.requests {
            tables.insert(r.table.clone(), Json::Array(vec![r.to_json(!self.v1)]));
        }
        vec![json!(self.db), json!(self.monitor_id), Json::Object(tables)]
    }

    pub(crate) fn tables(&self) -> impl Iterator<Item = &str> {
        self.requests.iter().map(|r| r.table.as_str())
    }

    /// Replaces the monitored tables with the initial contents of a (re)started monitor.
    pub(crate) fn load_initial(&self, result: &Json) -> Result<(), CacheError> {
        let mut cache = super::write_cache(&self.cache);
        // Apply to a copy so that a bad reply leaves the old contents in place.
        let mut fresh = cache.clone();
        fresh.clear_tables(self.tables());
        if self.v1 {
            fresh.apply_update(result)?;
        } else {
            fresh.apply_update2(result)?;
        }
        *cache = fresh;
        drop(cache);
        self.changes.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Applies an `update` or `update2` notification.
    pub(crate) fn apply(&self, method: &str, updates: &Json) -> Result<(), CacheError> {
        let mut cache = super::write_cache(&self.cache);
        let summary = if method == "update" {
            cache.apply_update(updates)?
        } else {
            cache.apply_update2(updates)?
        };
        drop(cache);
        if !summary.is_empty() {
            self.changes.send_modify(|n| *n += 1);
        }
        Ok(())
    }
}

/// A running monitor and its cache.
pub struct Monitor {
    client: Client,
    monitor_id: String,
    cache: Arc<RwLock<Cache>>,
    changes: watch::Receiver<u64>,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("id", &self.monitor_id)
            .finish()
    }
}

impl Monitor {
    /// Reads the cache under its lock (do not block inside `f`).
    pub fn read<R>(&self, f: impl FnOnce(&Cache) -> R) -> R {
        f(&read_cache(&self.cache))
    }

    /// A copy of the cache.
    pub fn snapshot(&self) -> Cache {
        read_cache(&self.cache).clone()
    }

    /// How many times the cache changed so far.
    pub fn generation(&self) -> u64 {
        *self.changes.borrow()
    }

    /// Waits for the next change of the cache.
    pub async fn changed(&mut self) -> Result<(), Error> {
        self.changes.changed().await.map_err(|_| Error::Closed)
    }

    /// Waits until `pred` holds on the cache, at most `timeout`; returns whether it did.
    pub async fn wait_until(&mut self, timeout: Duration, pred: impl Fn(&Cache) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            self.changes.mark_unchanged();
            if self.read(&pred) {
                return true;
            }
            match tokio::time::timeout_at(deadline, self.changes.changed()).await {
                Ok(Ok(())) => {}
                // Deadline passed, or the client task is gone: no more changes will come.
                Err(_) | Ok(Err(_)) => return self.read(&pred),
            }
        }
    }

    /// `monitor_cancel`: stops the monitor; the cache keeps its last contents.
    pub async fn cancel(&self) -> Result<(), Error> {
        self.client.monitor_cancel(self.monitor_id.clone()).await
    }
}
