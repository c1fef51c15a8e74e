//! Pinning's metric (documented in docs/metrics.md): tool definitions seen that differ
//! from their pin, by route and change.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::stats::{labels, Labels};

/// How a definition differs from its pin: the `change` label of
/// `tool_definition_changes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// The tool is pinned, and its definition is another one.
    Changed,
    /// The tool was never pinned.
    New,
}

impl ChangeKind {
    /// Both kinds, each exported from the start.
    pub const ALL: [ChangeKind; 2] = [Self::Changed, Self::New];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Changed => "changed",
            Self::New => "new",
        }
    }
}

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

    /// Counts a tool definition first seen differing from its pin.
    pub fn change(&self, route: &str, change: ChangeKind) {
        self.changes.get_or_create(&labels(&[("route", route), ("change", change.as_str())])).inc();
    }

    /// Exports a pinning route's change counters at zero, so `increase()` sees the first.
    pub fn start(&self, route: &str) {
        for change in ChangeKind::ALL {
            let _ = self.changes.get_or_create(&labels(&[("route", route), ("change", change.as_str())]));
        }
    }
}
