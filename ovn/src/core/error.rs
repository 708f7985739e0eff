//! Errors the server reports, typed by their RFC 7047 `error` string, with their details.

use std::fmt;

use serde_json::Value as Json;

/// The kind of an OVSDB error, from the `"error"` member of an error object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// A strong reference points to a missing row, or a deleted row is still referenced.
    ReferentialIntegrityViolation,
    /// An index, `min`/`max` count or other schema constraint would be violated.
    ConstraintViolation,
    /// The server ran out of memory or another resource.
    ResourcesExhausted,
    /// The server could not write the database.
    IoError,
    /// A transaction used the same `uuid-name` twice.
    DuplicateUuidName,
    /// Division by zero or similar.
    DomainError,
    /// An arithmetic result out of range.
    RangeError,
    /// A `wait` operation's condition did not hold before its timeout.
    TimedOut,
    /// The operation is not supported.
    NotSupported,
    /// An `abort` operation ran.
    Aborted,
    /// The client is not the lock owner.
    NotOwner,
    /// The server is a follower of a clustered database and refuses writes or reads.
    NotLeader,
    /// The request was canceled by a `cancel` notification.
    Canceled,
    /// The database name is unknown.
    UnknownDatabase,
    /// The method is unknown (for example `monitor_cond` on a very old server).
    UnknownMethod,
    /// The request or an operation is malformed (unknown table or column, wrong type, ...).
    SyntaxError,
    /// A monitor id is already in use.
    DuplicateMonitorId,
    /// Any other error string.
    Other(String),
}

impl ErrorKind {
    /// Maps the wire `error` string to a kind.
    pub fn parse(text: &str) -> Self {
        match text {
            "referential integrity violation" => Self::ReferentialIntegrityViolation,
            "constraint violation" => Self::ConstraintViolation,
            "resources exhausted" => Self::ResourcesExhausted,
            "I/O error" => Self::IoError,
            "duplicate uuid-name" => Self::DuplicateUuidName,
            "domain error" => Self::DomainError,
            "range error" => Self::RangeError,
            "timed out" => Self::TimedOut,
            "not supported" => Self::NotSupported,
            "aborted" => Self::Aborted,
            "not owner" => Self::NotOwner,
            "not leader" | "not a leader" => Self::NotLeader,
            "canceled" | "cancelled" => Self::Canceled,
            "unknown database" => Self::UnknownDatabase,
            "unknown method" => Self::UnknownMethod,
            "syntax error" => Self::SyntaxError,
            "duplicate monitor ID" => Self::DuplicateMonitorId,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The wire string of this kind.
    pub fn as_str(&self) -> &str {
        match self {
            Self::ReferentialIntegrityViolation => "referential integrity violation",
            Self::ConstraintViolation => "constraint violation",
            Self::ResourcesExhausted => "resources exhausted",
            Self::IoError => "I/O error",
            Self::DuplicateUuidName => "duplicate uuid-name",
            Self::DomainError => "domain error",
            Self::RangeError => "range error",
            Self::TimedOut => "timed out",
            Self::NotSupported => "not supported",
            Self::Aborted => "aborted",
            Self::NotOwner => "not owner",
            Self::NotLeader => "not leader",
            Self::Canceled => "canceled",
            Self::UnknownDatabase => "unknown database",
            Self::UnknownMethod => "unknown method",
            Self::SyntaxError => "syntax error",
            Self::DuplicateMonitorId => "duplicate monitor ID",
            Self::Other(s) => s,
        }
    }
}

/// An error object returned by the server, for a request or for one operation of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// What kind of error.
    pub kind: ErrorKind,
    /// The server's human-readable `details`, if any.
    pub details: Option<String>,
    /// The `syntax` member (the offending JSON), if any.
    pub syntax: Option<String>,
}

impl ServerError {
    /// Reads an error from the `error` member of a response or an operation result: either an
    /// object `{"error": ..., "details": ...}` or a bare string.
    pub fn from_json(json: &Json) -> Self {
        match json {
            Json::String(s) => Self {
                kind: ErrorKind::parse(s),
                details: None,
                syntax: None,
            },
            Json::Object(obj) => {
                let kind = obj
                    .get("error")
                    .and_then(Json::as_str)
                    .map_or_else(|| ErrorKind::Other(json.to_string()), ErrorKind::parse);
                let details = obj.get("details").and_then(Json::as_str).map(str::to_owned);
                let syntax = obj.get("syntax").map(|s| match s {
                    Json::String(t) => t.clone(),
                    other => other.to_string(),
                });
                Self {
                    kind,
                    details,
                    syntax,
                }
            }
            other => Self {
                kind: ErrorKind::Other(other.to_string()),
                details: None,
                syntax: None,
            },
        }
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.as_str())?;
        if let Some(d) = &self.details {
            write!(f, ": {d}")?;
        }
        if let Some(s) = &self.syntax {
            write!(f, " (in {s})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ServerError {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn known_error_strings_map_to_their_kinds_and_back() {
        for kind in [
            ErrorKind::ReferentialIntegrityViolation,
            ErrorKind::ConstraintViolation,
            ErrorKind::NotLeader,
            ErrorKind::TimedOut,
            ErrorKind::Canceled,
            ErrorKind::SyntaxError,
        ] {
            assert_eq!(ErrorKind::parse(kind.as_str()), kind);
        }
        assert_eq!(ErrorKind::parse("not a leader"), ErrorKind::NotLeader);
        assert_eq!(ErrorKind::parse("weird"), ErrorKind::Other("weird".into()));
    }

    #[test]
    fn error_objects_keep_their_details() {
        let e = ServerError::from_json(&json!({
            "error": "constraint violation",
            "details": "Transaction causes multiple rows in \"Logical_Switch_Port\" table to have identical values (p1) for index on column \"name\"."
        }));
        assert_eq!(e.kind, ErrorKind::ConstraintViolation);
        assert!(
            e.to_string()
                .starts_with("constraint violation: Transaction causes")
        );
        assert_eq!(
            ServerError::from_json(&json!("unknown method")).kind,
            ErrorKind::UnknownMethod
        );
        assert!(matches!(
            ServerError::from_json(&json!(3)).kind,
            ErrorKind::Other(_)
        ));
    }
}
