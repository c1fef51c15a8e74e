//! The routing table: request host (and optional path prefix) → upstream MCP server.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::limits::RouteLimits;
use crate::auth::{Authenticator, OriginPolicy};
use crate::mcp::{RedactMode, ToolPolicy};
pub use crate::outbound::target::{Scheme, UpstreamTarget};
use crate::outbound::UpstreamClient;
use crate::stdio::StdioBridge;

/// One route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Display name (host plus prefix), used in logs.
    pub name: String,
    /// Full lower-case hostname the route answers.
    pub host: String,
    /// Path prefix without a trailing `/`; `None` matches every path.
    pub path_prefix: Option<String>,
    /// Remove the prefix before forwarding.
    pub strip_prefix: bool,
    pub upstream: UpstreamTarget,
    /// Send the client's `Host` upstream instead of the upstream's own authority.
    pub preserve_host: bool,
    /// How long to wait for the upstream's response headers.
    pub timeout: Duration,
    /// Pooled HTTP client for this upstream.
    pub client: UpstreamClient,
    /// Body, header, concurrency and streaming limits.
    pub limits: RouteLimits,
    /// Permits for requests in flight (`limits.max_concurrent`).
    pub inflight: Arc<tokio::sync::Semaphore>,
    /// Origin, authentication, MCP policy and audit settings.
    pub controls: RouteControls,
    /// For a route to a stdio MCP server: the bridge (one child per session) that serves
    /// it instead of `upstream`.
    pub stdio: Option<Arc<StdioBridge>>,
}

/// What the gateway checks and records for a route, beyond forwarding.
#[derive(Debug, Clone, Default)]
pub struct RouteControls {
    /// Authenticate callers at the gateway; `None` passes `Authorization` through.
    pub auth: Option<Arc<Authenticator>>,
    /// Authorization servers named in the route's protected-resource metadata.
    pub authorization_servers: Vec<String>,
    /// Scopes named in that metadata.
    pub scopes: Vec<String>,
    /// Browser origins allowed (empty: any).
    pub origins: OriginPolicy,
    /// Methods and tools that may pass.
    pub policy: Arc<ToolPolicy>,
    /// Tool argument keys recorded in clear in the audit trail.
    pub clear_arguments: Vec<String>,
    /// How other argument values are recorded.
    pub redact_mode: RedactMode,
    /// Tool calls that wait for a human decision (`[routes.approval]`).
    pub approval: Option<Arc<crate::approval::ApprovalGate>>,
    /// Tool-definition pinning (`pinning`, `pinning_fetch_path`).
    pub pinning: crate::pinning::PinSettings,
}

impl Route {
    /// What the route forwards to, for logs and audit records.
    pub fn upstream_label(&self) -> String {
        match &self.stdio {
            Some(bridge) => format!("stdio:{}", bridge.command().display()),
            None => self.upstream.url(),
        }
    }

    /// The path to send upstream for a request path that matched this route.
    pub fn upstream_path<'a>(&self, path: &'a str) -> std::borrow::Cow<'a, str> {
        match (&self.path_prefix, self.strip_prefix) {
            (Some(prefix), true) => {
                let rest = &path[prefix.len().min(path.len())..];
                if rest.is_empty() {
                    "/".into()
                } else {
                    rest.into()
                }
            }
            _ => path.into(),
        }
    }
}

/// Routes indexed by host; within a host the longest matching prefix wins.
#[derive(Debug, Default)]
pub struct RouteTable {
    by_host: HashMap<String, Vec<Arc<Route>>>,
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

impl RouteTable {
    /// Builds the table; fails with the index of a route that duplicates another.
    pub fn new(routes: Vec<Route>) -> Result<Self, (usize, String)> {
        let mut by_host: HashMap<String, Vec<Arc<Route>>> = HashMap::new();
        for (i, route) in routes.into_iter().enumerate() {
            let list = by_host.entry(route.host.clone()).or_default();
            if list.iter().any(|r| r.path_prefix == route.path_prefix) {
                return Err((i, format!("route {} is defined twice", route.name)));
            }
            list.push(Arc::new(route));
            list.sort_by_key(|r| std::cmp::Reverse(r.path_prefix.as_ref().map_or(0, |p| p.len())));
        }
        Ok(Self { by_host })
    }

    /// Finds the route for a request. `host` may carry a port and any case.
    pub fn lookup(&self, host: &str, path: &str) -> Option<&Arc<Route>> {
        let host = strip_port(host).trim_end_matches('.').to_ascii_lowercase();
        self.by_host.get(&host)?.iter().find(|r| r.path_prefix.as_deref().is_none_or(|p| prefix_matches(p, path)))
    }

    /// Every route, for logs at startup.
    pub fn routes(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.by_host.values().flatten()
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.by_host.values().map(Vec::len).sum()
    }

    /// True when no route is configured.
    pub fn is_empty(&self) -> bool {
        self.by_host.is_empty()
    }
}

/// `host:port` → `host`, `[v6]:port` → `v6`.
pub fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::allowlist::AllowList;

    fn route(host: &str, prefix: Option<&str>, port: u16) -> Route {
        let upstream = UpstreamTarget { scheme: Scheme::Http, host: "127.0.0.1".into(), port, tls: None };
        let client = UpstreamClient::new(&upstream, Arc::new(AllowList::default_private()), Duration::from_secs(1));
        Route {
            name: host.into(),
            host: host.into(),
            path_prefix: prefix.map(Into::into),
            strip_prefix: true,
            upstream,
            preserve_host: false,
            timeout: Duration::from_secs(1),
            client,
            limits: RouteLimits::default(),
            inflight: Arc::new(tokio::sync::Semaphore::new(1)),
            controls: RouteControls::default(),
            stdio: None,
        }
    }

    fn table() -> RouteTable {
        RouteTable::new(vec![
            route("a.test", None, 1),
            route("a.test", Some("/mcp"), 2),
            route("a.test", Some("/mcp/admin"), 3),
            route("b.test", Some("/x"), 4),
        ])
        .unwrap()
    }

    fn port(t: &RouteTable, host: &str, path: &str) -> Option<u16> {
        t.lookup(host, path).map(|r| r.upstream.port)
    }

    #[test]
    fn longest_prefix_on_segment_boundaries() {
        let t = table();
        assert_eq!(port(&t, "a.test", "/mcp"), Some(2));
        assert_eq!(port(&t, "a.test", "/mcp/x"), Some(2));
        assert_eq!(port(&t, "a.test", "/mcp/admin/y"), Some(3));
        assert_eq!(port(&t, "a.test", "/mcpx"), Some(1));
        assert_eq!(port(&t, "a.test", "/"), Some(1));
        assert_eq!(port(&t, "b.test", "/x/1"), Some(4));
        assert_eq!(port(&t, "b.test", "/y"), None);
    }

    #[test]
    fn host_matching_ignores_case_port_and_trailing_dot() {
        let t = table();
        assert_eq!(port(&t, "A.Test:443", "/"), Some(1));
        assert_eq!(port(&t, "a.test.", "/"), Some(1));
        assert_eq!(port(&t, "c.test", "/"), None);
        assert_eq!(port(&t, "[::1]:443", "/"), None);
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn duplicates_are_refused() {
        let err = RouteTable::new(vec![route("a.test", None, 1), route("a.test", None, 2)]).unwrap_err();
        assert_eq!(err.0, 1);
    }

    #[test]
    fn strip_prefix_keeps_a_leading_slash() {
        let r = route("a.test", Some("/mcp"), 1);
        assert_eq!(r.upstream_path("/mcp"), "/");
        assert_eq!(r.upstream_path("/mcp/x"), "/x");
        assert_eq!(strip_port("h:80"), "h");
        assert_eq!(strip_port("[::1]:80"), "::1");
    }
}
