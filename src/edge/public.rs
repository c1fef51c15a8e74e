//! The edge's public side: one task per client TCP connection. Peek the ClientHello,
//! pick the tunnel by SNI, open a stream to a live gateway connection, write the `Open`
//! preamble and the peeked bytes, then splice both directions. TLS is never terminated.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::{debug, info, info_span, Span};

use super::link::LinkError;
use super::sni::{self, peek_client_hello, MAX_CLIENT_HELLO};
use super::EdgeShared;
use crate::idle::{Activity, Tracked};
use crate::protocol::Open;
use crate::stats::Metered;

/// How long to wait for a gateway to accept a new stream.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);
/// Relay buffers. Requests are small: tokio's default 8 KiB. Responses can be bulk, and
/// 8 KiB cost a TCP write and a QUIC read per 8 KiB; a larger buffer cuts both
/// (docs/benchmarks.md). Each relay holds both buffers for its lifetime, so this is
/// also the edge's per-connection memory floor.
const RELAY_UP: usize = 8 * 1024;
const RELAY_DOWN: usize = 64 * 1024;

/// The span of one public client connection: its address, and the stream id once the
/// stream to a gateway is opened (the gateway's logs name the same id).
pub(super) fn span(client_addr: SocketAddr) -> Span {
    info_span!("stream", client = %client_addr, id = tracing::field::Empty)
}

/// Serves one public client connection to completion (in its [`span`]).
pub(super) async fn serve_client(
    mut tcp: TcpStream,
    client_addr: SocketAddr,
    shared: Arc<EdgeShared>,
    _pass: super::limits::Pass,
) {
    let stats = &shared.stats;
    stats.public_connections.inc();
    let _ = tcp.set_nodelay(true);
    let peeked = match peek_client_hello(&mut tcp, MAX_CLIENT_HELLO, shared.client_hello_timeout).await {
        Ok(p) => p,
        Err(e) => {
            stats.bad_client_hello.inc();
            info!("closing client connection: {e}");
            return;
        }
    };
    let sni = peeked.sni.clone();
    let Some(tunnel_id) = shared.registry.tunnel_for(&sni) else {
        stats.unknown_sni.inc();
        info!(%sni, "no tunnel serves this hostname; closing");
        close_with_alert(tcp, sni::ALERT_UNRECOGNIZED_NAME).await;
        return;
    };
    let Some(slot) = shared.registry.pick(&tunnel_id) else {
        stats.no_gateway.inc();
        info!(%sni, tunnel = %tunnel_id, "no live gateway for tunnel; closing");
        close_with_alert(tcp, sni::ALERT_INTERNAL_ERROR).await;
        return;
    };
    // A gateway at its stream limit makes open_bi wait; bound that wait.
    let stream_id = shared.next_stream_id.fetch_add(1, Ordering::Relaxed);
    Span::current().record("id", stream_id);
    let open = Open { stream_id, sni: sni.clone(), client_addr };
    // The ClientHello goes out with the stream's opening, so the gateway can start the
    // handshake at once.
    let opened = tokio::time::timeout(OPEN_TIMEOUT, slot.conn().link.open(&open, &peeked.bytes)).await;
    let mut stream = match opened.unwrap_or_else(|_| Err(LinkError::Other(format!("timed out after {OPEN_TIMEOUT:?}"))))
    {
        Ok(stream) => stream,
        Err(e) => {
            stats.no_gateway.inc();
            info!(%sni, tunnel = %tunnel_id, "cannot open tunnel stream: {e}");
            close_with_alert(tcp, sni::ALERT_INTERNAL_ERROR).await;
            return;
        }
    };
    stats.streams_opened.inc();
    stats.streams_active.inc();
    let _active = ActiveRelay(&stats.streams_active);
    debug!(%sni, tunnel = %tunnel_id, connection = slot.conn().id, "stream opened");
    stats.bytes_to_gateway.add(peeked.bytes.len() as u64);
    let activity = Activity::new();
    // Counted as bytes move, so long-lived (SSE) and failed relays show up too.
    let tcp = Metered::new(tcp, stats.bytes_to_gateway.clone(), stats.bytes_to_client.clone());
    let mut tcp = Tracked::new(tcp, activity.clone());
    let relayed = tokio::select! {
        r = tokio::io::copy_bidirectional_with_sizes(&mut tcp, &mut stream, RELAY_UP, RELAY_DOWN) => r,
        _ = activity.idle_for(shared.idle_timeout) => {
            stats.streams_idle.inc();
            info!("closing stream idle for {:?}", shared.idle_timeout);
            stream.abort();
            return;
        }
    };
    match relayed {
        Ok((up, down)) => {
            debug!(bytes_up = up, bytes_down = down, "stream closed");
        }
        Err(e) => {
            stats.streams_failed.inc();
            stream.abort();
            debug!("stream failed: {e}");
        }
    }
}

/// Sends a fatal TLS alert so the client sees a reason, then closes.
async fn close_with_alert(mut tcp: TcpStream, description: u8) {
    let _ = tcp.write_all(&sni::alert_record(description)).await;
    let _ = tcp.shutdown().await;
}

/// Decrements the running-relays gauge however a relay ends.
struct ActiveRelay<'a>(&'a prometheus_client::metrics::gauge::Gauge);

impl Drop for ActiveRelay<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}
