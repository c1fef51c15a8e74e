//! The approval stage of the request path: a `tools/call` of a gated tool is registered
//! with the approvals registry (`crate::approval`), waits for a decision (or its timeout),
//! and only then goes on (`super::onward`); a denied or expired call is answered with a
//! JSON-RPC error and never reaches the upstream.
//!
//! A client that accepts `text/event-stream` gets `200 text/event-stream` at once and
//! comment lines while it waits (`crate::approval::body`); any other client's request simply stays
//! open. Either way, the client going away drops the waiting future, and with it the
//! `Waiting` guard, which withdraws the call and records it as `cancelled`.
//!
//! A batch containing a gated call is refused whole (JSON-RPC -32013): holding one
//! message of a batch while answering the others is not expressible in one HTTP response.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::header;
use http::{Response, StatusCode};
use serde_json::json;
use tokio::time::Instant;
use tracing::info;

use super::onward::Onward;
use super::outcome::{refuse, ApprovalEnd, Refusal, Unwaitable};
use super::respond::{full, ClientBody};
use super::route::Route;
use super::trail::Trail;
use super::GatewayShared;
use crate::approval::body::held_response;
use crate::approval::metrics::{ApprovalMetrics, WaitOutcome};
use crate::approval::registry::{PendingCall, Ticket};
use crate::approval::{ApprovalGate, Approvals};
use crate::audit::record::Approval;
use crate::mcp::{error_body, jsonrpc, redact, RequestInfo};

/// The route's gate, when the request calls a tool it gates.
pub fn gate_for(route: &Route, info: &RequestInfo) -> Option<Arc<ApprovalGate>> {
    let gate = route.controls.approval.as_ref()?;
    let gated = info.messages.iter().any(|m| m.called_tool().is_some_and(|t| gate.gates(t)));
    gated.then(|| gate.clone())
}

/// Holds the call until it is decided, then forwards it or answers the refusal.
pub async fn hold(
    shared: &GatewayShared,
    gate: Arc<ApprovalGate>,
    onward: Onward,
    trail: Trail,
) -> Response<ClientBody> {
    let approvals: &Arc<Approvals> = &shared.approvals;
    let metrics = approvals.metrics().clone();
    let info = &onward.info;
    let single = match info.messages.as_slice() {
        [m] if !info.batch => m,
        _ => {
            let message = "a tools/call that needs approval must be sent on its own, not in a batch";
            return unavailable(shared, trail, &onward, Unwaitable::Batch, message);
        }
    };
    let id = match approvals.new_id() {
        Ok(id) => id,
        Err(e) => return unavailable(shared, trail, &onward, Unwaitable::NoId, &e.to_string()),
    };
    let route = &onward.route;
    let now = SystemTime::now();
    let call = PendingCall {
        id: id.clone(),
        route: route.name.clone(),
        tool: single.tool.clone().unwrap_or_default(),
        arguments: single.arguments.as_ref().map(|a| redact(a, &gate.visible_arguments, route.controls.redact_mode)),
        created: now,
        deadline: now + gate.timeout,
        client_addr: onward.conn.client_addr.to_string(),
        identity: trail.identity_label().map(str::to_owned),
        // Shown to approvers and webhooks: the hash, never the id (a capability).
        session_id: info.session_id.as_deref().map(crate::audit::record::session_hash),
        jsonrpc_id: single.id.clone(),
    };
    let ticket = match approvals.register(call, gate.max_pending) {
        Ok(t) => t,
        Err(e) => return unavailable(shared, trail, &onward, Unwaitable::QueueFull, &e.to_string()),
    };
    info!(approval = %id, route = %route.name, tool = %ticket.call().tool, "tool call waiting for approval");
    if let Some(hook) = &gate.webhook {
        hook.notify(ticket.call(), &shared.tasks);
    }
    let sse = accepts_sse(&onward.parts.headers);
    let request_id = single.id.clone();
    let waiting = Waiting { ticket: Some(ticket), trail: Some(trail), since: Instant::now(), metrics, sse };
    let decided = decide(waiting, onward, gate.timeout);
    if sse {
        return held_response(&id, gate.keepalive, request_id, Box::pin(decided));
    }
    decided.await
}

/// Whether the client accepts an SSE response.
fn accepts_sse(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/event-stream"))
}

/// A call waiting for its decision. Dropped before [`Waiting::finish`] (the client went
/// away), it withdraws the call and records it as cancelled.
struct Waiting {
    ticket: Option<Ticket>,
    trail: Option<Trail>,
    since: Instant,
    metrics: ApprovalMetrics,
    sse: bool,
}

impl Waiting {
    fn finish(&mut self) -> Option<(Ticket, Trail)> {
        Some((self.ticket.take()?, self.trail.take()?))
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let Some((ticket, mut trail)) = self.finish() else { return };
        let id = ticket.call().id.clone();
        drop(ticket);
        self.metrics.decided(WaitOutcome::Cancelled);
        info!(approval = %id, "client went away while its tool call waited for approval");
        trail.approval(Approval::Cancelled, &id, None, self.since.elapsed());
        // 499 (as nginx): the client closed the request before an answer; an SSE client
        // had already received 200.
        trail.abort(if self.sse { 200 } else { 499 }, "approval_cancelled");
    }
}

/// Waits for the decision or the deadline, then forwards or refuses.
async fn decide(mut waiting: Waiting, onward: Onward, timeout: Duration) -> Response<ClientBody> {
    let deadline = waiting.since + timeout;
    let decision = match waiting.ticket.as_mut() {
        Some(ticket) => tokio::select! {
            d = ticket.decision() => d,
            () = tokio::time::sleep_until(deadline) => ticket.expire(),
        },
        None => None,
    };
    let waited = waiting.since.elapsed();
    let metrics = waiting.metrics.clone();
    let Some((ticket, mut trail)) = waiting.finish() else {
        let body = error_body(None, jsonrpc::INTERNAL_ERROR, "approval state lost", None);
        return full(StatusCode::OK, "application/json", body);
    };
    let call = ticket.call().clone();
    drop(ticket);
    match decision {
        Some(d) if d.approved => {
            metrics.decided(WaitOutcome::Approved);
            info!(approval = %call.id, approver = %d.approver, "tool call approved");
            trail.approval(Approval::Approved, &call.id, Some(&d.approver), waited);
            onward.deliver(trail, Instant::now()).await
        }
        Some(d) => {
            metrics.decided(WaitOutcome::Denied);
            info!(approval = %call.id, approver = %d.approver, "tool call denied");
            trail.approval(Approval::Denied, &call.id, Some(&d.approver), waited);
            let reason = d.reason.unwrap_or_else(|| "no reason given".to_owned());
            let message = format!("tool call {} denied by an approver (approval {}): {reason}", call.tool, call.id);
            let data = json!({ "approval_id": call.id, "reason": reason });
            let refusal = Refusal::ApprovalDecided { end: ApprovalEnd::Denied, message, data };
            refuse(&onward.metrics, &onward.route.name, trail, &refusal, Some(&onward.info))
        }
        None => {
            metrics.decided(WaitOutcome::Expired);
            info!(approval = %call.id, "tool call approval expired");
            trail.approval(Approval::Expired, &call.id, None, waited);
            let reason = format!("no decision within {}s", timeout.as_secs());
            let message = format!("tool call {} expired waiting for approval {}: {reason}", call.tool, call.id);
            let data = json!({ "approval_id": call.id, "reason": reason });
            let refusal = Refusal::ApprovalDecided { end: ApprovalEnd::Expired, message, data };
            refuse(&onward.metrics, &onward.route.name, trail, &refusal, Some(&onward.info))
        }
    }
}

/// Refuses a gated call that cannot wait: one error per request in the body.
fn unavailable(
    shared: &GatewayShared,
    mut trail: Trail,
    onward: &Onward,
    why: Unwaitable,
    message: &str,
) -> Response<ClientBody> {
    shared.approvals.metrics().decided(WaitOutcome::Refused);
    trail.approval_state(Approval::Denied);
    let refusal = Refusal::ApprovalUnavailable { why, message: message.to_owned() };
    refuse(&shared.metrics, &onward.route.name, trail, &refusal, Some(&onward.info))
}
