//! The two tunnel transports and what they share. QUIC is the default; HTTP/2 over
//! TLS/TCP is the fallback for networks that block UDP. On HTTP/2 the edge is the client:
//! it sends one request per tunnel stream, the first one being the control stream.

pub mod h2stream;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request};

use crate::protocol::Open;

/// ALPN protocol id of the HTTP/2 fallback transport.
pub const ALPN_H2: &[u8] = b"mcpt-h2/1";

/// Which transport a tunnel connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Quic,
    Http2,
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Quic => "quic",
            Self::Http2 => "http2",
        })
    }
}

/// HTTP/2 stream window: one stream can move tens of MB/s at a 10 ms RTT.
pub const H2_STREAM_WINDOW: u32 = 8 * 1024 * 1024;
/// HTTP/2 connection window, shared by all streams.
pub const H2_CONNECTION_WINDOW: u32 = 32 * 1024 * 1024;
/// Largest HTTP/2 frame either side accepts.
pub const H2_MAX_FRAME: u32 = 256 * 1024;
/// The edge's PING interval on HTTP/2 tunnel connections, and how long a PONG may take
/// (the gateway's own are `[edge] keepalive_interval` and `dead_after`).
pub const H2_PING_INTERVAL: Duration = Duration::from_secs(5);
pub const H2_PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Path of the control request.
pub const CONTROL_PATH: &str = "/mcpt/control";
/// Path of every data-stream request.
pub const STREAM_PATH: &str = "/mcpt/stream";
const H_STREAM_ID: &str = "mcpt-stream-id";
const H_SNI: &str = "mcpt-sni";
const H_CLIENT: &str = "mcpt-client-addr";

/// The request that opens the control stream.
pub fn control_request() -> Request<()> {
    let mut req = Request::new(());
    *req.method_mut() = Method::POST;
    *req.uri_mut() = http::Uri::from_static(CONTROL_PATH);
    req
}

/// The request that opens a data stream, with the `Open` metadata in headers.
pub fn open_request(open: &Open) -> Result<Request<()>, String> {
    let mut req = Request::new(());
    *req.method_mut() = Method::POST;
    *req.uri_mut() = http::Uri::from_static(STREAM_PATH);
    let h = req.headers_mut();
    h.insert(H_STREAM_ID, HeaderValue::from(open.stream_id));
    h.insert(H_SNI, HeaderValue::from_str(&open.sni).map_err(|_| "SNI is not a valid header value".to_owned())?);
    h.insert(H_CLIENT, HeaderValue::from_str(&open.client_addr.to_string()).map_err(|e| e.to_string())?);
    Ok(req)
}

/// Reads the `Open` metadata back from a data-stream request's headers.
pub fn parse_open(headers: &HeaderMap) -> Result<Open, String> {
    let get =
        |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).ok_or_else(|| format!("missing header {name}"));
    let stream_id = get(H_STREAM_ID)?.parse().map_err(|_| format!("bad {H_STREAM_ID}"))?;
    let client_addr: SocketAddr = get(H_CLIENT)?.parse().map_err(|_| format!("bad {H_CLIENT}"))?;
    Ok(Open { stream_id, sni: get(H_SNI)?.to_owned(), client_addr })
}

/// Pings the peer `interval` after each PONG, storing each round trip in `rtt` (µs);
/// returns when a PONG does not come back within `deadline` (the connection is dead) or
/// the connection ends.
pub async fn h2_keepalive(
    mut ping: h2::PingPong,
    interval: Duration,
    deadline: Duration,
    rtt: &std::sync::atomic::AtomicU64,
) -> String {
    loop {
        tokio::time::sleep(interval).await;
        let sent = std::time::Instant::now();
        match tokio::time::timeout(deadline, ping.ping(h2::Ping::opaque())).await {
            Ok(Ok(_pong)) => {
                let us = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX).max(1);
                rtt.store(us, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(Err(e)) => return format!("HTTP/2 ping failed: {e}"),
            Err(_) => return format!("no HTTP/2 PONG within {deadline:?}"),
        }
    }
}

/// Kernel buffer asked for on QUIC UDP sockets. The default (about 200 KiB) overflows
/// when thousands of streams send at once and the reader is briefly busy: every dropped
/// datagram then costs a loss-recovery round (10 000 SSE streams over one connection saw
/// p90 event latency of 61 ms from drops, docs/benchmarks.md). The kernel caps the size
/// at `net.core.rmem_max` / `wmem_max`.
pub const UDP_BUFFER: usize = 4 * 1024 * 1024;

/// Enlarges a QUIC socket's receive and send buffers (best effort: a smaller size
/// granted by the kernel is not an error).
pub fn size_udp_buffers(socket: &std::net::UdpSocket) {
    let Ok(state) = quinn::udp::UdpSocketState::new(socket.into()) else { return };
    let _ = state.set_recv_buffer_size(socket.into(), UDP_BUFFER);
    let _ = state.set_send_buffer_size(socket.into(), UDP_BUFFER);
    tracing::debug!(
        recv = state.recv_buffer_size(socket.into()).unwrap_or(0),
        send = state.send_buffer_size(socket.into()).unwrap_or(0),
        "QUIC socket buffers"
    );
}

/// Body type used on HTTP/2 tunnel streams.
pub type H2Data = Bytes;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_survives_headers() {
        let open = Open { stream_id: 42, sni: "a.test".into(), client_addr: "[::1]:5000".parse().unwrap() };
        let req = open_request(&open).unwrap();
        assert_eq!(parse_open(req.headers()).unwrap(), open);
        let mut bad = req.headers().clone();
        bad.insert(H_STREAM_ID, HeaderValue::from_static("x"));
        assert!(parse_open(&bad).is_err());
        bad.remove(H_SNI);
        assert!(parse_open(&bad).is_err());
    }
}
