//! One request on a route, in order: kill switch → Origin → method and shape (discovery is
//! GET/HEAD without a body, never to a stdio child) → authentication → header limit → read
//! the body under its deadline → concurrency slot → inspect the body → MCP policy → pinning
//! → approval gate → forward → relay the response through the inspector (and, on a guarded
//! route, its guard: `super::guard`), which writes the audit records when the response ends.
//!
//! Every request bound for an upstream or a stdio child passes here: [`Onward`] is built
//! only at the end of [`admitted`], and [`Onward::deliver`] is the only caller of
//! `forward::send` and `StdioBridge::handle` in the request path.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::sync::OwnedSemaphorePermit;
use tracing::debug;

use super::forward;
use super::limits::{collect_body, header_bytes, BodyError, BodyTimer, EndReason, TimedBody};
use super::linger::RequestBody;
use super::metrics::GatewayMetrics;
use super::proxy::ConnInfo;
use super::respond::{full, json_error, ClientBody};
use super::route::Route;
use super::trail::Trail;
use super::upstream::BoxError;
use super::GatewayShared;
use crate::auth::metadata_url;
use crate::control::kill_body;
use crate::mcp::{error_body, inspect_request, inspectable, jsonrpc, Guard, InspectedBody, MessageKind, RequestInfo};

/// What is being forwarded.
pub enum Kind {
    /// An MCP request: inspected, checked and audited.
    Mcp,
    /// An OAuth discovery document of a pass-through route, fetched from this upstream path.
    Discovery(String),
}

/// Runs one exchange. Never fails: refusals and errors become responses (and records).
/// The kill switch comes first: a stopped route is refused, and a kill cuts the exchange.
pub async fn run(
    shared: &GatewayShared,
    route: &Arc<Route>,
    conn: &ConnInfo,
    host: &str,
    kind: Kind,
    parts: Parts,
    body: &mut RequestBody,
) -> Response<ClientBody> {
    match shared.kill.enter(&route.name) {
        Ok(pass) => {
            let method = parts.method.clone();
            let resp = pass.guard(admitted(shared, route, conn, host, kind, parts, body)).await;
            if resp.extensions().get::<kill_body::CutBeforeAnswer>().is_some() {
                let trail = Trail::new(&shared.auditor, &shared.tunnel, route, conn, &method);
                trail.refuse(503, kill_body::REASON, Some(kill_body::KILLED));
            }
            resp
        }
        Err(refusal) => {
            shared.metrics.policy_denial(&route.name, kill_body::REASON);
            let trail = Trail::new(&shared.auditor, &shared.tunnel, route, conn, &parts.method);
            trail.refuse(503, kill_body::REASON, Some(kill_body::KILLED));
            refusal.response()
        }
    }
}

async fn admitted(
    shared: &GatewayShared,
    route: &Arc<Route>,
    conn: &ConnInfo,
    host: &str,
    kind: Kind,
    mut parts: Parts,
    body: &mut RequestBody,
) -> Response<ClientBody> {
    let started = tokio::time::Instant::now();
    let mut trail = Trail::new(&shared.auditor, &shared.tunnel, route, conn, &parts.method);
    let c = &route.controls;
    if let Err(e) = c.origins.check(&parts.headers) {
        shared.metrics.policy_denial(&route.name, e.reason());
        trail.refuse(403, e.reason(), None);
        return json_error(e.status(), e.reason(), &e.to_string(), None);
    }
    if let Err(refused) = method_allowed(route, &kind, &parts, body) {
        trail.refuse(refused.status.as_u16(), refused.reason, None);
        return refused.response();
    }
    if let (Some(auth), Kind::Mcp) = (&c.auth, &kind) {
        trail.auth_kind(auth.kind());
        match auth.authenticate(&parts.headers) {
            Ok(id) => {
                trail.identity(&id, auth.kind());
                // The stdio bridge binds sessions to it (src/stdio/http.rs).
                parts.extensions.insert(id);
            }
            Err(e) => {
                shared.metrics.policy_denial(&route.name, "auth_failed");
                trail.refuse(e.status().as_u16(), e.reason(), None);
                let mut resp = json_error(e.status(), e.reason(), &e.to_string(), None);
                let url = metadata_url(host, route.path_prefix.as_deref());
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, e.challenge(&url));
                return resp;
            }
        }
        // The caller's token was for the gateway: passing it on would let the upstream
        // replay it (the MCP authorization spec forbids token pass-through).
        parts.headers.remove(header::AUTHORIZATION);
    }
    if header_bytes(&parts.headers) > route.limits.max_header_bytes {
        trail.refuse(431, "headers_too_large", None);
        let message = format!("request headers exceed {} bytes", route.limits.max_header_bytes);
        return json_error(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "headers_too_large", &message, None);
    }
    // The body is read before a slot is taken, under a deadline: a client that trickles
    // its body holds no slot, and holds its stream at most `body_timeout`.
    let deadline = started + route.limits.body_timeout;
    let body = match collect_body(&parts.headers, body, route.limits.max_body, deadline).await {
        Ok(b) => b,
        Err(e @ BodyError::TooLarge { .. }) => {
            trail.refuse(413, "body_too_large", None);
            return json_error(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", &e.to_string(), None);
        }
        Err(e @ BodyError::TimedOut(_)) => {
            shared.metrics.policy_denial(&route.name, "body_timeout");
            trail.refuse(408, "body_timeout", None);
            let mut resp = json_error(StatusCode::REQUEST_TIMEOUT, "body_timeout", &e.to_string(), None);
            resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            return resp;
        }
        Err(e) => {
            debug!(stream = conn.stream_id, route = %route.name, "{e}");
            trail.refuse(400, "body_unreadable", None);
            return json_error(StatusCode::BAD_REQUEST, "body_unreadable", "the request body could not be read", None);
        }
    };
    let Ok(permit) = route.inflight.clone().try_acquire_owned() else {
        trail.refuse(503, "too_many_requests", None);
        let mut resp = json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_requests",
            "the route has too many requests in flight",
            Some(("route", &route.name)),
        );
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return resp;
    };
    let (upstream_path, info) = match kind {
        Kind::Discovery(path) => (path, RequestInfo::default()),
        Kind::Mcp => {
            let info = match inspect_request(&parts.headers, &body) {
                Ok(info) => info,
                Err(e) => {
                    trail.refuse(400, "invalid_mcp_request", Some(e.jsonrpc_code()));
                    let reply = error_body(e.request_id(), e.jsonrpc_code(), &e.to_string(), None);
                    return full(StatusCode::BAD_REQUEST, "application/json", reply);
                }
            };
            trail.request(&info, body.len());
            if let Some((reason, message)) = route.controls.policy.first_denied(&info) {
                shared.metrics.policy_denial(&route.name, reason);
                trail.refuse(200, reason, Some(jsonrpc::POLICY_DENIED));
                return full(StatusCode::OK, "application/json", refusal_body(&info, jsonrpc::POLICY_DENIED, &message));
            }
            if let Some((reason, message)) = crate::pinning::enforce::check(shared, route, &info, &mut trail).await {
                shared.metrics.policy_denial(&route.name, reason);
                trail.refuse(200, reason, Some(jsonrpc::TOOL_NOT_PINNED));
                return full(
                    StatusCode::OK,
                    "application/json",
                    refusal_body(&info, jsonrpc::TOOL_NOT_PINNED, &message),
                );
            }
            (route.upstream_path(parts.uri.path()).into_owned(), info)
        }
    };
    // Every answer of a guarded route goes through its guard, whatever the request was.
    let guard = super::guard::for_exchange(shared, route, conn, host, &parts, &info);
    let onward = Onward {
        route: route.clone(),
        conn: conn.clone(),
        host: host.to_owned(),
        metrics: shared.metrics.clone(),
        parts,
        body,
        upstream_path,
        info,
        permit,
        guard,
        checked: Checked(()),
    };
    // A gated tools/call waits here for a human decision (src/approval/).
    if let Some(gate) = crate::approval::gate_for(route, &onward.info) {
        return crate::approval::hold(shared, gate, onward, trail).await;
    }
    onward.deliver(trail, started).await
}

/// What is left of an exchange once every check passed: forward the request and relay
/// the answer. Owns what it needs, so an approval gate can run it later.
pub struct Onward {
    pub route: Arc<Route>,
    pub conn: ConnInfo,
    pub host: String,
    pub metrics: Arc<GatewayMetrics>,
    pub parts: http::request::Parts,
    pub body: Bytes,
    pub upstream_path: String,
    pub info: RequestInfo,
    pub permit: OwnedSemaphorePermit,
    /// What the answer passes through on a guarded route (`super::guard`).
    pub guard: Option<Guard>,
    /// Private: an `Onward` exists only once `admitted` has run every check.
    checked: Checked,
}

/// Proof that a request passed the checks; only this module can make one.
pub struct Checked(());

impl Onward {
    /// Forwards the request (to the stdio bridge or the HTTP upstream) and relays the
    /// response; `started` starts the response deadline.
    pub async fn deliver(self, trail: Trail, started: tokio::time::Instant) -> Response<ClientBody> {
        let Onward { route, conn, host, metrics, parts, body, upstream_path, info, permit, guard, checked } = self;
        let method = parts.method.clone();
        if let Some(bridge) = &route.stdio {
            // A stdio server: the bridge speaks Streamable HTTP for it (one child per session).
            let response = bridge.handle(Request::from_parts(parts, body)).await;
            metrics.mcp_requests(&route.name, &info);
            return relay(&route, response, &method, trail, started, permit, guard);
        }
        let response = match forward::send(&checked, &route, &conn, &host, parts, &upstream_path, body).await {
            Ok(r) => r,
            Err(resp) => {
                trail.fail(resp.status().as_u16(), "upstream_failed");
                return resp;
            }
        };
        metrics.mcp_requests(&route.name, &info);
        let elapsed_ms = started.elapsed().as_millis() as u64;
        debug!(stream = conn.stream_id, route = %route.name, status = response.status().as_u16(), elapsed_ms, "proxied");
        relay(&route, response, &method, trail, started, permit, guard)
    }
}

/// Wraps the upstream's response: inspection (through the guard, on a guarded route),
/// then timers. A guarded answer the gateway cannot read at all (an encoded body, a type
/// other than JSON or SSE) is refused here, before anything of it reaches the client.
/// Generic over the body, so the answer is boxed once (at the end), not per source.
fn relay<B>(
    route: &Route,
    response: Response<B>,
    method: &Method,
    trail: Trail,
    started: tokio::time::Instant,
    permit: OwnedSemaphorePermit,
    guard: Option<Guard>,
) -> Response<ClientBody>
where
    B: http_body::Body<Data = Bytes> + Send + Sync + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = response.into_parts();
    let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if let Some(g) = &guard {
        let encoded = parts.headers.get(header::CONTENT_ENCODING).is_some_and(|v| v.as_bytes() != b"identity");
        let empty = body.is_end_stream() || body.size_hint().exact() == Some(0);
        let carries_messages = (*method == Method::POST || *method == Method::GET) && parts.status.is_success();
        if encoded || (carries_messages && !empty && !inspectable(content_type.as_deref())) {
            trail.fail(StatusCode::BAD_GATEWAY.as_u16(), "uninspectable");
            return full(StatusCode::BAD_GATEWAY, "application/json", g.uninspectable_reply());
        }
    }
    let ended = EndReason::default();
    let on_done = trail.on_done(parts.status.as_u16(), ended.clone());
    let inspected = InspectedBody::new(body, content_type.as_deref(), guard, on_done);
    if inspected.will_modify() {
        parts.headers.remove(header::CONTENT_LENGTH);
    }
    let sse = content_type.is_some_and(|c| c.trim_start().to_ascii_lowercase().starts_with("text/event-stream"));
    let timer =
        if sse { BodyTimer::Idle(route.limits.sse_idle_timeout) } else { BodyTimer::Deadline(started + route.timeout) };
    Response::from_parts(parts, TimedBody::new(inspected, timer, Some(permit), ended).boxed())
}

/// A request refused for its method or shape, before anything of it is read.
struct Refused {
    status: StatusCode,
    reason: &'static str,
    message: &'static str,
    /// The `Allow` header of a 405.
    allow: Option<&'static str>,
}

impl Refused {
    fn response(&self) -> Response<ClientBody> {
        let mut resp = json_error(self.status, self.reason, self.message, None);
        if let Some(allow) = self.allow {
            resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        resp
    }
}

/// Which requests a route takes at all. MCP messages travel only in POST bodies, which the
/// inspector reads; GET (the server's stream), DELETE (end of session) and OPTIONS (CORS
/// preflight) carry no body. A discovery document is fetched with GET or HEAD, carries no
/// body, and exists only for HTTP upstreams: a stdio child never sees one.
fn method_allowed(route: &Route, kind: &Kind, parts: &Parts, body: &RequestBody) -> Result<(), Refused> {
    let m = &parts.method;
    let has_body = !body.finished();
    match kind {
        Kind::Discovery(_) if route.stdio.is_some() => Err(Refused {
            status: StatusCode::NOT_FOUND,
            reason: "not_found",
            message: "this route serves no discovery documents",
            allow: None,
        }),
        Kind::Discovery(_) if *m != Method::GET && *m != Method::HEAD => Err(Refused {
            status: StatusCode::METHOD_NOT_ALLOWED,
            reason: "method_not_allowed",
            message: "discovery documents are fetched with GET or HEAD",
            allow: Some("GET, HEAD"),
        }),
        Kind::Mcp if ![Method::POST, Method::GET, Method::DELETE, Method::OPTIONS].contains(m) => Err(Refused {
            status: StatusCode::METHOD_NOT_ALLOWED,
            reason: "method_not_allowed",
            message: "MCP uses POST, GET and DELETE",
            allow: Some("POST, GET, DELETE, OPTIONS"),
        }),
        _ if has_body && *m != Method::POST => Err(Refused {
            status: StatusCode::BAD_REQUEST,
            reason: "unexpected_body",
            message: "only POST requests carry a body",
            allow: None,
        }),
        _ => Ok(()),
    }
}

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
