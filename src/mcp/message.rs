//! What an MCP Streamable HTTP request asks for, read from its headers and JSON-RPC body.
//!
//! [`inspect_request`] understands both protocol generations:
//! - 2025-03-26 … 2025-11-25: `Mcp-Session-Id`, `MCP-Protocol-Version` (from 2025-06-18; the
//!   `initialize` request carries the requested version in `params.protocolVersion`), JSON-RPC
//!   batches (2025-03-26), GET/DELETE with an empty body.
//! - 2026-07-28: no session; `Mcp-Method` on every POST and `Mcp-Name` for `tools/call`,
//!   `resources/read` and `prompts/get` (`=?base64?…?=` when not header-safe); the protocol
//!   version and W3C trace context travel in `params._meta`.
//!
//! The body is the source of truth. Mirrored headers, when present, must agree with it
//! ([`InspectError::HeaderMismatch`], answered with JSON-RPC -32020): otherwise a router
//! trusting the header and a server trusting the body would see different requests. A missing
//! `Mcp-Name` is not an error here (older clients never send it); the policy uses the body.
//!
//! Bodies with a duplicate object key are refused (see [`super::json`]). Errors never quote
//! body or header content, only positions and fixed reasons.

use base64::prelude::{Engine, BASE64_STANDARD};
use http::HeaderMap;
use serde_json::{Map, Value};

pub use super::info::{MessageInfo, RequestInfo, TOOLS_CALL};
use super::json::{parse_strict, DUPLICATE_KEY};
pub use super::jsonrpc::MessageKind;
use super::jsonrpc::{self, valid_id};

/// `MCP-Protocol-Version` (header names are matched case-insensitively by `http`).
pub const HDR_PROTOCOL_VERSION: &str = "mcp-protocol-version";
/// `Mcp-Session-Id` (2025-03-26 … 2025-11-25).
pub const HDR_SESSION_ID: &str = "mcp-session-id";
/// `Mcp-Method` (2026-07-28).
pub const HDR_METHOD: &str = "mcp-method";
/// `Mcp-Name` (2026-07-28).
pub const HDR_NAME: &str = "mcp-name";
/// W3C trace context.
pub const HDR_TRACEPARENT: &str = "traceparent";
/// `_meta` key carrying the protocol version (2026-07-28).
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";

/// Why a request could not be inspected. `Display` never includes payload content.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InspectError {
    /// The body is not JSON (or is nested deeper than serde_json's recursion limit).
    #[error("body is not valid JSON: {reason} at line {line} column {column}")]
    InvalidJson {
        /// Fixed description of the fault.
        reason: &'static str,
        /// 1-based line of the fault.
        line: usize,
        /// 1-based column of the fault.
        column: usize,
    },
    /// JSON, but not a JSON-RPC 2.0 message (or batch of them).
    #[error("message {index}: not a JSON-RPC 2.0 message: {reason}")]
    NotJsonRpc {
        /// Position in the batch (0 for a single message).
        index: usize,
        /// Fixed description of the fault.
        reason: &'static str,
    },
    /// A well-formed message whose params the gateway needs are unusable (e.g. no tool name).
    #[error("message {index}: invalid params: {reason}")]
    InvalidParams {
        /// Position in the batch.
        index: usize,
        /// Fixed description of the fault.
        reason: &'static str,
        /// The request id, for the JSON-RPC error reply.
        id: Option<Value>,
    },
    /// A mirrored header disagrees with the body.
    #[error("{header} header does not match the request body")]
    HeaderMismatch {
        /// Header name as the spec spells it.
        header: &'static str,
        /// The request id, for the JSON-RPC error reply.
        id: Option<Value>,
    },
    /// A header is repeated, not visible ASCII, or (for `Mcp-Name`) a broken base64 sentinel.
    #[error("{header} header is malformed: {reason}")]
    InvalidHeader {
        /// Header name as the spec spells it.
        header: &'static str,
        /// Fixed description of the fault.
        reason: &'static str,
    },
}

impl InspectError {
    /// The JSON-RPC error code the gateway answers with (see [`jsonrpc`]).
    pub fn jsonrpc_code(&self) -> i64 {
        match self {
            InspectError::InvalidJson { .. } => jsonrpc::PARSE_ERROR,
            InspectError::NotJsonRpc { .. } => jsonrpc::INVALID_REQUEST,
            InspectError::InvalidParams { .. } => jsonrpc::INVALID_PARAMS,
            InspectError::HeaderMismatch { .. } | InspectError::InvalidHeader { .. } => jsonrpc::HEADER_MISMATCH,
        }
    }

    /// The id of the offending request, when known.
    pub fn request_id(&self) -> Option<&Value> {
        match self {
            InspectError::InvalidParams { id, .. } | InspectError::HeaderMismatch { id, .. } => id.as_ref(),
            _ => None,
        }
    }
}

/// Inspects one HTTP request. The caller has already bounded `body`'s size.
pub fn inspect_request(headers: &HeaderMap, body: &[u8]) -> Result<RequestInfo, InspectError> {
    let hdr = MirroredHeaders::read(headers)?;
    let session_id = match single(headers, HDR_SESSION_ID, "Mcp-Session-Id")? {
        Some(s) if s.is_empty() || !s.bytes().all(|b| (0x21..=0x7e).contains(&b)) => {
            return Err(InspectError::InvalidHeader { header: "Mcp-Session-Id", reason: "not visible ASCII" })
        }
        s => s.map(str::to_owned),
    };
    let mut traceparents = headers.get_all(HDR_TRACEPARENT).iter();
    let header_trace = match (traceparents.next(), traceparents.next()) {
        (Some(one), None) => one.to_str().ok().and_then(trace_id_of).map(str::to_owned),
        _ => None, // absent, or repeated (which W3C says to ignore)
    };

    let (values, batch) = parse_body(body)?;
    let mut info = RequestInfo {
        protocol_version: hdr.protocol_version.clone(),
        session_id,
        trace_id: header_trace,
        header_method: hdr.method.clone(),
        header_name: hdr.name.clone(),
        messages: Vec::with_capacity(values.len()),
        batch,
    };
    for (index, value) in values.into_iter().enumerate() {
        let (msg, meta) = classify(index, value, &hdr)?;
        if index == 0 {
            if info.protocol_version.is_none() {
                info.protocol_version = meta.protocol_version;
            }
            if info.trace_id.is_none() {
                info.trace_id = meta.trace_id;
            }
        }
        info.messages.push(msg);
    }
    Ok(info)
}

/// The 32-hex trace-id of a W3C `traceparent` value, if the value is valid.
pub fn trace_id_of(traceparent: &str) -> Option<&str> {
    let b = traceparent.as_bytes();
    let lower_hex = |s: &[u8]| s.iter().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c));
    let nonzero = |s: &[u8]| s.iter().any(|&c| c != b'0');
    if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    let (version, trace, parent, flags) = (&b[0..2], &b[3..35], &b[36..52], &b[53..55]);
    if !lower_hex(version) || version == b"ff" || !lower_hex(flags) {
        return None;
    }
    // Version 00 is exactly 55 bytes; later versions may append fields after another '-'.
    if (version == b"00" && b.len() != 55) || (b.len() > 55 && b[55] != b'-') {
        return None;
    }
    if !lower_hex(trace) || !nonzero(trace) || !lower_hex(parent) || !nonzero(parent) {
        return None;
    }
    traceparent.get(3..35)
}

/// The mirrored headers that must agree with the body.
struct MirroredHeaders {
    protocol_version: Option<String>,
    method: Option<String>,
    name: Option<String>,
}

impl MirroredHeaders {
    fn read(headers: &HeaderMap) -> Result<MirroredHeaders, InspectError> {
        let protocol_version = single(headers, HDR_PROTOCOL_VERSION, "MCP-Protocol-Version")?.map(str::to_owned);
        let method = single(headers, HDR_METHOD, "Mcp-Method")?.map(str::to_owned);
        let name = single(headers, HDR_NAME, "Mcp-Name")?.map(decode_sentinel).transpose()?;
        Ok(MirroredHeaders { protocol_version, method, name })
    }
}

/// At most one value, visible ASCII: a repeated header could be read differently by each hop.
fn single<'a>(headers: &'a HeaderMap, name: &str, label: &'static str) -> Result<Option<&'a str>, InspectError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(InspectError::InvalidHeader { header: label, reason: "repeated" });
    }
    first.to_str().map(Some).map_err(|_| InspectError::InvalidHeader { header: label, reason: "not visible ASCII" })
}

/// Decodes `=?base64?…?=` (canonical standard base64 of UTF-8); other values are literal.
fn decode_sentinel(v: &str) -> Result<String, InspectError> {
    let Some(payload) = v.strip_prefix("=?base64?").and_then(|r| r.strip_suffix("?=")) else {
        return Ok(v.to_owned());
    };
    let bad = |reason| InspectError::InvalidHeader { header: "Mcp-Name", reason };
    // The STANDARD engine requires canonical padding and rejects non-zero trailing bits.
    let bytes = BASE64_STANDARD.decode(payload).map_err(|_| bad("invalid base64"))?;
    String::from_utf8(bytes).map_err(|_| bad("base64 payload is not UTF-8"))
}

fn parse_body(body: &[u8]) -> Result<(Vec<Value>, bool), InspectError> {
    if body.trim_ascii().is_empty() {
        return Ok((Vec::new(), false));
    }
    // serde_json stops at 128 nesting levels with an error, so deep bodies cannot overflow the stack.
    let value = parse_strict(body).map_err(|e| {
        let reason = match e.classify() {
            serde_json::error::Category::Eof => "unexpected end of input",
            serde_json::error::Category::Data if e.to_string().starts_with(DUPLICATE_KEY) => DUPLICATE_KEY,
            serde_json::error::Category::Data => "invalid value",
            serde_json::error::Category::Io => "read error",
            serde_json::error::Category::Syntax if e.to_string().starts_with("recursion limit") => "nested too deeply",
            serde_json::error::Category::Syntax => "syntax error",
        };
        InspectError::InvalidJson { reason, line: e.line(), column: e.column() }
    })?;
    match value {
        Value::Array(items) if items.is_empty() => Err(InspectError::NotJsonRpc { index: 0, reason: "empty batch" }),
        Value::Array(items) => Ok((items, true)),
        obj @ Value::Object(_) => Ok((vec![obj], false)),
        _ => Err(InspectError::NotJsonRpc { index: 0, reason: "top-level value is not an object or array" }),
    }
}

/// Per-message `_meta` facts (only the first message's are reported).
#[derive(Default)]
struct MetaFacts {
    protocol_version: Option<String>,
    trace_id: Option<String>,
}

fn classify(index: usize, value: Value, hdr: &MirroredHeaders) -> Result<(MessageInfo, MetaFacts), InspectError> {
    let not_rpc = |reason| InspectError::NotJsonRpc { index, reason };
    let Value::Object(mut obj) = value else { return Err(not_rpc("batch element is not an object")) };
    if !jsonrpc::is_v2(&obj) {
        return Err(not_rpc("jsonrpc member is not \"2.0\""));
    }
    let id = obj.remove("id");
    let has_outcome = obj.contains_key("result") || obj.contains_key("error");
    let method = match obj.remove("method") {
        None => return classify_response(index, id, &obj, hdr).map(|msg| (msg, MetaFacts::default())),
        Some(Value::String(m)) => m,
        Some(_) => return Err(not_rpc("method is not a string")),
    };
    if has_outcome {
        return Err(not_rpc("message has both method and result/error"));
    }
    let kind = match &id {
        None => MessageKind::Notification,
        Some(i) if valid_id(i) => MessageKind::Request,
        Some(_) => return Err(not_rpc("request id must be a string or number")),
    };
    let params = match obj.remove("params") {
        None | Some(Value::Array(_)) => Map::new(), // positional params carry nothing MCP names
        Some(Value::Object(p)) => p,
        Some(_) => return Err(not_rpc("params must be an object or array")),
    };
    if hdr.method.as_deref().is_some_and(|h| h != method) {
        return Err(InspectError::HeaderMismatch { header: "Mcp-Method", id });
    }
    let meta = meta_facts(&params);
    if let (Some(h), Some(b)) = (&hdr.protocol_version, &meta.protocol_version) {
        if h != b {
            return Err(InspectError::HeaderMismatch { header: "MCP-Protocol-Version", id });
        }
    }
    classify_target(index, MessageInfo::bare(kind, id), method, params, meta, hdr)
}

/// A response (no `method`): exactly one of result/error, and an id (null allowed for errors).
fn classify_response(
    index: usize,
    id: Option<Value>,
    obj: &Map<String, Value>,
    hdr: &MirroredHeaders,
) -> Result<MessageInfo, InspectError> {
    let not_rpc = |reason| InspectError::NotJsonRpc { index, reason };
    if obj.contains_key("result") == obj.contains_key("error") {
        return Err(not_rpc("response must have exactly one of result and error"));
    }
    if !id.as_ref().is_some_and(|i| i.is_null() || valid_id(i)) {
        return Err(not_rpc("response id must be a string, number or null"));
    }
    if hdr.method.is_some() {
        // A header claiming a method for a body that has none is a mismatch too.
        return Err(InspectError::HeaderMismatch { header: "Mcp-Method", id });
    }
    Ok(MessageInfo::bare(MessageKind::Response, id))
}

/// The tool, prompt or resource a request or notification names, for the methods that name
/// one (refused when missing: it could not be checked against a policy).
fn classify_target(
    index: usize,
    mut msg: MessageInfo,
    method: String,
    mut params: Map<String, Value>,
    meta: MetaFacts,
    hdr: &MirroredHeaders,
) -> Result<(MessageInfo, MetaFacts), InspectError> {
    let (field, name_bearing) = match method.as_str() {
        TOOLS_CALL | "prompts/get" => ("name", true),
        "resources/read" => ("uri", true),
        "resources/subscribe" | "resources/unsubscribe" => ("uri", false),
        _ => {
            if index == 0 && method == "initialize" && meta.protocol_version.is_none() {
                let requested = params.get("protocolVersion").and_then(Value::as_str).map(str::to_owned);
                msg.method = Some(method);
                return Ok((msg, MetaFacts { protocol_version: requested, ..meta }));
            }
            msg.method = Some(method);
            return Ok((msg, meta));
        }
    };
    let Some(Value::String(name)) = params.remove(field) else {
        let reason = match field {
            "name" => "params.name must be a string",
            _ => "params.uri must be a string",
        };
        return Err(InspectError::InvalidParams { index, reason, id: msg.id });
    };
    if name_bearing && hdr.name.as_deref().is_some_and(|h| h != name) {
        return Err(InspectError::HeaderMismatch { header: "Mcp-Name", id: msg.id });
    }
    match method.as_str() {
        TOOLS_CALL => msg.tool = Some(name),
        "prompts/get" => msg.prompt = Some(name),
        _ => msg.resource_uri = Some(name),
    }
    if field == "name" {
        msg.arguments = params.remove("arguments");
    }
    msg.method = Some(method);
    Ok((msg, meta))
}

fn meta_facts(params: &Map<String, Value>) -> MetaFacts {
    let Some(Value::Object(meta)) = params.get("_meta") else { return MetaFacts::default() };
    MetaFacts {
        protocol_version: meta.get(META_PROTOCOL_VERSION).and_then(Value::as_str).map(str::to_owned),
        trace_id: meta.get("traceparent").and_then(Value::as_str).and_then(trace_id_of).map(str::to_owned),
    }
}

#[cfg(test)]
#[path = "tests/message.rs"]
mod tests;
