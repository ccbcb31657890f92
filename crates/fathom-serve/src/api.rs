//! The HTTP JSON API (axum). Bodies are parsed here rather than by axum's `Json` so every
//! malformed body gets the same 400 with serde's message; CPU-bound work (search, adds,
//! retraining, snapshots) runs on the blocking pool, off the async workers.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use fathom_core::{Error, Idx, MetricType};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::collection::{CANCELLED, Collection, SearchOptions};
use crate::metrics::Metrics;
use crate::service::Service;
use crate::store::CollectionDef;

/// What the handlers share.
pub struct App {
    /// The service.
    pub service: Service,
    /// Its metrics.
    pub metrics: Arc<Metrics>,
    /// Searches running at once: one per core. More would only share the cores and
    /// lengthen every search; waiting ones queue here, off the threads.
    pub search_slots: tokio::sync::Semaphore,
    /// The text model, when the server has one: `"text"` queries and `"texts"` items.
    pub embedder: Option<Arc<dyn crate::embed::Embedder>>,
}

/// Embeds `texts` for collection `c` on the blocking pool; 400 without a model, 422 when
/// the model's dimension is not the collection's.
async fn embed_for(
    app: &Arc<App>,
    c: &Collection,
    texts: Vec<String>,
) -> Result<Vec<f32>, ApiError> {
    let Some(e) = app.embedder.clone() else {
        return Err(bad(
            "text needs a text model, and this server has none (start it with --model DIR); \
             send vectors",
        ));
    };
    if e.dim() != c.def.dim {
        return Err(ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "the text model {} makes {}-d vectors; the collection expects {}",
                e.name(),
                e.dim(),
                c.def.dim
            ),
        ));
    }
    if texts.is_empty() {
        return Err(bad("no texts given"));
    }
    blocking(move || Ok(e.embed(&texts)?)).await
}

/// An error answer: a status and `{"error": message}`.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::DimensionMismatch { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::InvalidArgument(_) | Error::Unsupported(_) => StatusCode::BAD_REQUEST,
            Error::NotTrained(_) => StatusCode::CONFLICT,
            Error::IdNotFound(_) => StatusCode::NOT_FOUND,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, e.to_string())
    }
}

type ApiResult = Result<Response, ApiError>;

pub(crate) fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

pub(crate) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| bad(format!("malformed JSON body: {e}")))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("worker failed: {e}"),
        )
    })?
}

fn collection(app: &App, name: &str) -> Result<Arc<Collection>, ApiError> {
    app.service
        .get(name)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no collection {name:?}")))
}

/// Flattens rows, checking each has `dim` components.
pub(crate) fn rows(vectors: &[Vec<f32>], dim: usize, what: &str) -> Result<Vec<f32>, ApiError> {
    let mut flat = Vec::with_capacity(vectors.len() * dim);
    for (i, v) in vectors.iter().enumerate() {
        if v.len() != dim {
            return Err(ApiError(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "{what} {i} has {} components; the collection expects {dim}",
                    v.len()
                ),
            ));
        }
        flat.extend_from_slice(v);
    }
    // Values beyond f32 arrive as ±∞; huge finite ones would overflow distances.
    fathom_core::check::finite(what, &flat, dim)
        .map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    Ok(flat)
}

/// The router over `app`.
pub fn router(app: Arc<App>) -> Router {
    let limit = app.service.config.max_body_bytes;
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/snapshot", post(snapshot))
        .route("/collections", get(list_collections))
        .route(
            "/collections/{name}",
            get(describe).put(create).delete(drop_collection),
        )
        .route(
            "/collections/{name}/items",
            post(add_items).delete(delete_items),
        )
        .route("/collections/{name}/search", post(search))
        .route("/collections/{name}/retrain", post(retrain))
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such route".into()) })
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(limit, json_errors))
        .layer(middleware::from_fn_with_state(app.metrics.clone(), track))
        .with_state(app)
}

/// Every error answer is `{"error": "…"}`, also those axum makes itself (413 for a body
/// over the limit, 405 for a method a route lacks); and a body announced larger than the
/// limit is refused before it is read, so a client that sends less does not hang.
pub(crate) async fn json_errors(State(limit): State<usize>, req: Request, next: Next) -> Response {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = announced.filter(|&n| n > limit as u64) {
        let mut resp = ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is {n} bytes; the limit is {limit} (--max-body-mib)"),
        )
        .into_response();
        // The unread body cannot be skipped cheaply: end the connection.
        resp.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
        return resp;
    }
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 64 << 10)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed = parts
                .headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            format!("method {method} is not allowed on {path}; allowed: {allowed}")
        }
        StatusCode::PAYLOAD_TOO_LARGE => {
            format!("the body is over the limit of {limit} bytes (--max-body-mib)")
        }
        _ if !text.is_empty() => text,
        _ => status.canonical_reason().unwrap_or("error").to_lowercase(),
    };
    let mut out = ApiError(status, message).into_response();
    for (k, v) in parts.headers.iter() {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}

/// Counts every request by route, method and status, and its latency.
pub(crate) async fn track(
    State(metrics): State<Arc<Metrics>>,
    req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().to_string();
    // Ends the request's count also when its future is dropped (the client went away):
    // it then counts with status 499, as nginx logs a request whose client closed.
    struct InFlight<'a> {
        metrics: &'a Metrics,
        route: String,
        method: String,
        status: u16,
        t0: Instant,
    }
    impl Drop for InFlight<'_> {
        fn drop(&mut self) {
            let secs = self.t0.elapsed().as_secs_f64();
            self.metrics
                .end(&self.route, &self.method, self.status, secs);
        }
    }
    metrics.begin();
    let mut in_flight = InFlight {
        metrics: &metrics,
        route,
        method,
        status: 499,
        t0: Instant::now(),
    };
    let resp = next.run(req).await;
    in_flight.status = resp.status().as_u16();
    resp
}

async fn health(State(app): State<Arc<App>>) -> ApiResult {
    let app2 = app.clone();
    let mut h = blocking(move || Ok(app2.service.health())).await?;
    h["text_model"] = app
        .embedder
        .as_ref()
        .map_or(Value::Null, |e| json!(e.name()));
    Ok(Json(h).into_response())
}

/// The metrics text: `Content-Type` of OpenMetrics.
pub(crate) fn metrics_answer(text: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn metrics(State(app): State<Arc<App>>) -> ApiResult {
    let sizes: Vec<(String, usize)> = app
        .service
        .list()
        .iter()
        .map(|c| {
            let n = c.live.read().map(|l| l.meta.len()).unwrap_or(0);
            (c.def.name.clone(), n)
        })
        .collect();
    Ok(metrics_answer(app.metrics.render(&sizes)))
}

async fn openapi() -> ApiResult {
    Ok(Json(crate::openapi::document()).into_response())
}

async fn snapshot(State(app): State<Arc<App>>) -> ApiResult {
    let dir = blocking(move || Ok(app.service.snapshot()?)).await?;
    Ok(Json(json!({ "snapshot": dir.display().to_string() })).into_response())
}

fn describe_json(c: &Collection) -> Value {
    let live = c.live.read().unwrap_or_else(|e| e.into_inner());
    json!({
        "name": c.def.name,
        "dim": c.def.dim,
        "metric": crate::store::metric_name(c.def.metric),
        "index": c.def.index,
        "description": live.index.description(),
        "ntotal": live.index.ntotal(),
        "items": live.meta.len(),
        "trained": live.index.is_trained(),
        "loaded_from": live.source,
    })
}

async fn list_collections(State(app): State<Arc<App>>) -> ApiResult {
    let all: Vec<Value> = app
        .service
        .list()
        .iter()
        .map(|c| describe_json(c))
        .collect();
    Ok(Json(json!({ "collections": all })).into_response())
}

async fn describe(State(app): State<Arc<App>>, Path(name): Path<String>) -> ApiResult {
    let c = collection(&app, &name)?;
    Ok(Json(describe_json(&c)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    dim: usize,
    #[serde(default = "flat")]
    index: String,
    #[serde(default = "l2")]
    metric: String,
}
fn flat() -> String {
    "Flat".into()
}
fn l2() -> String {
    "l2".into()
}

async fn create(State(app): State<Arc<App>>, Path(name): Path<String>, body: Bytes) -> ApiResult {
    let b: CreateBody = parse(&body)?;
    let metric = match b.metric.as_str() {
        "l2" | "L2" => MetricType::L2,
        "ip" | "IP" | "inner_product" => MetricType::InnerProduct,
        m => return Err(bad(format!("metric {m:?}: expected \"l2\" or \"ip\""))),
    };
    let def = CollectionDef {
        name,
        dim: b.dim,
        metric,
        index: b.index,
    };
    if let Some(why) = app.service.conflict(&def) {
        return Err(ApiError(StatusCode::CONFLICT, why));
    }
    let app2 = app.clone();
    let name = def.name.clone();
    let created = blocking(move || Ok(app2.service.create(def)?)).await?;
    let c = collection(&app, &name)?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(describe_json(&c))).into_response())
}

async fn drop_collection(State(app): State<Arc<App>>, Path(name): Path<String>) -> ApiResult {
    let n = name.clone();
    if blocking(move || Ok(app.service.drop_collection(&n)?)).await? {
        Ok(Json(json!({ "dropped": name })).into_response())
    } else {
        Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no collection {name:?}"),
        ))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    vectors: Option<Vec<Vec<f32>>>,
    texts: Option<Vec<String>>,
    metadata: Option<Vec<Value>>,
}

async fn add_items(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let c = collection(&app, &name)?;
    let b: AddBody = parse(&body)?;
    let (flat, n, texts) = match (b.vectors, b.texts) {
        (Some(v), None) => (rows(&v, c.def.dim, "vector")?, v.len(), None),
        (None, Some(t)) => {
            let n = t.len();
            (embed_for(&app, &c, t.clone()).await?, n, Some(t))
        }
        _ => {
            return Err(bad(
                "the body needs exactly one of \"vectors\": [[…], …] or \"texts\": […]",
            ));
        }
    };
    let mut metadata: Vec<Value> = match b.metadata {
        None => vec![json!({}); n],
        Some(m) if m.len() == n => m,
        Some(m) => {
            return Err(ApiError(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("{} metadata entries for {n} items", m.len()),
            ));
        }
    };
    // Texts are kept with their items unless the metadata says otherwise.
    for (m, t) in metadata.iter_mut().zip(texts.iter().flatten()) {
        if let Value::Object(o) = m {
            o.entry("text").or_insert_with(|| Value::String(t.clone()));
        }
    }
    let metadata: Vec<String> = metadata.iter().map(|v| v.to_string()).collect();
    let warning = app.service.training_warning(&c, n);
    let app2 = app.clone();
    let ids = blocking(move || Ok(app2.service.add(&c, &flat, metadata)?)).await?;
    let mut answer = json!({ "ids": ids });
    if let Some(w) = warning {
        eprintln!("fathom serve: {name}: {w}");
        answer["warnings"] = json!([w]);
    }
    Ok(Json(answer).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteBody {
    ids: Vec<Idx>,
}

async fn delete_items(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let c = collection(&app, &name)?;
    let b: DeleteBody = parse(&body)?;
    let gone = blocking(move || Ok(app.service.delete(&c, &b.ids)?)).await?;
    Ok(Json(json!({ "deleted": gone })).into_response())
}

async fn retrain(State(app): State<Arc<App>>, Path(name): Path<String>) -> ApiResult {
    let c = collection(&app, &name)?;
    let c2 = c.clone();
    let items = c.live.read().map(|l| l.meta.len()).unwrap_or(0);
    eprintln!(
        "fathom serve: retraining {name} ({} on {items} items)…",
        c.def.index
    );
    let t0 = Instant::now();
    let n = blocking(move || Ok(app.service.retrain(&c2)?)).await?;
    eprintln!(
        "fathom serve: retrained {name} in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    Ok(
        Json(json!({ "retrained": name, "ntotal": n, "description": describe_json(&c) }))
            .into_response(),
    )
}

/// The search parameters of a request's `"params"`: `(nprobe, efSearch)`.
pub(crate) fn search_params(
    params: HashMap<String, f64>,
) -> Result<(Option<usize>, Option<usize>), ApiError> {
    let (mut nprobe, mut ef_search) = (None, None);
    for (k, v) in params {
        let count = || -> Result<usize, ApiError> {
            if v >= 1.0 && v.fract() == 0.0 && v <= 1e9 {
                Ok(v as usize)
            } else {
                Err(bad(format!("{k} must be a positive integer, got {v}")))
            }
        };
        match k.as_str() {
            "nprobe" => nprobe = Some(count()?),
            "efSearch" | "ef_search" => ef_search = Some(count()?),
            _ => {
                return Err(bad(format!(
                    "unknown search parameter {k:?}; expected nprobe or efSearch"
                )));
            }
        }
    }
    Ok((nprobe, ef_search))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchBody {
    vector: Option<Vec<f32>>,
    vectors: Option<Vec<Vec<f32>>>,
    text: Option<String>,
    texts: Option<Vec<String>>,
    top_k: Option<usize>,
    min_score: Option<f32>,
    max_distance: Option<f32>,
    params: Option<HashMap<String, f64>>,
    filter_ids: Option<Vec<Idx>>,
    with_metadata: Option<bool>,
}

/// Sets its flag when dropped: a request future dropped because its client went away
/// tells its search on the blocking pool to stop.
struct CancelOnDrop(Arc<AtomicBool>);
impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

async fn search(State(app): State<Arc<App>>, Path(name): Path<String>, body: Bytes) -> ApiResult {
    let c = collection(&app, &name)?;
    let b: SearchBody = parse(&body)?;
    enum Q {
        Vectors(Vec<Vec<f32>>),
        Texts(Vec<String>),
    }
    let (queries, single) = match (b.vector, b.vectors, b.text, b.texts) {
        (Some(v), None, None, None) => (Q::Vectors(vec![v]), true),
        (None, Some(v), None, None) if !v.is_empty() => (Q::Vectors(v), false),
        (None, None, Some(t), None) => (Q::Texts(vec![t]), true),
        (None, None, None, Some(t)) if !t.is_empty() => (Q::Texts(t), false),
        _ => {
            return Err(bad(
                "the body needs exactly one non-empty \"vector\": […], \"vectors\": [[…], …], \
                 \"text\": \"…\" or \"texts\": […]",
            ));
        }
    };
    let max = app.service.config.max_top_k;
    let top_k = b.top_k.unwrap_or(10);
    if top_k == 0 || top_k > max {
        return Err(bad(format!("top_k must be 1..={max}, got {top_k}")));
    }
    let ip = c.def.metric == MetricType::InnerProduct;
    if b.min_score.is_some() && !ip {
        return Err(bad(
            "min_score applies to inner-product collections; use max_distance for l2",
        ));
    }
    if b.max_distance.is_some() && ip {
        return Err(bad(
            "max_distance applies to l2 collections; use min_score for ip",
        ));
    }
    let mut opts = SearchOptions {
        top_k,
        min_score: b.min_score,
        max_distance: b.max_distance,
        filter_ids: b.filter_ids.map(|v| v.into_iter().collect::<HashSet<_>>()),
        without_metadata: b.with_metadata == Some(false),
        ..Default::default()
    };
    (opts.nprobe, opts.ef_search) = search_params(b.params.unwrap_or_default())?;
    let flat = match queries {
        Q::Vectors(v) => rows(&v, c.def.dim, "query")?,
        Q::Texts(t) => embed_for(&app, &c, t).await?,
    };
    let nq = flat.len() / c.def.dim;
    let ntotal = c.live.read().map(|l| l.index.ntotal()).unwrap_or(0);
    let pairs = nq as u64 * ntotal as u64;
    let max_pairs = app.service.config.max_search_pairs;
    if pairs > max_pairs {
        return Err(bad(format!(
            "this search compares {nq} queries with {ntotal} vectors ({pairs} pairs); the \
             limit is {max_pairs} a request (--max-search-pairs): send fewer queries at once"
        )));
    }
    let app2 = app.clone();
    let _slot = app.search_slots.acquire().await.map_err(|e| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("shutting down: {e}"),
        )
    })?;
    let gone = Arc::new(AtomicBool::new(false));
    let _cancel = CancelOnDrop(gone.clone());
    let app3 = app.clone();
    let hits = blocking(move || {
        let go_on = || !gone.load(Ordering::SeqCst) && !app3.service.is_stopping();
        c.search_while(&flat, &opts, &go_on).map_err(|e| match e {
            Error::InvalidArgument(m) if m == CANCELLED => {
                app3.metrics.search_cancelled();
                ApiError(StatusCode::SERVICE_UNAVAILABLE, m)
            }
            e => e.into(),
        })
    })
    .await?;
    app2.metrics.searched(nq);
    let results = if single {
        json!(hits.into_iter().next().unwrap_or_default())
    } else {
        json!(hits)
    };
    Ok(Json(json!({ "results": results })).into_response())
}
