//! Sharded search under etcd membership (docs/SCALE.md, "Membership, replication and
//! failover"): a 3-member etcd cluster, four `fathom searcher --etcd` processes that take
//! their shards by rendezvous hashing, routers that follow etcd. Under a closed-loop load
//! a searcher is SIGKILLed and another SIGSTOPped: with replication 2 no answer is an
//! error, partial or late, every answer equals the single index's, and the dead
//! searcher's shards are READY twice again soon after. With replication 1 the answers
//! while a shard is gone are flagged partial (or 503 with `min_coverage` 1). A publish
//! switches every router to the new version; losing etcd members, then all of etcd, and a
//! router does not stop the answers. etcd is Debian's `etcd-server` (installed with apt
//! where missing; SKIPPED where it cannot be).

mod common;

use fathom_tests::harness::{Outcome, PASSED, skipped};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::etcd::EtcdCluster;
use common::sharded::*;
use common::{Proc, fathom, http, run, start};
use fathom_core::{SearchParams, SearchResult};
use serde_json::{Value, json};

const NPROBE: usize = 8;
/// The base: a million vectors, so that shards are files of some size (32 MB).
const NB_CLUSTER: usize = 1_000_000;

fn searcher(store: &str, etcd: &str, member: &str, r: usize, cache: &Path, ttl: u64) -> Proc {
    searcher_with(store, etcd, member, r, cache, ttl, &[])
}

fn searcher_with(
    store: &str,
    etcd: &str,
    member: &str,
    r: usize,
    cache: &Path,
    ttl: u64,
    extra: &[&str],
) -> Proc {
    let mut cmd = fathom();
    cmd.args([
        "searcher", "--store", store, "--name", "vecs", "--etcd", etcd,
    ])
    .args(extra)
    .args(["--member", member, "--replication", &r.to_string()])
    .args(["--lease-ttl-s", &ttl.to_string(), "--listen", "127.0.0.1:0"])
    .arg("--cache")
    .arg(cache);
    start(cmd)
}

fn router(store: &str, etcd: &str, r: usize, deadline_ms: u64) -> Proc {
    let mut cmd = fathom();
    cmd.args(["serve", "--router", "--store", store, "--name", "vecs"])
        .args(["--etcd", etcd, "--replication", &r.to_string()])
        .args(["--port", "0", "--deadline-ms", &deadline_ms.to_string()])
        .args(["--hedge-ms", "50"]);
    start(cmd)
}

fn health(router: &str) -> Value {
    http(router, "GET", "/health", "")
        .map(|r| r.1)
        .unwrap_or(Value::Null)
}

/// READY replicas per shard of the served version, from a router's `/health`.
fn ready_counts(router: &str) -> Vec<usize> {
    health(router)["replicas"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| s["ready"].as_u64().unwrap_or(0) as usize)
                .collect()
        })
        .unwrap_or_default()
}

/// Polls `ok` every 100 ms for at most `limit`; how long it took.
fn wait_for(limit: Duration, mut ok: impl FnMut() -> bool) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if ok() {
            return Some(t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn one_query(router: &str, q: &[f32], min_coverage: f64) -> Result<(u16, Value), String> {
    let body = json!({
        "vector": q, "top_k": K, "params": {"nprobe": NPROBE}, "min_coverage": min_coverage,
    });
    http(
        router,
        "POST",
        "/collections/vecs/search",
        &body.to_string(),
    )
}

/// Whether a complete answer to query `i` equals the reference (ties allowed).
fn equals_reference(answer: &Value, reference: &SearchResult, i: usize) -> bool {
    let wrapped = json!({ "results": [answer["results"].clone()] });
    let got = hits(&wrapped);
    let want = SearchResult {
        nq: 1,
        k: K,
        labels: reference.labels[i * K..(i + 1) * K].to_vec(),
        distances: reference.distances[i * K..(i + 1) * K].to_vec(),
    };
    std::panic::catch_unwind(|| agreeing(&got, &want)).is_ok_and(|n| n == 1)
}

/// What a closed-loop load saw.
#[derive(Default, Debug)]
struct LoadReport {
    answers: usize,
    errors: Vec<String>,
    partial: usize,
    wrong: usize,
    latencies_ms: Vec<f64>,
    versions: std::collections::BTreeSet<u64>,
}

impl LoadReport {
    fn p99(&mut self) -> f64 {
        self.latencies_ms.sort_by(f64::total_cmp);
        self.latencies_ms
            .get(self.latencies_ms.len() * 99 / 100)
            .copied()
            .unwrap_or(0.0)
    }
}

/// `clients` threads searching single queries through `routers` in turn until `stop`.
fn load(
    routers: Vec<String>,
    queries: Arc<Vec<f32>>,
    reference: Arc<SearchResult>,
    clients: usize,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<LoadReport> {
    std::thread::spawn(move || {
        let workers: Vec<_> = (0..clients)
            .map(|c| {
                let (routers, queries, reference, stop) = (
                    routers.clone(),
                    queries.clone(),
                    reference.clone(),
                    stop.clone(),
                );
                std::thread::spawn(move || {
                    let mut r = LoadReport::default();
                    let mut n = c;
                    while !stop.load(Ordering::Relaxed) {
                        let i = n % NQ;
                        let router = &routers[n % routers.len()];
                        n += clients;
                        let t = Instant::now();
                        let out = one_query(router, &queries[i * D..(i + 1) * D], 1.0);
                        r.latencies_ms.push(t.elapsed().as_secs_f64() * 1e3);
                        match out {
                            Ok((200, v)) => {
                                r.answers += 1;
                                r.versions.insert(v["manifest_version"].as_u64().unwrap());
                                if v["partial"] != false {
                                    r.partial += 1;
                                } else if !equals_reference(&v, &reference, i) {
                                    r.wrong += 1;
                                }
                            }
                            Ok((status, v)) => r.errors.push(format!("{status}: {v}")),
                            Err(e) => r.errors.push(format!("{router}: {e}")),
                        }
                    }
                    r
                })
            })
            .collect();
        let mut all = LoadReport::default();
        for w in workers {
            let r = w.join().unwrap();
            all.answers += r.answers;
            all.errors.extend(r.errors);
            all.partial += r.partial;
            all.wrong += r.wrong;
            all.latencies_ms.extend(r.latencies_ms);
            all.versions.extend(r.versions);
        }
        all
    })
}

struct Setup {
    _tmp: tempfile::TempDir,
    etcd: EtcdCluster,
    store: String,
    queries: Arc<Vec<f32>>,
    reference: Arc<SearchResult>,
    caches: std::path::PathBuf,
}

/// etcd, the data, the sharded index (4 shards, published through etcd) and the
/// single-index reference; without etcd, the skipped outcome saying why.
fn setup() -> Result<Setup, Outcome> {
    let etcd = EtcdCluster::start(3)
        .map_err(|why| skipped(format!("no etcd cluster could be started: {why}")))?;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    gen_data_n(&data, NB_CLUSTER);
    let store = store_url(&tmp.path().join("store"));
    build(
        &data,
        &store,
        "vecs",
        "IVF256,Flat",
        4,
        &["--etcd", &etcd.endpoints()],
    );
    let single = single_index(&store, "vecs", &data);
    let queries = queries(&data);
    let mut params = SearchParams::default();
    params.nprobe = Some(NPROBE);
    let reference = single.search_with(&queries, K, &params).unwrap();
    Ok(Setup {
        caches: tmp.path().join("caches"),
        _tmp: tmp,
        etcd,
        store,
        queries: Arc::new(queries),
        reference: Arc::new(reference),
    })
}

fn replicas_take_over_from_killed_and_stopped_searchers() -> Outcome {
    let mut s = match setup() {
        Ok(s) => s,
        Err(skip) => return skip,
    };
    let ep = s.etcd.endpoints();
    let http_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let http_addr = format!("127.0.0.1:{http_port}");
    let mut searchers: Vec<Proc> = (0..4)
        .map(|i| {
            let cache = s.caches.join(format!("s{i}"));
            let http = ["--http", http_addr.as_str()];
            let extra: &[&str] = if i == 3 { &http } else { &[] };
            searcher_with(&s.store, &ep, &format!("s{i}"), 2, &cache, 2, extra)
        })
        .collect();
    let deadline_ms = 1000;
    let mut routers: Vec<Proc> = (0..2)
        .map(|_| router(&s.store, &ep, 2, deadline_ms))
        .collect();
    let ready = wait_for(Duration::from_secs(60), || {
        ready_counts(&routers[0].addr) == [2, 2, 2, 2] && ready_counts(&routers[1].addr) == [2; 4]
    });
    assert!(
        ready.is_some(),
        "not every shard READY twice: {}\n{}",
        health(&routers[0].addr),
        searchers.iter().map(Proc::stderr).collect::<String>()
    );

    // A searcher's own /health and /metrics.
    let (status, h) = http(&http_addr, "GET", "/health", "").unwrap();
    assert_eq!(status, 200, "{h}");
    assert_eq!(h["member"]["member"], "s3", "{h}");
    assert_eq!(h["member"]["registered"], true, "{h}");
    let assigned = h["member"]["assigned"].as_array().unwrap().len();
    assert_eq!(h["held"].as_array().unwrap().len(), assigned, "{h}");

    // Equivalence with the single index, through both routers.
    for r in &routers {
        let rows: Vec<Vec<f32>> = s.queries.chunks(D).map(<[f32]>::to_vec).collect();
        let body = json!({"vectors": rows, "top_k": K, "params": {"nprobe": NPROBE}});
        let (status, v) = http(
            &r.addr,
            "POST",
            "/collections/vecs/search",
            &body.to_string(),
        )
        .unwrap();
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["partial"], false);
        assert_eq!(agreeing(&hits(&v), &s.reference), NQ);
    }

    // Load through both routers; kill one searcher, stop another, continue it.
    let stop = Arc::new(AtomicBool::new(false));
    let running = load(
        routers.iter().map(|r| r.addr.clone()).collect(),
        s.queries.clone(),
        s.reference.clone(),
        4,
        stop.clone(),
    );
    std::thread::sleep(Duration::from_secs(2));
    searchers[0].kill();
    // Every shard READY twice again, on members other than the dead one, in both
    // routers' views.
    let rereplicated = wait_for(Duration::from_secs(15), || {
        routers.iter().all(|r| {
            let h = health(&r.addr);
            ready_counts(&r.addr) == [2, 2, 2, 2]
                && h["replicas"].as_array().unwrap().iter().all(|sh| {
                    sh["searchers"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .all(|m| m["member"] != "s0")
                })
        })
    });
    // The second fault comes later (20 s apart in the acceptance run).
    std::thread::sleep(Duration::from_secs(1));
    searchers[1].signal("-STOP");
    std::thread::sleep(Duration::from_secs(3));
    searchers[1].signal("-CONT");
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let mut report = running.join().unwrap();
    let logs: String = searchers.iter().map(Proc::stderr).collect();
    let p99 = report.p99();
    eprintln!(
        "load: {} answers, {} errors, {} partial, {} wrong, P99 {:.1} ms; READY twice again \
         {:?} after the kill; {}",
        report.answers,
        report.errors.len(),
        report.partial,
        report.wrong,
        p99,
        rereplicated,
        health(&routers[0].addr)
    );
    assert!(
        rereplicated.is_some(),
        "the killed searcher's shards were not READY twice again within 15 s: {}\n{logs}",
        health(&routers[0].addr)
    );
    assert!(report.answers > 20, "{report:?}");
    assert!(report.errors.is_empty(), "{:?}\n{logs}", report.errors);
    assert_eq!(report.partial, 0, "{report:?}");
    assert_eq!(report.wrong, 0, "answers differing from the single index");
    assert!(p99 <= deadline_ms as f64 + 100.0, "P99 {p99} ms");
    // The replacement downloaded and verified what it took over.
    assert!(logs.contains("downloaded and verified"), "{logs}");
    let h = health(&routers[0].addr);
    assert!(
        h["hedges"].as_u64().unwrap() + h["retries"].as_u64().unwrap() > 0,
        "{h}"
    );

    // A new version: published through etcd, served once READY everywhere; the old one
    // keeps answering until then, and no answer mixes them.
    let stop = Arc::new(AtomicBool::new(false));
    let running = load(
        routers.iter().map(|r| r.addr.clone()).collect(),
        s.queries.clone(),
        s.reference.clone(),
        2,
        stop.clone(),
    );
    let (ok, out, err) = run(fathom()
        .args(["shard", "publish", "--store", &s.store, "--name", "vecs"])
        .args(["--etcd", &ep]));
    assert!(ok && out.contains("now v2 (was v1)"), "{out}{err}");
    let switched = wait_for(Duration::from_secs(15), || {
        routers
            .iter()
            .all(|r| health(&r.addr)["collection"]["manifest_version"] == 2)
    });
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let report = running.join().unwrap();
    assert!(switched.is_some(), "{}", health(&routers[0].addr));
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!((report.partial, report.wrong), (0, 0));
    assert!(report.versions.contains(&2), "{report:?}");

    // A router dies: the other answers; a new one serves at once.
    let q = &s.queries[..D];
    routers[0].kill();
    assert_eq!(one_query(&routers[1].addr, q, 1.0).unwrap().0, 200);
    let t = Instant::now();
    routers[0] = router(&s.store, &ep, 2, deadline_ms);
    let (status, v) = one_query(&routers[0].addr, q, 1.0).unwrap();
    assert_eq!(status, 200, "{v}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

    // etcd: one member down changes nothing; all down, answers keep flowing on the last
    // view and /health says so.
    s.etcd.kill(0);
    std::thread::sleep(Duration::from_millis(500));
    for i in 0..20 {
        let (status, v) =
            one_query(&routers[i % 2].addr, &s.queries[i * D..(i + 1) * D], 1.0).unwrap();
        assert_eq!(status, 200, "{v}");
        assert!(equals_reference(&v, &s.reference, i));
    }
    s.etcd.kill(1);
    s.etcd.kill(2);
    let noticed = wait_for(Duration::from_secs(15), || {
        health(&routers[1].addr)["warnings"]
            .to_string()
            .contains("etcd unreachable")
    });
    assert!(noticed.is_some(), "{}", health(&routers[1].addr));
    for i in 0..20 {
        let (status, v) =
            one_query(&routers[i % 2].addr, &s.queries[i * D..(i + 1) * D], 1.0).unwrap();
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["partial"], false);
        assert!(equals_reference(&v, &s.reference, i));
    }
    PASSED
}

fn without_replicas_a_lost_shard_is_flagged_until_it_is_reassigned() -> Outcome {
    let s = match setup() {
        Ok(s) => s,
        Err(skip) => return skip,
    };
    let ep = s.etcd.endpoints();
    // A long lease: the lost shards stay assigned to the dead searcher for 6 s.
    let ttl = 6;
    let mut searchers: Vec<Proc> = (0..4)
        .map(|i| {
            let cache = s.caches.join(format!("s{i}"));
            searcher(&s.store, &ep, &format!("s{i}"), 1, &cache, ttl)
        })
        .collect();
    let r = router(&s.store, &ep, 1, 1000);
    assert!(
        wait_for(Duration::from_secs(60), || ready_counts(&r.addr)
            == [1, 1, 1, 1])
        .is_some(),
        "{}",
        health(&r.addr)
    );
    // The member holding the most shards.
    let h = health(&r.addr);
    let mut held: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    for sh in h["replicas"].as_array().unwrap() {
        let m = sh["searchers"][0]["member"].as_str().unwrap().to_string();
        held.entry(m)
            .or_default()
            .push(sh["shard"].as_u64().unwrap());
    }
    let (victim, lost) = held.iter().max_by_key(|(_, v)| v.len()).unwrap();
    let victim_index: usize = victim[1..].parse().unwrap();
    let ntotal = h["collection"]["ntotal"].as_u64().unwrap();
    let ntotal_of = |shard: u64| {
        let m = fathom_dist::builder::slice(shard as u32, 4, ntotal);
        m.end - m.start
    };
    let expect = 1.0 - lost.iter().map(|&x| ntotal_of(x)).sum::<u64>() as f64 / ntotal as f64;

    searchers[victim_index].kill();
    let killed = Instant::now();
    let q = &s.queries[..D];
    for _ in 0..5 {
        let t = Instant::now();
        let (status, v) = one_query(&r.addr, q, 0.0).unwrap();
        assert!(t.elapsed() < Duration::from_millis(1000));
        assert_eq!(status, 200, "{v}");
        if killed.elapsed() < Duration::from_secs(ttl - 1) {
            assert_eq!(v["partial"], true, "{v}");
            assert!(
                (v["coverage"].as_f64().unwrap() - expect).abs() < 1e-9,
                "{v}"
            );
            let missing: Vec<u64> = v["missing_shards"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap())
                .collect();
            assert_eq!(&missing, lost, "{v}");
            let (status, v) = one_query(&r.addr, q, 1.0).unwrap();
            assert_eq!(status, 503, "{v}");
        }
    }
    // The lease expires, the shards are reassigned and loaded elsewhere.
    let healed = wait_for(Duration::from_secs(15 + ttl), || {
        one_query(&r.addr, q, 1.0).is_ok_and(|(st, v)| st == 200 && v["coverage"] == 1.0)
    });
    assert!(healed.is_some(), "{}", health(&r.addr));
    // The searcher comes back (its cache intact): it takes its shards back, and no answer
    // on the way is partial.
    let cache = s.caches.join(format!("s{victim_index}"));
    searchers[victim_index] = searcher(&s.store, &ep, victim, 1, &cache, ttl);
    let back = wait_for(Duration::from_secs(15), || {
        let (st, v) = one_query(&r.addr, q, 1.0).unwrap();
        assert_eq!(st, 200, "{v}");
        assert!(equals_reference(&v, &s.reference, 0));
        health(&r.addr)["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|sh| sh["searchers"][0]["member"] == victim.as_str())
            .count()
            == lost.len()
    });
    assert!(back.is_some(), "{}", health(&r.addr));
    assert!(
        searchers[victim_index]
            .stderr()
            .contains("verified in the cache")
    );
    PASSED
}

fathom_tests::harness::main!(
    replicas_take_over_from_killed_and_stopped_searchers,
    without_replicas_a_lost_shard_is_flagged_until_it_is_reassigned,
);
