//! MCP-aware building blocks for the gateway's proxy: pure functions and one body wrapper,
//! no I/O, so each piece is tested on its own.
//!
//! Covers MCP Streamable HTTP in both generations the gateway serves side by side:
//! 2025-03-26, 2025-06-18 and 2025-11-25 (JSON-RPC body, `Mcp-Session-Id`,
//! `MCP-Protocol-Version`, SSE responses, GET stream, DELETE), and 2026-07-28 (no sessions and
//! no `initialize`; `Mcp-Method` / `Mcp-Name` on every POST; trace context in `params._meta`).
//!
//! In request order:
//! - [`message`]: [`inspect_request`] reads headers + body into a [`RequestInfo`] (methods,
//!   ids, tool / resource / prompt names, raw arguments, session, protocol version, trace id)
//!   and refuses bodies that are not JSON-RPC 2.0 or whose mirrored headers disagree with them
//!   (the types it fills are [`info`]'s; `MessageInfo::called_tool` names a `tools/call`'s tool);
//!   [`json`] parses them, refusing duplicate keys (no parser-differential smuggling).
//! - [`policy`]: [`ToolPolicy`] of [`Glob`] patterns decides which methods and tools pass.
//! - [`redact`](mod@redact): [`redact()`] turns tool arguments into something safe to log.
//! - [`jsonrpc`]: JSON-RPC 2.0 itself, shared with the stdio bridge: [`MessageKind`], ids,
//!   [`error_body`] and the error codes the gateway answers with itself.
//! - [`response`]: [`InspectedBody`] streams the upstream's answer through while counting
//!   bytes and recording JSON-RPC errors; built on [`sse`], an incremental, bounded
//!   `text/event-stream` parser. On routes that restrict anything it puts every message
//!   through a [`Guard`] ([`guard`]): denied server→client requests dropped, listings filtered
//!   and learned from, whatever cannot be read refused.
//!
//! Typical use in the proxy: `inspect_request` → on error answer
//! `error_body(err.request_id(), err.jsonrpc_code(), &err.to_string(), None)` with status 400 →
//! check `method_allowed` / `tool_allowed` (deny with [`jsonrpc::POLICY_DENIED`]) → forward →
//! wrap the response body in `InspectedBody` (with a `Guard` on guarded routes; drop
//! `Content-Length` when `will_modify()`), logging `redact(arguments, …)` and the summary.

pub mod guard;
pub mod info;
pub mod json;
pub mod jsonrpc;
pub mod message;
pub mod policy;
pub mod redact;
pub mod response;
mod sink;
pub mod sse;

pub use guard::{Guard, Notice, RefusalSink, ServerMessage, ToolHide, ToolSink};
pub use jsonrpc::{error_body, MessageKind};
pub use message::{inspect_request, InspectError, MessageInfo, RequestInfo};
pub use policy::{Denied, Glob, GlobError, ToolPolicy};
pub use redact::{redact, RedactMode};
pub use response::{inspectable, InspectedBody, OnDone, ResponseSummary};
pub use sse::{SseEvent, SseItem, SseParser};
