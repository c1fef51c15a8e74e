//! The gateway's Prometheus metrics (`mcp_tunnel_gateway_*`, documented in
//! docs/metrics.md). Label values are route names, HTTP status codes, transports and
//! fixed reason words: never payloads, hosts from clients, or secrets.

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::respond::Failure;
use crate::audit::AuditMetrics;
use crate::mcp::RequestInfo;
use crate::stats::{self, labels, CertExpiry, Labels};

/// Method names used as label values (MCP 2025-03-26 … 2026-07-28).
const MCP_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "server/discover",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
];

/// `cause` values of `tunnel_disconnects_total` (see `tunnel::run`).
pub const DISCONNECT_CAUSES: [&str; 8] =
    ["lost", "drained", "moved_to_quic", "returned", "shutdown", "rejected", "dial_failed", "killed"];
/// `kind` values of `tunnel_dial_errors_total` (see `DialError::kind`).
pub const DIAL_ERROR_KINDS: [&str; 9] =
    ["resolve", "bind", "connect", "handshake", "http2", "timeout", "protocol", "rejected", "closed"];
/// Tunnel transports.
pub const TRANSPORTS: [&str; 2] = ["quic", "http2"];

fn duration_histogram() -> Histogram {
    // 1 ms .. ~33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Gateway metrics, shared by every stream.
#[derive(Debug)]
pub struct GatewayMetrics {
    registry: Registry,
    /// Requests by route and HTTP status.
    pub requests: Family<Labels, Counter>,
    /// Time to response headers, by route.
    pub request_duration: Family<Labels, Histogram, fn() -> Histogram>,
    /// Failed upstream requests by route and kind (unreachable, forbidden,
    /// connect_timeout, timeout).
    pub upstream_errors: Family<Labels, Counter>,
    /// Tunnel streams served (one per client TLS connection).
    pub streams: Counter,
    /// Tunnel streams being served now.
    pub streams_active: Gauge,
    /// Tunnel streams answered 503 because the tunnel's `max_streams` were in use.
    pub streams_refused: Counter,
    /// Bytes on tunnel streams (inner TLS records) received from clients.
    pub bytes_from_client: stats::Counter,
    /// Bytes on tunnel streams sent to clients.
    pub bytes_to_client: stats::Counter,
    /// Tunnel connections registered with the edge, by transport.
    pub registrations: Family<Labels, Counter>,
    /// Tunnel connection ends (or failed attempts), by cause.
    pub reconnects: Family<Labels, Counter>,
    /// Failed connection attempts, by kind.
    pub dial_errors: Family<Labels, Counter>,
    /// Tunnel connections by transport and state (set at scrape time).
    pub connections: Family<Labels, Gauge>,
    /// Certificate expiry (Unix seconds) by certificate.
    pub cert_expiry: CertExpiry,
    /// MCP messages forwarded, by route and method (known MCP methods only).
    pub mcp_messages: Family<Labels, Counter>,
    /// Requests refused by a route's controls, by route and reason.
    pub policy_denials: Family<Labels, Counter>,
    /// Tool definitions seen that differ from their pin (pinning's own family).
    pub pins: crate::pinning::metrics::PinMetrics,
    /// Audit records written, dropped and lost.
    pub audit: AuditMetrics,
    /// Calls waiting for approval and how their waits ended.
    pub approvals: crate::approval::metrics::ApprovalMetrics,
    /// The kill switch's gauge and counter.
    pub kill: crate::control::metrics::KillMetrics,
}

impl GatewayMetrics {
    /// Creates and registers every metric.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("mcp_tunnel_gateway");
        let stream_bytes = Family::<Labels, Counter>::default();
        let direction =
            |d: &str| stats::Counter::from(stream_bytes.get_or_create(&labels(&[("direction", d)])).clone());
        let m = Self {
            requests: Family::default(),
            request_duration: Family::new_with_constructor(duration_histogram),
            upstream_errors: Family::default(),
            streams: Counter::default(),
            streams_active: Gauge::default(),
            streams_refused: Counter::default(),
            bytes_from_client: direction("from_client"),
            bytes_to_client: direction("to_client"),
            registrations: Family::default(),
            reconnects: Family::default(),
            dial_errors: Family::default(),
            connections: Family::default(),
            cert_expiry: CertExpiry::default(),
            mcp_messages: Family::default(),
            policy_denials: Family::default(),
            pins: Default::default(),
            audit: AuditMetrics::default(),
            approvals: Default::default(),
            kill: Default::default(),
            registry: Registry::default(),
        };
        // Series with fixed label values start at 0, so `increase()` sees their first event.
        for (family, label, values) in [
            (&m.reconnects, "cause", &DISCONNECT_CAUSES[..]),
            (&m.dial_errors, "kind", &DIAL_ERROR_KINDS[..]),
            (&m.registrations, "transport", &TRANSPORTS[..]),
        ] {
            for v in values {
                let _ = family.get_or_create(&labels(&[(label, v)]));
            }
        }
        registry.register("requests", "HTTP requests by route and status", m.requests.clone());
        registry.register("request_duration_seconds", "Time to upstream response headers", m.request_duration.clone());
        registry.register("upstream_errors", "Failed upstream requests by kind", m.upstream_errors.clone());
        registry.register("streams", "Tunnel streams served", m.streams.clone());
        registry.register("streams_active", "Tunnel streams being served", m.streams_active.clone());
        registry.register("streams_refused", "Tunnel streams refused over max_streams", m.streams_refused.clone());
        registry.register("stream_bytes", "Bytes on tunnel streams by direction", stream_bytes);
        registry.register(
            "tunnel_registrations",
            "Tunnel connections registered by transport",
            m.registrations.clone(),
        );
        registry.register("tunnel_disconnects", "Tunnel connection ends by cause", m.reconnects.clone());
        registry.register("tunnel_dial_errors", "Failed tunnel connection attempts by kind", m.dial_errors.clone());
        registry.register("tunnel_connections", "Tunnel connections by transport and state", m.connections.clone());
        m.cert_expiry.register(&mut registry);
        registry.register("mcp_messages", "MCP messages forwarded by route and method", m.mcp_messages.clone());
        registry.register("policy_denials", "Requests refused by a route's controls", m.policy_denials.clone());
        m.pins.register(&mut registry);
        m.audit.register(&mut registry);
        m.approvals.register(&mut registry);
        m.kill.register(&mut registry);
        Arc::new(Self { registry, ..m })
    }

    /// Counts a request refused by a route's Origin, auth, policy or limits.
    pub fn policy_denial(&self, route: &str, reason: &str) {
        self.policy_denials.get_or_create(&labels(&[("route", route), ("reason", reason)])).inc();
    }

    /// Counts the MCP messages of a forwarded request. Methods outside the MCP
    /// specification count as `other`, so a client cannot mint label values.
    pub fn mcp_requests(&self, route: &str, info: &RequestInfo) {
        for m in &info.messages {
            let method = m
                .method
                .as_deref()
                .map_or("response", |name| MCP_METHODS.iter().copied().find(|known| *known == name).unwrap_or("other"));
            self.mcp_messages.get_or_create(&labels(&[("route", route), ("method", method)])).inc();
        }
    }

    /// Records a finished request (headers sent).
    pub fn request(&self, route: &str, status: u16, seconds: f64) {
        self.requests.get_or_create(&labels(&[("route", route), ("status", &status.to_string())])).inc();
        self.request_duration.get_or_create(&labels(&[("route", route)])).observe(seconds);
    }

    /// Records an upstream failure.
    pub fn upstream_error(&self, route: &str, failure: Failure) {
        self.upstream_errors.get_or_create(&labels(&[("route", route), ("kind", failure.kind())])).inc();
    }

    /// Records a registered tunnel connection.
    pub fn registered(&self, transport: &str) {
        self.registrations.get_or_create(&labels(&[("transport", transport)])).inc();
    }

    /// Records why a tunnel connection (or attempt) ended.
    pub fn disconnect(&self, cause: &str) {
        self.reconnects.get_or_create(&labels(&[("cause", cause)])).inc();
    }

    /// Records a failed connection attempt.
    pub fn dial_error(&self, kind: &str) {
        self.dial_errors.get_or_create(&labels(&[("kind", kind)])).inc();
    }

    /// Sets the connection gauges from `(transport, state)` pairs, then renders.
    pub fn render(&self, connections: &[(String, String)]) -> String {
        self.connections.clear();
        for (transport, state) in connections {
            self.connections.get_or_create(&labels(&[("transport", transport), ("state", state)])).inc();
        }
        stats::render(&self.registry)
    }
}
