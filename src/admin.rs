//! The admin endpoint (loopback by default): `/healthz` (the process runs), `/readyz`
//! (the component can do its job; JSON details) and `/metrics` (Prometheus text), all
//! read-only, carrying no secret or payload. A component with control operations (the
//! gateway) also takes `POST /control/<op>`, which it authenticates itself.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// What the admin endpoint reports.
pub trait AdminSource: Send + Sync + 'static {
    /// Ready, and a JSON description of the component's state.
    fn readiness(&self) -> (bool, serde_json::Value);
    /// Metrics in the Prometheus text format.
    fn metrics(&self) -> String;
    /// The handler of `POST /control/<op>`; `None` (the edge) answers 405 as before.
    fn control(&self) -> Option<Arc<dyn AdminControl>> {
        None
    }
}

/// Largest `POST /control/<op>` body (arguments are ids, names and reasons).
pub const MAX_CONTROL_BODY: usize = 64 * 1024;
/// Time allowed to send that body. The operation itself may take longer (a kill waits
/// for the cut to complete).
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// One control call as the admin endpoint received it.
#[derive(Debug)]
pub struct ControlCall {
    /// The `<op>` of the path.
    pub op: String,
    /// The `Authorization` header, if any (not logged).
    pub authorization: Option<String>,
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The JSON arguments (empty: none).
    pub body: Bytes,
}

/// The answer to a control call: a status and a JSON body; `challenge` adds
/// `WWW-Authenticate: Bearer`.
#[derive(Debug)]
pub struct ControlReply {
    pub status: StatusCode,
    pub body: serde_json::Value,
    pub challenge: bool,
}

/// Runs control calls (the gateway's control plane).
pub trait AdminControl: Send + Sync + 'static {
    /// Authenticates and runs `call`.
    fn call(&self, call: ControlCall) -> Pin<Box<dyn Future<Output = ControlReply> + Send + '_>>;
}

type Body = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn route(source: &dyn AdminSource, req: &Request<Incoming>) -> Response<Body> {
    if req.method() != Method::GET {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET only\n".into());
    }
    match req.uri().path() {
        "/healthz" => reply(StatusCode::OK, "text/plain", "ok\n".into()),
        "/readyz" => {
            let (ready, detail) = source.readiness();
            let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            let body = serde_json::json!({ "ready": ready, "detail": detail });
            reply(status, "application/json", format!("{body}\n"))
        }
        "/metrics" => reply(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", source.metrics()),
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found: /healthz, /readyz, /metrics\n".into()),
    }
}

fn json_reply(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    reply(status, "application/json", format!("{body}\n"))
}

/// Reads a control call's body (bounded in size and time) and runs it.
async fn control(ctl: Arc<dyn AdminControl>, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let op = req.uri().path().trim_start_matches("/control/").to_owned();
    let authorization = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = http_body_util::Limited::new(req.into_body(), MAX_CONTROL_BODY);
    let body = match tokio::time::timeout(BODY_TIMEOUT, body.collect()).await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(_)) => {
            let msg = format!("the body must be JSON of at most {MAX_CONTROL_BODY} bytes");
            return json_reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                &serde_json::json!({ "ok": false, "error": { "code": "bad_args", "message": msg } }),
            );
        }
        Err(_) => return reply(StatusCode::REQUEST_TIMEOUT, "text/plain", "body not received in time\n".into()),
    };
    let answer = ctl.call(ControlCall { op, authorization, peer, body }).await;
    let mut resp = json_reply(answer.status, &answer.body);
    if answer.challenge {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"mcp-tunnel admin\""));
    }
    resp
}

/// One admin request.
async fn handle(source: Arc<dyn AdminSource>, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    if req.method() == Method::POST && req.uri().path().starts_with("/control/") {
        if let Some(ctl) = source.control() {
            return control(ctl, peer, req).await;
        }
    }
    route(source.as_ref(), &req)
}

/// How long open admin connections get to finish their request after shutdown.
const DRAIN: Duration = Duration::from_secs(5);

/// Serves the admin endpoint on `listener` until `shutdown`, then lets open connections
/// finish the request they are on (up to [`DRAIN`]).
pub async fn serve(listener: TcpListener, source: Arc<dyn AdminSource>, shutdown: CancellationToken) {
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let (tcp, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    warn!("admin accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        connections.spawn(connection(tcp, peer, source.clone(), shutdown.clone()));
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(DRAIN, connections.wait()).await.is_err() {
        warn!("admin connections still open {DRAIN:?} after shutdown");
    }
}

/// Serves one admin connection; at `shutdown` it finishes the request in flight (a
/// keep-alive connection would otherwise stay open), then closes.
async fn connection(tcp: TcpStream, peer: SocketAddr, source: Arc<dyn AdminSource>, shutdown: CancellationToken) {
    let svc = service_fn(move |req| {
        let source = source.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(source, peer, req).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(5));
    let conn = builder.serve_connection(TokioIo::new(tcp), svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// `mcp-tunnel probe`: GETs `/healthz` or `/readyz` on `addr`; `Ok(true)` on 200.
pub async fn probe(addr: &str, path: &str, timeout: Duration) -> Result<bool, String> {
    let check = async {
        let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(tcp))
            .await
            .map_err(|e| e.to_string())?;
        // The CLI's one-request connection: it ends when `sender` drops, within `timeout`.
        tokio::spawn(conn);
        let req =
            Request::get(path).header(header::HOST, addr).body(Full::new(Bytes::new())).map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        Ok(resp.status() == StatusCode::OK)
    };
    tokio::time::timeout(timeout, check).await.map_err(|_| format!("no answer from {addr} within {timeout:?}"))?
}
