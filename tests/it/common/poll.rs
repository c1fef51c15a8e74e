//! Bounded polling for state a test cannot await (a counter, a file, a process's exit,
//! a listener coming up): look every [`INTERVAL`] until the condition holds, and fail
//! naming what was awaited when it does not hold in time. The one place a test sleeps
//! between looks; nothing waits a fixed time and hopes.

use std::future::Future;
use std::time::Duration;

/// Time between two looks.
pub const INTERVAL: Duration = Duration::from_millis(20);

/// What a condition yields: `true`/`false`, `Some(value)`/`None` or `Ok(value)`/`Err(_)`.
pub trait Outcome {
    type Value;
    fn into_value(self) -> Option<Self::Value>;
}

impl Outcome for bool {
    type Value = ();
    fn into_value(self) -> Option<()> {
        self.then_some(())
    }
}

impl<T> Outcome for Option<T> {
    type Value = T;
    fn into_value(self) -> Option<T> {
        self
    }
}

impl<T, E> Outcome for Result<T, E> {
    type Value = T;
    fn into_value(self) -> Option<T> {
        self.ok()
    }
}

/// Polls `cond` until it holds; its value, or `None` once `limit` has passed.
pub async fn within<O: Outcome>(limit: Duration, mut cond: impl FnMut() -> O) -> Option<O::Value> {
    within_async(limit, || std::future::ready(cond())).await
}

/// Like [`within`], for a condition that has to await (a connection, a request).
pub async fn within_async<O: Outcome, F: Future<Output = O>>(
    limit: Duration,
    mut cond: impl FnMut() -> F,
) -> Option<O::Value> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = cond().await.into_value() {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(INTERVAL).await;
    }
}

/// Polls `cond` until it holds and returns its value; panics with `what` after `limit`.
pub async fn eventually<O: Outcome>(limit: Duration, what: &str, cond: impl FnMut() -> O) -> O::Value {
    within(limit, cond).await.unwrap_or_else(|| panic!("{what}: not within {limit:?}"))
}

/// Like [`eventually`], for a condition that has to await.
pub async fn eventually_async<O: Outcome, F: Future<Output = O>>(
    limit: Duration,
    what: &str,
    cond: impl FnMut() -> F,
) -> O::Value {
    within_async(limit, cond).await.unwrap_or_else(|| panic!("{what}: not within {limit:?}"))
}

/// Like [`eventually`], blocking the thread (for tests without a runtime).
pub fn eventually_blocking<O: Outcome>(limit: Duration, what: &str, mut cond: impl FnMut() -> O) -> O::Value {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(value) = cond().into_value() {
            return value;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(INTERVAL);
    }
}
