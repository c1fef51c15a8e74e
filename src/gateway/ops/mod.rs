//! The control operations of the running gateway: the [`Operator`] the control socket and
//! the admin API serve (`crate::control`). Each operation is owned by its feature's state;
//! this module only finds what an operation needs (routes, the audit trail) and calls it.
//!
//! - `status`: kill state and the route names ([`kill`]).
//! - `kill`, `resume` (args `route`?, `reason`): the kill switch ([`kill`]).
//! - `approvals.list`, `approvals.show`, `approvals.approve`, `approvals.deny` (args `id`,
//!   `reason`?): `crate::approval::control`.
//! - `tools.list`, `tools.diff`, `tools.pin` (args `route`): tool-definition pinning ([`tools`]).

pub mod kill;
pub mod tools;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value;

use super::GatewayShared;
use crate::control::audit::ControlAudit;
use crate::control::{Caller, ControlError, OpResult, Operator};

/// The gateway as the control plane sees it.
pub struct GatewayOps(pub Arc<GatewayShared>);

impl Operator for GatewayOps {
    fn run<'a>(
        &'a self,
        caller: &'a Caller,
        op: &'a str,
        args: &'a Value,
    ) -> Pin<Box<dyn Future<Output = OpResult> + Send + 'a>> {
        Box::pin(dispatch(&self.0, caller, op, args))
    }
}

/// Where the gateway's `control` records go.
pub fn control_audit(shared: &GatewayShared) -> ControlAudit {
    ControlAudit::new(shared.auditor.clone(), shared.tunnel.clone())
}

/// Runs `op` with `args` for `caller`.
async fn dispatch(shared: &Arc<GatewayShared>, caller: &Caller, op: &str, args: &Value) -> OpResult {
    match op {
        _ if op.starts_with("approvals.") => {
            let op = op.trim_start_matches("approvals.");
            crate::approval::control::handle(&shared.approvals, &shared.auditor, &shared.tunnel, caller, op, args)
        }
        "status" => Ok(kill::status(shared)),
        "kill" => kill::kill(shared, caller, args).await,
        "resume" => kill::resume(shared, caller, args),
        "tools.list" | "tools.diff" | "tools.pin" => tools::handle(shared, caller, op, args).await,
        _ => Err(ControlError::UnknownOp(op.to_owned())),
    }
}
