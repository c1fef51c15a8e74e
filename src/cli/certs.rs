//! `mcp-tunnel certs init | issue-gateway | inspect | renew`: the arguments, and what each
//! does and prints. `init` and `issue-gateway` write what `crate::pki` generates; `inspect`
//! describes a certificate, and `renew` re-issues the inner server certificate from its CA
//! when it is close to expiry (safe to run from cron).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use x509_parser::prelude::*;

use crate::pki::{self, PkiError};
use crate::tls::pem::{self, PemError};

/// The `certs` subcommands.
#[derive(Subcommand)]
pub enum CertsCommand {
    /// Generate edge, tunnel and inner CAs and certificates for a deployment.
    Init {
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        tunnel_id: String,
        #[arg(long)]
        tunnel_domain: String,
        /// DNS name of the edge's tunnel listener (repeatable; loopback IPs are always included).
        #[arg(long = "edge-name", default_value = "localhost")]
        edge_names: Vec<String>,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
    /// Print subject, SANs, issuer, validity, key type and SHA-256 fingerprint.
    Inspect { file: PathBuf },
    /// Renew DIR/server.pem from DIR/ca.pem + ca.key when it expires within the window
    /// (a no-op otherwise; safe to run daily). A running gateway picks it up by itself.
    Renew {
        #[arg(long)]
        dir: PathBuf,
        /// e.g. 720h (30 days).
        #[arg(long, default_value = "720h")]
        renew_before: String,
    },
    /// Issue a gateway client certificate for another tunnel from an existing tunnel CA.
    IssueGateway {
        /// Directory holding the tunnel CA as `ca.pem` and `ca.key` (e.g. certs/tunnel).
        #[arg(long)]
        ca_dir: PathBuf,
        #[arg(long)]
        tunnel_id: String,
        /// Where to write `gateway.pem` and `gateway.key`.
        #[arg(long)]
        out: PathBuf,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
}

/// Runs a `certs` subcommand, printing what it wrote or found.
pub fn run(command: CertsCommand) -> anyhow::Result<()> {
    match command {
        CertsCommand::Init { out, tunnel_id, tunnel_domain, edge_names, force } => {
            let generated = pki::generate(&pki::PkiOptions { tunnel_id, tunnel_domain, edge_names })?;
            print_written(&generated.write(&out, force)?);
        }
        CertsCommand::IssueGateway { ca_dir, tunnel_id, out, force } => {
            let read = |name: &str| {
                let path = ca_dir.join(name);
                std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))
            };
            let issued = pki::issue_gateway_cert(&read("ca.pem")?, &read("ca.key")?, &tunnel_id)?;
            print_written(&issued.write(&out, "gateway", force)?);
        }
        CertsCommand::Inspect { file } => print!("{}", inspect(&file)?),
        CertsCommand::Renew { dir, renew_before } => {
            let window = crate::config::parse_duration(&renew_before)
                .map_err(|e| super::exit::UsageError(format!("--renew-before: {e}")))?;
            match renew(&dir, window)? {
                Renewal::NotDue { expires_in } => println!("not due: expires in {} days", expires_in.as_secs() / 86400),
                Renewal::Renewed { domain } => println!("renewed the certificate for *.{domain}"),
            }
        }
    }
    Ok(())
}

fn print_written(paths: &[PathBuf]) {
    for path in paths {
        println!("wrote {}", path.display());
    }
}

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
