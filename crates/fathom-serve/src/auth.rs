//! API keys (`--api-keys FILE`): each key has a [`Role`], each route needs one
//! ([`required_role`]), and the [`authorize`] middleware checks the key a request presents
//! (`Authorization: Bearer KEY` or `x-api-key: KEY`) against the [`KeyStore`].
//!
//! The key file is text, one `KEY ROLE` per line, the role one of `read`, `write` and
//! `admin`; blank lines and lines starting with `#` are ignored:
//!
//! ```text
//! # dashboards
//! 3f9c1e0a7b2d4c6e8f1a3b5c7d9e0f21 read
//! # the ingestion job
//! 8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a write
//! ```
//!
//! Keys are at least 16 characters of printable ASCII. Messages about the file name the
//! line and show at most a key's first 4 characters, never the key. SIGHUP re-reads the
//! file ([`spawn_reload_on_sighup`]); a broken file leaves the old keys in place.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use fathom_core::{Error, Result};

/// The shortest key accepted, in characters.
pub const MIN_KEY_LEN: usize = 16;

/// What a key may do. Ordered: `Admin` ⊇ `Write` ⊇ `Read`, so a route needing `r` admits
/// every key whose role is `>= r`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Search, list and describe collections, read items, metrics.
    Read,
    /// Everything `Read` may, plus adding and deleting items.
    Write,
    /// Everything: creating and dropping collections, retraining, snapshots.
    Admin,
}

impl Role {
    /// The role named `s` (`read`, `write` or `admin`, in any case).
    pub fn parse(s: &str) -> Option<Role> {
        match s.to_ascii_lowercase().as_str() {
            "read" => Some(Role::Read),
            "write" => Some(Role::Write),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// The role's name as the key file spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key shown in messages: its first 4 characters (fewer for a key under 16) and "…".
fn masked(key: &str) -> String {
    let shown = 4.min(key.chars().count() / 4);
    let mut s: String = key.chars().take(shown).collect();
    s.push('…');
    s
}

/// Whether `a` and `b` are equal, in a time that depends on `a`'s length only: every byte
/// of `a` is compared, with no exit at the first difference.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (i, &x) in a.iter().enumerate() {
        diff |= x ^ b.get(i).copied().unwrap_or(!x);
    }
    std::hint::black_box(diff) == 0
}

/// A set of API keys with their roles, as read from a key file.
#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: Vec<(Box<[u8]>, Role)>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the keys themselves.
        f.debug_struct("ApiKeys")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl ApiKeys {
    /// Reads the key file at `path` (see the [module](self) documentation for its format).
    ///
    /// Errors name the file and the line, and show at most a key's first 4 characters: a
    /// line that is not `KEY ROLE`, an unknown role, a key under 16 characters or with
    /// characters outside printable ASCII, a key given twice, a file with no key.
    pub fn load(path: impl AsRef<Path>) -> Result<ApiKeys> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, &format!("API key file {}", path.display()))
    }

    /// Parses key-file text; `what` names its source in errors ("API key file …").
    pub fn parse(text: &str, what: &str) -> Result<ApiKeys> {
        let mut keys: Vec<(Box<[u8]>, Role)> = Vec::new();
        let mut lines_of: Vec<usize> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let (Some(key), Some(role)) = (fields.next(), fields.next()) else {
                return Err(Error::format(
                    what,
                    format!(
                        "line {n}: the key {} has no role; expected `KEY ROLE` with ROLE one \
                         of read, write, admin",
                        masked(line)
                    ),
                ));
            };
            if let Some(extra) = fields.next().filter(|f| !f.starts_with('#')) {
                return Err(Error::format(
                    what,
                    format!(
                        "line {n}: unexpected {extra:?} after the role; expected `KEY ROLE` \
                         (a comment after them starts with #)"
                    ),
                ));
            }
            let Some(role) = Role::parse(role) else {
                return Err(Error::format(
                    what,
                    format!(
                        "line {n}: unknown role {role:?} for key {}; expected read, write or admin",
                        masked(key)
                    ),
                ));
            };
            if !key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(Error::format(
                    what,
                    format!(
                        "line {n}: the key {} has characters outside printable ASCII, which \
                         cannot be sent in an HTTP header; expected printable ASCII only",
                        masked(key)
                    ),
                ));
            }
            let len = key.chars().count();
            if len < MIN_KEY_LEN {
                return Err(Error::format(
                    what,
                    format!(
                        "line {n}: the key {} has {len} characters; expected at least \
                         {MIN_KEY_LEN} (for example `openssl rand -hex 32`)",
                        masked(key)
                    ),
                ));
            }
            if let Some(j) = keys.iter().position(|(k, _)| **k == *key.as_bytes()) {
                return Err(Error::format(
                    what,
                    format!(
                        "line {n}: the key {} is already on line {}; expected each key once",
                        masked(key),
                        lines_of[j]
                    ),
                ));
            }
            keys.push((key.as_bytes().into(), role));
            lines_of.push(n);
        }
        if keys.is_empty() {
            return Err(Error::format(
                what,
                "no keys; expected at least one `KEY ROLE` line (ROLE one of read, write, admin)",
            ));
        }
        Ok(ApiKeys { keys })
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The role of `presented`, if it is one of the keys. Every key is compared, each in
    /// constant time, so the time taken says nothing about how close `presented` came.
    pub fn role_of(&self, presented: &str) -> Option<Role> {
        let mut found = None;
        for (key, role) in &self.keys {
            if ct_eq(key, presented.as_bytes()) {
                found = Some(*role);
            }
        }
        found
    }
}

/// The keys in force, re-read from their file on demand ([`KeyStore::reload`], for
/// SIGHUP). Requests read the current set without waiting on a reload's file read.
pub struct KeyStore {
    path: PathBuf,
    current: RwLock<Arc<ApiKeys>>,
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStore")
            .field("path", &self.path)
            .field("keys", &self.len())
            .finish()
    }
}

impl KeyStore {
    /// Loads the key file at `path` ([`ApiKeys::load`]).
    pub fn open(path: impl Into<PathBuf>) -> Result<KeyStore> {
        let path = path.into();
        let keys = ApiKeys::load(&path)?;
        Ok(KeyStore {
            path,
            current: RwLock::new(Arc::new(keys)),
        })
    }

    /// The key file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The keys in force now.
    pub fn keys(&self) -> Arc<ApiKeys> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many keys are in force.
    pub fn len(&self) -> usize {
        self.keys().len()
    }

    /// Whether no key is in force (never, for a store that opened).
    pub fn is_empty(&self) -> bool {
        self.keys().is_empty()
    }

    /// Re-reads the key file and puts its keys in force, returning how many there are. On
    /// an error the keys in force stay and the error is returned.
    pub fn reload(&self) -> Result<usize> {
        let keys = ApiKeys::load(&self.path)?;
        let n = keys.len();
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        Ok(n)
    }

    /// The role of `presented` among the keys in force ([`ApiKeys::role_of`]).
    pub fn role_of(&self, presented: &str) -> Option<Role> {
        self.keys().role_of(presented)
    }
}

/// The role a request needs: `None` for the open routes (`GET /health`, `/openapi.json`,
/// `/docs`, `/` and every `OPTIONS`, the CORS preflight).
///
/// `GET` (and `HEAD`) anywhere else, searches and item reads (`POST
/// /collections/{name}/search`, `/items/get`, `/items/list`) need `Read`; adding, replacing
/// and deleting items (`POST`/`PUT`/`DELETE /collections/{name}/items`) need `Write`;
/// creating and dropping collections, retraining, snapshots — and any request not listed,
/// so a new route is closed until it is classified here — need `Admin`.
pub fn required_role(method: &Method, path: &str) -> Option<Role> {
    if method == Method::OPTIONS {
        return None;
    }
    if method == Method::GET || method == Method::HEAD {
        return match path {
            "/" | "/health" | "/openapi.json" | "/docs" => None,
            _ => Some(Role::Read),
        };
    }
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or("").split('/').collect();
    let role = match segments.as_slice() {
        ["collections", name, rest @ ..] if !name.is_empty() => match (method, rest) {
            (&Method::POST, ["search"] | ["items", "get"] | ["items", "list"]) => Role::Read,
            (&Method::POST | &Method::PUT | &Method::DELETE, ["items"]) => Role::Write,
            _ => Role::Admin,
        },
        _ => Role::Admin,
    };
    Some(role)
}

/// An error answer `{"error": message}`.
fn refuse(status: StatusCode, message: String) -> Response {
    let mut resp = (status, Json(serde_json::json!({ "error": message }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    resp
}

/// The key a request presents: `Authorization: Bearer KEY`, else `x-api-key: KEY`;
/// `Ok(None)` without either, `Err` with what is wrong with the headers (never their value).
/// An `Authorization` of another scheme (a proxy's `Basic`) yields to `x-api-key`.
fn presented_key(headers: &HeaderMap) -> std::result::Result<Option<&str>, String> {
    let authorization = headers.get(header::AUTHORIZATION).map(|v| {
        let v = v.to_str().unwrap_or("").trim();
        let (scheme, key) = v.split_once(' ').unwrap_or((v, ""));
        (scheme.eq_ignore_ascii_case("bearer"), key.trim())
    });
    if let Some((true, key)) = authorization {
        if key.is_empty() {
            return Err(
                "the Authorization header is `Bearer` with no key; expected \
                        `Authorization: Bearer KEY`"
                    .into(),
            );
        }
        return Ok(Some(key));
    }
    if let Some(v) = headers.get("x-api-key") {
        let key = v
            .to_str()
            .map_err(|_| "the x-api-key header is not ASCII; expected `x-api-key: KEY`")?
            .trim();
        if key.is_empty() {
            return Err("the x-api-key header is empty; expected `x-api-key: KEY`".into());
        }
        return Ok(Some(key));
    }
    if authorization.is_some() {
        return Err("the Authorization header is not `Bearer KEY`; expected \
                    `Authorization: Bearer KEY` or `x-api-key: KEY`"
            .into());
    }
    Ok(None)
}

/// Middleware admitting a request when its route is open or it presents a key
/// (`Authorization: Bearer KEY` or `x-api-key: KEY`) whose role is at least the route's
/// ([`required_role`]). Otherwise 401 with `WWW-Authenticate: Bearer` (no key, an unknown
/// key) or 403 (the key's role is below the route's), with `{"error": "…"}` that never
/// contains the key. An admitted request carries the key's [`Role`] in its extensions.
///
/// ```no_run
/// # fn f(router: axum::Router, keys: std::sync::Arc<fathom_serve::auth::KeyStore>) -> axum::Router {
/// router.layer(axum::middleware::from_fn_with_state(keys, fathom_serve::auth::authorize))
/// # }
/// ```
pub async fn authorize(
    State(keys): State<Arc<KeyStore>>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(needed) = required_role(req.method(), req.uri().path()) else {
        return next.run(req).await;
    };
    let key = match presented_key(req.headers()) {
        Ok(Some(key)) => key,
        Ok(None) => {
            return refuse(
                StatusCode::UNAUTHORIZED,
                format!(
                    "{} {} needs an API key with role {needed} or above; send \
                     `Authorization: Bearer KEY` or `x-api-key: KEY`",
                    req.method(),
                    req.uri().path()
                ),
            );
        }
        Err(why) => return refuse(StatusCode::UNAUTHORIZED, why),
    };
    let Some(role) = keys.role_of(key) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "the API key is not known; expected one of the server's keys (--api-keys)".into(),
        );
    };
    if role < needed {
        return refuse(
            StatusCode::FORBIDDEN,
            format!(
                "{} {} needs role {needed} or above; this key has role {role}",
                req.method(),
                req.uri().path()
            ),
        );
    }
    req.extensions_mut().insert(role);
    next.run(req).await
}

/// Re-reads `keys`' file at each SIGHUP (Unix; elsewhere nothing), saying on stderr how
/// many keys are in force or why the old ones stay. Call it inside a tokio runtime.
pub fn spawn_reload_on_sighup(keys: Arc<KeyStore>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("fathom serve: cannot listen for SIGHUP, API keys will not reload: {e}");
                return;
            }
        };
        while hup.recv().await.is_some() {
            let store = keys.clone();
            match tokio::task::spawn_blocking(move || store.reload()).await {
                Ok(Ok(n)) => eprintln!(
                    "fathom serve: SIGHUP: {n} API keys in force from {}",
                    keys.path().display()
                ),
                Ok(Err(e)) => eprintln!(
                    "fathom serve: SIGHUP: API keys not reloaded, the {} in force stay: {e}",
                    keys.len()
                ),
                Err(e) => eprintln!("fathom serve: SIGHUP: API key reload failed: {e}"),
            }
        }
    });
    #[cfg(not(unix))]
    drop(keys);
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::{get, post};
    use tower::ServiceExt;

    const READ: &str = "read-key-0123456789abcdef";
    const WRITE: &str = "write-key-0123456789abcdef";
    const ADMIN: &str = "admin-key-0123456789abcdef";

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    fn good() -> String {
        format!("# keys\n\n{READ} read\n  {WRITE}   write  # the loader\n{ADMIN} ADMIN\n")
    }

    #[test]
    fn parses_a_good_file() {
        let f = file(&good());
        let keys = ApiKeys::load(f.path()).unwrap();
        assert_eq!(keys.len(), 3);
        assert_eq!(keys.role_of(READ), Some(Role::Read));
        assert_eq!(keys.role_of(WRITE), Some(Role::Write));
        assert_eq!(keys.role_of(ADMIN), Some(Role::Admin));
        assert_eq!(keys.role_of("read-key-0123456789abcdeF"), None);
        assert_eq!(keys.role_of("read-key-0123456789abcde"), None);
        assert_eq!(keys.role_of("read-key-0123456789abcdef0"), None);
        assert_eq!(keys.role_of(""), None);
        assert!(!format!("{keys:?}").contains("key-0123"));
    }

    fn err(text: &str) -> String {
        ApiKeys::parse(text, "API key file k")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn bad_files_name_the_line_and_hide_the_key() {
        let e = err(&format!("# c\n{READ} reader\n"));
        assert!(e.contains("line 2") && e.contains("\"reader\"") && e.contains("read…"));
        assert!(!e.contains(READ), "{e}");

        let e = err("# c\n\nshort-key-12 read\n");
        assert!(e.contains("line 3") && e.contains("12 characters") && e.contains("at least 16"));
        assert!(e.contains("sho…") && !e.contains("short-key"), "{e}");

        let e = err(&format!("{READ}\n"));
        assert!(
            e.contains("line 1") && e.contains("no role") && !e.contains(READ),
            "{e}"
        );

        let e = err(&format!("{READ} read extra\n"));
        assert!(
            e.contains("line 1") && e.contains("\"extra\"") && !e.contains(READ),
            "{e}"
        );

        let e = err(&format!("{READ} read\n{READ} admin\n"));
        assert!(
            e.contains("line 2") && e.contains("line 1") && !e.contains(READ),
            "{e}"
        );

        let e = err("tab\u{e9}-0123456789abcdef read\n");
        assert!(e.contains("printable ASCII"), "{e}");

        let e = err("# only comments\n\n");
        assert!(e.contains("no keys"), "{e}");

        let e = ApiKeys::load("/nonexistent/fathom-keys")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/fathom-keys"), "{e}");
    }

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Admin > Role::Write && Role::Write > Role::Read);
        assert!(Role::Admin >= Role::Read);
        assert_eq!(Role::parse("Write"), Some(Role::Write));
        assert_eq!(Role::parse("root"), None);
        assert_eq!(Role::Admin.to_string(), "admin");
    }

    #[test]
    fn constant_time_compare() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(!ct_eq(b"ab", b"abc"));
        assert!(!ct_eq(b"", b"a"));
        assert!(ct_eq(b"", b""));
        assert_eq!(masked("abcdefghijklmnopq"), "abcd…");
        assert_eq!(masked("abcdefgh"), "ab…");
    }

    #[test]
    fn the_route_table() {
        use Method as M;
        let open = None;
        let table = [
            (M::GET, "/health", open),
            (M::GET, "/openapi.json", open),
            (M::GET, "/docs", open),
            (M::GET, "/", open),
            (M::HEAD, "/health", open),
            (M::OPTIONS, "/collections/a/items", open),
            (M::OPTIONS, "/snapshot", open),
            (M::GET, "/metrics", Some(Role::Read)),
            (M::GET, "/collections", Some(Role::Read)),
            (M::GET, "/collections/a", Some(Role::Read)),
            (M::POST, "/collections/a/search", Some(Role::Read)),
            (M::POST, "/collections/a/items/get", Some(Role::Read)),
            (M::POST, "/collections/a/items/list", Some(Role::Read)),
            (M::POST, "/collections/a/items", Some(Role::Write)),
            (M::PUT, "/collections/a/items", Some(Role::Write)),
            (M::DELETE, "/collections/a/items", Some(Role::Write)),
            (M::PUT, "/collections/a", Some(Role::Admin)),
            (M::DELETE, "/collections/a", Some(Role::Admin)),
            (M::POST, "/collections/a/retrain", Some(Role::Admin)),
            (M::POST, "/snapshot", Some(Role::Admin)),
            // Unknown: closed.
            (M::POST, "/health", Some(Role::Admin)),
            (M::PATCH, "/collections/a/items", Some(Role::Admin)),
            (M::POST, "/collections//items", Some(Role::Admin)),
            (M::POST, "/collections/a/items/delete", Some(Role::Admin)),
            (M::POST, "/collections/a/search/", Some(Role::Admin)),
            (M::POST, "/new-route", Some(Role::Admin)),
            (M::DELETE, "/", Some(Role::Admin)),
        ];
        for (m, p, want) in table {
            assert_eq!(required_role(&m, p), want, "{m} {p}");
        }
    }

    fn store() -> (tempfile::NamedTempFile, Arc<KeyStore>) {
        let f = file(&good());
        let ks = Arc::new(KeyStore::open(f.path()).unwrap());
        (f, ks)
    }

    fn app(keys: Arc<KeyStore>) -> Router {
        Router::new()
            .route("/health", get(|| async { "ok" }))
            .route("/collections/{name}/search", post(|| async { "hits" }))
            .route("/collections/{name}/items", post(|| async { "added" }))
            .route("/snapshot", post(|| async { "snap" }))
            .layer(axum::middleware::from_fn_with_state(keys, authorize))
    }

    async fn call(
        app: &Router,
        method: &str,
        path: &str,
        header: Option<(&str, &str)>,
    ) -> (StatusCode, HeaderMap, String) {
        let mut b = Request::builder().method(method).uri(path);
        if let Some((k, v)) = header {
            b = b.header(k, v);
        }
        let resp = app
            .clone()
            .oneshot(b.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, headers, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn middleware_admits_and_refuses() {
        let (_f, ks) = store();
        let app = app(ks);
        let bearer = |k: &str| format!("Bearer {k}");

        // Open route, no key.
        let (s, _, b) = call(&app, "GET", "/health", None).await;
        assert_eq!((s, b.as_str()), (StatusCode::OK, "ok"));

        // No key.
        let (s, h, b) = call(&app, "POST", "/collections/a/search", None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert_eq!(h[header::WWW_AUTHENTICATE], "Bearer");
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        assert!(v["error"].as_str().unwrap().contains("role read"), "{b}");

        // Both header styles.
        for (name, value) in [("authorization", bearer(READ)), ("x-api-key", READ.into())] {
            let (s, _, b) = call(&app, "POST", "/collections/a/search", Some((name, &value))).await;
            assert_eq!((s, b.as_str()), (StatusCode::OK, "hits"), "{name}");
            let (s, h, b) = call(&app, "POST", "/collections/a/items", Some((name, &value))).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{name}");
            assert!(!h.contains_key(header::WWW_AUTHENTICATE));
            assert!(
                b.contains("needs role write") && b.contains("has role read"),
                "{b}"
            );
            assert!(!b.contains(READ));
        }
        let (s, _, _) = call(
            &app,
            "POST",
            "/collections/a/items",
            Some(("x-api-key", WRITE)),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let (s, _, _) = call(&app, "POST", "/snapshot", Some(("x-api-key", WRITE))).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let auth = ("authorization", format!("bearer {ADMIN}"));
        let (s, _, b) = call(&app, "POST", "/snapshot", Some((auth.0, &auth.1))).await;
        assert_eq!((s, b.as_str()), (StatusCode::OK, "snap"));

        // Unknown key, malformed header: 401 without the key.
        let wrong = "wrong-key-0123456789abcdef";
        for (name, value) in [
            ("x-api-key", wrong.to_string()),
            ("authorization", bearer(wrong)),
            ("authorization", format!("Basic {wrong}")),
            ("x-api-key", String::new()),
        ] {
            let (s, h, b) = call(&app, "POST", "/snapshot", Some((name, &value))).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{name}: {value}");
            assert_eq!(h[header::WWW_AUTHENTICATE], "Bearer");
            assert!(!b.contains("wrong-key"), "{b}");
            assert!(serde_json::from_str::<serde_json::Value>(&b).unwrap()["error"].is_string());
        }
    }

    #[test]
    fn which_header_counts() {
        let h = |pairs: &[(&str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.append(
                    axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                );
            }
            m
        };
        let got = |pairs: &[(&str, &str)]| presented_key(&h(pairs)).map(|k| k.map(str::to_string));
        assert_eq!(got(&[]), Ok(None));
        assert_eq!(
            got(&[("authorization", "Bearer  abc ")]),
            Ok(Some("abc".into()))
        );
        assert_eq!(
            got(&[("authorization", "BEARER abc")]),
            Ok(Some("abc".into()))
        );
        assert_eq!(got(&[("x-api-key", " abc")]), Ok(Some("abc".into())));
        // Bearer wins over x-api-key; another scheme yields to it.
        let both = [("authorization", "Bearer one"), ("x-api-key", "two")];
        assert_eq!(got(&both), Ok(Some("one".into())));
        let basic = [
            ("authorization", "Basic dXNlcjpwdw=="),
            ("x-api-key", "two"),
        ];
        assert_eq!(got(&basic), Ok(Some("two".into())));
        assert!(
            got(&[("authorization", "Basic dXNlcjpwdw==")])
                .unwrap_err()
                .contains("not `Bearer KEY`")
        );
        assert!(
            got(&[("authorization", "Bearer")])
                .unwrap_err()
                .contains("no key")
        );
        assert!(got(&[("x-api-key", "")]).unwrap_err().contains("empty"));
    }

    #[test]
    fn reload_picks_up_changes_and_keeps_old_keys_on_errors() {
        let (f, ks) = store();
        assert_eq!(ks.role_of(READ), Some(Role::Read));
        let new = "fresh-key-0123456789abcdef";
        std::fs::write(f.path(), format!("{new} admin\n{READ} write\n")).unwrap();
        assert_eq!(ks.reload().unwrap(), 2);
        assert_eq!(ks.role_of(new), Some(Role::Admin));
        assert_eq!(ks.role_of(READ), Some(Role::Write));
        assert_eq!(ks.role_of(ADMIN), None);

        std::fs::write(f.path(), format!("{ADMIN} superuser\n")).unwrap();
        let e = ks.reload().unwrap_err().to_string();
        assert!(e.contains("line 1") && !e.contains(ADMIN), "{e}");
        assert_eq!(ks.len(), 2);
        assert_eq!(ks.role_of(new), Some(Role::Admin));
        assert_eq!(ks.role_of(ADMIN), None);

        std::fs::remove_file(f.path()).unwrap();
        assert!(ks.reload().is_err());
        assert_eq!(ks.role_of(new), Some(Role::Admin));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn sighup_reloads() {
        use tokio::signal::unix::{SignalKind, signal};
        // A handler of our own first, so SIGHUP can never end the test process.
        let _guard = signal(SignalKind::hangup()).unwrap();
        let (f, ks) = store();
        spawn_reload_on_sighup(ks.clone());
        let new = "sighup-key-0123456789abcdef";
        std::fs::write(f.path(), format!("{new} read\n")).unwrap();
        let pid = std::process::id().to_string();
        for _ in 0..100 {
            // The reload task may not listen yet: signal until it has reloaded.
            let ok = std::process::Command::new("kill")
                .args(["-HUP", &pid])
                .status()
                .unwrap();
            assert!(ok.success());
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            if ks.role_of(new).is_some() {
                break;
            }
        }
        assert_eq!(ks.role_of(new), Some(Role::Read));
        assert_eq!(ks.role_of(READ), None);
    }
}
