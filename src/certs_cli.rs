//! `certs inspect` and `certs renew`: looking at a certificate, and renewing the inner
//! server certificate from its CA when it is close to expiry (safe to run from cron).

use std::path::{Path, PathBuf};
use std::time::Duration;

use x509_parser::prelude::*;

use crate::pki::{self, PkiError};
use crate::tls::pem::{self, PemError};

/// Why inspecting or renewing failed.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error("{0}")]
    Pem(#[from] PemError),
    #[error("{0}")]
    Pki(#[from] PkiError),
    #[error("{path}: {detail}")]
    Parse { path: PathBuf, detail: String },
    #[error("{path}: cannot read: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: no DNS name to renew for (expected *.<domain>)")]
    NoDomain { path: PathBuf },
}

/// A human-readable description of every certificate in a PEM file.
pub fn inspect(path: &Path) -> Result<String, CertsError> {
    let mut out = String::new();
    for (i, der) in pem::load_certs(path)?.iter().enumerate() {
        let (_, cert) = parse_x509_certificate(der)
            .map_err(|e| CertsError::Parse { path: path.to_owned(), detail: e.to_string() })?;
        let sans: Vec<String> = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|s| s.value.general_names.iter().map(|n| n.to_string()).collect())
            .unwrap_or_default();
        let key = match cert.public_key().parsed() {
            Ok(x509_parser::public_key::PublicKey::EC(p)) => format!("ECDSA ({} bits)", p.key_size()),
            Ok(x509_parser::public_key::PublicKey::RSA(r)) => format!("RSA ({} bits)", r.key_size()),
            Ok(other) => format!("{other:?}").chars().take(40).collect(),
            Err(_) => "unknown".into(),
        };
        let fingerprint = ring::digest::digest(&ring::digest::SHA256, der);
        let hex: Vec<String> = fingerprint.as_ref().iter().map(|b| format!("{b:02X}")).collect();
        out.push_str(&format!(
            "certificate #{i}\n  subject:     {}\n  issuer:      {}\n  SANs:        {}\n  not before:  {}\n  not after:   {}\n  key:         {key}\n  CA:          {}\n  sha256:      {}\n",
            cert.subject(),
            cert.issuer(),
            if sans.is_empty() { "-".into() } else { sans.join(", ") },
            cert.validity().not_before,
            cert.validity().not_after,
            cert.is_ca(),
            hex.join(":"),
        ));
    }
    Ok(out)
}

/// What `renew` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Renewal {
    /// Still valid beyond the window; nothing written.
    NotDue { expires_in: Duration },
    /// A new certificate was written.
    Renewed { domain: String },
}

/// Renews `DIR/server.pem` + `server.key` from `DIR/ca.pem` + `ca.key` when the current
/// certificate expires within `window`. The key is written before the certificate, each
/// through a temporary file and a rename, so a watcher never sees a half-written pair.
pub fn renew(dir: &Path, window: Duration) -> Result<Renewal, CertsError> {
    let cert_path = dir.join("server.pem");
    let current = pem::load_certs(&cert_path)?;
    let (_, cert) = parse_x509_certificate(&current[0])
        .map_err(|e| CertsError::Parse { path: cert_path.clone(), detail: e.to_string() })?;
    let expires_in = cert.validity().time_to_expiration().map(|d| d.unsigned_abs()).unwrap_or_default();
    if expires_in > window {
        return Ok(Renewal::NotDue { expires_in });
    }
    let domain = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .and_then(|s| {
            s.value.general_names.iter().find_map(|n| match n {
                GeneralName::DNSName(d) => Some(d.trim_start_matches("*.").to_owned()),
                _ => None,
            })
        })
        .ok_or(CertsError::NoDomain { path: cert_path.clone() })?;
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).map_err(|source| CertsError::Read { path, source })
    };
    let issued = pki::issue_inner_server(&read("ca.pem")?, &read("ca.key")?, &domain)?;
    let tmp = dir.join(".renew");
    std::fs::create_dir_all(&tmp).map_err(|source| CertsError::Read { path: tmp.clone(), source })?;
    issued.write(&tmp, "server", true)?;
    for name in ["server.key", "server.pem"] {
        std::fs::rename(tmp.join(name), dir.join(name))
            .map_err(|source| CertsError::Read { path: dir.join(name), source })?;
    }
    let _ = std::fs::remove_dir(&tmp);
    Ok(Renewal::Renewed { domain })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspect_and_renew_only_inside_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let opts = pki::PkiOptions { tunnel_id: "a".into(), tunnel_domain: "mcp.a.test".into(), edge_names: vec![] };
        pki::generate(&opts).unwrap().write(dir.path(), false).unwrap();
        let inner = dir.path().join("inner");
        let text = inspect(&inner.join("server.pem")).unwrap();
        assert!(
            text.contains("*.mcp.a.test") && text.contains("ECDSA (256 bits)") && text.contains("sha256:"),
            "{text}"
        );
        let before = std::fs::read(inner.join("server.pem")).unwrap();
        assert!(matches!(renew(&inner, Duration::from_secs(30 * 86400)).unwrap(), Renewal::NotDue { .. }));
        assert_eq!(std::fs::read(inner.join("server.pem")).unwrap(), before);
        let done = renew(&inner, Duration::from_secs(100 * 86400)).unwrap();
        assert_eq!(done, Renewal::Renewed { domain: "mcp.a.test".into() });
        assert_ne!(std::fs::read(inner.join("server.pem")).unwrap(), before);
        pem::load_identity(&inner.join("server.pem"), &inner.join("server.key")).unwrap();
    }
}
