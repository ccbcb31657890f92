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
    pub router: ShardRouter,
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
    let m = app.router.manifest();
    metrics_answer(app.metrics.render(&[(m.name.clone(), m.ntotal() as usize)]))
}

fn describe_json(app: &RouterApp) -> Value {
    let m = app.router.manifest();
    json!({
        "name": m.name,
        "dim": m.d,
        "metric": m.metric,
        "index": m.factory,
        "ntotal": m.ntotal(),
        "shards": m.shards.len(),
        "manifest_version": m.version,
    })
}

async fn health(State(app): State<Arc<RouterApp>>) -> Response {
    let shards = app.router.health(Duration::from_secs(2)).await;
    let all = shards.iter().all(|s| s.ok);
    Json(json!({
        "status": if all { "ok" } else { "degraded" },
        "mode": "router",
        "collection": describe_json(&app),
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
    if app.router.manifest().name == name {
        Ok(&app.router)
    } else {
        Err(ApiError(
            StatusCode::NOT_FOUND,
            format!(
                "no collection {name:?}: this router serves {:?}",
                app.router.manifest().name
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
    vector: Option<Vec<f32>>,
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
    let flat = rows(&queries, router.manifest().d as usize, "query")?;
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
    app.metrics
        .searched(flat.len() / router.manifest().d as usize);
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
