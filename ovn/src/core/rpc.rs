//! JSON-RPC 1.0 messages as OVSDB uses them (RFC 7047 section 4).
//!
//! A request has `method`, `params` (an array) and a non-null `id`; a notification is a request
//! whose `id` is null; a response has `result`, `error` and the `id` of its request.

use serde_json::{Map, Value as Json, json};
use thiserror::Error;

use super::error::ServerError;

/// A frame that is JSON but not a JSON-RPC message we understand.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The frame is not valid JSON.
    #[error("malformed JSON in JSON-RPC frame: {0}")]
    Json(String),
    /// Valid JSON but not a request, notification or response.
    #[error("not a JSON-RPC message: {0}")]
    NotRpc(String),
}

/// One JSON-RPC message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A request that expects a response with the same id.
    Request {
        /// Request id (any non-null JSON).
        id: Json,
        /// Method name.
        method: String,
        /// Parameters.
        params: Vec<Json>,
    },
    /// A request without a response (`id: null`).
    Notification {
        /// Method name.
        method: String,
        /// Parameters.
        params: Vec<Json>,
    },
    /// A response to a request.
    Response {
        /// The request's id.
        id: Json,
        /// The result, or the error the server returned.
        result: Result<Json, ServerError>,
    },
}

impl Message {
    /// Decodes a complete frame (as returned by the splitter).
    pub fn decode(frame: &[u8]) -> Result<Self, DecodeError> {
        let json: Json =
            serde_json::from_slice(frame).map_err(|e| DecodeError::Json(e.to_string()))?;
        Self::from_json(json)
    }

    /// Interprets a JSON value as a message.
    pub fn from_json(json: Json) -> Result<Self, DecodeError> {
        let Json::Object(mut obj) = json else {
            return Err(DecodeError::NotRpc("not an object".into()));
        };
        let id = obj.remove("id").unwrap_or(Json::Null);
        if let Some(method) = obj.remove("method") {
            let Json::String(method) = method else {
                return Err(DecodeError::NotRpc("method is not a string".into()));
            };
            let params = match obj.remove("params") {
                Some(Json::Array(p)) => p,
                None | Some(Json::Null) => Vec::new(),
                Some(_) => {
                    return Err(DecodeError::NotRpc(format!(
                        "params of {method} is not an array"
                    )));
                }
            };
            return Ok(if id.is_null() {
                Self::Notification { method, params }
            } else {
                Self::Request { id, method, params }
            });
        }
        if !obj.contains_key("result") && !obj.contains_key("error") {
            return Err(DecodeError::NotRpc(
                "neither method, result nor error".into(),
            ));
        }
        let error = obj.remove("error").unwrap_or(Json::Null);
        let result = if error.is_null() {
            Ok(obj.remove("result").unwrap_or(Json::Null))
        } else {
            Err(ServerError::from_json(&error))
        };
        Ok(Self::Response { id, result })
    }

    /// Encodes the message as one JSON text.
    pub fn encode(&self) -> Vec<u8> {
        self.to_json().to_string().into_bytes()
    }

    /// The message as JSON.
    pub fn to_json(&self) -> Json {
        match self {
            Self::Request { id, method, params } => {
                json!({"id": id, "method": method, "params": params})
            }
            Self::Notification { method, params } => {
                json!({"id": null, "method": method, "params": params})
            }
            Self::Response { id, result } => {
                let mut obj = Map::new();
                obj.insert("id".into(), id.clone());
                match result {
                    Ok(r) => {
                        obj.insert("result".into(), r.clone());
                        obj.insert("error".into(), Json::Null);
                    }
                    Err(e) => {
                        obj.insert("result".into(), Json::Null);
                        let mut err = Map::new();
                        err.insert("error".into(), json!(e.kind.as_str()));
                        if let Some(d) = &e.details {
                            err.insert("details".into(), json!(d));
                        }
                        obj.insert("error".into(), Json::Object(err));
                    }
                }
                Json::Object(obj)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::error::ErrorKind;

    #[test]
    fn requests_notifications_and_responses_are_told_apart() {
        let m = Message::decode(br#"{"id":"e1","method":"echo","params":[]}"#).unwrap();
        assert!(matches!(m, Message::Request { ref method, .. } if method == "echo"));
        let m = Message::decode(br#"{"id":null,"method":"update2","params":["m",{}]}"#).unwrap();
        assert!(matches!(m, Message::Notification { ref params, .. } if params.len() == 2));
        let m = Message::decode(br#"{"id":3,"result":["OVN_Northbound"],"error":null}"#).unwrap();
        assert_eq!(
            m,
            Message::Response {
                id: json!(3),
                result: Ok(json!(["OVN_Northbound"]))
            }
        );
    }

    #[test]
    fn error_responses_come_back_typed() {
        let m = Message::decode(
            br#"{"id":4,"result":null,"error":{"error":"unknown database","details":"x"}}"#,
        )
        .unwrap();
        let Message::Response { result: Err(e), .. } = m else {
            panic!("{m:?}")
        };
        assert_eq!(e.kind, ErrorKind::UnknownDatabase);
    }

    #[test]
    fn encoding_and_decoding_round_trip() {
        let msgs = [
            Message::Request {
                id: json!(1),
                method: "transact".into(),
                params: vec![json!("db")],
            },
            Message::Notification {
                method: "cancel".into(),
                params: vec![json!(1)],
            },
            Message::Response {
                id: json!("e"),
                result: Ok(json!([])),
            },
        ];
        for m in msgs {
            assert_eq!(Message::decode(&m.encode()).unwrap(), m);
        }
    }

    #[test]
    fn frames_that_are_not_json_rpc_are_rejected() {
        for bad in [
            &br#"{"a":1}"#[..],
            br#"{"method":5,"id":1}"#,
            br#"{"method":"x","params":{},"id":1}"#,
            br#"{"id":1,"result":1"#,
            b"[]",
            b"\xff",
        ] {
            assert!(Message::decode(bad).is_err());
        }
    }
}
