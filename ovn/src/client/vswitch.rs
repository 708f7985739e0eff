//! Typed `Open_vSwitch` operations on a node's OVS database.

use super::nb::with_retries;
use super::{Client, Error};
use crate::core::ops::Operation;
use crate::core::vswitch::{self, DB, INTERFACE, OvsPort};

/// The `Open_vSwitch` database of one node.
#[derive(Debug, Clone)]
pub struct OpenVswitch {
    client: Client,
}

impl OpenVswitch {
    /// Wraps a client connected to a node's `ovsdb-server`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Reads a port's interface.
    pub async fn get_port(&self, bridge: &str, name: &str) -> Result<Option<OvsPort>, Error> {
        let snap = vswitch::parse_port(
            &self
                .client
                .transact(DB, vswitch::read_port(bridge, name))
                .await?,
        )?;
        Ok(snap.port.and(snap.interface).map(|(_, p)| p))
    }

    /// Makes the port (with one interface of the same name) exist on the bridge as wanted.
    /// Writes nothing when it already is.
    pub async fn ensure_port(&self, bridge: &str, want: &OvsPort) -> Result<(), Error> {
        with_retries(&format!("port {} on {bridge}", want.name), || async {
            let snap = vswitch::parse_port(
                &self
                    .client
                    .transact(DB, vswitch::read_port(bridge, &want.name))
                    .await?,
            )?;
            let ops = vswitch::plan_ensure_port(bridge, &snap, want)?;
            if !ops.is_empty() {
                self.client.transact(DB, ops).await?;
            }
            Ok(())
        })
        .await
    }

    /// Removes the port from every bridge; `false` when it did not exist.
    pub async fn remove_port(&self, name: &str) -> Result<bool, Error> {
        // The bridge name does not matter for removal; read_port needs one, any will do.
        let snap = vswitch::parse_port(
            &self
                .client
                .transact(DB, vswitch::read_port("", name))
                .await?,
        )?;
        let ops = vswitch::plan_remove_port(&snap);
        if ops.is_empty() {
            return Ok(false);
        }
        self.client.transact(DB, ops).await?;
        Ok(true)
    }

    /// Every interface of the database (name, type and `external_ids`), for finding the rows a
    /// component left behind by their `external_ids`.
    pub async fn list_interfaces(&self) -> Result<Vec<OvsPort>, Error> {
        let results = self
            .client
            .transact(
                DB,
                vec![Operation::select(
                    INTERFACE,
                    vec![],
                    &["name", "type", "external_ids"],
                )],
            )
            .await?;
        Ok(results
            .first()
            .and_then(|r| r.rows.as_ref())
            .map(|rows| rows.iter().map(OvsPort::from_interface_row).collect())
            .unwrap_or_default())
    }
}
