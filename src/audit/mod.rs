//! The audit trail: one JSON line per MCP request/response pair (and per non-MCP request
//! or config change), written to stdout or a rotated file, apart from the diagnostic log.
//!
//! The request path only calls [`Auditor::record`], which queues the record without
//! blocking; a writer task encodes and writes it. When the queue is full the record is
//! dropped and counted ([`AuditMetrics::dropped`]): auditing never stalls a request.
//!
//! - [`record`]: the record's fields.
//! - [`values`]: the closed sets of words some fields hold (`event`, `decision`, …).
//! - [`sink`]: stdout or a size-rotated file, and the errors naming it.
//! - [`writer`]: the queue, the writer task and its shutdown.

pub mod record;
pub mod sink;
pub mod values;
pub mod writer;

pub use record::AuditRecord;
pub use sink::{AuditError, SinkConfig};
pub use writer::{AuditTask, Auditor};

use crate::stats::Counter;
use prometheus_client::registry::Registry;

/// The audit writer's counters. After [`AuditTask::shutdown`], every record passed to
/// [`Auditor::record`] is counted in exactly one of them.
#[derive(Debug, Clone, Default)]
pub struct AuditMetrics {
    /// Records written to the sink.
    pub written: Counter,
    /// Records discarded because the queue was full (or the writer had shut down).
    pub dropped: Counter,
    /// Records lost because the sink failed to write them (disk full, file removed, …).
    pub write_errors: Counter,
}

impl AuditMetrics {
    /// Registers the counters. In the gateway's registry (prefix `mcp_tunnel_gateway`)
    /// they read `mcp_tunnel_gateway_audit_records_written_total`,
    /// `…_audit_records_dropped_total` and `…_audit_write_errors_total`.
    pub fn register(&self, registry: &mut Registry) {
        self.written.register(registry, "audit_records_written", "Audit records written to the sink");
        self.dropped.register(registry, "audit_records_dropped", "Audit records dropped because the queue was full");
        self.write_errors.register(registry, "audit_write_errors", "Audit records lost to sink write errors");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_exported_under_the_gateway_prefix() {
        let metrics = AuditMetrics::default();
        let mut registry = Registry::with_prefix("mcp_tunnel_gateway");
        metrics.register(&mut registry);
        metrics.dropped.add(3);
        let text = crate::stats::render(&registry);
        assert!(text.contains("mcp_tunnel_gateway_audit_records_written_total 0"), "{text}");
        assert!(text.contains("mcp_tunnel_gateway_audit_records_dropped_total 3"), "{text}");
        assert!(text.contains("mcp_tunnel_gateway_audit_write_errors_total 0"), "{text}");
    }
}
