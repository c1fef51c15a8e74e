//! Upstream routes: the address resolves, lies inside `[upstream] allowed_networks`, and
//! the server answers MCP. The request goes through the route's own pooled client (its
//! allow-list, connect timeout and CA), so the doctor connects exactly as the gateway
//! does. A session the probe opens is ended with `DELETE`.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{json, Value};

use super::Finding;
use crate::config::gateway::GatewayConfig;
use crate::gateway::route::{Route, Scheme};
use crate::outbound::{find_upstream_error, UpstreamBody};

/// The handshake-era protocol version the probe asks for.
pub const LEGACY_VERSION: &str = "2025-11-25";
/// The sessionless protocol version, probed with `server/discover`.
pub const MODERN_VERSION: &str = "2026-07-28";
/// Most bytes of a probe response read.
const MAX_BODY: usize = 256 * 1024;

/// How an MCP server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `initialize` succeeded (protocol version, server name).
    Initialized { version: String, server: String },
    /// Only `server/discover` succeeded.
    Discovered { server: String },
    /// HTTP 401 with `WWW-Authenticate`: reachable, clients need OAuth.
    NeedsAuth { challenge: String },
}

/// Why an MCP probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{0}")]
    Connect(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("HTTP {status}{detail}")]
    Status { status: StatusCode, detail: String },
    #[error("not an MCP answer: {0}")]
    NotMcp(String),
}

/// Probes `route` on every candidate path until one is not a 404.
pub async fn probe(route: &Route, timeout: Duration) -> (String, Result<Answer, ProbeError>) {
    let mut last = None;
    for path in candidate_paths(route) {
        match probe_path(route, &path, timeout).await {
            Err(ProbeError::Status { status: StatusCode::NOT_FOUND, detail }) => {
                last = Some((path, Err(ProbeError::Status { status: StatusCode::NOT_FOUND, detail })));
            }
            result => return (path, result),
        }
    }
    last.unwrap_or_else(|| ("/".into(), Err(ProbeError::NotMcp("no path to probe".into()))))
}

/// Where a client's MCP endpoint most likely sits upstream: under the route's prefix,
/// else the customary `/mcp`; then `/mcp` inside the prefix.
fn candidate_paths(route: &Route) -> Vec<String> {
    let client_paths = match &route.path_prefix {
        Some(p) => vec![p.clone(), format!("{p}/mcp")],
        None => vec!["/mcp".to_owned(), "/".to_owned()],
    };
    let mut out: Vec<String> = Vec::new();
    for p in client_paths {
        let up = route.upstream_path(&p).into_owned();
        if !out.contains(&up) {
            out.push(up);
        }
    }
    out
}

async fn probe_path(route: &Route, path: &str, timeout: Duration) -> Result<Answer, ProbeError> {
    let init = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": LEGACY_VERSION,
            "capabilities": {},
            "clientInfo": { "name": "mcp-tunnel-doctor", "version": crate::VERSION },
        },
    });
    let (status, headers, body) = send(route, Method::POST, path, Some(&init), &[], timeout).await?;
    if let Some(answer) = needs_auth(status, &headers) {
        return Ok(answer);
    }
    let legacy = match status {
        StatusCode::OK => rpc_result(&body, &headers),
        s if s.is_client_error() && s != StatusCode::NOT_FOUND => Err(status_error(s, &body)),
        s => return Err(status_error(s, &body)),
    };
    if let Ok(result) = &legacy {
        if let Some(version) = result.get("protocolVersion").and_then(Value::as_str) {
            let server = result.pointer("/serverInfo/name").and_then(Value::as_str).unwrap_or("?").to_owned();
            end_session(route, path, &headers, version, timeout).await;
            return Ok(Answer::Initialized { version: version.to_owned(), server });
        }
    }
    // A server that speaks only the sessionless generation refuses `initialize`.
    match discover(route, path, timeout).await {
        Ok(answer) => Ok(answer),
        Err(_) => {
            Err(legacy.err().unwrap_or_else(|| ProbeError::NotMcp("initialize result has no protocolVersion".into())))
        }
    }
}

/// `server/discover` with the 2026-07-28 headers and `_meta` envelope.
pub async fn discover(route: &Route, path: &str, timeout: Duration) -> Result<Answer, ProbeError> {
    let body = json!({
        "jsonrpc": "2.0", "id": 2, "method": "server/discover",
        "params": { "_meta": {
            "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": { "name": "mcp-tunnel-doctor", "version": crate::VERSION },
        } },
    });
    let extra = [("mcp-method", "server/discover"), ("mcp-protocol-version", MODERN_VERSION)];
    let (status, headers, bytes) = send(route, Method::POST, path, Some(&body), &extra, timeout).await?;
    if let Some(answer) = needs_auth(status, &headers) {
        return Ok(answer);
    }
    if status != StatusCode::OK {
        return Err(status_error(status, &bytes));
    }
    let result = rpc_result(&bytes, &headers)?;
    let server = result
        .pointer("/_meta/io.modelcontextprotocol~1serverInfo/name")
        .or_else(|| result.pointer("/serverInfo/name"))
        .and_then(Value::as_str)
        .unwrap_or("?");
    Ok(Answer::Discovered { server: server.to_owned() })
}

fn needs_auth(status: StatusCode, headers: &http::HeaderMap) -> Option<Answer> {
    let challenge = headers.get(header::WWW_AUTHENTICATE)?.to_str().unwrap_or("?");
    (status == StatusCode::UNAUTHORIZED).then(|| Answer::NeedsAuth { challenge: challenge.chars().take(120).collect() })
}

fn status_error(status: StatusCode, body: &[u8]) -> ProbeError {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]).trim().replace(['\n', '\r'], " ");
    ProbeError::Status { status, detail: if text.is_empty() { String::new() } else { format!(": {text}") } }
}

/// The JSON-RPC `result` of a JSON or SSE response body.
fn rpc_result(body: &[u8], headers: &http::HeaderMap) -> Result<Value, ProbeError> {
    let sse = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let text = String::from_utf8_lossy(body);
    let messages: Vec<Value> = if sse {
        // Each event's `data:` lines joined; the response is the event carrying an `id`.
        text.split("\n\n")
            .map(|event| {
                event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .filter_map(|data| serde_json::from_str(&data).ok())
            .collect()
    } else {
        serde_json::from_str(&text).into_iter().collect()
    };
    let Some(msg) = messages.into_iter().find(|m| m.get("id").is_some()) else {
        return Err(ProbeError::NotMcp(format!("no JSON-RPC response in {} bytes", body.len())));
    };
    if let Some(err) = msg.get("error") {
        let text = err.get("message").and_then(Value::as_str).unwrap_or("?");
        return Err(ProbeError::NotMcp(format!("JSON-RPC error {}: {text}", err.get("code").unwrap_or(&Value::Null))));
    }
    msg.get("result").cloned().ok_or_else(|| ProbeError::NotMcp("JSON-RPC response without result".into()))
}

/// Ends the session `initialize` opened, so the doctor leaves nothing behind.
async fn end_session(route: &Route, path: &str, headers: &http::HeaderMap, version: &str, timeout: Duration) {
    let Some(session) = headers.get("mcp-session-id").and_then(|v| v.to_str().ok()) else { return };
    let extra = [("mcp-session-id", session), ("mcp-protocol-version", version)];
    let _ = send(route, Method::DELETE, path, None, &extra, timeout).await;
}

type Answered = (StatusCode, http::HeaderMap, Bytes);

/// One request through the route's client; the body is read whole (bounded).
async fn send(
    route: &Route,
    method: Method,
    path: &str,
    body: Option<&Value>,
    extra: &[(&str, &str)],
    timeout: Duration,
) -> Result<Answered, ProbeError> {
    let scheme = if route.upstream.scheme == Scheme::Https { "https" } else { "http" };
    let authority = route.upstream.authority();
    let host = if route.preserve_host { route.host.clone() } else { authority.clone() };
    let mut req = Request::builder()
        .method(method)
        .uri(format!("{scheme}://{authority}{path}"))
        .header(header::HOST, host)
        .header(header::ACCEPT, "application/json, text/event-stream");
    for (name, value) in extra {
        req = req.header(*name, *value);
    }
    let payload = match body {
        Some(v) => {
            req = req.header(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Bytes::from(v.to_string())
        }
        None => Bytes::new(),
    };
    let req: Request<UpstreamBody> =
        req.body(Full::new(payload).map_err(|n| match n {}).boxed()).map_err(|e| ProbeError::NotMcp(e.to_string()))?;
    let exchange = async {
        let resp = route.client.request(req).await.map_err(|e| ProbeError::Connect(connect_error(&e)))?;
        let (parts, body) = resp.into_parts();
        let bytes = Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map_err(|e| ProbeError::NotMcp(format!("reading the response: {e}")))?
            .to_bytes();
        Ok((parts.status, parts.headers, bytes))
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| ProbeError::Timeout(timeout))?
}

/// Our own connect error inside hyper's, else hyper's text.
fn connect_error(e: &hyper_util::client::legacy::Error) -> String {
    match find_upstream_error(e) {
        Some(u) => u.to_string(),
        None => {
            let mut text = e.to_string();
            let mut cur = std::error::Error::source(e);
            while let Some(s) = cur {
                text = format!("{text}: {s}");
                cur = s.source();
            }
            text
        }
    }
}

/// Checks every route, in name order.
pub async fn check(config: &GatewayConfig, timeout: Duration) -> Vec<Finding> {
    let mut routes: Vec<_> = config.routes.routes().cloned().collect();
    routes.sort_by(|a, b| a.name.cmp(&b.name));
    if routes.is_empty() {
        return vec![Finding::warn(
            "route",
            "no routes configured: every request will get 404",
            "add [[routes]] tables",
        )];
    }
    let mut out = Vec::new();
    for route in routes {
        out.push(check_route(&route, timeout).await);
    }
    out
}

async fn check_route(route: &Route, timeout: Duration) -> Finding {
    if let Some(bridge) = &route.stdio {
        // Children start per MCP session; the doctor only checks the program is there.
        let label = format!("route {} → {}", route.name, route.upstream_label());
        return match std::fs::metadata(bridge.command()) {
            Ok(m) if m.is_file() => Finding::ok("route", format!("{label}: program present (started per session)")),
            _ if !bridge.command().is_absolute() => Finding::warn(
                "route",
                format!("{label}: relative program, resolved through PATH at start"),
                "give an absolute path in routes[].stdio",
            ),
            _ => Finding::fail("route", format!("{label}: program not found"), "fix the path in routes[].stdio"),
        };
    }
    let label = format!("route {} → {}", route.name, route.upstream.url());
    let (host, port) = (route.upstream.host.as_str(), route.upstream.port);
    let resolved: Vec<SocketAddr> = match tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(addrs)) => addrs.collect(),
        Ok(Err(e)) => {
            let fix = "check the host in routes[].upstream and this host's DNS resolver";
            return Finding::fail("route", format!("{label}: cannot resolve {host}: {e}"), fix);
        }
        Err(_) => return Finding::fail("route", format!("{label}: DNS lookup of {host} timed out"), "check DNS"),
    };
    let allow = route.client.allow_list();
    if !resolved.iter().any(|a| allow.allows(a.ip())) {
        let nets: Vec<String> = allow.networks().iter().map(ToString::to_string).collect();
        let ips: Vec<String> = resolved.iter().map(|a| a.ip().to_string()).collect();
        return Finding::fail(
            "route",
            format!("{label}: {host} resolves to {}, outside [upstream] allowed_networks ({})", ips.join(", "), nets.join(", ")),
            format!("add the upstream's network to [upstream] allowed_networks (e.g. \"{}/32\") if it is meant to be reachable", ips.first().map_or("", String::as_str)),
        );
    }
    let (path, result) = probe(route, timeout).await;
    match result {
        Ok(Answer::Initialized { version, server }) => {
            Finding::ok("route", format!("{label}{path}: MCP initialize answered (protocol {version}, server {server:?})"))
        }
        Ok(Answer::Discovered { server }) => Finding::ok(
            "route",
            format!("{label}{path}: MCP server/discover answered (protocol {MODERN_VERSION}, server {server:?})"),
        ),
        Ok(Answer::NeedsAuth { challenge }) => Finding::ok(
            "route",
            format!("{label}{path}: reachable, requires OAuth (HTTP 401, WWW-Authenticate: {challenge}); clients must authenticate"),
        ),
        Err(e) => Finding::fail("route", format!("{label}{path}: {e}"), route_fix(route, &e)),
    }
}

fn route_fix(route: &Route, e: &ProbeError) -> String {
    match e {
        ProbeError::Connect(text) if text.contains("TLS handshake") => {
            "routes[].ca must be the CA that signed the upstream's certificate, whose SANs must include the upstream host".into()
        }
        ProbeError::Connect(_) => "start the upstream MCP server, or correct the address in routes[].upstream".into(),
        ProbeError::Timeout(_) => "the upstream accepted nothing or answered nothing in time: check it is healthy and not firewalled".into(),
        ProbeError::Status { status, .. } if *status == StatusCode::NOT_FOUND => {
            "no MCP endpoint at these paths: check path_prefix/strip_prefix (the server's endpoint is often /mcp)".into()
        }
        ProbeError::Status { status, .. } if *status == StatusCode::MISDIRECTED_REQUEST || *status == StatusCode::FORBIDDEN => {
            if route.preserve_host {
                "the upstream refuses the Host header: add the route hostname to its allowed hosts, or drop preserve_host".into()
            } else {
                "the upstream refuses the request (Host or Origin check?): allow its own address as Host, or see its logs".into()
            }
        }
        _ => "check that routes[].upstream points at an MCP server's Streamable HTTP endpoint (see its logs)".into(),
    }
}

#[cfg(test)]
#[path = "upstream_tests.rs"]
mod tests;
