//! Sharded search across processes (docs/SCALE.md): `fathom shard build` into an object
//! store, four `fathom searcher` processes, `fathom serve --router`; answers equal the
//! single index's, a killed or stopped searcher gives flagged partial answers (or a 503
//! with `min_coverage` 1) within the deadline, files that fail verification are never
//! served, and faiss-cpu reads the shards. The S3 variant runs against moto's server on
//! 127.0.0.1 (installed into `target/moto-venv` from PyPI; SKIPPED where it cannot be).

mod common;

use fathom_tests::harness::{Outcome, PASSED, skipped};
use std::path::Path;
use std::time::{Duration, Instant};

use common::sharded::*;
use common::{Proc, fathom, http, run, start};
use fathom_core::{IdSelectorRange, SearchParams};
use fathom_dist::{Objects, manifest};
use fathom_index::Index;
use serde_json::json;

fn searcher(store: &str, name: &str, shards: &str, cache: &Path) -> Proc {
    let mut cmd = fathom();
    cmd.args([
        "searcher",
        "--store",
        store,
        "--name",
        name,
        "--shards",
        shards,
        "--listen",
        "127.0.0.1:0",
        "--cache",
    ])
    .arg(cache);
    start(cmd)
}

fn router(store: &str, name: &str, searchers: &[&Proc], deadline_ms: u64) -> Proc {
    router_with(store, name, searchers, deadline_ms, &[])
}

fn router_with(
    store: &str,
    name: &str,
    searchers: &[&Proc],
    deadline_ms: u64,
    extra: &[&str],
) -> Proc {
    let list: Vec<String> = searchers
        .iter()
        .enumerate()
        .map(|(i, s)| format!("s{i}={}", s.addr))
        .collect();
    let mut cmd = fathom();
    cmd.args([
        "serve",
        "--router",
        "--store",
        store,
        "--name",
        name,
        "--port",
        "0",
        "--searchers",
        &list.join(","),
        "--deadline-ms",
        &deadline_ms.to_string(),
    ])
    .args(extra);
    start(cmd)
}

fn sharded_search_equals_the_single_index_and_missing_shards_are_flagged() -> Outcome {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    gen_data(&data);
    let store = store_url(&tmp.path().join("store"));
    build(&data, &store, "vecs", "IVF64,Flat", 4, &[]);
    let mut s: Vec<Proc> = (0..4)
        .map(|i| {
            searcher(
                &store,
                "vecs",
                &i.to_string(),
                &tmp.path().join(format!("cache{i}")),
            )
        })
        .collect();
    let r = router(&store, "vecs", &s.iter().collect::<Vec<_>>(), 3000);
    let (status, health) = http(&r.addr, "GET", "/health", "").unwrap();
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok", "{health}");

    let q = queries(&data);
    let qrows: Vec<&[f32]> = q.chunks(D).collect();
    let mut single = single_index(&store, "vecs", &data);
    for nprobe in [4, 16, 64] {
        single.set_param("nprobe", nprobe as f64).unwrap();
        let want = single.search(&q, K).unwrap();
        let (status, v) = routed(
            &r.addr,
            json!({"vectors": qrows, "top_k": K, "params": {"nprobe": nprobe}}),
        );
        assert_eq!(status, 200, "{v}");
        assert_eq!(
            (v["coverage"].as_f64(), v["partial"].as_bool()),
            (Some(1.0), Some(false)),
            "{v}"
        );
        assert_eq!(v["manifest_version"], 1);
        let same = agreeing(&hits(&v), &want);
        assert!(
            same * 1000 >= NQ * 999,
            "nprobe {nprobe}: {same} of {NQ} queries equal"
        );
    }

    // Quantizing once in the router gives the same answers.
    let once = router_with(
        &store,
        "vecs",
        &s.iter().collect::<Vec<_>>(),
        3000,
        &["--quantize-once"],
    );
    for nprobe in [4, 64] {
        single.set_param("nprobe", nprobe as f64).unwrap();
        let want = single.search(&q, K).unwrap();
        let (status, v) = routed(
            &once.addr,
            json!({"vectors": qrows, "top_k": K, "params": {"nprobe": nprobe}}),
        );
        assert_eq!(status, 200, "{v}");
        assert!(
            agreeing(&hits(&v), &want) * 1000 >= NQ * 999,
            "quantize-once, nprobe {nprobe}"
        );
    }
    drop(once);

    // A one-shard twin on the same training, served by one process (--local), agrees.
    build(
        &data,
        &store,
        "single",
        "IVF64,Flat",
        1,
        &["--training-of", "vecs"],
    );
    let mut cmd = fathom();
    cmd.args([
        "serve", "--router", "--store", &store, "--name", "single", "--port", "0", "--local",
    ])
    .arg(tmp.path().join("local-cache"));
    let local = start(cmd);
    let body = json!({"vectors": qrows, "top_k": K, "params": {"nprobe": 16}});
    let (_, a) = routed(&r.addr, body.clone());
    let (status, b) = http(
        &local.addr,
        "POST",
        "/collections/single/search",
        &body.to_string(),
    )
    .unwrap();
    assert_eq!(status, 200, "{b}");
    single.set_param("nprobe", 16.0).unwrap();
    let want = single.search(&q, K).unwrap();
    assert!(agreeing(&hits(&a), &want) * 1000 >= NQ * 999);
    assert!(agreeing(&hits(&b), &want) * 1000 >= NQ * 999);
    drop(local);

    // A searcher killed during a query loop: every answer arrives within the deadline, and
    // is either complete (and equal to the single index's) or flagged with the right shard.
    single.set_param("nprobe", 16.0).unwrap();
    let want_full = single.search(&q, K).unwrap();
    let looping = {
        let addr = r.addr.clone();
        let qv: Vec<Vec<f32>> = q.chunks(D).map(|c| c.to_vec()).collect();
        std::thread::spawn(move || {
            let mut answers = Vec::new();
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_millis(1500) {
                let body = json!({"vectors": qv, "top_k": K, "params": {"nprobe": 16},
                                  "min_coverage": 0, "deadline_ms": 1000});
                let t = Instant::now();
                let (status, v) = routed(&addr, body);
                answers.push((status, v, t.elapsed()));
            }
            answers
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    s[3].kill();
    let answers = looping.join().unwrap();
    let flagged_in_loop = answers.iter().filter(|a| a.1["partial"] == true).count();
    for (status, v, took) in &answers {
        assert_eq!(*status, 200, "{v}");
        assert!(*took < Duration::from_millis(2500), "{took:?}");
        if v["partial"] == false {
            assert_eq!(v["coverage"], 1.0);
            assert!(agreeing(&hits(v), &want_full) * 1000 >= NQ * 999);
        } else {
            assert_eq!(v["missing_shards"], json!([3]), "{v}");
        }
    }
    assert!(flagged_in_loop >= 1, "no answer after the kill");

    // After it: partial answers, flagged, with the live shards' share; a 503 by default.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let m = rt
        .block_on(manifest::load(
            &Objects::open(&store).unwrap(),
            "vecs",
            None,
        ))
        .unwrap();
    let live: u64 = m.shards[..3].iter().map(|e| e.ntotal).sum();
    let body = json!({"vectors": qrows, "top_k": K, "params": {"nprobe": 16}});
    let (status, v) = routed(&r.addr, body.clone());
    assert_eq!(status, 503, "{v}");
    assert!(v["error"].as_str().unwrap().contains("[3]"), "{v}");
    let mut partial = body.clone();
    partial["min_coverage"] = json!(0);
    let t0 = Instant::now();
    let (status, v) = routed(&r.addr, partial.clone());
    assert_eq!(status, 200, "{v}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert_eq!(v["partial"], true);
    assert_eq!(v["missing_shards"], json!([3]));
    assert!(
        (v["coverage"].as_f64().unwrap() - live as f64 / NB as f64).abs() < 1e-12,
        "{v}"
    );
    let only = IdSelectorRange::new(0, m.shards[3].id_start);
    let want = single
        .search_with(&q, K, &SearchParams::default().with_selector(&only))
        .unwrap();
    assert!(agreeing(&hits(&v), &want) * 1000 >= NQ * 999);
    let (_, health) = http(&r.addr, "GET", "/health", "").unwrap();
    assert_eq!(health["status"], "degraded", "{health}");
    let (_, metrics) = http(&r.addr, "GET", "/metrics", "").unwrap();
    let text = metrics.as_str().unwrap_or_default();
    let flagged: f64 = text
        .lines()
        .find(|l| l.starts_with("fathom_search_partial_total"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0.0);
    assert!(flagged >= 2.0, "{text}");
    assert!(text.contains("status=\"503\""), "{text}");
    assert_eq!(health["shards"][3]["ok"], false, "{health}");

    // A stopped searcher: the deadline holds.
    s[2].signal("-STOP");
    partial["deadline_ms"] = json!(400);
    let t0 = Instant::now();
    let (status, v) = routed(&r.addr, partial);
    let took = t0.elapsed();
    s[2].signal("-CONT");
    assert_eq!(status, 200, "{v}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(v["missing_shards"], json!([2, 3]), "{v}");

    // Bad requests are the request's fault, not a partial answer.
    let (status, v) = routed(&r.addr, json!({"vector": vec![0.0; D + 1]}));
    assert_eq!(status, 422, "{v}");
    let (status, v) = routed(
        &r.addr,
        json!({"vector": vec![0.0; D], "params": {"efSearch": 8}, "min_coverage": 0}),
    );
    assert_eq!(status, 400, "{v}");
    let (status, _) = http(&r.addr, "POST", "/collections/other/search", "{}").unwrap();
    assert_eq!(status, 404);
    PASSED
}

fn files_that_fail_verification_are_never_served() -> Outcome {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    gen_data(&data);
    let dir = tmp.path().join("store");
    let store = store_url(&dir);
    // Slices built by separate processes, then published.
    build(&data, &store, "vecs", "IVF16,Flat", 2, &["--train-only"]);
    for i in 0..2 {
        build(
            &data,
            &store,
            "vecs",
            "IVF16,Flat",
            2,
            &["--shard", &format!("{i}/2")],
        );
    }
    let (ok, out, err) =
        run(fathom().args(["shard", "publish", "--store", &store, "--name", "vecs"]));
    assert!(ok && out.contains("published vecs v1"), "{out}{err}");

    // A cached copy that no longer matches is downloaded again.
    let cache = tmp.path().join("cache");
    drop(searcher(&store, "vecs", "0,1", &cache));
    let cached: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(cached.len(), 2);
    let mut bytes = std::fs::read(&cached[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&cached[0], bytes).unwrap();
    let s = searcher(&store, "vecs", "0,1", &cache);
    let t0 = Instant::now();
    while !s.stderr().contains("downloaded again") && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        s.stderr()
            .contains("cached copy failed verification; downloaded again"),
        "{}",
        s.stderr()
    );
    drop(s);

    // An object in the store that does not match its manifest is refused.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let m = rt
        .block_on(manifest::load(
            &Objects::open(&store).unwrap(),
            "vecs",
            None,
        ))
        .unwrap();
    let obj = dir.join(&m.shards[1].file.key);
    let mut bytes = std::fs::read(&obj).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&obj, bytes).unwrap();
    let fresh = tmp.path().join("fresh");
    let (ok, _, err) = run(fathom()
        .args([
            "searcher",
            "--store",
            &store,
            "--name",
            "vecs",
            "--shards",
            "1",
            "--listen",
            "127.0.0.1:0",
            "--cache",
        ])
        .arg(&fresh));
    assert!(!ok && err.contains("refusing to use it"), "{err}");
    assert!(
        !fresh
            .join(format!("{}.index", m.shards[1].file.sha256))
            .exists()
    );

    // A manifest whose dimension is not its shards'.
    let mut other = m.clone();
    other.version = 2;
    other.d = D as u32 + 1;
    std::fs::write(
        dir.join(manifest::manifest_key("vecs", 2)),
        serde_json::to_vec(&other).unwrap(),
    )
    .unwrap();
    let (ok, _, err) = run(fathom()
        .args([
            "searcher",
            "--store",
            &store,
            "--name",
            "vecs",
            "--shards",
            "0",
            "--listen",
            "127.0.0.1:0",
            "--cache",
        ])
        .arg(&cache));
    assert!(
        !ok && err.contains("the manifest says dimension 33"),
        "{err}"
    );

    // Unknown schemes, missing manifests, missing searchers, a peer that is not gRPC.
    let (ok, _, err) = run(fathom().args(["shard", "publish", "--store", "ftp://host/x"]));
    assert!(!ok && err.contains("unknown scheme"), "{err}");
    let (ok, _, err) = run(fathom()
        .args([
            "searcher", "--store", &store, "--name", "nothing", "--shards", "0", "--cache",
        ])
        .arg(&cache));
    assert!(!ok && err.contains("no manifest"), "{err}");
    let (ok, _, err) = run(fathom().args([
        "serve",
        "--router",
        "--store",
        &store,
        "--name",
        "vecs",
        "--version",
        "1",
        "--port",
        "0",
        "--searchers",
        "s0=127.0.0.1:1",
    ]));
    assert!(!ok && err.contains("no searcher for shards [1]"), "{err}");
    let not_grpc = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let junk = not_grpc.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for c in not_grpc.incoming().flatten() {
            let mut c = c;
            let _ = std::io::Write::write_all(&mut c, b"HTTP/1.1 200 OK\r\n\r\nhello");
        }
    });
    let mut cmd = fathom();
    cmd.args([
        "searcher",
        "--store",
        &store,
        "--name",
        "vecs",
        "--version",
        "1",
        "--shards",
        "0",
        "--listen",
        "127.0.0.1:0",
        "--cache",
    ])
    .arg(&cache);
    let s0 = start(cmd);
    let mut cmd = fathom();
    cmd.args([
        "serve",
        "--router",
        "--store",
        &store,
        "--name",
        "vecs",
        "--version",
        "1",
        "--port",
        "0",
        "--searchers",
        &format!("s0={},s1={junk}", s0.addr),
    ]);
    let r = start(cmd);
    let (status, v) = routed(
        &r.addr,
        json!({"vector": vec![0.5; D], "min_coverage": 0, "deadline_ms": 2000}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["missing_shards"], json!([1]), "{v}");
    let (_, health) = http(&r.addr, "GET", "/health", "").unwrap();
    assert_eq!(health["shards"][1]["ok"], false, "{health}");
    PASSED
}

fn faiss_reads_the_shards_and_index_shards_gives_the_same_answers() -> Outcome {
    let python = match fathom_tests::faiss_python() {
        Ok(p) => p,
        Err(why) => return skipped(format!("faiss-cpu is not available: {why}")),
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    gen_data(&data);
    let dir = tmp.path().join("store");
    let store = store_url(&dir);
    build(&data, &store, "vecs", "IVF32,Flat", 3, &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let m = rt
        .block_on(manifest::load(
            &Objects::open(&store).unwrap(),
            "vecs",
            None,
        ))
        .unwrap();
    let files: Vec<String> = m
        .shards
        .iter()
        .map(|s| dir.join(&s.file.key).display().to_string())
        .collect();
    let script = format!(
        r#"
import faiss, numpy as np, sys
def fvecs(p):
    a = np.fromfile(p, dtype='int32'); d = a[0]
    return a.reshape(-1, d + 1)[:, 1:].copy().view('float32')
q = fvecs({q:?})
sh = faiss.IndexShards({d}, False, False)
parts = [faiss.read_index(f) for f in {files:?}]
for p in parts:
    p.nprobe = 8
    sh.add_shard(p)
D, I = sh.search(q, {k})
np.save({out:?}, I)
"#,
        q = data.join("query.fvecs").display().to_string(),
        d = D,
        files = files,
        k = K,
        out = tmp.path().join("I.npy").display().to_string(),
    );
    let out = std::process::Command::new(python)
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fathom_io::NpyArray::I64(got) = fathom_io::read_npy(tmp.path().join("I.npy")).unwrap()
    else {
        panic!("labels are not int64");
    };
    let mut single = single_index(&store, "vecs", &data);
    single.set_param("nprobe", 8.0).unwrap();
    let want = single.search(&queries(&data), K).unwrap();
    let same = got
        .data
        .chunks(K)
        .zip(want.labels.chunks(K))
        .filter(|(a, b)| a == b)
        .count();
    assert!(same * 100 >= NQ * 99, "{same} of {NQ}");
    PASSED
}

/// A Python with moto's S3 server: `target/moto-venv`, created on first use.
fn moto_python() -> Result<std::path::PathBuf, String> {
    fathom_tests::venv_python(
        "moto-venv",
        &["moto[server]==5.2.6"],
        "import moto.server, flask",
    )
}

/// moto's server on a free 127.0.0.1 port, killed on drop.
struct Moto {
    child: std::process::Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn the_s3_path_works_against_an_s3_protocol_server() -> Outcome {
    let python = match moto_python() {
        Ok(p) => p,
        Err(why) => return skipped(format!("no S3 server (moto) could be installed: {why}")),
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let moto = Moto {
        child: std::process::Command::new(&python)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
        port,
    };
    let endpoint = format!("127.0.0.1:{}", moto.port);
    let t0 = Instant::now();
    loop {
        // An unsigned PUT creates the bucket.
        if let Ok((200, _)) = http(&endpoint, "PUT", "/fathom-test", "") {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "moto did not start");
        std::thread::sleep(Duration::from_millis(200));
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    gen_data(&data);
    let store = "s3://fathom-test/indexes";
    let env = [
        ("AWS_ACCESS_KEY_ID", "test".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
        ("AWS_ENDPOINT_URL", format!("http://{endpoint}")),
    ];
    let (ok, out, err) = run(fathom()
        .args(["shard", "build"])
        .arg(&data)
        .args([
            "--index",
            "IVF16,Flat",
            "--shards",
            "2",
            "--store",
            store,
            "--name",
            "vecs",
        ])
        .envs(env.iter().map(|(k, v)| (k, v))));
    assert!(ok, "{out}{err}");
    let mut procs = Vec::new();
    for i in 0..2 {
        let mut cmd = fathom();
        cmd.args([
            "searcher",
            "--store",
            store,
            "--name",
            "vecs",
            "--shards",
            &i.to_string(),
            "--listen",
            "127.0.0.1:0",
            "--cache",
        ])
        .arg(tmp.path().join(format!("c{i}")))
        .envs(env.iter().map(|(k, v)| (k, v)));
        procs.push(start(cmd));
    }
    let mut cmd = fathom();
    cmd.args([
        "serve",
        "--router",
        "--store",
        store,
        "--name",
        "vecs",
        "--port",
        "0",
        "--searchers",
        &format!("s0={},s1={}", procs[0].addr, procs[1].addr),
    ])
    .envs(env.iter().map(|(k, v)| (k, v)));
    let r = start(cmd);
    let q = queries(&data);
    let qrows: Vec<&[f32]> = q.chunks(D).collect();
    let (status, v) = routed(
        &r.addr,
        json!({"vectors": qrows, "top_k": K, "params": {"nprobe": 16}}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["coverage"], 1.0);
    // nprobe = nlist: exhaustive, so the answer is brute force's.
    let base = fathom_io::read_fvecs(data.join("base.fvecs")).unwrap();
    let mut flat = fathom_index::IndexFlat::new(D, fathom_core::MetricType::L2).unwrap();
    flat.add(&base.data).unwrap();
    let want = flat.search(&q, K).unwrap();
    assert!(agreeing(&hits(&v), &want) * 1000 >= NQ * 999);
    PASSED
}

fathom_tests::harness::main!(
    sharded_search_equals_the_single_index_and_missing_shards_are_flagged,
    files_that_fail_verification_are_never_served,
    faiss_reads_the_shards_and_index_shards_gives_the_same_answers,
    the_s3_path_works_against_an_s3_protocol_server,
);
