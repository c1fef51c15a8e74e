//! The four rustls configurations, one per hop:
//! edge tunnel listener (server, requires client certs), gateway tunnel dialer (client
//! with a pinned CA and its own certificate), inner TLS (server, customer certificate)
//! and upstream HTTPS (client, route's own CA).

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use super::pem::Identity;
use super::provider;

/// Why a TLS configuration could not be built from otherwise readable material.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("{what}: CA certificate rejected: {source}")]
    BadCa { what: String, source: rustls::Error },
    #[error("{what}: no usable CA certificate")]
    EmptyRoots { what: String },
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("{what}: certificate or key rejected by TLS: {source}")]
    Identity { what: String, source: rustls::Error },
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Builds a root store from CA certificates; `what` names the origin in errors.
pub fn roots(cas: &[CertificateDer<'static>], what: &str) -> Result<Arc<RootCertStore>, TlsConfigError> {
    let mut store = RootCertStore::empty();
    for ca in cas {
        store.add(ca.clone()).map_err(|source| TlsConfigError::BadCa { what: what.to_owned(), source })?;
    }
    if store.is_empty() {
        return Err(TlsConfigError::EmptyRoots { what: what.to_owned() });
    }
    Ok(Arc::new(store))
}

/// Edge tunnel listener: TLS 1.3 only (QUIC), client certificate required from `tunnel_ca`.
pub fn edge_tunnel_server(
    identity: &Identity,
    tunnel_ca: &[CertificateDer<'static>],
    alpn: &[&[u8]],
) -> Result<ServerConfig, TlsConfigError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(tunnel_ca, "tunnel CA")?, provider()).build()?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain.clone(), identity.key.der())
        .map_err(|source| TlsConfigError::Identity { what: identity.source.clone(), source })?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// Gateway tunnel dialer: TLS 1.3 only, the edge verified against the pinned `edge_ca`,
/// and the gateway's client certificate (its tunnel identity) presented.
pub fn gateway_tunnel_client(
    identity: &Identity,
    edge_ca: &[CertificateDer<'static>],
    alpn: &[&[u8]],
) -> Result<ClientConfig, TlsConfigError> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(edge_ca, "edge CA")?)
        .with_client_auth_cert(identity.chain.clone(), identity.key.der())
        .map_err(|source| TlsConfigError::Identity { what: identity.source.clone(), source })?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// Inner TLS, terminated by the gateway with the customer's certificate; offers h2 and
/// http/1.1 so MCP clients can use either. TLS 1.3 only: with 1.2 the server certificate
/// would cross the edge in clear.
pub fn inner_server(identity: &Identity) -> Result<ServerConfig, TlsConfigError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(identity.chain.clone(), identity.key.der())
        .map_err(|source| TlsConfigError::Identity { what: identity.source.clone(), source })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// HTTPS to an upstream MCP server, trusting only the route's CA.
pub fn upstream_client(ca: &[CertificateDer<'static>], what: &str) -> Result<ClientConfig, TlsConfigError> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(ca, what)?)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// A client config trusting `ca` (the demo's MCP client and tests use it).
pub fn client_trusting(ca: &[CertificateDer<'static>], alpn: &[&[u8]]) -> Result<ClientConfig, TlsConfigError> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(ca, "CA")?)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}
