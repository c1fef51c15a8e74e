//! TLS material: loading PEM files with errors that name the file, the tunnel identity
//! carried in client certificates, and the rustls configurations each hop uses.
//!
//! All configs use the `ring` provider explicitly, so no process-wide default is needed.

pub mod configs;
pub mod identity;
pub mod pem;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// The crypto provider every TLS config in this crate is built with.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
