//! The gateway's Prometheus metrics. Label values are route names, HTTP status codes,
//! transports and fixed reason words: never payloads, hosts from clients, or secrets.

use std::sync::atomic::AtomicI64;
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use rustls::pki_types::CertificateDer;

use crate::audit::AuditMetrics;
use crate::mcp::RequestInfo;

type Labels = Vec<(String, String)>;

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
    /// Failed upstream requests by route and kind (unreachable, forbidden, timeout).
    pub upstream_errors: Family<Labels, Counter>,
    /// Tunnel streams served (one per client TLS connection).
    pub streams: Counter,
    /// Tunnel streams being served now.
    pub streams_active: Gauge,
    /// Tunnel connection ends, by cause.
    pub reconnects: Family<Labels, Counter>,
    /// Tunnel connections by transport and state (set at scrape time).
    pub connections: Family<Labels, Gauge>,
    /// Certificate expiry (Unix seconds) by certificate.
    pub cert_expiry: Family<Labels, Gauge<i64, AtomicI64>>,
    /// MCP messages forwarded, by route and method (known MCP methods only).
    pub mcp_messages: Family<Labels, Counter>,
    /// Requests refused by a route's controls, by route and reason.
    pub policy_denials: Family<Labels, Counter>,
    /// Audit records written, dropped and lost.
    pub audit: AuditMetrics,
}

impl GatewayMetrics {
    /// Creates and registers every metric.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("mcp_tunnel_gateway");
        let m = Self {
            requests: Family::default(),
            request_duration: Family::new_with_constructor(duration_histogram),
            upstream_errors: Family::default(),
            streams: Counter::default(),
            streams_active: Gauge::default(),
            reconnects: Family::default(),
            connections: Family::default(),
            cert_expiry: Family::default(),
            mcp_messages: Family::default(),
            policy_denials: Family::default(),
            audit: AuditMetrics::default(),
            registry: Registry::default(),
        };
        registry.register("requests", "HTTP requests by route and status", m.requests.clone());
        registry.register("request_duration_seconds", "Time to upstream response headers", m.request_duration.clone());
        registry.register("upstream_errors", "Failed upstream requests by kind", m.upstream_errors.clone());
        registry.register("streams", "Tunnel streams served", m.streams.clone());
        registry.register("streams_active", "Tunnel streams being served", m.streams_active.clone());
        registry.register("tunnel_disconnects", "Tunnel connection ends by cause", m.reconnects.clone());
        registry.register("tunnel_connections", "Tunnel connections by transport and state", m.connections.clone());
        registry.register(
            "certificate_expiry_timestamp_seconds",
            "Certificate notAfter (Unix time)",
            m.cert_expiry.clone(),
        );
        registry.register("mcp_messages", "MCP messages forwarded by route and method", m.mcp_messages.clone());
        registry.register("policy_denials", "Requests refused by a route's controls", m.policy_denials.clone());
        m.audit.register(&mut registry);
        Arc::new(Self { registry, ..m })
    }

    /// Counts a request refused by a route's Origin, auth, policy or limits.
    pub fn policy_denial(&self, route: &str, reason: &str) {
        self.policy_denials
            .get_or_create(&vec![("route".into(), route.into()), ("reason".into(), reason.into())])
            .inc();
    }

    /// Counts the MCP messages of a forwarded request. Methods outside the MCP
    /// specification count as `other`, so a client cannot mint label values.
    pub fn mcp_requests(&self, route: &str, info: &RequestInfo) {
        for m in &info.messages {
            let method = m
                .method
                .as_deref()
                .map_or("response", |name| MCP_METHODS.iter().copied().find(|known| *known == name).unwrap_or("other"));
            self.mcp_messages
                .get_or_create(&vec![("route".into(), route.into()), ("method".into(), method.into())])
                .inc();
        }
    }

    /// Records a finished request (headers sent).
    pub fn request(&self, route: &str, status: u16, seconds: f64) {
        self.requests.get_or_create(&vec![("route".into(), route.into()), ("status".into(), status.to_string())]).inc();
        self.request_duration.get_or_create(&vec![("route".into(), route.into())]).observe(seconds);
    }

    /// Records an upstream failure.
    pub fn upstream_error(&self, route: &str, kind: &str) {
        self.upstream_errors.get_or_create(&vec![("route".into(), route.into()), ("kind".into(), kind.into())]).inc();
    }

    /// Records why a tunnel connection ended.
    pub fn disconnect(&self, cause: &str) {
        self.reconnects.get_or_create(&vec![("cause".into(), cause.into())]).inc();
    }

    /// Sets a certificate's expiry gauge from its notAfter.
    pub fn cert(&self, name: &str, cert: Option<&CertificateDer<'_>>) {
        let not_after = cert
            .and_then(|c| x509_parser::parse_x509_certificate(c).ok())
            .map(|(_, parsed)| parsed.validity().not_after.timestamp());
        if let Some(t) = not_after {
            self.cert_expiry.get_or_create(&vec![("certificate".into(), name.into())]).set(t);
        }
    }

    /// Sets the connection gauges from `(transport, state)` pairs, then renders.
    pub fn render(&self, connections: &[(String, String)]) -> String {
        self.connections.clear();
        for (transport, state) in connections {
            let labels = vec![("transport".into(), transport.clone()), ("state".into(), state.clone())];
            self.connections.get_or_create(&labels).inc();
        }
        crate::stats::render(&self.registry)
    }
}
