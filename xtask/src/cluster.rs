//! `cargo xtask cluster`: the acceptance run of scale-out part 2 (docs/SCALE.md,
//! "Membership, replication and failover") end to end on 127.0.0.1, with every process
//! it starts killed at the end:
//!
//! 1. data (`fathom gen`), an S3-protocol server (s3s-fs) and a 3-member etcd cluster;
//! 2. the index trained once, its shards built by separate builder processes at once,
//!    published through etcd; the one-shard twin on the same training as the reference;
//! 3. searchers with replication R (default 4 × R 2) and 2 routers following etcd;
//! 4. equivalence with the single index at nprobe 4/16/64;
//! 5. a closed-loop load (8 in flight, 60 s) with a searcher SIGKILLed at 20 s and another
//!    SIGSTOPped at 40 s and continued at 50 s: errors, partial answers, wrong answers,
//!    QPS, P50/P99, and the time until every shard is READY R times again;
//! 6. the control plane: one etcd member killed under load, a router killed and restarted
//!    (time to its first answer), all of etcd killed under load;
//! 7. replication 1: a searcher killed — partial answers with the exact coverage, 503 with
//!    `min_coverage` 1 — and restarted: the time until coverage is 1 again.
//!
//! Prints a JSON summary (also written to `target/cluster/summary-<nb>.json`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::serve_load::{Conn, percentile};
use crate::{Res, run_ok};

/// A child process, SIGKILLed on drop.
struct Kid {
    child: Child,
    addr: String,
}

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Kid {
    /// SIGKILLs it now.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn signal(&self, sig: &str) -> Res<()> {
        run_ok(
            Command::new("kill").args([sig, &self.child.id().to_string()]),
            "kill",
        )
    }
}

fn free_port() -> Res<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port())
}

/// Starts `cmd` with stderr to `log` and waits for its `listening on ADDR` line.
fn start(mut cmd: Command, log: &Path) -> Res<Kid> {
    let err = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(err)
        .spawn()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut kid = Kid {
        child,
        addr: String::new(),
    };
    let first = BufReader::new(stdout)
        .lines()
        .next()
        .ok_or_else(|| format!("{cmd:?} ended before listening; see {}", log.display()))?
        .map_err(|e| e.to_string())?;
    kid.addr = first
        .split("listening on ")
        .nth(1)
        .and_then(|r| r.trim_start_matches("http://").split_whitespace().next())
        .ok_or_else(|| format!("no address in {first:?}"))?
        .to_string();
    Ok(kid)
}

/// A 3-member etcd cluster (Debian's etcd-server).
struct Etcd {
    dir: PathBuf,
    client: Vec<u16>,
    peer: Vec<u16>,
    members: Vec<Option<Kid>>,
}

impl Etcd {
    fn start(dir: &Path, n: usize) -> Res<Self> {
        if Command::new("etcd").arg("--version").output().is_err() {
            run_ok(
                Command::new("apt-get").args(["install", "-y", "-q", "etcd-server"]),
                "apt-get install etcd-server",
            )?;
        }
        let mut e = Etcd {
            dir: dir.to_path_buf(),
            client: (0..n).map(|_| free_port()).collect::<Res<_>>()?,
            peer: (0..n).map(|_| free_port()).collect::<Res<_>>()?,
            members: (0..n).map(|_| None).collect(),
        };
        for i in 0..n {
            e.start_member(i)?;
        }
        for i in 0..n {
            let t = Instant::now();
            let addr = format!("127.0.0.1:{}", e.client[i]);
            while !Conn::new(&addr)
                .and_then(|mut c| c.call("GET", "/health", ""))
                .is_ok_and(|(s, b)| s == 200 && b.contains("true"))
            {
                if t.elapsed() > Duration::from_secs(60) {
                    return Err(format!("etcd member {i} did not become healthy"));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(e)
    }

    fn start_member(&mut self, i: usize) -> Res<()> {
        let cluster: Vec<String> = self
            .peer
            .iter()
            .enumerate()
            .map(|(j, p)| format!("e{j}=http://127.0.0.1:{p}"))
            .collect();
        let client = format!("http://127.0.0.1:{}", self.client[i]);
        let peer = format!("http://127.0.0.1:{}", self.peer[i]);
        let log = std::fs::File::create(self.dir.join(format!("etcd{i}.log")))
            .map_err(|e| e.to_string())?;
        let child = Command::new("etcd")
            .args(["--name", &format!("e{i}")])
            .arg("--data-dir")
            .arg(self.dir.join(format!("etcd{i}")))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &cluster.join(",")])
            .args(["--initial-cluster-state", "new"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("etcd: {e}"))?;
        self.members[i] = Some(Kid {
            child,
            addr: client,
        });
        Ok(())
    }

    fn kill(&mut self, i: usize) {
        self.members[i] = None;
    }

    fn endpoints(&self) -> String {
        self.client
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// An S3-protocol server over a directory: s3s-fs (a Rust S3 server, installed into
/// `target/s3s` with `cargo install` on first use — moto, which the tests use, holds objects
/// in memory and is killed for it at 10M vectors), with a bucket.
fn s3_server(dir: &Path, logs: &Path) -> Res<(Kid, Vec<(String, String)>)> {
    let root = crate::root().join("target/s3s");
    let bin = root.join("bin/s3s-fs");
    if !bin.exists() {
        run_ok(
            Command::new("cargo")
                .args([
                    "install",
                    "s3s-fs",
                    "--version",
                    "0.14.1",
                    "--features",
                    "binary",
                ])
                .args(["--locked", "--root"])
                .arg(&root),
            "cargo install s3s-fs",
        )?;
    }
    std::fs::create_dir_all(dir.join("fathom-cluster")).map_err(|e| e.to_string())?;
    let port = free_port()?;
    let log = std::fs::File::create(logs.join("s3.log")).map_err(|e| e.to_string())?;
    let child = Command::new(&bin)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", "test", "--secret-key", "test"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let addr = format!("127.0.0.1:{port}");
    let kid = Kid {
        child,
        addr: addr.clone(),
    };
    let t = Instant::now();
    while std::net::TcpStream::connect(&addr).is_err() {
        if t.elapsed() > Duration::from_secs(30) {
            return Err("s3s-fs did not start".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let env = vec![
        ("AWS_ACCESS_KEY_ID".into(), "test".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
        ("AWS_REGION".into(), "us-east-1".into()),
        ("AWS_ENDPOINT_URL".into(), format!("http://{addr}")),
    ];
    Ok((kid, env))
}

type Hits = Vec<(Vec<i64>, Vec<f32>)>;

fn parse_hits(v: &Value) -> Hits {
    v["results"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|row| {
                    let row = row.as_array().cloned().unwrap_or_default();
                    (
                        row.iter().map(|h| h["id"].as_i64().unwrap_or(-1)).collect(),
                        row.iter()
                            .map(|h| h["score"].as_f64().unwrap_or(f64::NAN) as f32)
                            .collect(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether an answer equals the reference: the same ids, or the same distances (a tie
/// broken differently).
fn same(got: &(Vec<i64>, Vec<f32>), want: &(Vec<i64>, Vec<f32>)) -> bool {
    got.0 == want.0
        || (got.1.len() == want.1.len()
            && got
                .1
                .iter()
                .zip(&want.1)
                .all(|(a, b)| (a - b).abs() <= 1e-5 * b.abs().max(1.0)))
}

fn search_all(addr: &str, name: &str, q: &[f32], d: usize, nprobe: usize) -> Res<Hits> {
    let mut conn = Conn::new(addr)?;
    let rows: Vec<&[f32]> = q.chunks(d).collect();
    let mut out = Vec::new();
    for batch in rows.chunks(100) {
        let body = json!({"vectors": batch, "top_k": 10, "params": {"nprobe": nprobe},
                          "deadline_ms": 600000});
        let (status, text) = conn.call(
            "POST",
            &format!("/collections/{name}/search"),
            &body.to_string(),
        )?;
        let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        if status != 200 || v["partial"] != false {
            return Err(format!("search answered {status}: {text}"));
        }
        out.extend(parse_hits(&v));
    }
    Ok(out)
}

fn health(addr: &str) -> Value {
    Conn::new(addr)
        .and_then(|mut c| c.call("GET", "/health", ""))
        .ok()
        .and_then(|(_, t)| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}

/// Whether every shard has `r` READY replicas, none of them `without`, on the members
/// rendezvous hashing assigns (no move in progress).
fn replicated(router: &str, r: usize, without: Option<&str>) -> bool {
    let h = health(router);
    if h["etcd"]["settled"] != true {
        return false;
    }
    let Some(shards) = h["replicas"].as_array() else {
        return false;
    };
    !shards.is_empty()
        && shards.iter().all(|s| {
            s["ready"].as_u64() == Some(r as u64)
                && s["searchers"].as_array().is_some_and(|m| {
                    m.iter()
                        .all(|m| Some(m["member"].as_str().unwrap_or("")) != without)
                })
        })
}

/// What a closed-loop load saw.
#[derive(Default)]
struct Seen {
    answers: usize,
    errors: Vec<String>,
    partial: usize,
    wrong: usize,
    lat: Vec<f64>,
}

/// A closed-loop load: `clients` connections over `routers`, single queries at `nprobe`,
/// answers checked against `reference`.
#[derive(Clone)]
struct Load {
    routers: Vec<String>,
    q: Arc<Vec<f32>>,
    d: usize,
    nprobe: usize,
    deadline_ms: u64,
    reference: Arc<Hits>,
    clients: usize,
}

/// Runs `w` until `stop`.
fn load(w: &Load, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Seen> {
    let Load {
        routers,
        q,
        d,
        nprobe,
        deadline_ms,
        reference,
        clients,
    } = w.clone();
    std::thread::spawn(move || {
        let threads: Vec<_> = (0..clients)
            .map(|c| {
                let (routers, q, reference, stop) =
                    (routers.clone(), q.clone(), reference.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut seen = Seen::default();
                    let addr = &routers[c % routers.len()];
                    let mut conn = Conn::new(addr).ok();
                    let nq = q.len() / d;
                    let mut i = c * 997;
                    while !stop.load(Ordering::Relaxed) {
                        i = (i + 1) % nq;
                        let body = json!({"vector": &q[i * d..(i + 1) * d], "top_k": 10,
                            "params": {"nprobe": nprobe}, "deadline_ms": deadline_ms});
                        let t = Instant::now();
                        let out = match conn.as_mut() {
                            Some(c) => {
                                c.call("POST", "/collections/cluster/search", &body.to_string())
                            }
                            None => Err("no connection".into()),
                        };
                        seen.lat.push(t.elapsed().as_secs_f64() * 1e3);
                        match out {
                            Ok((200, text)) => {
                                seen.answers += 1;
                                let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                                let wrapped = json!({"results": [v["results"].clone()]});
                                if v["partial"] != false {
                                    seen.partial += 1;
                                } else if !parse_hits(&wrapped)
                                    .first()
                                    .is_some_and(|h| same(h, &reference[i]))
                                {
                                    seen.wrong += 1;
                                }
                            }
                            Ok((s, text)) => seen.errors.push(format!("{s}: {text}")),
                            Err(e) => {
                                seen.errors.push(e);
                                conn = Conn::new(addr).ok();
                            }
                        }
                    }
                    seen
                })
            })
            .collect();
        let mut all = Seen::default();
        for t in threads {
            if let Ok(s) = t.join() {
                all.answers += s.answers;
                all.errors.extend(s.errors);
                all.partial += s.partial;
                all.wrong += s.wrong;
                all.lat.extend(s.lat);
            }
        }
        all
    })
}

/// Runs `w` for `secs` and summarises it.
fn timed_load(w: &Load, secs: f64) -> Res<Value> {
    let stop = Arc::new(AtomicBool::new(false));
    let running = load(w, stop.clone());
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let seen = running.join().map_err(|_| "load panicked")?;
    Ok(summary(seen, t.elapsed().as_secs_f64()))
}

fn summary(mut s: Seen, secs: f64) -> Value {
    s.lat.sort_by(f64::total_cmp);
    let first_errors: Vec<&String> = s.errors.iter().take(5).collect();
    json!({
        "answers": s.answers, "errors": s.errors.len(), "first_errors": first_errors,
        "partial": s.partial, "wrong": s.wrong,
        "qps": s.answers as f64 / secs,
        "p50_ms": percentile(&s.lat, 0.5), "p99_ms": percentile(&s.lat, 0.99),
        "max_ms": s.lat.last().copied().unwrap_or(0.0),
    })
}

fn count_in_logs(dir: &Path, prefix: &str, needle: &str) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .map(|e| {
                    std::fs::read_to_string(e.path())
                        .unwrap_or_default()
                        .matches(needle)
                        .count()
                })
                .sum()
        })
        .unwrap_or(0)
}

pub fn cluster(a: &crate::cli::ClusterArgs, fathom: &Path) -> Res<Value> {
    let (nb, d, nq, shards, nsearchers, r) =
        (a.nb, a.d, a.nq, a.shards, a.searchers, a.replication);
    let (secs, clients, deadline_ms, hedge_ms, nprobe) =
        (a.secs, a.clients, a.deadline_ms, a.hedge_ms, a.nprobe);
    let index = a.index.clone();
    let base = crate::root().join("target/cluster");
    let data = base.join(format!("data-{nb}x{d}"));
    // Ground truth only where one exact scan per query is affordable (recall is then
    // reported beside the equivalence, which needs none).
    let gt_k = if nb * nq <= 10_000_000_000 { "10" } else { "0" };
    if !data.join("learn.fvecs").exists() {
        run_ok(
            Command::new(fathom).arg("gen").arg(&data).args([
                "--nb",
                &nb.to_string(),
                "--d",
                &d.to_string(),
                "--nq",
                &nq.to_string(),
                "--k",
                gt_k,
            ]),
            "fathom gen",
        )?;
    }
    let run = base.join(format!("run-{nb}-{}", std::process::id()));
    std::fs::create_dir_all(&run).map_err(|e| e.to_string())?;
    let logs = run.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| e.to_string())?;
    let use_s3 = !a.file;
    let (_s3, env, store) = if use_s3 {
        let (kid, env) = s3_server(&run.join("s3"), &logs)?;
        (
            Some(kid),
            env,
            format!("s3://fathom-cluster/run-{}", std::process::id()),
        )
    } else {
        (
            None,
            Vec::new(),
            format!("file://{}", run.join("store").display()),
        )
    };
    let cmd = |args: &[&str]| {
        let mut c = Command::new(fathom);
        c.args(args).envs(env.iter().map(|(k, v)| (k, v)));
        c
    };
    let mut etcd = Etcd::start(&logs, 3)?;
    let ep = etcd.endpoints();
    let mut out = json!({"nb": nb, "d": d, "nq": nq, "index": index, "shards": shards,
        "searchers": nsearchers, "replication": r, "store": if use_s3 {"s3 (s3s-fs)"} else {"file"},
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get())});
    eprintln!("cluster: {out}");

    // Build: train once, the slices by separate processes at once, publish through etcd.
    let data_s = data.to_string_lossy().to_string();
    let t = Instant::now();
    let shards_s = shards.to_string();
    let common = [
        "--index",
        index.as_str(),
        "--shards",
        &shards_s,
        "--store",
        &store,
    ];
    run_ok(
        cmd(&["shard", "build", &data_s])
            .args(common)
            .args(["--name", "cluster", "--train-only"])
            .stdout(Stdio::null()),
        "train",
    )?;
    let train_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let builders: Vec<Child> = (0..shards)
        .map(|i| {
            cmd(&["--threads", "1", "shard", "build", &data_s])
                .args(common)
                .args(["--name", "cluster", "--shard", &format!("{i}/{shards}")])
                .stdout(Stdio::null())
                .stderr(
                    std::fs::File::create(logs.join(format!("builder-{i}.log")))
                        .map_err(|e| e.to_string())?,
                )
                .spawn()
                .map_err(|e| e.to_string())
        })
        .collect::<Res<_>>()?;
    for mut b in builders {
        if !b.wait().map_err(|e| e.to_string())?.success() {
            return Err(format!(
                "a slice build failed; see {}/builder-*.log",
                logs.display()
            ));
        }
    }
    let slices_s = t.elapsed().as_secs_f64();
    run_ok(
        cmd(&[
            "shard", "publish", "--store", &store, "--name", "cluster", "--etcd", &ep,
        ])
        .stdout(Stdio::null()),
        "publish",
    )?;
    // The reference: the one-shard twin on the same training, served by one process.
    let t = Instant::now();
    run_ok(
        cmd(&["shard", "build", &data_s])
            .args(["--index", &index, "--shards", "1", "--store", &store])
            .args(["--name", "single", "--training-of", "cluster"])
            .stdout(Stdio::null()),
        "single build",
    )?;
    let single_s = t.elapsed().as_secs_f64();
    out["build"] = json!({"train_s": train_s, "slices_parallel_s": slices_s,
        "single_add_s": single_s});
    eprintln!("cluster: build {}", out["build"]);
    let q = Arc::new(crate::scale::fvecs(&data.join("query.fvecs"))?.1);
    let gt = crate::scale::ivecs(&data.join("groundtruth.ivecs")).unwrap_or_default();
    let probes = [4usize, 16, 64];
    let mut reference = Vec::new();
    {
        let single_cache = run.join("cache-single");
        let single = start(
            {
                let mut c = cmd(&["serve", "--router", "--store", &store, "--name", "single"]);
                c.args(["--port", "0", "--local"]).arg(&single_cache);
                c
            },
            &logs.join("single.log"),
        )?;
        for &p in &probes {
            reference.push(search_all(&single.addr, "single", &q, d, p)?);
        }
        drop(single);
        let _ = std::fs::remove_dir_all(&single_cache);
        // The twin's files are no longer needed: at 10M their 5 GB would compete for the
        // page cache with the searchers' memory-mapped shards.
        if use_s3 {
            let _ = std::fs::remove_dir_all(
                run.join("s3/fathom-cluster")
                    .join(format!("run-{}", std::process::id()))
                    .join("single"),
            );
        } else {
            let _ = std::fs::remove_dir_all(run.join("store/single"));
        }
    }

    // The cluster.
    let searcher = |name: &str, r: usize, ttl: u64| -> Res<Kid> {
        let mut c = cmd(&[
            "searcher", "--store", &store, "--name", "cluster", "--etcd", &ep,
        ]);
        c.args(["--member", name, "--replication", &r.to_string()])
            .args([
                "--lease-ttl-s",
                &ttl.to_string(),
                "--listen",
                "127.0.0.1:0",
                "--cache",
            ])
            .arg(run.join(format!("cache-{}", &name[1..])));
        static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTS.fetch_add(1, Ordering::Relaxed);
        start(c, &logs.join(format!("searcher-{name}-{n}.log")))
    };
    let router = |i: usize, r: usize| -> Res<Kid> {
        let mut c = cmd(&["serve", "--router", "--store", &store, "--name", "cluster"]);
        c.args([
            "--etcd",
            &ep,
            "--replication",
            &r.to_string(),
            "--port",
            "0",
        ])
        .args([
            "--deadline-ms",
            &deadline_ms.to_string(),
            "--hedge-ms",
            &hedge_ms.to_string(),
        ]);
        static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTS.fetch_add(1, Ordering::Relaxed);
        start(c, &logs.join(format!("router-{i}-{n}.log")))
    };
    let t = Instant::now();
    let mut searchers: Vec<Kid> = (0..nsearchers)
        .map(|i| searcher(&format!("s{i}"), r, 3))
        .collect::<Res<_>>()?;
    let mut routers: Vec<Kid> = (0..2).map(|i| router(i, r)).collect::<Res<_>>()?;
    while !routers.iter().all(|x| replicated(&x.addr, r, None)) {
        if t.elapsed() > Duration::from_secs(1800) {
            return Err(format!("not READY: {}", health(&routers[0].addr)));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    out["ready_s"] = json!(t.elapsed().as_secs_f64());

    // Equivalence and recall.
    let mut equivalence = Vec::new();
    for (pi, &p) in probes.iter().enumerate() {
        let got = search_all(&routers[0].addr, "cluster", &q, d, p)?;
        let equal = got
            .iter()
            .zip(&reference[pi])
            .filter(|(a, b)| same(a, b))
            .count();
        let recall = |h: &Hits| {
            if gt.is_empty() {
                return f64::NAN;
            }
            h.iter()
                .zip(&gt)
                .filter(|(row, g)| row.0.iter().take(10).any(|&id| g.first() == Some(&id)))
                .count() as f64
                / h.len() as f64
        };
        equivalence.push(
            json!({"nprobe": p, "equal_top10": equal as f64 / got.len() as f64,
            "r1_at_10_sharded": recall(&got), "r1_at_10_single": recall(&reference[pi])}),
        );
    }
    out["equivalence"] = json!(equivalence);
    eprintln!("cluster: equivalence {}", out["equivalence"]);

    // Faults under load.
    let pi = probes.iter().position(|&p| p == nprobe).unwrap_or(1);
    let reference_at = Arc::new(reference[pi].clone());
    let addrs: Vec<String> = routers.iter().map(|x| x.addr.clone()).collect();
    let w = Load {
        routers: addrs.clone(),
        q: q.clone(),
        d,
        nprobe,
        deadline_ms,
        reference: reference_at.clone(),
        clients,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let running = load(&w, stop.clone());
    let t0 = Instant::now();
    let at = |s: f64| Duration::from_secs_f64(s * secs as f64 / 60.0);
    let mut killed_at = None;
    let mut rereplicated = None;
    let mut downloads_before = 0;
    let mut stopped = false;
    let mut continued = false;
    while t0.elapsed() < at(60.0) {
        let now = t0.elapsed();
        if killed_at.is_none() && now >= at(20.0) {
            downloads_before = count_in_logs(&logs, "searcher-s", "downloaded and verified");
            searchers[0].kill();
            killed_at = Some(Instant::now());
        }
        if let Some(k) = killed_at
            && rereplicated.is_none()
            && addrs.iter().all(|a| replicated(a, r, Some("s0")))
        {
            rereplicated = Some(k.elapsed().as_secs_f64());
        }
        if !stopped && now >= at(40.0) {
            searchers[1].signal("-STOP")?;
            stopped = true;
        }
        if !continued && now >= at(50.0) {
            searchers[1].signal("-CONT")?;
            continued = true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    let seen = running.join().map_err(|_| "load panicked")?;
    let downloads_after = count_in_logs(&logs, "searcher-s", "downloaded and verified");
    out["faults"] = json!({
        "load": summary(seen, t0.elapsed().as_secs_f64()),
        "deadline_ms": deadline_ms, "hedge_ms": hedge_ms, "nprobe": nprobe, "clients": clients,
        "rereplicated_after_kill_s": rereplicated,
        "replacement_downloads": downloads_after - downloads_before,
        "hedges_router0": health(&routers[0].addr)["hedges"],
    });
    eprintln!("cluster: faults {}", out["faults"]);

    // Control plane: one etcd member, a router, then all of etcd.
    etcd.kill(0);
    let one_etcd_down = timed_load(&w, 10.0)?;
    routers[0].kill();
    let other_answers = search_all(&routers[1].addr, "cluster", &q[..100 * d], d, nprobe).is_ok();
    let t = Instant::now();
    routers[0] = router(0, r)?;
    let mut first_answer = None;
    while t.elapsed() < Duration::from_secs(30) {
        if search_all(&routers[0].addr, "cluster", &q[..d], d, nprobe).is_ok() {
            first_answer = Some(t.elapsed().as_secs_f64());
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let addrs: Vec<String> = routers.iter().map(|x| x.addr.clone()).collect();
    etcd.kill(1);
    etcd.kill(2);
    let all_etcd_down = timed_load(
        &Load {
            routers: addrs.clone(),
            ..w.clone()
        },
        10.0,
    )?;
    let warning = health(&addrs[1])["warnings"].clone();
    out["control_plane"] = json!({
        "one_etcd_member_killed": one_etcd_down,
        "router_killed_other_answers": other_answers,
        "restarted_router_first_answer_s": first_answer,
        "all_etcd_killed": all_etcd_down, "health_warnings": warning,
    });
    eprintln!("cluster: control plane {}", out["control_plane"]);
    for i in 0..3 {
        etcd.start_member(i)?;
    }
    std::thread::sleep(Duration::from_secs(3));

    // Replication 1.
    drop(routers);
    searchers.clear();
    let ttl = 30;
    let mut searchers: Vec<Kid> = (0..nsearchers)
        .map(|i| searcher(&format!("r{i}"), 1, ttl))
        .collect::<Res<_>>()?;
    let one = router(9, 1)?;
    let t = Instant::now();
    while !replicated(&one.addr, 1, None) {
        if t.elapsed() > Duration::from_secs(1800) {
            return Err(format!("r=1 not READY: {}", health(&one.addr)));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let h = health(&one.addr);
    let mut held: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    for s in h["replicas"].as_array().cloned().unwrap_or_default() {
        let m = s["searchers"][0]["member"]
            .as_str()
            .unwrap_or("")
            .to_string();
        held.entry(m)
            .or_default()
            .push(s["shard"].as_u64().unwrap_or(0));
    }
    let (victim, lost) = held
        .iter()
        .max_by_key(|(_, v)| v.len())
        .map(|(m, v)| (m.clone(), v.clone()))
        .ok_or("no shards held")?;
    let vi: usize = victim[1..].parse().map_err(|_| "member name")?;
    let ntotal = h["collection"]["ntotal"].as_u64().unwrap_or(0);
    let lost_n: u64 = lost
        .iter()
        .map(|&s| (s + 1) * ntotal / shards as u64 - s * ntotal / shards as u64)
        .sum();
    let expect = 1.0 - lost_n as f64 / ntotal as f64;
    searchers[vi].kill();
    let killed = Instant::now();
    let (mut partial_ok, mut partial_bad, mut refused, mut late) = (0, 0, 0, 0);
    let mut conn = Conn::new(&one.addr)?;
    let mut i = 0;
    while killed.elapsed() < Duration::from_secs(5) {
        i = (i + 1) % nq;
        for min_coverage in [0.0, 1.0] {
            let body = json!({"vector": &q[i * d..(i + 1) * d], "top_k": 10,
                "params": {"nprobe": nprobe}, "min_coverage": min_coverage});
            let t = Instant::now();
            let (status, text) =
                conn.call("POST", "/collections/cluster/search", &body.to_string())?;
            if t.elapsed() > Duration::from_millis(deadline_ms + 50) {
                late += 1;
            }
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let missing: Vec<u64> = v["missing_shards"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default();
            match (min_coverage == 0.0, status) {
                (true, 200)
                    if v["partial"] == true
                        && (v["coverage"].as_f64().unwrap_or(0.0) - expect).abs() < 1e-9
                        && missing == lost =>
                {
                    partial_ok += 1
                }
                (false, 503) => refused += 1,
                _ => partial_bad += 1,
            }
        }
    }
    let t = Instant::now();
    searchers[vi] = searcher(&victim, 1, ttl)?;
    let mut back = None;
    while t.elapsed() < Duration::from_secs(120) {
        let body = json!({"vector": &q[..d], "top_k": 10, "params": {"nprobe": nprobe}});
        if let Ok((200, text)) = conn.call("POST", "/collections/cluster/search", &body.to_string())
            && serde_json::from_str::<Value>(&text).is_ok_and(|v| v["coverage"] == 1.0)
        {
            back = Some(t.elapsed().as_secs_f64());
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    out["replication_1"] = json!({
        "killed": victim, "lost_shards": lost, "expected_coverage": expect,
        "partial_with_exact_coverage": partial_ok, "refused_503_at_min_coverage_1": refused,
        "other_answers": partial_bad, "late": late,
        "coverage_1_after_restart_s": back,
    });
    eprintln!("cluster: replication 1 {}", out["replication_1"]);
    drop(one);
    drop(searchers);
    drop(etcd);
    let text = serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?;
    std::fs::write(base.join(format!("summary-{nb}.json")), &text).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(run.join("store"));
    let _ = std::fs::remove_dir_all(run.join("s3"));
    for i in 0..nsearchers {
        let _ = std::fs::remove_dir_all(run.join(format!("cache-{i}")));
    }
    Ok(out)
}
