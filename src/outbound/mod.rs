//! Everything the gateway dials inside the private network: upstream MCP servers, the
//! tool listings pinning fetches, approval webhooks. One client stack for all of them, so
//! the allow-list (checked on the resolved address), connect timeout and per-upstream TLS
//! apply to every outbound request alike. Below the gateway and its features: it imports
//! neither.
//!
//! - [`target`]: where a route's requests go (scheme, host, port, TLS).
//! - [`allowlist`]: the networks the gateway may connect to.
//! - [`client`]: the pooled hyper client and its connector.

pub mod allowlist;
pub mod client;
pub mod target;

pub use allowlist::AllowList;
pub use client::{find_upstream_error, UpstreamBody, UpstreamClient, UpstreamError};
pub use target::{Scheme, UpstreamTarget};
