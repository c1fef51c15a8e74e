//! `control` audit records: one per operator action (and per refused admin call), naming
//! the action, who acted and their note.

use crate::audit::record::{Action, Event};
use crate::audit::{AuditRecord, Auditor};

/// Where one gateway's `control` records go.
#[derive(Debug, Clone)]
pub struct ControlAudit {
    auditor: Auditor,
    tunnel: String,
}

impl ControlAudit {
    /// Records of `tunnel`'s gateway, written to `auditor`.
    pub fn new(auditor: Auditor, tunnel: String) -> Self {
        Self { auditor, tunnel }
    }

    /// A `control` record of `action` by `actor`, with the gateway's tunnel id.
    pub fn record(&self, action: Action, actor: String) -> AuditRecord {
        let mut rec = AuditRecord::new(Event::Control);
        rec.tunnel = Some(self.tunnel.clone());
        rec.action = Some(action);
        rec.actor = Some(actor);
        rec
    }

    /// Writes `rec` (never blocks).
    pub fn write(&self, rec: AuditRecord) {
        self.auditor.record(rec);
    }
}
