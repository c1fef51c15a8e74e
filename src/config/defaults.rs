//! Defaults for values a gateway config may omit.

use std::time::Duration;

/// Time allowed to connect to an upstream.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for an upstream's response headers (bodies and SSE may run longer).
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// Grace period for in-flight requests at shutdown.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle time after which a client connection is closed (MCP streams can be quiet).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Client connections served at once: the edge's default cap on public connections,
/// so an edge that admits a client also finds the gateway willing to serve it.
pub const MAX_STREAMS: usize = 10_000;
/// QUIC/TLS port of the edge when an address has none.
pub const EDGE_PORT: u16 = 7844;
/// Reconnect backoff bounds.
pub const BACKOFF_BASE: Duration = Duration::from_millis(200);
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How often an `auto` gateway on HTTP/2 retries QUIC.
pub const QUIC_RETRY_INTERVAL: Duration = Duration::from_secs(60);
/// Dead-edge detection: a keep-alive every second, dead after 3 s without an answer
/// (two lost keep-alives in a row are tolerated).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
pub const DEAD_AFTER: Duration = Duration::from_secs(3);
/// Longest `dead_after` (well inside QUIC's idle-timeout range).
pub const DEAD_AFTER_MAX: Duration = Duration::from_secs(600);
/// After a failover, how often a connection checks whether its own edge is back.
pub const REBALANCE_INTERVAL: Duration = Duration::from_secs(30);
