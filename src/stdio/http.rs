//! The Streamable HTTP side: POST (initialize, requests, notifications, responses), GET
//! (the server→client stream) and DELETE (end the session), mapped onto sessions.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::session::{BeginError, Session};
use super::spec::StdioSpec;
use super::sse::{self, ExchangeBody, GetBody, Missing};
use super::table::{Sessions, StartError};
use crate::auth::Identity;
use crate::mcp::jsonrpc::{self, Incoming};

/// The session header of the handshake-era Streamable HTTP transport.
pub const SESSION_HEADER: &str = "mcp-session-id";
/// Seconds a client is asked to wait when every child slot is taken.
const RETRY_AFTER_SECS: &str = "5";

/// Response body type; the same as the gateway's `UpstreamBody`.
pub type BridgeBody = BoxBody<Bytes, hyper::Error>;

/// What serving a request needs of one route's bridge, lent by it for the request.
pub struct Endpoint<'a> {
    /// The route's name (for logs).
    pub route: &'a str,
    /// What the route runs.
    pub spec: &'a StdioSpec,
    /// Its live sessions.
    pub sessions: &'a Arc<Sessions>,
}

/// Serves one request. Never fails: every problem becomes an HTTP response.
/// The caller is the [`Identity`] the gateway put in the request's extensions after
/// authenticating it (none on routes without auth); sessions answer only their creator.
pub async fn handle(bridge: &Endpoint<'_>, req: Request<Bytes>) -> Response<BridgeBody> {
    let session_id = req.headers().get(SESSION_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let owner = req.extensions().get::<Identity>().cloned();
    let owner = owner.as_ref();
    match (req.method(), session_id) {
        (&Method::POST, None) => post_without_session(bridge, req).await,
        (&Method::POST, Some(id)) => match bridge.sessions.get(&id, owner) {
            Some(session) => post(bridge, &session, req).await,
            None => unknown_session(),
        },
        (&Method::GET, Some(id)) => match bridge.sessions.get(&id, owner).and_then(|s| s.open_get()) {
            Some(stream) => sse_response(GetBody::new(stream)),
            None => unknown_session(),
        },
        (&Method::DELETE, Some(id)) => match bridge.sessions.remove(&id, owner) {
            Some(session) => {
                session.end.cancel();
                // Answer once the child is really gone (bounded by the kill sequence).
                session.exited.cancelled().await;
                empty(StatusCode::NO_CONTENT)
            }
            None => unknown_session(),
        },
        (&Method::GET | &Method::DELETE, None) => {
            rpc_error(StatusCode::BAD_REQUEST, Value::Null, jsonrpc::INVALID_REQUEST, "Mcp-Session-Id header required")
        }
        _ => {
            let mut resp = empty(StatusCode::METHOD_NOT_ALLOWED);
            resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, POST, DELETE"));
            resp
        }
    }
}

/// `initialize` starts a session; `server/discover` (the 2026-07-28 probe) is answered
/// "method not found" so clients fall back to the handshake; anything else needs a session.
async fn post_without_session(bridge: &Endpoint<'_>, req: Request<Bytes>) -> Response<BridgeBody> {
    let incoming = match jsonrpc::parse_incoming(req.body()) {
        Ok(i) => i,
        Err(e) => return rpc_error(StatusCode::BAD_REQUEST, Value::Null, e.code, e.message),
    };
    let id = incoming.messages.first().and_then(|m| m.get("id")).cloned().unwrap_or(Value::Null);
    match incoming.single_request_method() {
        Some("initialize") => initialize(bridge, incoming, req.extensions().get::<Identity>().cloned()).await,
        // The status the 2026-07-28 transport maps -32601 to.
        Some("server/discover") => rpc_error(
            StatusCode::NOT_FOUND,
            id,
            jsonrpc::METHOD_NOT_FOUND,
            "server/discover is not supported: this server speaks the initialize handshake",
        ),
        _ => rpc_error(
            StatusCode::BAD_REQUEST,
            id,
            jsonrpc::INVALID_REQUEST,
            "Mcp-Session-Id header required: send initialize first",
        ),
    }
}

/// Spawns a child, forwards `initialize`, and publishes the session if it succeeded.
async fn initialize(bridge: &Endpoint<'_>, incoming: Incoming, owner: Option<Identity>) -> Response<BridgeBody> {
    let id = incoming.request_ids().into_iter().next().unwrap_or(Value::Null);
    let session = match bridge.sessions.start(bridge.spec, bridge.route, owner) {
        Ok(s) => s,
        Err(e @ StartError::Busy { .. }) => {
            warn!(route = %bridge.route, "stdio route at its process cap; initialize refused");
            let mut resp = rpc_error(StatusCode::SERVICE_UNAVAILABLE, id, jsonrpc::SERVER_BUSY, &e.to_string());
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
            return resp;
        }
        Err(e @ StartError::ShuttingDown) => {
            return rpc_error(StatusCode::SERVICE_UNAVAILABLE, id, jsonrpc::SERVER_BUSY, &e.to_string())
        }
        Err(e) => {
            warn!(route = %bridge.route, error = %e, "stdio server could not be started");
            return rpc_error(
                StatusCode::BAD_GATEWAY,
                id,
                jsonrpc::INTERNAL_ERROR,
                "the stdio MCP server did not start",
            );
        }
    };
    // The handshake answer is always JSON: nothing else is pending on a new session.
    let mut resp = exchange(bridge, &session, incoming, false).await;
    let ok = resp.status() == StatusCode::OK && resp.extensions().get::<Succeeded>().is_some();
    if ok && bridge.sessions.publish(&session) {
        if let Ok(v) = HeaderValue::from_str(&session.id) {
            resp.headers_mut().insert(SESSION_HEADER, v);
        }
    } else {
        debug!(session = %session.log_id, "initialize failed; stdio server stopped");
        session.end.cancel();
    }
    resp
}

/// Marks a JSON answer whose every response is a success (`result`).
#[derive(Clone, Copy)]
struct Succeeded;

/// A POST on an existing session.
async fn post(bridge: &Endpoint<'_>, session: &Arc<Session>, req: Request<Bytes>) -> Response<BridgeBody> {
    session.touch();
    let incoming = match jsonrpc::parse_incoming(req.body()) {
        Ok(i) => i,
        Err(e) => return rpc_error(StatusCode::BAD_REQUEST, Value::Null, e.code, e.message),
    };
    exchange(bridge, session, incoming, wants_sse(req.headers())).await
}

/// Registers the requests, writes every message to the child, and answers: 202 if there
/// were no requests, else SSE or JSON with the responses.
async fn exchange(
    bridge: &Endpoint<'_>,
    session: &Arc<Session>,
    incoming: Incoming,
    sse: bool,
) -> Response<BridgeBody> {
    let deadline = Instant::now() + bridge.spec.request_timeout;
    let requests: Vec<&Value> = incoming.requests().collect();
    let ex = if requests.is_empty() {
        None
    } else {
        match session.begin(&requests, sse) {
            Ok(ex) => Some(ex),
            Err(BeginError::Closed) => return unknown_session(),
            Err(BeginError::DuplicateId) => {
                let id = requests.first().and_then(|m| m.get("id")).cloned().unwrap_or(Value::Null);
                return rpc_error(StatusCode::CONFLICT, id, jsonrpc::INVALID_REQUEST, "request id already in flight");
            }
        }
    };
    for msg in &incoming.messages {
        match tokio::time::timeout_at(deadline, session.send(msg)).await {
            Ok(Ok(())) => {}
            Ok(Err(BeginError::Closed | BeginError::DuplicateId)) => return unknown_session(),
            Err(_) => {
                warn!(session = %session.log_id, "stdio server stdin stayed full until the request timeout");
                let id = incoming.request_ids().into_iter().next().unwrap_or(Value::Null);
                return rpc_error(
                    StatusCode::GATEWAY_TIMEOUT,
                    id,
                    jsonrpc::REQUEST_TIMEOUT,
                    "stdio server not reading",
                );
            }
        }
    }
    let Some(ex) = ex else { return empty(StatusCode::ACCEPTED) };
    if sse {
        return sse_response(ExchangeBody::new(ex, deadline));
    }
    let (mut responses, missing) = sse::collect(ex, deadline).await;
    let all_ok = missing.is_none() && responses.iter().all(|r| r.get("result").is_some());
    let body = if incoming.batch { Value::Array(responses) } else { responses.pop().unwrap_or(Value::Null) };
    let mut resp = json(missing.map_or(StatusCode::OK, Missing::status), &body);
    if all_ok {
        resp.extensions_mut().insert(Succeeded);
    }
    resp
}

/// The client accepts `text/event-stream` (clients MUST list it with `application/json`).
fn wants_sse(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("text/event-stream")))
}

/// Unknown or ended session: per the spec the client must start a new one.
fn unknown_session() -> Response<BridgeBody> {
    rpc_error(StatusCode::NOT_FOUND, Value::Null, jsonrpc::INVALID_REQUEST, "unknown or ended session")
}

fn rpc_error(status: StatusCode, id: Value, code: i64, message: &str) -> Response<BridgeBody> {
    json(status, &jsonrpc::error(id, code, message, None))
}

fn json(status: StatusCode, body: &Value) -> Response<BridgeBody> {
    let bytes = Bytes::from(serde_json::to_vec(body).unwrap_or_default());
    let mut resp = Response::new(Full::new(bytes).map_err(|never| match never {}).boxed());
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn empty(status: StatusCode) -> Response<BridgeBody> {
    let mut resp = Response::new(Full::new(Bytes::new()).map_err(|never| match never {}).boxed());
    *resp.status_mut() = status;
    resp
}

fn sse_response<B>(body: B) -> Response<BridgeBody>
where
    B: http_body::Body<Data = Bytes, Error = std::convert::Infallible> + Send + Sync + 'static,
{
    let mut resp = Response::new(body.map_err(|never| match never {}).boxed());
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_parsing() {
        let mut h = HeaderMap::new();
        assert!(!wants_sse(&h));
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json, text/event-stream"));
        assert!(wants_sse(&h));
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json;q=1, TEXT/EVENT-STREAM;q=0.5"));
        assert!(wants_sse(&h));
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert!(!wants_sse(&h));
    }
}
