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
//! Modules, in request order: [`http`] (Streamable HTTP) → [`table`] (sessions, cap,
//! supervisor) → [`session`] (routing) → [`child`] (the process and its pipes); [`sse`]
//! builds bodies, [`jsonrpc`] knows the message shapes.

mod child;
mod http;
mod jsonrpc;
mod session;
mod sse;
mod table;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;

pub use self::http::SESSION_HEADER;
use self::table::Sessions;

/// Response body type; the same as the gateway's `UpstreamBody`.
pub type BridgeBody = BoxBody<Bytes, hyper::Error>;

/// How to run one route's stdio MCP server.
#[derive(Debug, Clone)]
pub struct StdioSpec {
    /// Program to run (an absolute path is best: `PATH` is the gateway's).
    pub command: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Environment for the child, on top of `PATH` and `HOME` (all else is cleared).
    pub env: Vec<(String, String)>,
    /// Working directory (default: the gateway's).
    pub cwd: Option<PathBuf>,
    /// Live children at most (one per session).
    pub max_children: usize,
    /// A session with no request in flight and no HTTP activity for this long is ended.
    pub idle_timeout: Duration,
    /// Longest wait for the child's response(s) to one POST.
    pub request_timeout: Duration,
    /// Longest stdout line (one JSON-RPC message) read from the child; longer ones are
    /// skipped, so a child cannot make the gateway buffer without bound.
    pub max_message_bytes: usize,
}

impl StdioSpec {
    /// A spec with defaults: 16 children, 10 min idle, 5 min per request, 16 MiB messages.
    pub fn new(command: impl Into<PathBuf>) -> Self {
        Self {
            command: command.into(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            max_children: 16,
            idle_timeout: Duration::from_secs(600),
            request_timeout: Duration::from_secs(300),
            max_message_bytes: 16 << 20,
        }
    }
}

/// Why a child could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    #[error("cannot start {command}: {source}")]
    Spawn { command: String, source: std::io::Error },
    #[error("stdio pipes of the child are missing")]
    Pipes,
    #[error("the system random generator failed")]
    Random,
}

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
        http::handle(self, req).await
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
}
