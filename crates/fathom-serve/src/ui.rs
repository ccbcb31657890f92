//! `/` and `/ui`: the search page — pick a collection, search by text, by an uploaded
//! image (drag and drop or a file picker) or by an item already stored, see results as a
//! grid of thumbnails with scores and metadata, tune `nprobe` / `efSearch`, add images by
//! upload, and read the collection's figures from `/health`. One self-contained HTML file
//! (`ui.html`, embedded with `include_str!`): no CDN, no external script, style or font,
//! so it works offline; keyboard accessible (every control is a native control).

use axum::response::Response;

/// The page.
pub const HTML: &str = include_str!("ui.html");

/// The page's Content-Security-Policy: its own inline script and style, requests to this
/// server only, images from this server and the `blob:`/`data:` URLs the script makes.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
    style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data: blob:; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `GET /` and `GET /ui`: the search page ([`HTML`]).
pub async fn page() -> Response {
    crate::docs_page::html_page(HTML, CONTENT_SECURITY_POLICY)
}
