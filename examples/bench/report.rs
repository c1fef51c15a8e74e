//! Results: one row per (scenario, repetition, path) with named values; ratios to the
//! direct path of the same scenario and repetition; a text table and a JSON file.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

/// One measurement of one path.
pub struct Row {
    pub scenario: String,
    pub rep: usize,
    pub path: &'static str,
    /// (name, value) in print order; names ending in `_ms`/`_us` are latencies.
    pub values: Vec<(String, f64)>,
    /// Free-form notes (errors, skips).
    pub note: String,
}

impl Row {
    pub fn new(scenario: &str, rep: usize, path: &'static str) -> Row {
        Row { scenario: scenario.into(), rep, path, values: vec![], note: String::new() }
    }
    pub fn set(&mut self, name: &str, v: f64) {
        self.values.push((name.into(), v));
    }
    fn get(&self, name: &str) -> Option<f64> {
        self.values.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
    /// p50/p90/p99/p99.9 of a µs histogram as `<prefix>p50_us` …
    pub fn percentiles(&mut self, prefix: &str, h: &Histogram<u64>) {
        if h.is_empty() {
            return;
        }
        for (name, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)] {
            self.set(&format!("{prefix}{name}_us"), h.value_at_quantile(q) as f64);
        }
    }
}

/// All rows of a run plus what describes the run.
#[derive(Default)]
pub struct Report {
    pub rows: Vec<Row>,
    pub skipped: Vec<String>,
    pub machine: Map<String, Value>,
}

impl Report {
    /// The direct path's value for the same scenario, repetition and metric.
    fn direct(&self, row: &Row, name: &str) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.path == "direct" && r.scenario == row.scenario && r.rep == row.rep)
            .and_then(|r| r.get(name))
            .filter(|v| *v != 0.0)
    }

    /// Text table: per scenario and repetition, a line per path, `value (ratio×)`.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let mut seen: Vec<(String, usize)> = vec![];
        for row in &self.rows {
            let key = (row.scenario.clone(), row.rep);
            if seen.contains(&key) {
                continue;
            }
            seen.push(key);
            let _ = writeln!(out, "\n== {} (run {}) ==", row.scenario, row.rep + 1);
            for r in self.rows.iter().filter(|r| r.scenario == row.scenario && r.rep == row.rep) {
                let mut line = format!("{:<12}", r.path);
                for (name, v) in &r.values {
                    let _ = write!(line, "  {name}={}", fmt(*v));
                    if let Some(d) = self.direct(r, name).filter(|_| r.path != "direct") {
                        let _ = write!(line, " ({:.2}x)", v / d);
                    }
                }
                if !r.note.is_empty() {
                    let _ = write!(line, "  [{}]", r.note);
                }
                let _ = writeln!(out, "{line}");
            }
        }
        for s in &self.skipped {
            let _ = writeln!(out, "skipped: {s}");
        }
        out
    }

    /// Machine-readable result, ratios included.
    pub fn json(&self) -> Value {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                let values: Map<String, Value> = r.values.iter().map(|(n, v)| (n.clone(), json!(v))).collect();
                let ratios: Map<String, Value> =
                    r.values.iter().filter_map(|(n, v)| Some((n.clone(), json!(v / self.direct(r, n)?)))).collect();
                json!({ "scenario": r.scenario, "run": r.rep + 1, "path": r.path, "values": values,
                        "ratio_to_direct": ratios, "note": r.note })
            })
            .collect();
        json!({ "machine": self.machine, "rows": rows, "skipped": self.skipped })
    }
}

fn fmt(v: f64) -> String {
    if v.abs() >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// What the run ran on: cores, CPU model, memory, kernel, load average now.
pub fn machine() -> Map<String, Value> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model =
        cpuinfo.lines().find_map(|l| l.strip_prefix("model name")).map(|l| l.trim_start_matches([' ', '\t', ':']));
    let mem = read("/proc/meminfo").lines().find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().to_owned()));
    let mut m = Map::new();
    m.insert("cores".into(), json!(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)));
    m.insert("cpu".into(), json!(model.unwrap_or("?")));
    m.insert("memory".into(), json!(mem.unwrap_or_default()));
    m.insert("kernel".into(), json!(read("/proc/sys/kernel/osrelease").trim()));
    m.insert("loadavg_start".into(), json!(loadavg()));
    m
}

/// /proc/loadavg's first three fields.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split(' ').take(3).collect::<Vec<_>>().join(" ")
}
