//! Request logs: one structured line per request through `tracing` — route, method,
//! collection, status, latency, queries, `top_k`, cache outcome — never vectors, metadata
//! or keys. [`init`] sends them (and the service's other events) to stderr as JSON or
//! text.

use crate::api::Facts;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `2026-12-05T12:00:00Z INFO request route=… status=200 …`
    #[default]
    Text,
    /// One JSON object a line.
    Json,
}

impl LogFormat {
    /// `text` or `json`.
    pub fn parse(s: &str) -> fathom_core::Result<Self> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(fathom_core::Error::invalid(format!(
                "log format {s:?}: expected \"text\" or \"json\""
            ))),
        }
    }
}

/// Sends the process's `tracing` events at level INFO and above to stderr in `format`
/// (a no-op when a subscriber is installed already).
pub fn init(format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::INFO)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Logs one finished request.
pub fn request(route: &str, method: &str, status: u16, seconds: f64, facts: &Facts) {
    tracing::info!(
        target: "fathom::request",
        route,
        method,
        status,
        latency_ms = (seconds * 1e6).round() / 1e3,
        collection = facts.collection.as_deref().unwrap_or(""),
        queries = facts.queries,
        k = facts.k,
        cache = facts.cache.unwrap_or(""),
        degraded = facts.degraded,
        "request"
    );
}
