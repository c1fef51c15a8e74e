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
    let _ = (caller, args);
    match op {
        "status" => Ok(serde_json::json!({ "routes": shared.routes().len() })),
        "tools.list" | "tools.diff" | "tools.pin" => crate::pinning::control::handle(shared, caller, op, args).await,
        _ => Err(ControlError::UnknownOp(op.to_owned())),
    }
}
