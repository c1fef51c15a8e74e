//! One HTTP request from an MCP client: check that it belongs on this TLS session, find
//! its path in canonical form (`path`), find its route (OAuth discovery documents first,
//! `discovery`), and hand it to `exchange`; an early answer lingers for the body (`linger`).

use std::sync::Arc;
use std::time::Instant;

use http::header;
use http::request::Parts;
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use tracing::debug;

use super::conn::ConnInfo;
use super::discovery::{self, Discovery};
use super::exchange::{self, Kind};
use super::linger::{self, RequestBody};
use super::outcome::Refusal;
use super::path;
pub use super::respond::ClientBody;
use super::respond::{Failure, RouteName};
use super::route::strip_port;
use super::GatewayShared;

/// Handles one request end to end. Never fails: errors become HTTP responses.
pub async fn handle(shared: Arc<GatewayShared>, conn: Arc<ConnInfo>, req: Request<Incoming>) -> Response<ClientBody> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let version = parts.version;
    let mut body = RequestBody::new(body);
    let mut resp = dispatch(&shared, &conn, parts, &mut body).await;
    // Label values come from the config (route names), never from the client.
    let route = resp.extensions_mut().remove::<RouteName>().map_or_else(|| "-".to_owned(), |r| r.0);
    if let Some(failure) = resp.extensions_mut().remove::<Failure>() {
        shared.metrics.upstream_error(&route, failure);
    }
    shared.metrics.request(&route, resp.status().as_u16(), started.elapsed().as_secs_f64());
    // An answer given before the body was read must still reach the client.
    linger::after(resp, body, version)
}

async fn dispatch(
    shared: &GatewayShared,
    conn: &ConnInfo,
    mut parts: Parts,
    body: &mut RequestBody,
) -> Response<ClientBody> {
    let host = request_host(&parts).unwrap_or_else(|| conn.sni.clone());
    // The edge picked this tunnel by SNI; a different Host would reach routes the edge
    // never published under that name (RFC 9110 §15.5.20).
    if !strip_port(&host).trim_end_matches('.').eq_ignore_ascii_case(&conn.sni) {
        debug!(%host, sni = %conn.sni, "Host does not match SNI");
        return Refusal::Misdirected { host, sni: conn.sni.clone() }.response(None);
    }
    // One canonical path, judged by the router and sent upstream as is.
    let path = match path::normalize(parts.uri.path()) {
        Ok(path) => path,
        Err(e) => return Refusal::BadPath(e.to_string()).response(None),
    };
    if path != parts.uri.path() {
        let Ok(uri) = with_path(&parts.uri, &path) else {
            return Refusal::BadPath("the path cannot be normalised".to_owned()).response(None);
        };
        parts.uri = uri;
    }
    let routes = shared.routes();
    let (route, kind) = match discovery::route_for(&routes, &host, &path) {
        Some(Discovery::Serve(resp)) => return resp,
        Some(Discovery::Forward(route, path)) => (route, Kind::Discovery(path)),
        None => match routes.lookup(&host, &path) {
            Some(route) => (route.clone(), Kind::Mcp),
            None => {
                debug!(%host, "no route");
                return Refusal::NoRoute { host }.response(None);
            }
        },
    };
    super::spans::route(&route.name);
    let mut resp = exchange::run(shared, &route, conn, &host, kind, parts, body).await;
    resp.extensions_mut().insert(RouteName(route.name.clone()));
    resp
}

/// `uri` with its path replaced (query kept; origin-form, which is all a server sees).
fn with_path(uri: &Uri, path: &str) -> Result<Uri, http::Error> {
    let path_and_query = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    let mut builder = Uri::builder();
    if let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) {
        builder = builder.scheme(scheme.clone()).authority(authority.clone());
    }
    builder.path_and_query(path_and_query).build()
}

/// The host a request is for: the URI authority (HTTP/2) or the `Host` header (HTTP/1.1).
pub(super) fn request_host(parts: &Parts) -> Option<String> {
    parts
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| parts.headers.get(header::HOST)?.to_str().ok().map(str::to_owned))
}
