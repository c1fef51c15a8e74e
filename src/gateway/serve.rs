//! One tunnel data stream: read the `Open` preamble, terminate the inner TLS with the
//! customer's certificate, and serve HTTP/1.1 or HTTP/2 on it with hyper.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, Instrument, Span};

use super::conn::ConnInfo;
use super::GatewayShared;
use super::{proxy, spans};
use crate::idle::{Activity, Tracked};
use crate::protocol::{frame, Open, MAX_FRAME_LEN};
use crate::stats::Metered;
use crate::stream::TunnelStream;

/// Time allowed for the preamble and the inner TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a client gets to send a request's headers (HTTP/1.1).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The inner TLS server config; replaced as a whole when the certificate rotates, so
/// handshakes in progress keep the config they started with.
#[derive(Debug)]
pub struct InnerTls {
    current: RwLock<Arc<rustls::ServerConfig>>,
}

impl InnerTls {
    /// Starts with `config`.
    pub fn new(config: rustls::ServerConfig) -> Self {
        Self { current: RwLock::new(Arc::new(config)) }
    }
    /// The config new handshakes use.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read().unwrap_or_else(PoisonError::into_inner).clone())
    }
    /// Installs a new config for future handshakes.
    pub fn replace(&self, config: rustls::ServerConfig) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(config);
    }
}

/// Serves one data stream until the client's connection ends or `shutdown` fires
/// (then in-flight requests finish and the connection closes gracefully).
pub async fn serve_stream(
    mut stream: TunnelStream,
    open: Option<Open>,
    connection: u32,
    shared: Arc<GatewayShared>,
    shutdown: CancellationToken,
) {
    let open = match open {
        Some(open) => open,
        None => match read_preamble(&mut stream).await {
            Some(open) => open,
            None => return,
        },
    };
    let span = spans::stream(open.stream_id);
    serve_open(stream, open, connection, shared, shutdown).instrument(span).await;
}

/// Serves a stream whose preamble has been read: inner TLS, then HTTP.
async fn serve_open(
    stream: TunnelStream,
    open: Open,
    connection: u32,
    shared: Arc<GatewayShared>,
    shutdown: CancellationToken,
) {
    let stream_id = open.stream_id;
    shared.metrics.streams.inc();
    shared.metrics.streams_active.inc();
    let _active = ActiveStream(shared.clone());
    let acceptor = shared.inner_tls.acceptor();
    let activity = Activity::new();
    let metrics = &shared.metrics;
    let stream = Metered::new(stream, metrics.bytes_from_client.clone(), metrics.bytes_to_client.clone());
    let stream = Tracked::new(stream, activity.clone());
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            info!(client = %open.client_addr, sni = %open.sni, "inner TLS handshake failed: {e}");
            return;
        }
        Err(_) => {
            info!(client = %open.client_addr, "inner TLS handshake timed out");
            return;
        }
    };
    // Route by the name the client asked *this* TLS session for, not the edge's report.
    let sni = tls.get_ref().1.server_name().map(str::to_ascii_lowercase).unwrap_or(open.sni);
    let client_addr = open.client_addr;
    let conn = Arc::new(ConnInfo { connection, stream_id, client_addr, sni });
    debug!(client = %conn.client_addr, sni = %conn.sni, "inner TLS established");
    // Held until the client's connection ends.
    let Ok(_slot) = shared.stream_slots.clone().try_acquire_owned() else {
        return super::busy::serve(tls, shared, conn).await;
    };
    serve_http(tls, conn, shared, activity, shutdown).await;
}

/// The stream's `Open` preamble (QUIC carries it in-band), within the handshake time.
/// `None`: the stream ended, or is dropped for a bad or missing preamble.
async fn read_preamble(stream: &mut TunnelStream) -> Option<Open> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, frame::read::<Open, _>(stream, MAX_FRAME_LEN)).await {
        Ok(Ok(open)) => open,
        Ok(Err(e)) => {
            info!("bad stream preamble, dropping stream: {e}");
            stream.abort();
            None
        }
        Err(_) => {
            info!("no stream preamble within {HANDSHAKE_TIMEOUT:?}, dropping stream");
            stream.abort();
            None
        }
    }
}

/// HTTP on the client's inner TLS session until it ends, goes idle, or a drain closes it.
async fn serve_http<S>(
    tls: S,
    conn: Arc<ConnInfo>,
    shared: Arc<GatewayShared>,
    activity: Activity,
    shutdown: CancellationToken,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let routing = shared.clone();
    let stream_span = Span::current();
    // Set once the first request has arrived (see the shutdown branch below).
    let (first_tx, mut first_rx) = tokio::sync::watch::channel(false);
    let service = service_fn(move |req| {
        first_tx.send_replace(true);
        // Each request sees the routing table in force when it arrives (hot reload).
        let (shared, conn) = (routing.clone(), conn.clone());
        let handled = async move { Ok::<_, std::convert::Infallible>(proxy::handle(shared, conn, req).await) };
        handled.instrument(spans::request(&stream_span))
    });
    let mut builder = auto::Builder::new(InSpan(Span::current()));
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    let connection = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(connection);
    let idle = shared.idle_timeout;
    let result = tokio::select! {
        r = connection.as_mut() => r,
        _ = shutdown.cancelled() => {
            // A client whose connection reached us just before a drain has a request on
            // the way: serve that one before closing, or it would fail for no reason.
            let first_request = tokio::time::timeout(HEADER_READ_TIMEOUT, async move {
                let _ = first_rx.wait_for(|seen| *seen).await.is_ok();
            });
            tokio::select! {
                r = connection.as_mut() => r,
                _ = first_request => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            }
        }
        _ = activity.idle_for(idle) => {
            info!("closing client connection idle for {idle:?}");
            return;
        }
    };
    if let Err(e) = result {
        debug!("client connection ended with error: {e}");
    }
}

/// hyper's executor for HTTP/2 request tasks: tokio's, with the stream's span, so what
/// they log (answers streamed in the body) names the stream too. The tasks are children of
/// the connection future, which the stream's task awaits.
#[derive(Clone)]
struct InSpan(Span);

impl<F> hyper::rt::Executor<F> for InSpan
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, task: F) {
        tokio::spawn(task.instrument(self.0.clone()));
    }
}

/// Decrements the active-stream gauge when a stream ends, however it ends.
struct ActiveStream(Arc<GatewayShared>);

impl Drop for ActiveStream {
    fn drop(&mut self) {
        self.0.metrics.streams_active.dec();
    }
}
