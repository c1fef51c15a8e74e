//! JSON-RPC 2.0 as the gateway and the stdio bridge both read it: the three message kinds,
//! ids as map keys, how a body splits into messages, the error codes answered with and the
//! error responses themselves. [`super::message`] builds the gateway's strict MCP reading of
//! a request on top of this; the stdio bridge relays messages it reads with [`kind_of`] and
//! [`parse_incoming`], which check the envelope only and leave the contents opaque.
//!
//! | code | constant | when the gateway sends it |
//! | ---: | --- | --- |
//! | -32700 | [`PARSE_ERROR`] | the request body is not JSON |
//! | -32600 | [`INVALID_REQUEST`] | JSON, but not a JSON-RPC 2.0 message |
//! | -32601 | [`METHOD_NOT_FOUND`] | the method is not offered through this route |
//! | -32602 | [`INVALID_PARAMS`] | e.g. `tools/call` without a string `params.name` |
//! | -32603 | [`INTERNAL_ERROR`] | the gateway itself failed |
//! | -32000 | [`SERVER_BUSY`] | stdio route: no capacity for another server process |
//! | -32001 | [`REQUEST_TIMEOUT`] | stdio route: the server did not answer (or read) in time |
//! | -32010 | [`POLICY_DENIED`] | the route's policy denies the method or tool |
//! | -32011 | [`APPROVAL_DENIED`] | an approver denied the held `tools/call` |
//! | -32012 | [`APPROVAL_EXPIRED`] | nobody decided on the held `tools/call` within the gate's timeout |
//! | -32013 | [`APPROVAL_UNAVAILABLE`] | the call needs approval but cannot wait (too many waiting, or in a batch) |
//! | -32014 | [`TOOL_NOT_PINNED`] | `pinning = "enforce"`: the tool's definition is not the pinned one |
//! | -32015 | [`KILLED`] | the route or the whole gateway is stopped by the kill switch |
//! | -32016 | [`UNINSPECTABLE`] | the route guards responses and the server's answer could not be read (encoded, over the cap, not JSON) |
//! | -32020 | [`HEADER_MISMATCH`] | `Mcp-Method` / `Mcp-Name` / `MCP-Protocol-Version` disagree with the body |
//!
//! The MCP specification (2026-07-28) splits the JSON-RPC server-error range: -32000..=-32019
//! stays implementation-defined and -32020..=-32099 is reserved for the specification (where
//! `HeaderMismatch` is -32020). The gateway's own codes ([`POLICY_DENIED`] and the approval codes) therefore sit in the
//! implementation-defined part, away from -32000/-32001 which SDKs already use (and which the
//! stdio bridge, standing in for a server, uses the way they do).

use bytes::Bytes;
use serde_json::{json, Map, Value};

/// Invalid JSON was received.
pub const PARSE_ERROR: i64 = -32700;
/// The JSON sent is not a valid JSON-RPC request.
pub const INVALID_REQUEST: i64 = -32600;
/// The method does not exist or is not available.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Invalid method parameters.
pub const INVALID_PARAMS: i64 = -32602;
/// Internal JSON-RPC error (here: inside the gateway, or the stdio bridge or its child).
pub const INTERNAL_ERROR: i64 = -32603;
/// Server-defined (stdio bridge): no capacity for another stdio server process.
pub const SERVER_BUSY: i64 = -32000;
/// Server-defined (stdio bridge): the stdio server did not answer in time.
pub const REQUEST_TIMEOUT: i64 = -32001;
/// Gateway-specific: the request was refused by the route's MCP policy.
pub const POLICY_DENIED: i64 = -32010;
/// Gateway-specific: an approver denied the call (approval gates).
pub const APPROVAL_DENIED: i64 = -32011;
/// Gateway-specific: the call waited for approval until its timeout.
pub const APPROVAL_EXPIRED: i64 = -32012;
/// Gateway-specific: the call needs approval but could not be held.
pub const APPROVAL_UNAVAILABLE: i64 = -32013;
/// Gateway-specific: the kill switch stopped the route or the gateway (refused or cut).
pub const KILLED: i64 = -32015;
/// Gateway-specific: the route enforces tool pinning and the called tool's last-seen
/// definition differs from its pin, was never pinned, or could not be seen.
pub const TOOL_NOT_PINNED: i64 = -32014;
/// Gateway-specific: the route guards its responses (tool policy, `deny_methods`, pinning)
/// and the server's answer could not be inspected, so it was refused rather than passed on.
pub const UNINSPECTABLE: i64 = -32016;
/// MCP `HeaderMismatch`: the HTTP headers disagree with the JSON-RPC body, or are malformed.
pub const HEADER_MISMATCH: i64 = -32020;

/// The three JSON-RPC message kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// Has `method` and `id`: expects a response.
    Request,
    /// Has `method`, no `id`.
    Notification,
    /// Has `result` or `error`, no `method` (e.g. a client answering a server request).
    Response,
}

/// The kind of one message (an element of a batch, never the batch itself) as a relay reads
/// it: only `method` and `id` decide, contents stay opaque; `None` for anything else. (The
/// gateway's own reading, [`super::inspect_request`], is stricter: it also refuses what a
/// policy could read two ways.) The `jsonrpc` member is not looked at here.
pub fn kind_of(msg: &Value) -> Option<MessageKind> {
    let obj = msg.as_object()?;
    let has_id = obj.get("id").is_some_and(valid_id);
    match obj.get("method") {
        Some(Value::String(_)) if has_id => Some(MessageKind::Request),
        Some(Value::String(_)) if !obj.contains_key("id") => Some(MessageKind::Notification),
        Some(_) => None,
        None if has_id && (obj.contains_key("result") || obj.contains_key("error")) => Some(MessageKind::Response),
        None => None,
    }
}

/// Whether `id` may identify a request: a string or a number (null is reserved for
/// responses to requests whose id could not be read).
pub fn valid_id(id: &Value) -> bool {
    matches!(id, Value::String(_) | Value::Number(_))
}

/// Map key for an id: its JSON text, so `1` and `"1"` stay distinct.
pub fn id_key(id: &Value) -> String {
    id.to_string()
}

/// Whether the message says `"jsonrpc": "2.0"`.
pub fn is_v2(obj: &Map<String, Value>) -> bool {
    obj.get("jsonrpc").and_then(Value::as_str) == Some("2.0")
}

/// The `method` of a request or notification.
pub fn method(msg: &Value) -> Option<&str> {
    msg.get("method").and_then(Value::as_str)
}

/// The `_meta.progressToken` a request asks progress notifications to carry, as an id key.
pub fn request_progress_token(msg: &Value) -> Option<String> {
    msg.get("params")?.get("_meta")?.get("progressToken").filter(|t| valid_id(t)).map(id_key)
}

/// The `progressToken` of a `notifications/progress` message, as an id key.
pub fn notification_progress_token(msg: &Value) -> Option<String> {
    if method(msg) != Some("notifications/progress") {
        return None;
    }
    msg.get("params")?.get("progressToken").filter(|t| valid_id(t)).map(id_key)
}

/// A JSON-RPC 2.0 error response: `{"jsonrpc":"2.0","id":…,"error":{"code":…,"message":…}}`,
/// with `error.data` only when `data` is given. `id` is `null` when the request's id is unknown.
pub fn error(id: Value, code: i64, message: &str, data: Option<Value>) -> Value {
    let mut error = json!({ "code": code, "message": message });
    if let (Some(data), Some(obj)) = (data, error.as_object_mut()) {
        obj.insert("data".to_owned(), data);
    }
    json!({ "jsonrpc": "2.0", "id": id, "error": error })
}

/// [`error`] serialised: the body of an error answer.
///
/// `id: None` writes `"id": null`, which JSON-RPC 2.0 prescribes when the request's id could not
/// be determined. The caller sets `Content-Type: application/json`.
pub fn error_body(id: Option<&Value>, code: i64, message: &str, data: Option<Value>) -> Bytes {
    let body = error(id.cloned().unwrap_or(Value::Null), code, message, data);
    // Serialising a `Value` cannot fail (all keys are strings); fall back to a fixed body anyway.
    match serde_json::to_vec(&body) {
        Ok(v) => Bytes::from(v),
        Err(_) => {
            Bytes::from_static(br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"internal error"}}"#)
        }
    }
}

/// The notification telling a server to stop working on request `id`.
pub fn cancelled(id: Value, reason: &str) -> Value {
    json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": id, "reason": reason}})
}

/// A body's messages, read for relaying (see [`parse_incoming`]).
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
        self.requests().filter_map(|m| m.get("id").cloned()).collect()
    }

    /// The request messages, in order.
    pub fn requests(&self) -> impl Iterator<Item = &Value> {
        self.messages.iter().filter(|m| kind_of(m) == Some(MessageKind::Request))
    }

    /// The single request's method, if the body is exactly one request.
    pub fn single_request_method(&self) -> Option<&str> {
        match self.messages.as_slice() {
            [m] if !self.batch && kind_of(m) == Some(MessageKind::Request) => method(m),
            _ => None,
        }
    }
}

/// Why a body is not acceptable for relaying: a JSON-RPC error code and a fixed message.
#[derive(Debug, PartialEq, Eq)]
pub struct BodyError {
    /// [`PARSE_ERROR`] or [`INVALID_REQUEST`].
    pub code: i64,
    /// Fixed text, never quoting the body.
    pub message: &'static str,
}

/// Reads a body to relay: one message or a non-empty batch, each `"jsonrpc": "2.0"` with a
/// [`kind_of`]. Nothing else is checked: the messages go on unchanged.
pub fn parse_incoming(body: &[u8]) -> Result<Incoming, BodyError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|_| BodyError { code: PARSE_ERROR, message: "body is not valid JSON" })?;
    let (messages, batch) = match value {
        Value::Array(items) => (items, true),
        other => (vec![other], false),
    };
    let invalid = BodyError { code: INVALID_REQUEST, message: "not a valid JSON-RPC 2.0 message or batch" };
    let envelope_ok = |m: &Value| kind_of(m).is_some() && m.as_object().is_some_and(is_v2);
    if messages.is_empty() || !messages.iter().all(envelope_ok) {
        return Err(invalid);
    }
    Ok(Incoming { messages, batch })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_with_id_and_data() {
        let b = error_body(Some(&json!(7)), POLICY_DENIED, "tool \"x\" denied", Some(json!({"tool": "x"})));
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["jsonrpc"], "2.0");
        assert_eq!(v["id"], 7);
        assert_eq!(v["error"]["code"], -32010);
        assert_eq!(v["error"]["message"], "tool \"x\" denied");
        assert_eq!(v["error"]["data"]["tool"], "x");
    }

    #[test]
    fn error_body_without_id_has_null_id_and_no_data() {
        let b = error_body(None, HEADER_MISMATCH, "Mcp-Method header does not match the body", None);
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert!(v["id"].is_null());
        assert!(v.as_object().unwrap().contains_key("id"));
        assert_eq!(v["error"]["code"], -32020);
        assert!(!v["error"].as_object().unwrap().contains_key("data"));
    }

    #[test]
    fn string_ids_survive() {
        let b = error_body(Some(&json!("req-1")), INVALID_REQUEST, "m", None);
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["id"], "req-1");
    }

    #[test]
    fn error_value_is_the_body_before_serialising() {
        let v = error(json!("a"), REQUEST_TIMEOUT, "late", None);
        assert_eq!(v, json!({"jsonrpc": "2.0", "id": "a", "error": {"code": -32001, "message": "late"}}));
        assert_eq!(error_body(Some(&json!("a")), REQUEST_TIMEOUT, "late", None), serde_json::to_vec(&v).unwrap());
        assert_eq!(error(Value::Null, SERVER_BUSY, "m", None)["id"], Value::Null);
    }

    #[test]
    fn cancelled_names_the_request() {
        let v = cancelled(json!(3), "gateway request timeout");
        assert_eq!(v["method"], "notifications/cancelled");
        assert_eq!(v["params"], json!({"requestId": 3, "reason": "gateway request timeout"}));
        assert!(v.get("id").is_none());
    }

    #[test]
    fn kinds() {
        use MessageKind::*;
        assert_eq!(kind_of(&json!({"jsonrpc":"2.0","id":1,"method":"x"})), Some(Request));
        assert_eq!(kind_of(&json!({"jsonrpc":"2.0","id":"a","method":"x"})), Some(Request));
        assert_eq!(kind_of(&json!({"jsonrpc":"2.0","method":"x"})), Some(Notification));
        assert_eq!(kind_of(&json!({"jsonrpc":"2.0","id":1,"result":{}})), Some(Response));
        assert_eq!(kind_of(&json!({"jsonrpc":"2.0","id":1,"error":{}})), Some(Response));
        assert_eq!(kind_of(&json!({"jsonrpc":"2.0","id":null,"method":"x"})), None);
        assert_eq!(kind_of(&json!({"jsonrpc":"2.0","id":{},"result":1})), None);
        assert_eq!(kind_of(&json!({"jsonrpc":"2.0","method":3})), None);
        assert_eq!(kind_of(&json!([1])), None);
    }

    /// A relay only routes: what the gateway's inspection refuses as ambiguous, it still
    /// classifies by `method` and `id` (and the gateway's checks run before it on the HTTP path).
    #[test]
    fn relay_reading_is_the_envelope_only() {
        let both = json!({"jsonrpc":"2.0","id":1,"method":"x","result":{}});
        assert_eq!(kind_of(&both), Some(MessageKind::Request));
        let headers = http::HeaderMap::new();
        assert!(super::super::inspect_request(&headers, both.to_string().as_bytes()).is_err());
        let scalar_params = json!({"jsonrpc":"2.0","id":1,"method":"x","params":3});
        assert_eq!(kind_of(&scalar_params), Some(MessageKind::Request));
    }

    #[test]
    fn ids_keep_their_type() {
        assert_ne!(id_key(&json!(1)), id_key(&json!("1")));
        assert!(valid_id(&json!(1)) && valid_id(&json!("x")));
        assert!(!valid_id(&Value::Null) && !valid_id(&json!({})) && !valid_id(&json!(true)));
    }

    #[test]
    fn bodies() {
        let one = parse_incoming(br#"{"jsonrpc":"2.0","id":7,"method":"initialize"}"#).unwrap();
        assert_eq!(one.single_request_method(), Some("initialize"));
        assert_eq!(one.request_ids(), vec![json!(7)]);
        let batch =
            parse_incoming(br#"[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"n"}]"#).unwrap();
        assert!(batch.batch);
        assert_eq!(batch.single_request_method(), None);
        assert_eq!(batch.request_ids(), vec![json!(1)]);
        assert_eq!(batch.requests().count(), 1);
        let err = parse_incoming(b"{").unwrap_err();
        assert_eq!(err, BodyError { code: PARSE_ERROR, message: "body is not valid JSON" });
        assert_eq!(parse_incoming(b"[]").unwrap_err().code, INVALID_REQUEST);
        assert_eq!(parse_incoming(br#"{"id":1,"method":"a"}"#).unwrap_err().code, INVALID_REQUEST);
        assert_eq!(parse_incoming(br#"{"jsonrpc":"1.0","id":1,"method":"a"}"#).unwrap_err().code, INVALID_REQUEST);
        assert_eq!(parse_incoming(b"7").unwrap_err().message, "not a valid JSON-RPC 2.0 message or batch");
    }

    #[test]
    fn progress_tokens() {
        let req = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"progressToken":"t"}}});
        let note = json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t"}});
        assert_eq!(request_progress_token(&req), notification_progress_token(&note));
        assert!(request_progress_token(&req).is_some());
        let other = json!({"jsonrpc":"2.0","method":"notifications/message","params":{"progressToken":"t"}});
        assert_eq!(notification_progress_token(&other), None);
    }
}
