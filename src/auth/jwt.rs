//! JWT access tokens (RFC 9068 style) checked at the gateway: signature against a JWKS
//! file, `iss`, `aud`, `exp`/`nbf`, an algorithm allow-list and optional scopes.
//!
//! `jsonwebtoken` does the signature and claim checks. Before it runs, we read the
//! header ourselves to enforce the allow-list by name (so `none` and unlisted HMAC algs
//! get a precise audit reason) and to pick exactly one key by `kid` and algorithm.
//!
//! HMAC (`HS256`…) is off unless listed: an HMAC key is a shared secret, so whoever can
//! verify can also mint tokens, the JWKS file becomes a secret, and "HS256 signed with
//! the RSA public key" is the classic algorithm-confusion attack. Even when listed, an
//! HMAC algorithm only ever uses `kty: "oct"` keys (see [`super::jwks`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::jwks::{self, VerifyingKey};
use super::{AuthConfigError, AuthError, Identity, InvalidReason};

/// Used when the route lists no algorithms: every asymmetric one `jsonwebtoken` supports.
pub const DEFAULT_ALGORITHMS: &[&str] =
    &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];
/// Clock skew tolerated on `exp` and `nbf` when the route sets none.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// More skew than this would keep expired tokens alive; refused at load.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// A route's JWT settings, as the config gives them.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    /// Exact `iss` value required (compared byte for byte; a trailing `/` matters).
    pub issuer: String,
    /// Accepted `aud` values; at least one. Normally the route's resource URL (RFC 8707).
    pub audiences: Vec<String>,
    /// Allowed `alg` names; empty means [`DEFAULT_ALGORITHMS`]. `none` is refused.
    pub algorithms: Vec<String>,
    /// Clock skew tolerated on `exp`/`nbf`, at most [`MAX_LEEWAY`].
    pub leeway: Duration,
    /// Scopes the token must all carry (`scope` string or `scp` array); may be empty.
    pub required_scopes: Vec<String>,
}

/// Validates JWTs for one route. Built once per config load.
pub struct JwtValidator {
    source: PathBuf,
    issuer: String,
    /// The allow-list; a key is used only for the ones it fits (see [`super::jwks`]).
    algorithms: Vec<Algorithm>,
    required_scopes: Vec<String>,
    keys: Vec<VerifyingKey>,
    /// Claim checks shared by every token; `algorithms` is set per token.
    validation: Validation,
}

impl JwtValidator {
    /// Checks `settings` and loads the keys from the JWKS file at `jwks`.
    pub fn from_file(jwks: &Path, settings: JwtSettings) -> Result<Self, AuthConfigError> {
        let algorithms = parse_algorithms(&settings.algorithms)?;
        let issuer = settings.issuer.trim().to_owned();
        if issuer.is_empty() {
            return Err(AuthConfigError::MissingIssuer);
        }
        let audiences: Vec<String> =
            settings.audiences.iter().map(|a| a.trim().to_owned()).filter(|a| !a.is_empty()).collect();
        if audiences.is_empty() {
            return Err(AuthConfigError::MissingAudience);
        }
        if settings.leeway > MAX_LEEWAY {
            return Err(AuthConfigError::LeewayTooLarge(settings.leeway));
        }
        let keys = jwks::load(jwks, &algorithms)?;

        let mut validation = Validation::new(Algorithm::ES256);
        // jsonwebtoken skips `iss`/`aud` checks when the claim is absent unless it is
        // listed here, so all four are required explicitly.
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.set_issuer(&[&issuer]);
        validation.set_audience(&audiences);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = settings.leeway.as_secs();
        let required_scopes = settings.required_scopes;
        Ok(JwtValidator { source: jwks.into(), issuer, algorithms, required_scopes, keys, validation })
    }

    /// The configured issuer (usually also the authorization server for RFC 9728 metadata).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The scopes every token must carry.
    pub fn required_scopes(&self) -> &[String] {
        &self.required_scopes
    }

    /// Validates one compact JWT and returns who it names.
    pub fn validate(&self, token: &str) -> Result<Identity, AuthError> {
        self.check(token).map_err(AuthError::InvalidToken).and_then(|claims| self.identity(&claims))
    }

    fn check(&self, token: &str) -> Result<Map<String, Value>, InvalidReason> {
        let header = peek_header(token)?;
        let alg: Algorithm = header.alg.parse().map_err(|_| InvalidReason::AlgNotAllowed)?;
        if !self.algorithms.contains(&alg) {
            return Err(InvalidReason::AlgNotAllowed);
        }
        if header.crit.is_some() {
            return Err(InvalidReason::UnsupportedCrit);
        }
        let key = self.select_key(header.kid.as_deref(), alg)?;
        let mut validation = self.validation.clone();
        validation.algorithms = vec![alg];
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation)
            .map_err(|e| reason_for(e.kind()))?;
        Ok(data.claims)
    }

    /// With a `kid`, the one key of that id; without, the one key that can verify `alg`.
    fn select_key(&self, kid: Option<&str>, alg: Algorithm) -> Result<&VerifyingKey, InvalidReason> {
        let fitting = |k: &&VerifyingKey| k.algorithms.contains(&alg);
        let candidates: Vec<&VerifyingKey> = match kid {
            Some(kid) => {
                let named: Vec<_> = self.keys.iter().filter(|k| k.kid.as_deref() == Some(kid)).collect();
                if named.is_empty() {
                    return Err(InvalidReason::UnknownKid);
                }
                let fit: Vec<_> = named.into_iter().filter(fitting).collect();
                if fit.is_empty() {
                    return Err(InvalidReason::KeyAlgMismatch);
                }
                fit
            }
            None => self.keys.iter().filter(fitting).collect(),
        };
        match candidates.as_slice() {
            [one] => Ok(one),
            _ => Err(InvalidReason::NoMatchingKey),
        }
    }

    fn identity(&self, claims: &Map<String, Value>) -> Result<Identity, AuthError> {
        let subject = claims.get("sub").and_then(Value::as_str).filter(|s| !s.is_empty());
        let subject = subject.ok_or(AuthError::InvalidToken(InvalidReason::MissingClaim))?.to_owned();
        let client_id =
            ["client_id", "azp"].iter().find_map(|c| claims.get(*c).and_then(Value::as_str)).map(str::to_owned);
        if !self.required_scopes.is_empty() {
            let granted = token_scopes(claims);
            if !self.required_scopes.iter().all(|s| granted.contains(&s.as_str())) {
                return Err(AuthError::InsufficientScope { required: self.required_scopes.clone() });
            }
        }
        Ok(Identity { subject, client_id })
    }
}

impl std::fmt::Debug for JwtValidator {
    /// Settings and key ids only, never key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtValidator")
            .field("jwks", &self.source)
            .field("issuer", &self.issuer)
            .field("audiences", &self.validation.aud)
            .field("algorithms", &self.algorithms)
            .field("leeway_secs", &self.validation.leeway)
            .field("required_scopes", &self.required_scopes)
            .field("keys", &self.keys)
            .finish()
    }
}

/// The allow-list from config names; empty means [`DEFAULT_ALGORITHMS`].
fn parse_algorithms(names: &[String]) -> Result<Vec<Algorithm>, AuthConfigError> {
    let names: Vec<&str> =
        if names.is_empty() { DEFAULT_ALGORITHMS.to_vec() } else { names.iter().map(|n| n.trim()).collect() };
    let mut out = Vec::new();
    for name in names {
        if name.eq_ignore_ascii_case("none") {
            return Err(AuthConfigError::AlgNone);
        }
        let alg: Algorithm = name.parse().map_err(|_| AuthConfigError::UnsupportedAlgorithm(name.to_owned()))?;
        if !out.contains(&alg) {
            out.push(alg);
        }
    }
    Ok(out)
}

/// The JOSE header members we act on before verification.
#[derive(Deserialize)]
struct PeekHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<Value>,
}

/// Reads the header of a compact JWS (exactly three parts; a five-part JWE is refused).
fn peek_header(token: &str) -> Result<PeekHeader, InvalidReason> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(InvalidReason::MalformedToken);
    };
    let bytes = URL_SAFE_NO_PAD.decode(header).map_err(|_| InvalidReason::MalformedToken)?;
    serde_json::from_slice(&bytes).map_err(|_| InvalidReason::MalformedToken)
}

fn reason_for(kind: &ErrorKind) -> InvalidReason {
    match kind {
        ErrorKind::ExpiredSignature => InvalidReason::Expired,
        ErrorKind::ImmatureSignature => InvalidReason::NotYetValid,
        ErrorKind::InvalidIssuer => InvalidReason::WrongIssuer,
        ErrorKind::InvalidAudience => InvalidReason::WrongAudience,
        ErrorKind::MissingRequiredClaim(_) => InvalidReason::MissingClaim,
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat
        | ErrorKind::Crypto(_) => InvalidReason::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm | ErrorKind::InvalidAlgorithmName => {
            InvalidReason::AlgNotAllowed
        }
        _ => InvalidReason::MalformedToken,
    }
}

/// Scopes granted by the `scope` string (RFC 8693/9068) and the `scp` claim (string or array).
fn token_scopes(claims: &Map<String, Value>) -> Vec<&str> {
    let mut out = Vec::new();
    if let Some(Value::String(s)) = claims.get("scope") {
        out.extend(s.split_whitespace());
    }
    match claims.get("scp") {
        Some(Value::String(s)) => out.extend(s.split_whitespace()),
        Some(Value::Array(items)) => out.extend(items.iter().filter_map(Value::as_str)),
        _ => {}
    }
    out
}
