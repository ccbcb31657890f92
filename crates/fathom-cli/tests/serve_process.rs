//! `fathom serve` as a process: the soak test (adds, deletes, retrains, snapshots and
//! searches from several threads, then `kill -9` and a restart that must have lost
//! nothing acknowledged and hold no half of anything unacknowledged), signals, host names,
//! the demo's temporary directory and one server per data directory.
//!
//! Every server is started on 127.0.0.1 and killed when its guard drops, also when a test
//! fails; every request has a timeout, so a hang fails the test instead of stalling it.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Proc, fathom, http};
use serde_json::{Value, json};

/// `fathom serve --port 0 ARGS [--data-dir DIR]`, started.
fn start(args: &[&str], dir: Option<&Path>) -> Proc {
    let mut cmd = fathom();
    cmd.args(["serve", "--port", "0"]).args(args);
    if let Some(d) = dir {
        cmd.arg("--data-dir").arg(d);
    }
    common::start(cmd)
}

fn ok(addr: &str, method: &str, path: &str, body: Value) -> Value {
    let (s, v) = http(addr, method, path, &body.to_string()).unwrap();
    assert!((200..300).contains(&s), "{method} {path}: {s} {v}");
    v
}

/// SplitMix64 coordinates in [0, 1).
fn vec_of(seed: u64, d: usize) -> Vec<f32> {
    (0..d as u64)
        .map(|i| {
            let mut z = seed
                .wrapping_mul(1000)
                .wrapping_add(i)
                .wrapping_add(1)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

/// What the clients were told, per collection.
#[derive(Default)]
struct Ledger {
    /// Acknowledged adds: id → batch tag.
    added: HashMap<i64, String>,
    /// Batch sizes by tag (acknowledged or not).
    batches: HashMap<String, usize>,
    /// Ids whose delete was acknowledged.
    deleted: HashSet<i64>,
    /// Ids a delete was sent for (acknowledged or not).
    delete_sent: HashSet<i64>,
}

const D: usize = 8;
const COLLECTIONS: [(&str, &str); 3] =
    [("flat", "Flat"), ("ivf", "IVF16,Flat"), ("hnsw", "HNSW16")];

#[test]
fn soak_then_kill_9_loses_nothing_acknowledged() {
    let secs: u64 = std::env::var("FATHOM_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let dir = tempfile::tempdir().unwrap();
    let server = start(&["--snapshot-secs", "2", "--keep", "2"], Some(dir.path()));
    let addr = server.addr.clone();
    let ledgers: Arc<HashMap<&str, Mutex<Ledger>>> = Arc::new(
        COLLECTIONS
            .iter()
            .map(|(n, _)| (*n, Mutex::new(Ledger::default())))
            .collect(),
    );
    for (name, index) in COLLECTIONS {
        ok(
            &addr,
            "PUT",
            &format!("/collections/{name}"),
            json!({"dim": D, "index": index}),
        );
        // A first batch large enough to train the IVF lists.
        add_batch(&addr, name, "seed", 1000, &ledgers);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    // Writers: batches of 40 items into every collection.
    for w in 0..2 {
        let (addr, stop, ledgers) = (addr.clone(), stop.clone(), ledgers.clone());
        threads.push(std::thread::spawn(move || {
            let mut round = 0;
            while !stop.load(Ordering::Relaxed) {
                for (name, _) in COLLECTIONS {
                    if !add_batch(&addr, name, &format!("w{w}-{round}"), 40, &ledgers) {
                        return;
                    }
                }
                round += 1;
            }
        }));
    }
    // A deleter: a few acknowledged ids at a time.
    {
        let (addr, stop, ledgers) = (addr.clone(), stop.clone(), ledgers.clone());
        threads.push(std::thread::spawn(move || {
            let mut turn = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for (name, _) in COLLECTIONS {
                    let ids: Vec<i64> = {
                        let mut l = ledgers[name].lock().unwrap();
                        let mut pick: Vec<i64> = l
                            .added
                            .keys()
                            .filter(|id| !l.delete_sent.contains(id))
                            .copied()
                            .filter(|id| (*id as u64 + turn).is_multiple_of(7))
                            .take(5)
                            .collect();
                        pick.sort();
                        l.delete_sent.extend(&pick);
                        pick
                    };
                    let Ok((s, v)) = http(
                        &addr,
                        "DELETE",
                        &format!("/collections/{name}/items"),
                        &json!({ "ids": ids }).to_string(),
                    ) else {
                        return;
                    };
                    assert_eq!(s, 200, "{v}");
                    let gone: Vec<i64> = serde_json::from_value(v["deleted"].clone()).unwrap();
                    assert_eq!(gone, ids, "every id sent was live");
                    ledgers[name].lock().unwrap().deleted.extend(gone);
                }
                turn += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
        }));
    }
    // Retrains and snapshots.
    {
        let (addr, stop) = (addr.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let mut turn = 0;
            while !stop.load(Ordering::Relaxed) {
                let name = COLLECTIONS[turn % 3].0;
                let path = if turn % 2 == 0 {
                    format!("/collections/{name}/retrain")
                } else {
                    "/snapshot".to_string()
                };
                match http(&addr, "POST", &path, "") {
                    Ok((s, v)) => assert_eq!(s, 200, "{path}: {v}"),
                    Err(_) => return,
                }
                turn += 1;
                std::thread::sleep(Duration::from_millis(300));
            }
        }));
    }
    // Searchers: every hit has its metadata.
    for r in 0..2u64 {
        let (addr, stop) = (addr.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let mut turn = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let name = COLLECTIONS[(turn % 3) as usize].0;
                let q = vec_of(1_000_000 + r * 1000 + turn, D);
                let Ok((s, v)) = http(
                    &addr,
                    "POST",
                    &format!("/collections/{name}/search"),
                    &json!({"vector": q, "top_k": 5}).to_string(),
                ) else {
                    return;
                };
                assert_eq!(s, 200, "{v}");
                for h in v["results"].as_array().unwrap() {
                    assert!(h["metadata"]["batch"].is_string(), "{h}");
                }
                turn += 1;
            }
        }));
    }
    std::thread::sleep(Duration::from_secs(secs));
    // kill -9 in the middle of it all.
    let mut server = server;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    drop(server);

    let mut server = start(&["--snapshot-secs", "0"], Some(dir.path()));
    let addr = server.addr.clone();
    let mut served = HashMap::new();
    let mut counts = HashMap::new();
    for (name, _) in COLLECTIONS {
        let described = ok(&addr, "GET", &format!("/collections/{name}"), json!({}));
        counts.insert(name, described["items"].as_u64().unwrap() as usize);
        if name != "hnsw" {
            // Exhaustive listings through the restarted indexes (a graph search is not).
            served.insert(
                name,
                stored_items(&addr, name, &ledgers[name].lock().unwrap()),
            );
        }
    }
    // A graceful stop, then the database itself.
    server.signal("-TERM");
    assert!(server.child.wait().unwrap().success());
    drop(server);
    let db = fathom_serve::store::ItemStore::open(&dir.path().join("items.sqlite")).unwrap();
    for (name, _) in COLLECTIONS {
        let l = ledgers[name].lock().unwrap();
        let mut stored: HashMap<i64, String> = HashMap::new();
        db.for_each_item(name, 0, |it| {
            let m: Value = serde_json::from_str(&it.metadata).unwrap();
            stored.insert(it.id, m["batch"].as_str().unwrap().to_string());
            Ok(())
        })
        .unwrap();
        assert_eq!(
            counts[name],
            stored.len(),
            "{name}: the server's item count"
        );
        if let Some(s) = served.get(name) {
            assert!(
                s == &stored,
                "{name}: the restarted index and the database differ"
            );
        }
        let must: BTreeMap<i64, &String> = l
            .added
            .iter()
            .filter(|(id, _)| !l.deleted.contains(id))
            .map(|(id, b)| (*id, b))
            .collect();
        for (id, batch) in &must {
            assert_eq!(
                stored.get(id),
                Some(*batch),
                "{name}: acknowledged item {id} of batch {batch} was lost"
            );
        }
        for id in &l.deleted {
            assert!(
                !stored.contains_key(id),
                "{name}: acknowledged delete of {id} undone"
            );
        }
        // Unacknowledged batches are wholly present or wholly absent.
        let mut by_batch: HashMap<&String, usize> = HashMap::new();
        for b in stored.values() {
            *by_batch.entry(b).or_default() += 1;
        }
        for (batch, n) in by_batch {
            let acked = l.added.values().any(|b| b == batch);
            if !acked {
                assert_eq!(
                    n, l.batches[batch],
                    "{name}: unacknowledged batch {batch} is half there"
                );
            }
        }
        eprintln!(
            "{name}: {} acknowledged adds, {} acknowledged deletes, {} items after kill -9",
            l.added.len(),
            l.deleted.len(),
            stored.len()
        );
    }
}

/// Adds a batch tagged `tag`; `false` when the server is gone.
fn add_batch(
    addr: &str,
    name: &str,
    tag: &str,
    n: usize,
    ledgers: &HashMap<&str, Mutex<Ledger>>,
) -> bool {
    let tag = format!("{name}-{tag}");
    let seed0 = tag
        .bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
    let vectors: Vec<Vec<f32>> = (0..n as u64)
        .map(|i| vec_of(seed0.wrapping_add(i * 7919), D))
        .collect();
    let metadata: Vec<Value> = (0..n).map(|i| json!({"batch": tag, "i": i})).collect();
    ledgers[name].lock().unwrap().batches.insert(tag.clone(), n);
    let Ok((s, v)) = http(
        addr,
        "POST",
        &format!("/collections/{name}/items"),
        &json!({"vectors": vectors, "metadata": metadata}).to_string(),
    ) else {
        return false;
    };
    assert_eq!(s, 200, "{v}");
    let ids: Vec<i64> = serde_json::from_value(v["ids"].clone()).unwrap();
    assert_eq!(ids.len(), n);
    let mut l = ledgers[name].lock().unwrap();
    for id in ids {
        l.added.insert(id, tag.clone());
    }
    true
}

/// Every item of collection `name` the server returns, listed by exhaustive searches
/// (nprobe = all lists) restricted to 500 ids at a time with `top_k` 500. id → batch tag.
fn stored_items(addr: &str, name: &str, l: &Ledger) -> HashMap<i64, String> {
    let described = ok(addr, "GET", &format!("/collections/{name}"), json!({}));
    let items = described["items"].as_u64().unwrap() as usize;
    // Ids are consecutive from 0; every id below the next one is asked for.
    let max_id = l.added.keys().max().copied().unwrap_or(0) + 2000;
    let mut found = HashMap::new();
    let ids: Vec<i64> = (0..=max_id).collect();
    let params = match name {
        "ivf" => json!({"nprobe": 16}),
        _ => json!({}),
    };
    for chunk in ids.chunks(500) {
        // A query far from everything returns the filtered ids nearest to it: with top_k
        // equal to the chunk, all those that exist.
        let body = json!({
            "vector": vec![0.5f32; D],
            "top_k": chunk.len(),
            "filter_ids": chunk,
            "params": params,
        });
        let v = ok(addr, "POST", &format!("/collections/{name}/search"), body);
        for h in v["results"].as_array().unwrap() {
            found.insert(
                h["id"].as_i64().unwrap(),
                h["metadata"]["batch"].as_str().unwrap().to_string(),
            );
        }
    }
    assert_eq!(found.len(), items, "{name}: exhaustive listing");
    found
}

#[test]
fn a_second_signal_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(&["--snapshot-secs", "0"], Some(dir.path()));
    // A client that announces a body and sends only part of it keeps its request in
    // flight: the first SIGTERM waits for it.
    let mut slow = std::net::TcpStream::connect(&server.addr).unwrap();
    slow.write_all(b"PUT /collections/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"di")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    server.signal("-TERM");
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the first signal waits for the request"
    );
    server.signal("-INT");
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the second signal did not end it"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130));
    std::thread::sleep(Duration::from_millis(100));
    let err = server.stderr();
    assert!(err.contains("second signal"), "{err}");
    drop(slow);
}

#[test]
fn localhost_demo_cleans_up_and_one_server_per_directory() {
    let mut demo = start(&["--host", "localhost"], None);
    assert!(
        demo.addr.starts_with("127.0.0.1:") || demo.addr.starts_with("[::1]:"),
        "{}",
        demo.addr
    );
    let data = demo
        .first_line
        .split("(data in ")
        .nth(1)
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{}", demo.first_line))
        .to_string();
    assert!(Path::new(&data).exists());
    let (s, _) = http(&demo.addr, "GET", "/health", "").unwrap();
    assert_eq!(s, 200);
    demo.signal("-TERM");
    assert!(demo.child.wait().unwrap().success());
    assert!(!Path::new(&data).exists(), "{data} was left behind");

    let dir = tempfile::tempdir().unwrap();
    let _first = start(&[], Some(dir.path()));
    let out = Command::new(env!("CARGO_BIN_EXE_fathom"))
        .args(["serve", "--port", "0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another fathom serve"), "{err}");
}

/// One request with extra headers; the status line and the whole answer.
fn with_headers(addr: &str, method: &str, path: &str, headers: &[&str], body: &str) -> String {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn production_flags_keys_sighup_cors_and_json_logs_as_a_process() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "process-admin-key-0123456789 admin\n").unwrap();
    let data = dir.path().join("data");
    let server = start(
        &[
            "--api-keys",
            keys.to_str().unwrap(),
            "--log-format",
            "json",
            "--cors-origin",
            "https://app.example",
            "--batch-window-us",
            "200",
            "--max-batch",
            "8",
            "--max-queue",
            "64",
            "--deadline-ms",
            "2000",
            "--degrade",
            "--cache-mb",
            "1",
        ],
        Some(&data),
    );
    let addr = server.addr.clone();
    let (s, v) = http(&addr, "PUT", "/collections/p", r#"{"dim": 2}"#).unwrap();
    assert_eq!(s, 401, "{v}");
    let key = "x-api-key: process-admin-key-0123456789";
    let a = with_headers(&addr, "PUT", "/collections/p", &[key], r#"{"dim": 2}"#);
    assert!(a.starts_with("HTTP/1.1 201"), "{a}");
    let a = with_headers(
        &addr,
        "POST",
        "/collections/p/items",
        &[key],
        r#"{"ids": ["a"], "vectors": [[1, 2]]}"#,
    );
    assert!(a.starts_with("HTTP/1.1 200"), "{a}");
    let a = with_headers(
        &addr,
        "OPTIONS",
        "/collections/p/search",
        &[
            "Origin: https://app.example",
            "Access-Control-Request-Method: POST",
        ],
        "",
    );
    assert!(a.starts_with("HTTP/1.1 204"), "{a}");
    assert!(
        a.to_ascii_lowercase()
            .contains("access-control-allow-origin: https://app.example"),
        "{a}"
    );
    // SIGHUP re-reads the keys: the old key goes, the new one works.
    std::fs::write(&keys, "process-read-key-0123456789x read\n").unwrap();
    server.signal("-HUP");
    let search = r#"{"vector": [1, 2], "top_k": 1}"#;
    let t0 = Instant::now();
    loop {
        let a = with_headers(
            &addr,
            "POST",
            "/collections/p/search",
            &["Authorization: Bearer process-read-key-0123456789x"],
            search,
        );
        if a.starts_with("HTTP/1.1 200") {
            assert!(a.contains(r#""id":"a""#), "{a}");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "no reload: {a}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let a = with_headers(&addr, "POST", "/collections/p/search", &[key], search);
    assert!(a.starts_with("HTTP/1.1 401"), "{a}");
    // One JSON line per request on stderr, never a key.
    let log = server.stderr.lock().unwrap().clone();
    let lines: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["message"] == "request")
        .collect();
    assert!(lines.len() >= 5, "{log}");
    assert!(
        lines
            .iter()
            .any(|l| l["route"] == "/collections/{name}/search"
                && l["status"] == 200
                && l["k"] == 1),
        "{log}"
    );
    assert!(!log.contains("0123456789"), "a key reached the log: {log}");
}
