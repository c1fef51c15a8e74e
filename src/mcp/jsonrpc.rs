//! JSON-RPC 2.0 error bodies the gateway answers with itself, and the codes it uses.
//!
//! | code | constant | when the gateway sends it |
//! | ---: | --- | --- |
//! | -32700 | [`PARSE_ERROR`] | the request body is not JSON |
//! | -32600 | [`INVALID_REQUEST`] | JSON, but not a JSON-RPC 2.0 message |
//! | -32601 | [`METHOD_NOT_FOUND`] | the method is not offered through this route |
//! | -32602 | [`INVALID_PARAMS`] | e.g. `tools/call` without a string `params.name` |
//! | -32603 | [`INTERNAL_ERROR`] | the gateway itself failed |
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
//! implementation-defined part, away from -32000/-32001 which SDKs already use.

use bytes::Bytes;
use serde_json::{json, Value};

/// Invalid JSON was received.
pub const PARSE_ERROR: i64 = -32700;
/// The JSON sent is not a valid JSON-RPC request.
pub const INVALID_REQUEST: i64 = -32600;
/// The method does not exist or is not available.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Invalid method parameters.
pub const INVALID_PARAMS: i64 = -32602;
/// Internal JSON-RPC error (here: inside the gateway).
pub const INTERNAL_ERROR: i64 = -32603;
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

/// A JSON-RPC 2.0 error response: `{"jsonrpc":"2.0","id":…,"error":{"code":…,"message":…}}`.
///
/// `id: None` writes `"id": null`, which JSON-RPC 2.0 prescribes when the request's id could not
/// be determined. `data` is added only when given. The caller sets
/// `Content-Type: application/json`.
pub fn error_body(id: Option<&Value>, code: i64, message: &str, data: Option<Value>) -> Bytes {
    let mut error = json!({ "code": code, "message": message });
    if let (Some(data), Some(obj)) = (data, error.as_object_mut()) {
        obj.insert("data".to_owned(), data);
    }
    let body = json!({ "jsonrpc": "2.0", "id": id.cloned().unwrap_or(Value::Null), "error": error });
    // Serialising a `Value` cannot fail (all keys are strings); fall back to a fixed body anyway.
    match serde_json::to_vec(&body) {
        Ok(v) => Bytes::from(v),
        Err(_) => {
            Bytes::from_static(br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"internal error"}}"#)
        }
    }
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
}
