//! Client connections over the gateway's `max_streams`: the inner TLS is finished so the
//! client gets a readable answer instead of a hang or a reset. Every request on such a
//! stream is answered 503 `too_many_streams` with `Retry-After` (and audited), and the
//! connection is closed after the first answer.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use tracing::{debug, info};

use super::conn::ConnInfo;
use super::linger::{self, RequestBody};
use super::outcome::{refuse, Refusal};
use super::proxy::request_host;
use super::respond::ClientBody;
use super::trail::{self, Trail};
use super::GatewayShared;

/// How long a refused client may take to send its request before the stream closes.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Answers the requests of one stream over the limit, then closes it.
pub async fn serve<IO>(io: IO, shared: Arc<GatewayShared>, conn: Arc<ConnInfo>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    shared.metrics.streams_refused.inc();
    info!(client = %conn.client_addr, "max_streams reached; answering 503");
    let answered = Arc::new(Notify::new());
    let service = {
        let answered = answered.clone();
        service_fn(move |req: Request<Incoming>| {
            let (parts, body) = req.into_parts();
            let version = parts.version;
            let resp = linger::after(refusal(&shared, &conn, &parts), RequestBody::new(body), version);
            answered.notify_one();
            async move { Ok::<_, Infallible>(resp) }
        })
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().keep_alive(false).timer(TokioTimer::new()).header_read_timeout(ANSWER_TIMEOUT);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let served = tokio::time::timeout(ANSWER_TIMEOUT, async {
        tokio::select! {
            r = connection.as_mut() => r,
            _ = answered.notified() => {
                // HTTP/2: GOAWAY after the answer, so the client opens a new connection.
                connection.as_mut().graceful_shutdown();
                connection.as_mut().await
            }
        }
    })
    .await;
    if let Ok(Err(e)) = served {
        debug!("refused client connection ended with error: {e}");
    }
}

fn refusal(shared: &GatewayShared, conn: &ConnInfo, req: &Parts) -> Response<ClientBody> {
    let host = request_host(req).unwrap_or_else(|| conn.sni.clone());
    let routes = shared.routes();
    let refusal = Refusal::TooManyStreams;
    match routes.lookup(&host, req.uri.path()) {
        Some(route) => {
            let trail = Trail::new(&shared.auditor, &shared.tunnel, route, conn, &req.method);
            refuse(&shared.metrics, &route.name, trail, &refusal, None)
        }
        None => {
            let (status, reason) = (refusal.status().as_u16(), refusal.reason());
            trail::refuse_unrouted(&shared.auditor, &shared.tunnel, conn, &req.method, status, reason);
            refusal.response(None)
        }
    }
}
