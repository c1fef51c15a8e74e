//! Approval metrics (documented in docs/metrics.md): calls waiting now (all routes; an
//! unlabelled series exists from the start, where a per-route one would appear only once a
//! call waits) and how waits ended, by outcome.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::stats::{labels, Labels};

/// How a wait for approval ended: the `outcome` label of `approval_decisions_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    /// An approver let the call through.
    Approved,
    /// An approver refused the call.
    Denied,
    /// Nobody decided within the wait timeout.
    Expired,
    /// The client went away while the call waited.
    Cancelled,
    /// The call could not wait at all (a batch, a full queue).
    Refused,
}

impl WaitOutcome {
    /// Every outcome, each exported from the start.
    pub const ALL: [WaitOutcome; 5] = [Self::Approved, Self::Denied, Self::Expired, Self::Cancelled, Self::Refused];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
            Self::Refused => "refused",
        }
    }
}

/// The approval metric families (cheap to clone: they share their values).
#[derive(Debug, Clone, Default)]
pub struct ApprovalMetrics {
    pending: Gauge,
    decisions: Family<Labels, Counter>,
}

impl ApprovalMetrics {
    /// Registers both families; every outcome starts at 0.
    pub fn register(&self, registry: &mut Registry) {
        for outcome in WaitOutcome::ALL {
            let _ = self.decisions.get_or_create(&labels(&[("outcome", outcome.as_str())]));
        }
        registry.register("approvals_pending", "Tool calls waiting for approval", self.pending.clone());
        registry.register("approval_decisions", "Approval waits ended, by outcome", self.decisions.clone());
    }

    /// Moves the pending gauge by `delta`.
    pub fn pending(&self, delta: i64) {
        self.pending.inc_by(delta);
    }

    /// Counts a wait that ended with `outcome`.
    pub fn decided(&self, outcome: WaitOutcome) {
        self.decisions.get_or_create(&labels(&[("outcome", outcome.as_str())])).inc();
    }
}
