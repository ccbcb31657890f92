//! A searcher's HTTP face (`fathom searcher --http ADDR`): `/health` (what it holds, and
//! under etcd its membership: lease, assignment, loads in progress) and `/metrics`
//! (Prometheus: shards held, per-shard search latency). Searches themselves go over gRPC
//! from the routers (`fathom_dist::searcher`).

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use fathom_dist::member::MemberStatus;
use fathom_dist::searcher::Searcher;
use serde_json::json;

use crate::api::metrics_answer;

/// What the searcher's HTTP routes read.
pub struct SearcherApp {
    /// The shards it serves.
    pub searcher: Arc<Searcher>,
    /// Its membership, when it follows etcd.
    pub member: Option<Arc<Mutex<MemberStatus>>>,
}

impl SearcherApp {
    fn member(&self) -> Option<MemberStatus> {
        self.member
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

/// `/health` and `/metrics`.
pub fn routes(app: Arc<SearcherApp>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(app)
}

async fn health(State(app): State<Arc<SearcherApp>>) -> Response {
    let h = app.searcher.health();
    let member = app.member();
    let ok = member
        .as_ref()
        .is_none_or(|m| m.registered && m.etcd_ok && m.loading.is_empty());
    Json(json!({
        "status": if ok { "ok" } else { "degraded" },
        "mode": "searcher",
        "collection": h.name,
        "held": h.shards.iter().map(|s| json!({
            "manifest_version": s.manifest_version, "shard": s.shard, "ntotal": s.ntotal,
            "sha256": s.sha256, "index": s.description, "mapped": s.mapped,
        })).collect::<Vec<_>>(),
        "member": member,
    }))
    .into_response()
}

async fn metrics(State(app): State<Arc<SearcherApp>>) -> Response {
    use fathom_dist::stats::render_value;
    let mut out = String::new();
    render_value(
        &mut out,
        "fathom_searcher_shards_held",
        "gauge",
        "Shards loaded and served, over all versions held.",
        app.searcher.held().len() as f64,
    );
    if let Some(m) = app.member() {
        render_value(
            &mut out,
            "fathom_searcher_registered",
            "gauge",
            "Whether it holds a live lease in etcd.",
            f64::from(u8::from(m.registered)),
        );
        render_value(
            &mut out,
            "fathom_searcher_etcd_up",
            "gauge",
            "Whether the last read of etcd succeeded.",
            f64::from(u8::from(m.etcd_ok)),
        );
        render_value(
            &mut out,
            "fathom_searcher_loading",
            "gauge",
            "Shards being downloaded, verified and opened.",
            m.loading.len() as f64,
        );
    }
    app.searcher.stats.render(
        "fathom_searcher_search_seconds",
        "Time to answer a search, by shard.",
        &mut out,
    );
    out.push_str("# EOF\n");
    metrics_answer(out)
}

/// Serves the routes on `listener` until `shutdown` completes.
pub async fn serve(
    app: Arc<SearcherApp>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> fathom_core::Result<()> {
    axum::serve(listener, routes(app))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
