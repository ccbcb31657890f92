//! Router mode (`fathom serve --router`): the same HTTP search API, answered by fanning
//! out to the searchers of a sharded index (`fathom_dist::router`) instead of a local
//! collection. Answers say which manifest version answered, how much of the index did
//! (`coverage`), and which shards are missing; a request's `min_coverage` (default 1)
//! turns a partial answer into a 503 naming the missing shards, so an answer is never
//! silently short.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use fathom_dist::router::{Router as ShardRouter, ShardParams};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{ApiError, bad, json_errors, metrics_answer, parse, rows, search_params, track};
use crate::metrics::Metrics;

/// The router's state.
pub struct RouterApp {
    /// The fan-out over the shards' searchers.
    pub router: Arc<ShardRouter>,
    /// Replicas of each shard the cluster should keep (`/health` is "degraded" below).
    pub replication: usize,
    /// Largest `top_k`.
    pub max_top_k: usize,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Deadline of a search that names none.
    pub default_deadline: Duration,
    /// Requests, latency, queries searched, partial answers.
    pub metrics: Arc<Metrics>,
}

/// The HTTP routes of router mode.
pub fn routes(app: Arc<RouterApp>) -> Router {
    let limit = app.max_body_bytes;
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/collections", get(list))
        .route("/collections/{name}", get(describe))
        .route("/collections/{name}/search", post(search))
        .fallback(|| async {
            ApiError(
                StatusCode::NOT_FOUND,
                "no such route (this server is a router: it searches shards built with \
                 `fathom shard build`; collections are not changed through it)"
                    .into(),
            )
        })
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(limit, json_errors))
        .layer(middleware::from_fn_with_state(app.metrics.clone(), track))
        .with_state(app)
}

async fn metrics(State(app): State<Arc<RouterApp>>) -> Response {
    let sizes = match app.router.manifest() {
        Some(m) => vec![(m.name.clone(), m.ntotal() as usize)],
        None => Vec::new(),
    };
    let mut text = app.metrics.render(&sizes);
    render_router_metrics(&app, &mut text);
    metrics_answer(text)
}

/// The router's own series: hedges, retries, READY replicas, the served version, etcd's
/// reachability, per-shard latency of the calls to searchers.
fn render_router_metrics(app: &RouterApp, out: &mut String) {
    use fathom_dist::stats::render_value;
    use std::sync::atomic::Ordering::Relaxed;
    // Prometheus text ends with "# EOF" in OpenMetrics; the series go before it.
    let eof = out.rfind("# EOF").unwrap_or(out.len());
    let mut extra = String::new();
    let r = &app.router;
    render_value(
        &mut extra,
        "fathom_router_hedges_total",
        "counter",
        "Second requests sent to another replica because the first was slow.",
        r.stats.hedges.load(Relaxed) as f64,
    );
    render_value(
        &mut extra,
        "fathom_router_retries_total",
        "counter",
        "Requests sent again to another replica after one failed.",
        r.stats.retries.load(Relaxed) as f64,
    );
    render_value(
        &mut extra,
        "fathom_router_manifest_version",
        "gauge",
        "The manifest version served (0: none yet).",
        r.manifest().map_or(0.0, |m| m.version as f64),
    );
    let replicas = r.replicas();
    render_value(
        &mut extra,
        "fathom_router_min_ready_replicas",
        "gauge",
        "The fewest READY replicas of any shard of the served version.",
        replicas.iter().map(|(_, r)| r.len()).min().unwrap_or(0) as f64,
    );
    if r.follows_etcd() {
        render_value(
            &mut extra,
            "fathom_router_etcd_up",
            "gauge",
            "Whether the last read of etcd succeeded.",
            if r.control().etcd_ok { 1.0 } else { 0.0 },
        );
    }
    r.stats.latencies.render(
        "fathom_router_shard_seconds",
        "Latency of the router's calls to searchers, by shard.",
        &mut extra,
    );
    out.insert_str(eof, &extra);
}

fn describe_json(app: &RouterApp) -> Value {
    match app.router.manifest() {
        Some(m) => json!({
            "name": m.name,
            "dim": m.d,
            "metric": m.metric,
            "index": m.factory,
            "ntotal": m.ntotal(),
            "shards": m.shards.len(),
            "manifest_version": m.version,
        }),
        None => json!({ "name": app.router.name(), "manifest_version": null }),
    }
}

async fn health(State(app): State<Arc<RouterApp>>) -> Response {
    let shards = app.router.health(Duration::from_secs(2)).await;
    let replicas = app.router.replicas();
    let control = app.router.control();
    let serving = app.router.manifest().is_some();
    let under_replicated = replicas.iter().any(|(_, r)| r.len() < app.replication);
    let all = serving && shards.iter().all(|s| s.ok) && !under_replicated;
    let mut warnings = Vec::new();
    if !serving {
        warnings.push("no published version has a READY replica of every shard yet".to_string());
    }
    if app.router.follows_etcd() && !control.etcd_ok {
        warnings.push(format!(
            "etcd unreachable ({}); serving on the last view{}",
            control.last_error.clone().unwrap_or_default(),
            control
                .last_ok
                .map(|t| format!(", read {:.1} s ago", t.elapsed().as_secs_f64()))
                .unwrap_or_default()
        ));
    }
    if let (Some(p), Some(m)) = (control.pointer, app.router.manifest())
        && p != m.version
    {
        warnings.push(format!(
            "v{p} is published but not every shard has a READY replica yet; serving v{}",
            m.version
        ));
    }
    Json(json!({
        "status": if all { "ok" } else { "degraded" },
        "mode": "router",
        "collection": describe_json(&app),
        "warnings": warnings,
        "etcd": app.router.follows_etcd().then(|| json!({
            "ok": control.etcd_ok,
            "last_error": control.last_error,
            "published_version": control.pointer,
            "settled": control.settled,
        })),
        "replication": app.replication,
        "replicas": replicas.iter().map(|(s, rs)| json!({
            "shard": s,
            "ready": rs.len(),
            "searchers": rs.iter().map(|r| json!({
                "member": r.member, "addr": r.addr, "outstanding": r.outstanding,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "hedges": app.router.stats.hedges.load(std::sync::atomic::Ordering::Relaxed),
        "retries": app.router.stats.retries.load(std::sync::atomic::Ordering::Relaxed),
        "shards": shards.iter().map(|s| json!({
            "shard": s.shard, "searcher": s.searcher, "ok": s.ok, "detail": s.detail,
        })).collect::<Vec<_>>(),
    }))
    .into_response()
}

async fn list(State(app): State<Arc<RouterApp>>) -> Response {
    Json(json!({ "collections": [describe_json(&app)] })).into_response()
}

fn served<'a>(app: &'a RouterApp, name: &str) -> Result<&'a ShardRouter, ApiError> {
    if app.router.name().eq_ignore_ascii_case(name) {
        Ok(&app.router)
    } else {
        Err(ApiError(
            StatusCode::NOT_FOUND,
            format!(
                "no collection {name:?}: this router serves {:?}",
                app.router.name()
            ),
        ))
    }
}

async fn describe(
    State(app): State<Arc<RouterApp>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    served(&app, &name)?;
    Ok(Json(describe_json(&app)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchBody {
    #[serde(default, deserialize_with = "crate::json_f32::vector")]
    vector: Option<Vec<f32>>,
    #[serde(default, deserialize_with = "crate::json_f32::vectors")]
    vectors: Option<Vec<Vec<f32>>>,
    top_k: Option<usize>,
    params: Option<std::collections::HashMap<String, f64>>,
    deadline_ms: Option<u64>,
    min_coverage: Option<f64>,
}

async fn search(
    State(app): State<Arc<RouterApp>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let router = served(&app, &name)?;
    let b: SearchBody = parse(&body)?;
    let (queries, single) = match (b.vector, b.vectors) {
        (Some(v), None) => (vec![v], true),
        (None, Some(v)) if !v.is_empty() => (v, false),
        _ => {
            return Err(bad(
                "the body needs exactly one non-empty \"vector\": […] or \"vectors\": [[…], …]",
            ));
        }
    };
    let top_k = b.top_k.unwrap_or(10);
    if top_k == 0 || top_k > app.max_top_k {
        return Err(bad(format!(
            "top_k must be 1..={}, got {top_k}",
            app.max_top_k
        )));
    }
    let min_coverage = b.min_coverage.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&min_coverage) {
        return Err(bad(format!(
            "min_coverage must be in [0, 1], got {min_coverage}"
        )));
    }
    let deadline = match b.deadline_ms {
        Some(0) => return Err(bad("deadline_ms must be at least 1")),
        Some(ms) => Duration::from_millis(ms.min(600_000)),
        None => app.default_deadline,
    };
    let (nprobe, ef_search) = search_params(b.params.unwrap_or_default())?;
    let Some(m) = router.manifest() else {
        return Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{} is not served yet: no published version has a READY replica of every shard",
                router.name()
            ),
        ));
    };
    let flat = rows(&queries, m.d as usize, "query")?;
    let answer = router
        .search(&flat, top_k, ShardParams { nprobe, ef_search }, deadline)
        .await?;
    let missing: Vec<u32> = answer.missing.iter().map(|m| m.0).collect();
    if answer.partial() {
        app.metrics.search_partial();
    }
    if answer.coverage < min_coverage {
        return Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "coverage {:.4} is below min_coverage {min_coverage}: shards {missing:?} did not \
                 answer ({}); send min_coverage 0 to accept a partial answer",
                answer.coverage,
                answer
                    .missing
                    .iter()
                    .map(|(s, why)| format!("shard {s}: {why}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ));
    }
    app.metrics.searched(flat.len() / m.d as usize);
    let k = top_k;
    let per_query: Vec<Value> = answer
        .result
        .labels
        .chunks(k)
        .zip(answer.result.distances.chunks(k))
        .map(|(ids, scores)| {
            let hits: Vec<Value> = ids
                .iter()
                .zip(scores)
                .filter(|(id, _)| **id >= 0)
                .enumerate()
                .map(|(i, (id, s))| json!({"rank": i + 1, "id": id, "score": s}))
                .collect();
            Value::Array(hits)
        })
        .collect();
    let results = if single {
        per_query.into_iter().next().unwrap_or(Value::Array(vec![]))
    } else {
        Value::Array(per_query)
    };
    Ok(Json(json!({
        "results": results,
        "manifest_version": answer.manifest_version,
        "coverage": answer.coverage,
        "partial": answer.partial(),
        "missing_shards": missing,
        "missing_reasons": answer.missing.iter().map(|(s, why)| json!({"shard": s, "reason": why})).collect::<Vec<_>>(),
    }))
    .into_response())
}
