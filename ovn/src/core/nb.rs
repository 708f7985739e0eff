//! Typed rows of `OVN_Northbound` and the operations that make them so.
//!
//! Every write is planned from a read: the adapter selects the current rows, [`plan_ensure_ports`]
//! and friends turn "what is" and "what is wanted" into operations, and `wait` operations guard
//! what the plan relied on (the switch still exists under its name, a port was not deleted), so
//! that a concurrent writer makes the transaction fail (`timed out` / `constraint violation`)
//! instead of silently writing a wrong state; the adapter then reads again and replans.
//! A plan for rows already as wanted has no writes, so ensuring twice writes nothing.

use std::collections::BTreeMap;
use std::net::IpAddr;

use thiserror::Error;

use super::ops::{Condition, Mutation, Operation, OperationResult};
use super::value::{Atom, Row, Uuid, Value};

/// The northbound database name.
pub const DB: &str = "OVN_Northbound";
/// `Logical_Switch` table.
pub const LOGICAL_SWITCH: &str = "Logical_Switch";
/// `Logical_Switch_Port` table.
pub const LOGICAL_SWITCH_PORT: &str = "Logical_Switch_Port";

/// What keeps a plan from being made.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PlanError {
    /// The switch the ports belong to does not exist.
    #[error("logical switch {0:?} does not exist")]
    NoSuchSwitch(String),
    /// Several logical switches carry the name (the table has no unique index on it).
    #[error("{count} logical switches are named {name:?}")]
    DuplicateSwitch {
        /// Switch name.
        name: String,
        /// How many rows.
        count: usize,
    },
    /// The logical router does not exist.
    #[error("logical router {0:?} does not exist")]
    NoSuchRouter(String),
    /// Several logical routers carry the name.
    #[error("{count} logical routers are named {name:?}")]
    DuplicateRouter {
        /// Router name.
        name: String,
        /// How many rows.
        count: usize,
    },
    /// The bridge a port belongs to does not exist.
    #[error("bridge {0:?} does not exist")]
    NoSuchBridge(String),
    /// The read results do not have the expected shape.
    #[error("unexpected read result: {0}")]
    BadRead(String),
}

/// A logical switch as Nauti wants it. `other_config` and `external_ids` are owned as a whole:
/// ensuring replaces them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogicalSwitch {
    /// Unique name (Nauti makes it unique; the schema does not).
    pub name: String,
    /// `other_config`: `subnet`, `exclude_ips`, ...
    pub other_config: BTreeMap<String, String>,
    /// `external_ids`.
    pub external_ids: BTreeMap<String, String>,
}

impl LogicalSwitch {
    /// A switch with only a name.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// Sets `other_config:subnet` (OVN's own IPAM range for dynamic addresses).
    pub fn with_subnet(mut self, subnet: impl Into<String>) -> Self {
        self.other_config.insert("subnet".into(), subnet.into());
        self
    }

    /// Sets `other_config:exclude_ips` (space-separated addresses or `a..b` ranges).
    pub fn with_exclude_ips<I: IntoIterator<Item = S>, S: Into<String>>(mut self, ips: I) -> Self {
        let joined: Vec<String> = ips.into_iter().map(Into::into).collect();
        self.other_config
            .insert("exclude_ips".into(), joined.join(" "));
        self
    }

    /// Adds an `external_ids` entry.
    pub fn with_external_id(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.external_ids.insert(key.into(), value.into());
        self
    }

    /// `other_config:subnet`.
    pub fn subnet(&self) -> Option<&str> {
        self.other_config.get("subnet").map(String::as_str)
    }

    /// `other_config:exclude_ips`, split.
    pub fn exclude_ips(&self) -> Vec<&str> {
        self.other_config
            .get("exclude_ips")
            .map_or_else(Vec::new, |s| s.split_whitespace().collect())
    }

    /// The owned columns as a row.
    pub fn to_row(&self) -> Row {
        Row::from([
            ("name".to_owned(), Value::from(self.name.as_str())),
            ("other_config".to_owned(), Value::from(&self.other_config)),
            ("external_ids".to_owned(), Value::from(&self.external_ids)),
        ])
    }

    /// Reads the owned columns from a row (absent columns are empty).
    pub fn from_row(row: &Row) -> Self {
        Self {
            name: str_col(row, "name"),
            other_config: map_col(row, "other_config"),
            external_ids: map_col(row, "external_ids"),
        }
    }
}

/// A logical switch port as Nauti wants it. All listed columns are owned as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogicalSwitchPort {
    /// Unique name; ovn-controller binds the OVS interface whose `external_ids:iface-id` equals it.
    pub name: String,
    /// `addresses`, e.g. `["0a:58:0a:70:00:05 10.112.0.5"]`, `["router"]`, `["unknown"]`.
    pub addresses: Vec<String>,
    /// `port_security`, e.g. `["0a:58:0a:70:00:05 10.112.0.5"]`.
    pub port_security: Vec<String>,
    /// `type`: empty for a VIF, `router`, `localnet`, `localport`, ...
    pub kind: String,
    /// `options`.
    pub options: BTreeMap<String, String>,
    /// `external_ids` (`pod`, `namespace`, `uid`, `node` for pods).
    pub external_ids: BTreeMap<String, String>,
}

impl LogicalSwitchPort {
    /// A port with only a name.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// Sets one address entry `"MAC IP..."` and the same port security.
    pub fn with_address(mut self, mac: &str, ips: &[&str]) -> Self {
        let mut entry = mac.to_owned();
        for ip in ips {
            entry.push(' ');
            entry.push_str(ip);
        }
        self.addresses = vec![entry.clone()];
        self.port_security = vec![entry];
        self
    }

    /// Sets `type`.
    pub fn with_kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = kind.into();
        self
    }

    /// Adds an `external_ids` entry.
    pub fn with_external_id(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.external_ids.insert(key.into(), value.into());
        self
    }

    /// Adds an `options` entry.
    pub fn with_option(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.options.insert(key.into(), value.into());
        self
    }

    /// The IP addresses of its `addresses` entries (`"MAC IP..."`), in order; words that are
    /// not addresses (the MAC, `router`, `dynamic`, `unknown`) are skipped.
    pub fn ips(&self) -> Vec<IpAddr> {
        self.addresses
            .iter()
            .flat_map(|entry| entry.split_whitespace().skip(1))
            .filter_map(|word| word.parse().ok())
            .collect()
    }

    /// The owned columns as a row.
    pub fn to_row(&self) -> Row {
        Row::from([
            ("name".to_owned(), Value::from(self.name.as_str())),
            (
                "addresses".to_owned(),
                Value::string_set(self.addresses.iter().map(String::as_str)),
            ),
            (
                "port_security".to_owned(),
                Value::string_set(self.port_security.iter().map(String::as_str)),
            ),
            ("type".to_owned(), Value::from(self.kind.as_str())),
            ("options".to_owned(), Value::from(&self.options)),
            ("external_ids".to_owned(), Value::from(&self.external_ids)),
        ])
    }

    /// Reads the owned columns from a row.
    pub fn from_row(row: &Row) -> Self {
        Self {
            name: str_col(row, "name"),
            addresses: set_col(row, "addresses"),
            port_security: set_col(row, "port_security"),
            kind: str_col(row, "type"),
            options: map_col(row, "options"),
            external_ids: map_col(row, "external_ids"),
        }
    }
}

pub(crate) fn str_col(row: &Row, col: &str) -> String {
    row.get(col)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

pub(crate) fn set_col(row: &Row, col: &str) -> Vec<String> {
    let mut v = row.get(col).map(Value::strings).unwrap_or_default();
    v.sort();
    v
}

pub(crate) fn map_col(row: &Row, col: &str) -> BTreeMap<String, String> {
    row.get(col)
        .map(Value::string_map_entries)
        .unwrap_or_default()
}

pub(crate) fn uuid_of(row: &Row) -> Result<Uuid, PlanError> {
    row.get("_uuid")
        .and_then(Value::as_uuid)
        .cloned()
        .ok_or_else(|| PlanError::BadRead("row without _uuid".into()))
}

pub(crate) fn rows_of(result: Option<&OperationResult>) -> Result<&[Row], PlanError> {
    result
        .and_then(|r| r.rows.as_deref())
        .ok_or_else(|| PlanError::BadRead("missing select result".into()))
}

/// A `wait` that fails at once unless `column` of row `uuid` still equals `value`.
pub(crate) fn guard_unchanged(table: &str, uuid: &Uuid, column: &str, value: Value) -> Operation {
    Operation::Wait {
        table: table.to_owned(),
        conditions: vec![Condition::uuid(uuid)],
        columns: vec![column.to_owned()],
        until_equal: true,
        rows: vec![Row::from([(column.to_owned(), value)])],
        timeout_ms: Some(0),
    }
}

/// A `wait` that fails at once if some row has `column == value`.
pub(crate) fn guard_absent(table: &str, column: &str, value: &str) -> Operation {
    Operation::Wait {
        table: table.to_owned(),
        conditions: vec![Condition::eq(column, value)],
        columns: vec![column.to_owned()],
        until_equal: true,
        rows: vec![],
        timeout_ms: Some(0),
    }
}

// === switches ===

/// Reads a switch by name (all columns).
pub fn read_switch(name: &str) -> Vec<Operation> {
    vec![Operation::select(
        LOGICAL_SWITCH,
        vec![Condition::eq("name", name)],
        &[],
    )]
}

/// The current state of one switch, from the results of [`read_switch`].
pub fn parse_switch(
    name: &str,
    results: &[OperationResult],
) -> Result<Option<(Uuid, Row)>, PlanError> {
    match rows_of(results.first())? {
        [] => Ok(None),
        [row] => Ok(Some((uuid_of(row)?, row.clone()))),
        rows => Err(PlanError::DuplicateSwitch {
            name: name.to_owned(),
            count: rows.len(),
        }),
    }
}

/// Operations that make the switch as wanted; empty when it already is.
pub fn plan_ensure_switch(current: Option<&(Uuid, Row)>, want: &LogicalSwitch) -> Vec<Operation> {
    match current {
        None => vec![
            guard_absent(LOGICAL_SWITCH, "name", &want.name),
            Operation::insert(LOGICAL_SWITCH, want.to_row()),
        ],
        Some((_, row)) if LogicalSwitch::from_row(row) == *want => Vec::new(),
        Some((uuid, _)) => vec![Operation::update(
            LOGICAL_SWITCH,
            vec![Condition::uuid(uuid)],
            want.to_row(),
        )],
    }
}

/// Operations that delete the switch (its ports go with it: they are not root rows).
pub fn plan_remove_switch(current: Option<&(Uuid, Row)>) -> Vec<Operation> {
    current.map_or_else(Vec::new, |(uuid, _)| {
        vec![Operation::delete(
            LOGICAL_SWITCH,
            vec![Condition::uuid(uuid)],
        )]
    })
}

// === ports ===

/// What the plan for a batch of ports needs to know.
#[derive(Debug, Clone, PartialEq)]
pub struct PortsSnapshot {
    /// The switch's UUID and its `ports`.
    pub switch: Option<(Uuid, Vec<Uuid>)>,
    /// Per wanted port, in order: its UUID and current state, if it exists.
    pub ports: Vec<Option<(Uuid, LogicalSwitchPort)>>,
}

/// Reads the switch and each named port, in one transaction.
pub fn read_ports(switch: &str, names: &[&str]) -> Vec<Operation> {
    let mut ops = vec![Operation::select(
        LOGICAL_SWITCH,
        vec![Condition::eq("name", switch)],
        &["_uuid", "ports"],
    )];
    ops.extend(
        names
            .iter()
            .map(|n| Operation::select(LOGICAL_SWITCH_PORT, vec![Condition::eq("name", *n)], &[])),
    );
    ops
}

/// Interprets the results of [`read_ports`].
pub fn parse_ports(switch: &str, results: &[OperationResult]) -> Result<PortsSnapshot, PlanError> {
    let sw = match rows_of(results.first())? {
        [] => None,
        [row] => Some((
            uuid_of(row)?,
            row.get("ports").map(Value::uuids).unwrap_or_default(),
        )),
        rows => {
            return Err(PlanError::DuplicateSwitch {
                name: switch.to_owned(),
                count: rows.len(),
            });
        }
    };
    let mut ports = Vec::with_capacity(results.len().saturating_sub(1));
    for r in results.iter().skip(1) {
        ports.push(match rows_of(Some(r))?.first() {
            None => None,
            Some(row) => Some((uuid_of(row)?, LogicalSwitchPort::from_row(row))),
        });
    }
    Ok(PortsSnapshot { switch: sw, ports })
}

/// Operations that make every wanted port exist as wanted, in the switch; ports that are in
/// another switch are moved. Empty when everything already is as wanted.
pub fn plan_ensure_ports(
    switch: &str,
    snapshot: &PortsSnapshot,
    want: &[LogicalSwitchPort],
) -> Result<Vec<Operation>, PlanError> {
    let (sw_uuid, sw_ports) = snapshot
        .switch
        .as_ref()
        .ok_or_else(|| PlanError::NoSuchSwitch(switch.to_owned()))?;
    if snapshot.ports.len() != want.len() {
        return Err(PlanError::BadRead(format!(
            "{} port reads for {} ports",
            snapshot.ports.len(),
            want.len()
        )));
    }
    let mut ops = Vec::new();
    let mut add_to_switch = Vec::new();
    for (i, (w, cur)) in want.iter().zip(&snapshot.ports).enumerate() {
        let mut w = w.clone();
        w.addresses.sort();
        w.port_security.sort();
        match cur {
            None => {
                let name = format!("lsp{i}");
                ops.push(Operation::insert_named(
                    LOGICAL_SWITCH_PORT,
                    w.to_row(),
                    &name,
                ));
                add_to_switch.push(Atom::NamedUuid(name));
            }
            Some((uuid, current)) => {
                if *current != w {
                    ops.push(guard_unchanged(
                        LOGICAL_SWITCH_PORT,
                        uuid,
                        "name",
                        Value::from(w.name.as_str()),
                    ));
                    ops.push(Operation::update(
                        LOGICAL_SWITCH_PORT,
                        vec![Condition::uuid(uuid)],
                        w.to_row(),
                    ));
                }
                if !sw_ports.contains(uuid) {
                    ops.push(Operation::mutate(
                        LOGICAL_SWITCH,
                        vec![
                            Condition::includes("ports", Value::Atom(uuid.clone().into())),
                            Condition::ne("_uuid", Value::Atom(sw_uuid.clone().into())),
                        ],
                        vec![Mutation::delete("ports", Value::Atom(uuid.clone().into()))],
                    ));
                    add_to_switch.push(Atom::Uuid(uuid.clone()));
                }
            }
        }
    }
    if !add_to_switch.is_empty() {
        ops.push(guard_unchanged(
            LOGICAL_SWITCH,
            sw_uuid,
            "name",
            Value::from(switch),
        ));
        ops.push(Operation::mutate(
            LOGICAL_SWITCH,
            vec![Condition::uuid(sw_uuid)],
            vec![Mutation::insert("ports", Value::Set(add_to_switch))],
        ));
    }
    Ok(ops)
}

/// Reads the UUIDs of named ports.
pub fn read_port_uuids(names: &[&str]) -> Vec<Operation> {
    names
        .iter()
        .map(|n| {
            Operation::select(
                LOGICAL_SWITCH_PORT,
                vec![Condition::eq("name", *n)],
                &["_uuid"],
            )
        })
        .collect()
}

/// Interprets the results of [`read_port_uuids`]: the UUIDs of the ports that exist.
pub fn parse_port_uuids(results: &[OperationResult]) -> Result<Vec<Uuid>, PlanError> {
    let mut out = Vec::new();
    for r in results {
        for row in rows_of(Some(r))? {
            out.push(uuid_of(row)?);
        }
    }
    Ok(out)
}

/// Operations that detach the ports from whatever switch holds them and delete them.
pub fn plan_remove_ports(existing: &[Uuid]) -> Vec<Operation> {
    plan_detach_and_delete(LOGICAL_SWITCH, "ports", LOGICAL_SWITCH_PORT, existing)
}

/// Operations that take each row out of the `column` of every `parent` row holding it, then
/// delete it: a child row of a strong reference must leave its parents in the same transaction.
/// Every second operation is a delete (see [`count_deleted`]).
pub fn plan_detach_and_delete(
    parent: &str,
    column: &str,
    child: &str,
    existing: &[Uuid],
) -> Vec<Operation> {
    let mut ops = Vec::with_capacity(existing.len() * 2);
    for uuid in existing {
        let atom = Value::Atom(Atom::Uuid(uuid.clone()));
        ops.push(Operation::mutate(
            parent,
            vec![Condition::includes(column, atom.clone())],
            vec![Mutation::delete(column, atom)],
        ));
        ops.push(Operation::delete(child, vec![Condition::uuid(uuid)]));
    }
    ops
}

/// How many rows the deletes of a [`plan_detach_and_delete`] transaction removed; a row deleted
/// concurrently counts 0.
pub fn count_deleted(results: &[OperationResult]) -> usize {
    results
        .iter()
        .skip(1)
        .step_by(2)
        .filter_map(|r| r.count)
        .sum::<u64>() as usize
}

/// The references held in `column` of the first row a select returned (empty when it returned
/// none, e.g. for a switch that does not exist).
pub fn referenced_uuids(results: &[OperationResult], column: &str) -> Vec<Uuid> {
    results
        .first()
        .and_then(|r| r.rows.as_ref())
        .and_then(|rows| rows.first())
        .and_then(|row| row.get(column))
        .map(Value::uuids)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
