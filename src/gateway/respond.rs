//! Responses the gateway writes itself, and the response extensions that carry what
//! happened to the metrics (never sent to the client).

use bytes::Bytes;
use serde_json::Value;

pub use crate::body::{full, json_error, ClientBody};
use crate::mcp::{error_body, MessageKind, RequestInfo};

/// The route a response belongs to.
#[derive(Clone)]
pub struct RouteName(pub String);

/// Why the upstream request failed.
#[derive(Clone, Copy)]
pub struct Failure(pub &'static str);

/// The JSON-RPC answer to a refused request: one error with `code` per request in it (a
/// batch is refused whole, so no part of it runs).
pub fn refusal_body(info: &RequestInfo, code: i64, message: &str) -> Bytes {
    let ids: Vec<&Value> =
        info.messages.iter().filter(|m| m.kind == MessageKind::Request).filter_map(|m| m.id.as_ref()).collect();
    if !info.batch {
        return error_body(ids.first().copied(), code, message, None);
    }
    let errors: Vec<Value> = ids
        .iter()
        .map(|id| serde_json::from_slice(&error_body(Some(id), code, message, None)).unwrap_or(Value::Null))
        .collect();
    Bytes::from(Value::Array(errors).to_string())
}
