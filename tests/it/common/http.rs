//! A plain HTTPS client through the edge (SNI = route host, trusting the inner CA), for
//! tests that look at status codes and headers rather than MCP semantics.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
pub use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Why a request did not produce a response.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The client's side of inner TLS over `tcp` (a connection to the edge's public port):
/// SNI `sni`, trusting `ca`, offering HTTP/1.1.
pub async fn tls_over(
    tcp: TcpStream,
    sni: &str,
    ca: &[CertificateDer<'static>],
) -> Result<TlsStream<TcpStream>, Error> {
    let config = mcp_tunnel::tls::configs::client_trusting(ca, &[b"http/1.1"])?;
    Ok(TlsConnector::from(Arc::new(config)).connect(ServerName::try_from(sni.to_owned())?, tcp).await?)
}

/// A fresh TLS connection through the edge to the route `sni`.
pub async fn tls(edge: SocketAddr, sni: &str, ca: &[CertificateDer<'static>]) -> Result<TlsStream<TcpStream>, Error> {
    tls_over(TcpStream::connect(edge).await?, sni, ca).await
}

/// HTTP/1.1 over `tls`: the request sender, and the task driving the connection (abort it
/// to drop the socket).
pub async fn h1(tls: TlsStream<TcpStream>) -> Result<(SendRequest<Full<Bytes>>, JoinHandle<hyper::Result<()>>), Error> {
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    Ok((sender, tokio::spawn(conn)))
}

/// Sends one request over a fresh TLS connection to the edge; returns the full response.
pub async fn send(
    edge: SocketAddr,
    sni: &str,
    ca: &[CertificateDer<'static>],
    req: Request<Full<Bytes>>,
) -> Result<Response<Bytes>, Error> {
    let (mut sender, _conn) = h1(tls(edge, sni, ca).await?).await?;
    let resp = sender.send_request(req).await?;
    let (parts, body) = resp.into_parts();
    Ok(Response::from_parts(parts, body.collect().await?.to_bytes()))
}

/// A JSON-RPC POST to `/mcp` with the given Host.
pub fn mcp_post(host: &str, body: &str) -> Request<Full<Bytes>> {
    Request::post("/mcp")
        .header("host", host)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("request")
}

/// The certificate the gateway presents for `sni` (a fresh TLS handshake through the edge).
pub async fn peer_cert(
    edge: SocketAddr,
    sni: &str,
    ca: &[CertificateDer<'static>],
) -> Result<CertificateDer<'static>, Error> {
    let tls = tls(edge, sni, ca).await?;
    let cert = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).ok_or("no peer certificate")?;
    Ok(cert.clone().into_owned())
}
