//! The check on every `tools/call` of a route with pinning on, after the route's policy:
//! the audit record gets the tool's last-seen fingerprint and pin status, and with
//! `enforce` a call whose tool is not pinned as last seen is refused (the upstream never
//! sees it).
//!
//! A tool `enforce` has never seen in a listing (no client listed tools since the start,
//! and the listing at start failed): the gateway lists the upstream's tools itself first,
//! once, within the route's timeout (one listing per route at a time; concurrent calls
//! wait for it), then decides. Still unknown (the upstream does not advertise it, or
//! cannot be listed): refused, since nobody can have reviewed it. Stdio routes are not
//! listed by the gateway, so there an unknown tool is refused until a client lists tools.

use tracing::{debug, warn};

use super::learn::{refresh_if, Reporter};
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
    for tool in calls {
        let (mut status, mut fp) = shared.pins.status(&route.name, tool);
        if status == PinStatus::Unknown && mode == PinMode::Enforce && route.stdio.is_none() {
            let reporter = Reporter::of(shared);
            let unknown = || shared.pins.status(&route.name, tool).0 == PinStatus::Unknown;
            match refresh_if(&reporter, route, unknown).await {
                Ok(_) => debug!(route = %route.name, tool, "listed the upstream's tools for an unseen tool"),
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
