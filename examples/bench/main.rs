//! Benchmark of mcp-tunnel against a direct connection, a TLS-terminating reverse proxy
//! (nginx, the floor any TLS path pays) and a peer tunnel stack (rathole + nginx), all on
//! loopback in one run, so every number also appears as a ratio to the direct path.
//!
//! ```text
//! scripts/install-bench-peers.sh            # nginx and rathole; missing peers are skipped
//! cargo build --release --bin mcp-tunnel --example bench
//! target/release/examples/bench --quick     # ~1 minute smoke run
//! target/release/examples/bench             # the full run (docs/benchmarks.md)
//! ```
//!
//! The edge and gateway run as separate processes of the release binary, so their CPU
//! time and memory are read from /proc apart from the load generator's. The upstream
//! and the load generator live in this process.

mod kill;
mod load;
mod paths;
mod peers;
mod procs;
mod report;
mod scenarios;
mod upstream;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use mcp_tunnel::pki::{self, PkiOptions};

use paths::{Env, Kind};
use report::Report;
use scenarios::Scale;

#[derive(Parser)]
#[command(about = "mcp-tunnel benchmark: direct vs TLS floor vs tunnel (QUIC, HTTP/2) vs rathole + nginx")]
struct Opts {
    /// Smoke run of about a minute (short windows, 200 SSE streams, 20 MB bulk).
    #[arg(long)]
    quick: bool,
    /// Paths to measure (direct is always included, for the ratios).
    #[arg(long, value_delimiter = ',', default_value = "direct,tls-floor,tunnel-quic,tunnel-h2,rathole")]
    paths: Vec<String>,
    /// Scenarios: small, newconn, bulk, sse, reconnect, kill.
    #[arg(long, value_delimiter = ',', default_value = "small,newconn,bulk,sse,reconnect,kill")]
    scenarios: Vec<String>,
    /// Concurrent clients for small calls (at most 16 with a new connection per request).
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Seconds per small-call measurement [default: 10, quick: 3].
    #[arg(long)]
    duration: Option<f64>,
    /// Repetitions of the small-call scenarios [default: 3, quick: 1].
    #[arg(long)]
    repeat: Option<usize>,
    /// SSE fan-in sizes [default: 1000,10000, quick: 200].
    #[arg(long, value_delimiter = ',')]
    sse_streams: Vec<usize>,
    /// Open SSE streams a kill cuts (tunnel paths) [default: 500, quick: 100].
    #[arg(long)]
    kill_streams: Option<usize>,
    /// Interval between events on each SSE stream.
    #[arg(long, default_value_t = 1000)]
    sse_interval_ms: u64,
    /// Repetitions of the edge restart.
    #[arg(long, default_value_t = 3)]
    reconnects: usize,
    /// Where to write the JSON result.
    #[arg(long, default_value = "bench-results.json")]
    json: PathBuf,
    /// The mcp-tunnel binary [default: next to this example's directory].
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Keep the work dir (configs, PKI, process logs) and print its path.
    #[arg(long)]
    keep: bool,
    /// Tokio worker threads of the edge and gateway processes (TOKIO_WORKER_THREADS)
    /// [default: the runtime's default, one per core].
    #[arg(long)]
    tunnel_threads: Option<usize>,
    /// Internal: run as the upstream server process.
    #[arg(long, hide = true)]
    serve_upstream: bool,
    /// After starting the paths, wait this many seconds before measuring (to attach a
    /// profiler to the printed pids).
    #[arg(long, default_value_t = 0.0)]
    pause: f64,
}

#[tokio::main]
async fn main() {
    let opts = Opts::parse();
    let result = if opts.serve_upstream {
        upstream::serve_process(Duration::from_millis(opts.sse_interval_ms)).await
    } else {
        run(opts).await
    };
    if let Err(e) = result {
        eprintln!("bench failed: {e}");
        std::process::exit(1);
    }
}

async fn run(opts: Opts) -> Result<(), String> {
    let nofile = procs::raise_nofile(200_000);
    let q = opts.quick;
    let scale = Scale {
        clients: opts.clients,
        duration: Duration::from_secs_f64(opts.duration.unwrap_or(if q { 3.0 } else { 10.0 })),
        warmup: Duration::from_millis(if q { 500 } else { 1_000 }),
        bulk_bytes: if q { 20_000_000 } else { 100_000_000 },
        parallel_bytes: if q { 2_000_000 } else { 10_000_000 },
        sse_window: Duration::from_secs(if q { 3 } else { 10 }),
        sse_parallel_open: 64,
    };
    let repeat = opts.repeat.unwrap_or(if q { 1 } else { 3 });
    let sse_sizes = if opts.sse_streams.is_empty() {
        if q {
            vec![200]
        } else {
            vec![1_000, 10_000]
        }
    } else {
        opts.sse_streams.clone()
    };
    let mut kinds = vec![Kind::Direct];
    for p in &opts.paths {
        let k = Kind::parse(p).ok_or_else(|| format!("unknown path {p:?}"))?;
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    }
    let want = |s: &str| opts.scenarios.iter().any(|x| x == s);
    if let Some(need) = sse_sizes.iter().max().filter(|_| want("sse")) {
        // The client side of every stream lives in this process.
        if (nofile as usize) < need + 1_000 {
            return Err(format!("open-file limit {nofile} is too low for {need} SSE streams; raise `ulimit -n`"));
        }
    }

    let tmp = tempfile::Builder::new().prefix("mcpt-bench-").tempdir().map_err(|e| e.to_string())?;
    let dir = tmp.path().to_owned();
    let pki = pki::generate(&PkiOptions {
        tunnel_id: "bench".into(),
        tunnel_domain: paths::DOMAIN.into(),
        edge_names: vec!["localhost".into()],
    })
    .map_err(|e| e.to_string())?;
    pki.write(&dir.join("certs"), false).map_err(|e| e.to_string())?;
    let bin = match &opts.bin {
        Some(b) => b.clone(),
        None => default_bin()?,
    };

    let (mut upstream_proc, upstream) = procs::spawn_upstream(opts.sse_interval_ms).await?;
    println!("started upstream     {upstream} pid={}", upstream_proc.id().unwrap_or(0));
    let tunnel_env: Vec<(String, String)> =
        opts.tunnel_threads.map(|n| ("TOKIO_WORKER_THREADS".into(), n.to_string())).into_iter().collect();
    let env = Env { dir: dir.clone(), bin, upstream, inner_ca: vec![pki.inner_ca.cert_der.clone()], tunnel_env };

    let mut report = Report { machine: report::machine(), ..Report::default() };
    report.machine.insert("open_file_limit".into(), nofile.into());
    report.machine.insert("command".into(), std::env::args().collect::<Vec<_>>().join(" ").into());
    let mut running = Vec::new();
    for kind in kinds {
        match paths::start(kind, &env).await {
            Ok(Some(p)) => {
                let pids: Vec<String> =
                    p.procs.iter().map(|x| format!("{}={}", x.role, x.pid().unwrap_or(0))).collect();
                println!("started {:<12} {} {}", kind.name(), p.target.addr, pids.join(" "));
                running.push(p);
            }
            Ok(None) => {
                let msg = format!("{}: peer not installed (run scripts/install-bench-peers.sh)", kind.name());
                println!("SKIPPED {msg}");
                report.skipped.push(msg);
            }
            Err(e) => {
                println!("SKIPPED {}: {e}", kind.name());
                report.skipped.push(format!("{}: failed to start: {e}", kind.name()));
            }
        }
    }
    if opts.pause > 0.0 {
        println!("pausing {} s", opts.pause);
        tokio::time::sleep(Duration::from_secs_f64(opts.pause)).await;
    }

    // Each scenario runs every path in turn, so the repetitions interleave paths.
    for rep in 0..repeat {
        for (s, new_conn) in [("small", false), ("newconn", true)] {
            if want(s) {
                for p in &running {
                    let row = scenarios::small(p, &scale, rep, new_conn).await;
                    progress(&row);
                    report.rows.push(row);
                }
            }
        }
    }
    if want("bulk") {
        for parallel in [1, 8] {
            for p in &running {
                let row = scenarios::bulk(p, &scale, 0, parallel).await;
                progress(&row);
                report.rows.push(row);
            }
        }
    }
    if want("sse") {
        for &n in &sse_sizes {
            for p in &running {
                let row = scenarios::sse(p, &scale, 0, n).await;
                progress(&row);
                report.rows.push(row);
            }
        }
    }
    if want("reconnect") {
        for rep in 0..opts.reconnects {
            for p in running.iter_mut() {
                if let Some(row) = scenarios::reconnect(p, rep).await {
                    progress(&row);
                    report.rows.push(row);
                }
            }
        }
    }
    if want("kill") {
        let n = opts.kill_streams.unwrap_or(if q { 100 } else { 500 });
        for p in &running {
            for whole in [false, true] {
                if let Some(row) = kill::kill(p, &scale, n, whole).await {
                    progress(&row);
                    report.rows.push(row);
                }
            }
        }
    }
    for p in running.iter_mut() {
        if p.procs.iter_mut().any(|x| x.exited()) {
            report.skipped.push(format!("{}: a process exited during the run (see its log)", p.kind.name()));
        }
        p.stop().await;
    }
    let _ = upstream_proc.kill().await;
    report.machine.insert("loadavg_end".into(), report::loadavg().into());

    println!("{}", report.table());
    let json = serde_json::to_string_pretty(&report.json()).map_err(|e| e.to_string())?;
    std::fs::write(&opts.json, json).map_err(|e| format!("{}: {e}", opts.json.display()))?;
    println!("wrote {}", opts.json.display());
    if opts.keep {
        println!("work dir kept: {}", tmp.keep().display());
    }
    Ok(())
}

fn progress(row: &report::Row) {
    let values: Vec<String> = row.values.iter().take(6).map(|(n, v)| format!("{n}={v:.1}")).collect();
    println!("  {} run {} {:<12} {} {}", row.scenario, row.rep + 1, row.path, values.join(" "), row.note);
}

/// target/release/mcp-tunnel, next to target/release/examples/bench.
fn default_bin() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bin = exe.parent().and_then(|d| d.parent()).map(|d| d.join("mcp-tunnel")).ok_or("no binary dir")?;
    if bin.exists() {
        Ok(bin)
    } else {
        Err(format!("{} not found: cargo build --release --bin mcp-tunnel (or pass --bin)", bin.display()))
    }
}
