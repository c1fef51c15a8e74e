//! Learning last-seen definitions and reporting the ones that differ from their pin:
//! a warning in the log (tool name and fingerprint only, never the definition), one
//! audit record (`event: "tool"`) and one count per new fingerprint.

use std::sync::Arc;

use serde_json::Value;
use tracing::warn;

use super::metrics::{ChangeKind, PinMetrics};
use super::store::Change;
use super::{PinStatus, Pins};
use crate::audit::record::{AuditRecord, Event};
use crate::audit::Auditor;

/// Where reports go; cheap to clone into a response body.
#[derive(Clone)]
pub struct Reporter {
    pins: Arc<Pins>,
    auditor: Auditor,
    metrics: PinMetrics,
    tunnel: String,
}

impl Reporter {
    /// Reports of `tunnel`'s gateway go to `auditor` and `metrics`.
    pub fn new(pins: Arc<Pins>, auditor: Auditor, metrics: PinMetrics, tunnel: String) -> Self {
        Self { pins, auditor, metrics, tunnel }
    }

    /// The store it records into.
    pub fn pins(&self) -> &Arc<Pins> {
        &self.pins
    }

    /// Records one page (or, `complete`, a whole listing) of `route`'s tools and reports
    /// what is new.
    pub fn observe(&self, route: &str, upstream: &str, tools: &[Value], complete: bool) {
        for change in self.pins.observe(route, tools, complete) {
            self.report(route, upstream, &change);
        }
    }

    fn report(&self, route: &str, upstream: &str, c: &Change) {
        let (kind, reason) = match c.status {
            PinStatus::Changed => (ChangeKind::Changed, "tool_definition_changed"),
            _ => (ChangeKind::New, "tool_definition_new"),
        };
        let change = kind.as_str();
        warn!(route, tool = %c.tool, fingerprint = %c.fingerprint, change, "tool definition differs from its pin");
        self.metrics.change(route, kind);
        if self.auditor.is_enabled() {
            self.auditor.record(AuditRecord {
                tunnel: Some(self.tunnel.clone()),
                route: Some(route.to_owned()),
                upstream: Some(upstream.to_owned()),
                jsonrpc_method: Some("tools/list".to_owned()),
                tool: Some(c.tool.clone()),
                tool_fingerprint: Some(c.fingerprint.clone()),
                pin: Some(c.status),
                reason: Some(reason),
                ..AuditRecord::new(Event::Tool)
            });
        }
    }
}
