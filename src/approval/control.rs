//! The `approvals.*` control operations (socket and admin API alike):
//! - `approvals.list` → `{"approvals": [call, ...]}`, oldest first;
//! - `approvals.show` (`id`) → the call;
//! - `approvals.approve` (`id`, `reason`?) and `approvals.deny` (`id`, `reason`) → the
//!   call and the decision. Each decision writes an `event: "control"` audit record.

use serde_json::{json, Value};

use super::registry::{Approvals, DecideError, Decision};
use crate::audit::record::{Action, AuditRecord, Event};
use crate::audit::Auditor;
use crate::control::{Caller, ControlError};

/// `approvals.list`.
pub fn list(approvals: &Approvals) -> Value {
    let calls: Vec<Value> = approvals.list().iter().map(|c| c.to_json()).collect();
    json!({ "approvals": calls })
}

/// `approvals.show`.
pub fn show(approvals: &Approvals, id: &str) -> Result<Value, ControlError> {
    approvals.get(id).map(|c| c.to_json()).ok_or_else(|| not_found(id))
}

/// What `approvals.approve` or `approvals.deny` asks.
#[derive(Debug, Clone, Copy)]
pub struct Decide<'a> {
    /// Approve (else deny).
    pub approved: bool,
    /// The approval id.
    pub id: &'a str,
    /// Why; a deny needs one.
    pub reason: Option<&'a str>,
}

/// `approvals.approve` or `approvals.deny`; the decision is audited as `tunnel`'s.
pub fn decide(
    approvals: &Approvals,
    auditor: &Auditor,
    tunnel: &str,
    caller: &Caller,
    ask: Decide<'_>,
) -> Result<Value, ControlError> {
    let Decide { approved, id, reason } = ask;
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if !approved && reason.is_none() {
        return Err(ControlError::BadArgs("deny needs a reason (it is sent to the caller and audited)".into()));
    }
    let decision = Decision { approved, approver: caller.label(), reason: reason.map(str::to_owned) };
    let call = approvals.decide(id, decision).map_err(|DecideError::NotFound(id)| not_found(&id))?;
    let action = if approved { Action::Approve } else { Action::Deny };
    auditor.record(AuditRecord {
        tunnel: Some(tunnel.to_owned()),
        route: Some(call.route.clone()),
        tool: Some(call.tool.clone()),
        approval_id: Some(call.id.clone()),
        action: Some(action),
        actor: Some(caller.label()),
        note: reason.map(str::to_owned),
        ..AuditRecord::new(Event::Control)
    });
    let decision = if approved { "approved" } else { "denied" };
    Ok(json!({ "call": call.to_json(), "decision": decision, "approver": caller.label(), "reason": reason }))
}

fn not_found(id: &str) -> ControlError {
    ControlError::NotFound(format!(
        "no call is waiting for approval with id {id} (already decided, expired, cancelled, or never existed)"
    ))
}
