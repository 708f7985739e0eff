//! Reads of the `OVN_Southbound` database: where ovn-controller bound a logical port.

use super::{Client, Error};
use crate::core::ops::{Condition, Operation, OperationResult};
use crate::core::value::{Atom, Row, Uuid, Value};

/// The southbound database's name.
pub const DB: &str = "OVN_Southbound";
/// The table of logical ports as ovn-controllers claim them.
pub const PORT_BINDING: &str = "Port_Binding";
/// The table of hypervisors (one per ovn-controller).
pub const CHASSIS: &str = "Chassis";

/// A port's row in `Port_Binding`, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortBinding {
    pub logical_port: String,
    /// The chassis that claimed it; `None` while no ovn-controller has.
    pub chassis: Option<BoundChassis>,
    /// The `up` column; `None` when the column is unset (older ovn-controller, or unclaimed).
    pub up: Option<bool>,
}

/// The chassis a port is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundChassis {
    /// `name` (ovn-controller's `external_ids:system-id`).
    pub name: String,
    /// `hostname`.
    pub hostname: String,
}

/// The select of the `Port_Binding` row of `logical_port`.
pub fn read_port_binding(logical_port: &str) -> Vec<Operation> {
    vec![Operation::select(
        PORT_BINDING,
        vec![Condition::eq("logical_port", logical_port)],
        &["logical_port", "chassis", "up"],
    )]
}

/// The row [`read_port_binding`] read (`None` when there is none), and the UUID of the chassis
/// it names.
pub fn parse_port_binding(
    results: &[OperationResult],
) -> Option<(String, Option<Uuid>, Option<bool>)> {
    let row = results.first()?.rows.as_ref()?.first()?;
    let chassis = row.get("chassis").and_then(Value::as_uuid).cloned();
    let up = row.get("up").and_then(|v| match v.elements() {
        [Atom::Boolean(b)] => Some(*b),
        _ => None,
    });
    let name = row
        .get("logical_port")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Some((name, chassis, up))
}

/// The select of the chassis `uuid`.
pub fn read_chassis(uuid: &Uuid) -> Vec<Operation> {
    vec![Operation::select(
        CHASSIS,
        vec![Condition::uuid(uuid)],
        &["name", "hostname"],
    )]
}

/// The chassis [`read_chassis`] read; `None` when it is gone.
pub fn parse_chassis(results: &[OperationResult]) -> Option<BoundChassis> {
    let row: &Row = results.first()?.rows.as_ref()?.first()?;
    let text = |col: &str| {
        row.get(col)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Some(BoundChassis {
        name: text("name"),
        hostname: text("hostname"),
    })
}

/// Where `logical_port` is bound; `None` when the southbound database has no row for it
/// (northd has not translated the port yet).
pub async fn port_binding(
    client: &Client,
    logical_port: &str,
) -> Result<Option<PortBinding>, Error> {
    let results = client.transact(DB, read_port_binding(logical_port)).await?;
    let Some((logical_port, chassis, up)) = parse_port_binding(&results) else {
        return Ok(None);
    };
    let chassis = match chassis {
        Some(uuid) => parse_chassis(&client.transact(DB, read_chassis(&uuid)).await?),
        None => None,
    };
    Ok(Some(PortBinding {
        logical_port,
        chassis,
        up,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;
    use serde_json::json;

    fn result(rows: serde_json::Value) -> Vec<OperationResult> {
        let rows = rows
            .as_array()
            .unwrap()
            .iter()
            .map(|r| crate::core::value::row_from_json(r).unwrap())
            .collect();
        vec![OperationResult {
            count: None,
            uuid: None,
            rows: Some(rows),
        }]
    }

    const CHASSIS_UUID: &str = "2b4f5d7e-8a63-4f0e-9b1c-0d2e3f4a5b6c";

    #[test]
    fn a_bound_port_names_its_chassis() {
        let read = read_port_binding("default_web-0");
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].table(), Some(PORT_BINDING));
        let bound = result(json!([{
            "logical_port": "default_web-0",
            "chassis": ["uuid", CHASSIS_UUID],
            "up": ["set", [true]],
        }]));
        let (port, chassis, up) = parse_port_binding(&bound).unwrap();
        assert_eq!(port, "default_web-0");
        assert_eq!(chassis, Some(Uuid::parse(CHASSIS_UUID).unwrap()));
        assert_eq!(up, Some(true));
        let chassis = result(json!([{"name": "east-n0", "hostname": "box"}]));
        assert_eq!(
            parse_chassis(&chassis),
            Some(BoundChassis {
                name: "east-n0".into(),
                hostname: "box".into()
            })
        );
    }

    #[test]
    fn an_unclaimed_port_has_no_chassis_and_a_missing_one_no_row() {
        let unbound = result(json!([{
            "logical_port": "default_web-0",
            "chassis": ["set", []],
            "up": ["set", []],
        }]));
        assert_eq!(
            parse_port_binding(&unbound),
            Some(("default_web-0".to_owned(), None, None))
        );
        assert_eq!(parse_port_binding(&result(json!([]))), None);
        assert_eq!(parse_chassis(&result(json!([]))), None);
    }
}
