//! What the service's HTTP tests share.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use fathom_serve::api::{App, router};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// One request through the router in process: the status and the body as JSON (or as a
/// string when it is not JSON).
pub async fn call(
    app: &Arc<App>,
    method: &str,
    uri: &str,
    body: impl Into<Body>,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap();
    let resp = router(app.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, v)
}
