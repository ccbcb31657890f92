//! CORS for one allowed origin (`--cors-origin https://app.example`), off unless asked
//! for: a browser page served from that origin may call the API.
//!
//! - A preflight (`OPTIONS` with `Access-Control-Request-Method`) from the allowed origin
//!   gets 204 with `Access-Control-Allow-Origin`, `-Allow-Methods` ([`ALLOW_METHODS`]),
//!   `-Allow-Headers` ([`ALLOW_HEADERS`]) and `-Max-Age`; from another origin, 403.
//! - Any other request from the allowed origin gets `Access-Control-Allow-Origin` on its
//!   answer; requests from other origins or with no `Origin` get no CORS headers.
//! - Every answer gets `Vary: Origin`, so a cache never hands one origin's answer to another.
//!
//! Put the layer outermost (after the API key check in `.layer` order), so preflights,
//! which carry no key, are answered before it.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use fathom_core::{Error, Result};

/// The methods a preflight allows.
pub const ALLOW_METHODS: &str = "GET, POST, PUT, DELETE";
/// The request headers a preflight allows.
pub const ALLOW_HEADERS: &str = "content-type, authorization, x-api-key";
/// How long, in seconds, a browser may cache a preflight's answer.
pub const MAX_AGE_SECS: u32 = 3600;

/// Checks an origin given on the command line (`https://app.example`,
/// `http://localhost:3000`) and returns it as a header value, without a trailing `/`.
///
/// An origin is a scheme (`http` or `https`), `://`, a host and an optional port: no path,
/// query, user or wildcard.
pub fn parse_origin(s: &str) -> Result<HeaderValue> {
    let wanted = "expected an origin such as https://app.example or http://localhost:3000 \
                  (scheme, host and optional port; no path)";
    let o = s.trim().strip_suffix('/').unwrap_or(s.trim());
    let rest = o
        .strip_prefix("https://")
        .or_else(|| o.strip_prefix("http://"))
        .ok_or_else(|| {
            Error::invalid(format!(
                "--cors-origin {s:?}: no http:// or https://; {wanted}"
            ))
        })?;
    let bad_char =
        |c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if rest.is_empty() || rest.contains(bad_char) {
        return Err(Error::invalid(format!(
            "--cors-origin {s:?}: {:?} is not a host with an optional port; {wanted}",
            rest
        )));
    }
    HeaderValue::from_str(o)
        .map_err(|e| Error::invalid(format!("--cors-origin {s:?}: {e}; {wanted}")))
}

/// Whether the request's `Origin` is `allowed` (ASCII case aside).
fn origin_matches(headers: &HeaderMap, allowed: &HeaderValue) -> bool {
    headers
        .get(header::ORIGIN)
        .is_some_and(|o| o.as_bytes().eq_ignore_ascii_case(allowed.as_bytes()))
}

fn add_vary_origin(headers: &mut HeaderMap) {
    let already = headers.get_all(header::VARY).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("origin"))
        })
    });
    if !already {
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

/// Middleware answering CORS for the one allowed `origin` (see the [module](self)
/// documentation).
///
/// ```no_run
/// # fn f(router: axum::Router) -> fathom_core::Result<axum::Router> {
/// use std::sync::Arc;
/// let origin = Arc::new(fathom_serve::cors::parse_origin("https://app.example")?);
/// Ok(router.layer(axum::middleware::from_fn_with_state(origin, fathom_serve::cors::cors)))
/// # }
/// ```
pub async fn cors(State(origin): State<Arc<HeaderValue>>, req: Request, next: Next) -> Response {
    let matches = origin_matches(req.headers(), &origin);
    let preflight = req.method() == Method::OPTIONS
        && req.headers().contains_key(header::ORIGIN)
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let mut resp = if matches {
            let mut resp = StatusCode::NO_CONTENT.into_response();
            let h = resp.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, (*origin).clone());
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(ALLOW_METHODS),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(ALLOW_HEADERS),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from(MAX_AGE_SECS),
            );
            resp
        } else {
            let sent = req
                .headers()
                .get(header::ORIGIN)
                .map(|o| String::from_utf8_lossy(o.as_bytes()).into_owned())
                .unwrap_or_default();
            let allowed = String::from_utf8_lossy(origin.as_bytes());
            let message = format!(
                "cross-origin requests from {sent:?} are not allowed; expected origin {allowed}"
            );
            (
                StatusCode::FORBIDDEN,
                Json(serde_json::json!({ "error": message })),
            )
                .into_response()
        };
        add_vary_origin(resp.headers_mut());
        return resp;
    }
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    if matches {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, (*origin).clone());
    }
    add_vary_origin(h);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    const APP: &str = "https://app.example";

    fn app() -> Router {
        let origin = Arc::new(parse_origin(APP).unwrap());
        Router::new()
            .route("/x", get(|| async { "x" }).post(|| async { "posted" }))
            .layer(axum::middleware::from_fn_with_state(origin, cors))
    }

    async fn call(method: &str, origin: Option<&str>, preflight: bool) -> Response {
        let mut b = Request::builder().method(method).uri("/x");
        if let Some(o) = origin {
            b = b.header(header::ORIGIN, o);
        }
        if preflight {
            b = b
                .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
                .header(
                    header::ACCESS_CONTROL_REQUEST_HEADERS,
                    "content-type, x-api-key",
                );
        }
        app().oneshot(b.body(Body::empty()).unwrap()).await.unwrap()
    }

    fn cors_headers(r: &Response) -> Vec<String> {
        r.headers()
            .keys()
            .map(|k| k.as_str().to_string())
            .filter(|k| k.starts_with("access-control-"))
            .collect()
    }

    #[tokio::test]
    async fn preflight_from_the_allowed_origin() {
        let r = call("OPTIONS", Some(APP), true).await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let h = r.headers();
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], APP);
        assert_eq!(
            h[header::ACCESS_CONTROL_ALLOW_METHODS],
            "GET, POST, PUT, DELETE"
        );
        let allowed = h[header::ACCESS_CONTROL_ALLOW_HEADERS].to_str().unwrap();
        for want in ["content-type", "authorization", "x-api-key"] {
            assert!(allowed.contains(want), "{allowed}");
        }
        assert_eq!(h[header::ACCESS_CONTROL_MAX_AGE], "3600");
        assert_eq!(h[header::VARY], "Origin");
    }

    #[tokio::test]
    async fn preflight_from_another_origin_is_refused() {
        let r = call("OPTIONS", Some("https://evil.example"), true).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(cors_headers(&r).is_empty());
        let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let e = v["error"].as_str().unwrap();
        assert!(e.contains("evil.example") && e.contains(APP), "{e}");
    }

    #[tokio::test]
    async fn simple_requests() {
        // The allowed origin: the answer, with the origin allowed.
        for m in ["GET", "POST"] {
            let r = call(m, Some(APP), false).await;
            assert_eq!(r.status(), StatusCode::OK);
            assert_eq!(r.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], APP);
            assert_eq!(r.headers()[header::VARY], "Origin");
            assert_eq!(cors_headers(&r), ["access-control-allow-origin"]);
        }
        // Another origin or none: the answer without CORS headers.
        for o in [
            Some("https://evil.example"),
            Some("https://app.example.evil"),
            None,
        ] {
            let r = call("GET", o, false).await;
            assert_eq!(r.status(), StatusCode::OK);
            assert!(cors_headers(&r).is_empty(), "{o:?}");
            let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
            assert_eq!(&body[..], b"x");
        }
        // An OPTIONS that is no preflight goes through (here to axum's 405).
        let r = call("OPTIONS", Some(APP), false).await;
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    #[test]
    fn origins() {
        assert_eq!(parse_origin("https://app.example/").unwrap(), APP);
        assert_eq!(
            parse_origin("http://localhost:3000").unwrap(),
            "http://localhost:3000"
        );
        assert_eq!(
            parse_origin("http://[::1]:8080").unwrap(),
            "http://[::1]:8080"
        );
        for bad in [
            "app.example",
            "https://",
            "https://app.example/path",
            "*",
            "ftp://x",
            "https://a b",
        ] {
            let e = parse_origin(bad).unwrap_err().to_string();
            assert!(e.contains("expected an origin"), "{bad}: {e}");
        }
    }
}
