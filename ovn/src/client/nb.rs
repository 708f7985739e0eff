//! Typed `OVN_Northbound` operations: read, plan (pure, in [`crate::core::nb`]), write, retry.

use std::future::Future;

use tracing::debug;

use super::{Client, Error};
use crate::core::error::ErrorKind;
use crate::core::nb::{
    self, DB, LOGICAL_SWITCH, LOGICAL_SWITCH_PORT, LogicalSwitch, LogicalSwitchPort,
};
use crate::core::ops::{Condition, Operation, OperationResult};
use crate::core::value::{Row, Uuid};

/// How many read-plan-write rounds an ensure makes before it reports a conflict.
const ATTEMPTS: u32 = 5;

/// The northbound database of one OVN deployment.
#[derive(Debug, Clone)]
pub struct Northbound {
    client: Client,
}

/// `true` for failures that a fresh read and plan can fix: a guard saw a concurrent change, or
/// a concurrent insert took a unique name first.
pub(crate) fn is_conflict(err: &Error) -> bool {
    matches!(
        err.server_kind(),
        Some(ErrorKind::TimedOut | ErrorKind::ConstraintViolation)
    )
}

/// Runs read-plan-write rounds until one commits or [`ATTEMPTS`] conflicts happened.
pub(crate) async fn with_retries<T, F, Fut>(what: &str, mut round: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    for attempt in 1..=ATTEMPTS {
        match round().await {
            Err(e) if is_conflict(&e) && attempt < ATTEMPTS => {
                debug!(what, attempt, error = %e, "concurrent change, replanning");
            }
            Err(e) if is_conflict(&e) => {
                debug!(what, error = %e, "giving up after conflicts");
                return Err(Error::Conflict {
                    what: what.to_owned(),
                    attempts: ATTEMPTS,
                    last: Box::new(e),
                });
            }
            other => return other,
        }
    }
    Err(Error::BadReply {
        method: "transact".into(),
        reason: format!("{what}: no attempt ran"),
    })
}

impl Northbound {
    /// Wraps a client connected to the northbound database server.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn transact(&self, ops: Vec<Operation>) -> Result<Vec<OperationResult>, Error> {
        self.client.transact(DB, ops).await
    }

    /// Reads a switch by name.
    pub async fn get_logical_switch(&self, name: &str) -> Result<Option<LogicalSwitch>, Error> {
        let results = self.transact(nb::read_switch(name)).await?;
        Ok(nb::parse_switch(name, &results)?.map(|(_, row)| LogicalSwitch::from_row(&row)))
    }

    /// Makes the switch exist with exactly these `other_config` and `external_ids`.
    /// Returns its UUID. Writes nothing when it already is as wanted.
    pub async fn ensure_logical_switch(&self, want: &LogicalSwitch) -> Result<Uuid, Error> {
        with_retries(&format!("logical switch {}", want.name), || async {
            let current = nb::parse_switch(
                &want.name,
                &self.transact(nb::read_switch(&want.name)).await?,
            )?;
            let ops = nb::plan_ensure_switch(current.as_ref(), want);
            if let Some((uuid, _)) = &current {
                if !ops.is_empty() {
                    self.transact(ops).await?;
                }
                return Ok(uuid.clone());
            }
            let results = self.transact(ops).await?;
            results
                .iter()
                .find_map(|r| r.uuid.clone())
                .ok_or_else(|| Error::BadReply {
                    method: "transact".into(),
                    reason: "insert without uuid".into(),
                })
        })
        .await
    }

    /// Deletes the switch and its ports; `false` when it did not exist.
    pub async fn remove_logical_switch(&self, name: &str) -> Result<bool, Error> {
        let current = nb::parse_switch(name, &self.transact(nb::read_switch(name)).await?)?;
        let ops = nb::plan_remove_switch(current.as_ref());
        if ops.is_empty() {
            return Ok(false);
        }
        self.transact(ops).await?;
        Ok(true)
    }

    /// Makes one port exist in the switch as wanted (see [`Self::ensure_logical_switch_ports`]).
    pub async fn ensure_logical_switch_port(
        &self,
        switch: &str,
        want: &LogicalSwitchPort,
    ) -> Result<(), Error> {
        self.ensure_logical_switch_ports(switch, std::slice::from_ref(want))
            .await
    }

    /// Makes every port exist in the switch as wanted, in one read and one write transaction
    /// (batch for throughput). Ports in another switch are moved. Writes nothing when all
    /// already are as wanted.
    pub async fn ensure_logical_switch_ports(
        &self,
        switch: &str,
        want: &[LogicalSwitchPort],
    ) -> Result<(), Error> {
        if want.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = want.iter().map(|p| p.name.as_str()).collect();
        let what = format!("{} port(s) of logical switch {switch}", want.len());
        with_retries(&what, || async {
            let snapshot = nb::parse_ports(
                switch,
                &self.transact(nb::read_ports(switch, &names)).await?,
            )?;
            let ops = nb::plan_ensure_ports(switch, &snapshot, want)?;
            if !ops.is_empty() {
                self.transact(ops).await?;
            }
            Ok(())
        })
        .await
    }

    /// Reads a port by name.
    pub async fn get_logical_switch_port(
        &self,
        name: &str,
    ) -> Result<Option<LogicalSwitchPort>, Error> {
        let results = self
            .transact(vec![Operation::select(
                LOGICAL_SWITCH_PORT,
                vec![Condition::eq("name", name)],
                &[],
            )])
            .await?;
        Ok(results
            .first()
            .and_then(|r| r.rows.as_ref())
            .and_then(|rows| rows.first())
            .map(LogicalSwitchPort::from_row))
    }

    /// Every port of a switch (empty when the switch does not exist).
    pub async fn list_logical_switch_ports(
        &self,
        switch: &str,
    ) -> Result<Vec<LogicalSwitchPort>, Error> {
        let mut ports = self
            .switch_children(
                switch,
                "ports",
                LOGICAL_SWITCH_PORT,
                LogicalSwitchPort::from_row,
            )
            .await?;
        ports.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(ports)
    }

    /// The rows a switch references in `column`, read from `child` and decoded (empty when the
    /// switch does not exist). Two reads: the references, then the rows.
    pub(super) async fn switch_children<T>(
        &self,
        switch: &str,
        column: &str,
        child: &str,
        decode: fn(&Row) -> T,
    ) -> Result<Vec<T>, Error> {
        let results = self
            .transact(vec![Operation::select(
                LOGICAL_SWITCH,
                vec![Condition::eq("name", switch)],
                &[column],
            )])
            .await?;
        let uuids = nb::referenced_uuids(&results, column);
        if uuids.is_empty() {
            return Ok(Vec::new());
        }
        let ops = uuids
            .iter()
            .map(|u| Operation::select(child, vec![Condition::uuid(u)], &[]))
            .collect();
        let results = self.transact(ops).await?;
        Ok(results
            .iter()
            .filter_map(|r| r.rows.as_ref()?.first().map(decode))
            .collect())
    }

    /// Removes one port; `false` when it did not exist.
    pub async fn remove_logical_switch_port(&self, name: &str) -> Result<bool, Error> {
        Ok(self.remove_logical_switch_ports(&[name]).await? == 1)
    }

    /// Removes ports by name from whatever switch holds them, in one transaction; returns how
    /// many existed.
    pub async fn remove_logical_switch_ports(&self, names: &[&str]) -> Result<usize, Error> {
        if names.is_empty() {
            return Ok(0);
        }
        let existing = nb::parse_port_uuids(&self.transact(nb::read_port_uuids(names)).await?)?;
        let ops = nb::plan_remove_ports(&existing);
        if ops.is_empty() {
            return Ok(0);
        }
        Ok(nb::count_deleted(&self.transact(ops).await?))
    }
}
