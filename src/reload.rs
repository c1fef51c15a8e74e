//! Hot reload: watch a config file and every file it refers to (certificates, keys, CAs),
//! and reload on change or on request (SIGHUP). A config that fails validation is
//! logged and ignored; the running one stays in force.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How often watched files are checked for changes.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// What identifies a file version: modification time and size (`None` if unreadable).
fn stamp(path: &PathBuf) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Calls `reload` whenever `trigger` is notified or one of the files returned by
/// `files` changes; `reload` returns the files to watch from then on. Ends on `shutdown`.
pub async fn watch<F>(
    mut files: Vec<PathBuf>,
    trigger: Arc<Notify>,
    interval: Duration,
    shutdown: CancellationToken,
    mut reload: F,
) where
    F: FnMut() -> Option<Vec<PathBuf>>,
{
    let mut stamps: Vec<_> = files.iter().map(stamp).collect();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {
                let now: Vec<_> = files.iter().map(stamp).collect();
                if now == stamps {
                    continue;
                }
                // A renewal writes several files; give the writer a moment to finish.
                tokio::time::sleep(interval / 4).await;
            }
            _ = trigger.notified() => {}
            _ = shutdown.cancelled() => return,
        }
        // Stamp before reading: a write that lands while `reload` runs (or while it
        // rejects a half-written file) then differs from the stamp and triggers the next
        // reload instead of being taken as already seen.
        let before: Vec<_> = files.iter().map(stamp).collect();
        match reload() {
            Some(next) => {
                stamps = next
                    .iter()
                    .map(|f| match files.iter().position(|old| old == f) {
                        Some(i) => before[i],
                        None => stamp(f),
                    })
                    .collect();
                files = next;
            }
            None => stamps = before,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A watch of `file` (polled every 20 ms) whose reload runs `reload`, rejects the
    /// config (returns `None`) and then signals the returned `done`.
    struct Watching {
        trigger: Arc<Notify>,
        done: Arc<Notify>,
        stop: CancellationToken,
        task: tokio::task::JoinHandle<()>,
    }

    impl Watching {
        fn start(file: &std::path::Path, mut reload: impl FnMut() + Send + 'static) -> Watching {
            let (trigger, done, stop) = (Arc::new(Notify::new()), Arc::new(Notify::new()), CancellationToken::new());
            let signal = done.clone();
            let interval = Duration::from_millis(20);
            let task = tokio::spawn(watch(vec![file.to_owned()], trigger.clone(), interval, stop.clone(), move || {
                reload();
                signal.notify_one();
                None
            }));
            Watching { trigger, done, stop, task }
        }

        async fn finish(self) {
            self.stop.cancel();
            self.task.await.unwrap();
        }
    }

    #[tokio::test]
    async fn reloads_on_change_and_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.toml");
        std::fs::write(&file, "1").unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        let w = Watching::start(&file, move || {
            seen.fetch_add(1, Ordering::SeqCst);
        });
        w.trigger.notify_one();
        w.done.notified().await;
        std::fs::write(&file, "22").unwrap();
        w.done.notified().await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        w.finish().await;
    }

    /// A file rewritten while a reload is reading it (here: while the reload rejects the
    /// version it read) is reloaded again, not taken as seen.
    #[tokio::test]
    async fn a_write_during_a_reload_is_not_missed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.toml");
        std::fs::write(&file, "bad").unwrap();
        let reads = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (seen, path) = (reads.clone(), file.clone());
        let w = Watching::start(&file, move || {
            let text = std::fs::read_to_string(&path).unwrap();
            if text == "bad" {
                // The writer fixes the file while this reload is still rejecting it.
                std::fs::write(&path, "good config").unwrap();
            }
            seen.lock().unwrap().push(text);
        });
        w.trigger.notify_one();
        w.done.notified().await;
        w.done.notified().await;
        assert_eq!(*reads.lock().unwrap(), ["bad", "good config"]);
        w.finish().await;
    }
}
