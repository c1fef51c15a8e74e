//! The `approvals.*` control operations (socket and admin API alike):
//! - `approvals.list` → `{"approvals": [call, ...]}`, oldest first;
//! - `approvals.show` (`id`) → the call;
//! - `approvals.approve` (`id`, `reason`?) and `approvals.deny` (`id`, `reason`) → the
//!   call and the decision. Each decision writes an `event: "control"` audit record.

use serde_json::{json, Value};

use super::registry::{Approvals, DecideError, Decision};
use crate::audit::record::{event, AuditRecord};
use crate::audit::Auditor;
use crate::control::{arg_str, opt_str, Caller, ControlError};

/// Runs one `approvals.*` operation (`op` without the prefix); decisions are audited as
/// `tunnel`'s.
pub fn handle(
    approvals: &Approvals,
    auditor: &Auditor,
    tunnel: &str,
    caller: &Caller,
    op: &str,
    args: &Value,
) -> Result<Value, ControlError> {
    match op {
        "list" => {
            let calls: Vec<Value> = approvals.list().iter().map(|c| c.to_json()).collect();
            Ok(json!({ "approvals": calls }))
        }
        "show" => {
            let id = arg_str(args, "id")?;
            approvals.get(id).map(|c| c.to_json()).ok_or_else(|| not_found(id))
        }
        "approve" | "deny" => {
            let approved = op == "approve";
            let id = arg_str(args, "id")?;
            let reason = opt_str(args, "reason")?.map(str::trim).filter(|r| !r.is_empty());
            if !approved && reason.is_none() {
                return Err(ControlError::BadArgs("deny needs a reason (it is sent to the caller and audited)".into()));
            }
            let decision = Decision { approved, approver: caller.label(), reason: reason.map(str::to_owned) };
            let call = approvals.decide(id, decision).map_err(|DecideError::NotFound(id)| not_found(&id))?;
            let action = if approved { "approve" } else { "deny" };
            auditor.record(AuditRecord {
                tunnel: Some(tunnel.to_owned()),
                route: Some(call.route.clone()),
                tool: Some(call.tool.clone()),
                approval_id: Some(call.id.clone()),
                action: Some(action),
                actor: Some(caller.label()),
                note: reason.map(str::to_owned),
                ..AuditRecord::new(event::CONTROL)
            });
            let decision = if approved { "approved" } else { "denied" };
            Ok(json!({ "call": call.to_json(), "decision": decision, "approver": caller.label(), "reason": reason }))
        }
        _ => Err(ControlError::UnknownOp(format!("approvals.{op}"))),
    }
}

fn not_found(id: &str) -> ControlError {
    ControlError::NotFound(format!(
        "no call is waiting for approval with id {id} (already decided, expired, cancelled, or never existed)"
    ))
}
