//! What adversarial use found (issue 30), each reproduced: lock-order deadlocks, a lost or
//! replaced database, two servers on one directory, values whose distances overflow,
//! searches that cannot be stopped, errors that are not JSON, unbounded metadata.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::StatusCode;
use common::call;
use fathom_serve::ServeConfig;
use fathom_serve::api::App;
use fathom_serve::collection::SearchOptions;
use fathom_serve::store::CollectionDef;
use serde_json::json;

fn open(dir: &std::path::Path) -> Arc<App> {
    fathom_serve::server::open(ServeConfig::new(dir)).unwrap()
}

fn vectors(n: usize, d: usize, seed: u64) -> Vec<f32> {
    fathom_tests::uniform_data(n, d, seed)
}

fn meta(n: usize) -> Vec<String> {
    (0..n).map(|i| format!(r#"{{"i":{i}}}"#)).collect()
}

fn create(
    app: &App,
    name: &str,
    dim: usize,
    index: &str,
) -> Arc<fathom_serve::collection::Collection> {
    app.service
        .create(CollectionDef {
            name: name.into(),
            dim,
            metric: fathom_serve::store::Metric::L2,
            index: index.into(),
        })
        .unwrap();
    app.service.get(name).unwrap()
}

/// Runs `f` on a thread and fails (instead of hanging) when it takes longer than `secs`.
fn within<T: Send + 'static>(secs: u64, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("{what} did not finish within {secs} s: a deadlock"))
}

#[test]
fn retrain_against_concurrent_adds_and_deletes_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let app = open(dir.path());
    let c = create(&app, "g", 8, "HNSW16");
    app.service
        .add(&c, &vectors(2000, 8, 1), meta(2000))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let added = Arc::new(AtomicUsize::new(2000));
    let writers: Vec<_> = (0..2u64)
        .map(|w| {
            let (app, stop, added) = (app.clone(), stop.clone(), added.clone());
            std::thread::spawn(move || {
                let c = app.service.get("g").unwrap();
                let mut round = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let ids = app
                        .service
                        .add(&c, &vectors(300, 8, 10 + w * 1000 + round), meta(300))
                        .unwrap();
                    added.fetch_add(300, Ordering::Relaxed);
                    let gone = app.service.delete(&c, &ids[..10]).unwrap();
                    added.fetch_sub(gone.len(), Ordering::Relaxed);
                    round += 1;
                }
            })
        })
        .collect();
    let app2 = app.clone();
    within(120, "retrain beside adds and deletes", move || {
        let c = app2.service.get("g").unwrap();
        let q = vectors(4, 8, 99);
        let opts = fathom_serve::collection::SearchOptions {
            top_k: 5,
            ..Default::default()
        };
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(50));
            app2.service.retrain(&c).unwrap();
            // An exact search holds the writer lock, then the read lock and the database
            // mutex in turn: whole answers of live items, beside writers.
            let hits = app2.service.exact_search(&c, &q, &opts, &|| true).unwrap();
            for h in &hits {
                assert_eq!(h.len(), 5);
                assert!(h.windows(2).all(|w| w[0].score <= w[1].score));
            }
            app2.service.snapshot().unwrap();
        }
    });
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let live = c.live.read().unwrap();
    assert_eq!(live.items.len(), added.load(Ordering::Relaxed));
}

#[test]
fn a_missing_or_emptied_database_is_restored_from_the_newest_snapshot() {
    for damage in ["remove", "truncate"] {
        let dir = tempfile::tempdir().unwrap();
        {
            let app = open(dir.path());
            let c = create(&app, "c", 4, "Flat");
            app.service.add(&c, &vectors(100, 4, 2), meta(100)).unwrap();
            app.service.snapshot().unwrap();
        }
        let db = dir.path().join("items.sqlite");
        for f in ["items.sqlite-wal", "items.sqlite-shm"] {
            let _ = std::fs::remove_file(dir.path().join(f));
        }
        match damage {
            "remove" => std::fs::remove_file(&db).unwrap(),
            _ => std::fs::write(&db, b"").unwrap(),
        }
        let app = open(dir.path());
        assert!(
            app.service
                .startup
                .iter()
                .any(|l| l.contains("restored from snapshot")),
            "{damage}: {:?}",
            app.service.startup
        );
        let c = app.service.get("c").expect("the collection is back");
        assert_eq!(c.live.read().unwrap().items.len(), 100, "{damage}");
        // Later snapshots rotate normally and keep the data.
        for _ in 0..4 {
            app.service.snapshot().unwrap();
        }
        drop(app);
        let app = open(dir.path());
        assert_eq!(
            app.service
                .get("c")
                .unwrap()
                .live
                .read()
                .unwrap()
                .items
                .len(),
            100
        );
    }
}

#[test]
fn a_replaced_database_is_refused_and_its_snapshots_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    {
        let app = open(dir.path());
        let c = create(&app, "c", 4, "Flat");
        app.service.add(&c, &vectors(50, 4, 3), meta(50)).unwrap();
        app.service.snapshot().unwrap();
    }
    // Another database with data of its own, put in place of the first.
    let other = tempfile::tempdir().unwrap();
    {
        let app = open(other.path());
        let c = create(&app, "d", 4, "Flat");
        app.service.add(&c, &vectors(5, 4, 4), meta(5)).unwrap();
    }
    for f in ["items.sqlite", "items.sqlite-wal", "items.sqlite-shm"] {
        let _ = std::fs::remove_file(dir.path().join(f));
        if other.path().join(f).exists() {
            std::fs::copy(other.path().join(f), dir.path().join(f)).unwrap();
        }
    }
    let err = fathom_serve::server::open(ServeConfig::new(dir.path()))
        .err()
        .expect("a replaced database is refused")
        .to_string();
    assert!(err.contains("not the one snapshot"), "{err}");

    // Rotation never removes a snapshot of another database.
    let snaps = dir.path().join("snapshots");
    let theirs = fathom_serve::snapshot::list(&snaps);
    assert_eq!(theirs.len(), 1);
    let tmp = snaps.join(".tmp-x");
    std::fs::create_dir(&tmp).unwrap();
    std::fs::write(tmp.join("manifest.json"), "{}").unwrap();
    fathom_serve::snapshot::publish(&snaps, &tmp, 99, 1, "some-other-identity").unwrap();
    let left: Vec<u64> = fathom_serve::snapshot::list(&snaps)
        .iter()
        .map(|s| s.0)
        .collect();
    assert_eq!(left, [99, theirs[0].0]);
}

#[test]
fn a_second_server_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path());
    let err = fathom_serve::server::open(ServeConfig::new(dir.path()))
        .err()
        .expect("the second server is refused")
        .to_string();
    assert!(err.contains("in use by another fathom serve"), "{err}");
    assert!(err.contains(&std::process::id().to_string()), "{err}");
    drop(first);
    open(dir.path());
}

#[tokio::test]
async fn huge_values_are_refused_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let app = open(dir.path());
    call(&app, "PUT", "/collections/c", json!({"dim": 2}).to_string()).await;
    let (s, v) = call(
        &app,
        "POST",
        "/collections/c/items",
        json!({"vectors": [[1, 2]]}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    for (uri, body) in [
        (
            "/collections/c/items",
            json!({"vectors": [[0, 0], [3e38, 1]]}),
        ),
        ("/collections/c/items", json!({"vectors": [[1e19, 1e19]]})),
        ("/collections/c/search", json!({"vector": [3e38, 0]})),
        (
            "/collections/c/search",
            json!({"vectors": [[1, 1], [-3e38, 3e38]]}),
        ),
    ] {
        let (s, v) = call(&app, "POST", uri, body.to_string()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        let e = v["error"].as_str().unwrap();
        assert!(e.contains("limit") && e.contains("squared norm"), "{e}");
    }
    // The library refuses them too.
    let c = app.service.get("c").unwrap();
    assert!(app.service.add(&c, &[3e38, 0.0], meta(1)).is_err());
    let (_, v) = call(&app, "GET", "/collections/c", Body::empty()).await;
    assert_eq!(v["items"], 1);
    // Scores of accepted values are finite numbers.
    let (s, v) = call(
        &app,
        "POST",
        "/collections/c/search",
        json!({"vector": [9e18, 0]}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["results"][0]["score"].is_number(), "{v}");
}

#[tokio::test]
async fn errors_are_json_and_bounded_requests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServeConfig::new(dir.path());
    config.max_body_bytes = 1 << 20;
    config.max_metadata_bytes = 100;
    config.max_search_pairs = 1000;
    let app = fathom_serve::server::open(config).unwrap();
    call(&app, "PUT", "/collections/c", json!({"dim": 2}).to_string()).await;
    let xs: Vec<[f32; 2]> = (0..200).map(|i| [i as f32, 0.0]).collect();
    let (s, _) = call(
        &app,
        "POST",
        "/collections/c/items",
        json!({"vectors": xs}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let big = "x".repeat(2 << 20);
    let long = "y".repeat(200);
    for (method, uri, body, want, says) in [
        (
            "PATCH",
            "/collections/c",
            String::new(),
            StatusCode::METHOD_NOT_ALLOWED,
            "not allowed",
        ),
        (
            "POST",
            "/collections/c/items",
            big,
            StatusCode::PAYLOAD_TOO_LARGE,
            "limit",
        ),
        (
            "POST",
            "/collections/c/items",
            json!({"vectors": [[1, 1]], "metadata": [{"t": long}]}).to_string(),
            StatusCode::BAD_REQUEST,
            "the limit is 100",
        ),
        (
            "POST",
            "/collections/c/search",
            json!({"vectors": vec![[0.0, 0.0]; 6]}).to_string(),
            StatusCode::BAD_REQUEST,
            "1200 pairs",
        ),
        (
            "POST",
            "/collections/c/search",
            json!({"vector": [0, 0], "params": {"nprobe": 4}}).to_string(),
            StatusCode::BAD_REQUEST,
            "nprobe applies to IVF",
        ),
        (
            "POST",
            "/collections/c/search",
            json!({"vector": [0, 0], "params": {"efSearch": 4}}).to_string(),
            StatusCode::BAD_REQUEST,
            "efSearch applies to HNSW",
        ),
        (
            "PUT",
            "/collections/c",
            json!({"dim": 3}).to_string(),
            StatusCode::CONFLICT,
            "exists",
        ),
        (
            "PUT",
            "/collections/C",
            json!({"dim": 2}).to_string(),
            StatusCode::CONFLICT,
            "only in case",
        ),
        (
            "PUT",
            "/collections/caf%C3%A9",
            json!({"dim": 2}).to_string(),
            StatusCode::BAD_REQUEST,
            "ASCII letters",
        ),
    ] {
        let (s, v) = call(&app, method, uri, body.clone()).await;
        assert_eq!(s, want, "{method} {uri}: {v}");
        let e = v["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {uri}: not JSON: {v}"));
        assert!(e.contains(says), "{method} {uri}: {e}");
    }
    // Metadata can be left out of results.
    let (s, v) = call(
        &app,
        "POST",
        "/collections/c/search",
        json!({"vector": [0, 0], "top_k": 2, "with_metadata": false}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["results"][0].get("metadata").is_none(), "{v}");
    // /collections and /health name the index alike.
    let (_, list) = call(&app, "GET", "/collections", Body::empty()).await;
    let (_, health) = call(&app, "GET", "/health", Body::empty()).await;
    assert_eq!(
        list["collections"][0]["index"],
        health["collections"][0]["index"]
    );
    assert_eq!(
        list["collections"][0]["description"],
        health["collections"][0]["description"]
    );
}

#[tokio::test]
async fn a_tiny_first_batch_of_an_ivf_collection_warns() {
    let dir = tempfile::tempdir().unwrap();
    let app = open(dir.path());
    call(
        &app,
        "PUT",
        "/collections/v",
        json!({"dim": 4, "index": "IVF16,Flat"}).to_string(),
    )
    .await;
    let xs: Vec<Vec<f32>> = vectors(100, 4, 5).chunks(4).map(|c| c.to_vec()).collect();
    let (s, v) = call(
        &app,
        "POST",
        "/collections/v/items",
        json!({"vectors": xs}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let w = v["warnings"][0].as_str().unwrap_or_else(|| panic!("{v}"));
    assert!(w.contains("624") && w.contains("retrain"), "{w}");
    let (_, v) = call(
        &app,
        "POST",
        "/collections/v/items",
        json!({"vectors": xs}).to_string(),
    )
    .await;
    assert!(v.get("warnings").is_none(), "trained now: {v}");
}

#[test]
fn dropping_a_collection_gives_its_space_back() {
    let dir = tempfile::tempdir().unwrap();
    let app = open(dir.path());
    let c = create(&app, "big", 64, "Flat");
    for s in 0..4 {
        app.service
            .add(&c, &vectors(5000, 64, s), meta(5000))
            .unwrap();
    }
    let size = || {
        ["items.sqlite", "items.sqlite-wal"]
            .iter()
            .map(|f| std::fs::metadata(dir.path().join(f)).map_or(0, |m| m.len()))
            .sum::<u64>()
    };
    let before = size();
    assert!(before > 5_000_000, "{before}");
    assert!(app.service.drop_collection("big").unwrap());
    let after = size();
    assert!(after < before / 10, "{before} → {after} bytes");
}

#[test]
fn long_searches_stop_when_told_and_let_writers_in() {
    let dir = tempfile::tempdir().unwrap();
    let app = open(dir.path());
    let c = create(&app, "f", 32, "Flat");
    app.service
        .add(&c, &vectors(20_000, 32, 6), meta(20_000))
        .unwrap();
    let queries = vectors(20_000, 32, 7);
    let opts = SearchOptions {
        top_k: 5,
        ..Default::default()
    };
    // Told to stop after a few chunks, it stops with the cancellation error.
    let checks = AtomicUsize::new(0);
    let err = c
        .search_while(&queries, &opts, &|| {
            checks.fetch_add(1, Ordering::SeqCst) < 3
        })
        .unwrap_err()
        .to_string();
    assert!(err.contains("cancelled"), "{err}");
    assert_eq!(checks.load(Ordering::SeqCst), 4);
    // A writer gets in while a long search runs (the lock is taken per chunk).
    let app2 = app.clone();
    let searcher = std::thread::spawn(move || {
        let c = app2.service.get("f").unwrap();
        let t = Instant::now();
        c.search(&queries, &opts).unwrap();
        t.elapsed()
    });
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    app.service.add(&c, &vectors(1, 32, 8), meta(1)).unwrap();
    let add_took = t.elapsed();
    let search_took = searcher.join().unwrap();
    assert!(
        add_took < search_took / 2,
        "the add waited {add_took:?} for a search of {search_took:?}"
    );
}

/// A raw HTTP/1.1 exchange on 127.0.0.1: the request, then up to `wait` for an answer.
fn raw_http(addr: SocketAddr, request: &[u8], wait: Duration) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if String::from_utf8_lossy(&out).contains("\r\n\r\n{") && out.ends_with(b"}") {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn over_the_limit_bodies_are_refused_at_once_and_gone_clients_stop_their_search() {
    let dir = tempfile::tempdir().unwrap();
    let app = open(dir.path());
    let c = create(&app, "f", 32, "Flat");
    app.service
        .add(&c, &vectors(50_000, 32, 9), meta(50_000))
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let served = app.clone();
    rt.spawn(fathom_serve::server::serve(
        served,
        "127.0.0.1:0".parse().unwrap(),
        None,
        move |a| tx.send(a).unwrap(),
    ));
    let addr = rx.recv_timeout(Duration::from_secs(10)).unwrap();

    // Content-Length over the limit, a short body: 413 now, as JSON, not a hang.
    let t0 = Instant::now();
    let answer = raw_http(
        addr,
        b"POST /collections/f/items HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n{\"vectors\"",
        Duration::from_secs(10),
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(r#"{"error":"#), "{answer}");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());

    // A long search whose client leaves is cancelled.
    let qs: Vec<Vec<f32>> = vectors(8000, 32, 10)
        .chunks(32)
        .map(|c| c.to_vec())
        .collect();
    let body = json!({"vectors": qs, "top_k": 1}).to_string();
    let req = format!(
        "POST /collections/f/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let cancelled = || {
        let text = raw_http(
            addr,
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            Duration::from_secs(10),
        );
        text.lines()
            .find(|l| l.starts_with("fathom_search_cancelled_total"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let mut gone = 0;
    for _ in 0..3 {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        drop(s);
        let t = Instant::now();
        while cancelled() == gone && t.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if cancelled() > gone {
            gone += 1;
        }
    }
    assert!(gone >= 1, "no search stopped when its client left");
    rt.shutdown_background();
}
