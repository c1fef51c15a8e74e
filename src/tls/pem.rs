//! Loading certificates and private keys from PEM, with errors that say which file and why.

use std::fmt;
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// A private key that never prints itself.
pub struct SecretKey(PrivateKeyDer<'static>);

impl SecretKey {
    /// Wraps a key.
    pub fn new(key: PrivateKeyDer<'static>) -> Self {
        Self(key)
    }
    /// A copy of the key for building a TLS config.
    pub fn der(&self) -> PrivateKeyDer<'static> {
        self.0.clone_key()
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(MASKED)")
    }
}

impl Clone for SecretKey {
    fn clone(&self) -> Self {
        Self(self.0.clone_key())
    }
}

/// A certificate chain with its private key, and where they came from (for messages).
#[derive(Debug, Clone)]
pub struct Identity {
    /// Leaf first, then intermediates.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: SecretKey,
    /// Human-readable origin, e.g. the certificate's path.
    pub source: String,
}

/// Why a certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("{path}: cannot read: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: no PEM certificate found (expected a '-----BEGIN CERTIFICATE-----' block)")]
    NoCertificate { path: PathBuf },
    #[error("{path}: invalid PEM: {detail}")]
    Invalid { path: PathBuf, detail: String },
    #[error("{path}: certificate #{index} is not valid X.509: {detail}")]
    BadCertificate { path: PathBuf, index: usize, detail: String },
    #[error("{path}: no usable private key (expected PKCS#8, PKCS#1 or SEC1 PEM): {detail}")]
    BadKey { path: PathBuf, detail: String },
    #[error("{key}: private key does not match the certificate in {cert}")]
    KeyMismatch { cert: String, key: PathBuf },
}

fn read(path: &Path) -> Result<Vec<u8>, PemError> {
    std::fs::read(path).map_err(|source| PemError::Read { path: path.to_owned(), source })
}

/// Parses every certificate in a PEM buffer; `path` only names the origin in errors.
pub fn parse_certs(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let mut certs = Vec::new();
    for (index, item) in CertificateDer::pem_slice_iter(pem).enumerate() {
        let cert = item.map_err(|e| PemError::Invalid { path: path.to_owned(), detail: e.to_string() })?;
        // Parse now so a corrupt certificate is reported here, not as a handshake failure later.
        x509_parser::parse_x509_certificate(&cert).map_err(|e| PemError::BadCertificate {
            path: path.to_owned(),
            index,
            detail: e.to_string(),
        })?;
        certs.push(cert);
    }
    if certs.is_empty() {
        return Err(PemError::NoCertificate { path: path.to_owned() });
    }
    Ok(certs)
}

/// Loads every certificate from a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    parse_certs(&read(path)?, path)
}

/// Parses the first private key in a PEM buffer.
pub fn parse_key(pem: &[u8], path: &Path) -> Result<SecretKey, PemError> {
    PrivateKeyDer::from_pem_slice(pem)
        .map(SecretKey)
        .map_err(|e| PemError::BadKey { path: path.to_owned(), detail: e.to_string() })
}

/// Loads the first private key from a PEM file.
pub fn load_key(path: &Path) -> Result<SecretKey, PemError> {
    parse_key(&read(path)?, path)
}

/// Loads a certificate chain and its key and checks that they belong together.
pub fn load_identity(cert_path: &Path, key_path: &Path) -> Result<Identity, PemError> {
    let chain = load_certs(cert_path)?;
    let key = load_key(key_path)?;
    let identity = Identity { chain, key, source: cert_path.display().to_string() };
    check_key_matches(&identity, key_path)?;
    Ok(identity)
}

/// Fails when the key cannot sign or its public half differs from the leaf certificate's.
pub fn check_key_matches(identity: &Identity, key_path: &Path) -> Result<(), PemError> {
    let provider = super::provider();
    let signing = provider
        .key_provider
        .load_private_key(identity.key.der())
        .map_err(|e| PemError::BadKey { path: key_path.to_owned(), detail: e.to_string() })?;
    CertifiedKey::new(identity.chain.clone(), signing)
        .keys_match()
        .map_err(|_| PemError::KeyMismatch { cert: identity.source.clone(), key: key_path.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_key_never_prints() {
        let key = rcgen::KeyPair::generate().unwrap();
        let secret = SecretKey::new(PrivateKeyDer::Pkcs8(key.serialize_der().into()));
        assert_eq!(format!("{secret:?}"), "SecretKey(MASKED)");
    }

    #[test]
    fn errors_name_the_file() {
        let err = parse_certs(b"not pem", Path::new("/etc/x.pem")).unwrap_err();
        assert!(err.to_string().starts_with("/etc/x.pem: no PEM certificate"), "{err}");
        let bogus = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let err = parse_certs(bogus, Path::new("c.pem")).unwrap_err();
        assert!(err.to_string().starts_with("c.pem: certificate #0 is not valid X.509"), "{err}");
        let err = parse_key(b"", Path::new("k.pem")).unwrap_err();
        assert!(err.to_string().starts_with("k.pem: no usable private key"), "{err}");
    }

    #[test]
    fn mismatched_key_is_detected() {
        let a = rcgen::generate_simple_self_signed(vec!["a.test".into()]).unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        let identity = Identity {
            chain: vec![a.cert.der().clone()],
            key: SecretKey::new(PrivateKeyDer::Pkcs8(other.serialize_der().into())),
            source: "a.pem".into(),
        };
        let err = check_key_matches(&identity, Path::new("b.key")).unwrap_err();
        assert_eq!(err.to_string(), "b.key: private key does not match the certificate in a.pem");
    }
}
