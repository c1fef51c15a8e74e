//! The little JSON-RPC 2.0 the bridge must understand: classify messages, key ids,
//! parse a POST body into messages, and build error responses. Message contents are
//! otherwise opaque and passed through unchanged.

use serde_json::{json, Map, Value};

/// Invalid JSON was received.
pub const PARSE_ERROR: i64 = -32700;
/// The JSON sent is not a valid request object.
pub const INVALID_REQUEST: i64 = -32600;
/// The method does not exist here.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Internal error (the bridge or its child failed).
pub const INTERNAL_ERROR: i64 = -32603;
/// Server-defined: no capacity for another stdio server process.
pub const SERVER_BUSY: i64 = -32000;
/// Server-defined: the stdio server did not answer in time.
pub const REQUEST_TIMEOUT: i64 = -32001;

/// What a single JSON-RPC message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Has `method` and `id`: expects a response.
    Request,
    /// Has `method`, no `id`.
    Notification,
    /// Has `id` and `result` or `error`, no `method`.
    Response,
    /// Anything else.
    Invalid,
}

/// Classifies one message (an element of a batch, never the batch itself).
pub fn kind(msg: &Value) -> Kind {
    let Some(obj) = msg.as_object() else { return Kind::Invalid };
    let has_id = obj.get("id").is_some_and(valid_id);
    match obj.get("method") {
        Some(Value::String(_)) if has_id => Kind::Request,
        Some(Value::String(_)) if !obj.contains_key("id") => Kind::Notification,
        Some(_) => Kind::Invalid,
        None if has_id && (obj.contains_key("result") || obj.contains_key("error")) => Kind::Response,
        None => Kind::Invalid,
    }
}

/// JSON-RPC ids are strings or numbers (null is reserved for unparseable requests).
fn valid_id(id: &Value) -> bool {
    matches!(id, Value::String(_) | Value::Number(_))
}

/// Map key for an id: its JSON text, so `1` and `"1"` stay distinct.
pub fn id_key(id: &Value) -> String {
    id.to_string()
}

/// The `method` of a request or notification.
pub fn method(msg: &Value) -> Option<&str> {
    msg.get("method").and_then(Value::as_str)
}

/// The `_meta.progressToken` a request asks progress notifications to carry.
pub fn request_progress_token(msg: &Value) -> Option<String> {
    msg.get("params")?.get("_meta")?.get("progressToken").filter(|t| valid_id(t)).map(id_key)
}

/// The `progressToken` of a `notifications/progress` message.
pub fn notification_progress_token(msg: &Value) -> Option<String> {
    if method(msg) != Some("notifications/progress") {
        return None;
    }
    msg.get("params")?.get("progressToken").filter(|t| valid_id(t)).map(id_key)
}

/// A JSON-RPC error response for request `id` (null when unknown).
pub fn error(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// The notification telling the server to stop working on request `id`.
pub fn cancelled(id: Value, reason: &str) -> Value {
    json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": id, "reason": reason}})
}

/// A POST body, split into messages.
#[derive(Debug)]
pub struct Incoming {
    /// The messages in order (one unless `batch`).
    pub messages: Vec<Value>,
    /// The body was a JSON array; a JSON answer must then be an array too.
    pub batch: bool,
}

impl Incoming {
    /// Ids of the request messages, in order.
    pub fn request_ids(&self) -> Vec<Value> {
        self.messages.iter().filter(|m| kind(m) == Kind::Request).filter_map(|m| m.get("id").cloned()).collect()
    }

    /// The single request's method, if the body is exactly one request.
    pub fn single_request_method(&self) -> Option<&str> {
        match self.messages.as_slice() {
            [m] if !self.batch && kind(m) == Kind::Request => method(m),
            _ => None,
        }
    }
}

/// Why a POST body is not acceptable: a JSON-RPC error code and a fixed message.
#[derive(Debug, PartialEq, Eq)]
pub struct BodyError {
    pub code: i64,
    pub message: &'static str,
}

/// Parses a POST body: one message or a non-empty batch of valid messages.
pub fn parse_body(body: &[u8]) -> Result<Incoming, BodyError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|_| BodyError { code: PARSE_ERROR, message: "body is not valid JSON" })?;
    let (messages, batch) = match value {
        Value::Array(items) => (items, true),
        other => (vec![other], false),
    };
    let invalid = BodyError { code: INVALID_REQUEST, message: "not a valid JSON-RPC 2.0 message or batch" };
    if messages.is_empty() || messages.iter().any(|m| kind(m) == Kind::Invalid || !is_v2(m)) {
        return Err(invalid);
    }
    Ok(Incoming { messages, batch })
}

fn is_v2(msg: &Value) -> bool {
    msg.as_object().and_then(|o: &Map<String, Value>| o.get("jsonrpc")).and_then(Value::as_str) == Some("2.0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(kind(&json!({"jsonrpc":"2.0","id":1,"method":"x"})), Kind::Request);
        assert_eq!(kind(&json!({"jsonrpc":"2.0","id":"a","method":"x"})), Kind::Request);
        assert_eq!(kind(&json!({"jsonrpc":"2.0","method":"x"})), Kind::Notification);
        assert_eq!(kind(&json!({"jsonrpc":"2.0","id":1,"result":{}})), Kind::Response);
        assert_eq!(kind(&json!({"jsonrpc":"2.0","id":1,"error":{}})), Kind::Response);
        assert_eq!(kind(&json!({"jsonrpc":"2.0","id":null,"method":"x"})), Kind::Invalid);
        assert_eq!(kind(&json!({"jsonrpc":"2.0","id":{},"result":1})), Kind::Invalid);
        assert_eq!(kind(&json!({"jsonrpc":"2.0","method":3})), Kind::Invalid);
        assert_eq!(kind(&json!([1])), Kind::Invalid);
    }

    #[test]
    fn ids_keep_their_type() {
        assert_ne!(id_key(&json!(1)), id_key(&json!("1")));
    }

    #[test]
    fn bodies() {
        let one = parse_body(br#"{"jsonrpc":"2.0","id":7,"method":"initialize"}"#).unwrap();
        assert_eq!(one.single_request_method(), Some("initialize"));
        assert_eq!(one.request_ids(), vec![json!(7)]);
        let batch = parse_body(br#"[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"n"}]"#).unwrap();
        assert!(batch.batch);
        assert_eq!(batch.single_request_method(), None);
        assert_eq!(batch.request_ids(), vec![json!(1)]);
        assert_eq!(parse_body(b"{").unwrap_err().code, PARSE_ERROR);
        assert_eq!(parse_body(b"[]").unwrap_err().code, INVALID_REQUEST);
        assert_eq!(parse_body(br#"{"id":1,"method":"a"}"#).unwrap_err().code, INVALID_REQUEST);
    }

    #[test]
    fn progress_tokens() {
        let req = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"progressToken":"t"}}});
        let note = json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t"}});
        assert_eq!(request_progress_token(&req), notification_progress_token(&note));
        assert!(request_progress_token(&req).is_some());
    }
}
