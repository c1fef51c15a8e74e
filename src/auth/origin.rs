//! Origin allow-list: the MCP transport spec asks servers to validate `Origin` so a web
//! page cannot reach a private MCP server through DNS rebinding.
//!
//! Browsers always send `Origin` on cross-origin and non-GET requests; MCP clients that
//! are not browsers send none. So: no header passes, a listed origin passes, and
//! anything else (including the opaque `null` of sandboxed frames and `file:` pages)
//! is refused with 403.

use http::header::ORIGIN;
use http::{HeaderMap, StatusCode};

use super::AuthConfigError;

/// Which browser origins may call a route. Empty (the default) allows every origin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginPolicy {
    /// Normalised `scheme://host[:port]`, lower-case, default ports removed.
    allowed: Vec<String>,
}

/// Why a request's `Origin` was refused; the proxy answers [`OriginError::status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    #[error("opaque origin \"null\" is not allowed")]
    Null,
    #[error("origin is not on the allow-list")]
    NotAllowed,
    #[error("malformed or repeated Origin header")]
    Malformed,
}

impl OriginError {
    /// Always 403 Forbidden.
    pub fn status(&self) -> StatusCode {
        StatusCode::FORBIDDEN
    }

    /// Short machine code for the audit trail.
    pub fn reason(&self) -> &'static str {
        match self {
            OriginError::Null => "origin_null",
            OriginError::NotAllowed => "origin_not_allowed",
            OriginError::Malformed => "origin_malformed",
        }
    }
}

impl OriginPolicy {
    /// Validates and normalises `allowed` (e.g. `https://app.example.com`,
    /// `http://localhost:6274`). A trailing `/` is tolerated; paths are not.
    pub fn new(allowed: Vec<String>) -> Result<Self, AuthConfigError> {
        let mut out = Vec::with_capacity(allowed.len());
        for origin in allowed {
            let trimmed = origin.trim();
            let normal = normalize(trimmed.strip_suffix('/').unwrap_or(trimmed))
                .map_err(|why| AuthConfigError::BadOrigin { origin: origin.clone(), why })?;
            if !out.contains(&normal) {
                out.push(normal);
            }
        }
        Ok(OriginPolicy { allowed: out })
    }

    /// True when no allow-list is configured.
    pub fn allows_all(&self) -> bool {
        self.allowed.is_empty()
    }

    /// The normalised allow-list.
    pub fn allowed(&self) -> &[String] {
        &self.allowed
    }

    /// Checks the request's `Origin` header.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), OriginError> {
        if self.allows_all() {
            return Ok(());
        }
        let mut values = headers.get_all(ORIGIN).iter();
        let Some(value) = values.next() else {
            return Ok(());
        };
        if values.next().is_some() {
            return Err(OriginError::Malformed);
        }
        let value = value.to_str().map_err(|_| OriginError::Malformed)?.trim();
        if value.eq_ignore_ascii_case("null") {
            return Err(OriginError::Null);
        }
        let origin = normalize(value).map_err(|_| OriginError::Malformed)?;
        if self.allowed.contains(&origin) {
            Ok(())
        } else {
            Err(OriginError::NotAllowed)
        }
    }
}

/// `scheme://host[:port]` → lower-case scheme and host, default port (80/443) dropped.
fn normalize(s: &str) -> Result<String, &'static str> {
    let (scheme, rest) = s.split_once("://").ok_or("missing \"://\"")?;
    let scheme = scheme.to_ascii_lowercase();
    let scheme_ok = scheme.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    if !scheme_ok {
        return Err("bad scheme");
    }
    if rest.bytes().any(|b| !b.is_ascii_graphic() || b"/?#@\\".contains(&b)) {
        return Err("an origin has no path, query, user or spaces");
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or("unclosed \"[\"")?;
        let port = if after.is_empty() { None } else { Some(after.strip_prefix(':').ok_or("bad port")?) };
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.') {
            return Err("bad IPv6 address");
        }
        (format!("[{addr}]"), port)
    } else {
        match rest.split_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (rest.to_owned(), None),
        }
    };
    if host.is_empty() || (host.contains(['[', ']', ':']) && !host.starts_with('[')) {
        return Err("missing or bad host");
    }
    let port: Option<u16> = port.map(|p| p.parse().map_err(|_| "bad port")).transpose()?;
    let default_port = match scheme.as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    };
    let host = host.to_ascii_lowercase();
    Ok(match port {
        Some(p) if Some(p) != default_port => format!("{scheme}://{host}:{p}"),
        _ => format!("{scheme}://{host}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with_origin(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(ORIGIN, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn policy(list: &[&str]) -> OriginPolicy {
        OriginPolicy::new(list.iter().map(|s| s.to_string()).collect()).unwrap()
    }

    #[test]
    fn listed_origins_pass_after_normalisation() {
        let p = policy(&["https://App.Example.com/", "http://localhost:6274", "http://[::1]:80"]);
        assert_eq!(p.allowed(), ["https://app.example.com", "http://localhost:6274", "http://[::1]"]);
        for ok in ["https://app.example.com", "HTTPS://APP.EXAMPLE.COM:443", "http://localhost:6274", "http://[::1]"] {
            assert_eq!(p.check(&with_origin(&[ok])), Ok(()), "{ok}");
        }
        assert_eq!(p.check(&HeaderMap::new()), Ok(()), "no Origin: a non-browser client");
    }

    #[test]
    fn other_origins_are_refused() {
        let p = policy(&["https://app.example.com"]);
        let refused = |v: &str| p.check(&with_origin(&[v])).unwrap_err();
        assert_eq!(refused("null"), OriginError::Null);
        assert_eq!(refused("https://evil.example.com"), OriginError::NotAllowed);
        assert_eq!(refused("http://app.example.com"), OriginError::NotAllowed);
        assert_eq!(refused("https://app.example.com:8443"), OriginError::NotAllowed);
        assert_eq!(refused("https://app.example.com.evil.net"), OriginError::NotAllowed);
        assert_eq!(refused("https://app.example.com/path"), OriginError::Malformed);
        assert_eq!(refused("https://user@app.example.com"), OriginError::Malformed);
        assert_eq!(refused("app.example.com"), OriginError::Malformed);
        let twice = p.check(&with_origin(&["https://app.example.com", "https://app.example.com"]));
        assert_eq!(twice, Err(OriginError::Malformed));
        assert_eq!(OriginError::NotAllowed.status(), StatusCode::FORBIDDEN);
        assert_eq!(OriginError::Null.reason(), "origin_null");
    }

    #[test]
    fn empty_policy_allows_everything() {
        let p = OriginPolicy::default();
        assert!(p.allows_all());
        assert_eq!(p.check(&with_origin(&["null"])), Ok(()));
        assert_eq!(p.check(&with_origin(&["https://evil.example.com"])), Ok(()));
    }

    #[test]
    fn bad_config_entries_are_named() {
        for bad in ["app.example.com", "https://app.example.com/mcp", "https://:443", "https://h:99999", "*"] {
            let err = OriginPolicy::new(vec![bad.to_owned()]).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }
}
