//! The HTTP API end to end, in process (tower's `oneshot` on the router): results against
//! brute force, metadata with every hit, bad input with the statuses the API promises,
//! and random bodies that must never panic the server or put index and metadata out of
//! step.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::call;
use fathom_index::{Index, IndexFlat};
use fathom_serve::ServeConfig;
use fathom_serve::api::App;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

fn open(dir: &std::path::Path) -> Arc<App> {
    let mut config = ServeConfig::new(dir);
    config.max_top_k = 100;
    config.max_body_bytes = 1 << 20;
    fathom_serve::server::open(config).unwrap()
}

async fn json_call(app: &Arc<App>, method: &str, uri: &str, body: Value) -> (StatusCode, Value) {
    call(app, method, uri, body.to_string()).await
}

fn data(n: usize, d: usize, seed: u64) -> Vec<Vec<f32>> {
    let flat = fathom_tests::uniform_data(n, d, seed);
    flat.chunks(d).map(|c| c.to_vec()).collect()
}

#[tokio::test]
async fn collections_items_and_search_against_brute_force() {
    let dir = tempfile::tempdir().unwrap();
    let app = open(dir.path());
    let (s, v) = json_call(
        &app,
        "PUT",
        "/collections/docs",
        json!({"dim": 8, "index": "Flat"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, _) = json_call(
        &app,
        "PUT",
        "/collections/docs",
        json!({"dim": 8, "index": "Flat"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "same definition again is fine");
    let (s, v) = json_call(&app, "PUT", "/collections/docs", json!({"dim": 9})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");

    let xs = data(500, 8, 1);
    let meta: Vec<Value> = (0..500)
        .map(|i| json!({"title": format!("doc {i}")}))
        .collect();
    let (s, v) = json_call(
        &app,
        "POST",
        "/collections/docs/items",
        json!({"vectors": xs, "metadata": meta}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let ids: Vec<i64> = serde_json::from_value(v["ids"].clone()).unwrap();
    assert_eq!(ids, (0..500).collect::<Vec<_>>());

    let mut exact = IndexFlat::new_l2(8).unwrap();
    exact.add(&xs.concat()).unwrap();
    let qs = data(20, 8, 2);
    let want = exact.search(&qs.concat(), 5).unwrap();
    let (s, v) = json_call(
        &app,
        "POST",
        "/collections/docs/search",
        json!({"vectors": qs, "top_k": 5}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    for (q, row) in v["results"].as_array().unwrap().iter().enumerate() {
        for (r, hit) in row.as_array().unwrap().iter().enumerate() {
            let id = hit["id"].as_i64().unwrap();
            assert_eq!(id, want.labels[q * 5 + r]);
            assert_eq!(hit["rank"], r + 1);
            assert_eq!(hit["metadata"]["title"], format!("doc {id}"));
            let d = hit["score"].as_f64().unwrap() as f32;
            assert!((d - want.distances[q * 5 + r]).abs() < 1e-5);
        }
    }
    // One query, a filter and a distance bound.
    let (s, v) = json_call(
        &app,
        "POST",
        "/collections/docs/search",
        json!({"vector": qs[0], "top_k": 3, "filter_ids": [7, 8, 9, 10], "max_distance": 1e9}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let hits = v["results"].as_array().unwrap();
    assert_eq!(hits.len(), 3);
    assert!(
        hits.iter()
            .all(|h| (7..=10).contains(&h["id"].as_i64().unwrap()))
    );

    // Delete: the deleted ids are gone from results.
    let top = want.labels[0];
    let (s, v) = json_call(
        &app,
        "DELETE",
        "/collections/docs/items",
        json!({"ids": [top, 9999]}),
    )
    .await;
    assert_eq!((s, v["deleted"].clone()), (StatusCode::OK, json!([top])));
    let (_, v) = json_call(
        &app,
        "POST",
        "/collections/docs/search",
        json!({"vector": qs[0], "top_k": 5}),
    )
    .await;
    assert!(
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["id"] != top)
    );
    let (_, v) = call(&app, "GET", "/collections/docs", Body::empty()).await;
    assert_eq!(
        (v["items"].clone(), v["ntotal"].clone()),
        (json!(499), json!(499))
    );

    let (s, _) = call(&app, "DELETE", "/collections/docs", Body::empty()).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = call(&app, "GET", "/collections/docs", Body::empty()).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn graph_and_ivf_collections() {
    let dir = tempfile::tempdir().unwrap();
    let app = open(dir.path());
    // HNSW cannot remove: deleted items are filtered out.
    json_call(
        &app,
        "PUT",
        "/collections/g",
        json!({"dim": 8, "index": "HNSW16", "metric": "ip"}),
    )
    .await;
    let xs = data(300, 8, 3);
    json_call(&app, "POST", "/collections/g/items", json!({"vectors": xs})).await;
    let (s, v) = json_call(
        &app,
        "POST",
        "/collections/g/search",
        json!({"vector": xs[5], "top_k": 1, "params": {"efSearch": 64}}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let best = v["results"][0]["id"].as_i64().unwrap();
    json_call(
        &app,
        "DELETE",
        "/collections/g/items",
        json!({"ids": [best]}),
    )
    .await;
    let (_, v) = json_call(
        &app,
        "POST",
        "/collections/g/search",
        json!({"vector": xs[5], "top_k": 10, "min_score": -1e9}),
    )
    .await;
    assert!(
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["id"] != best)
    );
    assert_eq!(v["results"].as_array().unwrap().len(), 10);

    // IVF: a first batch too small to train is refused and leaves nothing behind.
    json_call(
        &app,
        "PUT",
        "/collections/ivf",
        json!({"dim": 8, "index": "IVF16,SQ8"}),
    )
    .await;
    let (s, v) = json_call(
        &app,
        "POST",
        "/collections/ivf/items",
        json!({"vectors": data(5, 8, 4)}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"].as_str().unwrap().contains("first batch"), "{v}");
    let xs = data(2000, 8, 5);
    let (s, v) = json_call(
        &app,
        "POST",
        "/collections/ivf/items",
        json!({"vectors": xs}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["ids"][0], 0, "the refused batch used no ids");
    let (s, v) = json_call(
        &app,
        "POST",
        "/collections/ivf/search",
        json!({"vector": xs[3], "top_k": 1, "params": {"nprobe": 16}}),
    )
    .await;
    assert_eq!(
        (s, v["results"][0]["id"].clone()),
        (StatusCode::OK, json!(3))
    );
    let (_, h) = call(&app, "GET", "/health", Body::empty()).await;
    let ivf = h["collections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "ivf")
        .unwrap()
        .clone();
    assert!(ivf["imbalance_factor"].as_f64().unwrap() >= 1.0, "{h}");
    let (s, v) = call(&app, "POST", "/collections/ivf/retrain", Body::empty()).await;
    assert_eq!(
        (s, v["ntotal"].clone()),
        (StatusCode::OK, json!(2000)),
        "{v}"
    );
}

#[tokio::test]
async fn bad_input_gets_the_promised_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let app = open(dir.path());
    json_call(&app, "PUT", "/collections/c", json!({"dim": 4})).await;
    json_call(
        &app,
        "POST",
        "/collections/c/items",
        json!({"vectors": [[0, 0, 0, 1], [1, 0, 0, 0]]}),
    )
    .await;
    let big = "x".repeat(2 << 20);
    for (method, uri, body, want) in [
        (
            "POST",
            "/collections/c/search",
            "{\"vector\": [1, 2",
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/collections/c/search",
            "not json",
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/collections/c/search",
            r#"{"vector": [1, 2, 3]}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "POST",
            "/collections/c/search",
            r#"{"vector": [1, 2, 3, 4], "top_k": 0}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/collections/c/search",
            r#"{"vector": [1, 2, 3, 4], "top_k": 101}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/collections/c/search",
            r#"{"vector": [1, 2, 3, 1e40]}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "POST",
            "/collections/c/search",
            r#"{"vector": [1, 2, 3, 4], "params": {"nprob": 3}}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/collections/c/search",
            r#"{"vector": [1, 2, 3, 4], "params": {"nprobe": 0}}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/collections/c/search",
            r#"{"vector": [1, 2, 3, 4], "min_score": 0.5}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/collections/c/search",
            r#"{"text": "hello"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/collections/c/search",
            r#"{"vector": [1, 2, 3, 4], "vectors": [[1, 2, 3, 4]]}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/collections/c/search",
            r#"{"vector": [1, 2, 3, 4], "bogus": 1}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/collections/nope/search",
            r#"{"vector": [1, 2, 3, 4]}"#,
            StatusCode::NOT_FOUND,
        ),
        (
            "POST",
            "/collections/c/items",
            r#"{"vectors": [[1, 2, 3]]}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "POST",
            "/collections/c/items",
            r#"{"vectors": [[1, 2, 3, 4]], "metadata": [{}, {}]}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "POST",
            "/collections/c/items",
            r#"{"texts": ["a"]}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "DELETE",
            "/collections/c/items",
            r#"{"ids": "x"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "PUT",
            "/collections/bad%20name",
            r#"{"dim": 4}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "PUT",
            "/collections/x",
            r#"{"dim": 4, "index": "IVF16,Flatt"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "PUT",
            "/collections/x",
            r#"{"dim": 10, "index": "PQ4"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "PUT",
            "/collections/x",
            r#"{"dim": 4, "metric": "hamming"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "PUT",
            "/collections/x",
            r#"{"dim": 0}"#,
            StatusCode::BAD_REQUEST,
        ),
        ("GET", "/nowhere", "", StatusCode::NOT_FOUND),
    ] {
        let (s, v) = call(&app, method, uri, body.to_string()).await;
        assert_eq!(s, want, "{method} {uri} {body}: {v}");
        assert!(v["error"].is_string(), "{method} {uri} {body}: {v}");
    }
    let (s, v) = call(&app, "POST", "/collections/c/items", big).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(v["error"].is_string(), "{v}");
    // Nothing above changed the collection.
    let (_, v) = call(&app, "GET", "/collections/c", Body::empty()).await;
    assert_eq!(
        (v["items"].clone(), v["ntotal"].clone()),
        (json!(2), json!(2))
    );
}

#[tokio::test]
async fn metrics_and_openapi_describe_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let app = open(dir.path());
    json_call(&app, "PUT", "/collections/m", json!({"dim": 2})).await;
    json_call(
        &app,
        "POST",
        "/collections/m/items",
        json!({"vectors": [[0, 1], [1, 0], [1, 1]]}),
    )
    .await;
    json_call(
        &app,
        "POST",
        "/collections/m/search",
        json!({"vectors": [[0, 1], [1, 1]]}),
    )
    .await;
    let (s, text) = call(&app, "GET", "/metrics", Body::empty()).await;
    assert_eq!(s, StatusCode::OK);
    let text = text.as_str().unwrap().to_string();
    for want in [
        r#"fathom_http_requests_total{route="/collections/{name}/search",method="POST",status="200"} 1"#,
        "fathom_http_request_duration_seconds_bucket",
        "fathom_http_requests_in_flight",
        "fathom_search_queries_total 2",
        r#"fathom_collection_vectors{collection="m"} 3"#,
    ] {
        assert!(text.contains(want), "missing {want} in\n{text}");
    }
    let (_, doc) = call(&app, "GET", "/openapi.json", Body::empty()).await;
    for path in [
        "/health",
        "/metrics",
        "/collections/{name}",
        "/collections/{name}/items",
        "/collections/{name}/search",
        "/collections/{name}/retrain",
        "/collections/{name}/items/{id}/thumbnail",
        "/snapshot",
        "/",
    ] {
        assert!(doc["paths"][path].is_object(), "{path}");
    }
}

/// Random bodies at every route: never a 5xx or a panic, and afterwards every
/// collection's index holds exactly its items.
#[tokio::test]
async fn random_bodies_never_break_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let app = open(dir.path());
    json_call(
        &app,
        "PUT",
        "/collections/f",
        json!({"dim": 3, "index": "HNSW8"}),
    )
    .await;
    json_call(
        &app,
        "PUT",
        "/collections/v",
        json!({"dim": 3, "index": "IVF4,Flat"}),
    )
    .await;
    let mut rng = 0x1234_5678_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let fragments = [
        r#""vector""#,
        r#""vectors""#,
        r#""top_k""#,
        r#""ids""#,
        r#""metadata""#,
        r#""params""#,
        r#""nprobe""#,
        r#""filter_ids""#,
        r#""min_score""#,
        r#""max_distance""#,
        r#""dim""#,
        r#""index""#,
        "[",
        "]",
        "{",
        "}",
        ":",
        ",",
        "1",
        "-1",
        "0",
        "3",
        "1e309",
        "0.5",
        "null",
        "true",
        r#""IVF2,Flat""#,
        r#""HNSW4""#,
        "[0.1,0.2,0.3]",
        "[[1,2,3]]",
        "[[1,2,3],[4,5,6],[7,8,9],[1,1,1],[2,2,2]]",
        "\"\u{1F600}\"",
        "999999999999999999999",
    ];
    let routes = [
        ("POST", "/collections/f/search"),
        ("POST", "/collections/v/search"),
        ("POST", "/collections/f/items"),
        ("POST", "/collections/v/items"),
        ("DELETE", "/collections/f/items"),
        ("DELETE", "/collections/v/items"),
        ("PUT", "/collections/z"),
        ("POST", "/collections/v/retrain"),
    ];
    for i in 0..1500 {
        let body: String = if i % 5 == 0 {
            (0..next() % 64)
                .map(|_| (next() % 256) as u8 as char)
                .collect()
        } else {
            let mut s = String::new();
            if next() % 3 > 0 {
                s.push('{');
            }
            for _ in 0..next() % 12 {
                s.push_str(fragments[(next() % fragments.len() as u64) as usize]);
            }
            if next() % 3 > 0 {
                s.push('}');
            }
            s
        };
        let (method, uri) = routes[(next() % routes.len() as u64) as usize];
        let (s, v) = call(&app, method, uri, body.clone()).await;
        assert!(!s.is_server_error(), "{method} {uri} {body:?}: {s} {v}");
    }
    for c in app.service.list() {
        let live = c.live.read().unwrap();
        let indexed = live.index.ntotal();
        let items = live.items.len();
        if c.def.index.starts_with("HNSW") {
            assert!(indexed >= items, "{}: {indexed} < {items}", c.def.name);
        } else {
            assert_eq!(indexed, items, "{}", c.def.name);
        }
    }
}

/// A stand-in text model: character trigrams hashed into 16 buckets, normalised. Enough to
/// check the text path of the API (a text finds itself first); the real model is tested
/// against sentence-transformers.
struct Trigrams;

impl fathom_serve::embed::Embedder for Trigrams {
    fn dim(&self) -> usize {
        16
    }
    fn embed(&self, texts: &[String]) -> fathom_core::Result<Vec<f32>> {
        let mut out = Vec::new();
        for t in texts {
            let mut v = [0f32; 16];
            let b: Vec<u8> = t.bytes().collect();
            for w in b.windows(3) {
                let h = w
                    .iter()
                    .fold(2166136261u32, |h, &x| (h ^ x as u32).wrapping_mul(16777619));
                v[(h % 16) as usize] += 1.0;
            }
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
            out.extend(v.iter().map(|x| x / n));
        }
        Ok(out)
    }
    fn name(&self) -> String {
        "trigrams".into()
    }
}

#[tokio::test]
async fn text_items_and_queries_go_through_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let app = fathom_serve::server::open_with(
        ServeConfig::new(dir.path()),
        fathom_serve::server::Models {
            text: Some(Arc::new(Trigrams)),
            image: None,
        },
    )
    .unwrap();
    json_call(
        &app,
        "PUT",
        "/collections/t",
        json!({"dim": 16, "metric": "ip"}),
    )
    .await;
    let texts = [
        "the cat sat on the mat",
        "a dog barked all night",
        "stock prices fell sharply",
    ];
    let (s, v) = json_call(
        &app,
        "POST",
        "/collections/t/items",
        json!({"texts": texts, "metadata": [{"src": "a"}, {"src": "b", "text": "kept"}, {}]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    for (i, t) in texts.iter().enumerate() {
        let (s, v) = json_call(
            &app,
            "POST",
            "/collections/t/search",
            json!({"text": t, "top_k": 1}),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["results"][0]["id"], i, "{t}: {v}");
    }
    let (_, v) = json_call(
        &app,
        "POST",
        "/collections/t/search",
        json!({"texts": texts, "top_k": 3}),
    )
    .await;
    let first = &v["results"][0][0]["metadata"];
    assert_eq!(
        (first["src"].clone(), first["text"].clone()),
        (json!("a"), json!(texts[0]))
    );
    assert_eq!(
        v["results"][1][0]["metadata"]["text"], "kept",
        "metadata given wins"
    );
    let (_, h) = call(&app, "GET", "/health", Body::empty()).await;
    assert_eq!(h["text_model"], "trigrams");
    // A collection of another dimension cannot take the model's vectors.
    json_call(&app, "PUT", "/collections/wide", json!({"dim": 32})).await;
    let (s, v) = json_call(
        &app,
        "POST",
        "/collections/wide/search",
        json!({"text": "x"}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    for body in [
        json!({"texts": []}),
        json!({"texts": ["a"], "vectors": [vec![0.0f32; 16]]}),
    ] {
        let (s, v) = json_call(&app, "POST", "/collections/t/items", body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
    }
}

/// A stand-in image model: the byte histogram of an "image" that starts with `IMG`,
/// refusing anything else as a real model refuses a corrupt file.
struct ByteHistogram;

impl fathom_serve::embed::ImageEmbedder for ByteHistogram {
    fn dim(&self) -> usize {
        16
    }
    fn embed_images(&self, images: &[&[u8]]) -> fathom_core::Result<Vec<f32>> {
        let mut out = Vec::new();
        for (i, b) in images.iter().enumerate() {
            if !b.starts_with(b"IMG") {
                return Err(fathom_core::Error::invalid(format!(
                    "image {i}: not an image fathom reads"
                )));
            }
            let mut v = [0f32; 16];
            for &x in &b[3..] {
                v[(x % 16) as usize] += 1.0;
            }
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
            out.extend(v.iter().map(|x| x / n));
        }
        Ok(out)
    }
    fn name(&self) -> String {
        "byte-histogram".into()
    }
}

use fathom_serve::embed::encode_base64 as base64;

#[tokio::test]
async fn image_items_and_queries_go_through_the_image_model() {
    let dir = tempfile::tempdir().unwrap();
    let models = fathom_serve::server::Models {
        text: None,
        image: Some(Arc::new(ByteHistogram)),
    };
    let app = fathom_serve::server::open_with(ServeConfig::new(dir.path()), models).unwrap();
    json_call(
        &app,
        "PUT",
        "/collections/img",
        json!({"dim": 16, "metric": "cosine"}),
    )
    .await;
    let images: Vec<Vec<u8>> = [&b"IMGaaaaabbb"[..], b"IMGzzzzzzyy", b"IMG0123456789"]
        .iter()
        .map(|b| b.to_vec())
        .collect();
    let encoded: Vec<String> = images.iter().map(|b| base64(b)).collect();
    let (s, v) = json_call(
        &app,
        "POST",
        "/collections/img/items",
        json!({"images": encoded, "metadata": [{"price": 3}, {"price": 5}, {}]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    for (i, e) in encoded.iter().enumerate() {
        // Plain base64 and a browser's data URL find the same item.
        for q in [e.clone(), format!("data:image/png;base64,{e}")] {
            let (s, v) = json_call(
                &app,
                "POST",
                "/collections/img/search",
                json!({"image": q, "top_k": 1}),
            )
            .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            assert_eq!(v["results"][0]["id"], i, "{v}");
        }
    }
    let (_, h) = call(&app, "GET", "/health", Body::empty()).await;
    assert_eq!(h["image_model"], "byte-histogram");
    // The same as multipart uploads (`curl -F images=@a.jpg -F metadata='[…]'`).
    let form = |parts: &[(&str, Option<&str>, &[u8])]| {
        let mut body = Vec::new();
        for (name, file, data) in parts {
            body.extend_from_slice(b"--XyZ\r\n");
            let disposition = match file {
                Some(f) => format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: image/png\r\n\r\n"
                ),
                None => format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n"),
            };
            body.extend_from_slice(disposition.as_bytes());
            body.extend_from_slice(data);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"--XyZ--\r\n");
        body
    };
    let post_form = |uri: &'static str, body: Vec<u8>| {
        let app = app.clone();
        async move {
            let req = Request::builder()
                .method("POST")
                .uri(uri)
                .header(header::CONTENT_TYPE, "multipart/form-data; boundary=XyZ")
                .body(Body::from(body))
                .unwrap();
            let resp = fathom_serve::api::router(app).oneshot(req).await.unwrap();
            let status = resp.status();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            (status, serde_json::from_slice::<Value>(&bytes).unwrap())
        }
    };
    let (s, v) = post_form(
        "/collections/img/items",
        form(&[
            ("images", Some("d.png"), b"IMGqqqqqrrr"),
            ("images", Some("e.png"), b"IMG55555556"),
            ("metadata", None, br#"[{"price": 7}, {"price": 8}]"#),
        ]),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = post_form(
        "/collections/img/search",
        form(&[
            ("image", Some("q.png"), b"IMG55555556"),
            ("top_k", None, b"1"),
        ]),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["results"][0]["metadata"]["price"], 8, "{v}");
    let (s, v) = post_form(
        "/collections/img/search",
        form(&[("picture", Some("q.png"), b"IMG1")]),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"].as_str().unwrap().contains("\"image\""), "{v}");
    // Bad input: 400 naming the image, and nothing stored.
    for (body, want) in [
        (
            json!({"images": [encoded[0].clone(), "@@not base64"]}),
            "not base64",
        ),
        (
            json!({"images": [encoded[0].clone(), base64(b"GIF89a")]}),
            "image 1",
        ),
        (json!({"images": []}), "no images"),
        (
            json!({"images": [encoded[0].clone()], "vectors": [vec![0.0f32; 16]]}),
            "exactly one",
        ),
    ] {
        let (s, v) = json_call(&app, "POST", "/collections/img/items", body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(v["error"].as_str().unwrap().contains(want), "{want}: {v}");
    }
    let (_, st) = call(&app, "GET", "/collections/img", Body::empty()).await;
    assert_eq!(st["items"], 5, "{st}");
    // Without an image model, or with a text one only: 400 that says so.
    let text_only = fathom_serve::server::open_with(
        ServeConfig::new(tempfile::tempdir().unwrap().path()),
        fathom_serve::server::Models {
            text: Some(Arc::new(Trigrams)),
            image: None,
        },
    )
    .unwrap();
    json_call(&text_only, "PUT", "/collections/t", json!({"dim": 16})).await;
    let (s, v) = json_call(
        &text_only,
        "POST",
        "/collections/t/search",
        json!({"image": encoded[0]}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("--image-model"),
        "{v}"
    );
}

#[tokio::test]
async fn page_and_thumbnails_only_inside_the_image_roots() {
    let dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let img = image::RgbImage::from_fn(300, 200, |x, y| image::Rgb([x as u8, y as u8, 90]));
    let inside_png = root.path().join("a.png");
    img.save(&inside_png).unwrap();
    let secret = outside.path().join("secret.png");
    img.save(&secret).unwrap();
    let mut config = ServeConfig::new(dir.path());
    config.image_roots = vec![root.path().to_path_buf()];
    let app = fathom_serve::server::open_with(config, Default::default()).unwrap();
    json_call(&app, "PUT", "/collections/p", json!({"dim": 2})).await;
    let traversal = format!(
        "{}/../{}",
        root.path().display(),
        secret
            .strip_prefix(outside.path().parent().unwrap())
            .unwrap()
            .display()
    );
    let paths = [
        json!({"path": inside_png.display().to_string()}),
        json!({"path": secret.display().to_string()}),
        json!({"path": traversal}),
        json!({"path": "/etc/passwd"}),
        json!({"name": "no path"}),
    ];
    let (s, v) = json_call(
        &app,
        "POST",
        "/collections/p/items",
        json!({"vectors": vec![vec![0.0f32, 1.0]; 5], "metadata": paths}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let thumb = |id: usize, q: &str| {
        let app = app.clone();
        let uri = format!("/collections/p/items/{id}/thumbnail{q}");
        async move {
            let req = Request::builder().uri(uri).body(Body::empty()).unwrap();
            fathom_serve::api::router(app).oneshot(req).await.unwrap()
        }
    };
    let resp = thumb(0, "?size=64").await;
    #[cfg(feature = "image")]
    {
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "image/jpeg");
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let t = image::load_from_memory(&bytes).unwrap();
        assert_eq!((t.width(), t.height()), (64, 43));
    }
    #[cfg(not(feature = "image"))]
    assert_eq!(resp.status(), StatusCode::NOT_IMPLEMENTED);
    for id in [1, 2, 3] {
        assert_eq!(
            thumb(id, "").await.status(),
            StatusCode::FORBIDDEN,
            "item {id}"
        );
    }
    assert_eq!(thumb(4, "").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(thumb(9, "").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        thumb(0, "?size=9999").await.status(),
        StatusCode::BAD_REQUEST
    );
    // The page itself: offline (no external URL), with its security policy.
    let req = Request::builder().uri("/").body(Body::empty()).unwrap();
    let resp = fathom_serve::api::router(app.clone())
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    let html = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(
        html.contains("fathom search") && !html.contains("http://") && !html.contains("https://")
    );
}

/// `"exact": true` is brute force over the stored vectors — the ground truth the page
/// measures an approximate index's recall against: equal to a flat index over the same
/// data, through a PQ index that alone would rank differently, deleted items and filters
/// included.
#[tokio::test]
async fn exact_search_is_brute_force_over_the_stored_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let app = open(dir.path());
    let (n, d, k) = (5000, 16, 10);
    json_call(
        &app,
        "PUT",
        "/collections/pq",
        json!({"dim": d, "index": "IVF32,PQ4x4", "metric": "l2"}),
    )
    .await;
    let xs = data(n, d, 11);
    let metadata: Vec<Value> = (0..n).map(|i| json!({"even": i % 2 == 0})).collect();
    for start in (0..n).step_by(1000) {
        let body =
            json!({"vectors": xs[start..start + 1000], "metadata": metadata[start..start + 1000]});
        let (s, v) = json_call(&app, "POST", "/collections/pq/items", body).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    // Pages of the database scan end inside and at the end of a page.
    let gone: Vec<usize> = (0..n).step_by(7).collect();
    json_call(
        &app,
        "DELETE",
        "/collections/pq/items",
        json!({"ids": gone}),
    )
    .await;
    let live: Vec<usize> = (0..n).filter(|i| i % 7 != 0).collect();
    let queries = data(20, d, 12);
    let mut flat = IndexFlat::new_l2(d).unwrap();
    let kept: Vec<f32> = live.iter().flat_map(|&i| xs[i].clone()).collect();
    flat.add(&kept).unwrap();
    let mut approx_hits = 0;
    for (qi, q) in queries.iter().enumerate() {
        let want = flat.search(q, k).unwrap();
        let want_ids: Vec<usize> = want.labels.iter().map(|&l| live[l as usize]).collect();
        let (s, v) = json_call(
            &app,
            "POST",
            "/collections/pq/search",
            json!({"vector": q, "top_k": k, "exact": true}),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let got: Vec<usize> = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_u64().unwrap() as usize)
            .collect();
        assert_eq!(got, want_ids, "query {qi}");
        let score = v["results"][0]["score"].as_f64().unwrap() as f32;
        assert!((score - want.distances[0]).abs() < 1e-3 * want.distances[0].max(1.0));
        let (_, v) = json_call(
            &app,
            "POST",
            "/collections/pq/search",
            json!({"vector": q, "top_k": k, "params": {"nprobe": 1}}),
        )
        .await;
        approx_hits += v["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| want_ids.contains(&(h["id"].as_u64().unwrap() as usize)))
            .count();
        // With a filter: the best even items.
        let (_, v) = json_call(
            &app,
            "POST",
            "/collections/pq/search",
            json!({"vector": q, "top_k": 3, "exact": true, "filter": {"even": true}}),
        )
        .await;
        let evens: Vec<usize> = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_u64().unwrap() as usize)
            .collect();
        let mut all: Vec<(f32, usize)> = live
            .iter()
            .filter(|&&i| i % 2 == 0)
            .map(|&i| (xs[i].iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum(), i))
            .collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert_eq!(evens, all[..3].iter().map(|x| x.1).collect::<Vec<_>>());
    }
    // The approximate index (one list of 32, 4-bit PQ) misses some: the check measures
    // something.
    assert!(approx_hits < queries.len() * k, "{approx_hits}");
    let (s, v) = json_call(
        &app,
        "POST",
        "/collections/pq/search",
        json!({"vector": queries[0], "exact": true, "params": {"nprobe": 4}}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"].as_str().unwrap().contains("exact"), "{v}");
}

/// Metadata numbers come back as the same doubles they went in as, also after a restart
/// (they are parsed from the request, written to the database as text, and parsed again
/// on start-up). serde_json's default float parsing is only close: 0.41353443350719277
/// came back one unit in the last place off, 0.4135344335071928.
#[tokio::test]
async fn metadata_numbers_round_trip_exactly_also_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let tricky = [
        "0.41353443350719277",
        "2.2250738585072011e-308",
        "1e-310",
        "5e-324",
        "1.7976931348623157e308",
        "0.30000000000000004",
        "-123456.78901234567",
        "9007199254740993",
    ];
    let want: Vec<f64> = tricky.iter().map(|t| t.parse().unwrap()).collect();
    let meta: Vec<String> = tricky
        .iter()
        .enumerate()
        .map(|(i, t)| format!(r#""k{i}": {t}"#))
        .collect();
    let body = format!(
        r#"{{"ids": ["a"], "vectors": [[0.1, 0.2]], "metadata": [{{{}}}]}}"#,
        meta.join(", ")
    );
    let check = |v: &Value| {
        for (i, (w, t)) in want.iter().zip(&tricky).enumerate() {
            let got = &v["metadata"][format!("k{i}")];
            if t.contains(['.', 'e']) {
                assert_eq!(got.as_f64().unwrap().to_bits(), w.to_bits(), "{t}: {got}");
            } else {
                assert_eq!(got.as_u64(), t.parse::<u64>().ok(), "{t}: {got}");
            }
        }
    };
    {
        let app = open(dir.path());
        let (s, v) = json_call(&app, "PUT", "/collections/c", json!({"dim": 2})).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let (s, v) = call(&app, "POST", "/collections/c/items", body).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (s, v) = json_call(&app, "GET", "/collections/c/items/a", Value::Null).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        check(&v);
    }
    let app = open(dir.path());
    let (s, v) = json_call(&app, "GET", "/collections/c/items/a", Value::Null).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    check(&v);
}
