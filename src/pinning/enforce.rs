//! The check on every `tools/call` of a route with pinning on, after the route's policy:
//! the audit record gets the tool's last-seen fingerprint and pin status, and with
//! `enforce` a call whose tool is not pinned as last seen is refused (the upstream never
//! sees it).
//!
//! Before deciding, `enforce` makes sure the listing it judges by is fresh ([`super::fresh`]):
//! when the gateway's own listing is stale (none yet, `list_changed`, a new upstream
//! connection, older than `pinning_refresh`) or the tool was never seen, the gateway lists
//! the upstream's tools itself first, within the route's timeout (one listing per route at
//! a time; concurrent calls wait for it and reuse it), then decides. A listing that fails
//! leaves the last-seen definitions in place; a tool still unknown is refused, since nobody
//! can have reviewed it. `warn` re-lists a stale route in the background instead.
//!
//! Stdio routes are not listed by the gateway (each session is its own child), so there
//! an unknown tool is refused until a client lists tools.

use tracing::{debug, warn};

use super::learn::{refresh, refresh_if, Reporter};
use super::{PinMode, PinStatus};
use crate::gateway::route::Route;
use crate::gateway::trail::Trail;
use crate::gateway::GatewayShared;
use crate::mcp::{MessageKind, RequestInfo};

/// Why `enforce` refused a call: `(reason, message)`; `reason` is the audit `reason` and
/// the `policy_denials_total` label.
pub type Refusal = (&'static str, String);

/// Checks the `tools/call` messages of one request (see the module docs).
pub async fn check(shared: &GatewayShared, route: &Route, info: &RequestInfo, trail: &mut Trail) -> Option<Refusal> {
    let mode = route.controls.pinning.mode;
    if mode == PinMode::Off {
        return None;
    }
    let calls = info
        .messages
        .iter()
        .filter(|m| m.kind == MessageKind::Request && m.method.as_deref() == Some("tools/call"))
        .filter_map(|m| m.tool.as_deref());
    let mut refusal = None;
    let stale = || {
        let connections = route.client.connections_opened();
        shared.pins.fresh.stale(&route.name, connections, route.controls.pinning.refresh)
    };
    for tool in calls {
        let (mut status, mut fp) = shared.pins.status(&route.name, tool);
        let listable = route.stdio.is_none();
        if listable && mode == PinMode::Warn && stale().is_some() {
            background_refresh(shared, route);
        }
        if listable && mode == PinMode::Enforce && (status == PinStatus::Unknown || stale().is_some()) {
            let reporter = Reporter::of(shared);
            let why = stale();
            let needed = || stale().is_some() || shared.pins.status(&route.name, tool).0 == PinStatus::Unknown;
            match refresh_if(&reporter, route, needed).await {
                Ok(_) => debug!(route = %route.name, tool, ?why, "listed the upstream's tools before a call"),
                Err(e) => warn!(route = %route.name, tool, "cannot list the upstream's tools: {e}"),
            }
            (status, fp) = shared.pins.status(&route.name, tool);
        }
        trail.pin(tool, fp.clone(), status.as_str());
        if mode != PinMode::Enforce || refusal.is_some() {
            continue;
        }
        refusal = match status {
            PinStatus::Pinned => None,
            PinStatus::Changed => Some((
                "tool_changed",
                format!(
                    "tool {tool} changed since it was pinned (now {}); an operator must review and re-pin it",
                    fp.as_deref().unwrap_or("?")
                ),
            )),
            PinStatus::Unpinned => Some(("tool_not_pinned", format!("tool {tool} has not been pinned on this route"))),
            PinStatus::Unknown => Some((
                "tool_unknown",
                format!("tool {tool} is not in the tool list the gateway has seen from this route's server"),
            )),
        };
    }
    refusal
}

/// `warn`: re-lists a stale route without holding the call (unless a listing runs).
fn background_refresh(shared: &GatewayShared, route: &Route) {
    let lock = shared.pins.fetch_lock(&route.name);
    if lock.try_lock().is_err() {
        return;
    }
    let (reporter, route) = (Reporter::of(shared), route.clone());
    tokio::spawn(async move {
        if let Err(e) = refresh(&reporter, &route).await {
            warn!(route = %route.name, "cannot list the upstream's tools: {e}");
        }
    });
}
