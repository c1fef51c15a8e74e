//! The `mcp-tunnel` binary as child processes, the way an operator runs it: stderr is
//! collected line by line, tests wait for a log line with a deadline (no sleeps), stop a
//! process with SIGTERM, and anything still running is killed on drop. Also the PKI and
//! the configs such processes run from.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::config::{EdgeToml, GatewayToml};
use super::poll;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_mcp-tunnel");

/// Lines written so far, and whether stderr has closed.
#[derive(Default)]
struct Log {
    lines: Vec<String>,
    closed: bool,
}

/// A running `mcp-tunnel` process.
pub struct Proc {
    name: String,
    child: Child,
    log: Arc<(Mutex<Log>, Condvar)>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Proc {
    /// Starts `mcp-tunnel <args>` with `RUST_LOG` and `MCPT_LOG_FORMAT` removed from the
    /// environment, then `env` added.
    pub fn spawn(name: &str, args: &[&str], env: &[(&str, &str)]) -> Proc {
        Self::spawn_in(Path::new("."), name, args, env)
    }

    /// Like [`Proc::spawn`], in the working directory `dir`.
    pub fn spawn_in(dir: &Path, name: &str, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(dir).args(args).env_remove("RUST_LOG").env_remove("MCPT_LOG_FORMAT").envs(env.iter().copied());
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawn mcp-tunnel");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new((Mutex::new(Log::default()), Condvar::new()));
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.0.lock().expect("log lock").lines.push(line);
                sink.1.notify_all();
            }
            sink.0.lock().expect("log lock").closed = true;
            sink.1.notify_all();
        });
        Proc { name: name.to_owned(), child, log, reader: Some(reader) }
    }

    /// Waits up to `timeout` for a stderr line matching `pred`; returns it.
    pub fn wait_line(&self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.log;
        let mut log = lock.lock().expect("log lock");
        loop {
            if let Some(line) = log.lines.iter().find(|l| pred(l)) {
                return line.clone();
            }
            let now = Instant::now();
            if log.closed || now >= deadline {
                let tail = log.lines.iter().rev().take(20).rev().cloned().collect::<Vec<_>>().join("\n");
                panic!(
                    "{}: no log line {what} within {timeout:?} (exited: {}); last lines:\n{tail}",
                    self.name, log.closed
                );
            }
            log = cv.wait_timeout(log, deadline - now).expect("log lock").0;
        }
    }

    /// Every stderr line so far.
    pub fn lines(&self) -> Vec<String> {
        self.log.0.lock().expect("log lock").lines.clone()
    }

    /// Sends `sig` (`-TERM`, `-KILL`) to the process.
    pub fn signal(&self, sig: &str) {
        let sent = Command::new("kill").args([sig, &self.child.id().to_string()]).status().expect("kill");
        assert!(sent.success(), "{}: kill {sig} failed", self.name);
    }

    /// The exit status, once the process has exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// Waits (bounded) for the exit; afterwards `lines` holds the whole log.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        // Polling the exit status: std offers no wait with a timeout.
        let what = format!("{} exiting", self.name);
        let status = poll::eventually_blocking(timeout, &what, || self.try_exit());
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        status
    }

    /// Sends SIGTERM and waits (bounded) for the exit; afterwards `lines` holds the whole log.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        self.signal("-TERM");
        self.wait_exit(timeout)
    }
}

/// `mcp-tunnel <role> --config <dir>/<role>.toml` at `RUST_LOG=info`, once `ready` is in
/// its log (bounded: 20 s).
pub fn start_role(role: &str, dir: &Path, ready: &str) -> Proc {
    let config = dir.join(format!("{role}.toml"));
    let proc = Proc::spawn(role, &[role, "--config", config.to_str().expect("utf8")], &[("RUST_LOG", "info")]);
    proc.wait_line(ready, Duration::from_secs(20), |l| l.contains(ready));
    proc
}

/// Runs `mcp-tunnel <args>` to its end, with `RUST_LOG` removed from the environment.
pub fn run(args: &[&str]) -> Output {
    run_in(Path::new("."), args)
}

/// Like [`run`], in the working directory `dir`.
pub fn run_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN).current_dir(dir).args(args).env_remove("RUST_LOG").output().expect("run mcp-tunnel")
}

/// Tunnel domain of the PKI [`certs_init`] writes (for tunnel `acme`).
pub const ACME_DOMAIN: &str = "mcp.acme.test";

/// `mcp-tunnel certs init` into `dir`: tunnel `acme` in [`ACME_DOMAIN`].
pub fn certs_init(dir: &Path) -> Output {
    let out = dir.to_str().expect("utf8");
    run(&["certs", "init", "--out", out, "--tunnel-id", "acme", "--tunnel-domain", ACME_DOMAIN])
}

/// Configs for edge and gateway processes next to a [`certs_init`] PKI, on fixed ports
/// (a process does not report what it bound): the edge on `127.0.0.1:<tunnel>` and
/// `127.0.0.1:<public>` serving `*.mcp.acme.test` for `acme`; the gateway dialing it and
/// routing `tickets` to `upstream`. The route's `upstream` is line 14 of the gateway's.
pub fn acme_configs(tunnel: u16, public: u16, upstream: &str) -> (EdgeToml, GatewayToml) {
    let edge = EdgeToml {
        tunnel_listen: format!("127.0.0.1:{tunnel}"),
        public_listen: format!("127.0.0.1:{public}"),
        tables: format!("[tunnels.acme]\nhostnames = [\"*.{ACME_DOMAIN}\"]\n"),
        ..EdgeToml::new("")
    };
    let gateway = GatewayToml {
        tunnel_domain: ACME_DOMAIN.into(),
        tables: format!("[[routes]]\nhost = \"tickets\"\nupstream = \"{upstream}\"\n"),
        ..GatewayToml::new(format!("127.0.0.1:{tunnel}"), "")
    };
    (edge, gateway)
}

/// Writes `edge.toml` and `gateway.toml` into `dir`.
pub fn write_configs(dir: &Path, edge: &EdgeToml, gateway: &GatewayToml) {
    std::fs::write(dir.join("edge.toml"), edge.render()).expect("write edge.toml");
    std::fs::write(dir.join("gateway.toml"), gateway.render()).expect("write gateway.toml");
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The JSON object of a `--log-format json` line, if it is one.
pub fn json_line(line: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    match serde_json::from_str(line) {
        Ok(serde_json::Value::Object(map)) => Some(map),
        _ => None,
    }
}

/// `fields.<name>` of a JSON log line, as a string.
pub fn json_field(line: &str, name: &str) -> Option<String> {
    let v = json_line(line)?.get("fields")?.get(name)?.clone();
    Some(match v {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    })
}

/// Whether a JSON log line's message is `message`.
pub fn json_message_is(line: &str, message: &str) -> bool {
    json_field(line, "message").is_some_and(|m| m == message)
}

/// `GET path` on an admin endpoint; returns the status code and body.
pub fn admin_get(addr: &str, path: &str) -> (u16, String) {
    let mut tcp = std::net::TcpStream::connect(addr).expect("connect admin endpoint");
    tcp.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    write!(tcp, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").expect("write");
    let mut out = String::new();
    tcp.read_to_string(&mut out).expect("read admin response");
    let status = out.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}
