//! `/docs`: a self-contained HTML page (no CDN, no external script, style or font, so it
//! works on a machine without internet access) that reads `/openapi.json` and lists the
//! routes grouped by tag (or by first path segment): method, path, summary, parameters,
//! request body schema and example, responses, and a "try it" form per route that sends
//! the request with the API key (kept in the browser's `localStorage`) as `x-api-key`.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// The page (`docs.html`, next to this file).
pub const HTML: &str = include_str!("docs.html");

/// The page's Content-Security-Policy: nothing is loaded from elsewhere; its own inline
/// script and style run, and it may fetch only from this server.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
    style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// `GET /docs`: the API documentation page ([`HTML`]).
pub async fn docs() -> Response {
    html_page(HTML, CONTENT_SECURITY_POLICY)
}

/// A self-contained page (`/docs`, the search page) with its security policy, not
/// sniffed as anything else, revalidated on each load.
pub fn html_page(html: &'static str, csp: &'static str) -> Response {
    let mut resp = html.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[tokio::test]
    async fn serves_the_page() {
        let resp = docs().await;
        assert_eq!(resp.status(), StatusCode::OK);
        let ct = resp.headers()[header::CONTENT_TYPE].to_str().unwrap();
        assert!(ct.starts_with("text/html"), "{ct}");
        assert!(resp.headers().contains_key(header::CONTENT_SECURITY_POLICY));
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let page = std::str::from_utf8(&body).unwrap();
        assert!(page.contains("openapi.json"));
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("x-api-key") && page.contains("localStorage"));
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        let lower = HTML.to_ascii_lowercase();
        for needle in ["<script src", "<link", "@import", "url(http", "src=\"http"] {
            assert!(!lower.contains(needle), "docs.html contains {needle:?}");
        }
        for url in lower.match_indices("http") {
            let rest = &lower[url.0..];
            assert!(
                !rest.starts_with("http://") && !rest.starts_with("https://")
                    || rest.starts_with("http://www.w3.org/2000/svg"),
                "docs.html names an external address: {}",
                &rest[..rest.len().min(60)]
            );
        }
    }
}
