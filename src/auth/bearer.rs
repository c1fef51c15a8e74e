//! Static bearer tokens, configured as SHA-256 hashes so the config file never holds a
//! usable credential.
//!
//! A presented token is hashed and compared with every configured hash in constant time:
//! both sides go through HMAC under a random per-process key and `ring::hmac::verify`
//! compares the tags (ring documents that as constant-time; its bare slice compare is
//! deprecated with no side-channel promise). Plain SHA-256 (no salt, no stretching) is enough because tokens are meant to be
//! [`generate_token`] output: 256 random bits cannot be guessed from their hash.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::digest::{digest, SHA256, SHA256_OUTPUT_LEN};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use super::{AuthConfigError, AuthError, Identity, InvalidReason};

const HASH_PREFIX: &str = "sha256:";
/// Prefix of generated tokens, so secret scanners and people recognise them.
const TOKEN_PREFIX: &str = "mcpt_";
/// Random bytes in a generated token.
const TOKEN_BYTES: usize = 32;

/// `sha256:<64 lower-case hex>` of `token`, the form the config stores.
pub fn hash_token(token: &str) -> String {
    let d = digest(&SHA256, token.as_bytes());
    let mut out = String::with_capacity(HASH_PREFIX.len() + 2 * SHA256_OUTPUT_LEN);
    out.push_str(HASH_PREFIX);
    for b in d.as_ref() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The operating system's random generator failed (it never should on Linux).
#[derive(Debug, thiserror::Error)]
#[error("the system random number generator failed")]
pub struct RandomError;

/// A new token: `mcpt_` and 256 random bits in URL-safe base64 (48 characters).
pub fn generate_token() -> Result<String, RandomError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    SystemRandom::new().fill(&mut bytes).map_err(|_| RandomError)?;
    Ok(format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// One configured token: its name (the caller's identity) and hash.
struct Entry {
    name: String,
    hash: [u8; SHA256_OUTPUT_LEN],
    /// HMAC of `hash` under [`BearerTokens::key`].
    tag: hmac::Tag,
}

/// The set of static tokens a route accepts.
pub struct BearerTokens {
    entries: Vec<Entry>,
    /// Random per instance; only blinds the comparison, never leaves memory.
    key: hmac::Key,
}

impl BearerTokens {
    /// `entries` are `(name, "sha256:<hex>")` pairs. Names and hashes must be unique.
    pub fn new(entries: Vec<(String, String)>) -> Result<Self, AuthConfigError> {
        if entries.is_empty() {
            return Err(AuthConfigError::NoTokens);
        }
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new()).map_err(|_| RandomError)?;
        let mut parsed: Vec<Entry> = Vec::with_capacity(entries.len());
        for (name, hash) in entries {
            if name.trim().is_empty() {
                return Err(AuthConfigError::EmptyTokenName);
            }
            let hash = parse_hash(&hash).map_err(|why| AuthConfigError::BadTokenHash { name: name.clone(), why })?;
            if parsed.iter().any(|e| e.name == name) {
                return Err(AuthConfigError::DuplicateTokenName(name));
            }
            if let Some(e) = parsed.iter().find(|e| e.hash == hash) {
                return Err(AuthConfigError::DuplicateTokenHash { first: e.name.clone(), second: name });
            }
            let tag = hmac::sign(&key, &hash);
            parsed.push(Entry { name, hash, tag });
        }
        Ok(BearerTokens { entries: parsed, key })
    }

    /// The identity of the configured token equal to `token`.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let presented = digest(&SHA256, token.as_bytes());
        // Compare against every entry, without stopping at a match, so timing does not
        // reveal which entry (if any) matched.
        let mut found: Option<&Entry> = None;
        for e in &self.entries {
            let equal = hmac::verify(&self.key, presented.as_ref(), e.tag.as_ref()).is_ok();
            if equal && found.is_none() {
                found = Some(e);
            }
        }
        match found {
            Some(e) => Ok(Identity { subject: e.name.clone(), client_id: None }),
            None => Err(AuthError::InvalidToken(InvalidReason::UnknownToken)),
        }
    }

    /// The configured token names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.name.as_str())
    }
}

impl std::fmt::Debug for BearerTokens {
    /// Names and a short hash prefix only: enough to tell entries apart, useless to an attacker.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut list = f.debug_list();
        for e in &self.entries {
            list.entry(&format_args!("{} (sha256:{:02x}{:02x}…)", e.name, e.hash[0], e.hash[1]));
        }
        list.finish()
    }
}

fn parse_hash(s: &str) -> Result<[u8; SHA256_OUTPUT_LEN], &'static str> {
    let hex = s.trim().strip_prefix(HASH_PREFIX).ok_or("missing the \"sha256:\" prefix")?;
    if hex.len() != 2 * SHA256_OUTPUT_LEN {
        return Err("wrong length");
    }
    let mut out = [0u8; SHA256_OUTPUT_LEN];
    for (i, pair) in hex.as_bytes().chunks_exact(2).enumerate() {
        let hi = hex_digit(pair[0]).ok_or("not hexadecimal")?;
        let lo = hex_digit(pair[1]).ok_or("not hexadecimal")?;
        out[i] = (hi << 4) | lo;
    }
    Ok(out)
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Authenticator;
    use http::{HeaderMap, HeaderValue, StatusCode};

    fn request(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
        h
    }

    #[test]
    fn hash_is_sha256_hex() {
        // SHA-256("abc") from FIPS 180-2.
        assert_eq!(hash_token("abc"), "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn generated_tokens_are_long_random_and_url_safe() {
        let a = generate_token().unwrap();
        let b = generate_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 43);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        let body = URL_SAFE_NO_PAD.decode(a.strip_prefix(TOKEN_PREFIX).unwrap()).unwrap();
        assert_eq!(body.len(), 32);
    }

    #[test]
    fn right_token_gives_its_name_wrong_token_is_rejected() {
        let alice = generate_token().unwrap();
        let bob = generate_token().unwrap();
        let auth = Authenticator::Bearer(
            BearerTokens::new(vec![
                ("alice".into(), hash_token(&alice)),
                ("bob".into(), hash_token(&bob).to_uppercase().replace("SHA256:", "sha256:")),
            ])
            .unwrap(),
        );
        assert_eq!(auth.kind(), "bearer");
        assert_eq!(auth.authenticate(&request(&alice)).unwrap().subject, "alice");
        assert_eq!(auth.authenticate(&request(&bob)).unwrap(), Identity { subject: "bob".into(), client_id: None });

        let wrong = generate_token().unwrap();
        let err = auth.authenticate(&request(&wrong)).unwrap_err();
        assert_eq!(err, AuthError::InvalidToken(InvalidReason::UnknownToken));
        assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(err.reason(), "unknown_token");
        // The hash itself is not the token.
        let hash = hash_token(&alice);
        assert!(auth.authenticate(&request(hash.trim_start_matches("sha256:"))).is_err());
        assert_eq!(auth.authenticate(&HeaderMap::new()).unwrap_err(), AuthError::Missing);
    }

    #[test]
    fn bad_config_is_rejected_clearly() {
        let good = hash_token("t");
        let err = |entries: Vec<(&str, &str)>| {
            BearerTokens::new(entries.into_iter().map(|(a, b)| (a.to_owned(), b.to_owned())).collect())
                .unwrap_err()
                .to_string()
        };
        let msg = err(vec![("ci", "plaintext-token")]);
        assert!(msg.contains("\"ci\"") && msg.contains("missing the \"sha256:\" prefix"), "{msg}");
        assert!(err(vec![("ci", "sha256:abcd")]).contains("wrong length"));
        let not_hex = format!("sha256:{}", "g".repeat(64));
        assert!(err(vec![("ci", &not_hex)]).contains("not hexadecimal"));
        assert!(err(vec![("", &good)]).contains("empty name"));
        assert!(err(vec![("a", &good), ("a", &hash_token("u"))]).contains("used twice"));
        assert!(err(vec![("a", &good), ("b", &good)]).contains("same hash"));
        assert!(err(vec![]).contains("no tokens"));
    }

    #[test]
    fn errors_never_show_the_presented_token() {
        let auth = Authenticator::Bearer(BearerTokens::new(vec![("ci".into(), hash_token("right"))]).unwrap());
        let presented = generate_token().unwrap();
        for headers in [request(&presented), request(&format!("{presented} extra"))] {
            let err = auth.authenticate(&headers).unwrap_err();
            for shown in [err.to_string(), format!("{err:?}"), format!("{:?}", err.challenge("https://h/m"))] {
                assert!(!shown.contains(&presented) && !shown.contains(&presented[5..15]), "{shown}");
            }
        }
    }

    #[test]
    fn debug_shows_names_not_hashes() {
        let hash = hash_token("secret-token");
        let tokens = BearerTokens::new(vec![("ci".into(), hash.clone())]).unwrap();
        let dbg = format!("{tokens:?}");
        assert!(dbg.contains("ci"));
        assert!(!dbg.contains(&hash[7..20]), "{dbg}");
        assert_eq!(tokens.names().collect::<Vec<_>>(), ["ci"]);
    }
}
