//! The `mcpt/1` wire protocol spoken between gateway and edge.
//!
//! Frames are a big-endian `u32` length followed by one JSON object (see `frame`).
//! The control stream carries [`Control`] messages; every data stream starts with one
//! [`Open`] preamble followed by raw bytes of the client's (encrypted) TLS session.

pub mod frame;

pub use frame::FrameError;

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// ALPN protocol id for the QUIC transport.
pub const ALPN_QUIC: &[u8] = b"mcpt/1";

/// Version number carried in `Hello`; bumped on any incompatible change.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest control or preamble frame either side accepts (bytes of JSON).
pub const MAX_FRAME_LEN: usize = 64 * 1024;

/// Messages on the control stream (the first bidirectional stream, opened by the gateway).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Control {
    /// Gateway → edge, first frame on the control stream.
    Hello {
        /// `PROTOCOL_VERSION` of the gateway.
        protocol: u32,
        /// Gateway software version, for the edge's logs.
        gateway_version: String,
        /// Which of the gateway's parallel connections this is (0-based).
        connection_index: u32,
    },
    /// Edge → gateway: the tunnel is registered.
    Welcome {
        /// The tunnel identity taken from the gateway's client certificate.
        tunnel_id: String,
        /// Hostnames (exact or `*.` wildcard) the edge routes to this tunnel.
        hostnames: Vec<String>,
        /// Edge-assigned id of this connection, for correlating logs on both sides.
        connection_id: u64,
    },
    /// Edge → gateway: registration refused; the edge closes the connection next.
    Reject {
        /// Machine-readable reason.
        code: RejectCode,
        /// Human-readable detail (never contains secrets).
        reason: String,
    },
    /// Either side: open no new streams on this connection; in-flight streams may finish
    /// within `grace_ms`.
    Drain {
        /// How long the sender will wait for in-flight streams.
        grace_ms: u64,
    },
    /// A message type this version does not know; ignored, so newer peers can add types.
    #[serde(other)]
    Unknown,
}

/// Why an edge refused a gateway connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectCode {
    /// The certificate carries no tunnel id the edge knows.
    UnknownTunnel,
    /// The gateway speaks a protocol version the edge does not.
    UnsupportedVersion,
    /// The first control frame was not a valid `Hello`.
    BadHello,
    /// The tunnel already holds the edge's `max_connections_per_tunnel` connections.
    TooManyConnections,
    /// Any other reason (forward compatibility).
    #[serde(other)]
    Other,
}

/// Preamble the edge writes at the start of every data stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Open {
    /// Edge-assigned stream id, unique per edge process; appears in both sides' logs.
    pub stream_id: u64,
    /// The TLS server name the client asked for.
    pub sni: String,
    /// The public client's address as the edge saw it.
    pub client_addr: SocketAddr,
}

/// QUIC application error codes used when closing connections or resetting streams.
pub mod codes {
    /// Normal close (shutdown, drain complete).
    pub const CLOSE_NORMAL: u32 = 0;
    /// The edge refused the tunnel (see the `Reject` frame sent just before).
    pub const CLOSE_REJECTED: u32 = 1;
    /// A peer violated the protocol (bad frame, unexpected message).
    pub const CLOSE_PROTOCOL: u32 = 2;
    /// A data stream failed (reset in either direction).
    pub const STREAM_ERROR: u32 = 16;
}
