//! The kill switch's metrics (documented in docs/metrics.md): what is stopped now, and
//! how many in-flight exchanges kills cut.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::stats::{labels, Labels};

/// The metric label value that stands for the whole gateway.
pub const ALL: &str = "*";

/// The kill switch's metric families (cheap to clone: clones share their values).
#[derive(Debug, Clone, Default)]
pub struct KillMetrics {
    /// 1 per stopped route name (`*`: the whole gateway).
    killed: Family<Labels, Gauge>,
    /// Exchanges cut by kills.
    cut: Counter,
}

impl KillMetrics {
    /// Registers both families.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "killed",
            "Stopped by the kill switch, by route (* = the whole gateway)",
            self.killed.clone(),
        );
        registry.register("kill_cut_exchanges", "In-flight exchanges cut by the kill switch", self.cut.clone());
    }

    /// Replaces the `killed` series with `stopped` (route names, `*` for everything):
    /// the whole-gateway series is always there (0 or 1), a route's only while stopped.
    pub fn set_stopped<'a>(&self, all: bool, routes: impl Iterator<Item = &'a str>) {
        self.killed.clear();
        self.killed.get_or_create(&labels(&[("route", ALL)])).set(i64::from(all));
        for route in routes {
            self.killed.get_or_create(&labels(&[("route", route)])).set(1);
        }
    }

    /// Counts exchanges a kill cut.
    pub fn cut(&self, n: u64) {
        self.cut.inc_by(n);
    }
}
