//! Child processes of the bench (edge, gateway, nginx, rathole) and their CPU time and
//! resident memory, read from /proc.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// Open-file limit given to children (10 000 SSE streams need ~2 fds each per process).
pub const CHILD_NOFILE: u64 = 65_536;

/// A process the bench started and can restart.
pub struct Proc {
    pub role: &'static str,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    /// Starts `program args…` with stdout/stderr appended to `log` and a raised fd limit.
    pub fn spawn(
        role: &'static str,
        program: &Path,
        args: &[String],
        env: &[(String, String)],
        log: PathBuf,
    ) -> std::io::Result<Proc> {
        let mut p =
            Proc { role, program: program.to_owned(), args: args.to_vec(), env: env.to_vec(), log, child: None };
        p.start()?;
        Ok(p)
    }

    fn start(&mut self) -> std::io::Result<()> {
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        // `ulimit` in a shell that then execs the program: same pid, raised limit.
        let script = format!("ulimit -n {CHILD_NOFILE} 2>/dev/null || ulimit -n $(ulimit -Hn); exec \"$@\"");
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(&self.program)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true)
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    /// The process id (while running).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// SIGKILL and reap.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub async fn stop(&mut self, grace: Duration) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id().and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            if tokio::time::timeout(grace, child.wait()).await.is_err() {
                let _ = child.kill().await;
            }
        }
    }

    /// Kills and starts the same command again (same config, same ports).
    pub async fn restart(&mut self) -> std::io::Result<()> {
        self.kill().await;
        self.start()
    }

    /// Whether the process has exited (it should not have).
    pub fn exited(&mut self) -> bool {
        self.child.as_mut().is_none_or(|c| !matches!(c.try_wait(), Ok(None)))
    }

    /// CPU and memory of this process and its direct children (nginx workers).
    pub fn usage(&self) -> Usage {
        self.pid().map(usage_tree).unwrap_or_default()
    }
}

/// CPU seconds (user + system) and resident set size.
#[derive(Debug, Default, Clone, Copy)]
pub struct Usage {
    pub cpu_s: f64,
    pub rss_kb: u64,
}

impl std::ops::Sub for Usage {
    type Output = Usage;
    fn sub(self, o: Usage) -> Usage {
        Usage { cpu_s: self.cpu_s - o.cpu_s, rss_kb: self.rss_kb.saturating_sub(o.rss_kb) }
    }
}

/// The bench process itself (the load generator).
pub fn own_usage() -> Usage {
    usage_one(std::process::id())
}

/// Pid of the upstream process, once started.
pub static UPSTREAM_PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

/// The upstream process.
pub fn upstream_usage() -> Usage {
    UPSTREAM_PID.get().map(|p| usage_one(*p)).unwrap_or_default()
}

/// Starts `bench --serve-upstream`; returns it and its address.
pub async fn spawn_upstream(sse_interval_ms: u64) -> Result<(Child, std::net::SocketAddr), String> {
    use tokio::io::AsyncBufReadExt;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .args(["--serve-upstream", "--sse-interval-ms", &sse_interval_ms.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("start upstream: {e}"))?;
    let stdout = child.stdout.take().ok_or("upstream stdout")?;
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(stdout);
    let read = reader.read_line(&mut line);
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .map_err(|_| "upstream did not start")?
        .map_err(|e| e.to_string())?;
    let addr =
        line.trim().strip_prefix("UPSTREAM ").and_then(|a| a.parse().ok()).ok_or(format!("upstream said {line:?}"))?;
    if let Some(pid) = child.id() {
        let _ = UPSTREAM_PID.set(pid);
    }
    Ok((child, addr))
}

fn usage_tree(pid: u32) -> Usage {
    let mut total = usage_one(pid);
    for child in children(pid) {
        let u = usage_one(child);
        total.cpu_s += u.cpu_s;
        total.rss_kb += u.rss_kb;
    }
    total
}

/// (utime + stime, ppid) from /proc/<pid>/stat; the command name may contain spaces,
/// so fields are counted after its closing parenthesis.
fn stat(pid: u32) -> Option<(u64, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = text.get(text.rfind(')')? + 2..)?.split(' ').collect();
    // After the name: state(0) ppid(1) … utime(11) stime(12).
    let ppid = fields.get(1)?.parse().ok()?;
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((ticks, ppid))
}

fn usage_one(pid: u32) -> Usage {
    let hz = rustix::param::clock_ticks_per_second() as f64;
    let cpu_s = stat(pid).map_or(0.0, |(ticks, _)| ticks as f64 / hz);
    let rss_kb = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        })
        .unwrap_or(0);
    Usage { cpu_s, rss_kb }
}

fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return vec![] };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| stat(*p).is_some_and(|(_, ppid)| ppid == pid))
        .collect()
}

/// Raises this process's open-file limit as far as allowed; returns the soft limit.
pub fn raise_nofile(want: u64) -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let cur = getrlimit(Resource::Nofile);
    let hard = cur.maximum.unwrap_or(u64::MAX);
    // As root the hard limit can be raised too; otherwise stay under it.
    let raised = Rlimit { current: Some(want), maximum: Some(want.max(hard)) };
    if setrlimit(Resource::Nofile, raised).is_err() {
        let _ = setrlimit(Resource::Nofile, Rlimit { current: Some(want.min(hard)), maximum: cur.maximum });
    }
    getrlimit(Resource::Nofile).current.unwrap_or(0)
}
