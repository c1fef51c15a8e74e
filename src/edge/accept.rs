//! The edge's accept loops and what they admit: public clients under `max_connections`
//! and a per-source cap; gateway connections under the handshake caps, QUIC ones only
//! from addresses a Retry has validated (so a spoofed source cannot fill another's cap).

use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::QuicServerConfig;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn, Instrument};

use super::limits::Full;
use super::{public, tunnel, EdgeError, EdgeShared, QUIC_IDLE_TIMEOUT_MS};
use crate::config::edge::TunnelLimits;

/// The QUIC server config: bounded receive and send windows, so a gateway that sends
/// without its clients reading, or stops reading, costs the edge at most the configured
/// bytes per connection.
pub(super) fn quic_server(tls: rustls::ServerConfig, limits: &TunnelLimits) -> Result<quinn::ServerConfig, EdgeError> {
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(tls)?));
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(QUIC_IDLE_TIMEOUT_MS))));
    // Gateways open only the control stream; data streams are opened by the edge.
    transport.max_concurrent_bidi_streams(4u32.into());
    transport.max_concurrent_uni_streams(0u32.into());
    transport.stream_receive_window(limits.stream_window.into());
    transport.receive_window(limits.connection_window.into());
    transport.send_window(limits.send_window);
    server.transport_config(Arc::new(transport));
    // Attempts the accept loop has not handled yet: beyond this quinn refuses them itself.
    server.max_incoming(limits.max_handshakes);
    Ok(server)
}

/// Accepts QUIC gateway connections until `stops.drain` (or the endpoint closes).
pub(super) async fn accept_quic(
    endpoint: &quinn::Endpoint,
    shared: &Arc<EdgeShared>,
    tunnels: &TaskTracker,
    stops: &tunnel::Stops,
) {
    loop {
        let incoming = tokio::select! {
            i = endpoint.accept() => i,
            _ = stops.drain.cancelled() => return,
        };
        let Some(incoming) = incoming else { return };
        if !incoming.remote_address_validated() {
            // Stateless: costs the edge one packet; a real gateway answers in one RTT.
            if let Err(e) = incoming.retry() {
                e.into_incoming().refuse();
            }
            continue;
        }
        match shared.handshakes.try_enter(incoming.remote_address().ip()) {
            Ok(pass) => {
                tunnels.spawn(tunnel::serve_quic(incoming, pass, shared.clone(), stops.clone()));
            }
            Err(full) => {
                shared.stats.handshakes_refused.inc();
                debug!(remote = %incoming.remote_address(), "QUIC gateway connection refused: {full}");
                incoming.refuse();
            }
        }
    }
}

/// Accepts HTTP/2-fallback gateway connections until `stops.drain`.
pub(super) async fn accept_h2(
    listener: TcpListener,
    tls: tokio_rustls::TlsAcceptor,
    shared: Arc<EdgeShared>,
    tunnels: TaskTracker,
    stops: tunnel::Stops,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stops.drain.cancelled() => return,
        };
        match accepted {
            Ok((tcp, addr)) => match shared.handshakes.try_enter(addr.ip()) {
                Ok(pass) => {
                    tunnels.spawn(tunnel::serve_h2(tcp, addr, pass, tls.clone(), shared.clone(), stops.clone()));
                }
                Err(full) => {
                    shared.stats.handshakes_refused.inc();
                    debug!(remote = %addr, "HTTP/2 gateway connection refused: {full}");
                    drop(tcp);
                }
            },
            Err(e) => {
                warn!("tunnel TCP accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Accepts public clients until `shutdown`; each runs as a task on `relays`. Beyond
/// `max_connections` in all, or `max_connections_per_source` from one source, new ones
/// are closed at once.
pub(super) async fn accept_public(
    listener: TcpListener,
    shared: Arc<EdgeShared>,
    relays: TaskTracker,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.cancelled() => return,
        };
        match accepted {
            Ok((tcp, addr)) => match shared.public_gate.try_enter(addr.ip()) {
                Ok(pass) => {
                    relays.spawn(public::serve_client(tcp, addr, shared.clone(), pass).instrument(public::span(addr)));
                }
                Err(full) => {
                    let counter = match full {
                        Full::Total => &shared.stats.over_capacity,
                        Full::Source => &shared.stats.over_source_capacity,
                    };
                    counter.inc();
                    drop(tcp);
                }
            },
            Err(e) => {
                // Usually fd exhaustion: back off briefly instead of spinning.
                warn!("public accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
