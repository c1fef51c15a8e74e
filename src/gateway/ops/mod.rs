//! The control operations of the running gateway: the [`Operator`] the control socket and
//! the admin API serve (`crate::control`). Each operation is owned by its feature's state;
//! this module only finds what an operation needs (routes, the audit trail) and calls it.
//!
//! - `status`: kill state and the route names ([`kill`]).
//! - `kill`, `resume`: the kill switch ([`kill`]).
//! - `approvals.*`: `crate::approval::control`.
//! - `tools.*`: tool-definition pinning ([`tools`]).
//!
//! The arguments of each are the fields of its [`ControlOp`] variant.

pub mod kill;
pub mod tools;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::GatewayShared;
use crate::control::audit::ControlAudit;
use crate::control::{Caller, ControlOp, OpResult, Operator};

/// The gateway as the control plane sees it.
pub struct GatewayOps(pub Arc<GatewayShared>);

impl Operator for GatewayOps {
    fn run<'a>(&'a self, caller: &'a Caller, op: &'a ControlOp) -> Pin<Box<dyn Future<Output = OpResult> + Send + 'a>> {
        Box::pin(dispatch(&self.0, caller, op))
    }
}

/// Where the gateway's `control` records go.
pub fn control_audit(shared: &GatewayShared) -> ControlAudit {
    ControlAudit::new(shared.auditor.clone(), shared.tunnel.clone())
}

/// Runs `op` for `caller`.
async fn dispatch(shared: &Arc<GatewayShared>, caller: &Caller, op: &ControlOp) -> OpResult {
    use crate::approval::control as approvals;
    let audited = |approved, id: &str, reason: &Option<String>| {
        let decision = approvals::Decide { approved, id, reason: reason.as_deref() };
        approvals::decide(&shared.approvals, &shared.auditor, &shared.tunnel, caller, decision)
    };
    match op {
        ControlOp::Status => Ok(kill::status(shared)),
        ControlOp::Kill { route, reason } => kill::kill(shared, caller, route.as_deref(), reason).await,
        ControlOp::Resume { route } => kill::resume(shared, caller, route.as_deref()),
        ControlOp::ApprovalsList => Ok(approvals::list(&shared.approvals)),
        ControlOp::ApprovalsShow { id } => approvals::show(&shared.approvals, id),
        ControlOp::ApprovalsApprove { id, reason } => audited(true, id, reason),
        ControlOp::ApprovalsDeny { id, reason } => audited(false, id, reason),
        ControlOp::ToolsList { route, fetch } => tools::report(shared, route, *fetch, false).await,
        ControlOp::ToolsDiff { route, fetch } => tools::report(shared, route, *fetch, true).await,
        ControlOp::ToolsPin { route, tool, note } => {
            tools::pin(shared, caller, route, tool.as_deref(), note.as_deref()).await
        }
    }
}
