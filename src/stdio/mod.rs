//! Bridge from MCP Streamable HTTP to MCP servers that only speak stdio
//! (newline-delimited JSON-RPC on stdin/stdout).
//!
//! One child process per MCP session, never shared between clients: `initialize` without
//! `Mcp-Session-Id` spawns a child and returns a fresh session id; the child is stopped on
//! DELETE, after `idle_timeout` without activity, on [`StdioBridge::shutdown`], or when it
//! exits (its pending requests then fail with a JSON-RPC error, HTTP 502). At most
//! `max_children` children live at once; past that `initialize` gets 503 + `Retry-After`.
//!
//! Protocol generations: stdio servers are handshake-era (the SDK's stdio server answers
//! `server/discover` with -32601 itself), so the bridge answers the 2026-07-28 probe
//! `server/discover` with -32601 (HTTP 404, as that transport maps it) without spawning
//! anything; the official Python client (`mcp.Client`, mode "auto") then falls back to the
//! `initialize` handshake. Sessionless 2026-07-28 requests (no probe) get 400.
//!
//! GET opens the session's server→client stream; a second GET replaces the first (the old
//! stream ends), so a client reconnecting after a dead connection is never locked out.
//!
//! A session belongs to the identity that created it (the route's authenticated caller,
//! found in the request's extensions as an [`crate::auth::Identity`]; none on routes
//! without auth): the same id from anyone else gets 404, as an unknown one does.
//! Children run confined ([`sandbox`]: user, rlimits) and are known to [`lineage`], which
//! keeps them off the control socket.
//!
//! Modules, in request order: [`http`] (Streamable HTTP) → [`table`] (sessions, cap,
//! supervisor) → [`session`] (routing) → [`child`] (the process and its pipes); [`sse`]
//! builds bodies, [`spec`] says what to run. No part imports this root: [`StdioBridge`]
//! hands [`http`] the pieces a request needs. The message shapes are the gateway's own
//! ([`crate::mcp::jsonrpc`]).

mod child;
mod http;
pub mod lineage;
pub mod sandbox;
mod session;
mod spec;
mod sse;
mod table;

use std::sync::Arc;

use bytes::Bytes;

use self::http::Endpoint;
pub use self::http::{BridgeBody, SESSION_HEADER};
pub use self::sandbox::{Limits, RunAs};
pub use self::spec::{StdioError, StdioSpec};
use self::table::Sessions;

/// Streamable HTTP endpoint backed by per-session stdio children, for one route.
pub struct StdioBridge {
    route: String,
    spec: StdioSpec,
    sessions: Arc<Sessions>,
}

impl std::fmt::Debug for StdioBridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdioBridge").field("route", &self.route).field("live", &self.live_children()).finish()
    }
}

impl StdioBridge {
    /// A bridge for route `route_name` (used in logs); starts no process yet.
    pub fn new(route_name: String, spec: StdioSpec) -> Arc<Self> {
        let sessions = Arc::new(Sessions::new(spec.max_children));
        Arc::new(Self { route: route_name, spec, sessions })
    }

    /// Serves one HTTP request (body already collected and size-limited by the caller).
    /// Never fails: errors become HTTP responses with a JSON-RPC error body.
    pub async fn handle(self: &Arc<Self>, req: ::http::Request<Bytes>) -> ::http::Response<BridgeBody> {
        let endpoint = Endpoint { route: &self.route, spec: &self.spec, sessions: &self.sessions };
        http::handle(&endpoint, req).await
    }

    /// The program this bridge runs.
    pub fn command(&self) -> &std::path::Path {
        &self.spec.command
    }

    /// Children not yet reaped.
    pub fn live_children(&self) -> usize {
        self.sessions.live()
    }

    /// Ends every session, stops every child and waits until all are reaped. Later
    /// `initialize` requests get 503.
    pub async fn shutdown(&self) {
        self.sessions.shutdown().await;
    }

    /// Ends every live session (the kill switch): each child is stopped and reaped before
    /// this returns (bounded by the stop sequence). New sessions may start afterwards.
    /// Returns how many sessions were ended.
    pub async fn end_sessions(&self) -> usize {
        self.sessions.end_all().await
    }

    /// Whether `spec` is what this bridge runs (a reload keeps the bridge, and its
    /// sessions, only then).
    pub fn runs(&self, spec: &StdioSpec) -> bool {
        self.spec == *spec
    }

    /// The spec this bridge runs.
    pub fn spec(&self) -> &StdioSpec {
        &self.spec
    }
}
