//! Database schemas (RFC 7047 section 3.2) and the type checks done before a value goes out.
//!
//! The client fetches the schema with `get_schema` and checks every operation against it, so
//! that an unknown table, an unknown column or a value of the wrong type is reported locally,
//! naming the table and column, instead of as a server `syntax error`.

use std::collections::BTreeMap;

use serde_json::Value as Json;
use thiserror::Error;

use super::value::{Atom, Row, Value, ValueError};

/// What is wrong with a schema, a value or an operation with respect to a schema.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum SchemaError {
    /// The schema JSON itself is malformed.
    #[error("malformed schema: {0}")]
    Malformed(String),
    /// The table does not exist in the database.
    #[error("unknown table {table:?} in database {db:?}")]
    UnknownTable {
        /// Database name.
        db: String,
        /// Table name.
        table: String,
    },
    /// The column does not exist in the table.
    #[error("unknown column {column:?} in table {table:?}")]
    UnknownColumn {
        /// Table name.
        table: String,
        /// Column name.
        column: String,
    },
    /// The value does not fit the column's type.
    #[error("column {table}.{column}: {reason}")]
    WrongType {
        /// Table name.
        table: String,
        /// Column name.
        column: String,
        /// What does not fit.
        reason: String,
    },
    /// A value that is not valid OVSDB JSON.
    #[error("column {table}.{column}: {source}")]
    BadValue {
        /// Table name.
        table: String,
        /// Column name.
        column: String,
        /// The decoding failure.
        source: ValueError,
    },
}

/// The five atomic types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtomicType {
    /// `integer`
    Integer,
    /// `real`
    Real,
    /// `boolean`
    Boolean,
    /// `string`
    String,
    /// `uuid`
    Uuid,
}

impl AtomicType {
    fn parse(name: &str) -> Result<Self, SchemaError> {
        Ok(match name {
            "integer" => Self::Integer,
            "real" => Self::Real,
            "boolean" => Self::Boolean,
            "string" => Self::String,
            "uuid" => Self::Uuid,
            other => {
                return Err(SchemaError::Malformed(format!(
                    "unknown atomic type {other:?}"
                )));
            }
        })
    }

    /// The default atom of this type (used for absent scalar columns).
    pub fn default_atom(self) -> Atom {
        match self {
            Self::Integer => Atom::Integer(0),
            Self::Real => Atom::Real(0.0),
            Self::Boolean => Atom::Boolean(false),
            Self::String => Atom::String(String::new()),
            Self::Uuid => Atom::Uuid(super::value::Uuid::zero()),
        }
    }
}

/// An atomic type with its constraints.
#[derive(Debug, Clone, PartialEq)]
pub struct BaseType {
    /// The atomic type.
    pub atomic: AtomicType,
    /// Allowed values, if restricted.
    pub enumeration: Option<Vec<Atom>>,
    /// Integer range.
    pub min_integer: Option<i64>,
    /// Integer range.
    pub max_integer: Option<i64>,
    /// String length range (in bytes).
    pub min_length: Option<u64>,
    /// String length range (in bytes).
    pub max_length: Option<u64>,
    /// Referenced table of a UUID.
    pub ref_table: Option<String>,
    /// `true` for weak references.
    pub ref_weak: bool,
}

impl BaseType {
    fn plain(atomic: AtomicType) -> Self {
        Self {
            atomic,
            enumeration: None,
            min_integer: None,
            max_integer: None,
            min_length: None,
            max_length: None,
            ref_table: None,
            ref_weak: false,
        }
    }

    fn parse(json: &Json) -> Result<Self, SchemaError> {
        match json {
            Json::String(name) => Ok(Self::plain(AtomicType::parse(name)?)),
            Json::Object(obj) => {
                let atomic = obj
                    .get("type")
                    .and_then(Json::as_str)
                    .ok_or_else(|| SchemaError::Malformed("base type without \"type\"".into()))?;
                let mut base = Self::plain(AtomicType::parse(atomic)?);
                if let Some(e) = obj.get("enum") {
                    let v =
                        Value::from_json(e).map_err(|e| SchemaError::Malformed(e.to_string()))?;
                    base.enumeration = Some(v.elements().to_vec());
                }
                base.min_integer = obj.get("minInteger").and_then(Json::as_i64);
                base.max_integer = obj.get("maxInteger").and_then(Json::as_i64);
                base.min_length = obj.get("minLength").and_then(Json::as_u64);
                base.max_length = obj.get("maxLength").and_then(Json::as_u64);
                base.ref_table = obj
                    .get("refTable")
                    .and_then(Json::as_str)
                    .map(str::to_owned);
                base.ref_weak = obj.get("refType").and_then(Json::as_str) == Some("weak");
                Ok(base)
            }
            _ => Err(SchemaError::Malformed(format!("bad base type {json}"))),
        }
    }

    /// Checks one atom against this base type; `Err` says why it does not fit.
    pub fn check(&self, atom: &Atom) -> Result<(), String> {
        let fits = matches!(
            (self.atomic, atom),
            (AtomicType::Integer, Atom::Integer(_))
                | (AtomicType::Real, Atom::Real(_) | Atom::Integer(_))
                | (AtomicType::Boolean, Atom::Boolean(_))
                | (AtomicType::String, Atom::String(_))
                | (AtomicType::Uuid, Atom::Uuid(_) | Atom::NamedUuid(_))
        );
        if !fits {
            return Err(format!(
                "expected {:?}, got {}",
                self.atomic,
                atom.to_json()
            ));
        }
        if let Some(allowed) = &self.enumeration
            && !allowed.contains(atom)
        {
            return Err(format!(
                "{} is not one of the allowed values",
                atom.to_json()
            ));
        }
        if let Atom::Integer(i) = atom
            && (self.min_integer.is_some_and(|m| *i < m)
                || self.max_integer.is_some_and(|m| *i > m))
        {
            return Err(format!("{i} is out of range"));
        }
        if let Atom::String(s) = atom {
            let n = s.len() as u64;
            if self.min_length.is_some_and(|m| n < m) || self.max_length.is_some_and(|m| n > m) {
                return Err(format!("string of length {n} is out of range"));
            }
        }
        Ok(())
    }
}

/// A column type: a key type, an optional value type (maps), and element counts.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnType {
    /// Type of the elements (or map keys).
    pub key: BaseType,
    /// Type of map values; `None` for atoms and sets.
    pub value: Option<BaseType>,
    /// Minimum number of elements (0 or 1).
    pub min: u64,
    /// Maximum number of elements; `None` is "unlimited".
    pub max: Option<u64>,
}

impl ColumnType {
    fn parse(json: &Json) -> Result<Self, SchemaError> {
        match json {
            Json::String(_) => Ok(Self {
                key: BaseType::parse(json)?,
                value: None,
                min: 1,
                max: Some(1),
            }),
            Json::Object(obj) => {
                let key = BaseType::parse(
                    obj.get("key")
                        .ok_or_else(|| SchemaError::Malformed("type without key".into()))?,
                )?;
                let value = obj.get("value").map(BaseType::parse).transpose()?;
                let min = obj.get("min").and_then(Json::as_u64).unwrap_or(1);
                let max = match obj.get("max") {
                    None => Some(1),
                    Some(Json::String(s)) if s == "unlimited" => None,
                    Some(m) => Some(
                        m.as_u64()
                            .ok_or_else(|| SchemaError::Malformed(format!("bad max {m}")))?,
                    ),
                };
                Ok(Self {
                    key,
                    value,
                    min,
                    max,
                })
            }
            _ => Err(SchemaError::Malformed(format!("bad column type {json}"))),
        }
    }

    /// `true` when the column holds exactly one atom (no set, no map).
    pub fn is_scalar(&self) -> bool {
        self.value.is_none() && self.min == 1 && self.max == Some(1)
    }

    /// `true` for maps.
    pub fn is_map(&self) -> bool {
        self.value.is_some()
    }

    /// The value an absent column has.
    pub fn default_value(&self) -> Value {
        if self.is_map() {
            Value::Map(Vec::new())
        } else if self.is_scalar() {
            Value::Atom(self.key.atomic.default_atom())
        } else {
            Value::empty_set()
        }
    }

    /// Brings a value into this column's shape: an atom for scalars, a set for sets and optional
    /// columns (a bare atom becomes a one-element set), a map for maps. Does not check counts,
    /// because `modify` diffs of an optional column may carry two elements.
    pub fn normalize(&self, value: Value) -> Result<Value, String> {
        match (self.is_map(), self.is_scalar(), value) {
            (true, _, Value::Map(pairs)) => Ok(Value::Map(pairs)),
            (true, _, Value::Set(items)) if items.is_empty() => Ok(Value::Map(Vec::new())),
            (true, _, v) => Err(format!("expected a map, got {}", v.to_json())),
            (false, true, Value::Atom(a)) => Ok(Value::Atom(a)),
            (false, true, Value::Set(mut items)) if items.len() == 1 => {
                Ok(Value::Atom(items.remove(0)))
            }
            (false, false, Value::Atom(a)) => Ok(Value::Set(vec![a])),
            (false, false, Value::Set(items)) => Ok(Value::Set(items)),
            (false, _, v) => Err(format!("expected {}, got {}", self.describe(), v.to_json())),
        }
    }

    /// Checks only that every element has the column's atomic types (for values received from
    /// the server, whose constraints the server already enforced).
    pub fn check_atom_types(&self, value: &Value) -> Result<(), String> {
        let fits = |base: &BaseType, a: &Atom| {
            let plain = BaseType::plain(base.atomic);
            plain.check(a)
        };
        match value {
            Value::Atom(a) => fits(&self.key, a),
            Value::Set(items) => items.iter().try_for_each(|a| fits(&self.key, a)),
            Value::Map(pairs) => {
                let vt = self.value.as_ref().ok_or("unexpected map")?;
                pairs.iter().try_for_each(|(k, v)| {
                    fits(&self.key, k)?;
                    fits(vt, v)
                })
            }
        }
    }

    /// Full check of a value that is going to be written: shape, element types and counts.
    pub fn check(&self, value: &Value) -> Result<(), String> {
        let value = self.normalize(value.clone())?;
        let n = match &value {
            Value::Atom(a) => {
                self.key.check(a)?;
                1
            }
            Value::Set(items) => {
                for a in items {
                    self.key.check(a)?;
                }
                items.len() as u64
            }
            Value::Map(pairs) => {
                let vt = self.value.as_ref().ok_or("unexpected map")?;
                for (k, v) in pairs {
                    self.key.check(k)?;
                    vt.check(v)?;
                }
                pairs.len() as u64
            }
        };
        if n < self.min || self.max.is_some_and(|m| n > m) {
            return Err(format!(
                "{n} elements where {} are allowed",
                self.describe()
            ));
        }
        Ok(())
    }

    fn describe(&self) -> String {
        let max = self.max.map_or("unlimited".to_owned(), |m| m.to_string());
        if self.is_scalar() {
            format!("one {:?}", self.key.atomic)
        } else {
            format!("{}..{} elements of {:?}", self.min, max, self.key.atomic)
        }
    }
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSchema {
    /// Its type.
    pub ty: ColumnType,
    /// `false` when the column may only be set on insert.
    pub mutable: bool,
}

/// One table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSchema {
    /// Columns by name (without the implicit `_uuid` and `_version`).
    pub columns: BTreeMap<String, ColumnSchema>,
    /// Root tables keep unreferenced rows; others are garbage-collected.
    pub is_root: bool,
    /// Sets of columns whose values must be unique.
    pub indexes: Vec<Vec<String>>,
}

impl TableSchema {
    /// The type of a column, including the implicit `_uuid` and `_version`.
    pub fn column_type(&self, name: &str) -> Option<ColumnType> {
        if name == "_uuid" || name == "_version" {
            return Some(ColumnType {
                key: BaseType::plain(AtomicType::Uuid),
                value: None,
                min: 1,
                max: Some(1),
            });
        }
        self.columns.get(name).map(|c| c.ty.clone())
    }
}

/// A database schema as returned by `get_schema`.
#[derive(Debug, Clone, PartialEq)]
pub struct DatabaseSchema {
    /// Database name, e.g. `OVN_Northbound`.
    pub name: String,
    /// Schema version.
    pub version: String,
    /// Tables by name.
    pub tables: BTreeMap<String, TableSchema>,
}

impl DatabaseSchema {
    /// Parses a `<database-schema>` (the `get_schema` result or an `.ovsschema` file).
    pub fn from_json(json: &Json) -> Result<Self, SchemaError> {
        let obj = json
            .as_object()
            .ok_or_else(|| SchemaError::Malformed("not an object".into()))?;
        let name = obj
            .get("name")
            .and_then(Json::as_str)
            .ok_or_else(|| SchemaError::Malformed("no name".into()))?
            .to_owned();
        let version = obj
            .get("version")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned();
        let mut tables = BTreeMap::new();
        let table_objs = obj
            .get("tables")
            .and_then(Json::as_object)
            .ok_or_else(|| SchemaError::Malformed("no tables".into()))?;
        for (tname, t) in table_objs {
            let cols = t
                .get("columns")
                .and_then(Json::as_object)
                .ok_or_else(|| SchemaError::Malformed(format!("table {tname} has no columns")))?;
            let mut columns = BTreeMap::new();
            for (cname, c) in cols {
                let ty = ColumnType::parse(c.get("type").ok_or_else(|| {
                    SchemaError::Malformed(format!("column {tname}.{cname} has no type"))
                })?)
                .map_err(|e| SchemaError::Malformed(format!("column {tname}.{cname}: {e}")))?;
                let mutable = c.get("mutable").and_then(Json::as_bool).unwrap_or(true);
                columns.insert(cname.clone(), ColumnSchema { ty, mutable });
            }
            let indexes = t
                .get("indexes")
                .and_then(Json::as_array)
                .map(|ix| {
                    ix.iter()
                        .filter_map(Json::as_array)
                        .map(|cols| {
                            cols.iter()
                                .filter_map(Json::as_str)
                                .map(str::to_owned)
                                .collect()
                        })
                        .collect()
                })
                .unwrap_or_default();
            let is_root = t.get("isRoot").and_then(Json::as_bool).unwrap_or(false);
            tables.insert(
                tname.clone(),
                TableSchema {
                    columns,
                    is_root,
                    indexes,
                },
            );
        }
        Ok(Self {
            name,
            version,
            tables,
        })
    }

    /// Looks a table up, naming the database when it is unknown.
    pub fn table(&self, table: &str) -> Result<&TableSchema, SchemaError> {
        self.tables
            .get(table)
            .ok_or_else(|| SchemaError::UnknownTable {
                db: self.name.clone(),
                table: table.to_owned(),
            })
    }

    /// Looks a column's type up.
    pub fn column_type(&self, table: &str, column: &str) -> Result<ColumnType, SchemaError> {
        self.table(table)?
            .column_type(column)
            .ok_or_else(|| SchemaError::UnknownColumn {
                table: table.to_owned(),
                column: column.to_owned(),
            })
    }

    /// Checks a value for a column.
    pub fn check_value(&self, table: &str, column: &str, value: &Value) -> Result<(), SchemaError> {
        self.column_type(table, column)?
            .check(value)
            .map_err(|reason| SchemaError::WrongType {
                table: table.to_owned(),
                column: column.to_owned(),
                reason,
            })
    }

    /// Decodes a row received for `table`, normalising every column to its type's shape.
    pub fn decode_row(&self, table: &str, json: &Json) -> Result<Row, SchemaError> {
        let t = self.table(table)?;
        let obj = json
            .as_object()
            .ok_or_else(|| SchemaError::Malformed(format!("row of {table} is not an object")))?;
        let mut row = Row::new();
        for (column, v) in obj {
            let ty = t
                .column_type(column)
                .ok_or_else(|| SchemaError::UnknownColumn {
                    table: table.to_owned(),
                    column: column.clone(),
                })?;
            let value = Value::from_json(v).map_err(|source| SchemaError::BadValue {
                table: table.to_owned(),
                column: column.clone(),
                source,
            })?;
            let value = ty
                .normalize(value)
                .and_then(|v| ty.check_atom_types(&v).map(|()| v))
                .map_err(|reason| SchemaError::WrongType {
                    table: table.to_owned(),
                    column: column.clone(),
                    reason,
                })?;
            row.insert(column.clone(), value);
        }
        Ok(row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nb() -> DatabaseSchema {
        let text = std::fs::read_to_string("/usr/share/ovn/ovn-nb.ovsschema").unwrap();
        DatabaseSchema::from_json(&serde_json::from_str(&text).unwrap()).unwrap()
    }

    #[test]
    fn the_installed_northbound_and_vswitch_schemas_parse() {
        let s = nb();
        assert_eq!(s.name, "OVN_Northbound");
        let lsp = s.table("Logical_Switch_Port").unwrap();
        assert_eq!(lsp.indexes, vec![vec!["name".to_owned()]]);
        assert!(lsp.columns["external_ids"].ty.is_map());
        assert!(lsp.columns["name"].ty.is_scalar());
        let text = std::fs::read_to_string("/usr/share/openvswitch/vswitch.ovsschema").unwrap();
        let ovs = DatabaseSchema::from_json(&serde_json::from_str(&text).unwrap()).unwrap();
        assert!(ovs.table("Open_vSwitch").unwrap().is_root);
    }

    #[test]
    fn values_of_the_right_type_pass_the_check() {
        let s = nb();
        s.check_value("Logical_Switch_Port", "name", &"p1".into())
            .unwrap();
        s.check_value(
            "Logical_Switch_Port",
            "addresses",
            &Value::string_set(["a", "b"]),
        )
        .unwrap();
        s.check_value(
            "Logical_Switch_Port",
            "tag_request",
            &Value::Set(vec![Atom::Integer(7)]),
        )
        .unwrap();
        s.check_value(
            "Logical_Switch_Port",
            "external_ids",
            &Value::string_map([("k", "v")]),
        )
        .unwrap();
    }

    #[test]
    fn wrong_types_and_unknown_names_are_named_in_the_error() {
        let s = nb();
        let err = s
            .check_value("Logical_Switch_Port", "name", &Value::from(5))
            .unwrap_err();
        assert!(
            err.to_string().contains("Logical_Switch_Port.name"),
            "{err}"
        );
        assert!(matches!(
            s.check_value("Logical_Switch_Port", "tag_request", &Value::from(5000)),
            Err(SchemaError::WrongType { .. })
        ));
        assert!(matches!(
            s.check_value(
                "Logical_Switch_Port",
                "up",
                &Value::Set(vec![true.into(), false.into()])
            ),
            Err(SchemaError::WrongType { .. })
        ));
        assert!(matches!(
            s.check_value("Nope", "name", &"x".into()),
            Err(SchemaError::UnknownTable { .. })
        ));
        assert!(matches!(
            s.check_value("Logical_Switch", "nope", &"x".into()),
            Err(SchemaError::UnknownColumn { .. })
        ));
    }

    #[test]
    fn decoding_normalises_bare_atoms_into_sets_and_one_element_sets_into_atoms() {
        let s = nb();
        let row = s
            .decode_row(
                "Logical_Switch_Port",
                &json!({"name": ["set", ["p"]], "addresses": "m i", "external_ids": ["set", []]}),
            )
            .unwrap();
        assert_eq!(row["name"], Value::from("p"));
        assert_eq!(row["addresses"], Value::string_set(["m i"]));
        assert_eq!(row["external_ids"], Value::Map(vec![]));
    }

    #[test]
    fn malformed_schemas_are_rejected() {
        for bad in [
            json!(null),
            json!({"name": "x"}),
            json!({"name": "x", "tables": {"T": {"columns": {"c": {"type": "float"}}}}}),
            json!({"name": "x", "tables": {"T": {"columns": {"c": {"type": {"key": "string", "max": -1}}}}}}),
        ] {
            assert!(DatabaseSchema::from_json(&bad).is_err(), "{bad}");
        }
    }
}
