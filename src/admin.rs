//! The admin endpoint (loopback by default): `/healthz` (the process runs), `/readyz`
//! (the component can do its job; JSON details) and `/metrics` (Prometheus text).
//! It is read-only and carries no secret or payload.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// What the admin endpoint reports.
pub trait AdminSource: Send + Sync + 'static {
    /// Ready, and a JSON description of the component's state.
    fn readiness(&self) -> (bool, serde_json::Value);
    /// Metrics in the Prometheus text format.
    fn metrics(&self) -> String;
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

/// Serves the admin endpoint on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, source: Arc<dyn AdminSource>, shutdown: CancellationToken) {
    loop {
        let (tcp, _) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    warn!("admin accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        let source = source.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let resp = route(source.as_ref(), &req);
                async move { Ok::<_, std::convert::Infallible>(resp) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(5));
            let _ = builder.serve_connection(TokioIo::new(tcp), svc).await;
        });
    }
}

/// `mcp-tunnel probe`: GETs `/healthz` or `/readyz` on `addr`; `Ok(true)` on 200.
pub async fn probe(addr: &str, path: &str, timeout: Duration) -> Result<bool, String> {
    let check = async {
        let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(tcp))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req =
            Request::get(path).header(header::HOST, addr).body(Full::new(Bytes::new())).map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        Ok(resp.status() == StatusCode::OK)
    };
    tokio::time::timeout(timeout, check).await.map_err(|_| format!("no answer from {addr} within {timeout:?}"))?
}
