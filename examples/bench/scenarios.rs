//! The measurements, each producing one report row for one path.

use std::time::{Duration, Instant};

use crate::load;
use crate::paths::Path;
use crate::procs::{self, Usage};
use crate::report::Row;

/// Settings shared by the scenarios (scaled down by `--quick`).
pub struct Scale {
    pub clients: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub bulk_bytes: u64,
    pub parallel_bytes: u64,
    pub sse_window: Duration,
    pub sse_parallel_open: usize,
}

/// Requests per client at most, whatever the duration (keeps every loop bounded).
const MAX_PER_CLIENT: u64 = 5_000_000;

fn usages(path: &Path) -> Vec<(&'static str, Usage)> {
    let mut v: Vec<_> = path.procs.iter().map(|p| (p.role, p.usage())).collect();
    v.push(("upstream", procs::upstream_usage()));
    v.push(("bench", procs::own_usage()));
    v
}

/// Small `tools/call`s: persistent connections, or (`new_conn`) a full TLS handshake
/// per request. Also CPU seconds per 10 000 requests of every process of the path.
pub async fn small(path: &Path, scale: &Scale, rep: usize, new_conn: bool) -> Row {
    let name = if new_conn { "small-newconn" } else { "small-persistent" };
    let clients = if new_conn { scale.clients.min(16) } else { scale.clients };
    let _ = load::small(path.target.clone(), clients, scale.warmup, MAX_PER_CLIENT, new_conn).await;
    let before = usages(path);
    let r = load::small(path.target.clone(), clients, scale.duration, MAX_PER_CLIENT, new_conn).await;
    let after = usages(path);
    let mut row = Row::new(name, rep, path.kind.name());
    row.set("rps", r.ok as f64 / r.elapsed.as_secs_f64());
    row.percentiles("", &r.hist);
    if r.ok > 0 {
        for ((role, b), (_, a)) in before.iter().zip(after.iter()) {
            row.set(&format!("cpu_s_per_10k_{role}"), (*a - *b).cpu_s / r.ok as f64 * 10_000.0);
        }
    }
    if r.errors > 0 {
        row.note = format!("{} errors", r.errors);
    }
    row
}

/// One large response, or `parallel` responses at once; throughput in Gbit/s.
pub async fn bulk(path: &Path, scale: &Scale, rep: usize, parallel: usize) -> Row {
    let (name, bytes) = if parallel == 1 { ("bulk-1x", scale.bulk_bytes) } else { ("bulk-8x", scale.parallel_bytes) };
    let before = usages(path);
    let r = load::bulk(path.target.clone(), parallel, bytes).await;
    let after = usages(path);
    let mut row = Row::new(name, rep, path.kind.name());
    row.set("gbit_s", r.bytes as f64 * 8.0 / r.elapsed.as_secs_f64() / 1e9);
    row.set("mb", r.bytes as f64 / 1e6);
    if r.bytes > 0 {
        for ((role, b), (_, a)) in before.iter().zip(after.iter()) {
            row.set(&format!("cpu_s_per_gb_{role}"), (*a - *b).cpu_s / (r.bytes as f64 / 1e9));
        }
    }
    if r.errors > 0 {
        row.note = format!("{} transfers failed", r.errors);
    }
    row
}

/// UDP datagrams the kernel dropped for want of receive-buffer space, machine-wide
/// (`RcvbufErrors` in /proc/net/snmp): a QUIC path that drops datagrams pays loss recovery.
fn udp_drops() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else { return 0 };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// `n` long-lived SSE streams (over the path's single tunnel connection): resident
/// memory per stream of each process, and event delivery latency.
pub async fn sse(path: &Path, scale: &Scale, rep: usize, n: usize) -> Row {
    let before = usages(path);
    let drops_before = udp_drops();
    let started = Instant::now();
    let set = load::sse_open(path.target.clone(), n, scale.sse_parallel_open);
    set.wait_open(n, Duration::from_secs(180)).await;
    let open_s = started.elapsed().as_secs_f64();
    // Let allocators settle before reading RSS.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = usages(path);
    let opened = set.opened.load(std::sync::atomic::Ordering::Relaxed);
    let failed = set.failed.load(std::sync::atomic::Ordering::Relaxed);
    set.record(scale.sse_window).await;
    let events = set.events.load(std::sync::atomic::Ordering::Relaxed);
    let hist = set.close().await;
    let drops = udp_drops().saturating_sub(drops_before);
    let mut row = Row::new(&format!("sse-{n}"), rep, path.kind.name());
    row.set("open", opened as f64);
    row.set("open_s", open_s);
    row.set("events", events as f64);
    row.percentiles("event_", &hist);
    row.set("udp_rcvbuf_drops", drops as f64);
    if opened > 0 {
        for ((role, b), (_, a)) in before.iter().zip(after.iter()) {
            if !matches!(*role, "bench" | "upstream") {
                row.set(&format!("rss_kb_per_stream_{role}"), (*a - *b).rss_kb as f64 / opened as f64);
            }
        }
    }
    if failed > 0 {
        row.note = format!("{failed} streams failed");
    }
    // Closed streams take a moment to unwind in every process.
    tokio::time::sleep(Duration::from_secs(2)).await;
    row
}

/// Kill the edge (or rathole server), start it again on the same ports; time from it
/// accepting TCP again to the first successful request through it.
pub async fn reconnect(path: &mut Path, rep: usize) -> Option<Row> {
    let idx = path.edge?;
    let mut row = Row::new("reconnect", rep, path.kind.name());
    let killed = Instant::now();
    if let Err(e) = path.procs[idx].restart().await {
        row.note = format!("restart failed: {e}");
        return Some(row);
    }
    let public = path.target.addr;
    let accepting = match crate::paths::wait_tcp(public, Duration::from_secs(30)).await {
        Ok(t) => t,
        Err(e) => {
            row.note = e;
            return Some(row);
        }
    };
    match crate::paths::wait_ready(&path.target, Duration::from_secs(60)).await {
        Ok(ok) => {
            row.set("accept_to_ok_ms", (ok - accepting).as_secs_f64() * 1e3);
            row.set("kill_to_ok_ms", (ok - killed).as_secs_f64() * 1e3);
        }
        Err(e) => row.note = format!("no successful request within 60 s: {e}"),
    }
    Some(row)
}
