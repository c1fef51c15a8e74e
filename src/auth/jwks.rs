//! Reading a JWKS file (RFC 7517) into verification keys, each tied to the algorithms
//! it may verify.
//!
//! Tying a key to algorithms by its own type (`kty`/`crv`, and `alg` when the JWK names
//! one) is what stops algorithm confusion: an RSA or EC public key is never handed to an
//! HMAC check, whatever the token's header claims.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use super::AuthConfigError;

/// A JWKS file is a handful of public keys; anything bigger is a wrong path.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// One usable key from the file.
pub(crate) struct VerifyingKey {
    pub kid: Option<String>,
    /// The allowed algorithms this key can verify (never empty).
    pub algorithms: Vec<Algorithm>,
    pub key: DecodingKey,
}

impl std::fmt::Debug for VerifyingKey {
    /// Key id and algorithms only, never key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {:?}", self.kid.as_deref().unwrap_or("(no kid)"), self.algorithms)
    }
}

/// Loads `path`, keeping the keys that can verify at least one of `allowed`.
pub(crate) fn load(path: &Path, allowed: &[Algorithm]) -> Result<Vec<VerifyingKey>, AuthConfigError> {
    let bytes = std::fs::read(path).map_err(|source| AuthConfigError::JwksRead { path: path.into(), source })?;
    if bytes.len() > MAX_JWKS_BYTES {
        return Err(AuthConfigError::JwksTooLarge { path: path.into(), max: MAX_JWKS_BYTES });
    }
    parse(path, &bytes, allowed)
}

/// Parses JWKS bytes; `path` only names the source in errors.
pub(crate) fn parse(path: &Path, bytes: &[u8], allowed: &[Algorithm]) -> Result<Vec<VerifyingKey>, AuthConfigError> {
    let doc: Value =
        serde_json::from_slice(bytes).map_err(|source| AuthConfigError::JwksJson { path: path.into(), source })?;
    let keys = doc.get("keys").and_then(Value::as_array).ok_or(AuthConfigError::JwksShape { path: path.into() })?;
    let mut usable = Vec::new();
    let mut skipped = Vec::new();
    for (index, jwk) in keys.iter().enumerate() {
        let Some(jwk) = jwk.as_object() else {
            skipped.push(format!("key {index}: not an object"));
            continue;
        };
        match key_from_jwk(path, index, jwk, allowed)? {
            Ok(key) => usable.push(key),
            Err(why) => skipped.push(format!("key {index}{}: {why}", kid_label(jwk))),
        }
    }
    if usable.is_empty() {
        let algorithms = allowed.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>().join(" ");
        let skipped = if skipped.is_empty() { "the file lists no keys".to_owned() } else { skipped.join("; ") };
        return Err(AuthConfigError::JwksNoUsableKeys { path: path.into(), algorithms, skipped });
    }
    Ok(usable)
}

fn kid_label(jwk: &Map<String, Value>) -> String {
    match jwk.get("kid").and_then(Value::as_str) {
        Some(kid) => format!(" (kid {kid:?})"),
        None => String::new(),
    }
}

/// The outer `Err` aborts loading (private key material in the file); the inner one
/// skips this key with a reason.
fn key_from_jwk(
    path: &Path,
    index: usize,
    jwk: &Map<String, Value>,
    allowed: &[Algorithm],
) -> Result<Result<VerifyingKey, String>, AuthConfigError> {
    let kty = jwk.get("kty").and_then(Value::as_str).unwrap_or("");
    // A JWKS is published material: private members mean someone exported the wrong
    // thing, and the file should be treated as a leaked key, not quietly used.
    for member in ["d", "p", "q", "dp", "dq", "qi", "oth"] {
        if jwk.contains_key(member) {
            return Err(AuthConfigError::JwksPrivateKey { path: PathBuf::from(path), index, member });
        }
    }
    Ok(usable_key(kty, jwk, allowed))
}

fn usable_key(kty: &str, jwk: &Map<String, Value>, allowed: &[Algorithm]) -> Result<VerifyingKey, String> {
    let str_member = |name: &str| jwk.get(name).and_then(Value::as_str);
    if let Some(u) = jwk.get("use") {
        if u.as_str() != Some("sig") {
            return Err("\"use\" is not \"sig\"".into());
        }
    }
    if let Some(ops) = jwk.get("key_ops") {
        if !ops.as_array().is_some_and(|ops| ops.iter().any(|o| o.as_str() == Some("verify"))) {
            return Err("\"key_ops\" lacks \"verify\"".into());
        }
    }
    let b64 = |name: &str| -> Result<Vec<u8>, String> {
        let v = str_member(name).ok_or_else(|| format!("missing {name:?}"))?;
        URL_SAFE_NO_PAD.decode(v).map_err(|_| format!("{name:?} is not base64url"))
    };
    let (mut algorithms, key) = match kty {
        "RSA" => {
            // ring wants minimal big-endian integers; some publishers pad with zero bytes.
            let n: Vec<u8> = b64("n")?.into_iter().skip_while(|b| *b == 0).collect();
            let e: Vec<u8> = b64("e")?.into_iter().skip_while(|b| *b == 0).collect();
            // ring refuses RSA keys under 2048 bits at verify time; say so at load time.
            let bits = n.len() * 8;
            if bits < 2048 {
                return Err(format!("RSA modulus of about {bits} bits; at least 2048 needed"));
            }
            use Algorithm::*;
            (vec![RS256, RS384, RS512, PS256, PS384, PS512], DecodingKey::from_rsa_raw_components(&n, &e))
        }
        "EC" => {
            let (alg, len) = match str_member("crv") {
                Some("P-256") => (Algorithm::ES256, 32),
                Some("P-384") => (Algorithm::ES384, 48),
                other => return Err(format!("unsupported curve {other:?}")),
            };
            let (x, y) = (b64("x")?, b64("y")?);
            if x.len() != len || y.len() != len {
                return Err("coordinates of the wrong length".into());
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(0x04); // uncompressed SEC1 point, as ring expects
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            // Despite its name, `from_ec_der` just keeps the bytes, and ring verifies with the
            // raw point; `from_ec_components` does the same after decoding base64 again.
            (vec![alg], DecodingKey::from_ec_der(&point))
        }
        "OKP" => {
            if str_member("crv") != Some("Ed25519") {
                return Err(format!("unsupported curve {:?}", str_member("crv")));
            }
            let x = b64("x")?;
            if x.len() != 32 {
                return Err("Ed25519 key of the wrong length".into());
            }
            (vec![Algorithm::EdDSA], DecodingKey::from_ed_der(&x)) // raw 32-byte key, as above
        }
        "oct" => {
            let k = b64("k")?;
            if k.len() < 32 {
                return Err("HMAC secret shorter than 256 bits".into());
            }
            use Algorithm::*;
            (vec![HS256, HS384, HS512], DecodingKey::from_secret(&k))
        }
        other => return Err(format!("unsupported key type {other:?}")),
    };
    if let Some(alg) = jwk.get("alg") {
        let named = alg.as_str().and_then(|a| a.parse::<Algorithm>().ok()).filter(|a| algorithms.contains(a));
        let Some(named) = named else {
            return Err(format!("\"alg\" {alg} does not fit the key type or is not supported"));
        };
        algorithms = vec![named];
    }
    algorithms.retain(|a| allowed.contains(a));
    if algorithms.is_empty() {
        return Err("none of its algorithms is allowed".into());
    }
    Ok(VerifyingKey { kid: str_member("kid").map(str::to_owned), algorithms, key })
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "/etc/mcpt/jwks.json";
    const X32: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"; // 32 zero bytes

    fn load_str(json: &str, allowed: &[Algorithm]) -> Result<Vec<VerifyingKey>, String> {
        parse(Path::new(P), json.as_bytes(), allowed).map_err(|e| e.to_string())
    }

    #[test]
    fn keys_are_tied_to_their_algorithms() {
        let json = format!(
            r#"{{"keys":[
              {{"kty":"OKP","crv":"Ed25519","x":"{X32}","kid":"ed"}},
              {{"kty":"EC","crv":"P-256","x":"{X32}","y":"{X32}","use":"sig"}},
              {{"kty":"EC","crv":"P-256","x":"{X32}","y":"{X32}","use":"enc"}},
              {{"kty":"EC","crv":"P-521","x":"{X32}","y":"{X32}"}},
              {{"kty":"oct","k":"{X32}"}}
            ]}}"#
        );
        let keys = load_str(&json, &[Algorithm::ES256, Algorithm::EdDSA]).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!((keys[0].kid.as_deref(), keys[0].algorithms.as_slice()), (Some("ed"), &[Algorithm::EdDSA][..]));
        assert_eq!((keys[1].kid.as_deref(), keys[1].algorithms.as_slice()), (None, &[Algorithm::ES256][..]));
        // The oct key is usable only when HMAC is allowed explicitly.
        let keys = load_str(&json, &[Algorithm::HS256]).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].algorithms, [Algorithm::HS256]);
    }

    #[test]
    fn errors_name_the_file_and_why() {
        let err = load_str("not json", &[Algorithm::ES256]).unwrap_err();
        assert!(err.starts_with(&format!("JWKS file {P}: not JSON")), "{err}");
        let err = load_str(r#"{"kys":[]}"#, &[Algorithm::ES256]).unwrap_err();
        assert!(err.contains("\"keys\" array"), "{err}");
        let err = load_str(r#"{"keys":[]}"#, &[Algorithm::ES256]).unwrap_err();
        assert!(err.contains("no usable keys") && err.contains("lists no keys"), "{err}");
        let json =
            format!(r#"{{"keys":[{{"kty":"EC","crv":"P-256","x":"{X32}","y":"{X32}","kid":"a","alg":"ES384"}}]}}"#);
        let err = load_str(&json, &[Algorithm::ES256, Algorithm::ES384]).unwrap_err();
        assert!(err.contains("key 0 (kid \"a\"): \"alg\" \"ES384\" does not fit"), "{err}");
        let json = format!(r#"{{"keys":[{{"kty":"EC","crv":"P-256","x":"{X32}","y":"{X32}","d":"{X32}"}}]}}"#);
        let err = load_str(&json, &[Algorithm::ES256]).unwrap_err();
        assert!(err.contains("private key material (\"d\")"), "{err}");
        let json = r#"{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}"#;
        assert!(load_str(json, &[Algorithm::RS256]).unwrap_err().contains("at least 2048"));
        let err = load(Path::new("/nonexistent/jwks.json"), &[Algorithm::ES256]).unwrap_err().to_string();
        assert!(err.starts_with("JWKS file /nonexistent/jwks.json: cannot read it"), "{err}");
    }
}
