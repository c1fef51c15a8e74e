//! Whether a route's tool listing can still be trusted. The gateway's own listing is
//! stale when none was made yet, when the server said `notifications/tools/list_changed`,
//! when the route's client opened a new upstream connection since (the upstream may have
//! restarted with other tools), or when it is older than `pinning_refresh`. Under `enforce`
//! a `tools/call` that finds its listing stale waits for a fresh one, so a changed tool is
//! caught before its first call. A listing that failed is not retried for
//! [`RETRY_AFTER_FAILURE`] (unless the server announced a change), so an upstream the
//! gateway cannot list does not cost every call a failed listing.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Why a listing is stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// The gateway has not listed this route's tools yet.
    Never,
    /// The server announced that its tool list changed.
    ListChanged,
    /// The route's client opened a connection after the listing.
    NewConnection,
    /// The listing is older than the refresh interval.
    Aged,
}

/// How long a failed listing is not retried.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
struct Listing {
    at: Instant,
    connections: u64,
    list_changed: bool,
    /// The last attempt failed at `at`: the definitions are the last ones seen.
    failed: bool,
}

/// Per route name, the last own listing.
#[derive(Debug, Default)]
pub struct Freshness {
    routes: Mutex<HashMap<String, Listing>>,
}

impl Freshness {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Listing>> {
        self.routes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A complete own listing of `route` just ended; its client had opened `connections`.
    pub fn listed(&self, route: &str, connections: u64) {
        self.lock()
            .insert(route.to_owned(), Listing { at: Instant::now(), connections, list_changed: false, failed: false });
    }

    /// An own listing of `route` failed; its client had opened `connections`.
    pub fn failed(&self, route: &str, connections: u64) {
        self.lock()
            .insert(route.to_owned(), Listing { at: Instant::now(), connections, list_changed: false, failed: true });
    }

    /// The server of `route` said its tool list changed.
    pub fn list_changed(&self, route: &str) {
        if let Some(l) = self.lock().get_mut(route) {
            l.list_changed = true;
        }
    }

    /// Why `route`'s listing is stale, if it is; `connections` is its client's count now.
    pub fn stale(&self, route: &str, connections: u64, max_age: Duration) -> Option<Stale> {
        let Some(l) = self.lock().get(route).copied() else { return Some(Stale::Never) };
        if l.failed && !l.list_changed && l.at.elapsed() < RETRY_AFTER_FAILURE {
            return None; // retried later: see the module docs
        }
        if l.list_changed {
            Some(Stale::ListChanged)
        } else if connections != l.connections {
            Some(Stale::NewConnection)
        } else if l.at.elapsed() >= max_age {
            Some(Stale::Aged)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_makes_a_listing_stale_until_the_next_one() {
        let f = Freshness::default();
        let hour = Duration::from_secs(3600);
        assert_eq!(f.stale("r", 0, hour), Some(Stale::Never));
        f.listed("r", 1);
        assert_eq!(f.stale("r", 1, hour), None);
        assert_eq!(f.stale("r", 2, hour), Some(Stale::NewConnection));
        assert_eq!(f.stale("r", 1, Duration::ZERO), Some(Stale::Aged));
        f.list_changed("r");
        assert_eq!(f.stale("r", 1, hour), Some(Stale::ListChanged));
        f.listed("r", 2);
        assert_eq!(f.stale("r", 2, hour), None);
        assert_eq!(f.stale("other", 2, hour), Some(Stale::Never));
        // A failed listing is not retried at once, except for a change the server announced.
        f.failed("r", 2);
        assert_eq!(f.stale("r", 3, Duration::ZERO), None);
        f.list_changed("r");
        assert_eq!(f.stale("r", 2, hour), Some(Stale::ListChanged));
    }
}
