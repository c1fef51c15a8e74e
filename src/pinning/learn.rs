//! Learning last-seen definitions and reporting the ones that differ from their pin:
//! a warning in the log (tool name and fingerprint only, never the definition), one
//! audit record (`event: "tool"`) and one count per new fingerprint.

use std::sync::Arc;

use serde_json::Value;
use tracing::{info, warn};

use super::fetch::{list_tools, FetchError};
use super::store::Change;
use super::{PinMode, PinStatus, Pins};
use crate::audit::record::{event, AuditRecord};
use crate::audit::Auditor;
use crate::gateway::metrics::GatewayMetrics;
use crate::gateway::route::Route;
use crate::gateway::GatewayShared;
use crate::mcp::ToolSink;

/// Where reports go; cheap to clone into a response body.
#[derive(Clone)]
pub struct Reporter {
    pins: Arc<Pins>,
    auditor: Auditor,
    metrics: Arc<GatewayMetrics>,
    tunnel: String,
}

impl Reporter {
    /// The reporter of the running gateway.
    pub fn of(shared: &GatewayShared) -> Self {
        Self {
            pins: shared.pins.clone(),
            auditor: shared.auditor.clone(),
            metrics: shared.metrics.clone(),
            tunnel: shared.tunnel.clone(),
        }
    }

    /// Records one page (or, `complete`, a whole listing) of `route`'s tools and reports
    /// what is new.
    pub fn observe(&self, route: &str, upstream: &str, tools: &[Value], complete: bool) {
        for change in self.pins.observe(route, tools, complete) {
            self.report(route, upstream, &change);
        }
    }

    fn report(&self, route: &str, upstream: &str, c: &Change) {
        let (word, reason) = match c.status {
            PinStatus::Changed => ("changed", "tool_definition_changed"),
            _ => ("new", "tool_definition_new"),
        };
        warn!(route, tool = %c.tool, fingerprint = %c.fingerprint, change = word, "tool definition differs from its pin");
        self.metrics.tool_definition_change(route, word);
        if self.auditor.is_enabled() {
            self.auditor.record(AuditRecord {
                tunnel: Some(self.tunnel.clone()),
                route: Some(route.to_owned()),
                upstream: Some(upstream.to_owned()),
                jsonrpc_method: Some("tools/list".to_owned()),
                tool: Some(c.tool.clone()),
                tool_fingerprint: Some(c.fingerprint.clone()),
                pin: Some(c.status.as_str()),
                reason: Some(reason),
                ..AuditRecord::new(event::TOOL)
            });
        }
    }
}

/// For a `tools/list` response on a route with pinning on: the sink the response
/// inspector hands each page's `result.tools` to.
pub fn sink(shared: &GatewayShared, route: &Route) -> Option<ToolSink> {
    if route.controls.pinning.mode == PinMode::Off {
        return None;
    }
    let reporter = Reporter::of(shared);
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
    let lock = reporter.pins.fetch_lock(&route.name);
    let _one = lock.lock().await;
    if !needed() {
        return Ok(0);
    }
    let tools = match list_tools(route, &route.controls.pinning.fetch_path).await {
        Ok(tools) => tools,
        Err(e) => {
            reporter.pins.fresh.failed(&route.name, route.client.connections_opened());
            return Err(e);
        }
    };
    reporter.observe(&route.name, &route.upstream_label(), &tools, true);
    reporter.pins.fresh.listed(&route.name, route.client.connections_opened());
    Ok(tools.len())
}

/// At start: lists the tools of every HTTP route with pinning on, in the background.
pub fn refresh_all(shared: &Arc<GatewayShared>) {
    for route in shared.routes().routes() {
        if route.controls.pinning.mode == PinMode::Off {
            continue;
        }
        // The change counters of a pinning route start at 0, so `increase()` sees the first.
        shared.metrics.tool_definition_changes_start(&route.name);
        if route.stdio.is_some() {
            continue;
        }
        let (reporter, route) = (Reporter::of(shared), route.clone());
        tokio::spawn(async move {
            match refresh(&reporter, &route).await {
                Ok(n) => info!(route = %route.name, tools = n, "tool definitions listed"),
                Err(e) => {
                    warn!(route = %route.name, "cannot list the upstream's tools (learning from client traffic): {e}")
                }
            }
        });
    }
}
