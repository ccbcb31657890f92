//! The service's production features end to end, in process: metadata filters against
//! brute force over the filtered subset, client ids with upsert / get / list / delete by
//! filter, cosine collections, API keys, the result cache, query batching and load
//! shedding.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::call;
use fathom_serve::ServeConfig;
use fathom_serve::api::{App, router};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

fn open_with(dir: &std::path::Path, tune: impl FnOnce(&mut ServeConfig)) -> Arc<App> {
    let mut config = ServeConfig::new(dir);
    config.max_body_bytes = 8 << 20;
    tune(&mut config);
    fathom_serve::server::open(config).unwrap()
}

async fn jcall(app: &Arc<App>, method: &str, uri: &str, body: Value) -> (StatusCode, Value) {
    call(app, method, uri, body.to_string()).await
}

/// A request with headers; the status, the answer's headers and its JSON body.
async fn call_with(
    app: &Arc<App>,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Value,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Body::from(body.to_string())).unwrap();
    let resp = router(app.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, v)
}

/// SplitMix64.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn chance(&mut self, p: f32) -> bool {
        self.unit() < p
    }
    fn vectors(&mut self, n: usize, d: usize) -> Vec<Vec<f32>> {
        (0..n)
            .map(|_| (0..d).map(|_| self.unit()).collect())
            .collect()
    }
}

const CATEGORIES: [&str; 5] = ["books", "music", "films", "games", "toys"];
const TAGS: [&str; 6] = ["red", "green", "blue", "new", "sale", "rare"];

fn date(day: u64) -> String {
    format!(
        "2024-{:02}-{:02}T{:02}:00:00Z",
        1 + day / 28 % 12,
        1 + day % 28,
        day % 24
    )
}

/// Random metadata: some fields missing, some null.
fn random_meta(r: &mut Rng) -> Value {
    let mut m = serde_json::Map::new();
    if r.chance(0.9) {
        m.insert("price".into(), json!(r.below(100)));
    }
    if r.chance(0.8) {
        m.insert("score".into(), json!(r.unit() * 10.0 - 5.0));
    }
    if r.chance(0.9) {
        m.insert("category".into(), json!(CATEGORIES[r.below(5) as usize]));
    } else if r.chance(0.5) {
        m.insert("category".into(), Value::Null);
    }
    if r.chance(0.85) {
        m.insert("flag".into(), json!(r.chance(0.5)));
    }
    if r.chance(0.8) {
        let n = r.below(4);
        let tags: Vec<&str> = (0..n).map(|_| TAGS[r.below(6) as usize]).collect();
        m.insert("tags".into(), json!(tags));
    }
    if r.chance(0.8) {
        m.insert("when".into(), json!(date(r.below(300))));
    }
    if r.chance(0.7) {
        m.insert("a".into(), json!({ "b": r.below(10) }));
    }
    Value::Object(m)
}

fn get<'a>(m: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(m, |v, k| v.get(k))
}

/// The values a leaf condition looks at: an array's elements, or the value itself.
fn values(m: &Value, path: &str) -> Vec<Value> {
    match get(m, path) {
        Some(Value::Array(a)) => a.clone(),
        Some(v) => vec![v.clone()],
        None => vec![],
    }
}

fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn cmp_ok(v: &Value, op: &str, bound: &Value) -> bool {
    let ord = match (v, bound) {
        (Value::Number(_), Value::Number(_)) => {
            v.as_f64().unwrap().partial_cmp(&bound.as_f64().unwrap())
        }
        // Every date here has one format, so text order is time order.
        (Value::String(a), Value::String(b)) => Some(a.as_str().cmp(b.as_str())),
        _ => None,
    };
    let Some(o) = ord else { return false };
    match op {
        "gt" => o.is_gt(),
        "gte" => o.is_ge(),
        "lt" => o.is_lt(),
        _ => o.is_le(),
    }
}

/// The test's own evaluator of the filters it generates (both syntaxes).
fn passes(f: &Value, m: &Value) -> bool {
    let o = f.as_object().unwrap();
    o.iter().all(|(k, v)| match k.as_str() {
        "$and" | "must" => v.as_array().unwrap().iter().all(|g| passes(g, m)),
        "$or" | "should" => v.as_array().unwrap().iter().any(|g| passes(g, m)),
        "$not" => !passes(v, m),
        "must_not" => !v.as_array().unwrap().iter().any(|g| passes(g, m)),
        "key" => qdrant_condition(o, m),
        "match" | "range" => true, // read with "key"
        "is_empty" => {
            let p = v["key"].as_str().unwrap();
            matches!(get(m, p), None | Some(Value::Null))
                || get(m, p)
                    .and_then(|x| x.as_array())
                    .is_some_and(|a| a.is_empty())
        }
        "is_null" => get(m, v["key"].as_str().unwrap()) == Some(&Value::Null),
        field => field_passes(field, v, m),
    })
}

fn qdrant_condition(o: &serde_json::Map<String, Value>, m: &Value) -> bool {
    let path = o["key"].as_str().unwrap();
    let vals = values(m, path);
    if let Some(mt) = o.get("match") {
        if let Some(v) = mt.get("value") {
            return vals.iter().any(|x| same(x, v));
        }
        if let Some(any) = mt.get("any") {
            return vals
                .iter()
                .any(|x| any.as_array().unwrap().iter().any(|v| same(x, v)));
        }
        let except = mt["except"].as_array().unwrap();
        return !vals.iter().any(|x| except.iter().any(|v| same(x, v)));
    }
    let range = o["range"].as_object().unwrap();
    vals.iter()
        .any(|x| range.iter().all(|(op, b)| cmp_ok(x, op, b)))
}

fn field_passes(path: &str, cond: &Value, m: &Value) -> bool {
    let vals = values(m, path);
    let Some(ops) = cond.as_object() else {
        return vals.iter().any(|x| same(x, cond));
    };
    ops.iter().all(|(op, arg)| match op.as_str() {
        "$eq" => vals.iter().any(|x| same(x, arg)),
        "$ne" => !vals.iter().any(|x| same(x, arg)),
        "$in" => vals
            .iter()
            .any(|x| arg.as_array().unwrap().iter().any(|v| same(x, v))),
        "$nin" => !vals
            .iter()
            .any(|x| arg.as_array().unwrap().iter().any(|v| same(x, v))),
        "$exists" => arg.as_bool().unwrap() == !matches!(get(m, path), None | Some(Value::Null)),
        o => {
            let op = o.trim_start_matches('$');
            vals.iter().any(|x| cmp_ok(x, op, arg))
        }
    })
}

/// A random leaf condition, in one syntax or the other; covers every operator.
fn random_leaf(r: &mut Rng) -> Value {
    let cat = || CATEGORIES[0];
    let _ = cat;
    match r.below(17) {
        0 => json!({ "category": CATEGORIES[r.below(5) as usize] }),
        1 => json!({ "price": { "$eq": r.below(100) } }),
        2 => json!({ "category": { "$ne": CATEGORIES[r.below(5) as usize] } }),
        3 => json!({ "tags": { "$in": [TAGS[r.below(6) as usize], TAGS[r.below(6) as usize]] } }),
        4 => json!({ "category": { "$nin": [CATEGORIES[r.below(5) as usize]] } }),
        5 => json!({ "price": { "$gt": r.below(100), "$lte": 50 + r.below(60) } }),
        6 => json!({ "score": { "$gte": r.unit() * 10.0 - 5.0 } }),
        7 => json!({ "score": { "$lt": r.unit() * 10.0 - 5.0 } }),
        8 => json!({ "when": { "$gte": date(r.below(300)), "$lt": date(r.below(300)) } }),
        9 => json!({ "flag": { "$exists": r.chance(0.5) } }),
        10 => json!({ "a.b": { "$in": [r.below(10), r.below(10)] } }),
        11 => json!({ "key": "category", "match": { "value": CATEGORIES[r.below(5) as usize] } }),
        12 => json!({ "key": "tags", "match": { "any": [TAGS[r.below(6) as usize]] } }),
        13 => json!({ "key": "tags", "match": { "except": [TAGS[r.below(6) as usize]] } }),
        14 => json!({ "key": "price", "range": { "gte": r.below(50), "lt": 40 + r.below(60) } }),
        15 => json!({ "is_empty": { "key": if r.chance(0.5) { "tags" } else { "category" } } }),
        _ => {
            if r.chance(0.5) {
                json!({ "is_null": { "key": "category" } })
            } else {
                json!({ "flag": true })
            }
        }
    }
}

fn random_filter(r: &mut Rng, depth: u32) -> Value {
    if depth == 0 || r.chance(0.4) {
        return random_leaf(r);
    }
    let n = 1 + r.below(3) as usize;
    let parts: Vec<Value> = (0..n).map(|_| random_filter(r, depth - 1)).collect();
    match r.below(6) {
        0 => json!({ "$and": parts }),
        1 => json!({ "$or": parts }),
        2 => json!({ "$not": parts[0] }),
        3 => json!({ "must": parts }),
        4 => json!({ "should": parts }),
        _ => json!({ "must": [parts[0]], "must_not": parts[1..] }),
    }
}

fn l2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_filters_equal_brute_force_over_the_filtered_subset() {
    let dir = tempfile::tempdir().unwrap();
    let app = open_with(dir.path(), |c| c.cache_bytes = 0);
    let d = 8;
    let n = 1500;
    let mut r = Rng(7);
    let vectors: Vec<Vec<f32>> = r.vectors(n, d);
    let metas: Vec<Value> = (0..n).map(|_| random_meta(&mut r)).collect();
    let ids: Vec<Value> = (0..n)
        .map(|i| {
            if i % 2 == 0 {
                json!(format!("item-{i}"))
            } else {
                json!(i * 1000)
            }
        })
        .collect();
    for (name, index) in [("flat", "Flat"), ("ivf", "IVF16,Flat"), ("hnsw", "HNSW16")] {
        let (s, v) = jcall(
            &app,
            "PUT",
            &format!("/collections/{name}"),
            json!({ "dim": d, "index": index }),
        )
        .await;
        assert!(s.is_success(), "{v}");
        let (s, v) = jcall(
            &app,
            "POST",
            &format!("/collections/{name}/items"),
            json!({ "ids": ids, "vectors": vectors, "metadata": metas }),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let mut live: Vec<bool> = vec![true; n];
    let mut checked = [0usize; 3];
    for case in 0..260 {
        if case == 130 {
            // Writes in between: deletes by filter and by id, upserts changing metadata.
            for name in ["flat", "ivf", "hnsw"] {
                let (s, v) = jcall(
                    &app,
                    "DELETE",
                    &format!("/collections/{name}/items"),
                    json!({ "filter": { "category": "toys" } }),
                )
                .await;
                assert_eq!(s, StatusCode::OK, "{v}");
                let (s, _) = jcall(
                    &app,
                    "DELETE",
                    &format!("/collections/{name}/items"),
                    json!({ "ids": [ids[1], ids[2]] }),
                )
                .await;
                assert_eq!(s, StatusCode::OK);
            }
            for (i, m) in metas.iter().enumerate() {
                if m.get("category") == Some(&json!("toys")) {
                    live[i] = false;
                }
            }
            live[1] = false;
            live[2] = false;
        }
        let f = random_filter(&mut r, 3);
        let q: Vec<f32> = r.vectors(1, d).remove(0);
        let k = 1 + r.below(15) as usize;
        let mut expected: Vec<(f32, usize)> = (0..n)
            .filter(|&i| live[i] && passes(&f, &metas[i]))
            .map(|i| (l2(&q, &vectors[i]), i))
            .collect();
        expected.sort_by(|a, b| a.0.total_cmp(&b.0));
        let allowed = expected.len();
        let expected: Vec<Value> = expected
            .iter()
            .take(k)
            .map(|&(_, i)| ids[i].clone())
            .collect();
        for (slot, name) in ["flat", "ivf", "hnsw"].iter().enumerate() {
            let (s, v) = jcall(
                &app,
                "POST",
                &format!("/collections/{name}/search"),
                json!({ "vector": q, "top_k": k, "filter": f, "with_metadata": false }),
            )
            .await;
            assert_eq!(s, StatusCode::OK, "{f}: {v}");
            let got: Vec<Value> = v["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["id"].clone())
                .collect();
            // Flat is exact; IVF and HNSW scan a small allowed set exactly.
            if *name == "flat" || allowed <= 40 {
                assert_eq!(got, expected, "{name}, case {case}, filter {f}");
                checked[slot] += 1;
            } else {
                assert!(got.len() <= k);
                for id in &got {
                    let i = ids.iter().position(|x| x == id).unwrap();
                    assert!(live[i] && passes(&f, &metas[i]), "{name}: {id} fails {f}");
                }
            }
        }
    }
    assert_eq!(checked[0], 260);
    assert!(checked[1] >= 40 && checked[2] >= 40, "{checked:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ids_upsert_get_list_and_delete_by_filter() {
    let dir = tempfile::tempdir().unwrap();
    {
        let app = open_with(dir.path(), |_| {});
        let (s, _) = jcall(&app, "PUT", "/collections/c", json!({ "dim": 2 })).await;
        assert_eq!(s, StatusCode::CREATED);
        let (s, v) = jcall(
            &app,
            "POST",
            "/collections/c/items",
            json!({ "ids": ["a", 7, "b"], "vectors": [[0, 0], [1, 1], [2, 2]],
                    "metadata": [{"n": 1}, {"n": 2}, {"n": 3}] }),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["ids"], json!(["a", 7, "b"]));
        // Adding an existing id is a conflict; upserting replaces.
        let (s, v) = jcall(
            &app,
            "POST",
            "/collections/c/items",
            json!({ "ids": ["a"], "vectors": [[5, 5]] }),
        )
        .await;
        assert_eq!(s, StatusCode::CONFLICT, "{v}");
        let (s, v) = jcall(
            &app,
            "PUT",
            "/collections/c/items",
            json!({ "ids": ["a", "z"], "vectors": [[9, 9], [3, 3]], "metadata": [{"n": 10}, {"n": 26}] }),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (s, v) = jcall(&app, "GET", "/collections/c/items/a", json!(null)).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["vector"], json!([9.0, 9.0]));
        assert_eq!(v["metadata"], json!({"n": 10}));
        let (s, v) = jcall(&app, "GET", "/collections/c/items/7", json!(null)).await;
        assert_eq!((s, v["metadata"]["n"].clone()), (StatusCode::OK, json!(2)));
        let (s, _) = jcall(&app, "GET", "/collections/c/items/nope", json!(null)).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        // The old vector of "a" is gone from searches.
        let (_, v) = jcall(
            &app,
            "POST",
            "/collections/c/search",
            json!({ "vector": [0.1, 0.1], "top_k": 4 }),
        )
        .await;
        let order: Vec<Value> = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].clone())
            .collect();
        assert_eq!(order, vec![json!(7), json!("b"), json!("z"), json!("a")]);
        assert_eq!(
            app.service
                .get("c")
                .unwrap()
                .live
                .read()
                .unwrap()
                .items
                .len(),
            4
        );
        let (s, v) = jcall(
            &app,
            "POST",
            "/collections/c/items/get",
            json!({ "ids": ["z", "missing", 7], "with_vectors": false }),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["missing"], json!(["missing"]));
        assert_eq!(v["items"].as_array().unwrap().len(), 2);
        assert!(v["items"][0].get("vector").is_none());
        let (_, v) = jcall(
            &app,
            "POST",
            "/collections/c/search",
            json!({ "vector": [0, 0], "filter_ids": ["z", "b"], "top_k": 5 }),
        )
        .await;
        let order: Vec<Value> = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].clone())
            .collect();
        assert_eq!(order, vec![json!("b"), json!("z")]);
    }
    // Reopened: ids, upserts and metadata survive.
    let app = open_with(dir.path(), |_| {});
    let (s, v) = jcall(&app, "GET", "/collections/c/items/a", json!(null)).await;
    assert_eq!(
        (s, v["vector"].clone()),
        (StatusCode::OK, json!([9.0, 9.0]))
    );
    // Paging: every item exactly once, in pages of 3.
    let more: Vec<Value> = (0..20).map(|i| json!(format!("m{i}"))).collect();
    let vecs: Vec<Vec<f32>> = (0..20).map(|i| vec![i as f32, 0.0]).collect();
    let metas: Vec<Value> = (0..20).map(|i| json!({ "even": i % 2 == 0 })).collect();
    let (s, _) = jcall(
        &app,
        "POST",
        "/collections/c/items",
        json!({ "ids": more, "vectors": vecs, "metadata": metas }),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let uri = match &cursor {
            Some(c) => format!("/collections/c/items?limit=3&cursor={c}"),
            None => "/collections/c/items?limit=3".to_string(),
        };
        let (s, v) = jcall(&app, "GET", &uri, json!(null)).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let page = v["items"].as_array().unwrap();
        assert!(page.len() <= 3);
        seen.extend(page.iter().map(|it| it["id"].clone()));
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 24);
    let unique: std::collections::HashSet<String> = seen.iter().map(|v| v.to_string()).collect();
    assert_eq!(unique.len(), 24);
    let (_, v) = jcall(
        &app,
        "POST",
        "/collections/c/items/list",
        json!({ "filter": { "even": true }, "limit": 100, "offset": 2 }),
    )
    .await;
    assert_eq!(v["items"].as_array().unwrap().len(), 8);
    // Delete by filter: exactly the matching ones.
    let (s, v) = jcall(
        &app,
        "DELETE",
        "/collections/c/items",
        json!({ "filter": { "even": false } }),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["deleted"].as_array().unwrap().len(), 10);
    let (_, v) = jcall(
        &app,
        "POST",
        "/collections/c/items/list",
        json!({ "limit": 100 }),
    )
    .await;
    assert_eq!(v["items"].as_array().unwrap().len(), 14);
    let (s, v) = jcall(
        &app,
        "DELETE",
        "/collections/c/items",
        json!({ "ids": ["a", "a", "nope"] }),
    )
    .await;
    assert_eq!((s, v["deleted"].clone()), (StatusCode::OK, json!(["a"])));
}

#[tokio::test]
async fn cosine_collections_normalise_and_score_in_range() {
    let dir = tempfile::tempdir().unwrap();
    let app = open_with(dir.path(), |_| {});
    let (s, v) = jcall(
        &app,
        "PUT",
        "/collections/cos",
        json!({ "dim": 3, "metric": "cosine", "index": "HNSW8" }),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["metric"], "cosine");
    let vectors = json!([[3, 0, 0], [0, 0.01, 0], [1, 1, 0], [-5, 0, 0]]);
    let (s, _) = jcall(
        &app,
        "POST",
        "/collections/cos/items",
        json!({ "vectors": vectors }),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = jcall(
        &app,
        "POST",
        "/collections/cos/search",
        json!({ "vector": [100, 0, 0], "top_k": 4 }),
    )
    .await;
    let hits = v["results"].as_array().unwrap();
    assert_eq!(hits[0]["id"], 0);
    assert!((hits[0]["score"].as_f64().unwrap() - 1.0).abs() < 1e-5);
    assert!((hits[1]["score"].as_f64().unwrap() - 0.5f64.sqrt()).abs() < 1e-5);
    assert!((hits[3]["score"].as_f64().unwrap() + 1.0).abs() < 1e-5);
    for h in hits {
        let s = h["score"].as_f64().unwrap();
        assert!((-1.0 - 1e-5..=1.0 + 1e-5).contains(&s));
    }
    let (_, v) = jcall(&app, "GET", "/collections/cos/items/1", json!(null)).await;
    assert_eq!(v["vector"], json!([0.0, 1.0, 0.0]), "stored normalised");
    let (_, v) = jcall(
        &app,
        "POST",
        "/collections/cos/search",
        json!({ "vector": [1, 0, 0], "min_score": 0.6 }),
    )
    .await;
    assert_eq!(v["results"].as_array().unwrap().len(), 2);
    for body in [
        json!({ "vectors": [[0, 0, 0]] }),
        json!({ "vector": [0, 0, 0] }),
    ] {
        let route = if body.get("vectors").is_some() {
            "items"
        } else {
            "search"
        };
        let (s, v) = jcall(&app, "POST", &format!("/collections/cos/{route}"), body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(v["error"].as_str().unwrap().contains("norm"), "{v}");
    }
}

#[tokio::test]
async fn api_keys_gate_routes_by_role() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(
        &keys,
        "# test keys\nreader-key-0123456789 read\nwriter-key-0123456789 write\nadmin-key-01234567890 admin\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let app = open_with(&data, |c| c.api_keys = Some(keys.clone()));
    let admin = [("authorization", "Bearer admin-key-01234567890")];
    let writer = [("x-api-key", "writer-key-0123456789")];
    let reader = [("authorization", "Bearer reader-key-0123456789")];
    let (s, h, v) = call_with(&app, "PUT", "/collections/k", &[], json!({ "dim": 2 })).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    assert!(h.get("www-authenticate").is_some());
    let (s, _, _) = call_with(
        &app,
        "PUT",
        "/collections/k",
        &[("x-api-key", "wrong-key-0123456789")],
        json!({ "dim": 2 }),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, v) = call_with(&app, "PUT", "/collections/k", &writer, json!({ "dim": 2 })).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(
        !v.to_string().contains("writer-key"),
        "keys never appear in answers"
    );
    let (s, _, _) = call_with(&app, "PUT", "/collections/k", &admin, json!({ "dim": 2 })).await;
    assert_eq!(s, StatusCode::CREATED);
    let add = json!({ "vectors": [[1, 2]] });
    let (s, _, _) = call_with(&app, "POST", "/collections/k/items", &reader, add.clone()).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = call_with(&app, "POST", "/collections/k/items", &writer, add).await;
    assert_eq!(s, StatusCode::OK);
    let q = json!({ "vector": [1, 2] });
    let (s, _, _) = call_with(&app, "POST", "/collections/k/search", &reader, q.clone()).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = call_with(&app, "POST", "/collections/k/search", &[], q).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, _) = call_with(&app, "GET", "/health", &[], json!(null)).await;
    assert_eq!(s, StatusCode::OK, "health stays open for load balancers");
    let (s, _, _) = call_with(&app, "POST", "/snapshot", &writer, json!(null)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // A reload picks up a changed file.
    std::fs::write(&keys, "reader-key-0123456789 admin\n").unwrap();
    app.keys.as_ref().unwrap().reload().unwrap();
    let (s, _, _) = call_with(&app, "DELETE", "/collections/k", &reader, json!(null)).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = call_with(&app, "GET", "/collections", &writer, json!(null)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "a removed key is refused");
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in metrics"))
}

#[tokio::test]
async fn the_cache_answers_repeats_and_writes_invalidate_it() {
    let dir = tempfile::tempdir().unwrap();
    let app = open_with(dir.path(), |_| {});
    jcall(&app, "PUT", "/collections/c", json!({ "dim": 2 })).await;
    jcall(
        &app,
        "POST",
        "/collections/c/items",
        json!({ "vectors": [[5, 5], [9, 9]] }),
    )
    .await;
    let q = json!({ "vector": [0, 0], "top_k": 1 });
    let (_, first) = jcall(&app, "POST", "/collections/c/search", q.clone()).await;
    let (_, again) = jcall(&app, "POST", "/collections/c/search", q.clone()).await;
    assert_eq!(first, again);
    assert_eq!((app.cache.hits(), app.cache.misses()), (1, 1));
    // An add nearer the query: the next search sees it.
    jcall(
        &app,
        "POST",
        "/collections/c/items",
        json!({ "vectors": [[0.5, 0.5]] }),
    )
    .await;
    let (_, after) = jcall(&app, "POST", "/collections/c/search", q.clone()).await;
    assert_eq!(after["results"][0]["id"], 2, "{after}");
    // So does a delete, and an upsert.
    jcall(
        &app,
        "DELETE",
        "/collections/c/items",
        json!({ "ids": [2] }),
    )
    .await;
    let (_, v) = jcall(&app, "POST", "/collections/c/search", q.clone()).await;
    assert_eq!(v["results"][0]["id"], 0);
    jcall(
        &app,
        "PUT",
        "/collections/c/items",
        json!({ "ids": [1], "vectors": [[0.1, 0]] }),
    )
    .await;
    let (_, v) = jcall(&app, "POST", "/collections/c/search", q.clone()).await;
    assert_eq!(v["results"][0]["id"], 1);
    let (_, text) = call(&app, "GET", "/metrics", "").await;
    let text = text.as_str().unwrap().to_string();
    assert_eq!(metric(&text, "fathom_cache_hits_total"), 1.0);
    assert_eq!(metric(&text, "fathom_cache_misses_total"), 4.0);
    for name in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "fathom_uptime_seconds",
        "process_cpu_seconds_total",
    ] {
        assert!(metric(&text, name) >= 0.0);
    }
    assert!(text.trim_end().ends_with("# EOF"));
    // Turned off, nothing is kept.
    let dir2 = tempfile::tempdir().unwrap();
    let off = open_with(dir2.path(), |c| c.cache_bytes = 0);
    jcall(&off, "PUT", "/collections/c", json!({ "dim": 2 })).await;
    jcall(&off, "POST", "/collections/c/search", q.clone()).await;
    jcall(&off, "POST", "/collections/c/search", q).await;
    assert_eq!((off.cache.hits(), off.cache.misses()), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_single_searches_are_batched_and_exact() {
    let dir = tempfile::tempdir().unwrap();
    let app = open_with(dir.path(), |c| {
        c.cache_bytes = 0;
        c.traffic.batch_window = Duration::from_millis(20);
    });
    let d = 16;
    let mut r = Rng(3);
    let vectors: Vec<Vec<f32>> = r.vectors(3000, d);
    jcall(&app, "PUT", "/collections/c", json!({ "dim": d })).await;
    jcall(
        &app,
        "POST",
        "/collections/c/items",
        json!({ "vectors": vectors }),
    )
    .await;
    let queries: Vec<Vec<f32>> = r.vectors(48, d);
    let mut tasks = Vec::new();
    for (i, q) in queries.iter().enumerate() {
        let app = app.clone();
        let q = q.clone();
        tasks.push(tokio::spawn(async move {
            let k = 1 + i % 7;
            let (s, v) = jcall(
                &app,
                "POST",
                "/collections/c/search",
                json!({ "vector": q, "top_k": k }),
            )
            .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            v["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["id"].as_u64().unwrap() as usize)
                .collect::<Vec<_>>()
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let got = t.await.unwrap();
        let mut order: Vec<(f32, usize)> = vectors
            .iter()
            .enumerate()
            .map(|(j, v)| (l2(&queries[i], v), j))
            .collect();
        order.sort_by(|a, b| a.0.total_cmp(&b.0));
        let want: Vec<usize> = order.iter().take(1 + i % 7).map(|p| p.1).collect();
        assert_eq!(got, want, "query {i}");
    }
    let t = &app.traffic;
    let batches = t.batches.load(std::sync::atomic::Ordering::Relaxed);
    let batched = t.batched_queries.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(batched, 48);
    assert!(
        batches < 48,
        "{batches} batches for 48 concurrent queries: nothing was gathered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_beyond_the_queue_is_shed_with_retry_after_and_the_server_stays_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let app = open_with(dir.path(), |c| {
        c.cache_bytes = 0;
        c.traffic.max_queue = 8;
        c.traffic.batch_window = Duration::ZERO;
    });
    let d = 64;
    let mut r = Rng(5);
    let vectors: Vec<Vec<f32>> = r.vectors(20_000, d);
    jcall(&app, "PUT", "/collections/c", json!({ "dim": d })).await;
    for chunk in vectors.chunks(5000) {
        jcall(
            &app,
            "POST",
            "/collections/c/items",
            json!({ "vectors": chunk }),
        )
        .await;
    }
    let queries: Vec<Vec<f32>> = r.vectors(4, d);
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let app = app.clone();
        let body = json!({ "vectors": queries, "top_k": 5 });
        tasks.push(tokio::spawn(async move {
            call_with(&app, "POST", "/collections/c/search", &[], body).await
        }));
    }
    let (mut ok, mut shed) = (0, 0);
    for t in tasks {
        let (s, h, v) = t.await.unwrap();
        match s {
            StatusCode::OK => ok += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                shed += 1;
                let after: u64 = h
                    .get("retry-after")
                    .expect("Retry-After")
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(after >= 1);
                assert!(v["error"].as_str().unwrap().contains("queue"), "{v}");
            }
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert!(ok >= 1 && shed >= 1, "ok {ok}, shed {shed}");
    let (s, _) = jcall(&app, "GET", "/health", json!(null)).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = jcall(
        &app,
        "POST",
        "/collections/c/search",
        json!({ "vector": queries[0] }),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        app.service.get("c").unwrap().lane.queued(),
        0,
        "every ticket was given back"
    );
    let (_, text) = call(&app, "GET", "/metrics", "").await;
    assert_eq!(
        metric(text.as_str().unwrap(), "fathom_search_shed_total"),
        shed as f64
    );
    // A deadline that cannot be met is refused at once too.
    let (s, h, _) = call_with(
        &app,
        "POST",
        "/collections/c/search",
        &[],
        json!({ "vectors": queries, "deadline_ms": 0 }),
    )
    .await;
    assert!(
        s == StatusCode::OK
            || (s == StatusCode::SERVICE_UNAVAILABLE && h.get("retry-after").is_some())
    );
}

#[tokio::test]
async fn bad_input_on_the_new_routes_gets_the_promised_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let app = open_with(dir.path(), |_| {});
    jcall(&app, "PUT", "/collections/c", json!({ "dim": 2 })).await;
    jcall(
        &app,
        "POST",
        "/collections/c/items",
        json!({ "ids": ["x"], "vectors": [[1, 1]] }),
    )
    .await;
    let cases: Vec<(&str, &str, Value, StatusCode, &str)> = vec![
        (
            "PUT",
            "/collections/d",
            json!({ "dim": 2, "metric": "manhattan" }),
            StatusCode::BAD_REQUEST,
            "cosine",
        ),
        (
            "POST",
            "/collections/c/search",
            json!({ "vector": [1, 1], "filter": { "price": { "$gtx": 1 } } }),
            StatusCode::BAD_REQUEST,
            "$gtx",
        ),
        (
            "POST",
            "/collections/c/search",
            json!({ "vector": [1, 1], "filter": [1] }),
            StatusCode::BAD_REQUEST,
            "filter",
        ),
        (
            "POST",
            "/collections/c/search",
            json!({ "vector": [1, 1], "filter_ids": [-1] }),
            StatusCode::BAD_REQUEST,
            "unsigned",
        ),
        (
            "POST",
            "/collections/c/search",
            json!({ "vector": [1, 1], "deadline_ms": -5 }),
            StatusCode::BAD_REQUEST,
            "expected u64",
        ),
        (
            "POST",
            "/collections/c/items",
            json!({ "ids": [1.5], "vectors": [[1, 1]] }),
            StatusCode::BAD_REQUEST,
            "unsigned",
        ),
        (
            "POST",
            "/collections/c/items",
            json!({ "ids": [""], "vectors": [[1, 1]] }),
            StatusCode::BAD_REQUEST,
            "string id",
        ),
        (
            "POST",
            "/collections/c/items",
            json!({ "ids": ["p", "p"], "vectors": [[1, 1], [2, 2]] }),
            StatusCode::BAD_REQUEST,
            "twice",
        ),
        (
            "POST",
            "/collections/c/items",
            json!({ "ids": ["q"], "vectors": [[1, 1], [2, 2]] }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "ids",
        ),
        (
            "POST",
            "/collections/c/items",
            json!({ "vectors": [[1, 1]], "metadata": [[1]] }),
            StatusCode::BAD_REQUEST,
            "object",
        ),
        (
            "PUT",
            "/collections/c/items",
            json!({ "vectors": [[1, 1]] }),
            StatusCode::BAD_REQUEST,
            "ids",
        ),
        (
            "PUT",
            "/collections/c/items",
            json!({ "ids": ["y"], "vectors": [[1]] }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "components",
        ),
        (
            "DELETE",
            "/collections/c/items",
            json!({}),
            StatusCode::BAD_REQUEST,
            "exactly one",
        ),
        (
            "DELETE",
            "/collections/c/items",
            json!({ "ids": ["x"], "filter": {} }),
            StatusCode::BAD_REQUEST,
            "exactly one",
        ),
        (
            "DELETE",
            "/collections/c/items",
            json!({ "filter": { "$or": "x" } }),
            StatusCode::BAD_REQUEST,
            "filter",
        ),
        (
            "POST",
            "/collections/c/items/get",
            json!({ "ids": [{}] }),
            StatusCode::BAD_REQUEST,
            "id",
        ),
        (
            "POST",
            "/collections/c/items/get",
            json!({ "idz": [] }),
            StatusCode::BAD_REQUEST,
            "unknown field",
        ),
        (
            "POST",
            "/collections/c/items/list",
            json!({ "limit": 0 }),
            StatusCode::BAD_REQUEST,
            "limit",
        ),
        (
            "POST",
            "/collections/c/items/list",
            json!({ "cursor": "abc" }),
            StatusCode::BAD_REQUEST,
            "cursor",
        ),
        (
            "GET",
            "/collections/c/items?limit=-1",
            json!(null),
            StatusCode::BAD_REQUEST,
            "",
        ),
        (
            "GET",
            "/collections/nope/items/x",
            json!(null),
            StatusCode::NOT_FOUND,
            "nope",
        ),
        (
            "POST",
            "/collections/nope/items/list",
            json!({}),
            StatusCode::NOT_FOUND,
            "nope",
        ),
        (
            "GET",
            "/collections/c/items/zzz",
            json!(null),
            StatusCode::NOT_FOUND,
            "zzz",
        ),
    ];
    for (method, uri, body, status, says) in cases {
        let (s, v) = jcall(&app, method, uri, body.clone()).await;
        assert_eq!(s, status, "{method} {uri} {body}: {v}");
        assert!(v["error"].is_string(), "{method} {uri}: {v}");
        assert!(
            v["error"].as_str().unwrap().contains(says),
            "{method} {uri} {body}: {v}"
        );
    }
    // Random bodies on the new routes never make a 5xx.
    let mut r = Rng(11);
    let atoms = [
        json!(null),
        json!(1),
        json!(-1),
        json!(1e300),
        json!("x"),
        json!([]),
        json!({}),
        json!([1, 2]),
        json!(["a"]),
        json!({"$and": []}),
    ];
    let fields = [
        "ids",
        "vectors",
        "metadata",
        "filter",
        "limit",
        "cursor",
        "offset",
        "with_vectors",
        "vector",
        "top_k",
        "filter_ids",
    ];
    for _ in 0..300 {
        let mut body = serde_json::Map::new();
        for _ in 0..r.below(4) {
            body.insert(
                fields[r.below(fields.len() as u64) as usize].into(),
                atoms[r.below(atoms.len() as u64) as usize].clone(),
            );
        }
        let (method, uri) = [
            ("PUT", "/collections/c/items"),
            ("POST", "/collections/c/items/get"),
            ("POST", "/collections/c/items/list"),
            ("DELETE", "/collections/c/items"),
            ("POST", "/collections/c/search"),
        ][r.below(5) as usize];
        let (s, v) = jcall(&app, method, uri, Value::Object(body.clone())).await;
        assert!(!s.is_server_error(), "{method} {uri} {body:?}: {s} {v}");
    }
}

#[tokio::test]
async fn under_pressure_searches_run_degraded_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let app = open_with(dir.path(), |c| {
        c.cache_bytes = 0;
        c.traffic.degrade = true;
        c.traffic.max_queue = 4;
    });
    let d = 8;
    let mut r = Rng(9);
    let vectors: Vec<Vec<f32>> = r.vectors(2000, d);
    jcall(
        &app,
        "PUT",
        "/collections/ivf",
        json!({ "dim": d, "index": "IVF16,Flat" }),
    )
    .await;
    jcall(
        &app,
        "POST",
        "/collections/ivf/items",
        json!({ "vectors": vectors }),
    )
    .await;
    let q = json!({ "vector": vectors[0], "top_k": 3, "params": { "nprobe": 8 } });
    let (_, calm) = jcall(&app, "POST", "/collections/ivf/search", q.clone()).await;
    assert!(calm.get("degraded").is_none(), "{calm}");
    // Two queries already queued: the queue is half full.
    let c = app.service.get("ivf").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let _held = c.lane.admit(&app.traffic, 2, deadline).ok().unwrap();
    let (s, v) = jcall(&app, "POST", "/collections/ivf/search", q).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["degraded"], json!(true), "{v}");
    assert_eq!(
        v["results"][0]["id"], 0,
        "the query's own vector is still found"
    );
    let (_, text) = call(&app, "GET", "/metrics", "").await;
    assert_eq!(
        metric(text.as_str().unwrap(), "fathom_search_degraded_total"),
        1.0
    );
}

/// Collects what a `tracing` subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);
impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn each_request_logs_one_json_line_without_vectors_or_keys() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "secret-admin-key-0123456789 admin\n").unwrap();
    let data = dir.path().join("data");
    let app = open_with(&data, |c| c.api_keys = Some(keys.clone()));
    let out = Captured::default();
    let sink = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(move || sink.clone())
        .finish();
    let admin = [("x-api-key", "secret-admin-key-0123456789")];
    tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            call_with(&app, "PUT", "/collections/logged", &admin, json!({ "dim": 3 })).await;
            call_with(&app, "POST", "/collections/logged/items", &admin, json!({ "vectors": [[0.125, 0.25, 0.375]], "metadata": [{"secret": "metadata-text"}] })).await;
            call_with(&app, "POST", "/collections/logged/search", &admin, json!({ "vectors": [[0.625, 0.75, 0.875], [1, 2, 3]], "top_k": 7 })).await;
            call_with(&app, "GET", "/collections", &[], json!(null)).await;
        });
    });
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let requests: Vec<&Value> = lines.iter().filter(|l| l["message"] == "request").collect();
    assert_eq!(requests.len(), 4, "{text}");
    let search = requests
        .iter()
        .find(|l| l["route"] == "/collections/{name}/search")
        .unwrap();
    assert_eq!(search["status"], 200);
    assert_eq!(search["collection"], "logged");
    assert_eq!(search["queries"], 2);
    assert_eq!(search["k"], 7);
    assert!(search["latency_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(requests[3]["status"], 401);
    for secret in ["0.625", "0.125", "secret-admin-key", "metadata-text"] {
        assert!(
            !text.contains(secret),
            "{secret} leaked into the log: {text}"
        );
    }
}

#[test]
fn the_server_serves_https_with_its_certificate() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let dir = tempfile::tempdir().unwrap();
    let app = open_with(dir.path(), |c| {
        c.tls = Some((fixtures.join("cert.pem"), fixtures.join("key.pem")));
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    rt.spawn(fathom_serve::server::serve(
        app,
        "127.0.0.1:0".parse().unwrap(),
        None,
        move |a| tx.send(a).unwrap(),
    ));
    let addr = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let answer = rt.block_on(async {
        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(fixtures.join("cert.pem")).unwrap();
        use rustls::pki_types::pem::PemObject;
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
            roots.add(cert.unwrap()).unwrap();
        }
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        tls.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        tls.read_to_end(&mut out).await.unwrap();
        String::from_utf8_lossy(&out).into_owned()
    });
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"status\":\"ok\""), "{answer}");
    rt.shutdown_background();
}
