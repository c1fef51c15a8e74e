//! Where a route's requests go: scheme, host, port and TLS settings of its upstream. Its
//! own module so the route table and the upstream client both use it without importing
//! each other.

use std::sync::Arc;

/// How the gateway talks to an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// Where a route's requests go.
#[derive(Clone)]
pub struct UpstreamTarget {
    pub scheme: Scheme,
    /// Hostname or IP literal (no brackets).
    pub host: String,
    pub port: u16,
    /// TLS settings for `https` (trusting the route's own CA).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl UpstreamTarget {
    /// `host:port` as it goes into a URI or a `Host` header.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
    /// `scheme://host:port`, for logs.
    pub fn url(&self) -> String {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        format!("{scheme}://{}", self.authority())
    }
}

impl std::fmt::Debug for UpstreamTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url())
    }
}
