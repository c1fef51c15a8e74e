//! Limits through the whole tunnel, each answered clearly and audited: per route, request
//! body and header size, requests in flight, the idle timeout of SSE responses and the
//! deadline of plain responses; per tunnel, client connections served at once.

use bytes::Bytes;
use std::path::{Path, PathBuf};

use crate::common::{audit_records, demo_upstream, http, poll, Stack, DOMAIN};
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

/// Gateway config text `rest`, writing the audit trail to a file in `dir`.
fn audited(dir: &Path, rest: &str) -> (String, PathBuf) {
    let audit = dir.join("audit.jsonl");
    (format!("{rest}\n[audit]\nsink = \"file\"\npath = \"{}\"\n", audit.display()), audit)
}

/// Waits for an audit record with `reason` and returns it.
async fn record_with_reason(audit: &Path, reason: &str) -> Value {
    let records = audit_records(audit, |r| r.iter().any(|r| r["reason"] == reason)).await;
    records.into_iter().find(|r| r["reason"] == reason).expect("found")
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
    let limits = "[routes.limits]\nmax_body = 64\nmax_header_bytes = \"1KiB\"";
    let (config, audit) = audited(audit_dir.path(), &route("small", port, limits));
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

    // Each refusal is in the audit trail.
    for (reason, status) in [("body_too_large", 413), ("headers_too_large", 431)] {
        let rec = record_with_reason(&audit, reason).await;
        assert_eq!((rec["decision"].as_str(), rec["http_status"].as_u64()), (Some("deny"), Some(status)), "{rec}");
    }
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_concurrency_limit_get_503_with_retry_after() {
    // The upstream takes the first request and never answers it.
    let (port, mut arrived) = scripted_upstream(b"").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, audit) =
        audited(dir.path(), &route("busy", port, "timeout = \"30s\"\n[routes.limits]\nmax_concurrent = 1"));
    let stack = Stack::start(&config).await;
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
    let rec = record_with_reason(&audit, "too_many_requests").await;
    assert_eq!((rec["decision"].as_str(), rec["http_status"].as_u64()), (Some("deny"), Some(503)), "{rec}");
    assert_eq!(rec["route"], host.as_str());
    first.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_sse_stream_ends_after_the_idle_timeout() {
    const SSE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n\
        16\r\nevent: message\ndata: 1\r\n";
    let (port, _arrived) = scripted_upstream(SSE).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, audit) = audited(dir.path(), &route("quiet", port, "[routes.limits]\nsse_idle_timeout = \"300ms\""));
    let stack = Stack::start(&config).await;
    let host = format!("quiet.{DOMAIN}");
    // The stream ends (cleanly) instead of hanging; what arrived before is delivered.
    let (status, resp) = send(&stack, "quiet", http::mcp_post(&host, PING)).await.expect("stream ends cleanly");
    assert_eq!(status, 200);
    assert_eq!(&resp.body()[..], b"event: message\ndata: 1");
    let rec = record_with_reason(&audit, "sse_idle_timeout").await;
    assert_eq!((rec["decision"].as_str(), rec["outcome"].as_str()), (Some("allow"), Some("aborted")), "{rec}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_body_past_the_route_timeout_fails_instead_of_looking_complete() {
    const PARTIAL: &[u8] =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"jsonrpc\"";
    let (port, _arrived) = scripted_upstream(PARTIAL).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, audit) = audited(dir.path(), &route("slow", port, "timeout = \"500ms\""));
    let stack = Stack::start(&config).await;
    let host = format!("slow.{DOMAIN}");
    let err = send(&stack, "slow", http::mcp_post(&host, PING)).await.expect_err("a truncated body is an error");
    assert!(!err.is_empty());
    let rec = record_with_reason(&audit, "response_timeout").await;
    assert_eq!((rec["http_status"].as_u64(), rec["outcome"].as_str()), (Some(200), Some("aborted")), "{rec}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_connections_over_max_streams_get_503_until_one_ends() {
    // The upstream takes the first request and never answers: that client's connection
    // holds the tunnel's only stream slot.
    let (port, mut arrived) = scripted_upstream(b"").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (demo, stop) = demo_upstream().await;
    let routes = format!("max_streams = 1\n{}{}", route("one", port, "timeout = \"30s\""), route("two", demo, ""));
    let (config, audit) = audited(dir.path(), &routes);
    let stack = std::sync::Arc::new(Stack::start(&config).await);
    let host = format!("one.{DOMAIN}");
    let first = {
        let (stack, host) = (stack.clone(), host.clone());
        tokio::spawn(async move { send(&stack, "one", http::mcp_post(&host, PING)).await })
    };
    arrived.recv().await.expect("first request reached the upstream");

    let (status, resp) = send(&stack, "one", http::mcp_post(&host, PING)).await.expect("a readable refusal");
    assert_eq!(status, 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(json(&resp)["error"], "too_many_streams");
    let rec = record_with_reason(&audit, "too_many_streams").await;
    assert_eq!((rec["decision"].as_str(), rec["http_status"].as_u64()), (Some("deny"), Some(503)), "{rec}");
    assert_eq!((rec["route"].as_str(), rec["connection"].as_u64()), (Some(host.as_str()), Some(0)), "{rec}");
    assert!(rec["stream"].as_u64().is_some(), "{rec}");

    // The slot frees when the first client goes away (the gateway sees its stream end a
    // moment later, so poll, bounded).
    first.abort();
    let _ = first.await;
    let host = format!("two.{DOMAIN}");
    let answer = || async {
        let status = send(&stack, "two", http::mcp_post(&host, PING)).await.map(|(s, _)| s).unwrap_or(0);
        Some(status).filter(|s| *s != 503)
    };
    let last = poll::eventually_async(std::time::Duration::from_secs(10), "the slot freed", answer).await;
    assert_eq!(last, 200, "the slot was never freed");
    stop.cancel();
}
