//! Dialing and registering one tunnel connection: the transport policy (QUIC; HTTP/2 over
//! TCP when UDP looks blocked, in `auto` mode), then `Hello` and the edge's `Welcome`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, warn};

use super::dial::{self, Session};
use super::dial_error::{describe_close, DialError};
use crate::config::gateway::{EdgeTarget, TransportMode};
use crate::protocol::{frame, Control, MAX_FRAME_LEN, PROTOCOL_VERSION};
use crate::tasks::Tasks;

/// Time allowed for a handshake and for the edge's answer to `Hello`.
pub(super) const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// In `auto` mode, how long QUIC gets before UDP is presumed blocked.
pub(super) const QUIC_PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// How the gateway reaches the edge.
pub(super) struct Dialer {
    /// Which of the gateway's parallel connections this dialer keeps (0-based).
    pub index: u32,
    /// The edge config once per edge address, this connection's own address first.
    pub edges: Vec<EdgeTarget>,
    /// Which of `edges` is dialed now: moves on when a connection is lost or a dial
    /// fails, so a dead edge instance is left for the next one.
    pub cursor: AtomicUsize,
    pub quic: quinn::ClientConfig,
    pub h2_tls: Arc<rustls::ClientConfig>,
    /// The gateway's tasks (an HTTP/2 connection is driven in one).
    pub tasks: Tasks,
}

impl Dialer {
    /// This connection's edges: the configured ones starting from address `index`
    /// (cycling), so parallel connections start on different edges.
    pub fn edges(edge: &EdgeTarget, index: u32) -> Vec<EdgeTarget> {
        let addresses: Vec<&String> = std::iter::once(&edge.address).chain(&edge.addresses).collect();
        let n = addresses.len();
        (0..n).map(|k| EdgeTarget { address: addresses[(index as usize + k) % n].clone(), ..edge.clone() }).collect()
    }

    /// The edge dialed now.
    pub fn edge(&self) -> &EdgeTarget {
        &self.edges[self.cursor.load(Ordering::Relaxed) % self.edges.len()]
    }

    /// Which of the addresses the edge's name resolves to is dialed now: connection
    /// `index` starts on its own and moves on with each failover.
    pub fn pick(&self) -> usize {
        // Connections i and i + n (n configured addresses) share an address: give them
        // different entries of what it resolves to.
        (self.index as usize / self.edges.len()).wrapping_add(self.cursor.load(Ordering::Relaxed))
    }

    /// Whether a failover moved this connection off its own edge.
    pub fn away(&self) -> bool {
        self.cursor.load(Ordering::Relaxed) != 0
    }

    /// Back on its own edge.
    pub fn home(&self) {
        self.cursor.store(0, Ordering::Relaxed);
    }

    /// Moves on to the next edge: the next configured address, and the next address its
    /// name resolves to (a fleet behind one name).
    pub fn fail_over(&self) {
        let next = self.cursor.fetch_add(1, Ordering::Relaxed).wrapping_add(1) % self.edges.len();
        debug!(address = %self.edges[next].address, "moving on to the next edge");
    }
}

/// A registered connection.
pub(super) struct Registered {
    pub session: Session,
    pub tunnel_id: String,
    pub connection_id: u64,
    pub hostnames: Vec<String>,
}

/// Dials the current edge with the configured transport policy and registers.
pub(super) async fn establish(dialer: &Dialer, udp_blocked: &mut bool) -> Result<Registered, DialError> {
    establish_to(dialer, dialer.edge(), dialer.pick(), udp_blocked).await
}

/// Dials the connection's own edge (where it started, before any failover).
pub(super) async fn establish_home(dialer: &Dialer, udp_blocked: &mut bool) -> Result<Registered, DialError> {
    establish_to(dialer, &dialer.edges[0], dialer.index as usize / dialer.edges.len(), udp_blocked).await
}

/// Dials `edge` (entry `pick` of what its name resolves to) and registers.
async fn establish_to(
    dialer: &Dialer,
    edge: &EdgeTarget,
    pick: usize,
    udp_blocked: &mut bool,
) -> Result<Registered, DialError> {
    match edge.transport {
        TransportMode::Quic => register(dial::quic(edge, pick, &dialer.quic, DIAL_TIMEOUT).await?, dialer.index).await,
        TransportMode::Http2 => {
            register(dial::h2(edge, pick, &dialer.h2_tls, &dialer.tasks, DIAL_TIMEOUT).await?, dialer.index).await
        }
        TransportMode::Auto => {
            if !*udp_blocked {
                match dial::quic(edge, pick, &dialer.quic, QUIC_PROBE_TIMEOUT).await {
                    Ok(session) => return register(session, dialer.index).await,
                    Err(e) if e.udp_looks_blocked() => {
                        // Only when HTTP/2 then works is UDP the problem, not a down edge.
                        let reg = register(
                            dial::h2(edge, pick, &dialer.h2_tls, &dialer.tasks, DIAL_TIMEOUT).await?,
                            dialer.index,
                        )
                        .await?;
                        warn!(
                            "QUIC to the edge failed ({e}) but HTTP/2 over TCP works: UDP looks blocked; \
                             using HTTP/2 and retrying QUIC every {:?}",
                            edge.quic_retry_interval
                        );
                        *udp_blocked = true;
                        return Ok(reg);
                    }
                    Err(e) => return Err(e),
                }
            }
            register(dial::h2(edge, pick, &dialer.h2_tls, &dialer.tasks, DIAL_TIMEOUT).await?, dialer.index).await
        }
    }
}

/// Says `Hello` on a new session and waits for `Welcome`.
pub(super) async fn register(mut session: Session, connection_index: u32) -> Result<Registered, DialError> {
    let hello = Control::Hello { protocol: PROTOCOL_VERSION, gateway_version: crate::VERSION.into(), connection_index };
    let exchange = async {
        frame::write(&mut session.control, &hello, MAX_FRAME_LEN).await?;
        tokio::time::timeout(DIAL_TIMEOUT, frame::read::<Control, _>(&mut session.control, MAX_FRAME_LEN))
            .await
            .map_err(|_| DialError::Timeout(DIAL_TIMEOUT))?
            .map_err(DialError::from)
    };
    let err = match exchange.await {
        Ok(Some(Control::Welcome { tunnel_id, hostnames, connection_id })) => {
            return Ok(Registered { session, tunnel_id, connection_id, hostnames });
        }
        Ok(Some(Control::Reject { code, reason })) => DialError::Rejected(format!("{code:?}: {reason}")),
        Ok(other) => DialError::Unexpected(format!("{other:?}")),
        // With TLS 1.3 client auth the edge judges our certificate only after our side
        // considers the handshake done; its verdict arrives as the close reason.
        Err(e) => match session.closer.peer_close_reason() {
            Some(reason) => DialError::Closed(describe_close(&reason)),
            None => e,
        },
    };
    session.closer.close_now();
    Err(err)
}
