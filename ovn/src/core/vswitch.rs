//! Typed rows of `Open_vSwitch`: a port with one interface on a bridge (usually `br-int`).
//!
//! ovn-controller binds a logical switch port to the OVS interface whose
//! `external_ids:iface-id` names it. Ports and interfaces are not root rows: a port lives as long
//! as a bridge references it, an interface as long as a port does.

use std::collections::BTreeMap;

use super::nb::{PlanError, guard_unchanged, map_col, rows_of, str_col, uuid_of};
use super::ops::{Condition, Mutation, Operation, OperationResult};
use super::value::{Atom, Row, Uuid, Value};

/// The Open vSwitch database name.
pub const DB: &str = "Open_vSwitch";
/// `Bridge` table.
pub const BRIDGE: &str = "Bridge";
/// `Port` table.
pub const PORT: &str = "Port";
/// `Interface` table.
pub const INTERFACE: &str = "Interface";

/// An OVS port with a single interface of the same name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OvsPort {
    /// Port and interface name (the netdev's name, e.g. the host end of a veth).
    pub name: String,
    /// Interface `type`: empty for a system netdev, `internal`, `patch`, ...
    pub interface_type: String,
    /// Interface `external_ids`, owned as a whole (`iface-id`, `attached-mac`, ...).
    pub external_ids: BTreeMap<String, String>,
}

impl OvsPort {
    /// A system port.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// Sets `external_ids:iface-id`, the logical switch port this interface is.
    pub fn with_iface_id(mut self, lsp: impl Into<String>) -> Self {
        self.external_ids.insert("iface-id".into(), lsp.into());
        self
    }

    /// Adds an `external_ids` entry.
    pub fn with_external_id(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.external_ids.insert(key.into(), value.into());
        self
    }

    /// `external_ids:iface-id`.
    pub fn iface_id(&self) -> Option<&str> {
        self.external_ids.get("iface-id").map(String::as_str)
    }

    /// The columns set on update: `name` is immutable in the schema.
    fn interface_update_row(&self) -> Row {
        let mut row = self.interface_row();
        row.remove("name");
        row
    }

    fn interface_row(&self) -> Row {
        Row::from([
            ("name".to_owned(), Value::from(self.name.as_str())),
            ("type".to_owned(), Value::from(self.interface_type.as_str())),
            ("external_ids".to_owned(), Value::from(&self.external_ids)),
        ])
    }

    /// Reads the owned columns from an `Interface` row.
    pub fn from_interface_row(row: &Row) -> Self {
        Self {
            name: str_col(row, "name"),
            interface_type: str_col(row, "type"),
            external_ids: map_col(row, "external_ids"),
        }
    }
}

/// What the plan for one port needs to know.
#[derive(Debug, Clone, PartialEq)]
pub struct PortSnapshot {
    /// The bridge's UUID and its `ports`.
    pub bridge: Option<(Uuid, Vec<Uuid>)>,
    /// The port's UUID and its interfaces, if it exists.
    pub port: Option<(Uuid, Vec<Uuid>)>,
    /// The interface named like the port: its UUID and state.
    pub interface: Option<(Uuid, OvsPort)>,
}

/// Reads the bridge, the port and the interface, in one transaction.
pub fn read_port(bridge: &str, name: &str) -> Vec<Operation> {
    vec![
        Operation::select(
            BRIDGE,
            vec![Condition::eq("name", bridge)],
            &["_uuid", "ports"],
        ),
        Operation::select(
            PORT,
            vec![Condition::eq("name", name)],
            &["_uuid", "interfaces"],
        ),
        Operation::select(INTERFACE, vec![Condition::eq("name", name)], &[]),
    ]
}

/// Interprets the results of [`read_port`].
pub fn parse_port(results: &[OperationResult]) -> Result<PortSnapshot, PlanError> {
    let with_set = |row: &Row, col: &str| -> Result<(Uuid, Vec<Uuid>), PlanError> {
        Ok((
            uuid_of(row)?,
            row.get(col).map(Value::uuids).unwrap_or_default(),
        ))
    };
    let bridge = rows_of(results.first())?
        .first()
        .map(|r| with_set(r, "ports"))
        .transpose()?;
    let port = rows_of(results.get(1))?
        .first()
        .map(|r| with_set(r, "interfaces"))
        .transpose()?;
    let interface = rows_of(results.get(2))?
        .first()
        .map(|r| Ok::<_, PlanError>((uuid_of(r)?, OvsPort::from_interface_row(r))))
        .transpose()?;
    Ok(PortSnapshot {
        bridge,
        port,
        interface,
    })
}

/// Operations that make the port exist on the bridge with its interface as wanted.
pub fn plan_ensure_port(
    bridge: &str,
    snapshot: &PortSnapshot,
    want: &OvsPort,
) -> Result<Vec<Operation>, PlanError> {
    let (br_uuid, br_ports) = snapshot
        .bridge
        .as_ref()
        .ok_or_else(|| PlanError::NoSuchBridge(bridge.to_owned()))?;
    let mut ops = Vec::new();
    let bridge_guard = guard_unchanged(BRIDGE, br_uuid, "name", Value::from(bridge));
    match (&snapshot.port, &snapshot.interface) {
        (Some((port_uuid, ifaces)), Some((iface_uuid, current))) if ifaces.contains(iface_uuid) => {
            if current != want {
                ops.push(guard_unchanged(
                    INTERFACE,
                    iface_uuid,
                    "name",
                    Value::from(want.name.as_str()),
                ));
                ops.push(Operation::update(
                    INTERFACE,
                    vec![Condition::uuid(iface_uuid)],
                    want.interface_update_row(),
                ));
            }
            if !br_ports.contains(port_uuid) {
                let atom = Value::Atom(Atom::Uuid(port_uuid.clone()));
                ops.push(Operation::mutate(
                    BRIDGE,
                    vec![Condition::includes("ports", atom.clone())],
                    vec![Mutation::delete("ports", atom.clone())],
                ));
                ops.push(bridge_guard);
                ops.push(Operation::mutate(
                    BRIDGE,
                    vec![Condition::uuid(br_uuid)],
                    vec![Mutation::insert("ports", atom)],
                ));
            }
        }
        (port, _) => {
            // Absent, or a port whose interfaces are not what we manage: rebuild it.
            if let Some((port_uuid, _)) = port {
                let atom = Value::Atom(Atom::Uuid(port_uuid.clone()));
                ops.push(Operation::mutate(
                    BRIDGE,
                    vec![Condition::includes("ports", atom.clone())],
                    vec![Mutation::delete("ports", atom)],
                ));
                ops.push(Operation::delete(PORT, vec![Condition::uuid(port_uuid)]));
            }
            ops.push(Operation::insert_named(
                INTERFACE,
                want.interface_row(),
                "iface",
            ));
            ops.push(Operation::insert_named(
                PORT,
                Row::from([
                    ("name".to_owned(), Value::from(want.name.as_str())),
                    (
                        "interfaces".to_owned(),
                        Value::Set(vec![Atom::NamedUuid("iface".into())]),
                    ),
                ]),
                "port",
            ));
            ops.push(bridge_guard);
            ops.push(Operation::mutate(
                BRIDGE,
                vec![Condition::uuid(br_uuid)],
                vec![Mutation::insert(
                    "ports",
                    Value::Set(vec![Atom::NamedUuid("port".into())]),
                )],
            ));
        }
    }
    Ok(ops)
}

/// Operations that take the port off every bridge and delete it (its interface goes with it).
pub fn plan_remove_port(snapshot: &PortSnapshot) -> Vec<Operation> {
    let Some((port_uuid, _)) = &snapshot.port else {
        return Vec::new();
    };
    let atom = Value::Atom(Atom::Uuid(port_uuid.clone()));
    vec![
        Operation::mutate(
            BRIDGE,
            vec![Condition::includes("ports", atom.clone())],
            vec![Mutation::delete("ports", atom)],
        ),
        Operation::delete(PORT, vec![Condition::uuid(port_uuid)]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(n: u8) -> Uuid {
        Uuid::parse(&format!("{n:08x}-0000-0000-0000-000000000000")).unwrap()
    }

    #[test]
    fn a_new_port_gets_an_interface_and_joins_the_bridge() {
        let snap = PortSnapshot {
            bridge: Some((u(1), vec![])),
            port: None,
            interface: None,
        };
        let ops = plan_ensure_port(
            "br-int",
            &snap,
            &OvsPort::new("veth1").with_iface_id("ns_pod"),
        )
        .unwrap();
        assert!(matches!(
            ops[..],
            [
                Operation::Insert { .. },
                Operation::Insert { .. },
                Operation::Wait { .. },
                Operation::Mutate { .. }
            ]
        ));
    }

    #[test]
    fn a_port_as_wanted_needs_no_write_and_a_changed_iface_id_is_updated() {
        let want = OvsPort::new("veth1").with_iface_id("ns_pod");
        let snap = PortSnapshot {
            bridge: Some((u(1), vec![u(2)])),
            port: Some((u(2), vec![u(3)])),
            interface: Some((u(3), want.clone())),
        };
        assert!(plan_ensure_port("br-int", &snap, &want).unwrap().is_empty());
        let other = OvsPort::new("veth1").with_iface_id("ns_other");
        assert!(matches!(
            plan_ensure_port("br-int", &snap, &other).unwrap()[..],
            [Operation::Wait { .. }, Operation::Update { .. }]
        ));
    }

    #[test]
    fn a_missing_bridge_is_refused_and_removing_an_absent_port_does_nothing() {
        let snap = PortSnapshot {
            bridge: None,
            port: None,
            interface: None,
        };
        assert_eq!(
            plan_ensure_port("br-int", &snap, &OvsPort::new("x")),
            Err(PlanError::NoSuchBridge("br-int".into()))
        );
        assert!(plan_remove_port(&snap).is_empty());
    }
}
