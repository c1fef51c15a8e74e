//! A small MCP server (Streamable HTTP, protocol 2025-11-25 and earlier) for the demo
//! and for deployments that want something to point a route at. Tools: `echo`, `add`
//! and `countdown`, which streams progress notifications over SSE before its result.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use super::body::ChannelBody;
use crate::outbound::UpstreamBody;

/// Protocol versions this server negotiates, newest first.
const VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// Largest request body accepted.
const MAX_BODY: usize = 1024 * 1024;
/// Pause between `countdown` progress notifications.
pub const COUNTDOWN_STEP: Duration = Duration::from_millis(300);

/// Serves MCP on `listener` until `shutdown` fires.
pub async fn run(listener: TcpListener, shutdown: CancellationToken) {
    let sessions = Arc::new(AtomicU64::new(1));
    let tasks = TaskTracker::new();
    loop {
        let (tcp, _) = tokio::select! {
            r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
            _ = shutdown.cancelled() => break,
        };
        let sessions = sessions.clone();
        let stop = shutdown.clone();
        tasks.spawn(async move {
            let svc = service_fn(move |req| {
                let sessions = sessions.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(req, &sessions).await) }
            });
            let conn = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = conn.serve_connection(TokioIo::new(tcp), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.cancelled() => { conn.as_mut().graceful_shutdown(); let _ = conn.await; }
            }
        });
    }
    tasks.close();
    tasks.wait().await;
}

fn json_response(status: StatusCode, body: &Value) -> Response<UpstreamBody> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())).map_err(|n| match n {}).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn empty(status: StatusCode) -> Response<UpstreamBody> {
    let mut r = Response::new(Full::new(Bytes::new()).map_err(|n| match n {}).boxed());
    *r.status_mut() = status;
    r
}

fn rpc_error(id: &Value, code: i64, message: &str) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } })
}

async fn handle(req: Request<Incoming>, sessions: &AtomicU64) -> Response<UpstreamBody> {
    if req.uri().path() != "/mcp" {
        return json_response(StatusCode::NOT_FOUND, &json!({ "error": "not found; the MCP endpoint is /mcp" }));
    }
    match *req.method() {
        Method::POST => {}
        // No server-initiated stream and nothing to clean up per session.
        Method::GET => return empty(StatusCode::METHOD_NOT_ALLOWED),
        Method::DELETE => return empty(StatusCode::OK),
        _ => return empty(StatusCode::METHOD_NOT_ALLOWED),
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return json_response(StatusCode::PAYLOAD_TOO_LARGE, &rpc_error(&Value::Null, -32600, "request too large"))
        }
    };
    let Ok(msg) = serde_json::from_slice::<Value>(&body) else {
        return json_response(StatusCode::BAD_REQUEST, &rpc_error(&Value::Null, -32700, "parse error"));
    };
    let method = msg.get("method").and_then(Value::as_str).unwrap_or_default().to_owned();
    let Some(id) = msg.get("id").cloned() else {
        // Notifications and client responses are accepted without a body.
        return empty(StatusCode::ACCEPTED);
    };
    debug!(%method, "demo server request");
    let params = msg.get("params").cloned().unwrap_or(Value::Null);
    match method.as_str() {
        "initialize" => {
            let asked = params.get("protocolVersion").and_then(Value::as_str).unwrap_or(VERSIONS[0]);
            let version = VERSIONS.iter().find(|v| **v == asked).copied().unwrap_or(VERSIONS[0]);
            let result = json!({
                "protocolVersion": version,
                "capabilities": { "tools": { "listChanged": false } },
                "serverInfo": { "name": "mcp-tunnel-demo", "version": crate::VERSION },
            });
            let mut r = json_response(StatusCode::OK, &json!({ "jsonrpc": "2.0", "id": id, "result": result }));
            let session = format!("demo-{:016x}", sessions.fetch_add(1, Ordering::Relaxed) ^ fastrand::u64(..));
            if let Ok(v) = HeaderValue::from_str(&session) {
                r.headers_mut().insert("mcp-session-id", v);
            }
            r
        }
        "ping" => json_response(StatusCode::OK, &json!({ "jsonrpc": "2.0", "id": id, "result": {} })),
        "tools/list" => {
            json_response(StatusCode::OK, &json!({ "jsonrpc": "2.0", "id": id, "result": { "tools": tools() } }))
        }
        "tools/call" => call_tool(id, &params),
        _ => json_response(StatusCode::OK, &rpc_error(&id, -32601, &format!("method not found: {method}"))),
    }
}

fn tools() -> Value {
    json!([
        { "name": "echo", "description": "Returns its text argument.",
          "inputSchema": { "type": "object", "properties": { "text": { "type": "string" } }, "required": ["text"] } },
        { "name": "add", "description": "Adds two numbers.",
          "inputSchema": { "type": "object", "properties": { "a": { "type": "number" }, "b": { "type": "number" } }, "required": ["a", "b"] } },
        { "name": "countdown", "description": "Counts down, reporting progress over SSE at each step.",
          "inputSchema": { "type": "object", "properties": { "steps": { "type": "integer", "minimum": 1, "maximum": 20 } } } },
    ])
}

fn text_result(id: &Value, text: String) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "result": { "content": [{ "type": "text", "text": text }], "isError": false } })
}

fn call_tool(id: Value, params: &Value) -> Response<UpstreamBody> {
    let args = params.get("arguments").cloned().unwrap_or(Value::Null);
    let reply = match params.get("name").and_then(Value::as_str) {
        Some("echo") => text_result(&id, args.get("text").and_then(Value::as_str).unwrap_or_default().to_owned()),
        Some("add") => {
            let n = |k: &str| args.get(k).and_then(Value::as_f64);
            match (n("a"), n("b")) {
                (Some(a), Some(b)) => text_result(&id, (a + b).to_string()),
                _ => rpc_error(&id, -32602, "add needs numbers a and b"),
            }
        }
        Some("countdown") => {
            let steps = args.get("steps").and_then(Value::as_u64).unwrap_or(3).clamp(1, 20);
            let token = params.get("_meta").and_then(|m| m.get("progressToken")).cloned();
            return countdown(id, steps, token);
        }
        Some(other) => rpc_error(&id, -32602, &format!("unknown tool: {other}")),
        None => rpc_error(&id, -32602, "missing tool name"),
    };
    json_response(StatusCode::OK, &reply)
}

/// Streams one progress notification per step (when the client sent a progress token),
/// then the result, each as its own SSE event.
fn countdown(id: Value, steps: u64, token: Option<Value>) -> Response<UpstreamBody> {
    let (tx, body) = ChannelBody::new(4);
    // Bounded: ends after `steps` events, or at once when the client drops the body.
    tokio::spawn(async move {
        for i in 0..steps {
            if let Some(token) = &token {
                let note = json!({ "jsonrpc": "2.0", "method": "notifications/progress",
                    "params": { "progressToken": token, "progress": i, "total": steps, "message": format!("{} to go", steps - i) } });
                if tx.send(Bytes::from(format!("event: message\ndata: {note}\n\n"))).await.is_err() {
                    return;
                }
            }
            tokio::time::sleep(COUNTDOWN_STEP).await;
        }
        let done = text_result(&id, format!("liftoff after {steps} steps"));
        let _ = tx.send(Bytes::from(format!("event: message\ndata: {done}\n\n"))).await;
    });
    let mut r = Response::new(body.boxed());
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}
