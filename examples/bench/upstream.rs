//! The upstream under every path: a fast MCP-like Streamable HTTP server (hyper).
//!
//! - `POST /mcp` — JSON-RPC; `tools/call` gets a small JSON result.
//! - `GET /bulk?bytes=N` — N bytes of body, streamed in 64 KiB chunks.
//! - `GET /sse` — a long-lived `text/event-stream`: a comment at once (the client knows
//!   the stream is open), then one event per interval, random phase, each carrying the
//!   time it was sent (CLOCK_MONOTONIC) so the client can measure delivery latency.
//!
//! It runs in its own process (`bench --serve-upstream`), so its sockets and CPU time
//! are apart from the load generator's (10 000 SSE streams need 10 000 sockets on each
//! side, and a process here may hold 20 000 at most).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;

/// Chunk size of bulk bodies.
const CHUNK: usize = 64 * 1024;
/// Largest bulk body served (bounds a mistyped request).
const MAX_BULK: u64 = 1 << 31;
/// SSE events per stream before the server ends it (bounds a forgotten stream).
const MAX_EVENTS: u32 = 3_600;

/// Nanoseconds on CLOCK_MONOTONIC, which the upstream process and the load generator
/// share: SSE events carry their send time in it.
pub fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(t.tv_nsec).unwrap_or(0)
}

type RespBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// The `--serve-upstream` mode: binds a loopback port, prints `UPSTREAM <addr>` on stdout
/// and serves until the parent closes our stdin (or kills us).
pub async fn serve_process(sse_interval: Duration) -> Result<(), String> {
    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    println!("UPSTREAM {}", listener.local_addr().map_err(|e| e.to_string())?);
    let stop = CancellationToken::new();
    tokio::spawn(run(listener, sse_interval, stop.clone()));
    // A blocking read of stdin ends when the parent closes it or exits.
    let _ = tokio::task::spawn_blocking(|| {
        use std::io::Read;
        let mut sink = [0u8; 64];
        while std::io::stdin().read(&mut sink).is_ok_and(|n| n > 0) {}
    })
    .await;
    stop.cancel();
    Ok(())
}

/// Serves until `stop` fires; one task per connection (HTTP/1.1 or h2c).
pub async fn run(listener: TcpListener, sse_interval: Duration, stop: CancellationToken) {
    loop {
        let tcp = tokio::select! {
            r = listener.accept() => match r { Ok((tcp, _)) => tcp, Err(_) => { tokio::time::sleep(Duration::from_millis(10)).await; continue } },
            _ = stop.cancelled() => return,
        };
        let _ = tcp.set_nodelay(true);
        let stop = stop.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| async move { Ok::<_, Infallible>(handle(req, sse_interval).await) });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(tcp), svc);
            tokio::select! {
                _ = conn => {}
                _ = stop.cancelled() => {}
            }
        });
    }
}

fn full(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<RespBody> {
    let mut r = Response::new(Full::new(body).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

async fn handle(req: Request<Incoming>, sse_interval: Duration) -> Response<RespBody> {
    match (req.method(), req.uri().path()) {
        (&Method::POST, "/mcp") => mcp(req).await,
        (&Method::GET, "/bulk") => {
            let bytes = query_u64(req.uri().query(), "bytes").unwrap_or(0).min(MAX_BULK);
            let mut r = Response::new(BulkBody { left: bytes, chunk: chunk() }.boxed());
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
            r.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(bytes));
            r
        }
        (&Method::GET, "/sse") => {
            let phase = sse_interval.mul_f64(fastrand::f64());
            let body = SseBody { sleep: Box::pin(tokio::time::sleep(phase)), interval: sse_interval, sent: 0 };
            let mut r = Response::new(body.boxed());
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            r
        }
        _ => full(StatusCode::NOT_FOUND, "text/plain", Bytes::from_static(b"not found")),
    }
}

/// A `tools/call` answers with a small result; anything else with an empty result.
async fn mcp(req: Request<Incoming>) -> Response<RespBody> {
    let Ok(body) = Limited::new(req.into_body(), 64 * 1024).collect().await else {
        return full(StatusCode::PAYLOAD_TOO_LARGE, "text/plain", Bytes::from_static(b"too large"));
    };
    let Ok(msg) = serde_json::from_slice::<serde_json::Value>(&body.to_bytes()) else {
        return full(StatusCode::BAD_REQUEST, "text/plain", Bytes::from_static(b"bad json"));
    };
    let id = msg.get("id").cloned().unwrap_or(serde_json::Value::Null);
    let result = if msg.get("method").and_then(|m| m.as_str()) == Some("tools/call") {
        serde_json::json!({ "content": [{ "type": "text", "text": "ok" }], "isError": false })
    } else {
        serde_json::json!({})
    };
    let reply = serde_json::json!({ "jsonrpc": "2.0", "id": id, "result": result });
    full(StatusCode::OK, "application/json", Bytes::from(reply.to_string()))
}

fn query_u64(query: Option<&str>, key: &str) -> Option<u64> {
    query?.split('&').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

fn chunk() -> Bytes {
    static CHUNK_BYTES: OnceLock<Bytes> = OnceLock::new();
    CHUNK_BYTES.get_or_init(|| Bytes::from(vec![b'x'; CHUNK])).clone()
}

/// `left` bytes as clones of one shared chunk (no copying on the server side).
struct BulkBody {
    left: u64,
    chunk: Bytes,
}

impl Body for BulkBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = usize::try_from(self.left).unwrap_or(CHUNK).min(CHUNK);
        self.left -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n)))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

/// An open comment at once, then one timestamped event per interval.
struct SseBody {
    sleep: Pin<Box<Sleep>>,
    interval: Duration,
    sent: u32,
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.sent == 0 {
            self.sent = 1;
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b": open\n\n")))));
        }
        if self.sent > MAX_EVENTS {
            return Poll::Ready(None);
        }
        if self.sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let next = self.sleep.deadline() + self.interval;
        self.sleep.as_mut().reset(next);
        let event = format!(
            "event: message\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{{\"t\":{},\"seq\":{}}}}}\n\n",
            now_ns(),
            self.sent
        );
        self.sent += 1;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(event)))))
    }
}

/// Reads the bench-clock timestamp out of an event sent by [`SseBody`].
pub fn event_time(event: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(event).ok()?;
    let start = text.find("\"t\":")? + 4;
    let rest = &text[start..];
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    rest[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn event_time_round_trips() {
        let e = b"event: message\ndata: {\"params\":{\"t\":12345,\"seq\":1}}\n\n";
        assert_eq!(super::event_time(e), Some(12345));
        assert_eq!(super::query_u64(Some("a=1&bytes=99"), "bytes"), Some(99));
    }
}
