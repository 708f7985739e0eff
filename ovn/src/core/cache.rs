//! A local copy of monitored tables, fed with `update` and `update2` notifications.
//!
//! The cache is schema-aware: `update2` `modify` diffs toggle set elements and add, replace or
//! remove map entries, which needs to know whether a column is a set, a map or a single atom.
//! Rows keep only the columns the server sent; absent columns have their type's default (the
//! server omits default values in `initial` and `insert` rows).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::Value as Json;
use thiserror::Error;

use super::schema::{ColumnType, DatabaseSchema, SchemaError};
use super::value::{Atom, AtomKey, Row, Uuid, Value};

/// A notification that cannot be applied.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum CacheError {
    /// The notification's shape is wrong.
    #[error("malformed table update: {0}")]
    Malformed(String),
    /// A table, column or value does not fit the schema.
    #[error("table update does not fit the schema: {0}")]
    Schema(#[from] SchemaError),
}

/// What one notification changed, per table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeSummary {
    /// Rows inserted (including `initial`).
    pub inserted: usize,
    /// Rows modified.
    pub modified: usize,
    /// Rows deleted.
    pub deleted: usize,
}

impl ChangeSummary {
    /// `true` when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.inserted + self.modified + self.deleted == 0
    }
}

/// Rows of the monitored tables of one database.
#[derive(Debug, Clone)]
pub struct Cache {
    schema: Arc<DatabaseSchema>,
    tables: BTreeMap<String, BTreeMap<Uuid, Row>>,
}

impl Cache {
    /// An empty cache for a database.
    pub fn new(schema: Arc<DatabaseSchema>) -> Self {
        Self {
            schema,
            tables: BTreeMap::new(),
        }
    }

    /// The schema rows are decoded with.
    pub fn schema(&self) -> &DatabaseSchema {
        &self.schema
    }

    /// Rows of a table (empty when not monitored or empty).
    pub fn rows(&self, table: &str) -> impl Iterator<Item = (&Uuid, &Row)> {
        self.tables.get(table).into_iter().flat_map(|t| t.iter())
    }

    /// Number of rows of a table.
    pub fn len(&self, table: &str) -> usize {
        self.tables.get(table).map_or(0, BTreeMap::len)
    }

    /// `true` when no table has any row.
    pub fn is_empty(&self) -> bool {
        self.tables.values().all(BTreeMap::is_empty)
    }

    /// One row.
    pub fn row(&self, table: &str, uuid: &Uuid) -> Option<&Row> {
        self.tables.get(table)?.get(uuid)
    }

    /// A column's value, with the type's default when the row lacks it.
    pub fn value(&self, table: &str, uuid: &Uuid, column: &str) -> Option<Value> {
        let row = self.row(table, uuid)?;
        match row.get(column) {
            Some(v) => Some(v.clone()),
            None => self
                .schema
                .column_type(table, column)
                .ok()
                .map(|t| t.default_value()),
        }
    }

    /// The first row whose string column equals `value` (e.g. a port by name).
    pub fn find_by(&self, table: &str, column: &str, value: &str) -> Option<(&Uuid, &Row)> {
        self.rows(table)
            .find(|(_, r)| r.get(column).and_then(Value::as_str) == Some(value))
    }

    /// Forgets every row of these tables (before the initial contents of a new monitor).
    pub fn clear_tables<'a>(&mut self, tables: impl IntoIterator<Item = &'a str>) {
        for t in tables {
            self.tables.remove(t);
        }
    }

    /// Applies a `<table-updates2>` object (the `monitor_cond` result or an `update2`).
    pub fn apply_update2(&mut self, updates: &Json) -> Result<ChangeSummary, CacheError> {
        let mut summary = ChangeSummary::default();
        for (table, rows) in objects(updates, "table-updates2")? {
            let tschema = self.schema.table(table)?.clone();
            for (uuid_text, change) in objects(rows, "table-update2")? {
                let uuid = parse_uuid(uuid_text)?;
                let change = change
                    .as_object()
                    .filter(|c| c.len() == 1)
                    .ok_or_else(|| CacheError::Malformed(format!("row-update2 of {uuid}")))?;
                let (kind, body) = change
                    .iter()
                    .next()
                    .ok_or_else(|| CacheError::Malformed(format!("empty row-update2 of {uuid}")))?;
                let rows = self.tables.entry(table.to_owned()).or_default();
                match kind.as_str() {
                    "initial" | "insert" => {
                        let row = self.schema.decode_row(table, body)?;
                        rows.insert(uuid, row);
                        summary.inserted += 1;
                    }
                    "delete" => {
                        if rows.remove(&uuid).is_some() {
                            summary.deleted += 1;
                        }
                    }
                    "modify" => {
                        let row = rows.entry(uuid.clone()).or_default();
                        let diff = body.as_object().ok_or_else(|| {
                            CacheError::Malformed(format!("modify of {uuid} is not an object"))
                        })?;
                        for (column, value) in diff {
                            let ty = tschema.column_type(column).ok_or_else(|| {
                                SchemaError::UnknownColumn {
                                    table: table.to_owned(),
                                    column: column.clone(),
                                }
                            })?;
                            let diff = Value::from_json(value).map_err(|source| {
                                SchemaError::BadValue {
                                    table: table.to_owned(),
                                    column: column.clone(),
                                    source,
                                }
                            })?;
                            let old = row.remove(column).unwrap_or_else(|| ty.default_value());
                            let new = apply_diff(&ty, old, diff).map_err(|reason| {
                                SchemaError::WrongType {
                                    table: table.to_owned(),
                                    column: column.clone(),
                                    reason,
                                }
                            })?;
                            row.insert(column.clone(), new);
                        }
                        summary.modified += 1;
                    }
                    other => {
                        return Err(CacheError::Malformed(format!(
                            "unknown row-update2 kind {other:?} for {uuid}"
                        )));
                    }
                }
            }
        }
        Ok(summary)
    }

    /// Applies a `<table-updates>` object (the `monitor` result or an `update`, RFC 7047).
    pub fn apply_update(&mut self, updates: &Json) -> Result<ChangeSummary, CacheError> {
        let mut summary = ChangeSummary::default();
        for (table, rows) in objects(updates, "table-updates")? {
            self.schema.table(table)?;
            for (uuid_text, change) in objects(rows, "table-update")? {
                let uuid = parse_uuid(uuid_text)?;
                let rows = self.tables.entry(table.to_owned()).or_default();
                match (change.get("old"), change.get("new")) {
                    (_, Some(new)) => {
                        let new = self.schema.decode_row(table, new)?;
                        match rows.get_mut(&uuid) {
                            Some(row) => {
                                // "new" holds every monitored column of a modified row.
                                row.extend(new);
                                summary.modified += 1;
                            }
                            None => {
                                rows.insert(uuid, new);
                                summary.inserted += 1;
                            }
                        }
                    }
                    (Some(_), None) => {
                        if rows.remove(&uuid).is_some() {
                            summary.deleted += 1;
                        }
                    }
                    (None, None) => {
                        return Err(CacheError::Malformed(format!(
                            "row-update of {uuid} has neither old nor new"
                        )));
                    }
                }
            }
        }
        Ok(summary)
    }
}

fn objects<'a>(
    json: &'a Json,
    what: &str,
) -> Result<impl Iterator<Item = (&'a String, &'a Json)>, CacheError> {
    json.as_object()
        .map(|o| o.iter())
        .ok_or_else(|| CacheError::Malformed(format!("{what} is not an object")))
}

fn parse_uuid(text: &str) -> Result<Uuid, CacheError> {
    Uuid::parse(text)
        .ok_or_else(|| CacheError::Malformed(format!("row key {text:?} is not a uuid")))
}

/// Applies an `update2` column diff (ovsdb-server(7), "Update2 notification"): scalars are
/// replaced, set elements in the diff are toggled, map entries are added when the key is new,
/// removed when key and value match, and replaced when the value differs.
///
/// Columns of at most one element (scalars and optional columns such as
/// `Logical_Switch_Port.up`) carry the new value, not a toggle: that is what ovsdb-server sends
/// ("for columns with single value, the difference is the value of the new column").
pub fn apply_diff(ty: &ColumnType, old: Value, diff: Value) -> Result<Value, String> {
    if ty.is_scalar() || (!ty.is_map() && ty.max == Some(1)) {
        let new = ty.normalize(diff)?;
        ty.check_atom_types(&new)?;
        return Ok(new);
    }
    let old = ty.normalize(old)?;
    let diff = ty.normalize(diff)?;
    match (old, diff) {
        // Elements are indexed by key (removed ones leave a hole) so that a diff of n elements
        // against a column of m costs O(n + m), not O(n * m).
        (Value::Set(items), Value::Set(toggles)) => {
            let mut slots: Vec<Option<Atom>> = items.into_iter().map(Some).collect();
            let mut index: HashMap<AtomKey, usize> = slots
                .iter()
                .enumerate()
                .filter_map(|(i, a)| Some((AtomKey::of(a.as_ref()?), i)))
                .collect();
            for a in toggles {
                let key = AtomKey::of(&a);
                match index.remove(&key) {
                    Some(i) => slots[i] = None,
                    None => {
                        index.insert(key, slots.len());
                        slots.push(Some(a));
                    }
                }
            }
            let new = Value::Set(slots.into_iter().flatten().collect());
            ty.check_atom_types(&new)?;
            Ok(new)
        }
        (Value::Map(pairs), Value::Map(changes)) => {
            let mut slots: Vec<Option<(Atom, Atom)>> = pairs.into_iter().map(Some).collect();
            let mut index: HashMap<AtomKey, usize> = slots
                .iter()
                .enumerate()
                .filter_map(|(i, p)| Some((AtomKey::of(&p.as_ref()?.0), i)))
                .collect();
            for (k, v) in changes {
                let key = AtomKey::of(&k);
                let slot = index.get(&key).copied();
                match slot.and_then(|i| Some((i, slots.get_mut(i)?.as_mut()?))) {
                    Some((i, (_, old))) if *old == v => {
                        slots[i] = None;
                        index.remove(&key);
                    }
                    Some((_, (_, old))) => *old = v,
                    None => {
                        index.insert(key, slots.len());
                        slots.push(Some((k, v)));
                    }
                }
            }
            let new = Value::Map(slots.into_iter().flatten().collect());
            ty.check_atom_types(&new)?;
            Ok(new)
        }
        (old, diff) => Err(format!(
            "cannot apply {} to {}",
            diff.to_json(),
            old.to_json()
        )),
    }
}

/// Reads the string value of a map entry (e.g. `external_ids:iface-id`).
pub fn map_get<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    match value {
        Value::Map(pairs) => pairs
            .iter()
            .find(|(k, _)| matches!(k, Atom::String(s) if s == key))
            .and_then(|(_, v)| v.as_str()),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
