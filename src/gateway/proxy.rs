//! One HTTP request from an MCP client: check that it belongs on this TLS session, find
//! its route, apply the route's limits, forward it (`forward`) and relay the response
//! under the route's body timers (`limits`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tracing::debug;

use super::forward;
use super::limits::{collect_body, header_bytes, BodyError, BodyTimer, TimedBody};
use super::metrics::GatewayMetrics;
pub use super::respond::ClientBody;
use super::respond::{json_error, Failure, RouteName};
use super::route::{strip_port, Route, RouteTable};

/// What the gateway knows about the connection a request arrived on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// Edge-assigned stream id (matches the edge's logs).
    pub stream_id: u64,
    /// Client address as reported by the edge.
    pub client_addr: SocketAddr,
    /// TLS server name the client asked for.
    pub sni: String,
}

/// Handles one request end to end. Never fails: errors become HTTP responses.
pub async fn handle(
    routes: Arc<RouteTable>,
    metrics: Arc<GatewayMetrics>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Response<ClientBody> {
    let started = Instant::now();
    let mut resp = forward(routes, conn, req).await;
    // Label values come from the config (route names), never from the client.
    let route = resp.extensions_mut().remove::<RouteName>().map_or_else(|| "-".to_owned(), |r| r.0);
    if let Some(Failure(kind)) = resp.extensions_mut().remove::<Failure>() {
        metrics.upstream_error(&route, kind);
    }
    metrics.request(&route, resp.status().as_u16(), started.elapsed().as_secs_f64());
    resp
}

async fn forward(routes: Arc<RouteTable>, conn: Arc<ConnInfo>, req: Request<Incoming>) -> Response<ClientBody> {
    let host = request_host(&req).unwrap_or_else(|| conn.sni.clone());
    // The edge picked this tunnel by SNI; a different Host would reach routes the edge
    // never published under that name (RFC 9110 §15.5.20).
    if !strip_port(&host).trim_end_matches('.').eq_ignore_ascii_case(&conn.sni) {
        debug!(stream = conn.stream_id, %host, sni = %conn.sni, "Host does not match SNI");
        let message = format!("host {host} does not match the TLS server name {}", conn.sni);
        return json_error(StatusCode::MISDIRECTED_REQUEST, "misdirected_request", &message, None);
    }
    if !is_safe_path(req.uri().path()) {
        return json_error(
            StatusCode::BAD_REQUEST,
            "bad_path",
            "dot segments and encoded separators are not allowed",
            None,
        );
    }
    let Some(route) = routes.lookup(&host, req.uri().path()).cloned() else {
        debug!(stream = conn.stream_id, %host, "no route");
        return json_error(
            StatusCode::NOT_FOUND,
            "no_route",
            &format!("no route for host {host}"),
            Some(("host", &host)),
        );
    };
    let mut resp = exchange(&route, &conn, &host, req).await;
    resp.extensions_mut().insert(RouteName(route.name.clone()));
    resp
}

/// Applies the route's limits, forwards the request and relays the response.
async fn exchange(route: &Route, conn: &ConnInfo, host: &str, req: Request<Incoming>) -> Response<ClientBody> {
    let started = tokio::time::Instant::now();
    let Ok(permit) = route.inflight.clone().try_acquire_owned() else {
        let mut resp = json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_requests",
            "the route has too many requests in flight",
            Some(("route", &route.name)),
        );
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return resp;
    };
    if header_bytes(req.headers()) > route.limits.max_header_bytes {
        return json_error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            &format!("request headers exceed {} bytes", route.limits.max_header_bytes),
            None,
        );
    }
    let (parts, body) = req.into_parts();
    let body = match collect_body(&parts.headers, body, route.limits.max_body).await {
        Ok(b) => b,
        Err(e @ BodyError::TooLarge { .. }) => {
            return json_error(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", &e.to_string(), None)
        }
        Err(e) => {
            debug!(stream = conn.stream_id, route = %route.name, "{e}");
            return json_error(StatusCode::BAD_REQUEST, "bad_request", "the request body could not be read", None);
        }
    };
    let response = match forward::send(route, conn, host, parts, body).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    debug!(stream = conn.stream_id, route = %route.name, status = response.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "proxied");
    let timer = if is_event_stream(response.headers()) {
        BodyTimer::Idle(route.limits.sse_idle_timeout)
    } else {
        BodyTimer::Deadline(started + route.timeout)
    };
    response.map(|body| TimedBody::new(body, timer, Some(permit)).boxed())
}

fn is_event_stream(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/event-stream"))
}

/// Whether a path is free of dot segments and encoded dots or separators, which could
/// otherwise step outside a route's path prefix once the upstream normalises it.
fn is_safe_path(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    !path.split('/').any(|seg| seg == "." || seg == "..")
        && !["%2e", "%2f", "%5c", "\\"].iter().any(|bad| lower.contains(bad))
}

/// The host a request is for: the URI authority (HTTP/2) or the `Host` header (HTTP/1.1).
fn request_host(req: &Request<Incoming>) -> Option<String> {
    req.uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| req.headers().get(header::HOST)?.to_str().ok().map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_paths() {
        for ok in ["/", "/mcp", "/mcp/", "/a.b/c..d", "/.well-known/oauth-protected-resource"] {
            assert!(is_safe_path(ok), "{ok}");
        }
        for bad in ["/pub/../secret", "/pub/..", "/./x", "/pub/%2e%2e/secret", "/pub/%2E./x", "/a%2Fb", "/a\\b"] {
            assert!(!is_safe_path(bad), "{bad}");
        }
    }
}
