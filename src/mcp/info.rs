//! What the request inspector (`super::message`) found in a request: its messages and the
//! MCP headers, which policy, pinning, approval gates and the audit trail judge by.

use serde_json::Value;

use super::jsonrpc::MessageKind;

/// One JSON-RPC message of the request body.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageInfo {
    /// Request, notification or response.
    pub kind: MessageKind,
    /// The method, for requests and notifications.
    pub method: Option<String>,
    /// The id (string or number; may be null on an error response).
    pub id: Option<Value>,
    /// `params.name` of `tools/call` (always present for that method).
    pub tool: Option<String>,
    /// `params.uri` of `resources/read|subscribe|unsubscribe` (always present for those).
    pub resource_uri: Option<String>,
    /// `params.name` of `prompts/get` (always present for that method).
    pub prompt: Option<String>,
    /// Raw `params.arguments` of `tools/call` / `prompts/get`: may hold secrets, redact before logging.
    pub arguments: Option<Value>,
}

/// The method whose calls policy, pinning and approval gates judge by tool name.
pub const TOOLS_CALL: &str = "tools/call";

impl MessageInfo {
    /// The tool a `tools/call` message calls (`None` for every other message). A
    /// `tools/call` sent as a notification counts too: a lax server might still run it.
    pub fn called_tool(&self) -> Option<&str> {
        let call = self.kind != MessageKind::Response && self.method.as_deref() == Some(TOOLS_CALL);
        self.tool.as_deref().filter(|_| call)
    }

    /// A message of `kind` with `id` and nothing else known yet.
    pub(super) fn bare(kind: MessageKind, id: Option<Value>) -> MessageInfo {
        MessageInfo { kind, method: None, id, tool: None, resource_uri: None, prompt: None, arguments: None }
    }
}

/// What a request carries, headers and body together.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RequestInfo {
    /// `MCP-Protocol-Version`, else the first message's `_meta` protocol version, else the
    /// version an `initialize` request asks for.
    pub protocol_version: Option<String>,
    /// `Mcp-Session-Id`.
    pub session_id: Option<String>,
    /// The 32-hex trace-id of a valid `traceparent` header, else of `params._meta.traceparent`.
    pub trace_id: Option<String>,
    /// `Mcp-Method` as sent (useful when the body is empty).
    pub header_method: Option<String>,
    /// `Mcp-Name`, base64 sentinel decoded (useful when the body is empty).
    pub header_name: Option<String>,
    /// The messages; empty for an empty body (GET, DELETE).
    pub messages: Vec<MessageInfo>,
    /// Whether the body was a JSON array (a 2025-03-26 batch).
    pub batch: bool,
}
