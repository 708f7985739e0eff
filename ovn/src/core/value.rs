//! OVSDB values (RFC 7047 section 5.1): atoms, sets, maps, UUIDs and named UUIDs.
//!
//! On the wire a set is `["set", [...]]` (or a bare atom when it has one element), a map is
//! `["map", [[k, v], ...]]`, a UUID is `["uuid", "..."]` and a reference to a row inserted in
//! the same transaction is `["named-uuid", "name"]`. Decoding without a schema keeps what the
//! wire says; [`crate::core::schema::ColumnType::decode`] normalises to the column's shape.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde_json::{Value as Json, json};
use thiserror::Error;

/// A row: column name to value. Columns absent from a row have their type's default value.
pub type Row = BTreeMap<String, Value>;

/// A value that is not valid OVSDB JSON.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid OVSDB value {json}: {reason}")]
pub struct ValueError {
    /// The JSON text that failed (shortened).
    pub json: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ValueError {
    pub(crate) fn new(json: &Json, reason: impl Into<String>) -> Self {
        let mut text = json.to_string();
        if text.len() > 120 {
            let mut cut = 117;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push_str("...");
        }
        Self {
            json: text,
            reason: reason.into(),
        }
    }
}

/// A row UUID in canonical lower-case `8-4-4-4-12` form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uuid(String);

impl Uuid {
    /// Parses the textual form; rejects anything but 36 characters of hex digits and dashes.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        if bytes.len() != 36 {
            return None;
        }
        for (i, b) in bytes.iter().enumerate() {
            let dash = matches!(i, 8 | 13 | 18 | 23);
            if dash != (*b == b'-') || (!dash && !b.is_ascii_hexdigit()) {
                return None;
            }
        }
        Some(Self(text.to_ascii_lowercase()))
    }

    /// The all-zero UUID, the default of a `uuid` column.
    pub fn zero() -> Self {
        Self("00000000-0000-0000-0000-000000000000".to_owned())
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One scalar OVSDB value.
#[derive(Debug, Clone, PartialEq)]
pub enum Atom {
    /// A 64-bit signed integer.
    Integer(i64),
    /// A double; never NaN on the wire (JSON has none).
    Real(f64),
    /// A boolean.
    Boolean(bool),
    /// A UTF-8 string.
    String(String),
    /// A row reference.
    Uuid(Uuid),
    /// A reference to a row inserted in the same transaction under this `uuid-name`.
    NamedUuid(String),
}

impl Atom {
    /// Encodes the atom as OVSDB JSON.
    pub fn to_json(&self) -> Json {
        match self {
            Self::Integer(i) => json!(i),
            Self::Real(r) => json!(r),
            Self::Boolean(b) => json!(b),
            Self::String(s) => json!(s),
            Self::Uuid(u) => json!(["uuid", u.as_str()]),
            Self::NamedUuid(n) => json!(["named-uuid", n]),
        }
    }

    /// Decodes an atom from OVSDB JSON.
    pub fn from_json(json: &Json) -> Result<Self, ValueError> {
        match json {
            Json::Bool(b) => Ok(Self::Boolean(*b)),
            Json::String(s) => Ok(Self::String(s.clone())),
            Json::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Ok(Self::Integer(i))
                } else if let Some(f) = n.as_f64() {
                    Ok(Self::Real(f))
                } else {
                    Err(ValueError::new(json, "number out of range"))
                }
            }
            Json::Array(items) => match items.as_slice() {
                [Json::String(tag), Json::String(text)] if tag == "uuid" => Uuid::parse(text)
                    .map(Self::Uuid)
                    .ok_or_else(|| ValueError::new(json, "malformed uuid")),
                [Json::String(tag), Json::String(name)] if tag == "named-uuid" => {
                    Ok(Self::NamedUuid(name.clone()))
                }
                _ => Err(ValueError::new(json, "expected an atom")),
            },
            Json::Null | Json::Object(_) => Err(ValueError::new(json, "expected an atom")),
        }
    }

    /// The string, if this is a string atom.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    /// The UUID, if this is a UUID atom.
    pub fn as_uuid(&self) -> Option<&Uuid> {
        match self {
            Self::Uuid(u) => Some(u),
            _ => None,
        }
    }
}

impl From<&str> for Atom {
    fn from(s: &str) -> Self {
        Self::String(s.to_owned())
    }
}
impl From<String> for Atom {
    fn from(s: String) -> Self {
        Self::String(s)
    }
}
impl From<i64> for Atom {
    fn from(i: i64) -> Self {
        Self::Integer(i)
    }
}
impl From<bool> for Atom {
    fn from(b: bool) -> Self {
        Self::Boolean(b)
    }
}
impl From<Uuid> for Atom {
    fn from(u: Uuid) -> Self {
        Self::Uuid(u)
    }
}

/// An atom as a hash key: two keys are equal exactly when the atoms are `==` (reals by value, so
/// `0.0` and `-0.0` are one key; JSON carries no NaN). Sets and maps index their elements by it
/// so that decoding and diffing stay linear in the number of elements.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum AtomKey {
    Integer(i64),
    Real(u64),
    Boolean(bool),
    String(String),
    Uuid(String),
    NamedUuid(String),
}

impl AtomKey {
    pub(crate) fn of(atom: &Atom) -> Self {
        match atom {
            Atom::Integer(i) => Self::Integer(*i),
            Atom::Real(r) if *r == 0.0 => Self::Real(0),
            Atom::Real(r) => Self::Real(r.to_bits()),
            Atom::Boolean(b) => Self::Boolean(*b),
            Atom::String(s) => Self::String(s.clone()),
            Atom::Uuid(u) => Self::Uuid(u.as_str().to_owned()),
            Atom::NamedUuid(n) => Self::NamedUuid(n.clone()),
        }
    }
}

/// A column value: an atom, a set of atoms or a map between atoms.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A single atom (a column whose type is exactly one atom).
    Atom(Atom),
    /// A set (also the shape of optional columns: zero or one element).
    Set(Vec<Atom>),
    /// A map, in the order received; keys are unique.
    Map(Vec<(Atom, Atom)>),
}

impl Value {
    /// Encodes the value as OVSDB JSON (sets and maps always in their tagged form).
    pub fn to_json(&self) -> Json {
        match self {
            Self::Atom(a) => a.to_json(),
            Self::Set(items) => json!(["set", items.iter().map(Atom::to_json).collect::<Vec<_>>()]),
            Self::Map(pairs) => json!([
                "map",
                pairs
                    .iter()
                    .map(|(k, v)| json!([k.to_json(), v.to_json()]))
                    .collect::<Vec<_>>()
            ]),
        }
    }

    /// Decodes a value without knowing its column type: a bare atom stays an atom.
    pub fn from_json(json: &Json) -> Result<Self, ValueError> {
        if let Json::Array(items) = json {
            match items.as_slice() {
                [Json::String(tag), Json::Array(elems)] if tag == "set" => {
                    return elems
                        .iter()
                        .map(Atom::from_json)
                        .collect::<Result<Vec<_>, _>>()
                        .map(Self::Set);
                }
                [Json::String(tag), Json::Array(pairs)] if tag == "map" => {
                    let mut out = Vec::with_capacity(pairs.len());
                    // A hash set, not a scan of `out`: a map of n keys stays O(n).
                    let mut seen = HashSet::with_capacity(pairs.len());
                    for pair in pairs {
                        match pair {
                            Json::Array(kv) if kv.len() == 2 => {
                                let key = Atom::from_json(&kv[0])?;
                                if !seen.insert(AtomKey::of(&key)) {
                                    return Err(ValueError::new(json, "duplicate map key"));
                                }
                                out.push((key, Atom::from_json(&kv[1])?));
                            }
                            _ => return Err(ValueError::new(pair, "map entry is not a pair")),
                        }
                    }
                    return Ok(Self::Map(out));
                }
                _ => {}
            }
        }
        Atom::from_json(json).map(Self::Atom)
    }

    /// A set of strings.
    pub fn string_set<I, S>(items: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::Set(items.into_iter().map(|s| Atom::String(s.into())).collect())
    }

    /// A string-to-string map.
    pub fn string_map<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (Atom::String(k.into()), Atom::String(v.into())))
                .collect(),
        )
    }

    /// A set of UUIDs.
    pub fn uuid_set<I: IntoIterator<Item = Uuid>>(items: I) -> Self {
        Self::Set(items.into_iter().map(Atom::Uuid).collect())
    }

    /// The empty set (also the default of every optional or set column).
    pub fn empty_set() -> Self {
        Self::Set(Vec::new())
    }

    /// The elements, viewing a bare atom as a one-element set.
    pub fn elements(&self) -> &[Atom] {
        match self {
            Self::Atom(a) => std::slice::from_ref(a),
            Self::Set(items) => items,
            Self::Map(_) => &[],
        }
    }

    /// The single string of an atom or a one-element set.
    pub fn as_str(&self) -> Option<&str> {
        match self.elements() {
            [a] => a.as_str(),
            _ => None,
        }
    }

    /// The single UUID of an atom or a one-element set.
    pub fn as_uuid(&self) -> Option<&Uuid> {
        match self.elements() {
            [a] => a.as_uuid(),
            _ => None,
        }
    }

    /// The string elements of a set (non-strings are skipped).
    pub fn strings(&self) -> Vec<String> {
        self.elements()
            .iter()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect()
    }

    /// The UUID elements of a set.
    pub fn uuids(&self) -> Vec<Uuid> {
        self.elements()
            .iter()
            .filter_map(|a| a.as_uuid().cloned())
            .collect()
    }

    /// A string-to-string map's entries (other entries are skipped).
    pub fn string_map_entries(&self) -> BTreeMap<String, String> {
        match self {
            Self::Map(pairs) => pairs
                .iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned())))
                .collect(),
            _ => BTreeMap::new(),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Self::Atom(Atom::from(s))
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Self::Atom(Atom::String(s))
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Self::Atom(Atom::Integer(i))
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Self::Atom(Atom::Boolean(b))
    }
}
impl From<Atom> for Value {
    fn from(a: Atom) -> Self {
        Self::Atom(a)
    }
}
impl From<&BTreeMap<String, String>> for Value {
    fn from(m: &BTreeMap<String, String>) -> Self {
        Self::string_map(m.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

/// Decodes a `<row>` object without a schema.
pub fn row_from_json(json: &Json) -> Result<Row, ValueError> {
    let Json::Object(obj) = json else {
        return Err(ValueError::new(json, "a row must be a JSON object"));
    };
    obj.iter()
        .map(|(k, v)| Ok((k.clone(), Value::from_json(v)?)))
        .collect()
}

/// Encodes a row as a `<row>` object.
pub fn row_to_json(row: &Row) -> Json {
    Json::Object(row.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "36d36d8d-9f2e-4ac4-9f5b-1b1c2d3e4f50";

    /// Duplicate keys were found by scanning the pairs decoded so far (quadratic: tens of
    /// seconds for this map in a debug build); a hash set makes it linear.
    #[test]
    fn a_map_with_many_keys_decodes_in_linear_time_and_duplicates_are_still_caught() {
        let n = 80_000;
        let pairs: Vec<Json> = (0..n).map(|i| json!([format!("k{i}"), i])).collect();
        let started = std::time::Instant::now();
        let value = Value::from_json(&json!(["map", pairs])).unwrap();
        let Value::Map(decoded) = &value else {
            panic!("not a map: {value:?}")
        };
        assert_eq!(decoded.len(), n);
        assert_eq!(
            decoded[n - 1],
            (Atom::from("k79999"), Atom::Integer(79_999))
        );
        // Backstop only.
        assert!(started.elapsed() < std::time::Duration::from_secs(10));

        let dup = pairs_with_last_repeating(n, "k0");
        let err = Value::from_json(&json!(["map", dup])).unwrap_err();
        assert_eq!(err.reason, "duplicate map key");
        let reals = json!(["map", [[0.0, 1], [-0.0, 2]]]);
        assert_eq!(
            Value::from_json(&reals).unwrap_err().reason,
            "duplicate map key"
        );
        let distinct = json!(["map", [[1, 1], [1.5, 2], ["1", 3], [true, 4]]]);
        assert!(Value::from_json(&distinct).is_ok());
    }

    fn pairs_with_last_repeating(n: usize, key: &str) -> Vec<Json> {
        let mut pairs: Vec<Json> = (0..n).map(|i| json!([format!("k{i}"), i])).collect();
        pairs.push(json!([key, 0]));
        pairs
    }

    #[test]
    fn atoms_round_trip_through_json() {
        let atoms = [
            Atom::Integer(-5),
            Atom::Real(1.5),
            Atom::Boolean(true),
            Atom::from("x"),
            Atom::Uuid(Uuid::parse(U).unwrap()),
            Atom::NamedUuid("row1".into()),
        ];
        for a in atoms {
            assert_eq!(Atom::from_json(&a.to_json()).unwrap(), a);
        }
    }

    #[test]
    fn sets_and_maps_use_the_tagged_wire_form() {
        assert_eq!(
            Value::string_set(["a", "b"]).to_json(),
            json!(["set", ["a", "b"]])
        );
        assert_eq!(
            Value::string_map([("k", "v")]).to_json(),
            json!(["map", [["k", "v"]]])
        );
        assert_eq!(
            Value::uuid_set([Uuid::parse(U).unwrap()]).to_json(),
            json!(["set", [["uuid", U]]])
        );
    }

    #[test]
    fn uuids_are_validated_and_lowercased() {
        assert_eq!(Uuid::parse(&U.to_uppercase()).unwrap().as_str(), U);
        for bad in [
            "",
            "x",
            "36d36d8d9f2e-4ac4-9f5b-1b1c2d3e4f50-",
            &U.replace('3', "g"),
        ] {
            assert!(Uuid::parse(bad).is_none(), "{bad}");
        }
        assert!(Atom::from_json(&json!(["uuid", "nope"])).is_err());
    }

    #[test]
    fn malformed_values_are_rejected_with_the_reason() {
        for bad in [
            json!(null),
            json!({"a": 1}),
            json!(["set", [null]]),
            json!(["map", [["k"]]]),
            json!(["map", [["k", 1], ["k", 2]]]),
            json!(["bogus", 1]),
        ] {
            let err = Value::from_json(&bad).unwrap_err();
            assert!(!err.reason.is_empty());
        }
    }

    #[test]
    fn accessors_view_a_bare_atom_as_a_one_element_set() {
        let v = Value::from("x");
        assert_eq!(v.strings(), vec!["x".to_owned()]);
        assert_eq!(v.as_str(), Some("x"));
        assert_eq!(Value::empty_set().as_str(), None);
    }
}
