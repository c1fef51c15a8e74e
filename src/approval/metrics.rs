//! Approval metrics (documented in docs/metrics.md): calls waiting now (all routes; an
//! unlabelled series exists from the start, where a per-route one would appear only once a
//! call waits) and how waits ended, by outcome.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::stats::{labels, Labels};

/// `outcome` values of `approval_decisions_total`.
pub const OUTCOMES: [&str; 5] = ["approved", "denied", "expired", "cancelled", "refused"];

/// The approval metric families (cheap to clone: they share their values).
#[derive(Debug, Clone, Default)]
pub struct ApprovalMetrics {
    pending: Gauge,
    decisions: Family<Labels, Counter>,
}

impl ApprovalMetrics {
    /// Registers both families; every outcome starts at 0.
    pub fn register(&self, registry: &mut Registry) {
        for outcome in OUTCOMES {
            let _ = self.decisions.get_or_create(&labels(&[("outcome", outcome)]));
        }
        registry.register("approvals_pending", "Tool calls waiting for approval", self.pending.clone());
        registry.register("approval_decisions", "Approval waits ended, by outcome", self.decisions.clone());
    }

    /// Moves the pending gauge by `delta`.
    pub fn pending(&self, delta: i64) {
        self.pending.inc_by(delta);
    }

    /// Counts a wait that ended with `outcome` (one of [`OUTCOMES`]).
    pub fn decided(&self, outcome: &'static str) {
        self.decisions.get_or_create(&labels(&[("outcome", outcome)])).inc();
    }
}
