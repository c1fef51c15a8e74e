//! What each tunnel connection is doing, as `/readyz`, `ctl status`, the metrics and the
//! tests see it: its [`TunnelState`], and how that is described to operators.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::transport::Transport;

/// Where one tunnel connection stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunnelState {
    /// Dialing (or waiting to redial).
    Connecting,
    /// Registered with the edge; streams flow.
    Registered {
        tunnel_id: String,
        connection_id: u64,
        hostnames: Vec<String>,
        transport: Transport,
        /// The edge address this connection goes to.
        edge: SocketAddr,
        /// When it registered.
        since: Instant,
        /// Its current round-trip time.
        rtt: Rtt,
        /// Why the connection before it ended (or the last failed dial), if one did.
        last_error: Option<String>,
    },
    /// The edge refused this gateway (wrong identity, version...); retried with backoff.
    Rejected { reason: String },
    /// The last attempt or connection failed.
    Disconnected { reason: String },
    /// Shut down.
    Stopped,
}

/// A live connection's round-trip time: QUIC's own estimate, or the last HTTP/2 PING's.
#[derive(Clone)]
pub enum Rtt {
    Quic(quinn::Connection),
    /// Microseconds; 0 until the first PONG.
    H2(Arc<AtomicU64>),
}

impl Rtt {
    /// The current estimate (`None` before the first HTTP/2 PONG).
    pub fn get(&self) -> Option<Duration> {
        match self {
            Rtt::Quic(conn) => Some(conn.rtt()),
            Rtt::H2(micros) => match micros.load(Ordering::Relaxed) {
                0 => None,
                us => Some(Duration::from_micros(us)),
            },
        }
    }
}

/// Two handles are equal when they measure the same connection.
impl PartialEq for Rtt {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Rtt::Quic(a), Rtt::Quic(b)) => a.stable_id() == b.stable_id(),
            (Rtt::H2(a), Rtt::H2(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for Rtt {}

impl std::fmt::Debug for Rtt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Rtt({:?})", self.get())
    }
}

impl TunnelState {
    /// The transport label and state word the metrics use.
    pub fn words(&self) -> (String, String) {
        match self {
            TunnelState::Registered { transport, .. } => (transport.to_string(), "registered".into()),
            TunnelState::Connecting => ("none".into(), "connecting".into()),
            TunnelState::Rejected { .. } => ("none".into(), "rejected".into()),
            TunnelState::Disconnected { .. } => ("none".into(), "disconnected".into()),
            TunnelState::Stopped => ("none".into(), "stopped".into()),
        }
    }

    /// Connection `index` for `/readyz` and `ctl status`: its state and transport; when
    /// registered its edge, uptime, RTT and the error that ended the connection before it;
    /// otherwise why it is down.
    pub fn describe(&self, index: usize) -> Value {
        let (transport, state) = self.words();
        let mut entry = json!({ "index": index, "state": state, "transport": transport });
        match self {
            TunnelState::Registered { tunnel_id, connection_id, edge, since, rtt, last_error, .. } => {
                entry["tunnel_id"] = tunnel_id.clone().into();
                entry["connection_id"] = (*connection_id).into();
                entry["edge"] = edge.to_string().into();
                entry["uptime_s"] = since.elapsed().as_secs().into();
                entry["rtt_ms"] = rtt.get().map(|d| d.as_secs_f64() * 1000.0).into();
                entry["last_error"] = last_error.clone().into();
            }
            TunnelState::Rejected { reason } | TunnelState::Disconnected { reason } => {
                entry["reason"] = reason.clone().into();
            }
            _ => {}
        }
        entry
    }
}
