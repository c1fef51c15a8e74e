//! A recording HTTP upstream on loopback: it keeps every request it receives (method, path,
//! headers, body) and answers each with a JSON-RPC result (or what the test makes it
//! answer: an adversarial server's bytes), so adversarial tests can check exactly what the
//! gateway let through, in both directions.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query, exactly as received.
    pub target: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The running upstream; stops on drop.
pub struct Recorder {
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: CancellationToken,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// How the upstream answers one request (it has been recorded already).
pub type Answer = Arc<dyn Fn(&Seen) -> Response<Full<Bytes>> + Send + Sync>;

/// The default answer: a `tools/call` result for the request's id.
pub fn ran(seen: &Seen) -> Response<Full<Bytes>> {
    let id = serde_json::from_slice::<serde_json::Value>(&seen.body)
        .ok()
        .and_then(|v| v.get("id").cloned())
        .unwrap_or(serde_json::Value::Null);
    let answer = serde_json::json!({"jsonrpc": "2.0", "id": id,
        "result": {"content": [{"type": "text", "text": "recorder-ran"}]}});
    canned(200, &[("content-type", "application/json")], answer.to_string())
}

/// A response with `status`, `headers` and `body`.
pub fn canned(status: u16, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut b = Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(body.into())).expect("response")
}

impl Recorder {
    pub async fn start() -> Recorder {
        Recorder::answering(Arc::new(ran)).await
    }

    /// An upstream that answers with `answer` (an adversarial server's bytes).
    pub async fn answering(answer: Answer) -> Recorder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind recorder");
        let port = listener.local_addr().expect("addr").port();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let stop = CancellationToken::new();
        let (log, until) = (seen.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    r = listener.accept() => match r { Ok(c) => c, Err(_) => continue },
                    _ = until.cancelled() => return,
                };
                let (log, answer) = (log.clone(), answer.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (log, answer) = (log.clone(), answer.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            let seen = Seen {
                                method: parts.method.to_string(),
                                target: parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default(),
                                headers: parts.headers,
                                body,
                            };
                            let resp = answer(&seen);
                            log.lock().expect("lock").push(seen);
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let _ =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), service).await;
                });
            }
        });
        Recorder { port, seen, stop }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Everything received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    /// Requests whose body contains `needle`.
    pub fn bodies_containing(&self, needle: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| String::from_utf8_lossy(&s.body).contains(needle)).collect()
    }
}
