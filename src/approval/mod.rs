//! Approval gates: a `tools/call` of a gated tool waits at the gateway until an operator
//! approves or denies it, or its wait times out; the upstream sees it only once approved.
//!
//! In order:
//! - [`gate`]: a route's `[routes.approval]` settings ([`ApprovalGate`]).
//!
//! The request path's approval stage (register the call, wait, then forward it or answer
//! a JSON-RPC error) is `crate::gateway::hold`: it uses this module, never the other way.
//! - [`body`]: the `text/event-stream` response a waiting SSE client gets at once: comment
//!   lines while it waits, then the upstream's answer.
//! - [`registry`]: the calls waiting now, by approval id ([`Approvals`], in `GatewayShared`
//!   so it outlives config reloads).
//! - [`webhook`]: the optional notice POSTed when a call starts waiting.
//! - [`control`]: the `approvals.*` control operations (`mcp-tunnel approvals` is
//!   `crate::cli::approvals`).
//! - [`metrics`]: pending gauge and decisions counter.

pub mod body;
pub mod control;
pub mod gate;
pub mod metrics;
pub mod registry;
pub mod webhook;

pub use gate::ApprovalGate;
pub use registry::{Approvals, Decision, PendingCall};
