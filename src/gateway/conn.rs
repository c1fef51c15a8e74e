//! What the gateway knows about the client connection a request arrived on; used by every
//! stage below the router (audit trail, forwarding headers, guard).

use std::net::SocketAddr;

/// What the gateway knows about the connection a request arrived on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The tunnel connection slot (`[edge] connections`, 0-based) the stream came on.
    pub connection: u32,
    /// Edge-assigned stream id (matches the edge's logs).
    pub stream_id: u64,
    /// Client address as reported by the edge.
    pub client_addr: SocketAddr,
    /// TLS server name the client asked for.
    pub sni: String,
}
