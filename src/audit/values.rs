//! The closed sets of words an [`AuditRecord`](super::AuditRecord) field can hold, as
//! `Copy` enums: a caller cannot misspell a value, and each enum serializes to exactly
//! the word the trail has always carried (the tests below pin every one), so readers of
//! the JSON see no change.

use serde::Serialize;

/// What kind of record this is ([`AuditRecord::event`](super::AuditRecord::event)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// An MCP request/response pair (a JSON-RPC POST, an SSE GET or a session DELETE).
    // The default only so `AuditRecord` can derive `Default`; `AuditRecord::new` names it.
    #[default]
    Mcp,
    /// A request on a route that is not inspected as MCP.
    Http,
    /// A configuration change applied by the running process (reload accepted or rejected).
    Config,
    /// An operator action on the control plane (kill, resume, approve, deny, pin, …).
    Control,
    /// A tool definition the gateway saw that differs from its pin (`pinning` warn/enforce).
    Tool,
}

/// The approval state of a `tools/call` ([`AuditRecord::approval`](super::AuditRecord::approval)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Approval {
    /// The call matched no approval gate.
    NotRequired,
    /// An approver let the call through.
    Approved,
    /// An approver refused the call (or it could not wait for one).
    Denied,
    /// Nobody decided within the wait timeout.
    Expired,
    /// The client went away while the call waited.
    Cancelled,
}

/// How the caller was authenticated ([`AuditRecord::auth`](super::AuditRecord::auth)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Auth {
    /// The route does not authenticate callers.
    None,
    /// An opaque bearer token checked against a configured list.
    Bearer,
    /// A JWT verified against configured keys.
    Jwt,
}

/// Whether the gateway let the request through ([`AuditRecord::decision`](super::AuditRecord::decision)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The request was forwarded upstream.
    Allow,
    /// The gateway answered the request itself with a refusal.
    Deny,
}

/// How the exchange ended ([`AuditRecord::outcome`](super::AuditRecord::outcome)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The response was delivered to the client in full.
    Complete,
    /// The client or the gateway ended the exchange before the response was complete.
    Aborted,
    /// The upstream failed (unreachable, timeout, protocol error) or the gateway answered
    /// with an error of its own.
    Error,
}

/// Which way a message travelled ([`AuditRecord::direction`](super::AuditRecord::direction)):
/// absent for the client's own requests, so the one value is the other way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// A message the server sent toward the client (a refused `sampling/createMessage`).
    ServerToClient,
}

/// How a tool's last-seen definition compares with its pin (the `pin` field; pinning
/// re-exports it as `PinStatus`, the word the CLI and `tools.list` print too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pin {
    /// Last seen as pinned.
    Pinned,
    /// Last seen with another definition than the pinned one.
    Changed,
    /// Seen, never pinned.
    Unpinned,
    /// Never seen in a listing (pinned or not).
    Unknown,
}

impl Pin {
    /// The word, as in the JSON (for the CLI and the control replies).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pinned => "pinned",
            Self::Changed => "changed",
            Self::Unpinned => "unpinned",
            Self::Unknown => "unknown",
        }
    }
}

/// What a `control` record is about ([`AuditRecord::action`](super::AuditRecord::action)):
/// the operator actions the gateway audits, and, for a refused admin call, the control
/// operation it named (the names of `control::op`, which [`Action::operation`] reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The kill switch was set (also the `kill` operation).
    Kill,
    /// The kill switch was lifted (also the `resume` operation).
    Resume,
    /// An approver let a waiting call through.
    Approve,
    /// An approver refused a waiting call.
    Deny,
    /// Tool definitions were pinned.
    Pin,
    /// A control-socket connection was refused before any operation was read.
    Connect,
    /// The `status` operation.
    Status,
    /// The `approvals.list` operation.
    #[serde(rename = "approvals.list")]
    ApprovalsList,
    /// The `approvals.show` operation.
    #[serde(rename = "approvals.show")]
    ApprovalsShow,
    /// The `approvals.approve` operation.
    #[serde(rename = "approvals.approve")]
    ApprovalsApprove,
    /// The `approvals.deny` operation.
    #[serde(rename = "approvals.deny")]
    ApprovalsDeny,
    /// The `tools.list` operation.
    #[serde(rename = "tools.list")]
    ToolsList,
    /// The `tools.diff` operation.
    #[serde(rename = "tools.diff")]
    ToolsDiff,
    /// The `tools.pin` operation.
    #[serde(rename = "tools.pin")]
    ToolsPin,
    /// A refused call named no known operation: what it sent never reaches the trail.
    Unknown,
}

impl Action {
    /// The control operations, by their wire names.
    pub const OPERATIONS: [Action; 10] = [
        Self::Status,
        Self::Kill,
        Self::Resume,
        Self::ApprovalsList,
        Self::ApprovalsShow,
        Self::ApprovalsApprove,
        Self::ApprovalsDeny,
        Self::ToolsList,
        Self::ToolsDiff,
        Self::ToolsPin,
    ];

    /// The word, as in the JSON (also the control operation's wire name).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kill => "kill",
            Self::Resume => "resume",
            Self::Approve => "approve",
            Self::Deny => "deny",
            Self::Pin => "pin",
            Self::Connect => "connect",
            Self::Status => "status",
            Self::ApprovalsList => "approvals.list",
            Self::ApprovalsShow => "approvals.show",
            Self::ApprovalsApprove => "approvals.approve",
            Self::ApprovalsDeny => "approvals.deny",
            Self::ToolsList => "tools.list",
            Self::ToolsDiff => "tools.diff",
            Self::ToolsPin => "tools.pin",
            Self::Unknown => "unknown",
        }
    }

    /// The operation named `op`, or [`Action::Unknown`].
    pub fn operation(op: &str) -> Self {
        Self::OPERATIONS.into_iter().find(|known| known.as_str() == op).unwrap_or(Self::Unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn word<T: Serialize>(v: T) -> Value {
        serde_json::to_value(v).unwrap()
    }

    /// Every value against the string constant it replaced: the trail must not change.
    #[test]
    fn every_value_serializes_to_its_old_word() {
        let cases: Vec<(Value, &str)> = vec![
            (word(Event::Mcp), "mcp"),
            (word(Event::Http), "http"),
            (word(Event::Config), "config"),
            (word(Event::Control), "control"),
            (word(Event::Tool), "tool"),
            (word(Approval::NotRequired), "not_required"),
            (word(Approval::Approved), "approved"),
            (word(Approval::Denied), "denied"),
            (word(Approval::Expired), "expired"),
            (word(Approval::Cancelled), "cancelled"),
            (word(Auth::None), "none"),
            (word(Auth::Bearer), "bearer"),
            (word(Auth::Jwt), "jwt"),
            (word(Decision::Allow), "allow"),
            (word(Decision::Deny), "deny"),
            (word(Outcome::Complete), "complete"),
            (word(Outcome::Aborted), "aborted"),
            (word(Outcome::Error), "error"),
            (word(Direction::ServerToClient), "server_to_client"),
            (word(Pin::Pinned), "pinned"),
            (word(Pin::Changed), "changed"),
            (word(Pin::Unpinned), "unpinned"),
            (word(Pin::Unknown), "unknown"),
            (word(Action::Kill), "kill"),
            (word(Action::Resume), "resume"),
            (word(Action::Approve), "approve"),
            (word(Action::Deny), "deny"),
            (word(Action::Pin), "pin"),
            (word(Action::Connect), "connect"),
            (word(Action::Unknown), "unknown"),
        ];
        for (got, want) in cases {
            assert_eq!(got, json!(want));
        }
    }

    #[test]
    fn as_str_is_the_json_word() {
        for p in [Pin::Pinned, Pin::Changed, Pin::Unpinned, Pin::Unknown] {
            assert_eq!(word(p), json!(p.as_str()));
        }
        let actions = [Action::Approve, Action::Deny, Action::Pin, Action::Connect, Action::Unknown];
        for a in Action::OPERATIONS.into_iter().chain(actions) {
            assert_eq!(word(a), json!(a.as_str()));
        }
    }

    #[test]
    fn operations_keep_their_wire_names() {
        let names: Vec<&str> = Action::OPERATIONS.iter().map(|a| a.as_str()).collect();
        assert_eq!(
            names,
            [
                "status",
                "kill",
                "resume",
                "approvals.list",
                "approvals.show",
                "approvals.approve",
                "approvals.deny",
                "tools.list",
                "tools.diff",
                "tools.pin"
            ]
        );
        assert_eq!(Action::operation("tools.pin"), Action::ToolsPin);
        assert_eq!(Action::operation("approve"), Action::Unknown, "an action that is no operation");
        assert_eq!(Action::operation("x\ny"), Action::Unknown);
    }
}
