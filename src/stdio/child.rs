//! One stdio MCP server process: spawn it with a cleared environment, feed its stdin from
//! a bounded queue of lines, parse its stdout into JSON messages (bounded, skipping
//! non-JSON and oversized lines), count its stderr without keeping it, and stop it.

use std::io;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::lineage::Registered;
use super::spec::{StdioError, StdioSpec};

/// Lines queued for the child's stdin; a full queue makes writers wait (backpressure).
const STDIN_QUEUE: usize = 64;
/// Parsed stdout messages queued for dispatch; a full queue stops reading stdout, so a
/// flooding child blocks on its own write instead of growing the gateway's memory.
const STDOUT_QUEUE: usize = 16;
/// How long a child gets after stdin closes (then after SIGTERM) before the next step.
const EXIT_GRACE: Duration = Duration::from_secs(2);
/// Sets the limits of a child that runs as another user (see [`spawn`]).
const SHELL: &str = "/bin/sh";
/// Variables kept from the gateway's own environment; everything else is dropped.
const INHERITED_ENV: [&str; 2] = ["PATH", "HOME"];

/// A spawned child and the ends of its pipes.
pub struct Spawned {
    /// The process; the session supervisor waits on it and stops it.
    pub child: Child,
    /// Its PID while it runs.
    pub pid: Option<u32>,
    /// Complete lines (ending in `\n`) for its stdin.
    pub stdin: mpsc::Sender<Vec<u8>>,
    /// JSON values read from its stdout; closed at stdout EOF.
    pub stdout: mpsc::Receiver<Value>,
    /// Cancel to close stdin (the polite "please exit" of the MCP stdio transport).
    pub close_stdin: CancellationToken,
    /// The pipe tasks; dropping the set aborts them.
    pub io: JoinSet<()>,
    /// Lists the pid as a stdio child (the control socket refuses it) until dropped.
    pub lineage: Option<Registered>,
}

/// Starts the command with stdin/stdout piped and stderr drained.
///
/// The environment is cleared except [`INHERITED_ENV`] plus the configured variables:
/// the gateway's environment can hold secrets (tokens, keys) that a third-party MCP
/// server must not see. The child gets its own process group so signals aimed at the
/// gateway's group (Ctrl-C) do not reach it and [`terminate`] can signal its descendants.
/// With `stdio_user` it runs as that user (std drops the supplementary groups when it
/// switches uid). Its resource limits hold before it reads its first message: set from
/// here right after spawn, or, for another user, by the shell it starts in.
pub fn spawn(spec: &StdioSpec, log_id: &str) -> Result<Spawned, StdioError> {
    // Another user's limits cannot be set from outside without CAP_SYS_RESOURCE (often
    // missing in containers): that child sets its own, in a shell that then execs it.
    let mut cmd = match &spec.user {
        Some(_) => {
            let mut sh = Command::new(SHELL);
            sh.arg("-c").arg(spec.limits.shell_script()).arg(&spec.command);
            sh
        }
        None => Command::new(&spec.command),
    };
    cmd.args(&spec.args).env_clear();
    for name in INHERITED_ENV {
        if let Some(value) = std::env::var_os(name) {
            cmd.env(name, value);
        }
    }
    #[cfg(unix)]
    if let Some(user) = &spec.user {
        cmd.uid(user.uid).gid(user.gid);
        // The gateway's HOME is no place for another user's files.
        match &user.home {
            Some(home) => cmd.env("HOME", home),
            None => cmd.env_remove("HOME"),
        };
    }
    cmd.envs(spec.env.iter().map(|(k, v)| (k, v)));
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(dir);
    }
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    cmd.process_group(0);
    let mut child =
        cmd.spawn().map_err(|source| StdioError::Spawn { command: spec.command.display().to_string(), source })?;
    let pid = child.id();
    let lineage = pid.map(Registered::new);
    // Set before the child is handed any request: its first message is read only after
    // this returns. A child we cannot limit is not run.
    let outside = pid.filter(|_| spec.user.is_none());
    if let Err(source) = outside.map_or(Ok(()), |p| spec.limits.apply(p)) {
        let _ = child.start_kill();
        return Err(StdioError::Limits(source));
    }
    let (Some(stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(StdioError::Pipes);
    };
    let (in_tx, in_rx) = mpsc::channel(STDIN_QUEUE);
    let (out_tx, out_rx) = mpsc::channel(STDOUT_QUEUE);
    let close_stdin = CancellationToken::new();
    let mut io = JoinSet::new();
    io.spawn(write_stdin(stdin, in_rx, close_stdin.clone(), log_id.to_owned()));
    io.spawn(read_stdout(BufReader::new(stdout), out_tx, spec.max_message_bytes, log_id.to_owned()));
    io.spawn(drain_stderr(stderr, log_id.to_owned()));
    Ok(Spawned { child, pid, stdin: in_tx, stdout: out_rx, close_stdin, io, lineage })
}

/// Writes queued lines until the queue closes, `close` fires or the pipe breaks; then
/// drops stdin, which the child sees as EOF.
async fn write_stdin(mut stdin: ChildStdin, mut lines: mpsc::Receiver<Vec<u8>>, close: CancellationToken, id: String) {
    loop {
        let line = tokio::select! {
            biased;
            _ = close.cancelled() => break,
            line = lines.recv() => match line { Some(l) => l, None => break },
        };
        let written = async {
            stdin.write_all(&line).await?;
            stdin.flush().await
        };
        // A write can block on a child that stops reading; closing must still win.
        let result = tokio::select! {
            biased;
            _ = close.cancelled() => break,
            r = written => r,
        };
        if let Err(e) = result {
            debug!(session = %id, error = %e, "stdio child stdin closed");
            break;
        }
    }
}

/// Parses stdout lines into JSON values; non-JSON and oversized lines are skipped and
/// logged by length only (they may hold payloads).
async fn read_stdout<R: AsyncBufRead + Unpin>(mut out: R, tx: mpsc::Sender<Value>, max: usize, id: String) {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match read_line_limited(&mut out, &mut buf, max).await {
            Ok(Line::Eof) => break,
            Ok(Line::TooLong) => warn!(session = %id, max, "stdio child wrote an oversized stdout line; skipped"),
            Ok(Line::Full) => {
                if buf.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                match serde_json::from_slice::<Value>(&buf) {
                    Ok(v @ (Value::Object(_) | Value::Array(_))) => {
                        if tx.send(v).await.is_err() {
                            break;
                        }
                    }
                    _ => warn!(session = %id, len = buf.len(), "stdio child wrote a non-JSON-RPC stdout line; skipped"),
                }
            }
            Err(e) => {
                debug!(session = %id, error = %e, "stdio child stdout read failed");
                break;
            }
        }
    }
}

/// Reads stderr in chunks, counting lines; the content is never kept or logged.
async fn drain_stderr<R: AsyncRead + Unpin>(mut err: R, id: String) {
    let mut chunk = vec![0u8; 8192];
    let (mut bytes, mut lines) = (0usize, 0usize);
    loop {
        match err.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                bytes += n;
                lines += chunk[..n].iter().filter(|&&b| b == b'\n').count();
                debug!(session = %id, len = n, "stdio child stderr output");
            }
        }
    }
    debug!(session = %id, bytes, lines, "stdio child stderr closed");
}

/// Outcome of [`read_line_limited`].
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// `buf` holds one line without its `\n` (or the unterminated last line).
    Full,
    /// The line exceeded the limit; it was consumed and discarded, `buf` is empty.
    TooLong,
    /// End of stream, nothing read.
    Eof,
}

/// Reads one `\n`-terminated line into `buf` without ever holding more than `max`
/// bytes of it, so a child writing an endless line cannot exhaust memory.
pub async fn read_line_limited<R: AsyncBufRead + Unpin>(r: &mut R, buf: &mut Vec<u8>, max: usize) -> io::Result<Line> {
    let mut too_long = false;
    let mut any = false;
    loop {
        let avail = r.fill_buf().await?;
        if avail.is_empty() {
            return Ok(match (too_long, any) {
                (true, _) => Line::TooLong,
                (false, true) => Line::Full,
                (false, false) => Line::Eof,
            });
        }
        any = true;
        let (chunk, used, done) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (&avail[..i], i + 1, true),
            None => (avail, avail.len(), false),
        };
        if !too_long {
            if buf.len() + chunk.len() > max {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        r.consume(used);
        if done {
            return Ok(if too_long { Line::TooLong } else { Line::Full });
        }
    }
}

/// Stops a child the way the MCP stdio transport asks: close stdin and wait, then
/// SIGTERM its process group and wait, then SIGKILL. Returns once the child is reaped.
pub async fn terminate(child: &mut Child, close_stdin: &CancellationToken) {
    close_stdin.cancel();
    if tokio::time::timeout(EXIT_GRACE, child.wait()).await.is_ok() {
        return;
    }
    // Not reaped yet, so its PID (= process group id) cannot have been reused.
    signal_group(child, Signal::Term);
    if tokio::time::timeout(EXIT_GRACE, child.wait()).await.is_ok() {
        return;
    }
    signal_group(child, Signal::Kill);
    let _ = child.start_kill();
    let _ = child.wait().await;
}

enum Signal {
    Term,
    Kill,
}

#[cfg(unix)]
fn signal_group(child: &Child, signal: Signal) {
    use rustix::process::{kill_process_group, Pid, Signal as S};
    let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()).and_then(Pid::from_raw) else { return };
    let sig = match signal {
        Signal::Term => S::TERM,
        Signal::Kill => S::KILL,
    };
    if let Err(e) = kill_process_group(pid, sig) {
        debug!(error = %e, "signalling stdio child's process group failed");
    }
}

/// SIGKILLs what is left of a reaped child's process group (its own subprocesses), so a
/// session's processes end with it. A group id stays reserved while any member lives,
/// so a non-empty group is still the child's; an empty one answers ESRCH.
#[cfg(unix)]
pub fn kill_leftovers(pid: Option<u32>) {
    use rustix::process::{kill_process_group, Pid, Signal as S};
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()).and_then(Pid::from_raw) {
        let _ = kill_process_group(pid, S::KILL);
    }
}

#[cfg(not(unix))]
pub fn kill_leftovers(_pid: Option<u32>) {}

#[cfg(not(unix))]
fn signal_group(child: &mut Child, signal: Signal) {
    if matches!(signal, Signal::Kill) {
        let _ = child.start_kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<Result<String, Line>> {
        let mut r = input;
        let mut out = Vec::new();
        loop {
            let mut buf = Vec::new();
            match read_line_limited(&mut r, &mut buf, max).await.unwrap() {
                Line::Eof => return out,
                Line::Full => out.push(Ok(String::from_utf8(buf).unwrap())),
                other => out.push(Err(other)),
            }
        }
    }

    #[tokio::test]
    async fn lines_are_split_and_limited() {
        assert_eq!(lines(b"a\nbb\n", 4).await, vec![Ok("a".into()), Ok("bb".into())]);
        assert_eq!(lines(b"a\nlast", 4).await, vec![Ok("a".into()), Ok("last".into())]);
        assert_eq!(lines(b"12345\nok\n", 4).await, vec![Err(Line::TooLong), Ok("ok".into())]);
        assert_eq!(lines(b"1234\n", 4).await, vec![Ok("1234".into())]);
        assert_eq!(lines(b"\n", 4).await, vec![Ok(String::new())]);
        assert_eq!(lines(b"", 4).await, vec![]);
    }

    /// A small BufReader capacity makes the long line arrive in many chunks.
    #[tokio::test]
    async fn an_endless_line_never_buffers_past_the_limit() {
        let mut input = vec![b'x'; 100_000];
        input.extend_from_slice(b"\n{}\n");
        let mut r = BufReader::with_capacity(64, input.as_slice());
        let mut buf = Vec::new();
        assert_eq!(read_line_limited(&mut r, &mut buf, 1000).await.unwrap(), Line::TooLong);
        assert!(buf.capacity() <= 1064, "buffered {} bytes", buf.capacity());
        assert_eq!(read_line_limited(&mut r, &mut buf, 1000).await.unwrap(), Line::Full);
        assert_eq!(buf, b"{}");
    }
}
