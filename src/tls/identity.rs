//! The tunnel identity: a SAN URI `urn:mcp-tunnel:tunnel:<id>` in the gateway's client
//! certificate. The edge trusts the certificate's issuer (its tunnel CA), so the id in
//! a verified certificate is the tunnel's authenticated name.

use rustls::pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;

/// Prefix of the SAN URI that carries the tunnel id.
pub const TUNNEL_URI_PREFIX: &str = "urn:mcp-tunnel:tunnel:";

/// Why no tunnel id could be taken from a certificate.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("client certificate is not valid X.509: {0}")]
    Parse(String),
    #[error("client certificate has no SAN URI '{TUNNEL_URI_PREFIX}<id>'")]
    Missing,
    #[error("client certificate carries an invalid tunnel id {0:?}")]
    Invalid(String),
}

/// Whether `id` is a well-formed tunnel id: 1–63 of `[a-z0-9-]`, not starting with `-`.
pub fn is_valid_tunnel_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 63
        && !id.starts_with('-')
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Extracts the tunnel id from a (verified) client certificate.
pub fn tunnel_id(cert: &CertificateDer<'_>) -> Result<String, IdentityError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).map_err(|e| IdentityError::Parse(e.to_string()))?;
    let san = parsed
        .subject_alternative_name()
        .map_err(|e| IdentityError::Parse(e.to_string()))?
        .ok_or(IdentityError::Missing)?;
    for name in &san.value.general_names {
        if let GeneralName::URI(uri) = name {
            if let Some(id) = uri.strip_prefix(TUNNEL_URI_PREFIX) {
                return if is_valid_tunnel_id(id) {
                    Ok(id.to_owned())
                } else {
                    Err(IdentityError::Invalid(id.to_owned()))
                };
            }
        }
    }
    Err(IdentityError::Missing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair, SanType};

    fn cert_with(sans: Vec<SanType>) -> CertificateDer<'static> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = sans;
        params.self_signed(&KeyPair::generate().unwrap()).unwrap().der().clone()
    }

    #[test]
    fn reads_the_tunnel_uri() {
        let uri = format!("{TUNNEL_URI_PREFIX}acme-prod").try_into().unwrap();
        let cert = cert_with(vec![SanType::DnsName("x.test".try_into().unwrap()), SanType::URI(uri)]);
        assert_eq!(tunnel_id(&cert).unwrap(), "acme-prod");
    }

    #[test]
    fn missing_or_bad_ids_are_errors() {
        let cert = cert_with(vec![SanType::DnsName("x.test".try_into().unwrap())]);
        assert!(matches!(tunnel_id(&cert), Err(IdentityError::Missing)));
        let uri = format!("{TUNNEL_URI_PREFIX}Bad/Id").try_into().unwrap();
        assert!(matches!(tunnel_id(&cert_with(vec![SanType::URI(uri)])), Err(IdentityError::Invalid(_))));
        assert!(matches!(tunnel_id(&CertificateDer::from(vec![1, 2, 3])), Err(IdentityError::Parse(_))));
    }

    #[test]
    fn id_syntax() {
        assert!(is_valid_tunnel_id("a"));
        assert!(is_valid_tunnel_id("acme-prod-01"));
        for bad in ["", "-a", "A", "a.b", "a_b", &"a".repeat(64)] {
            assert!(!is_valid_tunnel_id(bad), "{bad}");
        }
    }
}
