//! Optional per-route authentication at the gateway, and Origin checking.
//!
//! By default the gateway passes `Authorization` through and the MCP server runs its own
//! OAuth. A route may instead have the gateway authenticate callers, with either
//! - [`BearerTokens`]: static tokens stored as SHA-256 hashes, compared in constant time, or
//! - [`JwtValidator`]: JWT access tokens checked against a JWKS file, issuer, audience,
//!   an algorithm allow-list, validity times and optional scopes.
//!
//! Failures become a 401/400/403 with a `WWW-Authenticate` challenge pointing at the
//! route's RFC 9728 metadata document ([`metadata`]). [`OriginPolicy`] rejects browser
//! requests from origins not on a route's allow-list (DNS-rebinding defence).
//!
//! Nothing here logs, and no error or `Debug` output contains a token or key material.

mod bearer;
mod error;
mod jwks;
mod jwt;
pub mod metadata;
mod origin;

#[cfg(test)]
mod jwt_tests;

use std::path::PathBuf;

use http::header::AUTHORIZATION;
use http::HeaderMap;

pub use bearer::{generate_token, hash_token, BearerTokens, RandomError};
pub use error::{AuthError, InvalidReason};
pub use jwt::{JwtSettings, JwtValidator, DEFAULT_ALGORITHMS, DEFAULT_LEEWAY, MAX_LEEWAY};
pub use metadata::{metadata_path, metadata_url, protected_resource_metadata, resource_url};
pub use origin::{OriginError, OriginPolicy};

/// Longest bearer token accepted (bytes); longer ones are refused before any parsing.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Who made an authenticated request, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Static token: the token's configured name. JWT: the `sub` claim.
    pub subject: String,
    /// JWT only: `client_id` (RFC 9068), else `azp`, when present.
    pub client_id: Option<String>,
}

/// How a route authenticates callers at the gateway.
#[derive(Debug)]
pub enum Authenticator {
    Bearer(BearerTokens),
    Jwt(JwtValidator),
}

impl Authenticator {
    /// Checks the request's `Authorization: Bearer` credentials.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Identity, AuthError> {
        let token = bearer_token(headers)?;
        match self {
            Authenticator::Bearer(tokens) => tokens.verify(token),
            Authenticator::Jwt(validator) => validator.validate(token),
        }
    }

    /// `"bearer"` or `"jwt"`, for logs and metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Authenticator::Bearer(_) => "bearer",
            Authenticator::Jwt(_) => "jwt",
        }
    }
}

/// The token from the request's single `Authorization: Bearer <token>` header.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or(AuthError::Missing)?;
    if values.next().is_some() {
        return Err(AuthError::Malformed);
    }
    let value = value.to_str().map_err(|_| AuthError::Malformed)?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    // RFC 9110 §11.1: the scheme is case-insensitive.
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::UnsupportedScheme);
    }
    let token = rest.trim_matches(' ');
    if token.is_empty() || token.len() > MAX_TOKEN_LEN || !is_b64token(token) {
        return Err(AuthError::Malformed);
    }
    Ok(token)
}

/// RFC 6750 §2.1 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty() && body.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// A route's authentication settings that cannot be used; raised at startup or reload.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("token {name:?}: {why} (expected \"sha256:\" and 64 hex digits, from `mcp-tunnel auth hash-token`)")]
    BadTokenHash { name: String, why: &'static str },
    #[error("a token has an empty name")]
    EmptyTokenName,
    #[error("token name {0:?} is used twice")]
    DuplicateTokenName(String),
    #[error("tokens {first:?} and {second:?} have the same hash")]
    DuplicateTokenHash { first: String, second: String },
    #[error("no tokens configured")]
    NoTokens,
    #[error("JWKS file {path}: cannot read it: {source}")]
    JwksRead { path: PathBuf, source: std::io::Error },
    #[error("JWKS file {path}: larger than {max} bytes")]
    JwksTooLarge { path: PathBuf, max: usize },
    #[error("JWKS file {path}: not JSON: {source}")]
    JwksJson { path: PathBuf, source: serde_json::Error },
    #[error("JWKS file {path}: expected an object with a \"keys\" array")]
    JwksShape { path: PathBuf },
    #[error("JWKS file {path}: key {index} holds private key material ({member:?}); publish only public keys")]
    JwksPrivateKey { path: PathBuf, index: usize, member: &'static str },
    #[error("JWKS file {path}: no usable keys for algorithms [{algorithms}] ({skipped})")]
    JwksNoUsableKeys { path: PathBuf, algorithms: String, skipped: String },
    #[error("JWT algorithm \"none\" is never allowed: unsigned tokens prove nothing")]
    AlgNone,
    #[error("JWT algorithm {0:?} is not supported (supported: RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 EdDSA, HS256 HS384 HS512)")]
    UnsupportedAlgorithm(String),
    #[error("JWT issuer must be set")]
    MissingIssuer,
    #[error("at least one JWT audience must be set (the route's resource URL)")]
    MissingAudience,
    #[error("JWT leeway {0:?} is larger than the maximum {max:?}", max = MAX_LEEWAY)]
    LeewayTooLarge(std::time::Duration),
    #[error(transparent)]
    Random(#[from] RandomError),
    #[error("origin {origin:?}: {why} (expected scheme://host[:port], e.g. \"https://app.example.com\")")]
    BadOrigin { origin: String, why: &'static str },
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn bearer_token_extraction() {
        assert_eq!(bearer_token(&headers(&["Bearer abc.DEF-_~+/=="])), Ok("abc.DEF-_~+/=="));
        assert_eq!(bearer_token(&headers(&["bearer  abc "])), Ok("abc"));
        assert_eq!(bearer_token(&headers(&[])), Err(AuthError::Missing));
        assert_eq!(bearer_token(&headers(&["Basic dXNlcjpwdw=="])), Err(AuthError::UnsupportedScheme));
        assert_eq!(bearer_token(&headers(&["Bearer"])), Err(AuthError::Malformed));
        assert_eq!(bearer_token(&headers(&["Bearer a b"])), Err(AuthError::Malformed));
        assert_eq!(bearer_token(&headers(&["Bearer =="])), Err(AuthError::Malformed));
        assert_eq!(bearer_token(&headers(&["Bearer a", "Bearer b"])), Err(AuthError::Malformed));
        let long = format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN + 1));
        assert_eq!(bearer_token(&headers(&[&long])), Err(AuthError::Malformed));
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_bytes(b"Bearer \xff").unwrap());
        assert_eq!(bearer_token(&h), Err(AuthError::Malformed));
    }
}
