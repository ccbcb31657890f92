//! Per-shard latency histograms and event counters, kept with atomics on the search path
//! and rendered in Prometheus's text format for the `/metrics` of routers and searchers.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds (100 µs to ~6.5 s, doubling).
fn bounds() -> impl Iterator<Item = f64> {
    (0..17).map(|i| 1e-4 * f64::from(1u32 << i))
}

/// One shard's latencies.
#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; 17],
    count: AtomicU64,
    failed: AtomicU64,
    /// Sum in microseconds.
    sum_us: AtomicU64,
}

/// Latencies of calls per shard, and how many failed.
#[derive(Default)]
pub struct Latencies {
    shards: Mutex<BTreeMap<u32, std::sync::Arc<Histogram>>>,
}

impl Latencies {
    fn of(&self, shard: u32) -> std::sync::Arc<Histogram> {
        self.shards
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(shard)
            .or_default()
            .clone()
    }

    /// Records one call to `shard` that took `took`.
    pub fn record(&self, shard: u32, took: Duration, ok: bool) {
        let h = self.of(shard);
        let s = took.as_secs_f64();
        if let Some(i) = bounds().position(|b| s <= b) {
            h.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        h.count.fetch_add(1, Ordering::Relaxed);
        h.sum_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        if !ok {
            h.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Calls recorded for `shard`, and how many failed.
    pub fn counts(&self, shard: u32) -> (u64, u64) {
        let h = self.of(shard);
        (
            h.count.load(Ordering::Relaxed),
            h.failed.load(Ordering::Relaxed),
        )
    }

    /// The histograms as Prometheus text, metric `name` labelled by shard, plus
    /// `<name>_failed_total`.
    pub fn render(&self, name: &str, help: &str, out: &mut String) {
        let shards = self
            .shards
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (s, h) in &shards {
            let mut cumulative = 0;
            for (b, n) in bounds().zip(&h.buckets) {
                cumulative += n.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "{name}_bucket{{shard=\"{s}\",le=\"{b}\"}} {cumulative}"
                );
            }
            let count = h.count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{shard=\"{s}\",le=\"+Inf\"}} {count}");
            let sum = h.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "{name}_sum{{shard=\"{s}\"}} {sum}");
            let _ = writeln!(out, "{name}_count{{shard=\"{s}\"}} {count}");
        }
        let _ = writeln!(
            out,
            "# HELP {name}_failed_total Calls that failed, by shard."
        );
        let _ = writeln!(out, "# TYPE {name}_failed_total counter");
        for (s, h) in &shards {
            let _ = writeln!(
                out,
                "{name}_failed_total{{shard=\"{s}\"}} {}",
                h.failed.load(Ordering::Relaxed)
            );
        }
    }
}

/// Writes one metric line with its HELP and TYPE.
pub fn render_value(out: &mut String, name: &str, kind: &str, help: &str, value: f64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{name} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_count_and_render() {
        let l = Latencies::default();
        l.record(2, Duration::from_micros(150), true);
        l.record(2, Duration::from_millis(30), false);
        l.record(0, Duration::from_secs(100), true);
        assert_eq!(l.counts(2), (2, 1));
        let mut out = String::new();
        l.render("x_seconds", "test", &mut out);
        assert!(
            out.contains("x_seconds_bucket{shard=\"2\",le=\"0.0002\"} 1"),
            "{out}"
        );
        assert!(out.contains("x_seconds_bucket{shard=\"2\",le=\"+Inf\"} 2"));
        assert!(out.contains("x_seconds_count{shard=\"0\"} 1"));
        assert!(out.contains("x_seconds_failed_total{shard=\"2\"} 1"));
    }
}
