//! Generating a complete PKI with rcgen: `certs init` writes it to disk, `demo` and the
//! tests keep it in memory.
//!
//! Three independent CAs, because three different parties own them in production:
//! the edge CA (edge operator; gateways pin it), the tunnel CA (edge operator; signs
//! gateway client certificates that carry the tunnel id) and the inner CA (the customer;
//! signs the certificate that terminates MCP clients' TLS inside the private network).

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

use crate::tls::identity::{is_valid_tunnel_id, TUNNEL_URI_PREFIX};
use crate::tls::pem::{Identity, SecretKey};

/// Validity of the inner server certificate (the usual public-CA maximum).
pub const INNER_SERVER_DAYS: i64 = 90;
const CA_DAYS: i64 = 3650;
const OUTER_LEAF_DAYS: i64 = 365;

/// Why a PKI could not be generated or written.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("invalid tunnel id {0:?}: use 1-63 characters of a-z, 0-9 and '-'")]
    TunnelId(String),
    #[error("invalid tunnel domain {0:?}: use a DNS name such as 'mcp.example.com'")]
    Domain(String),
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{path}: already exists; refusing to overwrite (pass --force to replace it)")]
    Exists { path: PathBuf },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// A certificate with its key, as PEM text and DER.
pub struct Issued {
    /// PEM of the certificate.
    pub cert_pem: String,
    /// DER of the certificate.
    pub cert_der: CertificateDer<'static>,
    key: KeyPair,
}

impl Issued {
    /// PEM of the private key (PKCS#8).
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }
    /// The certificate and key as a TLS identity (chain of one).
    pub fn identity(&self, source: &str) -> Identity {
        let der = PrivatePkcs8KeyDer::from(self.key.serialize_der());
        Identity {
            chain: vec![self.cert_der.clone()],
            key: SecretKey::new(PrivateKeyDer::Pkcs8(der)),
            source: source.into(),
        }
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct PkiOptions {
    /// Tunnel id carried in the gateway's client certificate.
    pub tunnel_id: String,
    /// Domain under which routes live; the inner certificate covers `*.<domain>`.
    pub tunnel_domain: String,
    /// DNS names the edge's tunnel listener answers to (plus loopback IPs).
    pub edge_names: Vec<String>,
}

/// Every certificate a local deployment needs.
pub struct DevPki {
    pub edge_ca: Issued,
    pub edge_server: Issued,
    pub tunnel_ca: Issued,
    pub gateway_client: Issued,
    pub inner_ca: Issued,
    pub inner_server: Issued,
}

fn is_valid_domain(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn base_params(common_name: &str, days: i64) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "mcp-tunnel");
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    let now = OffsetDateTime::now_utc();
    // Back-date a little so a peer with a slightly slow clock accepts a fresh certificate.
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days);
    params
}

fn new_ca(common_name: &str) -> Result<(Issued, CertifiedIssuer<'static, KeyPair>), PkiError> {
    let mut params = base_params(common_name, CA_DAYS);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate()?;
    let issuer = CertifiedIssuer::self_signed(params, KeyPair::from_pem(&key.serialize_pem())?)?;
    let issued = Issued { cert_pem: issuer.pem(), cert_der: issuer.der().clone(), key };
    Ok((issued, issuer))
}

fn new_leaf(
    issuer: &rcgen::Issuer<'_, KeyPair>,
    common_name: &str,
    sans: Vec<SanType>,
    usage: ExtendedKeyUsagePurpose,
    days: i64,
) -> Result<Issued, PkiError> {
    let mut params = base_params(common_name, days);
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    Ok(Issued { cert_pem: cert.pem(), cert_der: cert.der().clone(), key })
}

fn dns(name: &str) -> Result<SanType, PkiError> {
    Ok(SanType::DnsName(name.try_into()?))
}

/// Generates all six certificates (ECDSA P-256, SHA-256).
pub fn generate(opts: &PkiOptions) -> Result<DevPki, PkiError> {
    if !is_valid_tunnel_id(&opts.tunnel_id) {
        return Err(PkiError::TunnelId(opts.tunnel_id.clone()));
    }
    let domain = opts.tunnel_domain.trim_end_matches('.').to_ascii_lowercase();
    if !is_valid_domain(&domain) {
        return Err(PkiError::Domain(opts.tunnel_domain.clone()));
    }
    let (edge_ca, edge_issuer) = new_ca("mcp-tunnel edge CA")?;
    let mut edge_sans =
        vec![SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)), SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST))];
    for name in &opts.edge_names {
        edge_sans.push(dns(name)?);
    }
    let edge_server =
        new_leaf(&edge_issuer, "mcp-tunnel edge", edge_sans, ExtendedKeyUsagePurpose::ServerAuth, OUTER_LEAF_DAYS)?;

    let (tunnel_ca, tunnel_issuer) = new_ca("mcp-tunnel tunnel CA")?;
    let uri = SanType::URI(format!("{TUNNEL_URI_PREFIX}{}", opts.tunnel_id).try_into()?);
    let gateway_client = new_leaf(
        &tunnel_issuer,
        &format!("mcp-tunnel gateway {}", opts.tunnel_id),
        vec![uri],
        ExtendedKeyUsagePurpose::ClientAuth,
        OUTER_LEAF_DAYS,
    )?;

    let (inner_ca, inner_issuer) = new_ca("mcp-tunnel inner CA")?;
    let inner_server = new_leaf(
        &inner_issuer,
        &format!("*.{domain}"),
        vec![dns(&format!("*.{domain}"))?, dns(&domain)?],
        ExtendedKeyUsagePurpose::ServerAuth,
        INNER_SERVER_DAYS,
    )?;
    Ok(DevPki { edge_ca, edge_server, tunnel_ca, gateway_client, inner_ca, inner_server })
}

/// Issues a gateway client certificate for `tunnel_id` from an existing tunnel CA (the
/// edge operator does this once per customer tunnel).
pub fn issue_gateway_cert(ca_cert_pem: &str, ca_key_pem: &str, tunnel_id: &str) -> Result<Issued, PkiError> {
    if !is_valid_tunnel_id(tunnel_id) {
        return Err(PkiError::TunnelId(tunnel_id.to_owned()));
    }
    let issuer = rcgen::Issuer::from_ca_cert_pem(ca_cert_pem, KeyPair::from_pem(ca_key_pem)?)?;
    let uri = SanType::URI(format!("{TUNNEL_URI_PREFIX}{tunnel_id}").try_into()?);
    let name = format!("mcp-tunnel gateway {tunnel_id}");
    new_leaf(&issuer, &name, vec![uri], ExtendedKeyUsagePurpose::ClientAuth, OUTER_LEAF_DAYS)
}

/// Issues a new inner server certificate (`*.<domain>` and `<domain>`, 90 days) from an
/// existing inner CA: rotation and renewal without touching what clients trust.
pub fn issue_inner_server(ca_cert_pem: &str, ca_key_pem: &str, domain: &str) -> Result<Issued, PkiError> {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    if !is_valid_domain(&domain) {
        return Err(PkiError::Domain(domain));
    }
    let issuer = rcgen::Issuer::from_ca_cert_pem(ca_cert_pem, KeyPair::from_pem(ca_key_pem)?)?;
    let sans = vec![dns(&format!("*.{domain}"))?, dns(&domain)?];
    new_leaf(&issuer, &format!("*.{domain}"), sans, ExtendedKeyUsagePurpose::ServerAuth, INNER_SERVER_DAYS)
}

impl Issued {
    /// Writes the certificate (0644) and key (0600) as `<dir>/<name>.pem` and `.key`,
    /// refusing to replace existing files unless `force`.
    pub fn write(&self, dir: &Path, name: &str, force: bool) -> Result<Vec<PathBuf>, PkiError> {
        let (cert, key) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
        for path in [&cert, &key] {
            if !force && path.exists() {
                return Err(PkiError::Exists { path: path.clone() });
            }
        }
        Ok(vec![
            write_file(&cert, self.cert_pem.as_bytes(), 0o644)?,
            write_file(&key, self.key_pem().as_bytes(), 0o600)?,
        ])
    }
}

impl DevPki {
    /// Relative paths (certificate, key) of each item in the on-disk layout.
    fn layout(&self) -> [(&Issued, &'static str, &'static str); 6] {
        [
            (&self.edge_ca, "edge/ca.pem", "edge/ca.key"),
            (&self.edge_server, "edge/server.pem", "edge/server.key"),
            (&self.tunnel_ca, "tunnel/ca.pem", "tunnel/ca.key"),
            (&self.gateway_client, "tunnel/gateway.pem", "tunnel/gateway.key"),
            (&self.inner_ca, "inner/ca.pem", "inner/ca.key"),
            (&self.inner_server, "inner/server.pem", "inner/server.key"),
        ]
    }

    /// Writes the PKI under `dir`; keys get mode 0600. Existing files are never replaced
    /// unless `force` is set. Returns the paths written.
    pub fn write(&self, dir: &Path, force: bool) -> Result<Vec<PathBuf>, PkiError> {
        let layout = self.layout();
        if !force {
            for (_, cert, key) in &layout {
                for rel in [cert, key] {
                    let path = dir.join(rel);
                    if path.exists() {
                        return Err(PkiError::Exists { path });
                    }
                }
            }
        }
        let mut written = Vec::new();
        for (issued, cert, key) in layout {
            written.push(write_file(&dir.join(cert), issued.cert_pem.as_bytes(), 0o644)?);
            written.push(write_file(&dir.join(key), issued.key_pem().as_bytes(), 0o600)?);
        }
        Ok(written)
    }
}

/// Writes a file with `mode` set at creation, so a key is never briefly world-readable.
fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<PathBuf, PkiError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let io = |source| PkiError::Io { path: path.to_owned(), source };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(path).map_err(io)?;
    // `mode` applies only to new files; enforce it when replacing one with --force.
    file.set_permissions(std::fs::Permissions::from_mode(mode)).map_err(io)?;
    file.write_all(contents).map_err(io)?;
    Ok(path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::*;

    fn opts() -> PkiOptions {
        PkiOptions {
            tunnel_id: "acme".into(),
            tunnel_domain: "mcp.acme.test".into(),
            edge_names: vec!["edge.test".into()],
        }
    }

    #[test]
    fn inner_certificates_meet_tunnel_requirements() {
        let pki = generate(&opts()).unwrap();
        let (_, ca) = parse_x509_certificate(&pki.inner_ca.cert_der).unwrap();
        let bc = ca.basic_constraints().unwrap().unwrap();
        assert!(bc.critical && bc.value.ca);
        assert!(ca.key_usage().unwrap().unwrap().value.key_cert_sign());
        let ski = ca.extensions().iter().find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        });
        let (_, leaf) = parse_x509_certificate(&pki.inner_server.cert_der).unwrap();
        let aki = leaf.extensions().iter().find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.as_ref().map(|k| k.0.to_vec()),
            _ => None,
        });
        assert!(ski.is_some());
        assert_eq!(ski, aki);
        assert!(leaf.extended_key_usage().unwrap().unwrap().value.server_auth);
        let days = (leaf.validity().not_after.timestamp() - leaf.validity().not_before.timestamp()) / 86400;
        assert!((90..=91).contains(&days), "{days}");
        let sans = leaf.subject_alternative_name().unwrap().unwrap();
        assert!(sans.value.general_names.contains(&GeneralName::DNSName("*.mcp.acme.test")));
    }

    #[test]
    fn gateway_certificate_carries_the_tunnel_id() {
        let pki = generate(&opts()).unwrap();
        assert_eq!(crate::tls::identity::tunnel_id(&pki.gateway_client.cert_der).unwrap(), "acme");
    }

    #[test]
    fn gateway_certificates_can_be_issued_from_an_existing_tunnel_ca() {
        let pki = generate(&opts()).unwrap();
        let issued = issue_gateway_cert(&pki.tunnel_ca.cert_pem, &pki.tunnel_ca.key_pem(), "second").unwrap();
        assert_eq!(crate::tls::identity::tunnel_id(&issued.cert_der).unwrap(), "second");
        let (_, leaf) = parse_x509_certificate(&issued.cert_der).unwrap();
        let (_, ca) = parse_x509_certificate(&pki.tunnel_ca.cert_der).unwrap();
        assert_eq!(leaf.issuer(), ca.subject());
        assert!(leaf.verify_signature(Some(ca.public_key())).is_ok());
    }

    #[test]
    fn bad_options_are_refused() {
        let mut o = opts();
        o.tunnel_id = "Not Valid".into();
        assert!(matches!(generate(&o), Err(PkiError::TunnelId(_))));
        let mut o = opts();
        o.tunnel_domain = "bad..domain".into();
        assert!(matches!(generate(&o), Err(PkiError::Domain(_))));
    }

    #[test]
    fn write_uses_0600_for_keys_and_never_overwrites() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("mcpt-pki-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let pki = generate(&opts()).unwrap();
        let written = pki.write(&dir, false).unwrap();
        assert_eq!(written.len(), 12);
        let mode = std::fs::metadata(dir.join("inner/server.key")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(matches!(pki.write(&dir, false), Err(PkiError::Exists { .. })));
        pki.write(&dir, true).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
