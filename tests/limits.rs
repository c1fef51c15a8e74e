//! Per-route limits through the whole tunnel: request body and header size, requests in
//! flight, the idle timeout of SSE responses and the deadline of plain responses.

mod common;

use bytes::Bytes;
use common::{demo_upstream, http, Stack, DOMAIN};
use http_body_util::Full;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

const PING: &str = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;

fn route(name: &str, port: u16, extra: &str) -> String {
    format!("[[routes]]\nhost = \"{name}\"\nupstream = \"http://127.0.0.1:{port}\"\n{extra}\n")
}

async fn send(
    stack: &Stack,
    name: &str,
    req: http::Request<Full<Bytes>>,
) -> Result<(u16, http::Response<Bytes>), String> {
    let host = format!("{name}.{DOMAIN}");
    let resp = http::send(stack.public, &host, &stack.inner_ca(), req).await.map_err(|e| e.to_string())?;
    Ok((resp.status().as_u16(), resp))
}

fn json(resp: &http::Response<Bytes>) -> Value {
    serde_json::from_slice(resp.body()).unwrap_or(Value::Null)
}

/// An upstream that reads each request's headers, reports it, then answers with `reply`
/// (raw bytes, possibly incomplete) and keeps the connection open without another byte.
async fn scripted_upstream(reply: &'static [u8]) -> (u16, mpsc::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut s, _)) = listener.accept().await {
            let tx = tx.clone();
            held.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tx.send(()).await;
                let _ = s.write_all(reply).await;
                // Hold the connection open, silent, until the peer goes away.
                let _ = s.read(&mut buf).await;
            }));
        }
    });
    (port, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_body_and_headers_are_refused_before_the_upstream() {
    let (port, stop) = demo_upstream().await;
    let audit_dir = tempfile::tempdir().expect("tempdir");
    let audit = audit_dir.path().join("audit.jsonl");
    let config = format!(
        "[audit]\nsink = \"file\"\npath = \"{}\"\n{}",
        audit.display(),
        route("small", port, "[routes.limits]\nmax_body = 64\nmax_header_bytes = \"1KiB\"")
    );
    let stack = Stack::start(&config).await;
    let host = format!("small.{DOMAIN}");
    let (status, resp) = send(&stack, "small", http::mcp_post(&host, PING)).await.expect("response");
    assert_eq!(status, 200, "a small request passes: {:?}", resp.body());

    let big = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"pad":"{}"}}}}"#, "x".repeat(100));
    let (status, resp) = send(&stack, "small", http::mcp_post(&host, &big)).await.expect("response");
    assert_eq!(status, 413);
    assert_eq!(json(&resp)["error"], "body_too_large");

    let mut req = http::mcp_post(&host, PING);
    req.headers_mut().insert("x-padding", "y".repeat(2000).parse().expect("header"));
    let (status, resp) = send(&stack, "small", req).await.expect("response");
    assert_eq!(status, 431);
    assert_eq!(json(&resp)["error"], "headers_too_large");

    // Each refusal is in the audit trail (written by a background task: wait, bounded).
    let mut reasons = Vec::new();
    for _ in 0..100 {
        let text = std::fs::read_to_string(&audit).unwrap_or_default();
        reasons = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|r| r["decision"] == "deny")
            .map(|r| (r["reason"].as_str().unwrap_or_default().to_owned(), r["http_status"].as_u64()))
            .collect();
        if reasons.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(reasons.contains(&("body_too_large".to_owned(), Some(413))), "{reasons:?}");
    assert!(reasons.contains(&("headers_too_large".to_owned(), Some(431))), "{reasons:?}");
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_concurrency_limit_get_503_with_retry_after() {
    // The upstream takes the first request and never answers it.
    let (port, mut arrived) = scripted_upstream(b"").await;
    let stack = Stack::start(&route("busy", port, "timeout = \"30s\"\n[routes.limits]\nmax_concurrent = 1")).await;
    let host = format!("busy.{DOMAIN}");
    let stack = std::sync::Arc::new(stack);
    let first = {
        let (stack, host) = (stack.clone(), host.clone());
        tokio::spawn(async move { send(&stack, "busy", http::mcp_post(&host, PING)).await })
    };
    arrived.recv().await.expect("first request reached the upstream");
    let (status, resp) = send(&stack, "busy", http::mcp_post(&host, PING)).await.expect("response");
    assert_eq!(status, 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(json(&resp)["error"], "too_many_requests");
    first.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_sse_stream_ends_after_the_idle_timeout() {
    const SSE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n\
        16\r\nevent: message\ndata: 1\r\n";
    let (port, _arrived) = scripted_upstream(SSE).await;
    let stack = Stack::start(&route("quiet", port, "[routes.limits]\nsse_idle_timeout = \"300ms\"")).await;
    let host = format!("quiet.{DOMAIN}");
    // The stream ends (cleanly) instead of hanging; what arrived before is delivered.
    let (status, resp) = send(&stack, "quiet", http::mcp_post(&host, PING)).await.expect("stream ends cleanly");
    assert_eq!(status, 200);
    assert_eq!(&resp.body()[..], b"event: message\ndata: 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_body_past_the_route_timeout_fails_instead_of_looking_complete() {
    const PARTIAL: &[u8] =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"jsonrpc\"";
    let (port, _arrived) = scripted_upstream(PARTIAL).await;
    let stack = Stack::start(&route("slow", port, "timeout = \"500ms\"")).await;
    let host = format!("slow.{DOMAIN}");
    let err = send(&stack, "slow", http::mcp_post(&host, PING)).await.expect_err("a truncated body is an error");
    assert!(!err.is_empty());
}
