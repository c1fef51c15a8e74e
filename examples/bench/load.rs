//! The load generator: HTTP/1.1 clients (hyper over tokio-rustls, or plain TCP for the
//! direct path). Every loop is bounded in count and in time.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use hdrhistogram::Histogram;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

use crate::upstream;

pub type Error = Box<dyn std::error::Error + Send + Sync>;
type Sender = SendRequest<Full<Bytes>>;

/// Bound on any single request (connect included).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on one bulk transfer.
const BULK_TIMEOUT: Duration = Duration::from_secs(180);

/// Where a path's clients connect.
pub struct Target {
    pub addr: SocketAddr,
    /// `None` for plain HTTP (the direct path).
    pub tls: Option<TlsTarget>,
    /// Host header (the SNI on TLS paths).
    pub host: String,
}

/// TLS client settings for a path.
pub struct TlsTarget {
    /// With session resumption (persistent connections).
    pub config: Arc<ClientConfig>,
    /// Without resumption: every new connection pays a full handshake.
    pub fresh: Arc<ClientConfig>,
    pub name: ServerName<'static>,
}

impl TlsTarget {
    /// Trusts `ca`, offers only http/1.1 (what MCP SDK clients use by default).
    pub fn new(ca: &[rustls::pki_types::CertificateDer<'static>], name: &str) -> Result<Self, Error> {
        let config = mcp_tunnel::tls::configs::client_trusting(ca, &[b"http/1.1"])?;
        let mut fresh = config.clone();
        fresh.resumption = rustls::client::Resumption::disabled();
        Ok(Self { config: Arc::new(config), fresh: Arc::new(fresh), name: ServerName::try_from(name.to_owned())? })
    }
}

async fn handshake<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(io: S) -> Result<Sender, Error> {
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// A new connection (TCP, then TLS unless direct); `fresh` disables TLS resumption.
pub async fn connect(t: &Target, fresh: bool) -> Result<Sender, Error> {
    let tcp = TcpStream::connect(t.addr).await?;
    tcp.set_nodelay(true)?;
    match &t.tls {
        None => handshake(tcp).await,
        Some(tls) => {
            let config = if fresh { tls.fresh.clone() } else { tls.config.clone() };
            let stream = TlsConnector::from(config).connect(tls.name.clone(), tcp).await?;
            handshake(stream).await
        }
    }
}

/// The small `tools/call` POST.
pub fn small_request(host: &str) -> Request<Full<Bytes>> {
    const BODY: &str =
        r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}"#;
    Request::post("/mcp")
        .header("host", host)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .body(Full::new(Bytes::from_static(BODY.as_bytes())))
        .expect("static request")
}

fn get(host: &str, path: &str) -> Request<Full<Bytes>> {
    Request::get(path).header("host", host).body(Full::new(Bytes::new())).expect("request")
}

/// One small call on `sender`; the whole body is read and checked.
pub async fn call(sender: &mut Sender, host: &str) -> Result<(), Error> {
    sender.ready().await?;
    let resp = sender.send_request(small_request(host)).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    if !status.is_success() || !body.windows(8).any(|w| w == b"\"result\"") {
        return Err(format!("unexpected answer: {status}").into());
    }
    Ok(())
}

/// Outcome of a small-call run.
pub struct SmallResult {
    pub ok: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// Latency in microseconds.
    pub hist: Histogram<u64>,
}

fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds")
}

/// `clients` concurrent clients sending small calls back to back for `duration` (each at
/// most `max_each`). Persistent: one kept-alive connection per client. `new_conn`: a new
/// TCP + full TLS handshake per request, its time included in the latency.
pub async fn small(t: Arc<Target>, clients: usize, duration: Duration, max_each: u64, new_conn: bool) -> SmallResult {
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<JoinHandle<(u64, u64, Histogram<u64>)>> = (0..clients)
        .map(|_| {
            let t = t.clone();
            tokio::spawn(async move {
                let (mut ok, mut errors, mut hist) = (0u64, 0u64, new_hist());
                let mut sender: Option<Sender> = None;
                while ok + errors < max_each && Instant::now() < deadline {
                    let begun = Instant::now();
                    let attempt = async {
                        let mut s = match sender.take() {
                            Some(s) if !new_conn => s,
                            _ => connect(&t, new_conn).await?,
                        };
                        call(&mut s, &t.host).await?;
                        Ok::<_, Error>(s)
                    };
                    match tokio::time::timeout(REQUEST_TIMEOUT, attempt).await {
                        Ok(Ok(s)) => {
                            ok += 1;
                            let _ = hist.record(begun.elapsed().as_micros().max(1) as u64);
                            if !new_conn {
                                sender = Some(s);
                            }
                        }
                        _ => errors += 1,
                    }
                }
                (ok, errors, hist)
            })
        })
        .collect();
    let mut out = SmallResult { ok: 0, errors: 0, elapsed: Duration::ZERO, hist: new_hist() };
    for task in tasks {
        if let Ok((ok, errors, hist)) = task.await {
            out.ok += ok;
            out.errors += errors;
            let _ = out.hist.add(&hist);
        }
    }
    out.elapsed = start.elapsed();
    out
}

/// Outcome of a bulk run.
pub struct BulkResult {
    pub bytes: u64,
    pub elapsed: Duration,
    pub errors: u64,
}

/// `streams` parallel GETs of `bytes_each` bytes, each on its own connection.
pub async fn bulk(t: Arc<Target>, streams: usize, bytes_each: u64) -> BulkResult {
    // Connections first, so the timed part is the transfer.
    let mut senders = Vec::new();
    let mut errors = 0;
    for _ in 0..streams {
        match connect(&t, false).await {
            Ok(s) => senders.push(s),
            Err(_) => errors += 1,
        }
    }
    let start = Instant::now();
    let tasks: Vec<JoinHandle<Result<u64, Error>>> = senders
        .into_iter()
        .map(|mut s| {
            let t = t.clone();
            tokio::spawn(async move {
                let transfer = async {
                    s.ready().await?;
                    let resp = s.send_request(get(&t.host, &format!("/bulk?bytes={bytes_each}"))).await?;
                    let mut body = resp.into_body();
                    let mut n = 0u64;
                    while let Some(frame) = body.frame().await {
                        if let Ok(data) = frame?.into_data() {
                            n += data.len() as u64;
                        }
                    }
                    Ok::<_, Error>(n)
                };
                tokio::time::timeout(BULK_TIMEOUT, transfer).await.map_err(|_| Error::from("bulk timed out"))?
            })
        })
        .collect();
    let mut bytes = 0;
    for task in tasks {
        match task.await {
            Ok(Ok(n)) if n == bytes_each => bytes += n,
            _ => errors += 1,
        }
    }
    BulkResult { bytes, elapsed: start.elapsed(), errors }
}

/// A set of open SSE streams.
pub struct SseSet {
    stop: CancellationToken,
    pub opened: Arc<AtomicUsize>,
    pub failed: Arc<AtomicUsize>,
    recording: Arc<AtomicBool>,
    pub events: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<Vec<u32>>>,
}

/// Opens `n` SSE streams (at most `parallel` connecting at once); each records the
/// delivery latency (µs) of the events it gets while recording is on.
pub fn sse_open(t: Arc<Target>, n: usize, parallel: usize) -> SseSet {
    let stop = CancellationToken::new();
    let (opened, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (recording, events) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let gate = Arc::new(Semaphore::new(parallel));
    let tasks = (0..n)
        .map(|_| {
            let (t, stop, gate) = (t.clone(), stop.clone(), gate.clone());
            let (opened, failed, recording, events) =
                (opened.clone(), failed.clone(), recording.clone(), events.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let run = async {
                    let permit = gate.acquire_owned().await?;
                    let setup = async {
                        let mut s = connect(&t, false).await?;
                        s.ready().await?;
                        let resp = s.send_request(get(&t.host, "/sse")).await?;
                        // A refusal (e.g. 503) has a body too: it is not an open stream.
                        if !resp.status().is_success() {
                            return Err(format!("status {}", resp.status()).into());
                        }
                        let mut body = resp.into_body();
                        body.frame().await.ok_or("stream ended before opening")??;
                        Ok::<_, Error>((s, body))
                    };
                    let (_sender, mut body) = tokio::time::timeout(REQUEST_TIMEOUT, setup).await??;
                    drop(permit);
                    opened.fetch_add(1, Ordering::Relaxed);
                    let mut buf = BytesMut::new();
                    while let Some(frame) = body.frame().await {
                        let Ok(data) = frame?.into_data() else { continue };
                        buf.extend_from_slice(&data);
                        while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
                            let event = buf.split_to(end + 2);
                            if let (true, Some(sent)) =
                                (recording.load(Ordering::Relaxed), upstream::event_time(&event))
                            {
                                let us = upstream::now_ns().saturating_sub(sent) / 1_000;
                                latencies.push(u32::try_from(us).unwrap_or(u32::MAX));
                                events.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    Ok::<_, Error>(())
                };
                tokio::select! {
                    r = run => if r.is_err() { failed.fetch_add(1, Ordering::Relaxed); },
                    _ = stop.cancelled() => {}
                }
                latencies
            })
        })
        .collect();
    SseSet { stop, opened, failed, recording, events, tasks }
}

impl SseSet {
    /// Waits until every stream is open or failed (at most `limit`).
    pub async fn wait_open(&self, n: usize, limit: Duration) {
        let until = Instant::now() + limit;
        while self.opened.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed) < n && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Records event latencies for `window`.
    pub async fn record(&self, window: Duration) {
        self.recording.store(true, Ordering::Relaxed);
        tokio::time::sleep(window).await;
        self.recording.store(false, Ordering::Relaxed);
    }

    /// Closes every stream; returns the recorded latencies (µs).
    pub async fn close(self) -> Histogram<u64> {
        self.stop.cancel();
        let mut hist = new_hist();
        for task in self.tasks {
            for us in task.await.unwrap_or_default() {
                let _ = hist.record(u64::from(us).max(1));
            }
        }
        hist
    }
}
