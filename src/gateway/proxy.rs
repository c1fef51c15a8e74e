//! One HTTP request from an MCP client to its upstream: route by host and path, rewrite
//! headers for a reverse proxy, forward with streaming bodies both ways, and map failures
//! to 404 / 502 / 504 with a short JSON body.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tracing::{debug, warn};

use super::metrics::GatewayMetrics;
use super::route::{strip_port, Route, RouteTable};
use super::upstream::{find_upstream_error, UpstreamBody, UpstreamError};

/// Body type of responses to the client.
pub type ClientBody = UpstreamBody;

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

/// Headers that describe one hop and must not be forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

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

/// The route a response belongs to (a response extension, never sent).
#[derive(Clone)]
struct RouteName(String);

/// Why the upstream request failed (a response extension, never sent).
#[derive(Clone, Copy)]
struct Failure(&'static str);

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
    let mut resp = proxy_to(&route, &conn, &host, req).await;
    resp.extensions_mut().insert(RouteName(route.name.clone()));
    resp
}

/// Sends the request to the route's upstream and streams the response back.
async fn proxy_to(route: &Route, conn: &ConnInfo, host: &str, req: Request<Incoming>) -> Response<ClientBody> {
    let started = Instant::now();
    let method = req.method().clone();
    let upstream_req = match upstream_request(route, conn, host, req) {
        Ok(r) => r,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, "bad_request", &e, None),
    };
    let result = tokio::time::timeout(route.timeout, route.client.request(upstream_req)).await;
    let response = match result {
        Ok(Ok(resp)) => resp,
        Ok(Err(err)) => return upstream_failure(route, conn, &err),
        Err(_) => {
            warn!(stream = conn.stream_id, route = %route.name, upstream = %route.upstream.url(), timeout = ?route.timeout, "upstream timed out");
            let mut resp = json_error(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                "upstream did not answer in time",
                Some(("route", &route.name)),
            );
            resp.extensions_mut().insert(Failure("timeout"));
            return resp;
        }
    };
    debug!(stream = conn.stream_id, route = %route.name, %method, status = response.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "proxied");
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Response::from_parts(parts, body.boxed())
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

fn upstream_request(
    route: &Route,
    conn: &ConnInfo,
    host: &str,
    req: Request<Incoming>,
) -> Result<Request<UpstreamBody>, String> {
    let (mut parts, body) = req.into_parts();
    let path = route.upstream_path(parts.uri.path());
    let path_and_query = match parts.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.into_owned(),
    };
    let scheme = match route.upstream.scheme {
        super::route::Scheme::Http => "http",
        super::route::Scheme::Https => "https",
    };
    let authority = route.upstream.authority();
    parts.uri = Uri::builder()
        .scheme(scheme)
        .authority(authority.as_str())
        .path_and_query(path_and_query)
        .build()
        .map_err(|e| format!("cannot build upstream URI: {e}"))?;
    // The upstream connection's version is the client pool's choice, not the client's.
    parts.version = http::Version::HTTP_11;
    let headers = &mut parts.headers;
    strip_hop_by_hop(headers);
    let host_value = if route.preserve_host { host } else { authority.as_str() };
    headers.insert(header::HOST, HeaderValue::from_str(host_value).map_err(|_| "invalid Host".to_owned())?);
    set_forwarded_for(headers, conn.client_addr);
    headers.insert(HeaderName::from_static("x-forwarded-proto"), HeaderValue::from_static("https"));
    if let Ok(v) = HeaderValue::from_str(host) {
        headers.insert(HeaderName::from_static("x-forwarded-host"), v);
    }
    Ok(Request::from_parts(parts, body.boxed()))
}

/// Sets `X-Forwarded-For` to the address the edge saw. A value sent by the client is
/// replaced, not extended: the gateway is the trust boundary and the client is not.
fn set_forwarded_for(headers: &mut HeaderMap, client: SocketAddr) {
    let ip = client.ip().to_canonical().to_string();
    if let Ok(v) = HeaderValue::from_str(&ip) {
        headers.insert(HeaderName::from_static("x-forwarded-for"), v);
    }
}

/// Removes hop-by-hop headers, including any named in `Connection`.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(named.iter()) {
        headers.remove(name);
    }
}

fn upstream_failure(route: &Route, conn: &ConnInfo, err: &hyper_util::client::legacy::Error) -> Response<ClientBody> {
    // `kind` is the metric label (docs/metrics.md); `code` goes to the client.
    let (status, code, kind) = match find_upstream_error(err) {
        Some(UpstreamError::ConnectTimeout { .. }) => {
            (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout", "connect_timeout")
        }
        Some(UpstreamError::Forbidden { .. }) => (StatusCode::BAD_GATEWAY, "upstream_forbidden", "forbidden"),
        _ => (StatusCode::BAD_GATEWAY, "upstream_unreachable", "unreachable"),
    };
    let detail = match find_upstream_error(err) {
        Some(e) => e.to_string(),
        None => error_chain(err),
    };
    warn!(stream = conn.stream_id, route = %route.name, upstream = %route.upstream.url(), "upstream request failed: {detail}");
    let mut resp = json_error(status, code, "upstream request failed", Some(("route", &route.name)));
    resp.extensions_mut().insert(Failure(kind));
    resp
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}

/// A small JSON error response. Details stay in the gateway's log, not in the body.
pub fn json_error(status: StatusCode, code: &str, message: &str, extra: Option<(&str, &str)>) -> Response<ClientBody> {
    let mut body = serde_json::json!({ "error": code, "message": message });
    if let (Some((k, v)), Some(obj)) = (extra, body.as_object_mut()) {
        obj.insert(k.to_owned(), v.into());
    }
    let bytes = Bytes::from(body.to_string());
    let mut resp = Response::new(Full::new(bytes).map_err(|never| match never {}).boxed());
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("close, x-secret-hop"));
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert("mcp-session-id", HeaderValue::from_static("s1"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        strip_hop_by_hop(&mut h);
        let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(h.contains_key("mcp-session-id") && h.contains_key(header::AUTHORIZATION));
    }

    #[test]
    fn forwarded_for_replaces_what_the_client_sent() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        set_forwarded_for(&mut h, "[::ffff:10.0.0.1]:5".parse().unwrap());
        assert_eq!(h["x-forwarded-for"], "10.0.0.1");
    }

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
