//! What a route checks and records beyond forwarding: `allowed_origins`,
//! `[routes.auth]`, `[routes.policy]` and `[routes.audit]`; and the gateway's `[audit]` sink.

use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Source};
use crate::audit::SinkConfig;
use crate::auth::{Authenticator, BearerTokens, JwtSettings, JwtValidator, OriginPolicy, DEFAULT_LEEWAY};
use crate::gateway::route::RouteControls;
use crate::mcp::{Glob, RedactMode, ToolPolicy};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    mode: Spanned<String>,
    tokens: Option<Vec<RawToken>>,
    jwks: Option<Spanned<String>>,
    issuer: Option<Spanned<String>>,
    audiences: Option<Vec<String>>,
    algorithms: Option<Vec<String>>,
    leeway: Option<Spanned<String>>,
    required_scopes: Option<Vec<String>>,
    authorization_servers: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: String,
    hash: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    allow_tools: Option<Vec<Spanned<String>>>,
    deny_tools: Option<Vec<Spanned<String>>>,
    deny_methods: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRouteAudit {
    clear_arguments: Option<Vec<String>>,
    #[serde(default)]
    hash_arguments: bool,
}

/// The parts of a `[[routes]]` entry this module reads.
pub(super) struct RawControls<'a> {
    pub allowed_origins: Option<&'a Vec<Spanned<String>>>,
    pub auth: Option<&'a RawAuth>,
    pub policy: Option<&'a RawPolicy>,
    pub audit: Option<&'a RawRouteAudit>,
    /// The route's table position, for errors without a better span.
    pub at: &'a Spanned<String>,
}

pub(super) fn route_controls(
    src: &Source,
    key: &dyn Fn(&str) -> String,
    raw: RawControls<'_>,
) -> Result<RouteControls, ConfigError> {
    let origins = match raw.allowed_origins {
        None => OriginPolicy::default(),
        Some(list) => {
            let values = list.iter().map(|v| v.get_ref().clone()).collect();
            let at = list.first().unwrap_or(raw.at);
            OriginPolicy::new(values).map_err(|e| src.invalid(&key("allowed_origins"), at, e.to_string()))?
        }
    };
    let (auth, authorization_servers, scopes) = match raw.auth {
        None => (None, Vec::new(), Vec::new()),
        Some(a) => authenticator(src, key, a)?,
    };
    let policy = match raw.policy {
        None => ToolPolicy::default(),
        Some(p) => ToolPolicy {
            allow: globs(src, &key("policy.allow_tools"), p.allow_tools.as_ref())?,
            deny: globs(src, &key("policy.deny_tools"), p.deny_tools.as_ref())?,
            deny_methods: globs(src, &key("policy.deny_methods"), p.deny_methods.as_ref())?,
        },
    };
    let (clear_arguments, redact_mode) = match raw.audit {
        None => (Vec::new(), RedactMode::Redact),
        Some(a) => (
            a.clear_arguments.clone().unwrap_or_default(),
            if a.hash_arguments { RedactMode::Hash } else { RedactMode::Redact },
        ),
    };
    Ok(RouteControls {
        auth: auth.map(Arc::new),
        authorization_servers,
        scopes,
        origins,
        policy: Arc::new(policy),
        clear_arguments,
        redact_mode,
        approval: None,
        pinning: crate::pinning::PinSettings::default(),
    })
}

fn globs(src: &Source, key: &str, list: Option<&Vec<Spanned<String>>>) -> Result<Vec<Glob>, ConfigError> {
    list.into_iter()
        .flatten()
        .enumerate()
        .map(|(i, g)| Glob::new(g.get_ref()).map_err(|e| src.invalid(&format!("{key}[{i}]"), g, e.to_string())))
        .collect()
}

type AuthParts = (Option<Authenticator>, Vec<String>, Vec<String>);

fn authenticator(src: &Source, key: &dyn Fn(&str) -> String, a: &RawAuth) -> Result<AuthParts, ConfigError> {
    let servers = a.authorization_servers.clone().unwrap_or_default();
    match a.mode.get_ref().as_str() {
        "bearer" => {
            let entries: Vec<(String, String)> =
                a.tokens.iter().flatten().map(|t| (t.name.clone(), t.hash.clone())).collect();
            if entries.is_empty() {
                return Err(src.invalid(&key("auth.tokens"), &a.mode, "mode \"bearer\" needs at least one token"));
            }
            let tokens =
                BearerTokens::new(entries).map_err(|e| src.invalid(&key("auth.tokens"), &a.mode, e.to_string()))?;
            Ok((Some(Authenticator::Bearer(tokens)), servers, Vec::new()))
        }
        "jwt" => {
            let need = |k: &str| src.invalid(&key(&format!("auth.{k}")), &a.mode, format!("mode \"jwt\" needs `{k}`"));
            let jwks = a.jwks.as_ref().ok_or_else(|| need("jwks"))?;
            let issuer = a.issuer.as_ref().ok_or_else(|| need("issuer"))?;
            let audiences = a.audiences.clone().filter(|v| !v.is_empty()).ok_or_else(|| need("audiences"))?;
            let settings = JwtSettings {
                issuer: issuer.get_ref().clone(),
                audiences,
                algorithms: a.algorithms.clone().unwrap_or_default(),
                leeway: src.duration(&key("auth.leeway"), a.leeway.as_ref(), DEFAULT_LEEWAY)?,
                required_scopes: a.required_scopes.clone().unwrap_or_default(),
            };
            let scopes = settings.required_scopes.clone();
            let validator = JwtValidator::from_file(&src.resolve(jwks.get_ref()), settings)
                .map_err(|e| src.invalid(&key("auth.jwks"), jwks, e.to_string()))?;
            // Clients discover where to get a token from the route's metadata document.
            let servers = if servers.is_empty() { vec![issuer.get_ref().clone()] } else { servers };
            Ok((Some(Authenticator::Jwt(validator)), servers, scopes))
        }
        _ => Err(src.invalid(&key("auth.mode"), &a.mode, "expected \"bearer\" or \"jwt\"")),
    }
}

/// The gateway's `[audit]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAudit {
    sink: Spanned<String>,
    path: Option<Spanned<String>>,
    max_bytes: Option<Spanned<i64>>,
    keep: Option<Spanned<i64>>,
    queue: Option<Spanned<i64>>,
}

/// Where audit records go and how many may wait to be written.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// `None`: audit records are off.
    pub sink: Option<SinkConfig>,
    /// Records queued for the writer before new ones are dropped (and counted).
    pub queue: usize,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self { sink: Some(SinkConfig::Stdout), queue: 10_000 }
    }
}

pub(super) fn audit_settings(src: &Source, raw: Option<&RawAudit>) -> Result<AuditSettings, ConfigError> {
    let d = AuditSettings::default();
    let Some(raw) = raw else { return Ok(d) };
    let ranged = |k: &str, v: &Option<Spanned<i64>>, default: u64, min: u64, max: u64| match v {
        None => Ok(default),
        Some(n) => u64::try_from(*n.get_ref())
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| src.invalid(&format!("audit.{k}"), n, format!("expected {min} to {max}"))),
    };
    let queue = ranged("queue", &raw.queue, d.queue as u64, 1, 10_000_000)? as usize;
    let sink = match raw.sink.get_ref().as_str() {
        "off" => None,
        "stdout" => Some(SinkConfig::Stdout),
        "file" => {
            let path =
                raw.path.as_ref().ok_or_else(|| src.invalid("audit.path", &raw.sink, "sink \"file\" needs `path`"))?;
            Some(SinkConfig::File {
                path: src.resolve(path.get_ref()),
                max_bytes: ranged("max_bytes", &raw.max_bytes, 100 << 20, 1, u64::MAX >> 1)?,
                keep: ranged("keep", &raw.keep, 5, 0, 1000)? as u32,
            })
        }
        _ => return Err(src.invalid("audit.sink", &raw.sink, "expected \"stdout\", \"file\" or \"off\"")),
    };
    Ok(AuditSettings { sink, queue })
}
