//! The HTTP JSON API (axum). Bodies are parsed here rather than by axum's `Json` so every
//! malformed body gets the same 400 with serde's message; CPU-bound work (search, adds,
//! retraining, snapshots) runs on the blocking pool, off the async workers.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use fathom_core::{Error, Idx};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::cache::ResultCache;
use crate::collection::{CANCELLED, Collection, SearchOptions};
use crate::filter::Filter;
use crate::lane::{self, Refusal, Traffic};
use crate::metrics::Metrics;
use crate::service::{Service, StoredItem};
use crate::store::{CollectionDef, ItemId, Metric};

/// What the handlers share.
pub struct App {
    /// The service.
    pub service: Service,
    /// Its metrics.
    pub metrics: Arc<Metrics>,
    /// Search admission, batching and degradation, and the search slots (one per core:
    /// more would only share the cores and lengthen every search).
    pub traffic: Arc<Traffic>,
    /// Recent search answers.
    pub cache: ResultCache,
    /// API keys, when the server requires them.
    pub keys: Option<Arc<crate::auth::KeyStore>>,
    /// The one origin browsers may call from (CORS), when allowed.
    pub cors_origin: Option<Arc<HeaderValue>>,
    /// The text model, when the server has one: `"text"` queries and `"texts"` items.
    pub embedder: Option<Arc<dyn crate::embed::Embedder>>,
    /// The image model, when the server has one: `"image"` queries and `"images"` items
    /// (base64 or data URLs).
    pub image_embedder: Option<Arc<dyn crate::embed::ImageEmbedder>>,
    /// The image model's text tower (CLIP), when it has one: `"text"` queries and
    /// `"texts"` items for collections of the image model's dimension.
    pub image_text_embedder: Option<Arc<dyn crate::embed::Embedder>>,
}

impl App {
    /// The text encoder for collection `c`: of the text model and the image model's text
    /// tower, the first that makes vectors of the collection's dimension (the text model
    /// where both do); 400 when the server has neither, 422 when neither fits.
    fn text_encoder_for(
        &self,
        c: &Collection,
    ) -> Result<Arc<dyn crate::embed::Embedder>, ApiError> {
        let encoders: Vec<_> = [&self.embedder, &self.image_text_embedder]
            .into_iter()
            .flatten()
            .collect();
        let Some(first) = encoders.first() else {
            return Err(bad(
                "text needs a text model, and this server has none (start it with --model DIR, \
                 or --image-model with a CLIP model); send vectors",
            ));
        };
        let fits = encoders
            .iter()
            .find(|e| e.dim() == c.def.dim)
            .unwrap_or(first);
        Ok(Arc::clone(fits))
    }
}

/// What a request did, for its log line and metrics: set by handlers as a response
/// extension.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The collection it addressed.
    pub collection: Option<String>,
    /// Query vectors searched, or items written.
    pub queries: usize,
    /// `top_k` of a search.
    pub k: usize,
    /// `hit` or `miss` for a cached search.
    pub cache: Option<&'static str>,
    /// The search ran degraded.
    pub degraded: bool,
}

fn with_facts(mut resp: Response, facts: Facts) -> Response {
    resp.extensions_mut().insert(facts);
    resp
}

/// Embeds `texts` for collection `c` on the blocking pool; 400 without a model, 422 when
/// the model's dimension is not the collection's.
async fn embed_for(
    app: &Arc<App>,
    c: &Collection,
    texts: Vec<String>,
) -> Result<Vec<f32>, ApiError> {
    let e = app.text_encoder_for(c)?;
    model_fits(c, ("text", "texts"), e.name(), e.dim(), texts.len())?;
    blocking(move || Ok(e.embed(&texts)?)).await
}

/// Whether a model (`kind` names it and its inputs) can serve collection `c` with `n`
/// inputs: 422 when its dimension is not the collection's, 400 for no inputs.
fn model_fits(
    c: &Collection,
    (kind, inputs): (&str, &str),
    name: String,
    dim: usize,
    n: usize,
) -> Result<(), ApiError> {
    if dim != c.def.dim {
        return Err(ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "the {kind} model {name} makes {dim}-d vectors; the collection expects {} \
                 (a collection made for another model)",
                c.def.dim
            ),
        ));
    }
    if n == 0 {
        return Err(bad(format!("no {inputs} given")));
    }
    Ok(())
}

/// Embeds base64 `images` for collection `c` on the blocking pool; 400 without a model
/// or for an image that is not base64 or cannot be decoded (the message names which),
/// 422 when the model's dimension is not the collection's.
async fn embed_images_for(
    app: &Arc<App>,
    c: &Collection,
    images: Vec<String>,
) -> Result<Vec<f32>, ApiError> {
    let Some(e) = app.image_embedder.clone() else {
        return Err(bad(
            "images need an image model, and this server has none (start it with \
             --image-model DIR); send vectors",
        ));
    };
    model_fits(c, ("image", "images"), e.name(), e.dim(), images.len())?;
    let bytes = images
        .iter()
        .enumerate()
        .map(|(i, b)| crate::embed::decode_base64(b).map_err(|e| bad(format!("image {i}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    blocking(move || {
        let refs: Vec<&[u8]> = bytes.iter().map(|b| &b[..]).collect();
        Ok(e.embed_images(&refs)?)
    })
    .await
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
            Error::InvalidArgument(m) if m == CANCELLED => StatusCode::SERVICE_UNAVAILABLE,
            Error::InvalidArgument(_) | Error::Unsupported(_) => StatusCode::BAD_REQUEST,
            Error::NotTrained(_) => StatusCode::CONFLICT,
            Error::IdNotFound(_) => StatusCode::NOT_FOUND,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, e.to_string())
    }
}

pub(crate) type ApiResult = Result<Response, ApiError>;

pub(crate) fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

/// A request body as JSON: JSON as sent, or a `multipart/form-data` upload turned into
/// the same JSON — file fields named `image` (a query) or `images` (items, repeatable)
/// become base64 strings, other fields their JSON value (or the text, when it is not
/// JSON): `curl -F image=@cat.jpg -F top_k=5 …/search`.
pub(crate) struct JsonOrForm(pub Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for JsonOrForm {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("multipart/form-data"));
        if !form {
            return Bytes::from_request(req, state)
                .await
                .map(JsonOrForm)
                .map_err(|e| ApiError(e.status(), e.body_text()));
        }
        let mut parts = axum::extract::Multipart::from_request(req, state)
            .await
            .map_err(|e| ApiError(e.status(), e.body_text()))?;
        let malformed = |e: axum::extract::multipart::MultipartError| {
            ApiError(
                e.status(),
                format!("malformed multipart body: {}", e.body_text()),
            )
        };
        let mut body = serde_json::Map::new();
        while let Some(field) = parts.next_field().await.map_err(malformed)? {
            let name = field.name().unwrap_or_default().to_string();
            let is_file = field.file_name().is_some();
            let data = field.bytes().await.map_err(malformed)?;
            match (name.as_str(), is_file) {
                ("image", true) => {
                    body.insert(name, json!(crate::embed::encode_base64(&data)));
                }
                ("images", true) => {
                    let list = body.entry("images").or_insert_with(|| json!([]));
                    if let Value::Array(a) = list {
                        a.push(json!(crate::embed::encode_base64(&data)));
                    }
                }
                (_, true) => {
                    return Err(bad(format!(
                        "file field {name:?}: upload files as \"image\" (a query) or \
                         \"images\" (items)"
                    )));
                }
                _ => {
                    let text = String::from_utf8(data.to_vec())
                        .map_err(|_| bad(format!("field {name:?} is not UTF-8 text")))?;
                    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
                    body.insert(name, value);
                }
            }
        }
        Ok(JsonOrForm(Bytes::from(Value::Object(body).to_string())))
    }
}

pub(crate) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| bad(format!("malformed JSON body: {e}")))
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("worker failed: {e}"),
        )
    })?
}

pub(crate) fn collection(app: &App, name: &str) -> Result<Arc<Collection>, ApiError> {
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

/// The router over `app`: the API, then (outermost first) request metrics and logs, CORS
/// when an origin is allowed, API keys when required, JSON errors and the body limit.
pub fn router(app: Arc<App>) -> Router {
    let limit = app.service.config.max_body_bytes;
    let mut r = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/docs", get(crate::docs_page::docs))
        .route("/", get(crate::ui::page))
        .route("/ui", get(crate::ui::page))
        .route("/snapshot", post(snapshot))
        .route("/collections", get(list_collections))
        .route(
            "/collections/{name}",
            get(describe).put(create).delete(drop_collection),
        )
        .route(
            "/collections/{name}/items",
            post(add_items)
                .put(upsert_items)
                .delete(delete_items)
                .get(list_items_query),
        )
        .route("/collections/{name}/items/get", post(get_items))
        .route("/collections/{name}/items/list", post(list_items_body))
        .route("/collections/{name}/items/{id}", get(get_item))
        .route(
            "/collections/{name}/items/{id}/thumbnail",
            get(crate::thumbnail::thumbnail),
        )
        .route("/collections/{name}/search", post(search))
        .route("/collections/{name}/retrain", post(retrain))
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such route".into()) })
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(limit, json_errors));
    if let Some(keys) = &app.keys {
        r = r.layer(middleware::from_fn_with_state(
            keys.clone(),
            crate::auth::authorize,
        ));
    }
    if let Some(origin) = &app.cors_origin {
        r = r.layer(middleware::from_fn_with_state(
            origin.clone(),
            crate::cors::cors,
        ));
    }
    r.layer(middleware::from_fn_with_state(app.metrics.clone(), track))
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
        facts: Option<Facts>,
    }
    impl Drop for InFlight<'_> {
        fn drop(&mut self) {
            let secs = self.t0.elapsed().as_secs_f64();
            self.metrics
                .end(&self.route, &self.method, self.status, secs);
            crate::log::request(
                &self.route,
                &self.method,
                self.status,
                secs,
                &self.facts.take().unwrap_or_default(),
            );
        }
    }
    metrics.begin();
    let mut in_flight = InFlight {
        metrics: &metrics,
        route,
        method,
        status: 499,
        t0: Instant::now(),
        facts: None,
    };
    let resp = next.run(req).await;
    in_flight.status = resp.status().as_u16();
    in_flight.facts = resp.extensions().get::<Facts>().cloned();
    resp
}

async fn health(State(app): State<Arc<App>>) -> ApiResult {
    let app2 = app.clone();
    let mut h = blocking(move || Ok(app2.service.health())).await?;
    h["text_model"] = app
        .embedder
        .as_ref()
        .map_or(Value::Null, |e| json!(e.name()));
    h["image_model"] = app
        .image_embedder
        .as_ref()
        .map_or(Value::Null, |e| json!(e.name()));
    h["image_model_embeds_text"] = json!(app.image_text_embedder.is_some());
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
    let cols = app.service.list();
    let sizes: Vec<(String, usize)> = cols
        .iter()
        .map(|c| {
            let n = c.live.read().map(|l| l.items.len()).unwrap_or(0);
            (c.def.name.clone(), n)
        })
        .collect();
    let t = &app.traffic;
    let mut extra = String::new();
    use crate::metrics::{counter, gauge};
    let counters: [(&str, &str, u64); 6] = [
        (
            "fathom_search_shed",
            "Searches refused at once (queue full or deadline unreachable): HTTP 503 with Retry-After",
            t.shed.load(Ordering::Relaxed),
        ),
        (
            "fathom_search_degraded",
            "Searches run with lowered nprobe/efSearch under pressure (--degrade)",
            t.degraded.load(Ordering::Relaxed),
        ),
        (
            "fathom_search_batches",
            "Batched searches run (concurrent single-vector searches gathered into one)",
            t.batches.load(Ordering::Relaxed),
        ),
        (
            "fathom_search_batched_queries",
            "Queries answered through batches",
            t.batched_queries.load(Ordering::Relaxed),
        ),
        (
            "fathom_cache_hits",
            "Searches answered from the result cache",
            app.cache.hits(),
        ),
        (
            "fathom_cache_misses",
            "Searches the result cache could not answer",
            app.cache.misses(),
        ),
    ];
    for (name, help, value) in counters {
        counter(&mut extra, name, help, value);
    }
    gauge(
        &mut extra,
        "fathom_cache_bytes",
        "Bytes held by the result cache",
        &[(String::new(), app.cache.usage().0 as u64)],
    );
    let queues: Vec<(String, u64)> = cols
        .iter()
        .map(|c| {
            (
                format!("collection=\"{}\"", c.def.name),
                c.lane.queued() as u64,
            )
        })
        .collect();
    gauge(
        &mut extra,
        "fathom_search_queue",
        "Queries admitted and not yet answered, per collection",
        &queues,
    );
    crate::process::render_process_metrics(&mut extra);
    let text = crate::process::append_before_eof(app.metrics.render(&sizes), &extra);
    Ok(metrics_answer(text))
}

async fn openapi(State(app): State<Arc<App>>) -> ApiResult {
    let limits = crate::openapi::Limits {
        max_top_k: app.service.config.max_top_k,
        texts: app.embedder.is_some() || app.image_text_embedder.is_some(),
        images: app.image_embedder.is_some(),
    };
    Ok(Json(crate::openapi::document(limits)).into_response())
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
        "metric": c.def.metric.name(),
        "index": c.def.index,
        "description": live.index.description(),
        "ntotal": live.index.ntotal(),
        "items": live.items.len(),
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
    /// Left out or null: `Flat`.
    index: Option<String>,
    /// Left out or null: `l2`.
    metric: Option<String>,
}

async fn create(State(app): State<Arc<App>>, Path(name): Path<String>, body: Bytes) -> ApiResult {
    let b: CreateBody = parse(&body)?;
    let metric = Metric::parse(b.metric.as_deref().unwrap_or("l2"))?;
    let def = CollectionDef {
        name,
        dim: b.dim,
        metric,
        index: b.index.unwrap_or_else(|| "Flat".into()),
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
    ids: Option<Vec<ItemId>>,
    #[serde(default, deserialize_with = "crate::json_f32::vectors")]
    vectors: Option<Vec<Vec<f32>>>,
    texts: Option<Vec<String>>,
    images: Option<Vec<String>>,
    metadata: Option<Vec<Value>>,
}

/// The vectors (embedded when texts), metadata (JSON text) and ids of an add or upsert.
async fn items_of_body(
    app: &Arc<App>,
    c: &Collection,
    b: AddBody,
) -> Result<(Vec<f32>, Vec<String>, Option<Vec<ItemId>>), ApiError> {
    let (flat, n, texts) = match (b.vectors, b.texts, b.images) {
        (Some(v), None, None) => (rows(&v, c.def.dim, "vector")?, v.len(), None),
        (None, Some(t), None) => {
            let n = t.len();
            (embed_for(app, c, t.clone()).await?, n, Some(t))
        }
        (None, None, Some(i)) => {
            let n = i.len();
            (embed_images_for(app, c, i).await?, n, None)
        }
        _ => {
            return Err(bad(
                "the body needs exactly one of \"vectors\": [[…], …], \"texts\": […] or \
                 \"images\": [\"<base64>\", …]",
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
    if let Some((i, m)) = metadata.iter().enumerate().find(|(_, m)| !m.is_object()) {
        return Err(bad(format!(
            "metadata {i} is {m}; each item's metadata is a JSON object"
        )));
    }
    if let Some(ids) = &b.ids
        && ids.len() != n
    {
        return Err(ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{} ids for {n} items", ids.len()),
        ));
    }
    // Texts are kept with their items unless the metadata says otherwise.
    for (m, t) in metadata.iter_mut().zip(texts.iter().flatten()) {
        if let Value::Object(o) = m {
            o.entry("text").or_insert_with(|| Value::String(t.clone()));
        }
    }
    let metadata: Vec<String> = metadata.iter().map(|v| v.to_string()).collect();
    Ok((flat, metadata, b.ids))
}

fn facts_for(c: &Collection, queries: usize) -> Facts {
    Facts {
        collection: Some(c.def.name.clone()),
        queries,
        ..Default::default()
    }
}

async fn add_items(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    JsonOrForm(body): JsonOrForm,
) -> ApiResult {
    write_items(app, name, body, false).await
}

async fn upsert_items(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    JsonOrForm(body): JsonOrForm,
) -> ApiResult {
    write_items(app, name, body, true).await
}

/// POST (add; ids optional, existing ids are a conflict) and PUT (upsert; ids required).
async fn write_items(app: Arc<App>, name: String, body: Bytes, upsert: bool) -> ApiResult {
    let c = collection(&app, &name)?;
    let b: AddBody = parse(&body)?;
    let (flat, metadata, ids) = items_of_body(&app, &c, b).await?;
    match &ids {
        None if upsert => {
            return Err(bad(
                "an upsert needs \"ids\": one per item (POST adds items without ids)",
            ));
        }
        Some(ids) if !upsert => {
            let live = c.live.read().unwrap_or_else(|e| e.into_inner());
            let taken: Vec<&ItemId> = ids
                .iter()
                .filter(|k| live.keys.contains_key(*k))
                .take(10)
                .collect();
            if !taken.is_empty() {
                return Err(ApiError(
                    StatusCode::CONFLICT,
                    format!(
                        "items with ids {} exist already; PUT /collections/{name}/items \
                         replaces them",
                        serde_json::to_string(&taken).unwrap_or_default()
                    ),
                ));
            }
        }
        _ => {}
    }
    let n = metadata.len();
    let warning = app.service.training_warning(&c, n);
    let app2 = app.clone();
    let c2 = c.clone();
    let ids = blocking(move || {
        Ok(match ids {
            Some(ids) if upsert => app2.service.upsert(&c2, &flat, metadata, ids)?,
            ids => app2.service.add_with_ids(&c2, &flat, metadata, ids)?,
        })
    })
    .await?;
    let mut answer = json!({ "ids": ids });
    if let Some(w) = warning {
        tracing::warn!(collection = %name, "{w}");
        answer["warnings"] = json!([w]);
    }
    Ok(with_facts(Json(answer).into_response(), facts_for(&c, n)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteBody {
    ids: Option<Vec<ItemId>>,
    filter: Option<Value>,
}

/// A filter of a request body; 400 with the parser's message when it is not one.
fn filter_of(v: Option<&Value>) -> Result<Option<Filter>, ApiError> {
    v.map(|v| crate::filter::parse(v).map_err(|e| bad(format!("filter: {e}"))))
        .transpose()
}

async fn delete_items(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let c = collection(&app, &name)?;
    let b: DeleteBody = parse(&body)?;
    let c2 = c.clone();
    let gone: Vec<ItemId> = match (b.ids, filter_of(b.filter.as_ref())?) {
        (Some(ids), None) => {
            let ids: Vec<ItemId> = ids;
            blocking(move || Ok(app.service.delete_keys(&c2, &ids)?)).await?
        }
        (None, Some(f)) => blocking(move || Ok(app.service.delete_matching(&c2, &f)?)).await?,
        _ => {
            return Err(bad(
                "the body needs exactly one of \"ids\": […] or \"filter\": {…}",
            ));
        }
    };
    let n = gone.len();
    Ok(with_facts(
        Json(json!({ "deleted": gone })).into_response(),
        facts_for(&c, n),
    ))
}

fn item_json(it: StoredItem) -> Value {
    let mut v = json!({
        "id": it.id,
        "metadata": serde_json::from_str::<Value>(&it.metadata).unwrap_or(Value::Null),
    });
    if let Some(vec) = it.vector {
        v["vector"] = json!(vec);
    }
    v
}

async fn get_item(
    State(app): State<Arc<App>>,
    Path((name, id)): Path<(String, String)>,
) -> ApiResult {
    let c = collection(&app, &name)?;
    let key = ItemId::from_path(&id).map_err(bad)?;
    let c2 = c.clone();
    let k2 = key.clone();
    let mut found = blocking(move || {
        Ok(app
            .service
            .get_items(&c2, std::slice::from_ref(&k2), true)?)
    })
    .await?;
    match found.pop() {
        Some(it) => Ok(with_facts(
            Json(item_json(it)).into_response(),
            facts_for(&c, 1),
        )),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("collection {name:?} has no item with id {key}"),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GetBody {
    ids: Vec<ItemId>,
    with_vectors: Option<bool>,
}

/// Most ids of one `items/get`, and most items of one page.
pub(crate) const MAX_ITEMS_PER_REQUEST: usize = 10_000;

async fn get_items(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let c = collection(&app, &name)?;
    let b: GetBody = parse(&body)?;
    if b.ids.len() > MAX_ITEMS_PER_REQUEST {
        return Err(bad(format!(
            "{} ids; at most {MAX_ITEMS_PER_REQUEST} a request",
            b.ids.len()
        )));
    }
    let c2 = c.clone();
    let ids = b.ids.clone();
    let found = blocking(move || {
        Ok(app
            .service
            .get_items(&c2, &ids, b.with_vectors.unwrap_or(true))?)
    })
    .await?;
    let have: HashSet<&ItemId> = found.iter().map(|it| &it.id).collect();
    let missing: Vec<&ItemId> = b.ids.iter().filter(|k| !have.contains(k)).collect();
    let missing = json!(missing);
    let n = found.len();
    let items: Vec<Value> = found.into_iter().map(item_json).collect();
    Ok(with_facts(
        Json(json!({ "items": items, "missing": missing })).into_response(),
        facts_for(&c, n),
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ListBody {
    filter: Option<Value>,
    limit: Option<usize>,
    offset: Option<usize>,
    cursor: Option<String>,
    with_vectors: Option<bool>,
}

async fn list_items_query(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    Query(q): Query<ListBody>,
) -> ApiResult {
    if q.filter.is_some() {
        return Err(bad(
            "filters go in the body of POST /collections/{name}/items/list",
        ));
    }
    list_items(app, name, q).await
}

async fn list_items_body(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let b: ListBody = if body.is_empty() {
        ListBody::default()
    } else {
        parse(&body)?
    };
    list_items(app, name, b).await
}

async fn list_items(app: Arc<App>, name: String, b: ListBody) -> ApiResult {
    let c = collection(&app, &name)?;
    let limit = b.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_ITEMS_PER_REQUEST {
        return Err(bad(format!(
            "limit must be 1..={MAX_ITEMS_PER_REQUEST}, got {limit}"
        )));
    }
    let cursor = match &b.cursor {
        None => 0,
        Some(s) => s.parse::<u64>().map_err(|_| {
            bad(format!(
                "cursor {s:?} is not one this server gave (\"next_cursor\" of a page)"
            ))
        })?,
    };
    let filter = filter_of(b.filter.as_ref())?;
    let c2 = c.clone();
    let (items, next) = blocking(move || {
        Ok(app.service.list_items(
            &c2,
            filter.as_ref(),
            cursor,
            b.offset.unwrap_or(0),
            limit,
            b.with_vectors.unwrap_or(false),
        )?)
    })
    .await?;
    let n = items.len();
    let items: Vec<Value> = items.into_iter().map(item_json).collect();
    Ok(with_facts(
        Json(json!({ "items": items, "next_cursor": next.map(|n| n.to_string()) })).into_response(),
        facts_for(&c, n),
    ))
}

async fn retrain(State(app): State<Arc<App>>, Path(name): Path<String>) -> ApiResult {
    let c = collection(&app, &name)?;
    let c2 = c.clone();
    let items = c.live.read().map(|l| l.items.len()).unwrap_or(0);
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
    #[serde(default, deserialize_with = "crate::json_f32::vector")]
    vector: Option<Vec<f32>>,
    #[serde(default, deserialize_with = "crate::json_f32::vectors")]
    vectors: Option<Vec<Vec<f32>>>,
    text: Option<String>,
    texts: Option<Vec<String>>,
    image: Option<String>,
    images: Option<Vec<String>>,
    top_k: Option<usize>,
    #[serde(default, deserialize_with = "crate::json_f32::scalar")]
    min_score: Option<f32>,
    #[serde(default, deserialize_with = "crate::json_f32::scalar")]
    max_distance: Option<f32>,
    params: Option<HashMap<String, f64>>,
    filter: Option<Value>,
    filter_ids: Option<Vec<ItemId>>,
    with_metadata: Option<bool>,
    deadline_ms: Option<u64>,
    exact: Option<bool>,
}

/// Sets its flag when dropped: a request future dropped because its client went away
/// tells its search on the blocking pool to stop.
struct CancelOnDrop(Arc<AtomicBool>);
impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// The answer to a search that got none: 503 with `Retry-After` when shed, the error's
/// status otherwise.
fn refusal(r: Refusal) -> ApiResult {
    match r {
        Refusal::Shed { retry_after_s, why } => {
            let mut resp = ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{why}; retry after {retry_after_s} s"),
            )
            .into_response();
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
            Ok(resp)
        }
        Refusal::Failed(e) => Err(e.into()),
    }
}

/// The result cache's key of a search: everything its answer depends on, the
/// collection's generation included.
fn cache_key(
    c: &Collection,
    generation: u64,
    b: &SearchBody,
    opts: &SearchOptions,
    single: bool,
    queries: &[f32],
) -> Vec<u8> {
    let mut k = Vec::with_capacity(64 + queries.len() * 4);
    k.extend_from_slice(c.def.name.as_bytes());
    k.push(0);
    k.extend_from_slice(&generation.to_le_bytes());
    let shape = json!([
        opts.top_k,
        opts.nprobe,
        opts.ef_search,
        b.min_score,
        b.max_distance,
        b.filter,
        b.filter_ids,
        opts.without_metadata,
        single,
        b.exact
    ]);
    k.extend_from_slice(shape.to_string().as_bytes());
    k.push(0);
    for x in queries {
        k.extend_from_slice(&x.to_le_bytes());
    }
    k
}

async fn search(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    JsonOrForm(body): JsonOrForm,
) -> ApiResult {
    let c = collection(&app, &name)?;
    let b: SearchBody = parse(&body)?;
    let deadline = Instant::now()
        + b.deadline_ms
            .map_or(app.traffic.config.deadline, Duration::from_millis);
    let given = [
        b.vector.is_some(),
        b.vectors.is_some(),
        b.text.is_some(),
        b.texts.is_some(),
        b.image.is_some(),
        b.images.is_some(),
    ];
    let (queries, single) = match (&b, given.iter().filter(|g| **g).count()) {
        (
            SearchBody {
                vector: Some(v), ..
            },
            1,
        ) => (Q::Vectors(vec![v.clone()]), true),
        (
            SearchBody {
                vectors: Some(v), ..
            },
            1,
        ) if !v.is_empty() => (Q::Vectors(v.clone()), false),
        (SearchBody { text: Some(t), .. }, 1) => (Q::Texts(vec![t.clone()]), true),
        (SearchBody { texts: Some(t), .. }, 1) if !t.is_empty() => (Q::Texts(t.clone()), false),
        (SearchBody { image: Some(i), .. }, 1) => (Q::Images(vec![i.clone()]), true),
        (
            SearchBody {
                images: Some(i), ..
            },
            1,
        ) if !i.is_empty() => (Q::Images(i.clone()), false),
        _ => {
            return Err(bad(
                "the body needs exactly one non-empty \"vector\": […], \"vectors\": [[…], …], \
                 \"text\": \"…\", \"texts\": […], \"image\": \"<base64>\" or \"images\": […]",
            ));
        }
    };
    let max = app.service.config.max_top_k;
    let top_k = b.top_k.unwrap_or(10);
    if top_k == 0 || top_k > max {
        return Err(bad(format!("top_k must be 1..={max}, got {top_k}")));
    }
    let similarity = c.def.metric.is_similarity();
    if b.min_score.is_some() && !similarity {
        return Err(bad(
            "min_score applies to ip and cosine collections; use max_distance for l2",
        ));
    }
    if b.max_distance.is_some() && similarity {
        return Err(bad(
            "max_distance applies to l2 collections; use min_score for ip and cosine",
        ));
    }
    let filter = filter_of(b.filter.as_ref())?.map(Arc::new);
    let filter_ids = b.filter_ids.as_ref().map(|keys| {
        let live = c.live.read().unwrap_or_else(|e| e.into_inner());
        keys.iter()
            .filter_map(|k| live.keys.get(k).copied())
            .collect::<HashSet<Idx>>()
    });
    let mut opts = SearchOptions {
        top_k,
        min_score: b.min_score,
        max_distance: b.max_distance,
        filter_ids,
        filter,
        without_metadata: b.with_metadata == Some(false),
        ..Default::default()
    };
    (opts.nprobe, opts.ef_search) = search_params(b.params.clone().unwrap_or_default())?;
    let exact = b.exact == Some(true);
    if exact && b.params.as_ref().is_some_and(|p| !p.is_empty()) {
        return Err(bad(
            "an exact search scans every stored vector; nprobe and efSearch do not apply \
             (leave out \"params\" or \"exact\")",
        ));
    }
    let flat = match queries {
        Q::Vectors(v) => rows(&v, c.def.dim, "query")?,
        Q::Texts(t) => embed_for(&app, &c, t).await?,
        Q::Images(i) => embed_images_for(&app, &c, i).await?,
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
    let mut facts = Facts {
        collection: Some(name.clone()),
        queries: nq,
        k: top_k,
        ..Default::default()
    };
    // The generation is read before the search: an answer is never filed under a newer
    // state than the one it saw.
    let generation = c.generation();
    let key = app
        .cache
        .enabled()
        .then(|| cache_key(&c, generation, &b, &opts, single, &flat));
    if let Some(hit) = key.as_ref().and_then(|k| app.cache.get(k)) {
        facts.cache = Some("hit");
        app.metrics.searched(nq);
        let resp = ([(header::CONTENT_TYPE, "application/json")], hit).into_response();
        return Ok(with_facts(resp, facts));
    }
    let ticket = match c.lane.admit(&app.traffic, nq, deadline) {
        Ok(t) => t,
        Err(r) => return refusal(r),
    };
    if ticket.degraded && !exact {
        lane::degrade(&c, &mut opts);
        facts.degraded = true;
    }
    let gone = Arc::new(AtomicBool::new(false));
    let _cancel = CancelOnDrop(gone.clone());
    let app3 = app.clone();
    // Called until it says no, which a search hears between chunks and stops.
    let go_on = move || {
        let stop = gone.load(Ordering::SeqCst) || app3.service.is_stopping();
        if stop {
            app3.metrics.search_cancelled();
        }
        !stop
    };
    let searched = if exact {
        let (app3, c3) = (app.clone(), c.clone());
        let work = move || app3.service.exact_search(&c3, &flat, &opts, &go_on);
        lane::on_search_slot(&c, &app.traffic, nq, deadline, work).await
    } else if lane::batchable(&app.traffic, nq, &opts) {
        lane::search_one(&c, &app.traffic, flat, opts, deadline)
            .await
            .map(|one| vec![one])
    } else {
        lane::search_many(c.clone(), &app.traffic, flat, opts, deadline, go_on).await
    };
    let hits = match searched {
        Ok(h) => h,
        Err(r) => return refusal(r).map(|resp| with_facts(resp, facts)),
    };
    drop(ticket);
    app.metrics.searched(nq);
    let results = if single {
        json!(hits.into_iter().next().unwrap_or_default())
    } else {
        json!(hits)
    };
    let mut answer = json!({ "results": results });
    if facts.degraded {
        answer["degraded"] = json!(true);
    }
    let body = Bytes::from(answer.to_string());
    if let Some(k) = key
        && !facts.degraded
    {
        facts.cache = Some("miss");
        app.cache.put(k, body.clone());
    }
    let resp = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    Ok(with_facts(resp, facts))
}

enum Q {
    Vectors(Vec<Vec<f32>>),
    Texts(Vec<String>),
    /// Base64 images.
    Images(Vec<String>),
}
