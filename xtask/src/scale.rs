//! `cargo xtask scale`: the sharded setup measured against one process, side by side on
//! the same data (docs/SCALE.md). For each index: a sharded build (`--shards`, default 4)
//! and a one-shard twin on the same training; four `fathom searcher` processes behind a
//! router against one process (`fathom serve --router --local`) with the same total
//! thread budget. Prints: equivalence (top-k ids equal the single index's; any difference
//! a distance tie) and 10-recall@10 at nprobe 4/16/64; then QPS and P50/P99 at batch 1 and
//! batch 64, interleaved A B A B A B (best of the rounds for each, and the ratio).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::serve_load::{Conn, percentile, rss_mib};
use crate::{Res, run_ok};

/// A child process killed on drop.
struct Proc {
    child: Child,
    addr: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(fathom: &Path, args: &[String]) -> Res<Proc> {
    let mut child = Command::new(fathom)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("fathom {args:?}: {e}"))?;
    let first = BufReader::new(child.stdout.take().ok_or("no stdout")?)
        .lines()
        .next()
        .ok_or_else(|| format!("fathom {args:?} printed nothing"))?
        .map_err(|e| e.to_string())?;
    let addr = first
        .split("listening on ")
        .nth(1)
        .and_then(|r| r.trim_start_matches("http://").split_whitespace().next())
        .ok_or_else(|| format!("no address in {first:?}"))?
        .to_string();
    Ok(Proc { child, addr })
}

pub(crate) fn fvecs(path: &Path) -> Res<(usize, Vec<f32>)> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let d = i32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
    let row = 4 + 4 * d;
    let mut out = Vec::with_capacity(bytes.len() / row * d);
    for r in bytes.chunks_exact(row) {
        out.extend(
            r[4..]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap())),
        );
    }
    Ok((d, out))
}

pub(crate) fn ivecs(path: &Path) -> Res<Vec<Vec<i64>>> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let k = i32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
    Ok(bytes
        .chunks_exact(4 + 4 * k)
        .map(|r| {
            r[4..]
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes(b.try_into().unwrap()) as i64)
                .collect()
        })
        .collect())
}

/// One router answer: (ids, scores) per query.
type Hits = Vec<(Vec<i64>, Vec<f32>)>;

/// A search parameter and its value (`("nprobe", 16)`, `("efSearch", 64)`).
type Param = Option<(&'static str, usize)>;

fn label(p: Param) -> String {
    p.map_or("default".into(), |(n, v)| format!("{n} {v}"))
}

fn search(conn: &mut Conn, name: &str, rows: &[&[f32]], k: usize, param: Param) -> Res<Hits> {
    let mut body = json!({"vectors": rows, "top_k": k});
    if let Some((n, v)) = param {
        body["params"] = json!({ n: v });
    }
    let (status, text) = conn.call(
        "POST",
        &format!("/collections/{name}/search"),
        &body.to_string(),
    )?;
    if status != 200 {
        return Err(format!("search answered {status}: {text}"));
    }
    let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    if v["partial"] != false {
        return Err(format!("a partial answer: {text}"));
    }
    Ok(v["results"]
        .as_array()
        .ok_or("no results")?
        .iter()
        .map(|row| {
            let row = row.as_array().cloned().unwrap_or_default();
            (
                row.iter().map(|h| h["id"].as_i64().unwrap_or(-1)).collect(),
                row.iter()
                    .map(|h| h["score"].as_f64().unwrap_or(f64::NAN) as f32)
                    .collect(),
            )
        })
        .collect())
}

fn search_all(addr: &str, name: &str, q: &[f32], d: usize, k: usize, nprobe: Param) -> Res<Hits> {
    let mut conn = Conn::new(addr)?;
    let rows: Vec<&[f32]> = q.chunks(d).collect();
    let mut out = Vec::new();
    for batch in rows.chunks(100) {
        out.extend(search(&mut conn, name, batch, k, nprobe)?);
    }
    Ok(out)
}

/// What a timed run sends.
struct Workload<'a> {
    /// Queries, rows of `d`.
    q: &'a [f32],
    d: usize,
    /// Closed-loop connections.
    clients: usize,
    /// Seconds per run.
    secs: f64,
    /// The search parameter.
    nprobe: Param,
}

/// A closed loop of `w.clients` connections sending batches of `batch` queries for
/// `w.secs`: (queries per second, P50 ms, P99 ms) of the requests.
fn load(addr: &str, name: &str, batch: usize, w: &Workload<'_>) -> Res<(f64, f64, f64)> {
    let Workload {
        q,
        d,
        clients,
        secs,
        nprobe,
    } = *w;
    let stop = Arc::new(AtomicBool::new(false));
    let rows: Arc<Vec<Vec<f32>>> = Arc::new(q.chunks(d).map(|r| r.to_vec()).collect());
    let t0 = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (stop, rows, addr, name) = (
                stop.clone(),
                rows.clone(),
                addr.to_string(),
                name.to_string(),
            );
            std::thread::spawn(move || -> Res<(usize, Vec<f64>)> {
                let mut conn = Conn::new(&addr)?;
                let mut lat = Vec::new();
                let mut n = 0;
                let mut at = c * 37;
                while !stop.load(Ordering::Relaxed) {
                    let b: Vec<&[f32]> = (0..batch)
                        .map(|i| rows[(at + i) % rows.len()].as_slice())
                        .collect();
                    at += batch;
                    let t = Instant::now();
                    search(&mut conn, &name, &b, 10, nprobe)?;
                    lat.push(t.elapsed().as_secs_f64() * 1e3);
                    n += batch;
                }
                Ok((n, lat))
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    let mut lat = Vec::new();
    for t in threads {
        let (n, l) = t.join().map_err(|_| "a client panicked")??;
        total += n;
        lat.extend(l);
    }
    let elapsed = t0.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    Ok((
        total as f64 / elapsed,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
    ))
}

fn sanitize(key: &str) -> String {
    key.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

pub fn scale(a: &crate::cli::ScaleArgs, fathom: &Path) -> Res<Vec<String>> {
    let (nb, d, nq, shards, threads, rounds) = (a.nb, a.d, a.nq, a.shards, a.threads, a.rounds);
    let secs = a.secs as f64;
    let clients = a.clients;
    let procs = a.procs.unwrap_or(shards).clamp(1, shards);
    let keys = a.index.clone();
    let base_dir = crate::root().join("target/scale");
    let data = base_dir.join(format!("data-{nb}x{d}"));
    if !data.join("groundtruth.ivecs").exists() {
        run_ok(
            Command::new(fathom).arg("gen").arg(&data).args([
                "--nb",
                &nb.to_string(),
                "--d",
                &d.to_string(),
                "--nq",
                &nq.to_string(),
                "--k",
                "10",
            ]),
            "fathom gen",
        )?;
    }
    let (qd, q) = fvecs(&data.join("query.fvecs"))?;
    if qd != d {
        return Err(format!("query.fvecs has d {qd}, expected {d}"));
    }
    let gt = ivecs(&data.join("groundtruth.ivecs"))?;
    let nq = q.len() / d;
    let mut table = vec![format!(
        "{nb} × {d}, {nq} queries, {shards} shards on {procs} searcher processes × {} thread(s) + router vs one process × {threads} threads, {} cores",
        (threads / procs).max(1),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    )];
    for key in keys.split(';') {
        let ivf = key.starts_with("IVF");
        let store_dir: PathBuf = base_dir.join(format!("store-{nb}x{d}-{}", sanitize(key)));
        let store = format!("file://{}", store_dir.display());
        if !store_dir.join("sharded/manifests/v1.json").exists() {
            let t = Instant::now();
            run_ok(
                Command::new(fathom)
                    .args(["--threads", &threads.to_string(), "shard", "build"])
                    .arg(&data)
                    .args([
                        "--index",
                        key,
                        "--shards",
                        &shards.to_string(),
                        "--store",
                        &store,
                        "--name",
                        "sharded",
                    ]),
                "fathom shard build",
            )?;
            let sharded_s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            run_ok(
                Command::new(fathom)
                    .args(["--threads", &threads.to_string(), "shard", "build"])
                    .arg(&data)
                    .args([
                        "--index",
                        key,
                        "--shards",
                        "1",
                        "--store",
                        &store,
                        "--name",
                        "single",
                        "--training-of",
                        "sharded",
                    ]),
                "fathom shard build (single)",
            )?;
            table.push(format!(
                "{key}: build {sharded_s:.1} s (train + {shards} shards), one-shard twin {:.1} s (add only)",
                t.elapsed().as_secs_f64()
            ));
        }
        if a.build_check {
            // The slices as separate processes at once (one thread each), on the sharded
            // index's training, against one process adding everything with all threads.
            let name = |what: &str| format!("{what}-{}", std::process::id());
            let slice_cmd = |i: usize, of: &str, t: &str, shards_n: usize| {
                let mut c = Command::new(fathom);
                c.args(["--threads", t, "shard", "build"])
                    .arg(&data)
                    .args([
                        "--index",
                        key,
                        "--shards",
                        &shards_n.to_string(),
                        "--store",
                        &store,
                    ])
                    .args([
                        "--name",
                        of,
                        "--training-of",
                        "sharded",
                        "--shard",
                        &format!("{i}/{shards_n}"),
                    ])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                c
            };
            let mut best_par = f64::INFINITY;
            let mut best_one = f64::INFINITY;
            for _ in 0..rounds {
                let t = Instant::now();
                let kids: Vec<Child> = (0..shards)
                    .map(|i| {
                        slice_cmd(i, &name("par"), "1", shards)
                            .spawn()
                            .map_err(|e| e.to_string())
                    })
                    .collect::<Res<_>>()?;
                for mut k in kids {
                    let st = k.wait().map_err(|e| e.to_string())?;
                    if !st.success() {
                        return Err(format!("a slice build failed ({st})"));
                    }
                }
                best_par = best_par.min(t.elapsed().as_secs_f64());
                let t = Instant::now();
                run_ok(
                    &mut slice_cmd(0, &name("one"), &threads.to_string(), 1),
                    "one-process build",
                )?;
                best_one = best_one.min(t.elapsed().as_secs_f64());
            }
            table.push(format!(
                "{key}: {shards} slice builds as separate processes (1 thread each) {best_par:.1} s vs one process adding all ({threads} threads) {best_one:.1} s: {:.2}× (best of {rounds}, interleaved)",
                best_par / best_one
            ));
        }
        let per = (threads / procs).max(1).to_string();
        // Searcher processes: shard i goes to process i % procs.
        let searchers: Vec<Proc> = (0..procs)
            .map(|i| {
                let mine: Vec<String> = (i..shards).step_by(procs).map(|s| s.to_string()).collect();
                spawn(
                    fathom,
                    &[
                        "--threads".into(),
                        per.clone(),
                        "searcher".into(),
                        "--store".into(),
                        store.clone(),
                        "--name".into(),
                        "sharded".into(),
                        "--shards".into(),
                        mine.join(","),
                        "--listen".into(),
                        "127.0.0.1:0".into(),
                        "--cache".into(),
                        base_dir
                            .join(format!("cache-{}-{i}", sanitize(key)))
                            .display()
                            .to_string(),
                    ],
                )
            })
            .collect::<Res<_>>()?;
        let list: Vec<String> = (0..shards)
            .map(|s| format!("s{s}={}", searchers[s % procs].addr))
            .collect();
        let router = spawn(
            fathom,
            &[
                "--threads".into(),
                "1".into(),
                "serve".into(),
                "--router".into(),
                "--store".into(),
                store.clone(),
                "--name".into(),
                "sharded".into(),
                "--port".into(),
                "0".into(),
                "--searchers".into(),
                list.join(","),
                "--deadline-ms".into(),
                "60000".into(),
            ],
        )?;
        let once = if ivf {
            Some(spawn(
                fathom,
                &[
                    "--threads".into(),
                    "1".into(),
                    "serve".into(),
                    "--router".into(),
                    "--quantize-once".into(),
                    "--store".into(),
                    store.clone(),
                    "--name".into(),
                    "sharded".into(),
                    "--port".into(),
                    "0".into(),
                    "--searchers".into(),
                    list.join(","),
                    "--deadline-ms".into(),
                    "60000".into(),
                ],
            )?)
        } else {
            None
        };
        let single = spawn(
            fathom,
            &[
                "--threads".into(),
                threads.to_string(),
                "serve".into(),
                "--router".into(),
                "--store".into(),
                store.clone(),
                "--name".into(),
                "single".into(),
                "--port".into(),
                "0".into(),
                "--local".into(),
                base_dir
                    .join(format!("cache-{}-single", sanitize(key)))
                    .display()
                    .to_string(),
                "--deadline-ms".into(),
                "60000".into(),
            ],
        )?;
        let hnsw = key.contains("HNSW") && !ivf;
        let probes: Vec<Param> = if ivf {
            vec![
                Some(("nprobe", 4)),
                Some(("nprobe", 16)),
                Some(("nprobe", 64)),
            ]
        } else if hnsw {
            vec![
                Some(("efSearch", 16)),
                Some(("efSearch", 64)),
                Some(("efSearch", 256)),
            ]
        } else {
            vec![None]
        };
        for &nprobe in &probes {
            if let Some(o) = &once {
                let c = search_all(&o.addr, "sharded", &q, d, 10, nprobe)?;
                let b = search_all(&single.addr, "single", &q, d, 10, nprobe)?;
                let same = c.iter().zip(&b).filter(|(x, y)| x.0 == y.0).count();
                table.push(format!(
                    "{key} {} quantize-once: top-10 equal on {same}/{nq} queries",
                    label(nprobe)
                ));
            }
            let a = search_all(&router.addr, "sharded", &q, d, 10, nprobe)?;
            let b = search_all(&single.addr, "single", &q, d, 10, nprobe)?;
            let mut same = 0;
            let mut ties = 0;
            let mut other = 0;
            for ((ia, da), (ib, db)) in a.iter().zip(&b) {
                if ia == ib {
                    same += 1;
                } else if da
                    .iter()
                    .zip(db)
                    .all(|(x, y)| (x - y).abs() <= 1e-5 * y.abs().max(1.0))
                {
                    ties += 1;
                } else {
                    other += 1;
                }
            }
            let recall = |h: &Hits| -> f64 {
                h.iter()
                    .zip(&gt)
                    .map(|((ids, _), g)| ids.iter().filter(|i| g[..10].contains(i)).count())
                    .sum::<usize>() as f64
                    / (10 * h.len()) as f64
            };
            table.push(format!(
                "{key} {}: top-10 equal on {same}/{nq} queries, {ties} differ by distance ties only, {other} otherwise; 10-R@10 sharded {:.4}, single {:.4}",
                label(nprobe),
                recall(&a),
                recall(&b)
            ));
        }
        let nprobe: Param = if ivf {
            Some(("nprobe", 16))
        } else if hnsw {
            Some(("efSearch", 64))
        } else {
            None
        };
        let work = Workload {
            q: &q,
            d,
            clients,
            secs,
            nprobe,
        };
        for batch in [1usize, 64] {
            let mut best_a = (0.0, 0.0, 0.0);
            let mut best_b = (0.0, 0.0, 0.0);
            let mut best_c = (0.0, 0.0, 0.0);
            for _ in 0..rounds {
                let ra = load(&router.addr, "sharded", batch, &work)?;
                let rb = load(&single.addr, "single", batch, &work)?;
                if ra.0 > best_a.0 {
                    best_a = ra;
                }
                if rb.0 > best_b.0 {
                    best_b = rb;
                }
                if let Some(o) = &once {
                    let rc = load(&o.addr, "sharded", batch, &work)?;
                    if rc.0 > best_c.0 {
                        best_c = rc;
                    }
                }
            }
            if once.is_some() {
                table.push(format!(
                    "{key} batch {batch} quantize-once: {:.0} QPS (P50 {:.2} ms, P99 {:.2} ms): ratio {:.2} to one process",
                    best_c.0, best_c.1, best_c.2, best_c.0 / best_b.0
                ));
            }
            table.push(format!(
                "{key} batch {batch} ({clients} clients, {}): sharded {:.0} QPS (P50 {:.2} ms, P99 {:.2} ms) vs one process {:.0} QPS (P50 {:.2} ms, P99 {:.2} ms): ratio {:.2} (best of {rounds} interleaved runs of {secs} s each)",
                label(nprobe),
                best_a.0, best_a.1, best_a.2, best_b.0, best_b.1, best_b.2, best_a.0 / best_b.0
            ));
        }
        let rss: f64 = searchers
            .iter()
            .map(|s| rss_mib(s.child.id(), "VmRSS:"))
            .sum();
        table.push(format!(
            "{key}: resident memory: searchers {rss:.0} MiB + router {:.0} MiB; one process {:.0} MiB",
            rss_mib(router.child.id(), "VmRSS:"),
            rss_mib(single.child.id(), "VmRSS:")
        ));
    }
    Ok(table)
}
