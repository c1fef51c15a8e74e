//! Certificate checks: validity, and what TLS peers require of each certificate's role.
//! CA: critical BasicConstraints CA=true, a SubjectKeyIdentifier, keyCertSign. Server:
//! serverAuth, SANs, an AuthorityKeyIdentifier matching the issuer's SKI. Every
//! certificate: RSA ≥ 2048, ECDSA ≥ P-256 or Ed25519, signed with SHA-256 or better.
//!
//! "Strict" material is what MCP clients verify (the inner chain): strict verifiers such
//! as Python ≥ 3.13 refuse a missing SKI/AKI or a non-critical BasicConstraints, so those
//! are failures there and warnings elsewhere (rustls, which the gateway and edge use,
//! does not need them).

use rustls::pki_types::CertificateDer;
use x509_parser::oid_registry::*;
use x509_parser::prelude::*;
use x509_parser::public_key::PublicKey;

use super::Verdict;

/// A certificate closer to expiry than this is a warning.
pub const EXPIRY_WARNING_DAYS: i64 = 30;
const DAY: i64 = 86_400;

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Ca,
    Server,
    Client,
}

/// One problem with one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub verdict: Verdict,
    pub what: String,
    /// `None`: renew the certificate (how depends on whose it is; the caller knows).
    pub fix: Option<String>,
}

fn issue(verdict: Verdict, what: impl Into<String>, fix: impl Into<String>) -> Issue {
    Issue { verdict, what: what.into(), fix: Some(fix.into()) }
}

fn renewal(verdict: Verdict, what: String) -> Issue {
    Issue { verdict, what, fix: None }
}

/// FAIL for strict material, WARN otherwise.
fn strictness(strict: bool) -> Verdict {
    if strict {
        Verdict::Fail
    } else {
        Verdict::Warn
    }
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, Issue> {
    parse_x509_certificate(der).map(|(_, c)| c).map_err(|e| {
        issue(Verdict::Fail, format!("is not valid X.509: {e}"), "replace the file with a PEM certificate")
    })
}

/// Checks one certificate for `role` at time `now` (Unix seconds). `issuer` is the
/// certificate that should have signed it, when known.
pub fn check_cert(der: &[u8], role: Role, strict: bool, issuer: Option<&[u8]>, now: i64) -> Vec<Issue> {
    let cert = match parse(der) {
        Ok(c) => c,
        Err(i) => return vec![i],
    };
    let reissue = "re-issue it (mcp-tunnel certs init/renew produce compliant certificates)";
    let mut out: Vec<Issue> = validity(&cert, now).into_iter().collect();
    out.extend(key_strength(&cert).1);
    out.extend(signature_strength(&cert).1);
    let bc = cert.basic_constraints().ok().flatten();
    match role {
        Role::Ca => {
            match bc {
                None => out.push(issue(Verdict::Fail, "is not a CA (no BasicConstraints)", reissue)),
                Some(bc) if !bc.value.ca => {
                    out.push(issue(Verdict::Fail, "is not a CA (BasicConstraints CA=false)", reissue))
                }
                Some(bc) if !bc.critical => {
                    out.push(issue(strictness(strict), "BasicConstraints is not marked critical", reissue))
                }
                Some(_) => {}
            }
            if subject_key_id(&cert).is_none() {
                out.push(issue(strictness(strict), "has no SubjectKeyIdentifier", reissue));
            }
            match cert.key_usage().ok().flatten() {
                Some(ku) if !ku.value.key_cert_sign() => {
                    out.push(issue(Verdict::Fail, "KeyUsage lacks keyCertSign (it may not sign certificates)", reissue))
                }
                Some(_) => {}
                None => out.push(issue(strictness(strict), "has no KeyUsage (keyCertSign expected)", reissue)),
            }
        }
        Role::Server | Role::Client => {
            if bc.is_some_and(|bc| bc.value.ca) {
                out.push(issue(Verdict::Warn, "is a CA certificate used as a leaf", reissue));
            }
            let (purpose, want): (&str, fn(&ExtendedKeyUsage) -> bool) = match role {
                Role::Server => ("serverAuth", |e| e.server_auth || e.any),
                _ => ("clientAuth", |e| e.client_auth || e.any),
            };
            match cert.extended_key_usage().ok().flatten() {
                Some(eku) if !want(eku.value) => {
                    out.push(issue(Verdict::Fail, format!("ExtendedKeyUsage lacks {purpose}"), reissue))
                }
                Some(_) => {}
                None => out.push(issue(
                    strictness(strict),
                    format!("has no ExtendedKeyUsage ({purpose} expected)"),
                    reissue,
                )),
            }
            if role == Role::Server && san_names(&cert).is_empty() {
                let fix = "re-issue it with the route hostnames as DNS subjectAltNames (clients ignore the CN)";
                out.push(issue(Verdict::Fail, "has no DNS or IP subjectAltName", fix));
            }
            if let Some(issuer) = issuer {
                out.extend(issued_by(&cert, issuer, strict));
            }
        }
    }
    out
}

/// Not yet valid or expired: FAIL; expiring within [`EXPIRY_WARNING_DAYS`]: WARN.
fn validity(cert: &X509Certificate<'_>, now: i64) -> Option<Issue> {
    let v = cert.validity();
    let (from, until) = (v.not_before.timestamp(), v.not_after.timestamp());
    if now < from {
        let what = format!("is not valid before {} (is this host's clock right?)", date(&v.not_before));
        return Some(issue(Verdict::Fail, what, "wait, fix the clock, or re-issue it with an earlier start"));
    }
    if now > until {
        return Some(renewal(Verdict::Fail, format!("expired on {}", date(&v.not_after))));
    }
    let days = (until - now) / DAY;
    (days < EXPIRY_WARNING_DAYS)
        .then(|| renewal(Verdict::Warn, format!("expires in {days} days ({})", date(&v.not_after))))
}

fn date(t: &ASN1Time) -> String {
    t.to_datetime().date().to_string()
}

/// A short description of the key, and an issue when it is too weak.
fn key_strength(cert: &X509Certificate<'_>) -> (String, Option<Issue>) {
    let spki = cert.public_key();
    let weak = |desc: String| {
        let what = format!("key {desc} is too weak (RSA ≥ 2048, ECDSA ≥ P-256 or Ed25519 required)");
        Some(issue(Verdict::Fail, what, "re-issue it with a stronger key"))
    };
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => {
            let significant = rsa.modulus.iter().skip_while(|b| **b == 0).count();
            let desc = format!("RSA {}", significant * 8);
            (desc.clone(), if significant * 8 < 2048 { weak(desc) } else { None })
        }
        Ok(PublicKey::EC(point)) => {
            let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok());
            let desc = match curve {
                Some(c) if c == OID_EC_P256 => "ECDSA P-256".to_owned(),
                Some(c) if c == OID_NIST_EC_P384 => "ECDSA P-384".to_owned(),
                Some(c) if c == OID_NIST_EC_P521 => "ECDSA P-521".to_owned(),
                _ => format!("ECDSA ({} bits)", point.key_size()),
            };
            (desc.clone(), if point.key_size() < 256 { weak(desc) } else { None })
        }
        _ if spki.algorithm.algorithm == OID_SIG_ED25519 => ("Ed25519".to_owned(), None),
        _ => {
            let desc = format!("of type {}", spki.algorithm.algorithm);
            let what = format!("key {desc} is not one TLS peers commonly accept");
            ("unknown key".to_owned(), Some(issue(Verdict::Warn, what, "re-issue it with an ECDSA P-256 key")))
        }
    }
}

/// The signature algorithm's name, and an issue when it is weak or unknown.
fn signature_strength(cert: &X509Certificate<'_>) -> (String, Option<Issue>) {
    let oid = &cert.signature_algorithm.algorithm;
    let good = [
        (OID_PKCS1_SHA256WITHRSA, "RSA-SHA256"),
        (OID_PKCS1_SHA384WITHRSA, "RSA-SHA384"),
        (OID_PKCS1_SHA512WITHRSA, "RSA-SHA512"),
        (OID_SIG_ECDSA_WITH_SHA256, "ECDSA-SHA256"),
        (OID_SIG_ECDSA_WITH_SHA384, "ECDSA-SHA384"),
        (OID_SIG_ECDSA_WITH_SHA512, "ECDSA-SHA512"),
        (OID_SIG_ED25519, "Ed25519"),
        (OID_PKCS1_RSASSAPSS, "RSA-PSS"),
    ];
    if let Some((_, name)) = good.iter().find(|(o, _)| o == oid) {
        return ((*name).to_owned(), None);
    }
    let weak = [
        (OID_PKCS1_SHA1WITHRSA, "RSA-SHA1"),
        (OID_PKCS1_MD5WITHRSAENC, "RSA-MD5"),
        (OID_SIG_ECDSA_WITH_SHA224, "ECDSA-SHA224"),
        (OID_PKCS1_SHA224WITHRSA, "RSA-SHA224"),
        (OID_SHA1_WITH_RSA, "RSA-SHA1"),
    ];
    let fix = "re-issue it signed with SHA-256 or better";
    match weak.iter().find(|(o, _)| o == oid) {
        Some((_, name)) => {
            let what = format!("is signed with {name} (SHA-256 or better required)");
            ((*name).to_owned(), Some(issue(Verdict::Fail, what, fix)))
        }
        None => {
            let what = format!("is signed with an unknown algorithm {oid}");
            (oid.to_string(), Some(issue(Verdict::Warn, what, fix)))
        }
    }
}

fn subject_key_id<'a>(cert: &'a X509Certificate<'_>) -> Option<&'a [u8]> {
    cert.extensions().iter().find_map(|e| match e.parsed_extension() {
        ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0),
        _ => None,
    })
}

fn authority_key_id<'a>(cert: &'a X509Certificate<'_>) -> Option<&'a [u8]> {
    cert.extensions().iter().find_map(|e| match e.parsed_extension() {
        ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.as_ref().map(|k| k.0),
        _ => None,
    })
}

/// AKI against the issuer's SKI, and the signature against the issuer's key.
fn issued_by(cert: &X509Certificate<'_>, issuer_der: &[u8], strict: bool) -> Vec<Issue> {
    let Ok(issuer) = parse(issuer_der) else { return vec![] };
    let mut out = Vec::new();
    let reissue = "re-issue it from its CA (mcp-tunnel certs renew does)";
    match (authority_key_id(cert), subject_key_id(&issuer)) {
        (None, _) => out.push(issue(strictness(strict), "has no AuthorityKeyIdentifier", reissue)),
        (Some(aki), Some(ski)) if aki != ski => out.push(issue(
            Verdict::Fail,
            "AuthorityKeyIdentifier does not match its issuer's SubjectKeyIdentifier",
            reissue,
        )),
        _ => {}
    }
    if cert.verify_signature(Some(issuer.public_key())).is_err() {
        out.push(issue(Verdict::Fail, format!("is not signed by the CA {}", issuer.subject()), reissue));
    }
    out
}

/// DNS and IP subjectAltNames, lower-cased.
fn san_names(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(san)) = cert.subject_alternative_name() else { return vec![] };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
            GeneralName::IPAddress(ip) => match ip.len() {
                4 => <[u8; 4]>::try_from(*ip).ok().map(|b| std::net::IpAddr::from(b).to_string()),
                16 => <[u8; 16]>::try_from(*ip).ok().map(|b| std::net::IpAddr::from(b).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Whether a SAN covers `host`: exactly, or as `*.<rest>` for exactly one more label.
pub fn name_matches(pattern: &str, host: &str) -> bool {
    let (pattern, host) = (pattern.trim_end_matches('.'), host.trim_end_matches('.'));
    match pattern.strip_prefix("*.") {
        Some(rest) => {
            host.split_once('.').is_some_and(|(label, parent)| !label.is_empty() && parent.eq_ignore_ascii_case(rest))
        }
        None => pattern.eq_ignore_ascii_case(host),
    }
}

/// The certificate's names, and the hosts among `hosts` that none of them covers.
pub fn uncovered_hosts(der: &[u8], hosts: &[String]) -> Result<(Vec<String>, Vec<String>), String> {
    let cert = parse(der).map_err(|i| i.what)?;
    let names = san_names(&cert);
    let missing = hosts.iter().filter(|h| !names.iter().any(|n| name_matches(n, h))).cloned().collect();
    Ok((names, missing))
}

/// One-line description: subject, key, signature, expiry.
pub fn describe(der: &[u8], now: i64) -> String {
    let Ok(cert) = parse(der) else { return "unparsable certificate".into() };
    let days = (cert.validity().not_after.timestamp() - now) / DAY;
    format!(
        "{}, {}, {}, valid {} more days",
        cert.subject(),
        key_strength(&cert).0,
        signature_strength(&cert).0,
        days.max(0)
    )
}

/// Finds the certificate among `candidates` whose subject is `der`'s issuer.
pub fn find_issuer<'a>(der: &[u8], candidates: &'a [CertificateDer<'static>]) -> Option<&'a CertificateDer<'static>> {
    let cert = parse(der).ok()?;
    candidates.iter().find(|c| {
        parse(c).is_ok_and(|c| c.subject().as_raw() == cert.issuer().as_raw() && c.subject() != cert.subject())
    })
}

#[cfg(test)]
#[path = "certs_tests.rs"]
mod tests;
