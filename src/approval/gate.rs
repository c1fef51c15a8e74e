//! A route's approval gate (`[routes.approval]`): which tools wait for a human, for how
//! long, how many at once, and what an approver is shown.

use std::sync::Arc;
use std::time::Duration;

use super::webhook::Webhook;
use crate::mcp::Glob;

/// How long a gated call waits for a decision unless configured.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// Calls that may wait on one route at once unless configured.
pub const DEFAULT_MAX_PENDING: usize = 16;
/// How often a waiting SSE client gets a comment line unless configured.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(15);

/// The approval settings of one route.
#[derive(Debug, Clone)]
pub struct ApprovalGate {
    /// Tool names (globs) whose calls need approval.
    pub tools: Vec<Glob>,
    /// How long a call waits before it is refused as expired.
    pub timeout: Duration,
    /// Calls waiting at once on this route; more are refused at once.
    pub max_pending: usize,
    /// Top-level argument keys an approver sees in clear (the rest are redacted as in the
    /// audit trail).
    pub visible_arguments: Vec<String>,
    /// Interval of the SSE comment lines sent to a waiting client.
    pub keepalive: Duration,
    /// Where to POST a notice when a call starts waiting.
    pub webhook: Option<Arc<Webhook>>,
}

impl ApprovalGate {
    /// Whether a call of `tool` needs approval.
    pub fn gates(&self, tool: &str) -> bool {
        self.tools.iter().any(|g| g.matches(tool))
    }
}
