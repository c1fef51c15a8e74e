//! mcp-tunnel: an outbound-only tunnel that lets MCP clients outside a private network
//! reach MCP servers inside it.
//!
//! Layout, in the order a request travels:
//! - [`edge`]: the reference tunnel edge (public TCP listener, SNI peek, QUIC to gateways).
//! - [`protocol`]: the `mcpt/1` frames between edge and gateway.
//! - [`stream`]: one tunnel stream as a byte pipe.
//! - [`gateway`]: dial the edge, terminate inner TLS, route, admit, inspect, hold, forward.
//! - [`outbound`]: the one client stack for what the gateway dials inside the network.
//! - [`body`]: the boxed body every relayed message uses, and the gateway's own small answers.
//! - [`mcp`]: MCP-aware building blocks for the proxy (request inspection, SSE, policy, redaction).
//! - [`config`], [`tls`], [`pki`]: configuration files, certificates and keys.
//! - [`audit`]: the audit trail (one JSON line per MCP request), apart from the diagnostic log.
//! - [`auth`]: optional per-route bearer/JWT authentication at the gateway, Origin checks.
//! - [`stdio`]: Streamable HTTP bridged to stdio-only MCP servers, one child per session.
//! - [`demo`]: everything in one process, with an example MCP server and client.
//! - [`approval`]: approval gates (tool calls held until an operator decides).
//! - [`control`]: the control plane (approvals, kill switch, tool pins) over a Unix socket and the admin API.
//! - [`doctor`]: the `doctor` preflight (config, certificates, edge, upstreams).
//! - [`admin`], [`logging`], [`stats`], [`idle`], [`reload`], [`tasks`]: the admin
//!   endpoint, logs, metric helpers, idle timers, config reloads and the background-task
//!   tracker, shared by both roles.
//! - [`cli`]: on top of all the others, the command line: every subcommand's arguments,
//!   what it runs and prints (`main.rs` parses and calls [`cli::run`]).
#![forbid(unsafe_code)]

pub mod admin;
pub mod approval;
pub mod audit;
pub mod auth;
pub mod body;
pub mod cli;
pub mod config;
pub mod control;
pub mod demo;
pub mod doctor;
pub mod edge;
pub mod gateway;
pub mod idle;
pub mod logging;
pub mod mcp;
pub mod outbound;
pub mod pinning;
pub mod pki;
pub mod protocol;
pub mod reload;
pub mod stats;
pub mod stdio;
pub mod stream;
pub mod tasks;
pub mod tls;
pub mod transport;

/// This build's version, sent to the edge in `Hello`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
