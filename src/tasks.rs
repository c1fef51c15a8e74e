//! The background tasks of one role (gateway or edge). Every task a role starts that no
//! caller awaits is spawned through its [`Tasks`], so shutdown can stop the best-effort
//! ones and wait for the rest instead of leaving them to die with the runtime.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// One role's task tracker and the stop signal of its best-effort work. Clones share both.
#[derive(Debug, Clone, Default)]
pub struct Tasks {
    tracker: TaskTracker,
    /// Cancelled by [`Tasks::shutdown`]: ends best-effort tasks early.
    stop: CancellationToken,
}

impl Tasks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Spawns a task that ends by itself: it watches the role's shutdown token, or it is
    /// bounded in time (say so where it is spawned).
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task)
    }

    /// `task`, counted as one of this role's tasks, for a caller that spawns it on a
    /// runtime handle of its own (code that may run outside the runtime's context).
    pub fn track<F: Future>(&self, task: F) -> impl Future<Output = F::Output> {
        self.tracker.track_future(task)
    }

    /// `task`, counted as one of this role's tasks and dropped at shutdown: work whose
    /// result nobody needs once the role stops (a webhook notice, a tool listing).
    pub fn best_effort<F: Future<Output = ()>>(&self, task: F) -> impl Future<Output = ()> {
        let stop = self.stop.clone();
        self.tracker.track_future(async move {
            tokio::select! {
                () = task => {}
                () = stop.cancelled() => {}
            }
        })
    }

    /// Spawns [`Tasks::best_effort`] work.
    pub fn spawn_best_effort<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        tokio::spawn(self.best_effort(task));
    }

    /// Ends the best-effort tasks, then waits up to `limit` for every other one. Returns
    /// whether all ended in time (the rest are dropped with the runtime).
    pub async fn shutdown(&self, limit: Duration) -> bool {
        self.stop.cancel();
        self.tracker.close();
        tokio::time::timeout(limit, self.tracker.wait()).await.is_ok()
    }

    /// How many tasks run now.
    pub fn len(&self) -> usize {
        self.tracker.len()
    }

    /// Whether no task runs now.
    pub fn is_empty(&self) -> bool {
        self.tracker.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn shutdown_cuts_best_effort_work_and_waits_for_the_rest() {
        let tasks = Tasks::new();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        tasks.spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let _ = done_tx.send(());
        });
        tasks.spawn_best_effort(std::future::pending());
        assert_eq!(tasks.len(), 2);
        assert!(tasks.shutdown(Duration::from_secs(5)).await, "both ended within the limit");
        assert!(done_rx.await.is_ok(), "the bounded task ran to its end");
        assert!(tasks.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_gives_up_on_a_task_that_hangs() {
        let tasks = Tasks::new();
        tasks.spawn(std::future::pending::<()>());
        assert!(!tasks.shutdown(Duration::from_secs(1)).await);
    }
}
