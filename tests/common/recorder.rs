//! A recording HTTP upstream on loopback: it keeps every request it receives (method, path,
//! headers, body) and answers each with a JSON-RPC result, so adversarial tests can check
//! exactly what the gateway let through.

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

impl Recorder {
    pub async fn start() -> Recorder {
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
                let log = log.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let log = log.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            let id = serde_json::from_slice::<serde_json::Value>(&body)
                                .ok()
                                .and_then(|v| v.get("id").cloned())
                                .unwrap_or(serde_json::Value::Null);
                            log.lock().expect("lock").push(Seen {
                                method: parts.method.to_string(),
                                target: parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default(),
                                headers: parts.headers,
                                body,
                            });
                            let answer = serde_json::json!({"jsonrpc": "2.0", "id": id,
                                "result": {"content": [{"type": "text", "text": "recorder-ran"}]}});
                            let resp = Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(answer.to_string())))
                                .expect("response");
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
