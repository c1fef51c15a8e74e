//! `control` audit records: one per operator action (and per refused admin call), naming
//! the action, who acted and their note.

use crate::audit::record::event;
use crate::audit::{AuditRecord, Auditor};

/// The `action` of a record about a control-socket connection refused before any
/// operation was read (see `socket.rs`).
pub const CONNECT: &str = "connect";

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
    pub fn record(&self, action: &'static str, actor: String) -> AuditRecord {
        let mut rec = AuditRecord::new(event::CONTROL);
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
