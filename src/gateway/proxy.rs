//! One HTTP request from an MCP client: check that it belongs on this TLS session, find
//! its route (OAuth discovery documents first, `discovery`), and hand it to `exchange`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use tracing::debug;

use super::discovery::{self, Discovery};
use super::exchange::{self, Kind};
pub use super::respond::ClientBody;
use super::respond::{json_error, Failure, RouteName};
use super::route::strip_port;
use super::GatewayShared;

/// What the gateway knows about the connection a request arrived on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The tunnel connection slot (`[edge] connections`, 0-based) the stream came on.
    pub connection: u32,
    /// Edge-assigned stream id (matches the edge's logs).
    pub stream_id: u64,
    /// Client address as reported by the edge.
    pub client_addr: SocketAddr,
    /// TLS server name the client asked for.
    pub sni: String,
}

/// Handles one request end to end. Never fails: errors become HTTP responses.
pub async fn handle(shared: Arc<GatewayShared>, conn: Arc<ConnInfo>, req: Request<Incoming>) -> Response<ClientBody> {
    let started = Instant::now();
    let mut resp = dispatch(&shared, &conn, req).await;
    // Label values come from the config (route names), never from the client.
    let route = resp.extensions_mut().remove::<RouteName>().map_or_else(|| "-".to_owned(), |r| r.0);
    if let Some(Failure(kind)) = resp.extensions_mut().remove::<Failure>() {
        shared.metrics.upstream_error(&route, kind);
    }
    shared.metrics.request(&route, resp.status().as_u16(), started.elapsed().as_secs_f64());
    resp
}

async fn dispatch(shared: &GatewayShared, conn: &ConnInfo, req: Request<Incoming>) -> Response<ClientBody> {
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
    let routes = shared.routes();
    let (route, kind) = match discovery::route_for(&routes, &host, req.uri().path()) {
        Some(Discovery::Serve(resp)) => return resp,
        Some(Discovery::Forward(route, path)) => (route, Kind::Discovery(path)),
        None => match routes.lookup(&host, req.uri().path()) {
            Some(route) => (route.clone(), Kind::Mcp),
            None => {
                debug!(stream = conn.stream_id, %host, "no route");
                return json_error(
                    StatusCode::NOT_FOUND,
                    "no_route",
                    &format!("no route for host {host}"),
                    Some(("host", &host)),
                );
            }
        },
    };
    let mut resp = exchange::run(shared, &route, conn, &host, kind, req).await;
    resp.extensions_mut().insert(RouteName(route.name.clone()));
    resp
}

/// Whether a path is free of dot segments and encoded dots or separators, which could
/// otherwise step outside a route's path prefix once the upstream normalises it.
fn is_safe_path(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    !path.split('/').any(|seg| seg == "." || seg == "..")
        && !["%2e", "%2f", "%5c", "\\"].iter().any(|bad| lower.contains(bad))
}

/// The host a request is for: the URI authority (HTTP/2) or the `Host` header (HTTP/1.1).
pub(super) fn request_host(req: &Request<Incoming>) -> Option<String> {
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
