//! Faults at the edge's public port and mid-stream resets. Whatever a client sends
//! instead of a ClientHello (garbage, an oversized or truncated hello, nothing at all) is
//! closed and counted without disturbing anyone else, and hundreds of such connections do
//! not grow memory. A client or an upstream that vanishes in the middle of a response
//! fails only its own stream, and a truncated response never looks complete.
//!
//! This file holds the harness the three test files share.

use std::sync::Arc;
use std::time::Duration;

use crate::common::{self, http, own_process, poll, Stack, DOMAIN};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use mcp_tunnel::edge::sni;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

mod hello;
mod memory;
mod midstream;

/// The tests of this file run one at a time: the timing bounds are fairer without the
/// others (the memory test among them, though it measures in a process of its own)
/// competing for 2 cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Route served by the example MCP server.
const ROUTE: &str = "demo";
/// The harness's `public_listener.client_hello_timeout`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(2);
/// A connection rejected on its bytes must be closed within this: well under
/// [`HELLO_TIMEOUT`], so the close is the parser's verdict, not the timer's.
const PROMPT: Duration = Duration::from_millis(1500);
/// Slack on top of a deadline the edge enforces (scheduling on a loaded 2-core machine).
const MARGIN: Duration = Duration::from_secs(3);
/// Upper bound for anything that should happen "soon" (a request, a relay ending).
const SOON: Duration = Duration::from_secs(10);

/// The example MCP server on a free loopback port, stopped on drop.
struct Upstream {
    port: u16,
    stop: CancellationToken,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn demo_upstream() -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let stop = CancellationToken::new();
    tokio::spawn(mcp_tunnel::demo::server::run(listener, stop.clone()));
    Upstream { port, stop }
}

fn demo_route(upstream: &Upstream) -> String {
    format!("[[routes]]\nhost = \"{ROUTE}\"\nupstream = \"http://127.0.0.1:{}\"\n", upstream.port)
}

/// A stack whose only route is the example MCP server.
async fn demo_stack() -> (Stack, Upstream) {
    let upstream = demo_upstream().await;
    let stack = Stack::start(&demo_route(&upstream)).await;
    (stack, upstream)
}

fn host(route: &str) -> String {
    format!("{route}.{DOMAIN}")
}

/// A real MCP `tools/call echo` through the tunnel on a fresh connection; asserts that
/// the text comes back.
async fn assert_echo(stack: &Stack, text: &str) {
    let host = host(ROUTE);
    let call = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": { "name": "echo", "arguments": { "text": text } } });
    let req = http::mcp_post(&host, &call.to_string());
    let resp = tokio::time::timeout(SOON, http::send(stack.public, &host, &stack.inner_ca(), req))
        .await
        .unwrap_or_else(|_| panic!("echo {text:?}: no response within {SOON:?}"))
        .unwrap_or_else(|e| panic!("echo {text:?}: {e}"));
    assert_eq!(resp.status(), 200, "echo {text:?}");
    let body: Value = serde_json::from_slice(resp.body()).expect("echo: JSON body");
    assert_eq!(body["result"]["content"][0]["text"], text, "echo {text:?}: {body}");
}

/// The edge's counters that say how a public connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Counts {
    public: u64,
    bad_hello: u64,
    unknown_sni: u64,
    no_gateway: u64,
    opened: u64,
    failed: u64,
    idle: u64,
    over_capacity: u64,
}

impl Counts {
    fn of(stack: &Stack) -> Self {
        let s = &stack.edge.stats;
        Self {
            public: s.public_connections.get(),
            bad_hello: s.bad_client_hello.get(),
            unknown_sni: s.unknown_sni.get(),
            no_gateway: s.no_gateway.get(),
            opened: s.streams_opened.get(),
            failed: s.streams_failed.get(),
            idle: s.streams_idle.get(),
            over_capacity: s.over_capacity.get(),
        }
    }

    /// What happened since `before`.
    fn since(self, before: Self) -> Self {
        Self {
            public: self.public - before.public,
            bad_hello: self.bad_hello - before.bad_hello,
            unknown_sni: self.unknown_sni - before.unknown_sni,
            no_gateway: self.no_gateway - before.no_gateway,
            opened: self.opened - before.opened,
            failed: self.failed - before.failed,
            idle: self.idle - before.idle,
            over_capacity: self.over_capacity - before.over_capacity,
        }
    }
}

/// `n` connections, all rejected for their ClientHello, and nothing else.
fn only_bad_hellos(n: u64) -> Counts {
    Counts { public: n, bad_hello: n, ..Counts::default() }
}

/// Connects to the edge's public port (bounded).
async fn connect(stack: &Stack) -> TcpStream {
    tokio::time::timeout(SOON, TcpStream::connect(stack.public))
        .await
        .expect("connect within 10 s")
        .expect("connect to the public port")
}

/// Writes `bytes`, ignoring errors: the edge may close (and reset) the connection before
/// it has read them all, which is the point.
async fn write_ignoring_errors(tcp: &mut TcpStream, bytes: &[u8]) {
    let _ = tokio::time::timeout(SOON, tcp.write_all(bytes)).await;
}

/// Reads until the edge closes `tcp` (end of stream or reset), failing if it is still
/// open after `within`. Returns how many bytes the edge sent before closing.
async fn expect_closed(tcp: &mut TcpStream, within: Duration, what: &str) -> usize {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    let mut got = 0;
    for _ in 0..1000 {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => panic!("{what}: the edge kept the connection open for {within:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return got,
            Ok(Ok(n)) => got += n,
        }
    }
    panic!("{what}: the edge kept sending bytes instead of closing");
}

/// A TLS handshake record whose header claims 65 535 bytes (more than any TLS record may
/// carry), starting a ClientHello, followed by filler: over 20 KiB in all.
fn oversized_hello() -> Vec<u8> {
    let mut bytes = vec![0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0x00, 0xff, 0xfb];
    bytes.resize(20 * 1024, 0x41);
    bytes
}

/// Well-formed 16 KiB handshake records carrying one ClientHello message that claims
/// 65 520 bytes: legal TLS framing, but far beyond the edge's 16 KiB hello limit.
fn oversized_hello_in_valid_records() -> Vec<u8> {
    let mut bytes = vec![0x16, 0x03, 0x03, 0x40, 0x00, 0x01, 0x00, 0xff, 0xf0];
    bytes.resize(5 + 16 * 1024, 0x42);
    bytes.extend_from_slice(&[0x16, 0x03, 0x03, 0x40, 0x00]);
    bytes.resize(bytes.len() + 4096, 0x43);
    bytes
}

/// Bytes that are not a ClientHello at all.
fn garbage_payloads() -> Vec<(&'static str, Vec<u8>)> {
    let mut random: Vec<u8> = (0..1024).map(|_| fastrand::u8(..)).collect();
    if random[0] == 0x16 {
        random[0] = 0x00; // must not look like the start of a handshake record
    }
    vec![
        ("plain HTTP request", format!("GET /mcp HTTP/1.1\r\nHost: {}\r\n\r\n", host(ROUTE)).into_bytes()),
        ("SSH banner", b"SSH-2.0-OpenSSH_9.6\r\n".to_vec()),
        ("random bytes", random),
        ("TLS application-data record", vec![0x17, 0x03, 0x03, 0x00, 0x05, 1, 2, 3, 4, 5]),
        ("handshake record of an unknown message type", vec![0x16, 0x03, 0x01, 0x00, 0x04, 99, 0, 0, 0]),
    ]
}

/// Polls (bounded) until `cond` holds for the edge's counters.
async fn wait_counts(stack: &Stack, what: &str, cond: impl Fn(Counts) -> bool) -> Counts {
    let counted = poll::within(SOON, || Some(Counts::of(stack)).filter(|c| cond(*c))).await;
    counted.unwrap_or_else(|| {
        // The relays still running help tell "ended cleanly" from "never ended".
        let (now, active) = (Counts::of(stack), stack.edge.stats.streams_active.get());
        panic!("{what}: not within {SOON:?} ({now:?}, relays running: {active})")
    })
}
