//! A minimal MCP client (Streamable HTTP over TLS) used by the demo to prove a real
//! session works through the tunnel: it connects to the edge's public port, asks for the
//! route's hostname in SNI and trusts only the inner CA.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{header, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::mcp::{SseItem, SseParser};

/// Largest SSE event the demo client reads (its own server's messages are far smaller).
const MAX_EVENT: usize = 4 << 20;

/// What went wrong in the demo session.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connect to the edge: {0}")]
    Connect(std::io::Error),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("HTTP status {0} for {1}")]
    Status(u16, String),
    #[error("bad response to {0}: {1}")]
    Protocol(String, String),
}

/// A progress notification and when it arrived (ms since the call started).
#[derive(Debug, Clone)]
pub struct Progress {
    pub at_ms: u128,
    pub message: String,
}

/// One MCP session over one TLS connection.
pub struct McpClient {
    sender: http1::SendRequest<Full<Bytes>>,
    host: String,
    session: Option<String>,
    version: Option<String>,
    next_id: u64,
}

impl McpClient {
    /// Opens a TLS connection to `edge` with SNI `host`, verifying against `ca`.
    pub async fn connect(edge: SocketAddr, host: &str, ca: &[CertificateDer<'static>]) -> Result<Self, ClientError> {
        let config =
            crate::tls::configs::client_trusting(ca, &[b"http/1.1"]).map_err(|e| ClientError::Tls(e.to_string()))?;
        let name = ServerName::try_from(host.to_owned()).map_err(|e| ClientError::Tls(e.to_string()))?;
        let tcp = TcpStream::connect(edge).await.map_err(ClientError::Connect)?;
        let tls = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        let (sender, conn) = http1::handshake(TokioIo::new(tls)).await?;
        // The connection's task ends when this client (its `sender`) is dropped.
        tokio::spawn(conn);
        Ok(Self { sender, host: host.to_owned(), session: None, version: None, next_id: 1 })
    }

    /// `initialize` + `notifications/initialized`; returns the server's info.
    pub async fn initialize(&mut self) -> Result<Value, ClientError> {
        let params = json!({ "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": { "name": "mcp-tunnel-demo-client", "version": crate::VERSION } });
        let (result, _) = self.request("initialize", params, |_| {}).await?;
        self.version = result.get("protocolVersion").and_then(Value::as_str).map(str::to_owned);
        self.post(json!({ "jsonrpc": "2.0", "method": "notifications/initialized" })).await?;
        Ok(result)
    }

    /// Sends a request and returns its result and the progress seen while waiting;
    /// `on_progress` is called as each notification arrives.
    pub async fn request(
        &mut self,
        method: &str,
        mut params: Value,
        mut on_progress: impl FnMut(&Progress),
    ) -> Result<(Value, Vec<Progress>), ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        if let Some(obj) = params.as_object_mut() {
            obj.insert("_meta".into(), json!({ "progressToken": id }));
        }
        let started = Instant::now();
        let resp = self.post(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params })).await?;
        if let Some(s) = resp.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()) {
            self.session = Some(s.to_owned());
        }
        let sse =
            resp.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let mut body = resp.into_body();
        let mut progress = Vec::new();
        let mut events = SseParser::new(MAX_EVENT);
        let mut whole = Vec::new();
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame?.into_data() else {
                continue;
            };
            if !sse {
                whole.extend_from_slice(&data);
                continue;
            }
            let complete =
                event_data(&mut events, &data).map_err(|e| ClientError::Protocol(method.into(), e.into()))?;
            for event in complete {
                let msg: Value =
                    serde_json::from_str(&event).map_err(|e| ClientError::Protocol(method.into(), e.to_string()))?;
                if msg.get("method").and_then(Value::as_str) == Some("notifications/progress") {
                    let p = &msg["params"];
                    let message = p.get("message").and_then(Value::as_str).unwrap_or_default();
                    let item = Progress {
                        at_ms: started.elapsed().as_millis(),
                        message: format!("{}/{} {message}", p["progress"], p["total"]),
                    };
                    on_progress(&item);
                    progress.push(item);
                } else if msg.get("id") == Some(&json!(id)) {
                    return Ok((result_of(method, msg)?, progress));
                }
            }
        }
        let msg: Value =
            serde_json::from_slice(&whole).map_err(|e| ClientError::Protocol(method.into(), e.to_string()))?;
        Ok((result_of(method, msg)?, progress))
    }

    async fn post(&mut self, msg: Value) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let method = msg.get("method").and_then(Value::as_str).unwrap_or_default().to_owned();
        let mut req = Request::post("/mcp")
            .header(header::HOST, &self.host)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream");
        if let Some(s) = &self.session {
            req = req.header("mcp-session-id", s);
        }
        if let Some(v) = &self.version {
            req = req.header("mcp-protocol-version", v);
        }
        let req = req
            .body(Full::new(Bytes::from(msg.to_string())))
            .map_err(|e| ClientError::Protocol(method.clone(), e.to_string()))?;
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        if !resp.status().is_success() {
            return Err(ClientError::Status(resp.status().as_u16(), method));
        }
        Ok(resp)
    }
}

fn result_of(method: &str, msg: Value) -> Result<Value, ClientError> {
    if let Some(err) = msg.get("error") {
        return Err(ClientError::Protocol(method.into(), err.to_string()));
    }
    msg.get("result").cloned().ok_or_else(|| ClientError::Protocol(method.into(), "no result".into()))
}

/// Feeds a chunk of a `text/event-stream` body to `parser`; returns the data of every event
/// it completed (events without data, such as comments, are skipped).
fn event_data(parser: &mut SseParser, chunk: &[u8]) -> Result<Vec<String>, &'static str> {
    parser.push(chunk);
    let mut out = Vec::new();
    while let Some(item) = parser.next_item() {
        match item {
            SseItem::Event(ev) if ev.has_data => out.push(ev.data),
            SseItem::Event(_) => {}
            SseItem::Oversize { .. } => return Err("server-sent event too large"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks() {
        let mut p = SseParser::new(MAX_EVENT);
        assert!(event_data(&mut p, b"event: message\nda").unwrap().is_empty());
        assert_eq!(
            event_data(&mut p, b"ta: {\"a\":1}\n\ndata: x\r\n\r\n: comment\n\n").unwrap(),
            vec!["{\"a\":1}", "x"]
        );
        assert_eq!(event_data(&mut p, b"data: a\ndata: b\n\n").unwrap(), vec!["a\nb"]);
    }

    #[test]
    fn an_oversize_event_is_an_error() {
        let mut p = SseParser::new(8);
        assert!(event_data(&mut p, b"data: 0123456789\n\n").is_err());
    }
}
