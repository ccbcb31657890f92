//! Prometheus metrics: requests and latency per route, method and status, requests in flight,
//! queries searched, vectors per collection.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CollectionLabels {
    collection: String,
}

fn latency_histogram() -> Histogram {
    // 100 µs … ~3.3 s.
    Histogram::new(exponential_buckets(1e-4, 2.0, 16))
}

/// The service's metrics and their registry.
pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RequestLabels, Histogram, fn() -> Histogram>,
    in_flight: Gauge,
    queries: Counter,
    cancelled: Counter,
    partial: Counter,
    vectors: Family<CollectionLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("fathom");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: Family<RequestLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        let in_flight = Gauge::default();
        let queries = Counter::default();
        let cancelled = Counter::default();
        let partial = Counter::default();
        let vectors = Family::<CollectionLabels, Gauge>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route, method and status",
            latency.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "HTTP requests being served",
            in_flight.clone(),
        );
        registry.register(
            "search_queries",
            "Query vectors searched (rate() of it is the search QPS)",
            queries.clone(),
        );
        registry.register(
            "search_cancelled",
            "Searches stopped before their end (client gone or server stopping)",
            cancelled.clone(),
        );
        registry.register(
            "search_partial",
            "Router mode: searches some shards did not answer (flagged partial, or refused by min_coverage)",
            partial.clone(),
        );
        registry.register(
            "collection_vectors",
            "Live items per collection",
            vectors.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            requests,
            latency,
            in_flight,
            queries,
            cancelled,
            partial,
            vectors,
        }
    }
}

impl Metrics {
    /// A request started.
    pub fn begin(&self) {
        self.in_flight.inc();
    }
    /// A request ended.
    pub fn end(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.in_flight.dec();
        let labels = RequestLabels {
            route: route.to_string(),
            method: method.to_string(),
            status,
        };
        self.requests.get_or_create(&labels).inc();
        self.latency.get_or_create(&labels).observe(seconds);
    }
    /// `n` query vectors were searched.
    pub fn searched(&self, n: usize) {
        self.queries.inc_by(n as u64);
    }
    /// Router mode: a search some shards did not answer.
    pub fn search_partial(&self) {
        self.partial.inc();
    }
    /// A search stopped before its end.
    pub fn search_cancelled(&self) {
        self.cancelled.inc();
    }
    /// The text exposition, with the collections' sizes as of now.
    pub fn render(&self, sizes: &[(String, usize)]) -> String {
        self.vectors.clear();
        for (name, n) in sizes {
            self.vectors
                .get_or_create(&CollectionLabels {
                    collection: name.clone(),
                })
                .set(*n as i64);
        }
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

/// Appends a counter in OpenMetrics text: `# TYPE name counter` and `name_total value`.
pub fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    use std::fmt::Write;
    let _ = writeln!(
        out,
        "# HELP {name} {help}.\n# TYPE {name} counter\n{name}_total {value}"
    );
}

/// Appends a gauge in OpenMetrics text, one sample per `(labels, value)` (labels as
/// `key="value"`, or empty).
pub fn gauge(out: &mut String, name: &str, help: &str, samples: &[(String, u64)]) {
    use std::fmt::Write;
    let _ = writeln!(out, "# HELP {name} {help}.\n# TYPE {name} gauge");
    for (labels, v) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {v}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    }
}
