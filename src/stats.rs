//! Counters and the Prometheus registry they are exported from. Incrementing a counter
//! is one atomic add; it never blocks the data path.

use prometheus_client::metrics::counter::Counter as PromCounter;
use prometheus_client::registry::Registry;

/// A monotonically increasing counter, exportable to Prometheus.
#[derive(Debug, Default, Clone)]
pub struct Counter(PromCounter);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.inc();
    }
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.inc_by(n);
    }
    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.get()
    }
    /// Registers this counter (name without the `_total` suffix, which is added).
    pub fn register(&self, registry: &mut Registry, name: &str, help: &str) {
        registry.register(name, help, self.0.clone());
    }
}

/// Renders a registry in the Prometheus text format.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}
