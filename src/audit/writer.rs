//! The audit queue and its writer task. [`Auditor::record`] is a `try_send` on a bounded
//! channel: it never waits, and a full queue drops the record (counted). The writer task
//! takes records in batches, encodes them and writes each batch on a blocking thread,
//! handing it to the OS before taking the next, so a crash loses at most the batch in hand
//! and what was still queued.

use std::time::SystemTime;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use super::record::{format_time, AuditRecord};
use super::sink::{AuditError, Progress, Sink, SinkConfig};
use super::AuditMetrics;
use crate::stats::Counter;

/// Records taken from the queue per write.
const BATCH: usize = 256;

/// A record and the moment it was submitted (formatted later, off the request path).
struct Queued {
    at: SystemTime,
    rec: AuditRecord,
}

/// The handle the request path holds. Cloning is cheap (a channel sender and a counter).
#[derive(Debug, Clone)]
pub struct Auditor {
    inner: Option<Inner>,
}

#[derive(Debug, Clone)]
struct Inner {
    tx: mpsc::Sender<Queued>,
    dropped: Counter,
}

/// The running writer task; [`AuditTask::shutdown`] drains it. Dropping it without
/// shutting down leaves the task running until every [`Auditor`] is dropped.
#[derive(Debug)]
pub struct AuditTask {
    stop: CancellationToken,
    handle: JoinHandle<()>,
}

impl Auditor {
    /// Opens the sink and spawns the writer task on the current tokio runtime. Opening
    /// errors (missing directory, permission denied, bad settings) are returned here so
    /// the process can refuse to start. `capacity` is how many records may wait.
    pub fn start(
        sink: &SinkConfig,
        capacity: usize,
        metrics: AuditMetrics,
    ) -> Result<(Auditor, AuditTask), AuditError> {
        if capacity == 0 {
            return Err(AuditError::Invalid("queue capacity must be at least 1"));
        }
        let sink = Sink::open(sink)?;
        let (tx, rx) = mpsc::channel(capacity);
        let stop = CancellationToken::new();
        let dropped = metrics.dropped.clone();
        let state = WriterState { sink, metrics, failing: false, lost_in_burst: 0, line: Vec::new() };
        // Owned by the returned `AuditTask`: its `shutdown` drains and joins the writer.
        let handle = tokio::spawn(run(rx, state, stop.clone()));
        Ok((Auditor { inner: Some(Inner { tx, dropped }) }, AuditTask { stop, handle }))
    }

    /// An auditor that discards every record and counts nothing.
    pub fn disabled() -> Auditor {
        Auditor { inner: None }
    }

    /// Whether records go anywhere; lets a caller skip building (and redacting) a record.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Queues `rec` for writing. Never blocks or awaits: if the queue is full (or the
    /// writer has shut down) the record is dropped and counted in `dropped`.
    pub fn record(&self, rec: AuditRecord) {
        let Some(inner) = &self.inner else { return };
        if inner.tx.try_send(Queued { at: SystemTime::now(), rec }).is_err() {
            inner.dropped.inc();
        }
    }
}

impl AuditTask {
    /// Stops accepting records, writes every record already queued, and returns once
    /// they have been handed to the OS. Records submitted afterwards count as dropped.
    pub async fn shutdown(self) {
        self.stop.cancel();
        if let Err(e) = self.handle.await {
            error!("audit writer task failed: {e}");
        }
    }
}

async fn run(mut rx: mpsc::Receiver<Queued>, mut state: WriterState, stop: CancellationToken) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut stopping = false;
    loop {
        let n = if stopping {
            rx.recv_many(&mut batch, BATCH).await
        } else {
            tokio::select! {
                n = rx.recv_many(&mut batch, BATCH) => n,
                () = stop.cancelled() => {
                    // Refuse new records; `recv_many` still yields the queued ones, then 0.
                    rx.close();
                    stopping = true;
                    continue;
                }
            }
        };
        if n == 0 {
            return;
        }
        let records = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
        // File and stdout writes block; they run off the runtime's worker threads.
        state = match tokio::task::spawn_blocking(move || {
            state.write_batch(records);
            state
        })
        .await
        {
            Ok(s) => s,
            Err(e) => {
                error!("audit writer stopped, further records will be dropped: {e}");
                return;
            }
        };
    }
}

/// What the writer task owns between batches.
struct WriterState {
    sink: Sink,
    metrics: AuditMetrics,
    /// Whether the last sink operation failed: errors are logged once per burst.
    failing: bool,
    lost_in_burst: u64,
    /// Reused encoding buffer.
    line: Vec<u8>,
}

impl WriterState {
    fn write_batch(&mut self, records: Vec<Queued>) {
        for Queued { at, mut rec } in records {
            if rec.time.is_none() {
                rec.time = format_time(at);
            }
            self.line.clear();
            let progress = match serde_json::to_writer(&mut self.line, &rec) {
                Ok(()) => {
                    self.line.push(b'\n');
                    self.sink.push(&self.line)
                }
                Err(e) => Progress { written: 0, lost: 1, error: Some(e.into()) },
            };
            self.account(progress);
        }
        let progress = self.sink.flush();
        self.account(progress);
    }

    /// Counts a sink result and logs the first error of a burst, and its end.
    fn account(&mut self, p: Progress) {
        self.metrics.written.add(p.written);
        self.metrics.write_errors.add(p.lost);
        if let Some(e) = p.error {
            self.lost_in_burst += p.lost;
            if !self.failing {
                self.failing = true;
                error!("{e} (further audit errors are counted, not logged, until a write succeeds)");
            }
        } else if self.failing && p.written > 0 {
            self.failing = false;
            warn!(lost = self.lost_in_burst, "audit log writes succeed again");
            self.lost_in_burst = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::Event;
    use crate::audit::sink::numbered;
    use serde_json::Value;
    use std::path::Path;

    fn file(path: &Path, max_bytes: u64, keep: u32) -> SinkConfig {
        SinkConfig::File { path: path.to_owned(), max_bytes, keep }
    }

    fn rec(n: u64) -> AuditRecord {
        AuditRecord { stream: Some(n), tool: Some("search".into()), ..AuditRecord::new(Event::Mcp) }
    }

    /// Every line of `path` as JSON (panics on an invalid line).
    fn read(path: &Path) -> Vec<Value> {
        std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    fn streams(path: &Path) -> Vec<u64> {
        read(path).iter().map(|v| v["stream"].as_u64().unwrap()).collect()
    }

    #[tokio::test]
    async fn shutdown_writes_everything_queued() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let metrics = AuditMetrics::default();
        let (auditor, task) = Auditor::start(&file(&path, u64::MAX, 1), 10_000, metrics.clone()).unwrap();
        for n in 0..5000 {
            auditor.clone().record(rec(n));
        }
        task.shutdown().await;
        assert_eq!(streams(&path), (0..5000).collect::<Vec<_>>());
        assert_eq!((metrics.written.get(), metrics.dropped.get(), metrics.write_errors.get()), (5000, 0, 0));
        let first = &read(&path)[0];
        let time = first["time"].as_str().unwrap();
        assert!(time.len() == 24 && time.ends_with('Z') && time.as_bytes()[19] == b'.', "{time}");
        assert_eq!(first["event"], "mcp");
        assert!(first.get("route").is_none());
        // After shutdown the queue is closed: a late record is dropped, not lost silently.
        auditor.record(rec(1));
        assert_eq!(metrics.dropped.get(), 1);
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts() {
        // current_thread runtime: the writer task cannot run until this test awaits, so
        // with room for one record every later one is dropped. No timing involved.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let metrics = AuditMetrics::default();
        let (auditor, task) = Auditor::start(&file(&path, u64::MAX, 1), 1, metrics.clone()).unwrap();
        const N: u64 = 1000;
        for n in 0..N {
            auditor.record(rec(n));
        }
        task.shutdown().await;
        assert_eq!(metrics.written.get() + metrics.dropped.get(), N);
        assert_eq!(metrics.dropped.get(), N - 1);
        assert_eq!(streams(&path), [0]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_senders_account_for_every_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let metrics = AuditMetrics::default();
        let (auditor, task) = Auditor::start(&file(&path, 4096, 1000), 8, metrics.clone()).unwrap();
        let senders: Vec<_> = (0..4u64)
            .map(|t| {
                let a = auditor.clone();
                tokio::spawn(async move {
                    for n in 0..2000 {
                        a.record(rec(t * 10_000 + n));
                    }
                })
            })
            .collect();
        for s in senders {
            s.await.unwrap();
        }
        task.shutdown().await;
        assert_eq!(metrics.written.get() + metrics.dropped.get(), 8000);
        let mut on_disk = 0;
        for i in 0..=1000 {
            let p = if i == 0 { path.clone() } else { numbered(&path, i) };
            if p.exists() {
                on_disk += read(&p).len() as u64;
            }
        }
        assert_eq!(on_disk, metrics.written.get());
    }

    #[tokio::test]
    async fn rotation_loses_nothing_and_deletes_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let metrics = AuditMetrics::default();
        let (max_bytes, keep, n) = (1000u64, 3u32, 300u64);
        let (auditor, task) = Auditor::start(&file(&path, max_bytes, keep), 1000, metrics.clone()).unwrap();
        for i in 0..n {
            auditor.record(rec(i));
        }
        task.shutdown().await;
        assert_eq!(metrics.written.get(), n);
        // Oldest first: path.3, path.2, path.1, path.
        let files: Vec<_> = (1..=keep).rev().map(|i| numbered(&path, i)).chain([path.clone()]).collect();
        let mut kept = Vec::new();
        for f in &files {
            let size = std::fs::metadata(f).unwrap().len();
            assert!(size <= max_bytes, "{} is {size} bytes", f.display());
            assert!(!read(f).is_empty());
            kept.extend(streams(f));
        }
        assert!(!numbered(&path, keep + 1).exists(), "older files are deleted");
        // The kept files hold the newest records, contiguous: nothing lost at a boundary.
        let first = kept[0];
        assert!(first > 0, "some files were rotated away");
        assert_eq!(kept, (first..n).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn rotation_with_room_keeps_every_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let (auditor, task) = Auditor::start(&file(&path, 500, 100), 1000, AuditMetrics::default()).unwrap();
        for i in 0..300 {
            auditor.record(rec(i));
        }
        task.shutdown().await;
        let mut all = Vec::new();
        for i in (1..=100).rev() {
            if numbered(&path, i).exists() {
                all.extend(streams(&numbered(&path, i)));
            }
        }
        all.extend(streams(&path));
        assert_eq!(all, (0..300).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn write_errors_are_counted_not_fatal() {
        let metrics = AuditMetrics::default();
        let (auditor, task) = Auditor::start(&file(Path::new("/dev/full"), 1000, 1), 100, metrics.clone()).unwrap();
        for i in 0..10 {
            auditor.record(rec(i));
        }
        task.shutdown().await;
        assert_eq!((metrics.written.get(), metrics.write_errors.get()), (0, 10));
    }

    #[tokio::test]
    async fn open_errors_surface_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("audit.log");
        let err = Auditor::start(&file(&path, 1000, 1), 10, AuditMetrics::default()).unwrap_err();
        assert!(err.to_string().contains(&path.display().to_string()), "{err}");
        let err = Auditor::start(&SinkConfig::Stdout, 0, AuditMetrics::default()).unwrap_err();
        assert!(matches!(err, AuditError::Invalid(_)));
    }

    #[tokio::test]
    async fn stdout_sink_writes() {
        let metrics = AuditMetrics::default();
        let (auditor, task) = Auditor::start(&SinkConfig::Stdout, 10, metrics.clone()).unwrap();
        auditor.record(AuditRecord::new(Event::Config));
        task.shutdown().await;
        assert_eq!(metrics.written.get(), 1);
    }

    #[test]
    fn disabled_auditor_counts_nothing() {
        let a = Auditor::disabled();
        assert!(!a.is_enabled());
        a.record(rec(1));
    }
}
