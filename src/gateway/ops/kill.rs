//! The kill switch's control operations: `kill`, `resume` and the kill part of `status`.

use std::sync::Arc;

use serde_json::{json, Value};
use tracing::warn;

use super::control_audit;
use crate::audit::record::Action;
use crate::control::{Caller, ControlError};
use crate::gateway::GatewayShared;

/// Longest kill reason accepted (it goes into every refusal and the audit trail).
const MAX_REASON: usize = 500;

/// `kill`: stops `route` or everything; returns when the cut is complete.
pub async fn kill(
    shared: &Arc<GatewayShared>,
    caller: &Caller,
    route: Option<&str>,
    reason: &str,
) -> Result<Value, ControlError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.len() > MAX_REASON {
        return Err(ControlError::BadArgs(format!("reason must be 1 to {MAX_REASON} bytes")));
    }
    if let Some(r) = route {
        known_route(shared, r)?;
    }
    let actor = caller.label();
    let report = shared.kill.kill(route, reason, &actor).await;
    let children = end_children(shared, route).await;
    let mut rec = control_audit(shared).record(Action::Kill, actor.clone());
    rec.route = route.map(str::to_owned);
    rec.note = Some(reason.to_owned());
    rec.latency_ms = Some(crate::audit::record::millis(report.elapsed));
    shared.auditor.record(rec);
    let elapsed_ms = (report.elapsed.as_secs_f64() * 1e6).round() / 1e3;
    warn!(route = route.unwrap_or("*"), %actor, cut = report.cut, elapsed_ms, "kill switch: stopped ({reason})");
    Ok(json!({
        "scope": route.unwrap_or("all"),
        "reason": reason,
        "cut": report.cut,
        "remaining": report.remaining,
        "stdio_sessions_ended": children,
        "elapsed_ms": elapsed_ms,
        "persist_error": report.persist_error,
    }))
}

/// `resume`: lifts the stop of `route`, or the whole-gateway stop.
pub fn resume(shared: &Arc<GatewayShared>, caller: &Caller, route: Option<&str>) -> Result<Value, ControlError> {
    let (lifted, persist_error) = shared.kill.resume(route);
    let Some(lifted) = lifted else {
        let what = route.map_or_else(|| "the gateway".to_owned(), |r| format!("route {r}"));
        return Err(ControlError::Conflict(format!("{what} is not stopped (see `ctl status`)")));
    };
    let actor = caller.label();
    let mut rec = control_audit(shared).record(Action::Resume, actor.clone());
    rec.route = route.map(str::to_owned);
    rec.note = Some(format!("lifts the stop of {} by {}: {}", lifted.at, lifted.actor, lifted.reason));
    shared.auditor.record(rec);
    warn!(route = route.unwrap_or("*"), %actor, "kill switch: resumed");
    Ok(json!({
        "scope": route.unwrap_or("all"),
        "lifted": lifted,
        "still_stopped": shared.kill.state(),
        "persist_error": persist_error,
    }))
}

/// `status`: the routes, what is stopped, and each tunnel connection (its edge,
/// transport, uptime, RTT and last error).
pub fn status(shared: &GatewayShared) -> Value {
    let routes: Vec<String> = shared.routes().routes().map(|r| r.name.clone()).collect();
    let connections: Vec<Value> =
        shared.tunnels.iter().enumerate().map(|(index, s)| s.borrow().describe(index)).collect();
    json!({ "routes": routes, "kill": shared.kill.state(), "connections": connections })
}

/// Ends the live stdio sessions of the stopped route(s) and waits until their children
/// are reaped: a stopped route runs nothing. Returns how many sessions ended.
async fn end_children(shared: &GatewayShared, route: Option<&str>) -> usize {
    let mut ending = tokio::task::JoinSet::new();
    for r in shared.routes().routes().filter(|r| route.is_none_or(|name| name == r.name)) {
        if let Some(bridge) = r.stdio.clone() {
            ending.spawn(async move { bridge.end_sessions().await });
        }
    }
    ending.join_all().await.into_iter().sum()
}

fn known_route(shared: &GatewayShared, route: &str) -> Result<(), ControlError> {
    let table = shared.routes();
    if table.routes().any(|r| r.name == route) {
        return Ok(());
    }
    let names: Vec<&str> = table.routes().map(|r| r.name.as_str()).collect();
    Err(ControlError::NotFound(format!("route {route:?} (routes: {})", names.join(", "))))
}
