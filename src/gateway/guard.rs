//! The response guard of one exchange ([`crate::mcp::guard`]): which routes guard their
//! answers, and what the guard's hooks do here. Listings teach the route's pins and, under
//! `enforce`, show pinned tools only; `list_changed` makes the route's listing stale; a
//! server→client request the policy refuses is audited and answered to the server with a
//! JSON-RPC error (the client never sees it, so the server must not wait on it).

use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, Request};
use serde_json::Value;
use tracing::{debug, warn, Instrument};

use super::conn::ConnInfo;
use super::forward;
use super::route::Route;
use super::GatewayShared;
use crate::audit::record::{AuditRecord, Decision, Direction, Event};
use crate::audit::Auditor;
use crate::mcp::{error_body, jsonrpc, Denied, Guard, MessageKind, RequestInfo, ServerMessage, ToolHide};
use crate::pinning::{PinMode, PinStatus};
use crate::stdio::SESSION_HEADER;

/// Longest server-chosen method name or string id copied into a log line or audit record.
const MAX_AUDITED: usize = 200;

/// Headers of the client's request the answer to the server keeps: they name the session.
const SESSION_HEADERS: [&str; 2] = [SESSION_HEADER, "mcp-protocol-version"];

/// Whether `route`'s responses are guarded: it hides tools, refuses methods or pins tools.
pub fn guarded(route: &Route) -> bool {
    let (policy, pinning) = (&route.controls.policy, route.controls.pinning.mode);
    policy.restricts_tools() || !policy.deny_methods.is_empty() || pinning != PinMode::Off
}

/// The guard for one exchange's response, if the route guards responses.
pub fn for_exchange(
    shared: &GatewayShared,
    route: &Arc<Route>,
    conn: &ConnInfo,
    host: &str,
    parts: &Parts,
    info: &RequestInfo,
) -> Option<Guard> {
    if !guarded(route) {
        return None;
    }
    let ids = info.messages.iter().filter(|m| m.kind == MessageKind::Request).filter_map(|m| m.id.clone()).collect();
    let pinning = route.controls.pinning.mode;
    let hide = (pinning == PinMode::Enforce).then(|| {
        let (pins, name) = (shared.pins.clone(), route.name.clone());
        Box::new(move |tool: &str| pins.status(&name, tool).0 != PinStatus::Pinned) as ToolHide
    });
    let list_changed = (pinning != PinMode::Off).then(|| {
        let (pins, name) = (shared.pins.clone(), route.name.clone());
        Box::new(move || pins.fresh.list_changed(&name)) as crate::mcp::Notice
    });
    let answer = Arc::new(Answer::new(shared, route, conn, host, parts));
    let refused = Box::new(move |m: ServerMessage| answer.refused(m)) as crate::mcp::RefusalSink;
    Some(
        Guard::new(route.controls.policy.clone())
            .learn(super::pins::sink(shared, route))
            .hide(hide)
            .on_list_changed(list_changed)
            .on_refused(Some(refused))
            .answering(ids, info.batch),
    )
}

/// What answering the server needs, taken from the client's exchange.
struct Answer {
    route: Arc<Route>,
    conn: ConnInfo,
    host: String,
    /// The session's headers and the request's extensions (the stdio bridge finds the
    /// session, and whose it is, from them).
    headers: HeaderMap,
    extensions: http::Extensions,
    path: String,
    auditor: Auditor,
    tunnel: String,
    metrics: Arc<super::metrics::GatewayMetrics>,
    /// The gateway's tasks: answers are best-effort work cut at shutdown.
    tasks: crate::tasks::Tasks,
}

impl Answer {
    fn new(shared: &GatewayShared, route: &Arc<Route>, conn: &ConnInfo, host: &str, parts: &Parts) -> Self {
        let mut headers = HeaderMap::new();
        for name in SESSION_HEADERS {
            if let Some(v) = parts.headers.get(name) {
                headers.insert(name, v.clone());
            }
        }
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json, text/event-stream"));
        Self {
            route: route.clone(),
            conn: conn.clone(),
            host: host.to_owned(),
            headers,
            extensions: parts.extensions.clone(),
            path: route.upstream_path(parts.uri.path()).into_owned(),
            auditor: shared.auditor.clone(),
            tunnel: shared.tunnel.clone(),
            metrics: shared.metrics.clone(),
            tasks: shared.tasks.clone(),
        }
    }

    /// Runs inside the response body's `poll_frame`: records, then answers in a task.
    fn refused(self: &Arc<Self>, m: ServerMessage) {
        self.metrics.policy_denial(&self.route.name, Denied::Method.as_str());
        let method: String = m.method.chars().take(MAX_AUDITED).collect();
        warn!(route = %self.route.name, %method, "refused a server-to-client message");
        if self.auditor.is_enabled() {
            self.auditor.record(AuditRecord {
                tunnel: Some(self.tunnel.clone()),
                stream: Some(self.conn.stream_id),
                client_addr: Some(self.conn.client_addr.to_string()),
                route: Some(self.route.name.clone()),
                upstream: Some(self.route.upstream_label()),
                direction: Some(Direction::ServerToClient),
                // The server chose both: a bounded copy, so it cannot bloat the trail.
                jsonrpc_method: Some(method.clone()),
                jsonrpc_id: m
                    .id
                    .clone()
                    .filter(|id| id.is_number() || id.as_str().is_some_and(|s| s.len() <= MAX_AUDITED)),
                decision: Some(Decision::Deny),
                reason: Some(Denied::Method.as_str()),
                jsonrpc_error: Some(jsonrpc::POLICY_DENIED),
                ..AuditRecord::new(Event::Mcp)
            });
        }
        let (Some(id), Ok(runtime)) = (m.id, tokio::runtime::Handle::try_current()) else { return };
        let this = self.clone();
        runtime.spawn(self.tasks.best_effort(async move { this.answer(&id, &m.method).await }).in_current_span());
    }

    async fn answer(&self, id: &Value, method: &str) {
        let message = format!("method {method} is not allowed on this route");
        let body = error_body(Some(id), jsonrpc::POLICY_DENIED, &message, None);
        let (mut parts, ()) = Request::new(()).into_parts();
        parts.method = Method::POST;
        parts.uri = http::Uri::try_from(self.path.as_str()).unwrap_or_default();
        parts.headers = self.headers.clone();
        parts.extensions = self.extensions.clone();
        let status = match &self.route.stdio {
            Some(bridge) => bridge.handle(Request::from_parts(parts, body)).await.status(),
            None => {
                let to =
                    forward::Destination { route: &self.route, conn: &self.conn, host: &self.host, path: &self.path };
                match forward::answer(&to, parts, body).await {
                    Ok(status) => status,
                    Err(e) => return warn!(route = %self.route.name, "cannot answer the server's refused request: {e}"),
                }
            }
        };
        debug!(route = %self.route.name, status = status.as_u16(), "answered a refused server request");
    }
}
