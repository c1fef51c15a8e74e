//! Raw attacker-side connections for the edge's adversarial tests: sockets from chosen
//! loopback sources, bare QUIC clients, and bounded waits on the edge's counters.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use mcp_tunnel::stats::Counter;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

use super::{poll, Stack};

/// Bound for anything that should happen soon.
const SOON: Duration = Duration::from_secs(10);

/// A TCP connection to `to` from `from` (port chosen by the kernel).
pub async fn connect_from(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(to).await
}

/// Reads until the peer closes `tcp` (EOF or reset); panics if it is open after `within`.
pub async fn expect_closed(tcp: &mut TcpStream, within: Duration, what: &str) {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    for _ in 0..1000 {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => panic!("{what}: still open after {within:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => {}
        }
    }
    panic!("{what}: the edge kept sending instead of closing");
}

/// Polls until `counter` reaches `n`; panics after [`SOON`].
pub async fn wait_count(counter: &Counter, n: u64, what: &str) {
    if poll::within(SOON, || counter.get() >= n).await.is_none() {
        panic!("{what}: counter at {} after {SOON:?}, expected {n}", counter.get());
    }
}

/// A QUIC client presenting `client` (a gateway certificate directory under the stack).
pub fn quic_client(stack: &Stack, client: &str, from: IpAddr) -> quinn::Endpoint {
    let dir = stack.dir.path();
    let identity = mcp_tunnel::tls::pem::Identity {
        chain: mcp_tunnel::tls::pem::load_certs(&dir.join(client).join("gateway.pem")).expect("cert"),
        key: mcp_tunnel::tls::pem::load_key(&dir.join(client).join("gateway.key")).expect("key"),
        source: "test".into(),
    };
    let ca = mcp_tunnel::tls::pem::load_certs(&dir.join("certs/edge/ca.pem")).expect("edge CA");
    let tls = mcp_tunnel::tls::configs::gateway_tunnel_client(&identity, &ca, &[mcp_tunnel::protocol::ALPN_QUIC])
        .expect("tls");
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("quic tls");
    let mut endpoint = quinn::Endpoint::client(SocketAddr::new(from, 0)).expect("client endpoint");
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    endpoint
}
