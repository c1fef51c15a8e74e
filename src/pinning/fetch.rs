//! The gateway's own listing of a route's tools: a short MCP session to the upstream
//! (`initialize` → `notifications/initialized` → `tools/list`, following `nextCursor` →
//! `DELETE`), through the route's own pooled client, so the upstream allow-list and the
//! route's CA apply as for client traffic. It sends no credentials: an upstream that
//! wants a token for `tools/list` is learned from client traffic only.
//!
//! Stdio routes are not listed this way (their bridge starts one child per session;
//! they learn from client traffic only).

use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::mcp::{SseItem, SseParser};
use crate::outbound::{Scheme, UpstreamClient, UpstreamTarget};

/// The protocol version the gateway asks for (a session-based one: 2025-11-25 servers
/// and 2026-07-28 servers that keep the handshake both answer it).
pub const PROTOCOL_VERSION: &str = "2025-11-25";
/// At most this many `tools/list` pages are followed.
pub const MAX_PAGES: usize = 100;
/// Largest answer read for one request.
pub const MAX_ANSWER: usize = 16 << 20;

/// Why the own listing failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("route {0} serves a stdio server; its tools are learned from client traffic only")]
    Stdio(String),
    #[error("cannot build the request: {0}")]
    Request(String),
    #[error("{step}: upstream request failed: {reason}")]
    Upstream { step: &'static str, reason: String },
    #[error("{step}: upstream answered HTTP {status}")]
    Status { step: &'static str, status: u16 },
    #[error("{step}: no answer within {after:?}")]
    Timeout { step: &'static str, after: Duration },
    #[error("{step}: answer larger than {MAX_ANSWER} bytes")]
    TooLarge { step: &'static str },
    #[error("{step}: upstream answered with error {code}: {message}")]
    Rpc { step: &'static str, code: i64, message: String },
    #[error("{step}: no JSON-RPC answer in the response")]
    NoAnswer { step: &'static str },
    #[error("tools/list: more than {MAX_PAGES} pages")]
    TooManyPages,
}

/// The HTTP upstream a listing goes to: what of a route the fetch needs.
pub struct Upstream<'a> {
    pub target: &'a UpstreamTarget,
    pub client: &'a UpstreamClient,
    /// Bounds each request of the listing session (the route's `timeout`).
    pub timeout: Duration,
}

/// Lists every tool the upstream advertises at `path` (all pages). The whole session is
/// bounded by `timeout` per request.
pub async fn list_tools(route: &Upstream<'_>, path: &str) -> Result<Vec<Value>, FetchError> {
    let mut s = Session { route, path, id: None, version: None, next_id: 0 };
    let init = json!({
        "protocolVersion": PROTOCOL_VERSION,
        "capabilities": {},
        "clientInfo": { "name": "mcp-tunnel-gateway", "version": env!("CARGO_PKG_VERSION") },
    });
    let result = s.request("initialize", init).await?;
    s.version = result.get("protocolVersion").and_then(Value::as_str).map(str::to_owned);
    let listed = s.list_all().await;
    s.close().await;
    listed
}

struct Session<'a> {
    route: &'a Upstream<'a>,
    path: &'a str,
    /// `Mcp-Session-Id` the upstream assigned, if any.
    id: Option<String>,
    version: Option<String>,
    next_id: i64,
}

impl Session<'_> {
    async fn list_all(&mut self) -> Result<Vec<Value>, FetchError> {
        self.notify("notifications/initialized").await?;
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let params = match &cursor {
                Some(c) => json!({ "cursor": c }),
                None => json!({}),
            };
            let result = self.request("tools/list", params).await?;
            if let Some(page) = result.get("tools").and_then(Value::as_array) {
                tools.extend(page.iter().cloned());
            }
            cursor = result.get("nextCursor").and_then(Value::as_str).map(str::to_owned);
            if cursor.is_none() {
                return Ok(tools);
            }
        }
        Err(FetchError::TooManyPages)
    }

    fn build(&self, method: Method, body: Bytes) -> Result<Request<crate::outbound::UpstreamBody>, FetchError> {
        let scheme = match self.route.target.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        let authority = self.route.target.authority();
        let mut b = Request::builder()
            .method(method)
            .uri(format!("{scheme}://{authority}{}", self.path))
            .header(header::HOST, authority.as_str())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream");
        if let Some(id) = self.id.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
            b = b.header("mcp-session-id", id);
        }
        if let Some(v) = self.version.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
            b = b.header("mcp-protocol-version", v);
        }
        b.body(Full::new(body).map_err(|never| match never {}).boxed()).map_err(|e| FetchError::Request(e.to_string()))
    }

    /// Sends one request and returns its `result`.
    async fn request(&mut self, method: &'static str, params: Value) -> Result<Value, FetchError> {
        self.next_id += 1;
        let id = self.next_id;
        let body = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }).to_string();
        let deadline = Instant::now() + self.route.timeout;
        let req = self.build(Method::POST, Bytes::from(body))?;
        let resp = self.send(method, req, deadline).await?;
        if let Some(sid) = resp.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()) {
            self.id = Some(sid.to_owned());
        }
        let sse = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.trim_start().to_ascii_lowercase().starts_with("text/event-stream"));
        let answer = read_answer(method, resp.into_body(), sse, id, deadline, self.route.timeout).await?;
        if let Some(e) = answer.get("error") {
            let code = e.get("code").and_then(Value::as_i64).unwrap_or(0);
            let message = e.get("message").and_then(Value::as_str).unwrap_or("").chars().take(200).collect();
            return Err(FetchError::Rpc { step: method, code, message });
        }
        answer.get("result").cloned().ok_or(FetchError::NoAnswer { step: method })
    }

    async fn notify(&mut self, method: &'static str) -> Result<(), FetchError> {
        let body = json!({ "jsonrpc": "2.0", "method": method }).to_string();
        let deadline = Instant::now() + self.route.timeout;
        let req = self.build(Method::POST, Bytes::from(body))?;
        let resp = self.send(method, req, deadline).await?;
        // The body (normally empty with 202) is drained so the connection is reusable.
        let _ = tokio::time::timeout_at(deadline, resp.into_body().collect()).await;
        Ok(())
    }

    async fn send(
        &self,
        step: &'static str,
        req: Request<crate::outbound::UpstreamBody>,
        deadline: Instant,
    ) -> Result<http::Response<hyper::body::Incoming>, FetchError> {
        let timeout = FetchError::Timeout { step, after: self.route.timeout };
        let resp = tokio::time::timeout_at(deadline, self.route.client.request(req))
            .await
            .map_err(|_| timeout)?
            .map_err(|e| FetchError::Upstream { step, reason: upstream_reason(&e) })?;
        if !resp.status().is_success() {
            return Err(FetchError::Status { step, status: resp.status().as_u16() });
        }
        Ok(resp)
    }

    /// Ends the session (best effort: an upstream without sessions answers 405).
    async fn close(&self) {
        if self.id.is_none() {
            return;
        }
        let Ok(req) = self.build(Method::DELETE, Bytes::new()) else { return };
        let deadline = Instant::now() + self.route.timeout;
        if let Ok(Ok(resp)) = tokio::time::timeout_at(deadline, self.route.client.request(req)).await {
            if resp.status() != StatusCode::METHOD_NOT_ALLOWED {
                let _ = tokio::time::timeout_at(deadline, resp.into_body().collect()).await;
            }
        }
    }
}

fn upstream_reason(err: &hyper_util::client::legacy::Error) -> String {
    match crate::outbound::find_upstream_error(err) {
        Some(e) => e.to_string(),
        None => err.to_string(),
    }
}

/// Reads the response to request `id`: a JSON body, or the SSE event that carries it
/// (read until that event, so a stream the upstream keeps open does not hold us).
async fn read_answer(
    step: &'static str,
    mut body: hyper::body::Incoming,
    sse: bool,
    id: i64,
    deadline: Instant,
    after: Duration,
) -> Result<Value, FetchError> {
    let mut parser = SseParser::new(MAX_ANSWER);
    let mut json = Vec::new();
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(FetchError::Timeout { step, after }),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(FetchError::Upstream { step, reason: e.to_string() }),
            Ok(Some(Ok(f))) => f,
        };
        let Ok(data) = frame.into_data() else { continue };
        if !sse {
            if json.len() + data.len() > MAX_ANSWER {
                return Err(FetchError::TooLarge { step });
            }
            json.extend_from_slice(&data);
            continue;
        }
        parser.push(&data);
        while let Some(item) = parser.next_item() {
            match item {
                SseItem::Event(ev) => {
                    let answer =
                        serde_json::from_str::<Value>(&ev.data).ok().filter(|v| v.get("id") == Some(&json!(id)));
                    if let Some(answer) = answer {
                        return Ok(answer);
                    }
                }
                SseItem::Oversize { .. } => return Err(FetchError::TooLarge { step }),
            }
        }
    }
    if sse {
        return Err(FetchError::NoAnswer { step });
    }
    serde_json::from_slice(&json).map_err(|_| FetchError::NoAnswer { step })
}
