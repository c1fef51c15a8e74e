//! The `[[routes]]` part of the gateway config: hostname (and path) → upstream MCP
//! server, with each route's limits.

use std::sync::Arc;

use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use super::controls::{route_controls, RawAuth, RawControls, RawPolicy, RawRouteAudit};
use super::defaults;
use super::{normalize_host_pattern, ConfigError, Source};
use crate::gateway::limits::RouteLimits;
use crate::gateway::route::{Route, RouteTable, Scheme, UpstreamTarget};
use crate::outbound::allowlist::AllowList;
use crate::outbound::UpstreamClient;
use crate::pinning::{PinMode, PinSettings};
use crate::stdio::{RunAs, StdioBridge, StdioSpec};
use crate::tls::configs;

/// Smallest `stdio_memory_limit` accepted.
const MIN_MEMORY_LIMIT: usize = 16 << 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    host: Spanned<String>,
    upstream: Option<Spanned<String>>,
    stdio: Option<Spanned<Vec<String>>>,
    stdio_env: Option<std::collections::BTreeMap<String, String>>,
    stdio_cwd: Option<Spanned<String>>,
    stdio_max_sessions: Option<Spanned<i64>>,
    stdio_idle_timeout: Option<Spanned<String>>,
    stdio_user: Option<Spanned<String>>,
    stdio_memory_limit: Option<Spanned<Size>>,
    stdio_cpu_limit: Option<Spanned<String>>,
    path_prefix: Option<Spanned<String>>,
    #[serde(default)]
    strip_prefix: bool,
    ca: Option<Spanned<String>>,
    #[serde(default)]
    preserve_host: bool,
    timeout: Option<Spanned<String>>,
    limits: Option<RawLimits>,
    allowed_origins: Option<Vec<Spanned<String>>>,
    auth: Option<RawAuth>,
    policy: Option<RawPolicy>,
    audit: Option<RawRouteAudit>,
    approval: Option<super::approval::RawApproval>,
    pinning: Option<Spanned<String>>,
    pinning_fetch_path: Option<Spanned<String>>,
    pinning_refresh: Option<Spanned<String>>,
}

/// `[upstream]`: what every route's client may reach and how long it waits.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstream {
    pub(super) allowed_networks: Option<Vec<Spanned<String>>>,
    pub(super) connect_timeout: Option<Spanned<String>>,
    pub(super) timeout: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_body: Option<Spanned<Size>>,
    max_header_bytes: Option<Spanned<Size>>,
    max_concurrent: Option<Spanned<i64>>,
    sse_idle_timeout: Option<Spanned<String>>,
    body_timeout: Option<Spanned<String>>,
}

/// A byte size: a number of bytes, or a string such as `"4MiB"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Size {
    Bytes(i64),
    Text(String),
}

pub(super) fn route_table(
    src: &Source,
    domain: &str,
    up: &RawUpstream,
    raw: &[RawRoute],
) -> Result<RouteTable, ConfigError> {
    let allow = Arc::new(allow_list(src, up)?);
    let connect_timeout =
        src.duration("upstream.connect_timeout", up.connect_timeout.as_ref(), defaults::CONNECT_TIMEOUT)?;
    let default_timeout = src.positive_duration("upstream.timeout", up.timeout.as_ref(), defaults::RESPONSE_TIMEOUT)?;
    let mut routes = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let key = |k: &str| format!("routes[{i}].{k}");
        let host = normalize_host_pattern(r.host.get_ref()).ok().filter(|h| !h.starts_with("*.")).ok_or_else(|| {
            src.invalid(&key("host"), &r.host, "expected a subdomain (\"tickets\") or a full hostname")
        })?;
        // A bare label is a subdomain of the tunnel domain; anything with a dot is a full name.
        let host = if host.contains('.') { host } else { format!("{host}.{domain}") };
        let path_prefix = match &r.path_prefix {
            None => None,
            Some(p) => Some(normalize_prefix(p.get_ref()).map_err(|why| src.invalid(&key("path_prefix"), p, why))?),
        }
        .filter(|p| p != "/");
        let (target, stdio) = match (&r.upstream, &r.stdio) {
            (Some(upstream), None) => (upstream_target(src, &key, r, upstream)?, None),
            (None, Some(command)) => (stdio_placeholder(), Some(stdio_spec(src, &key, r, command)?)),
            _ => return Err(src.invalid(&key("upstream"), &r.host, "give exactly one of `upstream` and `stdio`")),
        };
        let timeout = src.positive_duration(&key("timeout"), r.timeout.as_ref(), default_timeout)?;
        let limits = route_limits(src, &key, r.limits.as_ref())?;
        let mut controls = route_controls(
            src,
            &key,
            RawControls {
                allowed_origins: r.allowed_origins.as_ref(),
                auth: r.auth.as_ref(),
                policy: r.policy.as_ref(),
                audit: r.audit.as_ref(),
                at: &r.host,
            },
        )?;
        controls.approval = super::approval::approval_gate(src, &key, r.approval.as_ref(), &allow, connect_timeout)?;
        controls.pinning = pin_settings(src, &key, r)?;
        let client = UpstreamClient::new(&target, allow.clone(), connect_timeout);
        let name = match &path_prefix {
            Some(p) => format!("{host}{p}"),
            None => host.clone(),
        };
        let stdio = stdio.map(|spec| StdioBridge::new(name.clone(), spec));
        routes.push(Route {
            name,
            host,
            path_prefix,
            strip_prefix: r.strip_prefix,
            upstream: target,
            preserve_host: r.preserve_host,
            timeout,
            client,
            inflight: Arc::new(tokio::sync::Semaphore::new(limits.max_concurrent)),
            limits,
            controls,
            stdio,
        });
    }
    RouteTable::new(routes).map_err(|(i, why)| src.invalid(&format!("routes[{i}].host"), &raw[i].host, why))
}

fn pin_settings(src: &Source, key: &dyn Fn(&str) -> String, r: &RawRoute) -> Result<PinSettings, ConfigError> {
    let mut s = PinSettings::default();
    if let Some(m) = &r.pinning {
        s.mode = PinMode::parse(m.get_ref())
            .ok_or_else(|| src.invalid(&key("pinning"), m, "expected \"off\", \"warn\" or \"enforce\""))?;
    }
    if let Some(p) = &r.pinning_fetch_path {
        if !p.get_ref().starts_with('/') || p.get_ref().contains(['?', '#', ' ']) {
            return Err(src.invalid(&key("pinning_fetch_path"), p, "expected a path starting with '/'"));
        }
        s.fetch_path = p.get_ref().clone();
    }
    s.refresh = src.positive_duration(&key("pinning_refresh"), r.pinning_refresh.as_ref(), s.refresh)?;
    Ok(s)
}

/// `pinning = "enforce"` keeps its pins in the state directory: without one, every call
/// would be refused after each restart.
pub(super) fn require_state_dir(src: &Source, raw: &[RawRoute], state_dir: bool) -> Result<(), ConfigError> {
    if state_dir {
        return Ok(());
    }
    for (i, r) in raw.iter().enumerate() {
        if let Some(m) = r.pinning.as_ref().filter(|m| m.get_ref() == "enforce") {
            let why = "pinning = \"enforce\" needs the top-level `state_dir` (where pins are kept)";
            return Err(src.invalid(&format!("routes[{i}].pinning"), m, why));
        }
    }
    Ok(())
}

fn allow_list(src: &Source, up: &RawUpstream) -> Result<AllowList, ConfigError> {
    let Some(list) = &up.allowed_networks else { return Ok(AllowList::default_private()) };
    let mut nets = Vec::new();
    for (i, n) in list.iter().enumerate() {
        let net: IpNet =
            n.get_ref().parse().or_else(|_| n.get_ref().parse::<std::net::IpAddr>().map(IpNet::from)).map_err(
                |_| {
                    src.invalid(&format!("upstream.allowed_networks[{i}]"), n, "expected a CIDR such as \"10.0.0.0/8\"")
                },
            )?;
        nets.push(net);
    }
    Ok(AllowList::new(nets))
}

fn route_limits(
    src: &Source,
    key: &dyn Fn(&str) -> String,
    raw: Option<&RawLimits>,
) -> Result<RouteLimits, ConfigError> {
    let d = RouteLimits::default();
    let Some(raw) = raw else { return Ok(d) };
    let size = |k: &str, v: &Option<Spanned<Size>>, default: usize| match v {
        None => Ok(default),
        Some(v) => parse_size(v.get_ref()).map_err(|why| src.invalid(&key(k), v, why)),
    };
    let max_concurrent = match &raw.max_concurrent {
        None => d.max_concurrent,
        Some(n) => usize::try_from(*n.get_ref())
            .ok()
            .filter(|n| (1..=100_000).contains(n))
            .ok_or_else(|| src.invalid(&key("limits.max_concurrent"), n, "expected 1 to 100000"))?,
    };
    Ok(RouteLimits {
        max_body: size("limits.max_body", &raw.max_body, d.max_body)?,
        max_header_bytes: size("limits.max_header_bytes", &raw.max_header_bytes, d.max_header_bytes)?,
        max_concurrent,
        sse_idle_timeout: src.positive_duration(
            &key("limits.sse_idle_timeout"),
            raw.sse_idle_timeout.as_ref(),
            d.sse_idle_timeout,
        )?,
        body_timeout: src.positive_duration(&key("limits.body_timeout"), raw.body_timeout.as_ref(), d.body_timeout)?,
    })
}

/// `4096`, `"512KiB"`, `"4MiB"`, `"1GiB"` → bytes; zero is refused (it would refuse
/// every request).
fn parse_size(v: &Size) -> Result<usize, String> {
    let bytes = match v {
        Size::Bytes(n) => u64::try_from(*n).map_err(|_| "must not be negative".to_owned())?,
        Size::Text(t) => {
            let t = t.trim();
            let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
            let (num, unit) = t.split_at(split);
            let n: u64 = num.parse().map_err(|_| format!("expected a size such as \"4MiB\", got {t:?}"))?;
            let mult: u64 = match unit.trim() {
                "" | "B" => 1,
                "KiB" => 1 << 10,
                "MiB" => 1 << 20,
                "GiB" => 1 << 30,
                other => return Err(format!("unknown unit {other:?}: use B, KiB, MiB or GiB")),
            };
            n.checked_mul(mult).ok_or_else(|| format!("size {t:?} is too large"))?
        }
    };
    match usize::try_from(bytes) {
        Ok(0) => Err("must be greater than zero".into()),
        Ok(n) => Ok(n),
        Err(_) => Err("too large".into()),
    }
}

/// The target of a stdio route: never dialled (requests go to the bridge instead).
fn stdio_placeholder() -> UpstreamTarget {
    UpstreamTarget { scheme: Scheme::Http, host: "stdio".into(), port: 0, tls: None }
}

fn stdio_spec(
    src: &Source,
    key: &dyn Fn(&str) -> String,
    r: &RawRoute,
    command: &Spanned<Vec<String>>,
) -> Result<StdioSpec, ConfigError> {
    let (program, args) = command
        .get_ref()
        .split_first()
        .filter(|(p, _)| !p.is_empty())
        .ok_or_else(|| src.invalid(&key("stdio"), command, "expected [\"/path/to/server\", \"args\"...]"))?;
    let mut spec = StdioSpec::new(program);
    spec.args = args.to_vec();
    spec.env = r.stdio_env.iter().flatten().map(|(k, v)| (k.clone(), v.clone())).collect();
    spec.cwd = r.stdio_cwd.as_ref().map(|c| src.resolve(c.get_ref()));
    if let Some(n) = &r.stdio_max_sessions {
        spec.max_children = usize::try_from(*n.get_ref())
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| src.invalid(&key("stdio_max_sessions"), n, "expected 1 to 10000"))?;
    }
    spec.idle_timeout =
        src.positive_duration(&key("stdio_idle_timeout"), r.stdio_idle_timeout.as_ref(), spec.idle_timeout)?;
    if let Some(user) = &r.stdio_user {
        let run_as =
            RunAs::resolve(user.get_ref()).map_err(|e| src.invalid(&key("stdio_user"), user, e.to_string()))?;
        spec.user = Some(run_as);
    }
    if let Some(m) = &r.stdio_memory_limit {
        let bytes = parse_size(m.get_ref()).map_err(|why| src.invalid(&key("stdio_memory_limit"), m, why))?;
        // Below this no runtime starts, and the failure would look like a broken server.
        if bytes < MIN_MEMORY_LIMIT {
            return Err(src.invalid(&key("stdio_memory_limit"), m, "must be at least 16MiB"));
        }
        spec.limits.memory = bytes as u64;
    }
    spec.limits.cpu = src.positive_duration(&key("stdio_cpu_limit"), r.stdio_cpu_limit.as_ref(), spec.limits.cpu)?;
    if let Some(at) = r.stdio_cpu_limit.as_ref().filter(|_| spec.limits.cpu.subsec_nanos() != 0) {
        return Err(src.invalid(&key("stdio_cpu_limit"), at, "must be whole seconds (RLIMIT_CPU counts seconds)"));
    }
    Ok(spec)
}

fn upstream_target(
    src: &Source,
    key: &dyn Fn(&str) -> String,
    r: &RawRoute,
    upstream: &Spanned<String>,
) -> Result<UpstreamTarget, ConfigError> {
    let bad = |why: &str| src.invalid(&key("upstream"), upstream, why.to_owned());
    let uri: http::Uri =
        upstream.get_ref().parse().map_err(|_| bad("expected a URL such as \"http://10.0.0.5:8080\""))?;
    let scheme = match uri.scheme_str() {
        Some("http") => Scheme::Http,
        Some("https") => Scheme::Https,
        _ => return Err(bad("scheme must be http:// or https://")),
    };
    // http::Uri keeps user:password in the authority but host() drops it: refuse it rather
    // than ignore credentials the operator expected to be sent (and keep them out of logs).
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(bad("credentials in the URL are not supported; give only scheme://host:port"));
    }
    if uri.path_and_query().is_some_and(|p| p.as_str() != "/" && !p.as_str().is_empty()) {
        return Err(bad("give only scheme://host:port; route paths with path_prefix"));
    }
    let host = uri.host().ok_or_else(|| bad("missing host"))?.trim_start_matches('[').trim_end_matches(']').to_owned();
    let port = uri.port_u16().unwrap_or(match scheme {
        Scheme::Http => 80,
        Scheme::Https => 443,
    });
    let tls = match (scheme, &r.ca) {
        (Scheme::Http, Some(ca)) => return Err(src.invalid(&key("ca"), ca, "a CA only applies to https:// upstreams")),
        (Scheme::Http, None) => None,
        (Scheme::Https, None) => {
            return Err(bad("https:// upstreams need `ca` (the PEM file of the CA that signed the upstream)"))
        }
        (Scheme::Https, Some(ca)) => {
            let certs = src.certs(&key("ca"), ca)?;
            let config = configs::upstream_client(&certs, &src.resolve(ca.get_ref()).display().to_string())
                .map_err(|e| src.invalid(&key("ca"), ca, e.to_string()))?;
            Some(Arc::new(config))
        }
    };
    Ok(UpstreamTarget { scheme, host, port, tls })
}

fn normalize_prefix(p: &str) -> Result<String, String> {
    if !p.starts_with('/') || p.contains(['?', '#', ' ']) {
        return Err(format!("{p:?} must be a path starting with '/'"));
    }
    let trimmed = p.trim_end_matches('/');
    Ok(if trimmed.is_empty() { "/".into() } else { trimmed.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(normalize_prefix("/mcp/").unwrap(), "/mcp");
        assert_eq!(normalize_prefix("/").unwrap(), "/");
        assert!(normalize_prefix("mcp").is_err());
        assert!(normalize_prefix("/a?b").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size(&Size::Bytes(4096)).unwrap(), 4096);
        assert_eq!(parse_size(&Size::Text("4MiB".into())).unwrap(), 4 << 20);
        assert_eq!(parse_size(&Size::Text("512 KiB".into())).unwrap(), 512 << 10);
        for bad in [Size::Bytes(0), Size::Bytes(-1), Size::Text("4MB".into()), Size::Text("x".into())] {
            assert!(parse_size(&bad).is_err(), "{bad:?}");
        }
    }
}
