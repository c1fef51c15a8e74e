//! `[routes.approval]`: the tools whose calls wait for a human decision (see src/approval/).

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Source};
use crate::approval::gate::{ApprovalGate, DEFAULT_KEEPALIVE, DEFAULT_MAX_PENDING, DEFAULT_TIMEOUT};
use crate::approval::webhook::Webhook;
use crate::gateway::route::{Scheme, UpstreamTarget};
use crate::mcp::Glob;
use crate::outbound::allowlist::AllowList;
use crate::outbound::UpstreamClient;
use crate::tls::configs;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApproval {
    tools: Spanned<Vec<Spanned<String>>>,
    timeout: Option<Spanned<String>>,
    max_pending: Option<Spanned<i64>>,
    visible_arguments: Option<Vec<String>>,
    keepalive: Option<Spanned<String>>,
    webhook: Option<Spanned<String>>,
    webhook_ca: Option<Spanned<String>>,
}

/// The gate of one route; `key` names the route's keys (`routes[0].…`). The webhook
/// connects under the upstream allow-list `allow`.
pub(super) fn approval_gate(
    src: &Source,
    key: &dyn Fn(&str) -> String,
    raw: Option<&RawApproval>,
    allow: &Arc<AllowList>,
    connect_timeout: Duration,
) -> Result<Option<Arc<ApprovalGate>>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    if raw.tools.get_ref().is_empty() {
        return Err(src.invalid(&key("approval.tools"), &raw.tools, "name at least one tool (globs allowed)"));
    }
    let tools = raw
        .tools
        .get_ref()
        .iter()
        .enumerate()
        .map(|(i, g)| {
            Glob::new(g.get_ref()).map_err(|e| src.invalid(&key(&format!("approval.tools[{i}]")), g, e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let max_pending = match &raw.max_pending {
        None => DEFAULT_MAX_PENDING,
        Some(n) => usize::try_from(*n.get_ref())
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| src.invalid(&key("approval.max_pending"), n, "expected 1 to 10000"))?,
    };
    let webhook = match &raw.webhook {
        None => {
            if let Some(ca) = &raw.webhook_ca {
                return Err(src.invalid(&key("approval.webhook_ca"), ca, "only applies with `webhook`"));
            }
            None
        }
        Some(url) => Some(Arc::new(webhook(src, key, url, raw.webhook_ca.as_ref(), allow, connect_timeout)?)),
    };
    Ok(Some(Arc::new(ApprovalGate {
        tools,
        timeout: src.positive_duration(&key("approval.timeout"), raw.timeout.as_ref(), DEFAULT_TIMEOUT)?,
        max_pending,
        visible_arguments: raw.visible_arguments.clone().unwrap_or_default(),
        keepalive: src.positive_duration(&key("approval.keepalive"), raw.keepalive.as_ref(), DEFAULT_KEEPALIVE)?,
        webhook,
    })))
}

fn webhook(
    src: &Source,
    key: &dyn Fn(&str) -> String,
    url: &Spanned<String>,
    ca: Option<&Spanned<String>>,
    allow: &Arc<AllowList>,
    connect_timeout: Duration,
) -> Result<Webhook, ConfigError> {
    let bad = |why: &str| src.invalid(&key("approval.webhook"), url, why.to_owned());
    let uri: http::Uri = url.get_ref().parse().map_err(|_| bad("expected a URL such as \"http://10.0.0.9/hooks\""))?;
    let scheme = match uri.scheme_str() {
        Some("http") => Scheme::Http,
        Some("https") => Scheme::Https,
        _ => return Err(bad("scheme must be http:// or https://")),
    };
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(bad("credentials in the URL are not supported"));
    }
    let host = uri.host().ok_or_else(|| bad("missing host"))?.trim_start_matches('[').trim_end_matches(']').to_owned();
    let port = uri.port_u16().unwrap_or(if scheme == Scheme::Https { 443 } else { 80 });
    let tls = match (scheme, ca) {
        (Scheme::Http, Some(ca)) => {
            return Err(src.invalid(&key("approval.webhook_ca"), ca, "a CA only applies to an https:// webhook"))
        }
        (Scheme::Http, None) => None,
        (Scheme::Https, None) => return Err(bad("an https:// webhook needs `webhook_ca` (the PEM CA that signed it)")),
        (Scheme::Https, Some(ca)) => {
            let certs = src.certs(&key("approval.webhook_ca"), ca)?;
            let config = configs::upstream_client(&certs, &src.resolve(ca.get_ref()).display().to_string())
                .map_err(|e| src.invalid(&key("approval.webhook_ca"), ca, e.to_string()))?;
            Some(Arc::new(config))
        }
    };
    let target = UpstreamTarget { scheme, host, port, tls };
    Ok(Webhook { uri, client: UpstreamClient::new(&target, allow.clone(), connect_timeout) })
}
