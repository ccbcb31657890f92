//! `GET /collections/{name}/items/{id}/thumbnail?size=N`: a JPEG of the image an item's
//! `"path"` names, at most `N` pixels a side (default 160, at most 512), for the web page's
//! result grid.
//!
//! Only files inside the server's image roots (`--image-root`, [`ServeConfig::image_roots`])
//! are read: the path is resolved (links, `..`) first and must then lie inside a resolved
//! root, so an item whose metadata names `/etc/passwd` or `../../secret` gets 403, never
//! the file.
//!
//! [`ServeConfig::image_roots`]: crate::ServeConfig::image_roots

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::Value;

use crate::api::{ApiError, ApiResult, App, bad, blocking, collection};
use crate::store::ItemId;

/// Largest thumbnail side served.
const MAX_SIZE: u32 = 512;
/// Largest image file read.
#[cfg(feature = "image")]
const MAX_FILE_BYTES: u64 = 64 << 20;

#[derive(Deserialize)]
pub(crate) struct ThumbQuery {
    size: Option<u32>,
}

/// The file `path` resolved, when it lies inside one of `roots` (resolved too).
fn inside_roots(path: &Path, roots: &[PathBuf]) -> Option<PathBuf> {
    let real = path.canonicalize().ok()?;
    roots
        .iter()
        .filter_map(|r| r.canonicalize().ok())
        .any(|r| real.starts_with(&r))
        .then_some(real)
}

pub(crate) async fn thumbnail(
    State(app): State<Arc<App>>,
    UrlPath((name, id)): UrlPath<(String, String)>,
    Query(q): Query<ThumbQuery>,
) -> ApiResult {
    let size = q.size.unwrap_or(160);
    if size == 0 || size > MAX_SIZE {
        return Err(bad(format!("size must be 1..={MAX_SIZE}, got {size}")));
    }
    let c = collection(&app, &name)?;
    let key = ItemId::from_path(&id).map_err(bad)?;
    let roots = app.service.config.image_roots.clone();
    let app2 = app.clone();
    let jpeg = blocking(move || {
        let mut found = app2
            .service
            .get_items(&c, std::slice::from_ref(&key), false)?;
        let Some(item) = found.pop() else {
            return Ok(Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("collection {name:?} has no item with id {key}"),
            )));
        };
        let meta: Value = serde_json::from_str(&item.metadata).unwrap_or(Value::Null);
        let Some(path) = meta["path"].as_str() else {
            return Ok(Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("item {key} has no \"path\" in its metadata"),
            )));
        };
        let Some(real) = inside_roots(Path::new(path), &roots) else {
            return Ok(Err(ApiError(
                StatusCode::FORBIDDEN,
                format!(
                    "item {key}'s image is not inside the server's image roots (start the \
                     server with --image-root DIR to serve a folder)"
                ),
            )));
        };
        Ok(render(&real, size))
    })
    .await??;
    let mut resp = jpeg.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=300"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(resp)
}

/// The JPEG thumbnail of the image file at `path`.
#[cfg(feature = "image")]
fn render(path: &Path, size: u32) -> Result<Vec<u8>, ApiError> {
    let unreadable = |e: String| ApiError(StatusCode::UNPROCESSABLE_ENTITY, e);
    let len = std::fs::metadata(path)
        .map_err(|e| unreadable(e.to_string()))?
        .len();
    if len > MAX_FILE_BYTES {
        return Err(unreadable(format!(
            "the image file is {len} bytes; thumbnails read at most {MAX_FILE_BYTES}"
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| unreadable(e.to_string()))?;
    let img = crate::image_input::decode(&bytes, &crate::image_input::DecodeLimits::default())
        .map_err(|e| unreadable(e.to_string()))?;
    let thumb = img.thumbnail(size, size).to_rgb8();
    let mut out = std::io::Cursor::new(Vec::new());
    thumb
        .write_to(&mut out, image::ImageFormat::Jpeg)
        .map_err(|e| unreadable(e.to_string()))?;
    Ok(out.into_inner())
}

#[cfg(not(feature = "image"))]
fn render(_: &Path, _: u32) -> Result<Vec<u8>, ApiError> {
    Err(ApiError(
        StatusCode::NOT_IMPLEMENTED,
        "thumbnails need a fathom built with the `image` feature".into(),
    ))
}
