//! What confines a stdio child beyond its cleared environment: the user it runs as
//! (`stdio_user`) and its resource limits (`stdio_memory_limit`, `stdio_cpu_limit`).

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default data-segment limit of a child (RLIMIT_DATA).
pub const DEFAULT_MEMORY_LIMIT: u64 = 2048 << 20;
/// Default CPU-time limit of a child (RLIMIT_CPU).
pub const DEFAULT_CPU_LIMIT: Duration = Duration::from_secs(3600);
/// Seconds between the CPU soft limit (SIGXCPU) and the hard one (SIGKILL), so a child
/// that catches SIGXCPU still ends.
const CPU_GRACE_SECS: u64 = 1;

/// An unprivileged account for children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    /// As configured, for logs.
    pub name: String,
    pub uid: u32,
    /// The account's primary group (supplementary groups are dropped at spawn).
    pub gid: u32,
    /// Its home directory (the child's `HOME`), when the account has one.
    pub home: Option<PathBuf>,
}

/// Why `stdio_user` cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserError {
    #[error("no user {0:?} in /etc/passwd (give a name from it, or \"uid:gid\")")]
    Unknown(String),
    #[error("user {0:?} is root: children must run as an unprivileged user")]
    Root(String),
    #[error("switching children to user {0:?} needs the gateway to run as root (it runs as uid {1})")]
    NotRoot(String, u32),
}

impl RunAs {
    /// Resolves `user` (a name from /etc/passwd, or numeric `uid:gid`) and checks that
    /// this process can switch to it.
    pub fn resolve(user: &str) -> Result<Self, UserError> {
        let run_as = Self::lookup(user, Path::new("/etc/passwd"))?;
        if run_as.uid == 0 {
            return Err(UserError::Root(user.to_owned()));
        }
        let euid = rustix::process::geteuid().as_raw();
        if euid != 0 {
            return Err(UserError::NotRoot(user.to_owned(), euid));
        }
        Ok(run_as)
    }

    fn lookup(user: &str, passwd: &Path) -> Result<Self, UserError> {
        let unknown = || UserError::Unknown(user.to_owned());
        if let Some((u, g)) = user.split_once(':') {
            let (uid, gid) = (u.parse().map_err(|_| unknown())?, g.parse().map_err(|_| unknown())?);
            return Ok(Self { name: user.to_owned(), uid, gid, home: None });
        }
        let text = std::fs::read_to_string(passwd).map_err(|_| unknown())?;
        parse_passwd(&text, user).ok_or_else(unknown)
    }
}

/// `name:password:uid:gid:gecos:home:shell` lines; the entry for `user`.
fn parse_passwd(text: &str, user: &str) -> Option<RunAs> {
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 7 || f[0] != user {
            return None;
        }
        let home = Some(PathBuf::from(f[5])).filter(|h| h.is_absolute() && h.is_dir());
        Some(RunAs { name: user.to_owned(), uid: f[2].parse().ok()?, gid: f[3].parse().ok()?, home })
    })
}

/// Resource limits set on each child right after it starts (its descendants inherit them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// RLIMIT_DATA in bytes: heap and private writable mappings. Not RLIMIT_AS: runtimes
    /// (V8, Go, WebAssembly) reserve large address ranges they never touch.
    pub memory: u64,
    /// RLIMIT_CPU: SIGXCPU at this much CPU time, SIGKILL a second later. Also sets
    /// RLIMIT_CORE to 0.
    pub cpu: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self { memory: DEFAULT_MEMORY_LIMIT, cpu: DEFAULT_CPU_LIMIT }
    }
}

impl Limits {
    /// Applies the limits to the running process `pid` (a child of ours, not yet reaped).
    #[cfg(target_os = "linux")]
    pub fn apply(&self, pid: u32) -> std::io::Result<()> {
        use rustix::process::{prlimit, Pid, Resource, Rlimit};
        let pid = i32::try_from(pid).ok().and_then(Pid::from_raw).ok_or(std::io::ErrorKind::InvalidInput)?;
        let mem = Some(self.memory);
        prlimit(Some(pid), Resource::Data, Rlimit { current: mem, maximum: mem })?;
        let secs = self.cpu.as_secs().max(1);
        let cpu = Rlimit { current: Some(secs), maximum: Some(secs + CPU_GRACE_SECS) };
        prlimit(Some(pid), Resource::Cpu, cpu)?;
        // A child killed by a limit must not leave a core file holding its memory (tokens
        // it was given) in the gateway's working directory.
        prlimit(Some(pid), Resource::Core, Rlimit { current: Some(0), maximum: Some(0) })?;
        Ok(())
    }

    #[cfg(not(target_os = "linux"))]
    pub fn apply(&self, _pid: u32) -> std::io::Result<()> {
        Ok(())
    }

    /// A `sh -c` script that sets the limits on the shell itself and then execs `$0 "$@"`
    /// (the server), which inherits them. Any `ulimit` that fails stops it there, so a
    /// child is never run without its limits. `ulimit -d` counts KiB.
    pub fn shell_script(&self) -> String {
        let kib = self.memory.div_ceil(1024);
        let secs = self.cpu.as_secs().max(1);
        let hard = secs + CPU_GRACE_SECS;
        format!("ulimit -d {kib} && ulimit -t {hard} && ulimit -S -t {secs} && ulimit -c 0 && exec \"$0\" \"$@\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lookup() {
        let text = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
        let n = parse_passwd(text, "nobody").unwrap();
        assert_eq!((n.uid, n.gid, n.home), (65534, 65534, None));
        assert!(parse_passwd(text, "nobod").is_none());
        assert_eq!(RunAs::lookup("1000:1001", Path::new("/nonexistent")).unwrap().gid, 1001);
        assert!(RunAs::lookup("1000:x", Path::new("/nonexistent")).is_err());
        assert_eq!(RunAs::resolve("root"), Err(UserError::Root("root".into())));
    }

    /// The script really limits what it execs (dash, bash and busybox all take these flags).
    #[test]
    fn shell_script_sets_the_limits_then_execs() {
        let limits = Limits { memory: 64 << 20, cpu: Duration::from_secs(3) };
        let out = std::process::Command::new("/bin/sh")
            .args(["-c", &limits.shell_script(), "cat", "/proc/self/limits"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let row = |name: &str| {
            let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_default();
            line[name.len().min(line.len())..].split_whitespace().take(2).collect::<Vec<_>>().join(" ")
        };
        assert_eq!(row("Max data size"), "67108864 67108864", "{text}");
        assert_eq!(row("Max cpu time"), "3 4", "{text}");
        assert_eq!(row("Max core file size"), "0 0", "{text}");
    }
}
