//! Sending a request to a route's HTTP upstream: rewrite the headers for a reverse proxy
//! (hop-by-hop removed, `X-Forwarded-*` set by the gateway), wait for the response
//! headers within the route's timeout, and map failures to 502 / 504.

use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tracing::warn;

use super::conn::ConnInfo;
use super::respond::{json_error, ClientBody, Failure};
use super::route::Route;
use crate::outbound::{find_upstream_error, UpstreamBody, UpstreamError};

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

/// Proof that a request passed every check of `exchange`: made only by `Onward::new`
/// (`super::onward`), which `exchange` calls once the last check passed.
pub struct Checked(());

impl Checked {
    pub(super) fn new() -> Self {
        Self(())
    }
}

/// Where a request goes: the route's upstream, at `path`, for the client of `conn` that
/// asked for `host`.
pub struct Destination<'a> {
    pub route: &'a Route,
    pub conn: &'a ConnInfo,
    pub host: &'a str,
    pub path: &'a str,
}

/// Sends a request (its body already read) upstream and returns the response headers,
/// or the error response to give the client. Only a request that passed every check gets
/// here: it takes a [`Checked`].
pub async fn send(
    _checked: &Checked,
    to: &Destination<'_>,
    parts: Parts,
    body: Bytes,
) -> Result<Response<Incoming>, Response<ClientBody>> {
    let route = to.route;
    let upstream_req =
        upstream_request(to, parts, body).map_err(|e| json_error(StatusCode::BAD_REQUEST, "bad_request", &e, None))?;
    match tokio::time::timeout(route.timeout, route.client.request(upstream_req)).await {
        Ok(Ok(resp)) => {
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Ok(Response::from_parts(parts, body))
        }
        Ok(Err(err)) => Err(upstream_failure(route, &err)),
        Err(_) => {
            warn!(upstream = %route.upstream.url(), timeout = ?route.timeout, "upstream timed out");
            Err(Failure::Timeout.response(&route.name, "upstream did not answer in time"))
        }
    }
}

/// Sends the gateway's own answer to a server→client request it refused (a JSON-RPC error
/// it wrote, on the client's session): the server's reply status, or why it failed. Not a
/// client's request, so it needs no [`Checked`].
pub async fn answer(to: &Destination<'_>, parts: Parts, body: Bytes) -> Result<StatusCode, String> {
    let route = to.route;
    let req = upstream_request(to, parts, body)?;
    match tokio::time::timeout(route.timeout, route.client.request(req)).await {
        Ok(Ok(resp)) => Ok(resp.status()),
        Ok(Err(e)) => Err(error_chain(&e)),
        Err(_) => Err(format!("no answer within {:?}", route.timeout)),
    }
}

fn upstream_request(to: &Destination<'_>, mut parts: Parts, body: Bytes) -> Result<Request<UpstreamBody>, String> {
    let Destination { route, conn, host, path } = *to;
    let path_and_query = match parts.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
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
    set_forwarded(headers, conn.client_addr, host);
    // The gateway reads every answer of a guarded route, and the inspector (audit, metrics)
    // every JSON answer of any route: it must get them readable.
    headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    Ok(Request::from_parts(parts, Full::new(body).map_err(|never| match never {}).boxed()))
}

/// Sets every client-address header an upstream might trust (`X-Forwarded-For`, `-Proto`,
/// `-Host`, `X-Real-IP`, RFC 7239 `Forwarded`) to what the edge saw. Values sent by the
/// client are replaced, not extended: the gateway is the trust boundary and the client is not.
fn set_forwarded(headers: &mut HeaderMap, client: SocketAddr, host: &str) {
    for name in ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-real-ip", "forwarded"] {
        headers.remove(name);
    }
    let ip = client.ip().to_canonical();
    let ip_text = ip.to_string();
    // RFC 7239 §6: an IPv6 node is quoted and bracketed; a host is a quoted-string when needed.
    let node = if ip.is_ipv6() { format!("\"[{ip_text}]\"") } else { ip_text.clone() };
    let host_ok = host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    let forwarded =
        if host_ok { format!("for={node};proto=https;host=\"{host}\"") } else { format!("for={node};proto=https") };
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    set("x-forwarded-for", &ip_text);
    set("x-real-ip", &ip_text);
    set("x-forwarded-proto", "https");
    if host_ok {
        set("x-forwarded-host", host);
    }
    set("forwarded", &forwarded);
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

fn upstream_failure(route: &Route, err: &hyper_util::client::legacy::Error) -> Response<ClientBody> {
    let failure = match find_upstream_error(err) {
        Some(UpstreamError::ConnectTimeout { .. }) => Failure::ConnectTimeout,
        Some(UpstreamError::Forbidden { .. }) => Failure::Forbidden,
        _ => Failure::Unreachable,
    };
    let detail = match find_upstream_error(err) {
        Some(e) => e.to_string(),
        None => error_chain(err),
    };
    warn!(upstream = %route.upstream.url(), "upstream request failed: {detail}");
    failure.response(&route.name, "upstream request failed")
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
    fn forwarding_headers_replace_what_the_client_sent() {
        let mut h = HeaderMap::new();
        for name in ["x-forwarded-for", "x-real-ip", "forwarded", "x-forwarded-host"] {
            h.append(name, HeaderValue::from_static("6.6.6.6"));
            h.append(name, HeaderValue::from_static("for=7.7.7.7"));
        }
        set_forwarded(&mut h, "[::ffff:10.0.0.1]:5".parse().unwrap(), "t.mcp.test");
        assert_eq!(h.get_all("x-forwarded-for").iter().collect::<Vec<_>>(), ["10.0.0.1"]);
        assert_eq!(h.get_all("x-real-ip").iter().collect::<Vec<_>>(), ["10.0.0.1"]);
        assert_eq!(h.get_all("x-forwarded-host").iter().collect::<Vec<_>>(), ["t.mcp.test"]);
        assert_eq!(h.get_all("forwarded").iter().collect::<Vec<_>>(), ["for=10.0.0.1;proto=https;host=\"t.mcp.test\""]);
        set_forwarded(&mut h, "[2001:db8::1]:5".parse().unwrap(), "bad\"host");
        assert_eq!(h["forwarded"], "for=\"[2001:db8::1]\";proto=https");
        assert!(!h.contains_key("x-forwarded-host"));
    }
}
