//! Steady load for fault tests: a few clients sending requests back to back, counting
//! successes and failures, until stopped (each bounded in count).

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::poll;

/// Running load.
pub struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<()>>,
}

impl Load {
    /// `clients` tasks, each calling `request` up to `max_each` times until stopped.
    pub fn start<F, Fut>(clients: usize, max_each: usize, request: F) -> Load
    where
        F: Fn() -> Fut + Clone + Send + 'static,
        Fut: Future<Output = bool> + Send,
    {
        let (stop, ok, failed) =
            (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let tasks = (0..clients)
            .map(|_| {
                let (request, stop, ok, failed) = (request.clone(), stop.clone(), ok.clone(), failed.clone());
                tokio::spawn(async move {
                    for _ in 0..max_each {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let counter = if request().await { &ok } else { &failed };
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        Load { stop, ok, failed, tasks }
    }

    /// Waits (at most 30 s) until `n` more requests have succeeded, or every client has
    /// used up its request budget.
    pub async fn wait_ok(&self, n: u64) {
        let target = self.ok.load(Ordering::Relaxed) + n;
        let reached = || self.ok.load(Ordering::Relaxed) >= target || self.tasks.iter().all(JoinHandle::is_finished);
        poll::eventually(Duration::from_secs(30), &format!("load: {n} more requests succeeding"), reached).await;
    }

    /// Stops the clients; returns (succeeded, failed).
    pub async fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("load task");
        }
        (self.ok.load(Ordering::Relaxed), self.failed.load(Ordering::Relaxed))
    }
}
