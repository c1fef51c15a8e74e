//! The control operations of tool pinning (the control socket and the admin HTTP API):
//! - `tools.list` {route, fetch?}: pinned and last-seen fingerprint and status per tool;
//! - `tools.diff` {route, fetch?}: the same, with field-by-field changes of every tool
//!   that is not pinned as last seen;
//! - `tools.pin` {route, tool?, note?}: lists the upstream's tools itself, then accepts
//!   the last-seen definitions (all, or one tool) and writes a `control` audit record.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{json, Value};

use crate::audit::record::{format_time, Action, AuditRecord, Event};
use crate::control::{Caller, ControlError};
use crate::gateway::pins::{refresh, reporter};
use crate::gateway::route::Route;
use crate::gateway::GatewayShared;
use crate::pinning::diff::diff;
use crate::pinning::store::{RouteTools, StoreError};
use crate::pinning::PinStatus;

/// `tools.list` (or `tools.diff` when `changes`): the tools of route `name`, after
/// listing the upstream's when `fetch`.
pub async fn report(
    shared: &Arc<GatewayShared>,
    name: &str,
    fetch: Option<bool>,
    changes: bool,
) -> Result<Value, ControlError> {
    let route = find_route(shared, name)?;
    let fetched = match fetch {
        Some(true) => Some(self::fetch(shared, &route).await),
        _ => None,
    };
    let mut out = tools_report(shared, &route, changes);
    if let (Some(f), Some(obj)) = (fetched, out.as_object_mut()) {
        obj.insert(
            "fetch".into(),
            f.map_or_else(|e| json!({"ok": false, "error": e}), |n| json!({"ok": true, "tools": n})),
        );
    }
    Ok(out)
}

/// The route named `name`, or the only route whose name is `name.<domain…>`.
fn find_route(shared: &GatewayShared, name: &str) -> Result<Arc<Route>, ControlError> {
    let table = shared.routes();
    if let Some(r) = table.routes().find(|r| r.name == name) {
        return Ok(r.clone());
    }
    let prefix = format!("{name}.");
    let mut found = table.routes().filter(|r| r.name.starts_with(&prefix) && !r.name.contains('/'));
    match (found.next(), found.next()) {
        (Some(r), None) => Ok(r.clone()),
        (Some(_), Some(_)) => Err(ControlError::BadArgs(format!("route {name:?} is ambiguous: give the full name"))),
        _ => Err(ControlError::NotFound(format!("route {name:?}"))),
    }
}

/// The gateway's own listing (an error for stdio routes, which have none).
async fn fetch(shared: &GatewayShared, route: &Route) -> Result<usize, String> {
    refresh(&reporter(shared), route).await.map_err(|e| e.to_string())
}

/// Every tool pinned or seen on `route`, with changes when `changes`.
fn tools_report(shared: &GatewayShared, route: &Route, changes: bool) -> Value {
    let state = shared.pins.snapshot(&route.name);
    let mut names: Vec<&String> = state.pinned.keys().chain(state.seen.keys()).collect();
    names.sort();
    names.dedup();
    let tools: Vec<Value> = names.into_iter().map(|n| tool_entry(&state, n, changes)).collect();
    json!({
        "route": route.name,
        "mode": route.controls.pinning.mode.as_str(),
        "persistent": shared.pins.persistent(),
        "tools": tools,
    })
}

fn tool_entry(state: &RouteTools, name: &str, changes: bool) -> Value {
    let (status, seen) = state.status(name);
    let pinned = state.pinned.get(name);
    let mut v = json!({
        "tool": name,
        "status": status.as_str(),
        "pinned": pinned.map(|p| p.fingerprint.clone()),
        "seen": seen,
        "pinned_at": pinned.map(|p| p.pinned_at.clone()),
        "pinned_by": pinned.map(|p| p.pinned_by.clone()),
    });
    if changes && status != PinStatus::Pinned {
        let empty = json!({});
        let before = pinned.map_or(&empty, |p| &p.definition);
        let after = state.seen.get(name).map_or(&empty, |s| &s.definition);
        let list: Vec<Value> = diff(before, after).iter().map(|c| c.to_json()).collect();
        if let Some(obj) = v.as_object_mut() {
            obj.insert("changes".into(), Value::Array(list));
        }
    }
    v
}

/// `tools.pin`: pins `tool` (default: every tool) of route `name`.
pub async fn pin(
    shared: &GatewayShared,
    caller: &Caller,
    name: &str,
    tool: Option<&str>,
    note: Option<&str>,
) -> Result<Value, ControlError> {
    let route = find_route(shared, name)?;
    let route = route.as_ref();
    // Pin what the upstream serves now, not what a client happened to list earlier.
    let complete = match route.stdio {
        Some(_) => false,
        None => {
            fetch(shared, route)
                .await
                .map_err(|e| ControlError::Failed(format!("cannot list the tools of route {}: {e}", route.name)))?;
            true
        }
    };
    let actor = caller.label();
    let now = format_time(SystemTime::now()).unwrap_or_default();
    let pinned = shared.pins.pin(&route.name, tool, complete, &actor, &now).map_err(|e| match e {
        StoreError::NotSeen(_) => ControlError::NotFound(e.to_string()),
        StoreError::Write { .. } => ControlError::Failed(e.to_string()),
    })?;
    if shared.auditor.is_enabled() {
        let single = tool.and_then(|t| pinned.iter().find(|(n, _)| n == t));
        shared.auditor.record(AuditRecord {
            tunnel: Some(shared.tunnel.clone()),
            route: Some(route.name.clone()),
            tool: single.map(|(n, _)| n.clone()),
            tool_fingerprint: single.map(|(_, fp)| fp.clone()),
            action: Some(Action::Pin),
            actor: Some(actor),
            note: note.map(str::to_owned),
            ..AuditRecord::new(Event::Control)
        });
    }
    let list: Vec<Value> = pinned.iter().map(|(n, fp)| json!({"tool": n, "fingerprint": fp})).collect();
    Ok(json!({
        "route": route.name,
        "pinned": list,
        "listed": complete,
        "persistent": shared.pins.persistent(),
    }))
}
