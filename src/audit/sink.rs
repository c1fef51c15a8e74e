//! Where audit lines go: stdout, or an append-only file (mode 0600) rotated by size. The
//! sink is synchronous and owned by the writer task, which calls it on a blocking thread;
//! nothing here is reached from the request path.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Kept after a flush; a larger buffer (one huge record) is released.
const BUF_KEEP: usize = 64 * 1024;

/// Where the audit trail is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkConfig {
    /// One JSON line per record on standard output (for container log collectors).
    Stdout,
    /// An append-only file. Before a line would take it past `max_bytes`, `path` is
    /// renamed to `path.1` (`path.1` to `path.2`, … up to `path.<keep>`; the oldest is
    /// deleted) and a new `path` is created. `keep = 0` keeps no old files.
    File {
        /// The current audit file.
        path: PathBuf,
        /// Size at which the file is rotated (a single larger line still gets a file).
        max_bytes: u64,
        /// How many rotated files to keep.
        keep: u32,
    },
}

/// An audit sink failure, naming the file and what went wrong.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The file's directory does not exist (it is not created: a typo should not
    /// silently scatter audit data).
    #[error("audit log {path}: directory {dir} does not exist")]
    DirectoryMissing { path: PathBuf, dir: PathBuf },
    /// The file could not be opened for appending (permission denied, is a directory, …).
    #[error("audit log {path}: cannot open for appending: {source}")]
    Open { path: PathBuf, source: io::Error },
    /// A write or flush failed (disk full, file system gone, …).
    #[error("audit log {path}: write failed: {source}")]
    Write { path: PathBuf, source: io::Error },
    /// Renaming or deleting a file during rotation failed.
    #[error("audit log {path}: rotation failed: {source}")]
    Rotate { path: PathBuf, source: io::Error },
    /// Writing to standard output failed (closed pipe, …).
    #[error("audit log on stdout: write failed: {source}")]
    Stdout { source: io::Error },
    /// A record could not be encoded as JSON (not expected: every field type encodes).
    #[error("audit record could not be encoded: {0}")]
    Encode(#[from] serde_json::Error),
    /// A setting that cannot work.
    #[error("audit log: {0}")]
    Invalid(&'static str),
}

/// What one sink call achieved: records that reached the OS, records lost to an error,
/// and that error. A failed rotation loses nothing (the file keeps growing) but reports.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    pub written: u64,
    pub lost: u64,
    pub error: Option<AuditError>,
}

/// An open sink. Lines are buffered by [`Sink::push`] and written by [`Sink::flush`].
#[derive(Debug)]
pub(crate) struct Sink {
    target: Target,
    buf: Vec<u8>,
    /// Lines in `buf`.
    buffered: u64,
}

#[derive(Debug)]
enum Target {
    Stdout,
    File(FileTarget),
}

#[derive(Debug)]
struct FileTarget {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    /// `None` after a write error: the next write reopens the path.
    file: Option<File>,
    /// Bytes in the current file, counting `buf`.
    size: u64,
    /// Rotate when a line would take `size` past this; raised after a failed rotation so
    /// a persistent rename failure is retried once per `max_bytes`, not once per line.
    limit: u64,
    /// Devices and pipes (`/dev/stderr`, a FIFO) are written to but never rotated.
    regular: bool,
}

impl Sink {
    /// Opens the sink; every error here is a configuration problem to report at startup.
    pub(crate) fn open(config: &SinkConfig) -> Result<Self, AuditError> {
        let target = match config {
            SinkConfig::Stdout => Target::Stdout,
            SinkConfig::File { path, max_bytes, keep } => {
                if *max_bytes == 0 {
                    return Err(AuditError::Invalid("max_bytes must be at least 1"));
                }
                let mut t = FileTarget {
                    path: path.clone(),
                    max_bytes: *max_bytes,
                    keep: *keep,
                    file: None,
                    size: 0,
                    limit: *max_bytes,
                    regular: true,
                };
                t.reopen()?;
                Target::File(t)
            }
        };
        Ok(Self { target, buf: Vec::new(), buffered: 0 })
    }

    /// Buffers one line (which ends with `\n`), rotating first if it would not fit.
    pub(crate) fn push(&mut self, line: &[u8]) -> Progress {
        let mut progress = Progress::default();
        if let Target::File(t) = &mut self.target {
            let len = line.len() as u64;
            if t.regular && t.size > 0 && t.size.saturating_add(len) > t.limit {
                progress = self.flush();
                if let Target::File(t) = &mut self.target {
                    if progress.error.is_none() {
                        progress.error = t.rotate().err();
                    }
                }
            }
        }
        self.buf.extend_from_slice(line);
        self.buffered += 1;
        if let Target::File(t) = &mut self.target {
            t.size += line.len() as u64;
        }
        progress
    }

    /// Writes every buffered line.
    pub(crate) fn flush(&mut self) -> Progress {
        let lines = std::mem::take(&mut self.buffered);
        if lines == 0 {
            return Progress::default();
        }
        let result = match &mut self.target {
            Target::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(&self.buf).and_then(|()| out.flush()).map_err(|source| AuditError::Stdout { source })
            }
            Target::File(t) => t.write(&self.buf),
        };
        self.buf.clear();
        self.buf.shrink_to(BUF_KEEP);
        match result {
            Ok(()) => Progress { written: lines, ..Progress::default() },
            Err(e) => Progress { written: 0, lost: lines, error: Some(e) },
        }
    }
}

impl FileTarget {
    /// Writes `bytes` to the file, reopening it first after an earlier failure.
    fn write(&mut self, bytes: &[u8]) -> Result<(), AuditError> {
        if self.file.is_none() {
            self.reopen()?;
            self.size += bytes.len() as u64;
        }
        let Some(file) = self.file.as_mut() else {
            return Err(AuditError::Invalid("audit file not open"));
        };
        // `File` is unbuffered: `write_all` hands everything to the OS, so a crash after
        // this returns loses nothing the kernel has.
        if let Err(source) = file.write_all(bytes) {
            // A partial line may be on disk; `reopen` terminates it before writing again.
            self.file = None;
            return Err(AuditError::Write { path: self.path.clone(), source });
        }
        Ok(())
    }

    /// Opens (or creates, mode 0600) the path for appending and learns its size.
    fn reopen(&mut self) -> Result<(), AuditError> {
        self.file = None;
        let open_err = |source: io::Error| AuditError::Open { path: self.path.clone(), source };
        let file = match OpenOptions::new().read(true).append(true).create(true).mode(0o600).open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let dir = match self.path.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
                    _ => PathBuf::from("."),
                };
                if !dir.is_dir() {
                    return Err(AuditError::DirectoryMissing { path: self.path.clone(), dir });
                }
                return Err(open_err(e));
            }
            Err(e) => return Err(open_err(e)),
        };
        let meta = file.metadata().map_err(open_err)?;
        self.regular = meta.is_file();
        self.size = if self.regular { meta.len() } else { 0 };
        if self.regular && meta.permissions().mode() & 0o077 != 0 {
            // `mode` applies only to new files; an existing one is tightened to match.
            file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(open_err)?;
        }
        if self.size > 0 {
            // A crash or a failed write may have left half a line: end it, so the next
            // record starts on its own line (the broken one stays visibly invalid).
            let mut last = [0u8; 1];
            file.read_exact_at(&mut last, self.size - 1).map_err(open_err)?;
            if last[0] != b'\n' {
                (&file).write_all(b"\n").map_err(open_err)?;
                self.size += 1;
            }
        }
        self.file = Some(file);
        Ok(())
    }

    /// Shifts `path` → `path.1` → … → `path.<keep>` (the oldest deleted) and starts a new
    /// `path`. On failure the current file stays open and writing continues in it.
    fn rotate(&mut self) -> Result<(), AuditError> {
        match self.shift() {
            Ok(()) => {
                self.limit = self.max_bytes;
                self.reopen()
            }
            Err(e) => {
                self.limit = self.size.saturating_add(self.max_bytes);
                Err(e)
            }
        }
    }

    fn shift(&self) -> Result<(), AuditError> {
        let rotate_err = |path: &Path| {
            let path = path.to_owned();
            move |source| AuditError::Rotate { path, source }
        };
        let ignore_missing = |r: io::Result<()>| match r {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        };
        if self.keep == 0 {
            return ignore_missing(std::fs::remove_file(&self.path)).map_err(rotate_err(&self.path));
        }
        let oldest = numbered(&self.path, self.keep);
        ignore_missing(std::fs::remove_file(&oldest)).map_err(rotate_err(&oldest))?;
        for i in (1..self.keep).rev() {
            let from = numbered(&self.path, i);
            ignore_missing(std::fs::rename(&from, numbered(&self.path, i + 1))).map_err(rotate_err(&from))?;
        }
        std::fs::rename(&self.path, numbered(&self.path, 1)).map_err(rotate_err(&self.path))
    }
}

/// `path.n`.
pub(crate) fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut s = OsString::from(path.as_os_str());
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_config(path: &Path, max_bytes: u64, keep: u32) -> SinkConfig {
        SinkConfig::File { path: path.to_owned(), max_bytes, keep }
    }

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path).unwrap().lines().map(str::to_owned).collect()
    }

    #[test]
    fn missing_directory_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope").join("audit.log");
        let err = Sink::open(&file_config(&path, 100, 1)).unwrap_err();
        assert!(matches!(err, AuditError::DirectoryMissing { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("does not exist"), "{msg}");
    }

    #[test]
    fn a_directory_is_not_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = Sink::open(&file_config(dir.path(), 100, 1)).unwrap_err();
        assert!(matches!(err, AuditError::Open { .. }), "{err:?}");
        assert!(err.to_string().contains(&dir.path().display().to_string()));
    }

    #[test]
    fn zero_max_bytes_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = Sink::open(&file_config(&dir.path().join("a"), 0, 1)).unwrap_err();
        assert!(matches!(err, AuditError::Invalid(_)));
    }

    #[test]
    fn created_0600_and_existing_file_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut sink = Sink::open(&file_config(&path, 1000, 1)).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        sink.push(b"{}\n");
        assert_eq!(sink.flush().written, 1);
        drop(sink);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let _sink = Sink::open(&file_config(&path, 1000, 1)).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn appends_and_terminates_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        std::fs::write(&path, "{\"a\":1}\n{\"torn\":").unwrap();
        let mut sink = Sink::open(&file_config(&path, 1000, 1)).unwrap();
        sink.push(b"{\"b\":2}\n");
        sink.flush();
        assert_eq!(lines(&path), ["{\"a\":1}", "{\"torn\":", "{\"b\":2}"]);
    }

    #[test]
    fn rotation_keeps_n_files_within_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut sink = Sink::open(&file_config(&path, 25, 2)).unwrap();
        // 11-byte lines: two fit in 25 bytes, the third rotates.
        for i in 0..9 {
            sink.push(format!("{{\"n\":{i:04}}}\n").as_bytes());
        }
        sink.flush();
        assert_eq!(lines(&path), ["{\"n\":0008}"]);
        assert_eq!(lines(&numbered(&path, 1)), ["{\"n\":0006}", "{\"n\":0007}"]);
        assert_eq!(lines(&numbered(&path, 2)), ["{\"n\":0004}", "{\"n\":0005}"]);
        assert!(!numbered(&path, 3).exists());
        for p in [numbered(&path, 1), numbered(&path, 2)] {
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn oversize_line_gets_a_file_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut sink = Sink::open(&file_config(&path, 8, 3)).unwrap();
        let big = format!("{{\"x\":\"{}\"}}\n", "y".repeat(40));
        for line in ["{}\n", &big, "{}\n"] {
            sink.push(line.as_bytes());
        }
        sink.flush();
        assert_eq!(lines(&path), ["{}"]);
        assert_eq!(std::fs::read_to_string(numbered(&path, 1)).unwrap(), big);
        assert_eq!(lines(&numbered(&path, 2)), ["{}"]);
    }

    #[test]
    fn keep_zero_keeps_only_the_current_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut sink = Sink::open(&file_config(&path, 4, 0)).unwrap();
        sink.push(b"{1}\n");
        sink.push(b"{2}\n");
        sink.flush();
        assert_eq!(lines(&path), ["{2}"]);
        assert!(!numbered(&path, 1).exists());
    }

    #[test]
    fn write_failure_counts_lost_lines() {
        // /dev/full accepts the open and fails every write with ENOSPC.
        let mut sink = Sink::open(&file_config(Path::new("/dev/full"), 10, 1)).unwrap();
        for _ in 0..5 {
            assert!(sink.push(b"{\"n\":1}\n").error.is_none(), "a device is never rotated");
        }
        let p = sink.flush();
        assert_eq!((p.written, p.lost), (0, 5));
        let msg = p.error.unwrap().to_string();
        assert!(msg.contains("/dev/full") && msg.contains("write failed"), "{msg}");
        sink.push(b"{}\n");
        assert_eq!(sink.flush().lost, 1, "the sink reopens and fails again, without panicking");
    }
}
