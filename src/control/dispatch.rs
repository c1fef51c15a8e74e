//! One control operation, by name, against the running gateway.
//!
//! Operations (each section is owned by its module):
//! - `status`: kill state and pending approval count.
//! - `kill`, `resume` (args `route`?, `reason`): the kill switch.
//! - `approvals.list`, `approvals.show`, `approvals.approve`, `approvals.deny` (args `id`, `reason`?).
//! - `tools.list`, `tools.diff`, `tools.pin` (args `route`): tool-definition pinning.

use std::sync::Arc;

use serde_json::Value;

use super::{Caller, ControlError};
use crate::gateway::GatewayShared;

/// Runs `op` with `args` for `caller`.
pub async fn dispatch(
    shared: &Arc<GatewayShared>,
    caller: &Caller,
    op: &str,
    args: &Value,
) -> Result<Value, ControlError> {
    match op {
        _ if op.starts_with("approvals.") => {
            crate::approval::control::handle(shared, caller, op.trim_start_matches("approvals."), args)
        }
        "status" => Ok(super::kill_ops::status(shared)),
        "kill" => super::kill_ops::kill(shared, caller, args).await,
        "resume" => super::kill_ops::resume(shared, caller, args),
        "tools.list" | "tools.diff" | "tools.pin" => crate::pinning::control::handle(shared, caller, op, args).await,
        _ => Err(ControlError::UnknownOp(op.to_owned())),
    }
}
