//! Why a request failed authentication, and how that becomes a status and a
//! `WWW-Authenticate` challenge (RFC 6750 §3, RFC 9728 §5.1).
//!
//! No variant carries the presented token or any part of it, so neither `Display` nor
//! `Debug` can leak it into a log.

use http::{HeaderValue, StatusCode};

/// Why a request was refused. The proxy answers with [`AuthError::status`] and
/// [`AuthError::challenge`]; the audit trail records [`AuthError::reason`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header at all.
    #[error("no bearer token presented")]
    Missing,
    /// An `Authorization` header with another scheme (`Basic`, …). RFC 6750 §3.1 treats
    /// this like no credentials: a challenge without an error code.
    #[error("authorization scheme is not Bearer")]
    UnsupportedScheme,
    /// Several `Authorization` headers, a value that is not visible ASCII, or a token
    /// outside the RFC 6750 `b64token` syntax or over [`MAX_TOKEN_LEN`](super::MAX_TOKEN_LEN).
    #[error("malformed Authorization header")]
    Malformed,
    /// A bearer token was presented and is not acceptable.
    #[error("invalid token: {0}")]
    InvalidToken(InvalidReason),
    /// A valid token without every scope the route requires.
    #[error("token lacks a required scope")]
    InsufficientScope {
        /// The route's required scopes (configuration, not token content).
        required: Vec<String>,
    },
}

/// Why a presented token was rejected; [`InvalidReason::code`] is the audit reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidReason {
    /// Static bearer token that matches no configured hash.
    #[error("unknown token")]
    UnknownToken,
    /// Not a compact JWS (three base64url parts with a JSON header).
    #[error("malformed token")]
    MalformedToken,
    /// The header's `alg` is `none`, HMAC or otherwise not in the route's allow-list.
    #[error("algorithm not allowed")]
    AlgNotAllowed,
    /// The header carries `crit` extensions; we understand none (RFC 7515 §4.1.11).
    #[error("unsupported critical header")]
    UnsupportedCrit,
    /// The header's `kid` names no key in the JWKS.
    #[error("unknown key id")]
    UnknownKid,
    /// The `kid` key exists but cannot verify the header's `alg`.
    #[error("key does not match algorithm")]
    KeyAlgMismatch,
    /// No `kid`, and not exactly one key that can verify the header's `alg`.
    #[error("no single key for this algorithm")]
    NoMatchingKey,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// `exp` is in the past (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` names none of the configured audiences.
    #[error("wrong audience")]
    WrongAudience,
    /// `exp`, `iss`, `aud` or `sub` is missing or not of the right type.
    #[error("missing claim")]
    MissingClaim,
}

impl InvalidReason {
    /// Short machine code for the audit trail and metrics.
    pub fn code(self) -> &'static str {
        match self {
            InvalidReason::UnknownToken => "unknown_token",
            InvalidReason::MalformedToken => "malformed_token",
            InvalidReason::AlgNotAllowed => "alg_not_allowed",
            InvalidReason::UnsupportedCrit => "unsupported_crit",
            InvalidReason::UnknownKid => "unknown_kid",
            InvalidReason::KeyAlgMismatch => "key_alg_mismatch",
            InvalidReason::NoMatchingKey => "no_matching_key",
            InvalidReason::BadSignature => "bad_signature",
            InvalidReason::Expired => "token_expired",
            InvalidReason::NotYetValid => "token_not_yet_valid",
            InvalidReason::WrongIssuer => "wrong_issuer",
            InvalidReason::WrongAudience => "wrong_audience",
            InvalidReason::MissingClaim => "missing_claim",
        }
    }
}

impl AuthError {
    /// 401 for missing or invalid credentials, 400 for a malformed request, 403 for a
    /// valid token without the required scope (RFC 6750 §3.1).
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::Missing | AuthError::UnsupportedScheme | AuthError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            AuthError::Malformed => StatusCode::BAD_REQUEST,
            AuthError::InsufficientScope { .. } => StatusCode::FORBIDDEN,
        }
    }

    /// Short machine code for the audit trail, e.g. `token_expired`.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing_token",
            AuthError::UnsupportedScheme => "unsupported_scheme",
            AuthError::Malformed => "malformed_request",
            AuthError::InvalidToken(r) => r.code(),
            AuthError::InsufficientScope { .. } => "insufficient_scope",
        }
    }

    /// The RFC 6750 error code, if this failure carries one. Missing credentials carry
    /// none, so a client learns only that authentication is needed and where to look.
    pub fn error_code(&self) -> Option<&'static str> {
        match self {
            AuthError::Missing | AuthError::UnsupportedScheme => None,
            AuthError::Malformed => Some("invalid_request"),
            AuthError::InvalidToken(_) => Some("invalid_token"),
            AuthError::InsufficientScope { .. } => Some("insufficient_scope"),
        }
    }

    /// The `WWW-Authenticate` value for this failure, e.g.
    /// `Bearer resource_metadata="https://h/.well-known/oauth-protected-resource/mcp", error="invalid_token"`.
    /// An empty `metadata_url` leaves the parameter out.
    pub fn challenge(&self, metadata_url: &str) -> HeaderValue {
        let mut params = Vec::new();
        if !metadata_url.is_empty() {
            params.push(format!("resource_metadata=\"{}\"", quoted(metadata_url)));
        }
        if let Some(code) = self.error_code() {
            params.push(format!("error=\"{code}\""));
        }
        if let AuthError::InsufficientScope { required } = self {
            params.push(format!("scope=\"{}\"", quoted(&required.join(" "))));
        }
        let value = if params.is_empty() { "Bearer".to_owned() } else { format!("Bearer {}", params.join(", ")) };
        // `quoted` leaves only visible ASCII and spaces, which HeaderValue always accepts.
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
    }
}

/// The inside of an HTTP quoted-string: `"` and `\` escaped, anything but visible ASCII
/// and space dropped (configuration should never contain such bytes; this keeps the
/// header valid if it does).
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const META: &str = "https://t.example.com/.well-known/oauth-protected-resource/mcp";

    #[test]
    fn missing_token_challenge_has_no_error_code() {
        let e = AuthError::Missing;
        assert_eq!(e.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(e.reason(), "missing_token");
        assert_eq!(e.challenge(META), format!("Bearer resource_metadata=\"{META}\"").as_str());
    }

    #[test]
    fn invalid_token_challenge_names_the_error() {
        let e = AuthError::InvalidToken(InvalidReason::Expired);
        assert_eq!(e.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(e.reason(), "token_expired");
        assert_eq!(e.challenge(META), format!("Bearer resource_metadata=\"{META}\", error=\"invalid_token\"").as_str());
    }

    #[test]
    fn insufficient_scope_is_403_and_lists_scopes() {
        let e = AuthError::InsufficientScope { required: vec!["mcp:read".into(), "mcp:write".into()] };
        assert_eq!(e.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            e.challenge(META),
            format!("Bearer resource_metadata=\"{META}\", error=\"insufficient_scope\", scope=\"mcp:read mcp:write\"")
                .as_str()
        );
    }

    #[test]
    fn malformed_is_400_and_challenge_survives_hostile_url() {
        let e = AuthError::Malformed;
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert_eq!(e.challenge("a\"b\\c\r\nd"), "Bearer resource_metadata=\"a\\\"b\\\\cd\", error=\"invalid_request\"");
        assert_eq!(AuthError::UnsupportedScheme.challenge(""), "Bearer");
    }
}
