//! While a tunnel connection serves, looking for a better one: QUIC again after an
//! HTTP/2 fallback, or the connection's own edge again after a failover. Each completes
//! with a registered connection for the dial loop to move to (make-before-break), or
//! never.

use tracing::debug;

use super::dial;
use super::register::{establish_home, register, Dialer, Registered, QUIC_PROBE_TIMEOUT};
use crate::config::gateway::TransportMode;
use crate::transport::Transport;

/// On HTTP/2 in `auto` mode, keeps checking whether QUIC works again, and completes with a
/// registered QUIC connection when it does; otherwise never completes.
pub(super) async fn quic_again(dialer: &Dialer, transport: Transport) -> Registered {
    if transport != Transport::Http2 || dialer.edge().transport != TransportMode::Auto {
        return std::future::pending().await;
    }
    loop {
        tokio::time::sleep(dialer.edge().quic_retry_interval).await;
        match dial::quic(dialer.edge(), dialer.pick(), &dialer.quic, QUIC_PROBE_TIMEOUT).await {
            Ok(session) => match register(session, dialer.index).await {
                Ok(reg) => return reg,
                Err(e) => debug!("QUIC re-probe registered no connection: {e}"),
            },
            Err(e) => debug!("QUIC re-probe failed: {e}"),
        }
    }
}

/// After a failover, checks every `edge.rebalance_interval` whether the connection's own
/// edge serves again, and completes with a connection registered there when it does
/// (make-before-break: the caller drains this one). Otherwise never completes. Without
/// it, connections that failed over would pile up on the surviving edges for good.
pub(super) async fn homecoming(dialer: &Dialer, on: std::net::SocketAddr) -> Registered {
    if !dialer.away() {
        return std::future::pending().await;
    }
    loop {
        tokio::time::sleep(dialer.edge().rebalance_interval).await;
        match establish_home(dialer, &mut false).await {
            // Its name now resolves to where it is (the fleet changed): home already.
            Ok(reg) if reg.session.remote == on => {
                reg.session.closer.close_now();
                dialer.home();
                return std::future::pending().await;
            }
            Ok(reg) => return reg,
            Err(e) => debug!("own edge still unreachable: {e}"),
        }
    }
}
