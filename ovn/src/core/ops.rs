//! Transaction operations (RFC 7047 section 5.2) and their results.

use serde_json::{Map, Value as Json, json};
use thiserror::Error;

use super::error::ServerError;
use super::schema::{ColumnType, DatabaseSchema, SchemaError};
use super::value::{Row, Uuid, Value, row_to_json};

/// Comparison functions of a `<condition>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `>=`
    Ge,
    /// `>`
    Gt,
    /// `includes` (superset)
    Includes,
    /// `excludes` (disjoint)
    Excludes,
}

impl Function {
    fn as_str(self) -> &'static str {
        match self {
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Eq => "==",
            Self::Ne => "!=",
            Self::Ge => ">=",
            Self::Gt => ">",
            Self::Includes => "includes",
            Self::Excludes => "excludes",
        }
    }
}

/// `[column, function, value]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// Column name (may be `_uuid`).
    pub column: String,
    /// Comparison.
    pub function: Function,
    /// Value compared against.
    pub value: Value,
}

impl Condition {
    /// `column == value`.
    pub fn eq(column: &str, value: impl Into<Value>) -> Self {
        Self {
            column: column.to_owned(),
            function: Function::Eq,
            value: value.into(),
        }
    }

    /// `_uuid == uuid`.
    pub fn uuid(uuid: &Uuid) -> Self {
        Self::eq("_uuid", Value::Atom(uuid.clone().into()))
    }

    /// `column includes value`.
    pub fn includes(column: &str, value: impl Into<Value>) -> Self {
        Self {
            column: column.to_owned(),
            function: Function::Includes,
            value: value.into(),
        }
    }

    /// `column != value`.
    pub fn ne(column: &str, value: impl Into<Value>) -> Self {
        Self {
            column: column.to_owned(),
            function: Function::Ne,
            value: value.into(),
        }
    }

    /// Encodes the condition as `[column, function, value]`.
    pub fn to_json(&self) -> Json {
        json!([self.column, self.function.as_str(), self.value.to_json()])
    }
}

/// Mutators of a `<mutation>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutator {
    /// `+=`
    Add,
    /// `-=`
    Sub,
    /// `*=`
    Mul,
    /// `/=`
    Div,
    /// `%=`
    Mod,
    /// `insert` into a set or map
    Insert,
    /// `delete` from a set or map
    Delete,
}

impl Mutator {
    fn as_str(self) -> &'static str {
        match self {
            Self::Add => "+=",
            Self::Sub => "-=",
            Self::Mul => "*=",
            Self::Div => "/=",
            Self::Mod => "%=",
            Self::Insert => "insert",
            Self::Delete => "delete",
        }
    }
}

/// `[column, mutator, value]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Mutation {
    /// Column name.
    pub column: String,
    /// How to change it.
    pub mutator: Mutator,
    /// Operand.
    pub value: Value,
}

impl Mutation {
    /// `column insert value`.
    pub fn insert(column: &str, value: impl Into<Value>) -> Self {
        Self {
            column: column.to_owned(),
            mutator: Mutator::Insert,
            value: value.into(),
        }
    }

    /// `column delete value`.
    pub fn delete(column: &str, value: impl Into<Value>) -> Self {
        Self {
            column: column.to_owned(),
            mutator: Mutator::Delete,
            value: value.into(),
        }
    }

    /// `column += value`.
    pub fn add(column: &str, value: impl Into<Value>) -> Self {
        Self {
            column: column.to_owned(),
            mutator: Mutator::Add,
            value: value.into(),
        }
    }
}

/// One operation of a `transact` request.
#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    /// Inserts a row, optionally naming it for references within the same transaction.
    Insert {
        /// Table.
        table: String,
        /// Column values (others take their defaults).
        row: Row,
        /// `uuid-name` for `["named-uuid", name]` references.
        uuid_name: Option<String>,
    },
    /// Reads rows.
    Select {
        /// Table.
        table: String,
        /// Conditions, all of which must hold.
        conditions: Vec<Condition>,
        /// Columns to return; `None` returns all.
        columns: Option<Vec<String>>,
    },
    /// Sets columns of matching rows.
    Update {
        /// Table.
        table: String,
        /// Conditions.
        conditions: Vec<Condition>,
        /// New column values.
        row: Row,
    },
    /// Changes columns of matching rows relative to their current value.
    Mutate {
        /// Table.
        table: String,
        /// Conditions.
        conditions: Vec<Condition>,
        /// Mutations.
        mutations: Vec<Mutation>,
    },
    /// Deletes matching rows.
    Delete {
        /// Table.
        table: String,
        /// Conditions.
        conditions: Vec<Condition>,
    },
    /// Waits until the selected columns of matching rows do (or do not) equal `rows`.
    Wait {
        /// Table.
        table: String,
        /// Conditions.
        conditions: Vec<Condition>,
        /// Columns compared.
        columns: Vec<String>,
        /// `true` for `"=="`, `false` for `"!="`.
        until_equal: bool,
        /// Expected rows (projections on `columns`).
        rows: Vec<Row>,
        /// Milliseconds to wait; `Some(0)` fails at once, `None` waits indefinitely.
        timeout_ms: Option<u64>,
    },
    /// Adds a comment to the database log.
    Comment(String),
    /// Aborts the transaction (always fails it with `aborted`).
    Abort,
}

impl Operation {
    /// An insert without a `uuid-name`.
    pub fn insert(table: &str, row: Row) -> Self {
        Self::Insert {
            table: table.to_owned(),
            row,
            uuid_name: None,
        }
    }

    /// An insert that later operations reference as `["named-uuid", name]`.
    pub fn insert_named(table: &str, row: Row, name: &str) -> Self {
        Self::Insert {
            table: table.to_owned(),
            row,
            uuid_name: Some(name.to_owned()),
        }
    }

    /// A select of some columns (all when `columns` is empty).
    pub fn select(table: &str, conditions: Vec<Condition>, columns: &[&str]) -> Self {
        Self::Select {
            table: table.to_owned(),
            conditions,
            columns: (!columns.is_empty())
                .then(|| columns.iter().map(|c| (*c).to_owned()).collect()),
        }
    }

    /// An update.
    pub fn update(table: &str, conditions: Vec<Condition>, row: Row) -> Self {
        Self::Update {
            table: table.to_owned(),
            conditions,
            row,
        }
    }

    /// A mutate.
    pub fn mutate(table: &str, conditions: Vec<Condition>, mutations: Vec<Mutation>) -> Self {
        Self::Mutate {
            table: table.to_owned(),
            conditions,
            mutations,
        }
    }

    /// A delete.
    pub fn delete(table: &str, conditions: Vec<Condition>) -> Self {
        Self::Delete {
            table: table.to_owned(),
            conditions,
        }
    }

    /// The table this operation works on.
    pub fn table(&self) -> Option<&str> {
        match self {
            Self::Insert { table, .. }
            | Self::Select { table, .. }
            | Self::Update { table, .. }
            | Self::Mutate { table, .. }
            | Self::Delete { table, .. }
            | Self::Wait { table, .. } => Some(table),
            Self::Comment(_) | Self::Abort => None,
        }
    }

    /// Encodes the operation.
    pub fn to_json(&self) -> Json {
        let conds = |c: &[Condition]| Json::Array(c.iter().map(Condition::to_json).collect());
        match self {
            Self::Insert {
                table,
                row,
                uuid_name,
            } => {
                let mut o = Map::new();
                o.insert("op".into(), json!("insert"));
                o.insert("table".into(), json!(table));
                o.insert("row".into(), row_to_json(row));
                if let Some(n) = uuid_name {
                    o.insert("uuid-name".into(), json!(n));
                }
                Json::Object(o)
            }
            Self::Select {
                table,
                conditions,
                columns,
            } => {
                let mut o = Map::new();
                o.insert("op".into(), json!("select"));
                o.insert("table".into(), json!(table));
                o.insert("where".into(), conds(conditions));
                if let Some(c) = columns {
                    o.insert("columns".into(), json!(c));
                }
                Json::Object(o)
            }
            Self::Update {
                table,
                conditions,
                row,
            } => json!({
                "op": "update", "table": table, "where": conds(conditions), "row": row_to_json(row)
            }),
            Self::Mutate {
                table,
                conditions,
                mutations,
            } => json!({
                "op": "mutate", "table": table, "where": conds(conditions),
                "mutations": mutations
                    .iter()
                    .map(|m| json!([m.column, m.mutator.as_str(), m.value.to_json()]))
                    .collect::<Vec<_>>()
            }),
            Self::Delete { table, conditions } => {
                json!({"op": "delete", "table": table, "where": conds(conditions)})
            }
            Self::Wait {
                table,
                conditions,
                columns,
                until_equal,
                rows,
                timeout_ms,
            } => {
                let mut o = Map::new();
                o.insert("op".into(), json!("wait"));
                o.insert("table".into(), json!(table));
                o.insert("where".into(), conds(conditions));
                o.insert("columns".into(), json!(columns));
                o.insert(
                    "until".into(),
                    json!(if *until_equal { "==" } else { "!=" }),
                );
                o.insert(
                    "rows".into(),
                    Json::Array(rows.iter().map(row_to_json).collect()),
                );
                if let Some(t) = timeout_ms {
                    o.insert("timeout".into(), json!(t));
                }
                Json::Object(o)
            }
            Self::Comment(text) => json!({"op": "comment", "comment": text}),
            Self::Abort => json!({"op": "abort"}),
        }
    }

    /// Checks table, column names and value types against a schema.
    pub fn check(&self, schema: &DatabaseSchema) -> Result<(), SchemaError> {
        let Some(table) = self.table() else {
            return Ok(());
        };
        let t = schema.table(table)?;
        let check_conditions = |conditions: &[Condition]| -> Result<(), SchemaError> {
            for c in conditions {
                let ty = schema.column_type(table, &c.column)?;
                // `includes` and `excludes` take any subset, so only element types are checked.
                let ty = if matches!(c.function, Function::Includes | Function::Excludes) {
                    ColumnType {
                        min: 0,
                        max: None,
                        ..ty
                    }
                } else {
                    ty
                };
                ty.check(&c.value)
                    .map_err(|reason| SchemaError::WrongType {
                        table: table.to_owned(),
                        column: c.column.clone(),
                        reason,
                    })?;
            }
            Ok(())
        };
        let check_row = |row: &Row| -> Result<(), SchemaError> {
            for (column, value) in row {
                if !t.columns.contains_key(column) {
                    return Err(SchemaError::UnknownColumn {
                        table: table.to_owned(),
                        column: column.clone(),
                    });
                }
                schema.check_value(table, column, value)?;
            }
            Ok(())
        };
        let check_mutable =
            |columns: &mut dyn Iterator<Item = &String>| -> Result<(), SchemaError> {
                for c in columns {
                    if t.columns.get(c).is_some_and(|c| !c.mutable) {
                        return Err(SchemaError::WrongType {
                            table: table.to_owned(),
                            column: c.clone(),
                            reason: "the column is immutable: it can only be set on insert".into(),
                        });
                    }
                }
                Ok(())
            };
        let check_columns = |columns: &[String]| -> Result<(), SchemaError> {
            for c in columns {
                schema.column_type(table, c)?;
            }
            Ok(())
        };
        match self {
            Self::Insert { row, .. } => check_row(row),
            Self::Select {
                conditions,
                columns,
                ..
            } => {
                check_conditions(conditions)?;
                check_columns(columns.as_deref().unwrap_or_default())
            }
            Self::Update {
                conditions, row, ..
            } => {
                check_conditions(conditions)?;
                check_row(row)?;
                check_mutable(&mut row.keys())
            }
            Self::Mutate {
                conditions,
                mutations,
                ..
            } => {
                check_conditions(conditions)?;
                check_mutable(&mut mutations.iter().map(|m| &m.column))?;
                for m in mutations {
                    let ty = schema.column_type(table, &m.column)?;
                    let operand = match m.mutator {
                        // Deleting from a map may name keys only.
                        Mutator::Delete if ty.is_map() && !matches!(m.value, Value::Map(_)) => {
                            ColumnType {
                                value: None,
                                min: 0,
                                max: None,
                                ..ty
                            }
                        }
                        // Insert and delete take a subset of the column's type.
                        Mutator::Insert | Mutator::Delete => ColumnType {
                            min: 0,
                            max: None,
                            ..ty
                        },
                        // Arithmetic takes one atom of the element type.
                        _ => ColumnType {
                            min: 1,
                            max: Some(1),
                            value: None,
                            ..ty
                        },
                    };
                    operand
                        .check(&m.value)
                        .map_err(|reason| SchemaError::WrongType {
                            table: table.to_owned(),
                            column: m.column.clone(),
                            reason,
                        })?;
                }
                Ok(())
            }
            Self::Delete { conditions, .. } => check_conditions(conditions),
            Self::Wait {
                conditions,
                columns,
                rows,
                ..
            } => {
                check_conditions(conditions)?;
                check_columns(columns)?;
                rows.iter().try_for_each(check_row)
            }
            Self::Comment(_) | Self::Abort => Ok(()),
        }
    }
}

/// The result of one successful operation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OperationResult {
    /// Rows affected (update, mutate, delete).
    pub count: Option<u64>,
    /// UUID of the inserted row (insert).
    pub uuid: Option<Uuid>,
    /// Rows read (select).
    pub rows: Option<Vec<Row>>,
}

/// A transaction the server refused.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum TransactError {
    /// An operation failed; nothing of the transaction was committed.
    #[error("operation {index} ({op}) failed: {error}")]
    Operation {
        /// Index of the failing operation.
        index: usize,
        /// Its kind (`insert`, `mutate`, ...) and table.
        op: String,
        /// The server's error.
        error: ServerError,
    },
    /// Every operation succeeded but the commit failed (for example a constraint violation).
    #[error("commit failed: {0}")]
    Commit(ServerError),
    /// The result array does not match the request.
    #[error("malformed transact result: {0}")]
    Malformed(String),
}

impl TransactError {
    /// The server error behind this failure, if there is one.
    pub fn server_error(&self) -> Option<&ServerError> {
        match self {
            Self::Operation { error, .. } | Self::Commit(error) => Some(error),
            Self::Malformed(_) => None,
        }
    }
}

fn op_label(op: &Operation) -> String {
    let kind = match op {
        Operation::Insert { .. } => "insert",
        Operation::Select { .. } => "select",
        Operation::Update { .. } => "update",
        Operation::Mutate { .. } => "mutate",
        Operation::Delete { .. } => "delete",
        Operation::Wait { .. } => "wait",
        Operation::Comment(_) => "comment",
        Operation::Abort => "abort",
    };
    match op.table() {
        Some(t) => format!("{kind} {t}"),
        None => kind.to_owned(),
    }
}

/// Interprets a `transact` result: one entry per operation, possibly one more for a commit
/// error. Rows of `select`s are decoded with the schema when one is given.
pub fn parse_transact_result(
    ops: &[Operation],
    result: &Json,
    schema: Option<&DatabaseSchema>,
) -> Result<Vec<OperationResult>, TransactError> {
    let Json::Array(items) = result else {
        return Err(TransactError::Malformed("result is not an array".into()));
    };
    // Errors first: the server stops at the first failing operation and reports it.
    for (index, item) in items.iter().enumerate() {
        // An operation or commit error is an object with "error" and "details" members.
        if item.get("error").is_some_and(|e| !e.is_null()) {
            let error = ServerError::from_json(item);
            return Err(match ops.get(index) {
                Some(op) => TransactError::Operation {
                    index,
                    op: op_label(op),
                    error,
                },
                None => TransactError::Commit(error),
            });
        }
    }
    if items.len() < ops.len() {
        return Err(TransactError::Malformed(format!(
            "{} results for {} operations",
            items.len(),
            ops.len()
        )));
    }
    let mut out = Vec::with_capacity(ops.len());
    for (op, item) in ops.iter().zip(items) {
        let mut r = OperationResult {
            count: item.get("count").and_then(Json::as_u64),
            ..OperationResult::default()
        };
        if let Some(u) = item.get("uuid") {
            let v = Value::from_json(u).map_err(|e| TransactError::Malformed(e.to_string()))?;
            r.uuid = Some(v.as_uuid().cloned().ok_or_else(|| {
                TransactError::Malformed(format!("insert result uuid {u} is not a uuid"))
            })?);
        }
        if let Some(Json::Array(rows)) = item.get("rows") {
            let decoded = rows
                .iter()
                .map(|row| match (schema, op.table()) {
                    (Some(s), Some(t)) => s
                        .decode_row(t, row)
                        .map_err(|e| TransactError::Malformed(e.to_string())),
                    _ => super::value::row_from_json(row)
                        .map_err(|e| TransactError::Malformed(e.to_string())),
                })
                .collect::<Result<Vec<_>, _>>()?;
            r.rows = Some(decoded);
        }
        out.push(r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::error::ErrorKind;

    fn nb() -> DatabaseSchema {
        let text = std::fs::read_to_string("/usr/share/ovn/ovn-nb.ovsschema").unwrap();
        DatabaseSchema::from_json(&serde_json::from_str(&text).unwrap()).unwrap()
    }

    fn row(pairs: &[(&str, Value)]) -> Row {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn operations_encode_as_rfc7047_objects() {
        let ins = Operation::insert_named(
            "Logical_Switch_Port",
            row(&[
                ("name", "p1".into()),
                ("addresses", Value::string_set(["m i"])),
            ]),
            "lsp0",
        );
        assert_eq!(
            ins.to_json(),
            json!({"op": "insert", "table": "Logical_Switch_Port", "uuid-name": "lsp0",
                   "row": {"name": "p1", "addresses": ["set", ["m i"]]}})
        );
        let m = Operation::mutate(
            "Logical_Switch",
            vec![Condition::eq("name", "ls")],
            vec![Mutation::insert(
                "ports",
                Value::Set(vec![crate::core::value::Atom::NamedUuid("lsp0".into())]),
            )],
        );
        assert_eq!(
            m.to_json(),
            json!({"op": "mutate", "table": "Logical_Switch", "where": [["name", "==", "ls"]],
                   "mutations": [["ports", "insert", ["set", [["named-uuid", "lsp0"]]]]]})
        );
        let w = Operation::Wait {
            table: "Logical_Switch".into(),
            conditions: vec![Condition::eq("name", "ls")],
            columns: vec!["name".into()],
            until_equal: true,
            rows: vec![],
            timeout_ms: Some(0),
        };
        assert_eq!(w.to_json()["until"], json!("=="));
        assert_eq!(
            Operation::Comment("hi".into()).to_json(),
            json!({"op":"comment","comment":"hi"})
        );
    }

    #[test]
    fn schema_checks_catch_unknown_names_and_wrong_types_before_sending() {
        let s = nb();
        assert!(matches!(
            Operation::insert("Nope", Row::new()).check(&s),
            Err(SchemaError::UnknownTable { .. })
        ));
        assert!(matches!(
            Operation::insert("Logical_Switch", row(&[("nope", "x".into())])).check(&s),
            Err(SchemaError::UnknownColumn { .. })
        ));
        assert!(matches!(
            Operation::update("Logical_Switch", vec![], row(&[("name", 1.into())])).check(&s),
            Err(SchemaError::WrongType { .. })
        ));
        assert!(matches!(
            Operation::select("Logical_Switch", vec![Condition::eq("name", true)], &[]).check(&s),
            Err(SchemaError::WrongType { .. })
        ));
        Operation::select(
            "Logical_Switch",
            vec![Condition::eq("name", "x")],
            &["_uuid", "ports"],
        )
        .check(&s)
        .unwrap();
        Operation::mutate(
            "Logical_Switch",
            vec![],
            vec![Mutation::delete("external_ids", Value::string_set(["k"]))],
        )
        .check(&s)
        .unwrap();
    }

    #[test]
    fn a_failed_operation_is_reported_with_its_index() {
        let ops = vec![
            Operation::Comment("a".into()),
            Operation::insert("T", Row::new()),
        ];
        let result = json!([{}, {"error": "constraint violation", "details": "dup"}]);
        let err = parse_transact_result(&ops, &result, None).unwrap_err();
        assert!(matches!(err, TransactError::Operation { index: 1, .. }));
        assert_eq!(
            err.server_error().unwrap().kind,
            ErrorKind::ConstraintViolation
        );
        assert!(err.to_string().contains("insert T"), "{err}");
        assert_eq!(err.server_error().unwrap().details.as_deref(), Some("dup"));
    }

    #[test]
    fn a_commit_error_after_all_operations_is_reported_as_such() {
        let ops = vec![Operation::delete("T", vec![])];
        let result = json!([{"count": 1}, {"error": "referential integrity violation"}]);
        assert!(matches!(
            parse_transact_result(&ops, &result, None),
            Err(TransactError::Commit(ServerError {
                kind: ErrorKind::ReferentialIntegrityViolation,
                ..
            }))
        ));
    }

    #[test]
    fn successful_results_carry_uuids_counts_and_rows() {
        let ops = vec![
            Operation::insert("Logical_Switch", Row::new()),
            Operation::select("Logical_Switch", vec![], &["name"]),
            Operation::delete("Logical_Switch", vec![]),
        ];
        let u = "36d36d8d-9f2e-4ac4-9f5b-1b1c2d3e4f50";
        let result = json!([{"uuid": ["uuid", u]}, {"rows": [{"name": "ls"}]}, {"count": 2}]);
        let r = parse_transact_result(&ops, &result, Some(&nb())).unwrap();
        assert_eq!(r[0].uuid.as_ref().unwrap().as_str(), u);
        assert_eq!(r[1].rows.as_ref().unwrap()[0]["name"], Value::from("ls"));
        assert_eq!(r[2].count, Some(2));
        assert!(parse_transact_result(&ops, &json!([{}]), None).is_err());
        assert!(parse_transact_result(&ops, &json!({}), None).is_err());
    }
}
