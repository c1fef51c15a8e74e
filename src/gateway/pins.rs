//! The pinning stage of the request path (state and reports: `crate::pinning`).
//!
//! The check on every `tools/call` of a route with pinning on, after the route's policy:
//! the audit record gets the tool's last-seen fingerprint and pin status, and with
//! `enforce` a call whose tool is not pinned as last seen is refused (the upstream never
//! sees it).
//!
//! Before deciding, `enforce` makes sure the listing it judges by is fresh (`pinning::fresh`):
//! when the gateway's own listing is stale (none yet, `list_changed`, a new upstream
//! connection, older than `pinning_refresh`) or the tool was never seen, the gateway lists
//! the upstream's tools itself first, within the route's timeout (one listing per route at
//! a time; concurrent calls wait for it and reuse it), then decides. A listing that fails
//! leaves the last-seen definitions in place; a tool still unknown is refused, since nobody
//! can have reviewed it. `warn` re-lists a stale route in the background instead.
//!
//! Stdio routes are not listed by the gateway (each session is its own child), so there
//! an unknown tool is refused until a client lists tools.

use std::sync::Arc;

use serde_json::Value;
use tracing::{debug, info, warn};

use super::route::Route;
use super::trail::Trail;
use super::GatewayShared;
use crate::mcp::{MessageInfo, RequestInfo, ToolSink};
use crate::pinning::fetch::{list_tools, FetchError, Upstream};
use crate::pinning::learn::Reporter;
use crate::pinning::{PinMode, PinStatus};

/// Why `enforce` refused a call: `(why, message)`.
pub type PinRefusal = (PinDenial, String);

/// What `enforce` found wrong with a called tool: the audit `reason` and the
/// `policy_denials_total` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinDenial {
    /// Its definition is not the pinned one.
    Changed,
    /// It was seen, never pinned.
    NotPinned,
    /// The gateway has not seen it in the route's tool list.
    Unknown,
}

impl PinDenial {
    /// The reason word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Changed => "tool_changed",
            Self::NotPinned => "tool_not_pinned",
            Self::Unknown => "tool_unknown",
        }
    }
}

/// Checks the `tools/call` messages of one request (see the module docs).
pub async fn check(shared: &GatewayShared, route: &Route, info: &RequestInfo, trail: &mut Trail) -> Option<PinRefusal> {
    let mode = route.controls.pinning.mode;
    if mode == PinMode::Off {
        return None;
    }
    let calls = info.messages.iter().filter_map(MessageInfo::called_tool);
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
            let reporter = reporter(shared);
            let why = stale();
            let needed = || stale().is_some() || shared.pins.status(&route.name, tool).0 == PinStatus::Unknown;
            match refresh_if(&reporter, route, needed).await {
                Ok(_) => debug!(route = %route.name, tool, ?why, "listed the upstream's tools before a call"),
                Err(e) => warn!(route = %route.name, tool, "cannot list the upstream's tools: {e}"),
            }
            (status, fp) = shared.pins.status(&route.name, tool);
        }
        trail.pin(tool, fp.clone(), status);
        if mode != PinMode::Enforce || refusal.is_some() {
            continue;
        }
        refusal = match status {
            PinStatus::Pinned => None,
            PinStatus::Changed => Some((
                PinDenial::Changed,
                format!(
                    "tool {tool} changed since it was pinned (now {}); an operator must review and re-pin it",
                    fp.as_deref().unwrap_or("?")
                ),
            )),
            PinStatus::Unpinned => {
                Some((PinDenial::NotPinned, format!("tool {tool} has not been pinned on this route")))
            }
            PinStatus::Unknown => Some((
                PinDenial::Unknown,
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
    let (reporter, route) = (reporter(shared), route.clone());
    shared.tasks.spawn_best_effort(async move {
        if let Err(e) = refresh(&reporter, &route).await {
            warn!(route = %route.name, "cannot list the upstream's tools: {e}");
        }
    });
}

/// The pinning reporter of the running gateway.
pub fn reporter(shared: &GatewayShared) -> Reporter {
    Reporter::new(shared.pins.clone(), shared.auditor.clone(), shared.metrics.pins.clone(), shared.tunnel.clone())
}

/// For a `tools/list` response on a route with pinning on: the sink the response
/// inspector hands each page's `result.tools` to.
pub fn sink(shared: &GatewayShared, route: &Route) -> Option<ToolSink> {
    if route.controls.pinning.mode == PinMode::Off {
        return None;
    }
    let reporter = reporter(shared);
    let (name, upstream) = (route.name.clone(), route.upstream_label());
    Some(Box::new(move |tools: &[Value]| reporter.observe(&name, &upstream, tools, false)))
}

/// Lists `route`'s tools itself and records them (one listing per route at a time).
/// Returns how many tools it saw.
pub async fn refresh(reporter: &Reporter, route: &Route) -> Result<usize, FetchError> {
    refresh_if(reporter, route, || true).await
}

/// Like [`refresh`], if `needed` still holds once this caller's turn comes (a listing
/// that finished meanwhile may have made it unnecessary; then `Ok(0)`).
pub async fn refresh_if(reporter: &Reporter, route: &Route, needed: impl Fn() -> bool) -> Result<usize, FetchError> {
    if route.stdio.is_some() {
        return Err(FetchError::Stdio(route.name.clone()));
    }
    let pins = reporter.pins();
    let lock = pins.fetch_lock(&route.name);
    let _one = lock.lock().await;
    if !needed() {
        return Ok(0);
    }
    let upstream = Upstream { target: &route.upstream, client: &route.client, timeout: route.timeout };
    let tools = match list_tools(&upstream, &route.controls.pinning.fetch_path).await {
        Ok(tools) => tools,
        Err(e) => {
            pins.fresh.failed(&route.name, route.client.connections_opened());
            return Err(e);
        }
    };
    reporter.observe(&route.name, &route.upstream_label(), &tools, true);
    pins.fresh.listed(&route.name, route.client.connections_opened());
    Ok(tools.len())
}

/// At start: lists the tools of every HTTP route with pinning on, in the background.
pub fn refresh_all(shared: &Arc<GatewayShared>) {
    for route in shared.routes().routes() {
        if route.controls.pinning.mode == PinMode::Off {
            continue;
        }
        shared.metrics.pins.start(&route.name);
        if route.stdio.is_some() {
            continue;
        }
        let (reporter, route) = (reporter(shared), route.clone());
        shared.tasks.spawn_best_effort(async move {
            match refresh(&reporter, &route).await {
                Ok(n) => info!(route = %route.name, tools = n, "tool definitions listed"),
                Err(e) => {
                    warn!(route = %route.name, "cannot list the upstream's tools (learning from client traffic): {e}")
                }
            }
        });
    }
}
