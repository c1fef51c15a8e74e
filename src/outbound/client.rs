//! Connections to upstream MCP servers: a pooled hyper client per route whose connector
//! resolves the host, refuses addresses outside the allow-list, connects with a timeout
//! and, for `https`, runs TLS against the route's own CA.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::allowlist::AllowList;
use super::target::UpstreamTarget;

/// Body type of requests sent upstream (the same boxed body the gateway relays).
pub use crate::body::ClientBody as UpstreamBody;

/// Why a connection to an upstream could not be made.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot resolve {host}: {source}")]
    Resolve { host: String, source: io::Error },
    #[error("{host} resolved to {addrs:?}, none of which is in the upstream allow-list")]
    Forbidden { host: String, addrs: Vec<IpAddr> },
    #[error("connect to {addr} failed: {source}")]
    Connect { addr: SocketAddr, source: io::Error },
    #[error("connect to {host} timed out after {after:?}")]
    ConnectTimeout { host: String, after: Duration },
    #[error("TLS handshake with {host} failed: {source}")]
    Tls { host: String, source: io::Error },
    #[error("{host:?} is not a valid TLS server name")]
    ServerName { host: String },
}

/// Pooled client for one upstream; cheap to clone.
#[derive(Clone)]
pub struct UpstreamClient {
    inner: Client<Connector, UpstreamBody>,
    allow: Arc<AllowList>,
    opened: Arc<AtomicU64>,
}

impl std::fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UpstreamClient")
    }
}

impl UpstreamClient {
    /// A client that connects only to addresses `allow` permits.
    pub fn new(target: &UpstreamTarget, allow: Arc<AllowList>, connect_timeout: Duration) -> Self {
        let opened = Arc::new(AtomicU64::new(0));
        let tls = target.tls.clone().map(TlsConnector::from);
        let connector = Connector { allow: allow.clone(), tls, connect_timeout, opened: opened.clone() };
        let inner = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(60)).build(connector);
        Self { inner, allow, opened }
    }

    /// How many connections this client has opened so far: a new one may reach a
    /// restarted upstream (tool pinning re-lists when this moves).
    pub fn connections_opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// The networks this client may connect to (`[upstream] allowed_networks`).
    pub fn allow_list(&self) -> &AllowList {
        &self.allow
    }

    /// Sends a request; the response body streams.
    pub fn request(&self, req: http::Request<UpstreamBody>) -> hyper_util::client::legacy::ResponseFuture {
        self.inner.request(req)
    }
}

/// Resolves, checks the allow-list, connects, and optionally wraps in TLS.
#[derive(Clone)]
pub struct Connector {
    allow: Arc<AllowList>,
    tls: Option<TlsConnector>,
    connect_timeout: Duration,
    opened: Arc<AtomicU64>,
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<UpstreamConn>;
    type Error = UpstreamError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.connect(uri).await.map(TokioIo::new) })
    }
}

impl Connector {
    async fn connect(self, uri: Uri) -> Result<UpstreamConn, UpstreamError> {
        let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = uri.port_u16().unwrap_or(if self.tls.is_some() { 443 } else { 80 });
        let timeout = self.connect_timeout;
        let tcp = tokio::time::timeout(timeout, self.connect_tcp(&host, port))
            .await
            .map_err(|_| UpstreamError::ConnectTimeout { host: host.clone(), after: timeout })??;
        self.opened.fetch_add(1, Ordering::Relaxed);
        let Some(tls) = &self.tls else {
            return Ok(UpstreamConn::Plain(tcp));
        };
        let name = ServerName::try_from(host.clone()).map_err(|_| UpstreamError::ServerName { host: host.clone() })?;
        let stream = tokio::time::timeout(timeout, tls.connect(name, tcp))
            .await
            .map_err(|_| UpstreamError::ConnectTimeout { host: host.clone(), after: timeout })?
            .map_err(|source| UpstreamError::Tls { host, source })?;
        Ok(UpstreamConn::Tls(Box::new(stream)))
    }

    async fn connect_tcp(&self, host: &str, port: u16) -> Result<TcpStream, UpstreamError> {
        let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|source| UpstreamError::Resolve { host: host.to_owned(), source })?
            .collect();
        let allowed: Vec<SocketAddr> = resolved.iter().copied().filter(|a| self.allow.allows(a.ip())).collect();
        if allowed.is_empty() {
            return Err(UpstreamError::Forbidden {
                host: host.to_owned(),
                addrs: resolved.iter().map(|a| a.ip()).collect(),
            });
        }
        let mut last = None;
        for addr in allowed {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    // MCP messages are small and latency-bound.
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Err(source) => last = Some(UpstreamError::Connect { addr, source }),
            }
        }
        Err(last.unwrap_or(UpstreamError::Forbidden { host: host.to_owned(), addrs: vec![] }))
    }
}

/// A plain or TLS connection to an upstream.
pub enum UpstreamConn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection for UpstreamConn {
    fn connected(&self) -> Connected {
        match self {
            Self::Plain(_) => Connected::new(),
            Self::Tls(s) if s.get_ref().1.alpn_protocol() == Some(b"h2") => Connected::new().negotiated_h2(),
            Self::Tls(_) => Connected::new(),
        }
    }
}

impl AsyncRead for UpstreamConn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamConn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Finds our own connect error inside a hyper client error, to choose 502 vs 504.
pub fn find_upstream_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a UpstreamError> {
    let mut cur: Option<&'a (dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(u) = e.downcast_ref::<UpstreamError>() {
            return Some(u);
        }
        cur = e.source();
    }
    None
}
