//! `fathom serve` against a model: random adds, upserts, deletes (by id and by filter),
//! retrains, collection drops, snapshots, `kill -9` and SIGTERM restarts, over a Flat/L2,
//! an HNSW/cosine and an IVF/inner-product collection with number and string ids. After
//! restarts and every few steps the server's items (listed page by page, in order) must
//! equal the model's — every acknowledged write there, bit for bit, nothing else — and
//! exact searches with filters must equal brute force over the model.
//!
//! `FATHOM_MODEL_STEPS` (default 1500, about 3 s) and `FATHOM_MODEL_SEED` vary the run.
//! Servers bind 127.0.0.1 and are killed when their guard drops, also when the test fails.

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::{Proc, fathom, http};
use serde_json::{Value, json};

const D: usize = 4;
const COLLECTIONS: [(&str, &str, &str); 3] = [
    ("flat", "Flat", "l2"),
    ("hnsw", "HNSW8", "cosine"),
    ("ivf", "IVF4,Flat", "ip"),
];

/// xorshift64*: the test's only source of randomness, so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// A float in [-1, 1) with 17 significant digits' worth of bits.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
    fn id(&mut self) -> Value {
        let n = self.below(60);
        if self.below(2) == 0 {
            json!(n)
        } else {
            json!(format!("s{n}"))
        }
    }
    fn vector(&mut self) -> Vec<f32> {
        (0..D).map(|_| self.unit() as f32).collect()
    }
    fn metadata(&mut self) -> Value {
        let mut m = json!({"g": self.below(5)});
        if self.below(2) == 0 {
            m["t"] = json!(["a", "b", "c"][self.below(3) as usize]);
        }
        if self.below(5) == 0 {
            m["n"] = json!({"x": self.unit()});
        }
        m
    }
    fn filter(&mut self) -> Value {
        let f = match self.below(3) {
            0 => json!({"g": self.below(5)}),
            1 => {
                let skip = self.below(3) as usize;
                let two: Vec<&str> = ["a", "b", "c"]
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| *i != skip)
                    .map(|(_, t)| t)
                    .collect();
                json!({"t": {"$in": two}})
            }
            _ => json!({"g": {"$gte": self.below(5)}}),
        };
        if self.below(5) == 0 {
            json!({"$not": f})
        } else {
            f
        }
    }
}

/// Whether metadata `m` passes a filter of the forms [`Rng::filter`] makes.
fn passes(f: &Value, m: &Value) -> bool {
    if let Some(inner) = f.get("$not") {
        return !passes(inner, m);
    }
    let (key, cond) = f.as_object().unwrap().iter().next().unwrap();
    let val = m.get(key);
    if let Some(any) = cond.get("$in") {
        return val.is_some_and(|v| any.as_array().unwrap().contains(v));
    }
    if let Some(lo) = cond.get("$gte") {
        return val
            .and_then(Value::as_f64)
            .is_some_and(|v| v >= lo.as_f64().unwrap());
    }
    val == Some(cond)
}

/// One collection as the clients were told it is: items in the order the server numbers
/// them (an upsert moves an item to the end).
#[derive(Default)]
struct Model {
    items: HashMap<String, (Vec<f32>, Value)>,
    order: Vec<Value>,
}

impl Model {
    fn put(&mut self, id: &Value, v: Vec<f32>, m: Value) {
        if self.items.insert(id.to_string(), (v, m)).is_some() {
            self.order.retain(|o| o != id);
        }
        self.order.push(id.clone());
    }
    fn remove(&mut self, id: &Value) {
        self.items.remove(&id.to_string());
        self.order.retain(|o| o != id);
    }
    fn has(&self, id: &Value) -> bool {
        self.items.contains_key(&id.to_string())
    }
}

fn normalized(v: &[f32], metric: &str) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if metric == "cosine" && n > 0.0 {
        v.iter().map(|x| x / n).collect()
    } else {
        v.to_vec()
    }
}

struct Server {
    proc: Proc,
    dir: std::path::PathBuf,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let mut cmd = fathom();
        cmd.args(["serve", "--port", "0", "--snapshot-secs", "0", "--data-dir"])
            .arg(dir);
        Server {
            proc: common::start(cmd),
            dir: dir.to_path_buf(),
        }
    }
    fn call(&self, method: &str, path: &str, body: Value) -> (u16, Value) {
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        http(&self.proc.addr, method, path, &body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.proc.stderr()))
    }
    fn ok(&self, method: &str, path: &str, body: Value) -> Value {
        let (s, v) = self.call(method, path, body);
        assert!((200..300).contains(&s), "{method} {path}: {s} {v}");
        v
    }
    fn restart(&mut self, sig: &str) {
        if sig == "-KILL" {
            self.proc.kill();
        } else {
            self.proc.signal(sig);
            let t = std::time::Instant::now();
            while self.proc.child.try_wait().unwrap().is_none() {
                assert!(
                    t.elapsed() < std::time::Duration::from_secs(60),
                    "the server did not stop within 60 s of {sig}"
                );
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        *self = Server::start(&self.dir.clone());
    }

    /// Lists every item, page by page, and compares with the model.
    fn check(&self, name: &str, metric: &str, model: &Model, when: &str) {
        let (mut items, mut cursor, mut limit) = (Vec::new(), Value::Null, 3);
        loop {
            let mut body = json!({"limit": limit, "with_vectors": true});
            if !cursor.is_null() {
                body["cursor"] = cursor;
            }
            let page = self.ok("POST", &format!("/collections/{name}/items/list"), body);
            items.extend(page["items"].as_array().unwrap().iter().cloned());
            cursor = page["next_cursor"].clone();
            if cursor.is_null() {
                break;
            }
            limit = limit * 2 + 1;
        }
        let ids: Vec<&Value> = items.iter().map(|i| &i["id"]).collect();
        assert_eq!(
            ids,
            model.order.iter().collect::<Vec<_>>(),
            "{when}: {name}'s items (in order)"
        );
        for item in &items {
            let (v, m) = &model.items[&item["id"].to_string()];
            assert_eq!(&item["metadata"], m, "{when}: {name} {}", item["id"]);
            let got: Vec<f32> = serde_json::from_value(item["vector"].clone()).unwrap();
            let want = normalized(v, metric);
            assert!(
                got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-6),
                "{when}: {name} {}: {got:?} vs {want:?}",
                item["id"]
            );
        }
    }

    /// An exact search, perhaps filtered, against brute force over the model.
    fn check_search(&self, name: &str, metric: &str, model: &Model, rng: &mut Rng, when: &str) {
        let q = rng.vector();
        let filter = (rng.below(5) < 3).then(|| rng.filter());
        let mut body = json!({"vector": q, "top_k": 5, "exact": true});
        if let Some(f) = &filter {
            body["filter"] = f.clone();
        }
        let r = self.ok("POST", &format!("/collections/{name}/search"), body);
        let q = normalized(&q, metric);
        // Smaller is better for both keys: L2 distance, negated similarity.
        let mut want: Vec<f32> = model
            .items
            .values()
            .filter(|(_, m)| filter.as_ref().is_none_or(|f| passes(f, m)))
            .map(|(v, _)| {
                let v = normalized(v, metric);
                match metric {
                    "l2" => v.iter().zip(&q).map(|(a, b)| (a - b) * (a - b)).sum(),
                    _ => -v.iter().zip(&q).map(|(a, b)| a * b).sum::<f32>(),
                }
            })
            .collect();
        want.sort_by(f32::total_cmp);
        want.truncate(5);
        let hits = r["results"].as_array().unwrap();
        let got: Vec<f32> = hits
            .iter()
            .map(|h| {
                let s = h["score"].as_f64().unwrap() as f32;
                if metric == "l2" { s } else { -s }
            })
            .collect();
        assert_eq!(got.len(), want.len(), "{when}: {name} {filter:?}: {r}");
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() < 1e-4,
                "{when}: {name} {filter:?}: {got:?} vs {want:?}"
            );
        }
        for h in hits {
            let (_, m) = &model.items[&h["id"].to_string()];
            assert!(
                filter.as_ref().is_none_or(|f| passes(f, m)),
                "{when}: {h} fails {filter:?}"
            );
        }
    }
}

/// Adds `n` fresh items (enough to train the IVF collection).
fn seed_items(s: &Server, name: &str, tag: &str, model: &mut Model, rng: &mut Rng) {
    let ids: Vec<Value> = (0..60).map(|i| json!(format!("{tag}{i}"))).collect();
    let vs: Vec<Vec<f32>> = ids.iter().map(|_| rng.vector()).collect();
    let ms: Vec<Value> = ids.iter().map(|_| rng.metadata()).collect();
    s.ok(
        "POST",
        &format!("/collections/{name}/items"),
        json!({"ids": ids, "vectors": vs, "metadata": ms}),
    );
    for ((id, v), m) in ids.iter().zip(vs).zip(ms) {
        model.put(id, v, m);
    }
}

#[test]
fn random_operations_and_restarts_agree_with_a_model() {
    let steps: usize = std::env::var("FATHOM_MODEL_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1500);
    let seed = std::env::var("FATHOM_MODEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2026_1206);
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path());
    let mut models: HashMap<&str, Model> = HashMap::new();
    for (name, index, metric) in COLLECTIONS {
        s.ok(
            "PUT",
            &format!("/collections/{name}"),
            json!({"dim": D, "index": index, "metric": metric}),
        );
        seed_items(&s, name, "init", models.entry(name).or_default(), &mut rng);
    }
    let mut restarts = 0;
    for step in 0..steps {
        let (name, index, metric) = COLLECTIONS[rng.below(3) as usize];
        let model = models.get_mut(name).unwrap();
        let when = format!("step {step}");
        match rng.below(100) {
            // Add (409 and nothing changed when an id exists) or upsert.
            r @ 0..40 => {
                let upsert = r >= 20;
                let mut ids: Vec<Value> = Vec::new();
                for _ in 0..1 + rng.below(5) {
                    let id = rng.id();
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
                let vs: Vec<Vec<f32>> = ids.iter().map(|_| rng.vector()).collect();
                let ms: Vec<Value> = ids.iter().map(|_| rng.metadata()).collect();
                let (st, v) = s.call(
                    if upsert { "PUT" } else { "POST" },
                    &format!("/collections/{name}/items"),
                    json!({"ids": ids, "vectors": vs, "metadata": ms}),
                );
                if !upsert && ids.iter().any(|id| model.has(id)) {
                    assert_eq!(st, 409, "{when}: {v}");
                    continue;
                }
                assert_eq!(st, 200, "{when}: {v}");
                for ((id, v), m) in ids.iter().zip(vs).zip(ms) {
                    model.put(id, v, m);
                }
            }
            50..60 => {
                let ids: Vec<Value> = (0..1 + rng.below(4)).map(|_| rng.id()).collect();
                let r = s.ok(
                    "DELETE",
                    &format!("/collections/{name}/items"),
                    json!({"ids": ids}),
                );
                let mut want: Vec<String> = Vec::new();
                for id in &ids {
                    if model.has(id) && !want.contains(&id.to_string()) {
                        want.push(id.to_string());
                    }
                }
                let mut got: Vec<String> = r["deleted"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(Value::to_string)
                    .collect();
                got.sort();
                want.sort();
                assert_eq!(got, want, "{when}: deleted");
                for id in &ids {
                    model.remove(id);
                }
            }
            60..64 => {
                let f = rng.filter();
                let r = s.ok(
                    "DELETE",
                    &format!("/collections/{name}/items"),
                    json!({"filter": f}),
                );
                let gone: Vec<Value> = model
                    .order
                    .iter()
                    .filter(|id| passes(&f, &model.items[&id.to_string()].1))
                    .cloned()
                    .collect();
                assert_eq!(
                    r["deleted"].as_array().unwrap().len(),
                    gone.len(),
                    "{when}: deleted by {f}: {r}"
                );
                for id in &gone {
                    model.remove(id);
                }
            }
            40..50 => {
                let ids: Vec<Value> = (0..3).map(|_| rng.id()).collect();
                let r = s.ok(
                    "POST",
                    &format!("/collections/{name}/items/get"),
                    json!({"ids": ids, "with_vectors": false}),
                );
                for item in r["items"].as_array().unwrap() {
                    let (_, m) = &model.items[&item["id"].to_string()];
                    assert_eq!(&item["metadata"], m, "{when}: get {}", item["id"]);
                }
                let found = r["items"].as_array().unwrap().len();
                // One entry per id asked for, a repeated one repeated.
                let want = ids.iter().filter(|id| model.has(id)).count();
                assert_eq!(found, want, "{when}: get {ids:?}: {r}");
            }
            64..80 => s.check_search(name, metric, model, &mut rng, &when),
            80..84 => {
                // Retrain needs enough items for the IVF lists.
                let (st, v) = s.call("POST", &format!("/collections/{name}/retrain"), json!({}));
                assert!(
                    st == 200 || (index.starts_with("IVF") && st == 400),
                    "{when}: {st} {v}"
                );
            }
            84..86 => {
                s.ok("DELETE", &format!("/collections/{name}"), Value::Null);
                *model = Model::default();
                s.ok(
                    "PUT",
                    &format!("/collections/{name}"),
                    json!({"dim": D, "index": index, "metric": metric}),
                );
                seed_items(&s, name, &format!("re{step}-"), model, &mut rng);
            }
            86..90 => {
                s.ok("POST", "/snapshot", Value::Null);
            }
            r @ 90..95 => {
                s.restart(if r < 93 { "-KILL" } else { "-TERM" });
                restarts += 1;
                for (n, _, m) in COLLECTIONS {
                    s.check(n, m, &models[n], &format!("{when}, after a restart"));
                }
                continue;
            }
            _ => {}
        }
        if step % 10 == 0 {
            s.check(name, metric, &models[name], &when);
        }
    }
    for (n, _, m) in COLLECTIONS {
        s.check(n, m, &models[n], "at the end");
    }
    assert!(restarts >= 3, "only {restarts} restarts in {steps} steps");
}
