//! Which tunnel serves which hostname, and which gateway connections each tunnel has.
//!
//! New streams go to the live connection with the fewest active streams.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use tokio::sync::watch;

use super::link::Link;

/// A registered gateway connection.
#[derive(Debug)]
pub struct LiveConn {
    /// Edge-assigned id (also sent to the gateway in `Welcome`).
    pub id: u64,
    /// The tunnel this connection belongs to.
    pub tunnel_id: String,
    /// The connection streams are opened on.
    pub link: Link,
    /// Streams currently open on it.
    pub active: AtomicUsize,
    /// Streams opened on it so far.
    pub opened: crate::stats::Counter,
    /// Cancelled to ask this gateway connection to drain (edge deploys).
    pub drain: tokio_util::sync::CancellationToken,
    /// Asked to drain: used only while the tunnel has no other connection, so streams
    /// keep flowing until the gateway's replacement has registered.
    pub draining: std::sync::atomic::AtomicBool,
}

/// Which tunnel serves which hostname (replaced as a whole on reload).
#[derive(Debug, Default)]
struct HostMap {
    exact: HashMap<String, String>,
    wildcard: HashMap<String, String>,
    hostnames: HashMap<String, Vec<String>>,
}

impl HostMap {
    fn new(tunnels: &HashMap<String, Vec<String>>) -> Self {
        let mut map = Self { hostnames: tunnels.clone(), ..Self::default() };
        for (id, patterns) in tunnels {
            for p in patterns {
                match p.strip_prefix("*.") {
                    Some(suffix) => map.wildcard.insert(suffix.to_owned(), id.clone()),
                    None => map.exact.insert(p.clone(), id.clone()),
                };
            }
        }
        map
    }
}

/// Hostname patterns → tunnel id, and tunnel id → live connections.
#[derive(Debug)]
pub struct Registry {
    hosts: RwLock<Arc<HostMap>>,
    live: Mutex<HashMap<String, Vec<Arc<LiveConn>>>>,
    next_id: AtomicU64,
    next_pick: AtomicUsize,
    /// Bumped on every register/deregister, so waiters can watch for changes.
    version: watch::Sender<u64>,
}

/// A decrement-on-drop guard for a connection's active-stream count.
pub struct StreamSlot(Arc<LiveConn>);

impl StreamSlot {
    /// The connection this slot is on.
    pub fn conn(&self) -> &Arc<LiveConn> {
        &self.0
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Registry {
    /// Builds the hostname map from `tunnel id → patterns` (validated by the config).
    pub fn new(tunnels: &HashMap<String, Vec<String>>) -> Self {
        Self {
            hosts: RwLock::new(Arc::new(HostMap::new(tunnels))),
            live: Mutex::default(),
            next_id: AtomicU64::new(1),
            next_pick: AtomicUsize::new(0),
            version: watch::channel(0).0,
        }
    }

    fn hosts(&self) -> Arc<HostMap> {
        self.hosts.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Replaces the tunnel → hostnames table (hot reload). Connections of tunnels that
    /// are no longer configured are closed; the others keep running.
    pub fn set_tunnels(&self, tunnels: &HashMap<String, Vec<String>>) {
        *self.hosts.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(HostMap::new(tunnels));
        for (id, conns) in self.lock().iter() {
            if !tunnels.contains_key(id) {
                for c in conns {
                    c.link.close(crate::protocol::codes::CLOSE_REJECTED, b"tunnel removed from edge config");
                }
            }
        }
    }

    /// Whether the edge is configured for this tunnel id.
    pub fn knows(&self, tunnel_id: &str) -> bool {
        self.hosts().hostnames.contains_key(tunnel_id)
    }

    /// The hostname patterns a tunnel serves.
    pub fn hostnames(&self, tunnel_id: &str) -> Vec<String> {
        self.hosts().hostnames.get(tunnel_id).cloned().unwrap_or_default()
    }

    /// The tunnel serving `host` (exact names win over `*.` wildcards, which match one label).
    pub fn tunnel_for(&self, host: &str) -> Option<String> {
        let hosts = self.hosts();
        if let Some(id) = hosts.exact.get(host) {
            return Some(id.clone());
        }
        let (_, parent) = host.split_once('.')?;
        hosts.wildcard.get(parent).cloned()
    }

    /// Registers a connection and returns its handle, unless the tunnel already has `max`
    /// connections that are not draining (then: how many it has). Draining ones do not
    /// count, so a make-before-break replacement always fits.
    pub fn register(&self, tunnel_id: &str, link: Link, max: usize) -> Result<Arc<LiveConn>, usize> {
        let mut live = self.lock();
        let conns = live.entry(tunnel_id.to_owned()).or_default();
        let serving = conns.iter().filter(|c| !c.draining.load(Ordering::Relaxed)).count();
        if serving >= max {
            return Err(serving);
        }
        let conn = Arc::new(LiveConn {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            tunnel_id: tunnel_id.to_owned(),
            link,
            active: AtomicUsize::new(0),
            opened: crate::stats::Counter::default(),
            drain: tokio_util::sync::CancellationToken::new(),
            draining: std::sync::atomic::AtomicBool::new(false),
        });
        conns.push(conn.clone());
        drop(live);
        self.version.send_modify(|v| *v += 1);
        Ok(conn)
    }

    /// Removes a connection (when it closed).
    pub fn deregister(&self, live: &LiveConn) {
        if let Some(list) = self.lock().get_mut(&live.tunnel_id) {
            list.retain(|c| c.id != live.id);
        }
        self.version.send_modify(|v| *v += 1);
    }

    /// Takes a stream slot on the least-loaded live connection of a tunnel; ties are
    /// broken round-robin, so idle connections share the load too.
    pub fn pick(&self, tunnel_id: &str) -> Option<StreamSlot> {
        let live = self.lock();
        let conns = live.get(tunnel_id)?;
        let start = self.next_pick.fetch_add(1, Ordering::Relaxed);
        let best = (0..conns.len())
            .map(|i| &conns[(start + i) % conns.len()])
            .min_by_key(|c| (c.draining.load(Ordering::Relaxed), c.active.load(Ordering::Relaxed)))?
            .clone();
        best.active.fetch_add(1, Ordering::Relaxed);
        best.opened.inc();
        Some(StreamSlot(best))
    }

    /// Asks every live connection of a tunnel to drain: each gateway opens a replacement
    /// first, then lets the old connection finish (make-before-break). Returns how many
    /// connections were asked.
    pub fn drain(&self, tunnel_id: &str) -> usize {
        let live = self.lock();
        let conns = live.get(tunnel_id).map(Vec::as_slice).unwrap_or_default();
        conns.iter().for_each(|c| c.drain.cancel());
        conns.len()
    }

    /// Whether the tunnel of `live` has another connection that is not draining.
    pub fn replaced(&self, live: &LiveConn) -> bool {
        self.lock()
            .get(&live.tunnel_id)
            .is_some_and(|c| c.iter().any(|c| c.id != live.id && !c.draining.load(Ordering::Relaxed)))
    }

    /// `(connection id, streams opened)` of each live connection of a tunnel.
    pub fn connections(&self, tunnel_id: &str) -> Vec<(u64, u64)> {
        self.lock().get(tunnel_id).map(|c| c.iter().map(|c| (c.id, c.opened.get())).collect()).unwrap_or_default()
    }

    /// Live connections per tunnel (every configured tunnel, zero included).
    pub fn live_counts(&self) -> Vec<(String, usize)> {
        let hosts = self.hosts();
        let live = self.lock();
        let mut counts: Vec<_> =
            hosts.hostnames.keys().map(|id| (id.clone(), live.get(id).map_or(0, Vec::len))).collect();
        counts.sort();
        counts
    }

    /// Number of live connections of a tunnel.
    pub fn live_count(&self, tunnel_id: &str) -> usize {
        self.lock().get(tunnel_id).map_or(0, Vec::len)
    }

    /// Waits until a tunnel has at least `n` live connections.
    pub async fn wait_live(&self, tunnel_id: &str, n: usize) {
        let mut rx = self.version.subscribe();
        while self.live_count(tunnel_id) < n {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Arc<LiveConn>>>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_beats_wildcard_and_wildcards_match_one_label() {
        let mut t = HashMap::new();
        t.insert("a".to_owned(), vec!["*.a.test".to_owned()]);
        t.insert("b".to_owned(), vec!["special.a.test".to_owned(), "b.test".to_owned()]);
        let r = Registry::new(&t);
        assert_eq!(r.tunnel_for("x.a.test").as_deref(), Some("a"));
        assert_eq!(r.tunnel_for("special.a.test").as_deref(), Some("b"));
        assert_eq!(r.tunnel_for("b.test").as_deref(), Some("b"));
        assert_eq!(r.tunnel_for("a.test"), None);
        assert_eq!(r.tunnel_for("y.x.a.test"), None);
        assert_eq!(r.tunnel_for("c.test"), None);
        assert!(r.knows("a") && !r.knows("c"));
        assert!(r.pick("a").is_none());
    }
}
