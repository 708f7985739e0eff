//! Typed `Load_Balancer` rows of `OVN_Northbound` and the operations that make them so.
//!
//! Nauti's load balancers are found by name **and** owner: a row counts as Nauti's only when its
//! `external_ids` carry the wanted `nauti.io/owner` value. Rows without it (made by an operator
//! or another controller) are never read as ours, updated, detached or deleted, even when they
//! share a name or a switch with ours. As in [`super::nb`], every write is planned from a read
//! and guarded by `wait` operations, and a plan for rows already as wanted has no writes.

use std::collections::BTreeMap;

use super::nb::{DB as NB_DB, LOGICAL_SWITCH, PlanError, guard_unchanged, map_col, rows_of};
use super::nb::{str_col, uuid_of};
use super::ops::{Condition, Mutation, Operation, OperationResult};
use super::value::{Atom, Row, Uuid, Value};

/// The northbound database name.
pub const DB: &str = NB_DB;
/// `Load_Balancer` table.
pub const LOAD_BALANCER: &str = "Load_Balancer";
/// The `external_ids` key naming the controller that owns a row.
pub const OWNER_KEY: &str = "nauti.io/owner";
/// The `external_ids` key naming the service (`namespace/name`) a load balancer serves.
pub const SERVICE_KEY: &str = "nauti.io/service";

/// The transport protocol of a load balancer (one per row in OVN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum LbProtocol {
    /// `tcp` (OVN's default when the column is empty).
    #[default]
    Tcp,
    /// `udp`.
    Udp,
    /// `sctp`.
    Sctp,
}

impl LbProtocol {
    /// The column value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
        }
    }

    /// From a Kubernetes protocol name (`TCP`, `UDP`, `SCTP`) or the column value.
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "tcp" => Some(Self::Tcp),
            "udp" => Some(Self::Udp),
            "sctp" => Some(Self::Sctp),
            _ => None,
        }
    }
}

/// A load balancer as Nauti wants it. `vips` and `external_ids` are owned as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoadBalancer {
    /// Name; with the owner it identifies the row.
    pub name: String,
    /// `"VIP:port"` → `"ip:port,ip:port"`.
    pub vips: BTreeMap<String, String>,
    /// The protocol of every VIP.
    pub protocol: LbProtocol,
    /// `external_ids`, including [`OWNER_KEY`].
    pub external_ids: BTreeMap<String, String>,
}

impl LoadBalancer {
    /// A load balancer without VIPs, owned by `owner`.
    pub fn new(name: impl Into<String>, protocol: LbProtocol, owner: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            vips: BTreeMap::new(),
            protocol,
            external_ids: BTreeMap::from([(OWNER_KEY.to_owned(), owner.into())]),
        }
    }

    /// Adds an `external_ids` entry.
    pub fn with_external_id(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.external_ids.insert(key.into(), value.into());
        self
    }

    /// Adds a VIP `vip` (`"ip:port"`) balanced over `backends` (`"ip:port"` each).
    pub fn with_vip<I, S>(mut self, vip: impl Into<String>, backends: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let joined: Vec<String> = backends.into_iter().map(Into::into).collect();
        self.vips.insert(vip.into(), joined.join(","));
        self
    }

    /// The owner, `external_ids:nauti.io/owner`.
    pub fn owner(&self) -> Option<&str> {
        self.external_ids.get(OWNER_KEY).map(String::as_str)
    }

    /// The owned columns as a row.
    pub fn to_row(&self) -> Row {
        Row::from([
            ("name".to_owned(), Value::from(self.name.as_str())),
            ("vips".to_owned(), Value::from(&self.vips)),
            (
                "protocol".to_owned(),
                Value::string_set([self.protocol.as_str()]),
            ),
            ("external_ids".to_owned(), Value::from(&self.external_ids)),
        ])
    }

    /// Reads the owned columns from a row (an empty or unknown protocol reads as TCP, as OVN
    /// treats it).
    pub fn from_row(row: &Row) -> Self {
        Self {
            name: str_col(row, "name"),
            vips: map_col(row, "vips"),
            protocol: row
                .get("protocol")
                .and_then(Value::as_str)
                .and_then(LbProtocol::parse)
                .unwrap_or_default(),
            external_ids: map_col(row, "external_ids"),
        }
    }
}

/// The condition "`external_ids` carries this owner".
fn owned_by(owner: &str) -> Condition {
    Condition::includes("external_ids", Value::string_map([(OWNER_KEY, owner)]))
}

/// The owner a batch is written for: every wanted row must carry one, and the same one.
fn owner_of(want: &[LoadBalancer]) -> Result<Option<&str>, PlanError> {
    let mut owner = None;
    for lb in want {
        match (owner, lb.owner()) {
            (_, None) => {
                return Err(PlanError::BadRead(format!(
                    "load balancer {:?} has no {OWNER_KEY}",
                    lb.name
                )));
            }
            (None, Some(o)) => owner = Some(o),
            (Some(a), Some(b)) if a != b => {
                return Err(PlanError::BadRead(format!(
                    "load balancers of owners {a:?} and {b:?} in one batch"
                )));
            }
            _ => {}
        }
    }
    Ok(owner)
}

/// What the plan for a batch of load balancers needs to know.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadBalancersSnapshot {
    /// The switch's UUID and its `load_balancer` set.
    pub switch: Option<(Uuid, Vec<Uuid>)>,
    /// Per wanted name, in order: the rows of that name with our owner (normally zero or one).
    pub rows: Vec<Vec<(Uuid, LoadBalancer)>>,
}

/// Reads the switch and, per name, the rows of that name owned by `owner`.
pub fn read_load_balancers(switch: &str, owner: &str, names: &[&str]) -> Vec<Operation> {
    let mut ops = vec![Operation::select(
        LOGICAL_SWITCH,
        vec![Condition::eq("name", switch)],
        &["_uuid", "load_balancer"],
    )];
    ops.extend(names.iter().map(|name| {
        Operation::select(
            LOAD_BALANCER,
            vec![Condition::eq("name", *name), owned_by(owner)],
            &[],
        )
    }));
    ops
}

/// Interprets the results of [`read_load_balancers`].
pub fn parse_load_balancers(
    switch: &str,
    results: &[OperationResult],
) -> Result<LoadBalancersSnapshot, PlanError> {
    let sw = match rows_of(results.first())? {
        [] => None,
        [row] => Some((
            uuid_of(row)?,
            row.get("load_balancer")
                .map(Value::uuids)
                .unwrap_or_default(),
        )),
        rows => {
            return Err(PlanError::DuplicateSwitch {
                name: switch.to_owned(),
                count: rows.len(),
            });
        }
    };
    let mut per_name = Vec::with_capacity(results.len().saturating_sub(1));
    for result in results.iter().skip(1) {
        let mut found = Vec::new();
        for row in rows_of(Some(result))? {
            found.push((uuid_of(row)?, LoadBalancer::from_row(row)));
        }
        per_name.push(found);
    }
    Ok(LoadBalancersSnapshot {
        switch: sw,
        rows: per_name,
    })
}

/// A `wait` that fails at once if a row named `name` with this owner exists.
fn guard_no_owned(name: &str, owner: &str) -> Operation {
    Operation::Wait {
        table: LOAD_BALANCER.to_owned(),
        conditions: vec![Condition::eq("name", name), owned_by(owner)],
        columns: vec!["name".to_owned()],
        until_equal: true,
        rows: vec![],
        timeout_ms: Some(0),
    }
}

/// Operations that make every wanted load balancer exist as wanted and attached to the switch.
/// Extra rows of one name and owner (left by a concurrent writer) are deleted. Empty when
/// everything already is as wanted.
pub fn plan_ensure_load_balancers(
    switch: &str,
    snapshot: &LoadBalancersSnapshot,
    want: &[LoadBalancer],
) -> Result<Vec<Operation>, PlanError> {
    let Some(owner) = owner_of(want)? else {
        return Ok(Vec::new());
    };
    let (sw_uuid, sw_lbs) = snapshot
        .switch
        .as_ref()
        .ok_or_else(|| PlanError::NoSuchSwitch(switch.to_owned()))?;
    if snapshot.rows.len() != want.len() {
        return Err(PlanError::BadRead(format!(
            "{} load balancer reads for {} load balancers",
            snapshot.rows.len(),
            want.len()
        )));
    }
    let mut ops = Vec::new();
    let mut attach = Vec::new();
    for (i, (w, current)) in want.iter().zip(&snapshot.rows).enumerate() {
        match current.split_first() {
            None => {
                let named = format!("lb{i}");
                ops.push(guard_no_owned(&w.name, owner));
                ops.push(Operation::insert_named(LOAD_BALANCER, w.to_row(), &named));
                attach.push(Atom::NamedUuid(named));
            }
            Some(((uuid, row), extras)) => {
                if row != w {
                    ops.push(guard_unchanged(
                        LOAD_BALANCER,
                        uuid,
                        "name",
                        Value::from(w.name.as_str()),
                    ));
                    ops.push(Operation::update(
                        LOAD_BALANCER,
                        vec![Condition::uuid(uuid)],
                        w.to_row(),
                    ));
                }
                if !sw_lbs.contains(uuid) {
                    attach.push(Atom::Uuid(uuid.clone()));
                }
                for (extra, _) in extras {
                    ops.push(Operation::delete(
                        LOAD_BALANCER,
                        vec![Condition::uuid(extra)],
                    ));
                }
            }
        }
    }
    if !attach.is_empty() {
        ops.push(guard_unchanged(
            LOGICAL_SWITCH,
            sw_uuid,
            "name",
            Value::from(switch),
        ));
        ops.push(Operation::mutate(
            LOGICAL_SWITCH,
            vec![Condition::uuid(sw_uuid)],
            vec![Mutation::insert("load_balancer", Value::Set(attach))],
        ));
    }
    Ok(ops)
}

/// Reads the UUIDs of the rows with these names owned by `owner`.
pub fn read_owned_load_balancer_uuids(owner: &str, names: &[&str]) -> Vec<Operation> {
    names
        .iter()
        .map(|name| {
            Operation::select(
                LOAD_BALANCER,
                vec![Condition::eq("name", *name), owned_by(owner)],
                &["_uuid"],
            )
        })
        .collect()
}

/// Interprets the results of [`read_owned_load_balancer_uuids`].
pub fn parse_load_balancer_uuids(results: &[OperationResult]) -> Result<Vec<Uuid>, PlanError> {
    let mut out = Vec::new();
    for result in results {
        for row in rows_of(Some(result))? {
            out.push(uuid_of(row)?);
        }
    }
    Ok(out)
}

/// Reads the names of every row owned by `owner`.
pub fn read_owned_load_balancers(owner: &str) -> Vec<Operation> {
    vec![Operation::select(
        LOAD_BALANCER,
        vec![owned_by(owner)],
        &["name"],
    )]
}

/// Interprets the results of [`read_owned_load_balancers`]: sorted names, each once.
pub fn parse_load_balancer_names(results: &[OperationResult]) -> Result<Vec<String>, PlanError> {
    let names: std::collections::BTreeSet<String> = rows_of(results.first())?
        .iter()
        .map(|row| str_col(row, "name"))
        .collect();
    Ok(names.into_iter().collect())
}

/// Operations that detach the load balancers from every switch holding them and delete them.
pub fn plan_remove_load_balancers(existing: &[Uuid]) -> Vec<Operation> {
    super::nb::plan_detach_and_delete(LOGICAL_SWITCH, "load_balancer", LOAD_BALANCER, existing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lb(name: &str) -> LoadBalancer {
        LoadBalancer::new(name, LbProtocol::Tcp, "octopus")
            .with_external_id(SERVICE_KEY, "default/web")
            .with_vip("10.127.0.10:80", ["10.112.0.5:8080", "10.113.0.7:8080"])
    }

    fn snapshot(
        switch_lbs: Vec<Uuid>,
        rows: Vec<Vec<(Uuid, LoadBalancer)>>,
    ) -> LoadBalancersSnapshot {
        LoadBalancersSnapshot {
            switch: Some((
                Uuid::parse("00000000-0000-0000-0000-000000000001").unwrap(),
                switch_lbs,
            )),
            rows,
        }
    }

    fn uuid(n: u8) -> Uuid {
        Uuid::parse(&format!("00000000-0000-0000-0000-0000000000{n:02x}")).unwrap()
    }

    #[test]
    fn a_row_reads_back_as_written() {
        let want = lb("web").with_external_id("x", "y");
        let mut row = want.to_row();
        row.insert("_uuid".into(), Value::Atom(Atom::Uuid(uuid(9))));
        assert_eq!(LoadBalancer::from_row(&row), want);
        assert_eq!(
            want.vips["10.127.0.10:80"],
            "10.112.0.5:8080,10.113.0.7:8080"
        );
    }

    #[test]
    fn a_missing_row_is_inserted_guarded_and_attached() {
        let ops = plan_ensure_load_balancers("ls", &snapshot(vec![], vec![vec![]]), &[lb("web")])
            .unwrap();
        let kinds: Vec<&str> = ops.iter().map(op_kind).collect();
        assert_eq!(kinds, ["wait", "insert", "wait", "mutate"]);
    }

    #[test]
    fn a_row_as_wanted_and_attached_plans_nothing() {
        let ops = plan_ensure_load_balancers(
            "ls",
            &snapshot(vec![uuid(2)], vec![vec![(uuid(2), lb("web"))]]),
            &[lb("web")],
        )
        .unwrap();
        assert!(ops.is_empty(), "{ops:?}");
    }

    #[test]
    fn a_changed_row_is_updated_and_a_detached_one_attached() {
        let old = LoadBalancer::new("web", LbProtocol::Tcp, "octopus");
        let ops = plan_ensure_load_balancers(
            "ls",
            &snapshot(vec![], vec![vec![(uuid(2), old)]]),
            &[lb("web")],
        )
        .unwrap();
        let kinds: Vec<&str> = ops.iter().map(op_kind).collect();
        assert_eq!(kinds, ["wait", "update", "wait", "mutate"]);
    }

    #[test]
    fn rows_without_an_owner_are_refused_and_a_missing_switch_is_an_error() {
        let mut unowned = lb("web");
        unowned.external_ids.clear();
        assert!(
            plan_ensure_load_balancers("ls", &snapshot(vec![], vec![vec![]]), &[unowned]).is_err()
        );
        let none = LoadBalancersSnapshot {
            switch: None,
            rows: vec![vec![]],
        };
        assert_eq!(
            plan_ensure_load_balancers("ls", &none, &[lb("web")]),
            Err(PlanError::NoSuchSwitch("ls".into()))
        );
    }

    #[test]
    fn reads_select_by_name_and_owner() {
        let ops = read_load_balancers("ls", "octopus", &["web"]);
        let json = ops[1].to_json().to_string();
        assert!(
            json.contains(OWNER_KEY) && json.contains("octopus"),
            "{json}"
        );
    }

    fn op_kind(op: &Operation) -> &'static str {
        match op {
            Operation::Insert { .. } => "insert",
            Operation::Update { .. } => "update",
            Operation::Mutate { .. } => "mutate",
            Operation::Delete { .. } => "delete",
            Operation::Wait { .. } => "wait",
            _ => "other",
        }
    }
}
