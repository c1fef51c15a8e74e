//! One request on a route, in order: kill switch → Origin → method and shape (discovery is
//! GET/HEAD without a body, never to a stdio child) → authentication → header limit → read
//! the body under its deadline → concurrency slot → inspect the body → MCP policy → pinning
//! → approval gate → forward → relay the response through the inspector (and, on a guarded
//! route, its guard: `super::guard`), which writes the audit records when the response ends.
//!
//! Every request bound for an upstream or a stdio child passes here: an [`Onward`] is built
//! only at the end of `admitted`, and `Onward::deliver` (`super::onward`) is the only
//! caller of `forward::send` and `StdioBridge::handle` for a client's request. (The
//! response guard, `super::guard`, also writes to both, but only the gateway's own
//! JSON-RPC error answering a refused server→client request.)

use std::sync::Arc;

use bytes::Bytes;
use http::header;
use http::request::Parts;
use http::{Method, Response, StatusCode};
use tokio::sync::OwnedSemaphorePermit;
use tracing::debug;

use super::conn::ConnInfo;
use super::limits::{collect_body, header_bytes, BodyError};
use super::linger::RequestBody;
use super::onward::Onward;
use super::outcome::{refuse, Refusal, Shape};
use super::respond::ClientBody;
use super::route::Route;
use super::trail::Trail;
use super::GatewayShared;
use crate::auth::metadata_url;
use crate::control::kill_body;
use crate::mcp::{inspect_request, RequestInfo};

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
    let trail = Trail::new(&shared.auditor, &shared.tunnel, route, conn, &parts.method);
    match shared.kill.enter(&route.name) {
        Ok(pass) => {
            let method = parts.method.clone();
            let resp = pass.guard(admitted(shared, route, conn, host, kind, parts, body, trail)).await;
            if resp.extensions().get::<kill_body::CutBeforeAnswer>().is_some() {
                // The cut answered the client; the record says why.
                let trail = Trail::new(&shared.auditor, &shared.tunnel, route, conn, &method);
                trail.refuse(503, kill_body::REASON, Some(kill_body::KILLED));
            }
            resp
        }
        Err(killed) => refuse(&shared.metrics, &route.name, trail, &Refusal::Killed(killed), None),
    }
}

/// The request past the kill switch: admission, inspection, then on (through the
/// approval gate when the call is gated).
#[allow(clippy::too_many_arguments)]
async fn admitted(
    shared: &GatewayShared,
    route: &Arc<Route>,
    conn: &ConnInfo,
    host: &str,
    kind: Kind,
    mut parts: Parts,
    body: &mut RequestBody,
    mut trail: Trail,
) -> Response<ClientBody> {
    let started = tokio::time::Instant::now();
    let (body, permit) = match admit(route, host, &kind, &mut parts, body, &mut trail, started).await {
        Ok(admitted) => admitted,
        Err(refusal) => return refuse(&shared.metrics, &route.name, trail, &refusal, None),
    };
    let (upstream_path, info) = match kind {
        Kind::Discovery(path) => (path, RequestInfo::default()),
        Kind::Mcp => match inspect(shared, route, &parts, &body, &mut trail).await {
            Ok(info) => (route.upstream_path(parts.uri.path()).into_owned(), info),
            Err((refusal, info)) => return refuse(&shared.metrics, &route.name, trail, &refusal, info.as_ref()),
        },
    };
    // Every answer of a guarded route goes through its guard, whatever the request was.
    let guard = super::guard::for_exchange(shared, route, conn, host, &parts, &info);
    let onward = Onward::new(
        route.clone(),
        conn.clone(),
        host.to_owned(),
        shared.metrics.clone(),
        parts,
        body,
        upstream_path,
        info,
        permit,
        guard,
    );
    // A gated tools/call waits here for a human decision (src/approval/).
    if let Some(gate) = super::hold::gate_for(route, &onward.info) {
        return super::hold::hold(shared, gate, onward, trail).await;
    }
    onward.deliver(trail, started).await
}

/// Admission, in order: Origin, method and shape, authentication (the caller's token is
/// taken off the request), header size, the body (read under its deadline), then a slot.
async fn admit(
    route: &Route,
    host: &str,
    kind: &Kind,
    parts: &mut Parts,
    body: &mut RequestBody,
    trail: &mut Trail,
    started: tokio::time::Instant,
) -> Result<(Bytes, OwnedSemaphorePermit), Refusal> {
    let c = &route.controls;
    c.origins.check(&parts.headers).map_err(Refusal::Origin)?;
    method_allowed(route, kind, parts, body).map_err(Refusal::Shape)?;
    if let (Some(auth), Kind::Mcp) = (&c.auth, kind) {
        trail.auth_kind(auth.kind());
        let id = auth
            .authenticate(&parts.headers)
            .map_err(|error| Refusal::Auth { error, metadata_url: metadata_url(host, route.path_prefix.as_deref()) })?;
        trail.identity(&id, auth.kind());
        // The stdio bridge binds sessions to it (src/stdio/http.rs).
        parts.extensions.insert(id);
        // The caller's token was for the gateway: passing it on would let the upstream
        // replay it (the MCP authorization spec forbids token pass-through).
        parts.headers.remove(header::AUTHORIZATION);
    }
    if header_bytes(&parts.headers) > route.limits.max_header_bytes {
        return Err(Refusal::HeadersTooLarge { limit: route.limits.max_header_bytes });
    }
    // The body is read before a slot is taken, under a deadline: a client that trickles
    // its body holds no slot, and holds its stream at most `body_timeout`.
    let deadline = started + route.limits.body_timeout;
    let body = collect_body(&parts.headers, body, route.limits.max_body, deadline).await.map_err(|e| match e {
        BodyError::TooLarge { .. } => Refusal::BodyTooLarge(e.to_string()),
        BodyError::TimedOut(_) => Refusal::BodyTimeout(e.to_string()),
        e => {
            debug!("{e}");
            Refusal::BodyUnreadable
        }
    })?;
    let permit = route.inflight.clone().try_acquire_owned();
    let permit = permit.map_err(|_| Refusal::TooManyRequests { route: route.name.clone() })?;
    Ok((body, permit))
}

/// Inspection, in order: the body as MCP (recorded in the trail), the route's policy,
/// then pinning. A refusal after the body was read carries what it held, so the
/// JSON-RPC answer has one error per request in it.
async fn inspect(
    shared: &GatewayShared,
    route: &Route,
    parts: &Parts,
    body: &Bytes,
    trail: &mut Trail,
) -> Result<RequestInfo, (Refusal, Option<RequestInfo>)> {
    let info = inspect_request(&parts.headers, body).map_err(|e| (Refusal::InvalidMcp(e), None))?;
    super::spans::message(&info);
    trail.request(&info, body.len());
    if let Some((denied, message)) = route.controls.policy.first_denied(&info) {
        return Err((Refusal::Policy { denied, message }, Some(info)));
    }
    if let Some((denial, message)) = super::pins::check(shared, route, &info, trail).await {
        return Err((Refusal::NotPinned { denial, message }, Some(info)));
    }
    Ok(info)
}

/// Which requests a route takes at all. MCP messages travel only in POST bodies, which the
/// inspector reads; GET (the server's stream), DELETE (end of session) and OPTIONS (CORS
/// preflight) carry no body. A discovery document is fetched with GET or HEAD, carries no
/// body, and exists only for HTTP upstreams: a stdio child never sees one.
fn method_allowed(route: &Route, kind: &Kind, parts: &Parts, body: &RequestBody) -> Result<(), Shape> {
    let m = &parts.method;
    let has_body = !body.finished();
    match kind {
        Kind::Discovery(_) if route.stdio.is_some() => Err(Shape {
            status: StatusCode::NOT_FOUND,
            reason: "not_found",
            message: "this route serves no discovery documents",
            allow: None,
        }),
        Kind::Discovery(_) if *m != Method::GET && *m != Method::HEAD => Err(Shape {
            status: StatusCode::METHOD_NOT_ALLOWED,
            reason: "method_not_allowed",
            message: "discovery documents are fetched with GET or HEAD",
            allow: Some("GET, HEAD"),
        }),
        Kind::Mcp if ![Method::POST, Method::GET, Method::DELETE, Method::OPTIONS].contains(m) => Err(Shape {
            status: StatusCode::METHOD_NOT_ALLOWED,
            reason: "method_not_allowed",
            message: "MCP uses POST, GET and DELETE",
            allow: Some("POST, GET, DELETE, OPTIONS"),
        }),
        _ if has_body && *m != Method::POST => Err(Shape {
            status: StatusCode::BAD_REQUEST,
            reason: "unexpected_body",
            message: "only POST requests carry a body",
            allow: None,
        }),
        _ => Ok(()),
    }
}
