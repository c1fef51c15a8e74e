//! Reading the server name from a TLS ClientHello *without terminating TLS*: bytes are
//! read into a bounded buffer, parsed by rustls' `Acceptor` (a real, hardened parser),
//! and kept so they can be replayed, unchanged, to the gateway.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest ClientHello accepted (bytes on the wire). Post-quantum key shares make
/// ClientHellos of 1.5–2 KiB common; 16 KiB leaves ample room.
pub const MAX_CLIENT_HELLO: usize = 16 * 1024;

/// Why no server name could be read.
#[derive(Debug, thiserror::Error)]
pub enum PeekError {
    #[error("no complete ClientHello within {0:?}")]
    Timeout(Duration),
    #[error("ClientHello larger than {0} bytes")]
    TooLarge(usize),
    #[error("connection closed before a complete ClientHello ({0} bytes)")]
    Closed(usize),
    #[error("not a TLS ClientHello: {0}")]
    NotTls(String),
    #[error("ClientHello carries no server name (SNI)")]
    NoSni,
    #[error("read error: {0}")]
    Io(#[from] std::io::Error),
}

/// A parsed ClientHello: the server name and every byte read so far.
#[derive(Debug)]
pub struct Peeked {
    /// Lower-case server name the client asked for.
    pub sni: String,
    /// The bytes consumed from the client, to replay to the gateway.
    pub bytes: Vec<u8>,
}

/// Parses a complete ClientHello from the front of `buf`.
/// `Ok(None)` means more bytes are needed.
pub fn parse_sni(buf: &[u8]) -> Result<Option<String>, PeekError> {
    // Cheap first check: a TLS handshake record starts with content type 22.
    if buf.first().is_some_and(|b| *b != 0x16) {
        return Err(PeekError::NotTls("first byte is not a TLS handshake record".into()));
    }
    let mut acceptor = rustls::server::Acceptor::default();
    let mut rd = buf;
    while !rd.is_empty() {
        acceptor.read_tls(&mut rd).map_err(|e| PeekError::NotTls(e.to_string()))?;
        match acceptor.accept() {
            Ok(Some(accepted)) => {
                let name = accepted.client_hello().server_name().map(str::to_ascii_lowercase);
                return name.map(Some).ok_or(PeekError::NoSni);
            }
            Ok(None) => continue,
            Err((err, _alert)) => return Err(PeekError::NotTls(err.to_string())),
        }
    }
    Ok(None)
}

/// Reads from `r` until a full ClientHello has arrived, within `max` bytes and `timeout`.
pub async fn peek_client_hello<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
    timeout: Duration,
) -> Result<Peeked, PeekError> {
    let read = async {
        let mut bytes = Vec::with_capacity(2048);
        let mut chunk = [0u8; 4096];
        loop {
            let n = r.read(&mut chunk).await?;
            if n == 0 {
                return Err(PeekError::Closed(bytes.len()));
            }
            bytes.extend_from_slice(&chunk[..n]);
            if bytes.len() > max {
                return Err(PeekError::TooLarge(max));
            }
            // Re-parsing from the start keeps the parser stateless; hellos are tiny.
            if let Some(sni) = parse_sni(&bytes)? {
                return Ok(Peeked { sni, bytes });
            }
        }
    };
    tokio::time::timeout(timeout, read).await.map_err(|_| PeekError::Timeout(timeout))?
}

/// A TLS alert record (fatal), sent before closing so the client gets a clear reason.
pub fn alert_record(description: u8) -> [u8; 7] {
    // content type 21 (alert), legacy version TLS 1.2, length 2, level 2 (fatal), description.
    [21, 3, 3, 0, 2, 2, description]
}

/// Alert: `unrecognized_name` (no tunnel serves this hostname).
pub const ALERT_UNRECOGNIZED_NAME: u8 = 112;
/// Alert: `internal_error` (no live gateway for the tunnel).
pub const ALERT_INTERNAL_ERROR: u8 = 80;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A real ClientHello produced by rustls' client for `name`.
    fn client_hello(name: &str) -> Vec<u8> {
        let roots = rustls::RootCertStore::empty();
        let config = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name.to_owned().try_into().unwrap()).unwrap();
        let mut out = Vec::new();
        conn.write_tls(&mut out).unwrap();
        out
    }

    #[test]
    fn reads_the_server_name() {
        let hello = client_hello("Tickets.Acme.Test");
        assert_eq!(parse_sni(&hello).unwrap().as_deref(), Some("tickets.acme.test"));
    }

    #[test]
    fn every_truncation_asks_for_more() {
        let hello = client_hello("a.test");
        for cut in 0..hello.len() {
            assert!(parse_sni(&hello[..cut]).unwrap().is_none(), "cut at {cut}");
        }
    }

    #[test]
    fn garbage_is_not_tls() {
        assert!(matches!(parse_sni(b"GET / HTTP/1.1\r\n"), Err(PeekError::NotTls(_))));
        assert!(matches!(parse_sni(&[0x16, 3, 1, 0, 4, 99, 0, 0, 0]), Err(PeekError::NotTls(_))));
        let mut bad = client_hello("a.test");
        bad.truncate(20);
        bad[5] = 2; // handshake type: ServerHello instead of ClientHello
        assert!(parse_sni(&bad).is_err() || parse_sni(&bad).unwrap().is_none());
    }

    #[test]
    fn ip_address_hello_has_no_sni() {
        let hello = client_hello("127.0.0.1");
        assert!(matches!(parse_sni(&hello), Err(PeekError::NoSni)));
    }

    #[tokio::test]
    async fn peek_is_bounded_in_size_and_time() {
        let hello = client_hello("a.test");
        let mut rd = &hello[..];
        let p = peek_client_hello(&mut rd, MAX_CLIENT_HELLO, Duration::from_secs(1)).await.unwrap();
        assert_eq!((p.sni.as_str(), p.bytes.len()), ("a.test", hello.len()));
        let mut rd = &hello[..];
        assert!(matches!(peek_client_hello(&mut rd, 10, Duration::from_secs(1)).await, Err(PeekError::TooLarge(10))));
        let mut rd = &hello[..10];
        assert!(matches!(
            peek_client_hello(&mut rd, MAX_CLIENT_HELLO, Duration::from_secs(1)).await,
            Err(PeekError::Closed(10))
        ));
        let (_keep_open, mut silent) = tokio::io::duplex(64);
        let err = peek_client_hello(&mut silent, MAX_CLIENT_HELLO, Duration::from_millis(50)).await.unwrap_err();
        assert!(matches!(err, PeekError::Timeout(_)));
    }
}
