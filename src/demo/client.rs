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
        let mut events = SseParser::default();
        let mut whole = Vec::new();
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame?.into_data() else {
                continue;
            };
            if !sse {
                whole.extend_from_slice(&data);
                continue;
            }
            for event in events.push(&data) {
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

/// Collects the `data:` lines of server-sent events across arbitrary chunk boundaries.
#[derive(Default)]
pub struct SseParser {
    buf: Vec<u8>,
}

impl SseParser {
    /// Feeds a chunk; returns the data of every event it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        // CR only ever appears as part of a line ending in SSE.
        self.buf.extend(chunk.iter().filter(|b| **b != b'\r'));
        let mut out = Vec::new();
        while let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = self.buf.drain(..end + 2).collect();
            let event = String::from_utf8_lossy(&event);
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            if !data.is_empty() {
                out.push(data.join("\n"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::SseParser;

    #[test]
    fn events_split_across_chunks() {
        let mut p = SseParser::default();
        assert!(p.push(b"event: message\nda").is_empty());
        assert_eq!(p.push(b"ta: {\"a\":1}\n\ndata: x\r\n\r\n: comment\n\n"), vec!["{\"a\":1}", "x"]);
        assert_eq!(p.push(b"data: a\ndata: b\n\n"), vec!["a\nb"]);
    }
}
