//! Pinning's metric (documented in docs/metrics.md): tool definitions seen that differ
//! from their pin, by route and change.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::stats::{labels, Labels};

/// `change` values of `tool_definition_changes_total`.
pub const CHANGES: [&str; 2] = ["changed", "new"];

/// The pinning metric family (cheap to clone: clones share their values).
#[derive(Debug, Clone, Default)]
pub struct PinMetrics {
    changes: Family<Labels, Counter>,
}

impl PinMetrics {
    /// Registers the family.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "tool_definition_changes",
            "Tool definitions seen that differ from their pin",
            self.changes.clone(),
        );
    }

    /// Counts a tool definition first seen differing from its pin (`change`: one of [`CHANGES`]).
    pub fn change(&self, route: &str, change: &'static str) {
        self.changes.get_or_create(&labels(&[("route", route), ("change", change)])).inc();
    }

    /// Exports a pinning route's change counters at zero, so `increase()` sees the first.
    pub fn start(&self, route: &str) {
        for change in CHANGES {
            let _ = self.changes.get_or_create(&labels(&[("route", route), ("change", change)]));
        }
    }
}
