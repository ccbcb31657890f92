//! `cargo xtask serve-load`: `fathom serve` under load over loopback. Builds a collection
//! through the API, then `--clients` keep-alive HTTP/1.1 connections search as fast as
//! they can for `--secs` while a writer adds `--writes` items a second; reports QPS,
//! latency percentiles, errors, the server's memory, and checks that no add was lost.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::Res;
use crate::cli::ServeLoadArgs;

/// A keep-alive HTTP/1.1 connection.
pub(crate) struct Conn {
    r: BufReader<TcpStream>,
    /// The `Retry-After` seconds of the last answer, when it had one.
    pub(crate) retry_after: Option<u64>,
}

impl Conn {
    pub(crate) fn new(addr: &str) -> Res<Self> {
        let s = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
        s.set_nodelay(true).ok();
        Ok(Conn {
            r: BufReader::new(s),
            retry_after: None,
        })
    }

    pub(crate) fn call(&mut self, method: &str, path: &str, body: &str) -> Res<(u16, String)> {
        let s = self.r.get_mut();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .and_then(|_| s.write_all(body.as_bytes()))
        .map_err(|e| format!("send: {e}"))?;
        let mut line = String::new();
        self.r
            .read_line(&mut line)
            .map_err(|e| format!("read: {e}"))?;
        let status: u16 = line
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {line:?}"))?;
        let mut len = 0usize;
        self.retry_after = None;
        loop {
            line.clear();
            self.r
                .read_line(&mut line)
                .map_err(|e| format!("read: {e}"))?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                } else if k.eq_ignore_ascii_case("retry-after") {
                    self.retry_after = v.trim().parse().ok();
                }
            }
        }
        let mut buf = vec![0u8; len];
        self.r
            .read_exact(&mut buf)
            .map_err(|e| format!("read body: {e}"))?;
        Ok((status, String::from_utf8_lossy(&buf).into_owned()))
    }
}

fn random_vectors(n: usize, d: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            (0..d)
                .map(|_| {
                    s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
                    let mut z = s;
                    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                    ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                })
                .collect()
        })
        .collect()
}

pub(crate) fn rss_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with(field))?.to_string();
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

pub fn serve_load(a: &ServeLoadArgs, fathom: &Path) -> Res<Vec<String>> {
    let (n, d, clients, secs, writes) = (
        a.n,
        a.d.unwrap_or(384),
        a.clients.unwrap_or(32),
        a.secs.unwrap_or(60),
        a.writes,
    );
    let index = a.index.clone().unwrap_or_else(|| "HNSW32".into());
    let ef = a.ef;
    let dir = crate::root().join("target/serve-load");
    let _ = std::fs::remove_dir_all(&dir);
    let server = Server::start(fathom, &dir, &[])?;
    let (pid, addr) = (server.child.id(), server.addr.clone());
    let result = (|| -> Res<Vec<String>> {
        let mut c = Conn::new(&addr)?;
        let (s, b) = c.call(
            "PUT",
            "/collections/bench",
            &format!(r#"{{"dim": {d}, "index": "{index}"}}"#),
        )?;
        if s >= 300 {
            return Err(format!("create: {s} {b}"));
        }
        let t0 = Instant::now();
        let batch = 2000;
        for start in (0..n).step_by(batch) {
            let m = batch.min(n - start);
            let body = serde_json::json!({ "vectors": random_vectors(m, d, start as u64 + 1) })
                .to_string();
            let (s, b) = c.call("POST", "/collections/bench/items", &body)?;
            if s != 200 {
                return Err(format!("add: {s} {b}"));
            }
            eprint!("\rxtask: added {} / {n}", start + m);
        }
        let build_s = t0.elapsed().as_secs_f64();
        eprintln!(" in {build_s:.1} s");
        let rss_loaded = rss_mib(pid, "VmRSS:");
        let bodies: Arc<Vec<String>> = Arc::new(
            random_vectors(256, d, 999_999)
                .into_iter()
                .map(|q| {
                    // The service refuses a parameter its index lacks.
                    let params = if index.contains("HNSW") {
                        serde_json::json!({ "efSearch": ef })
                    } else if index.starts_with("IVF") {
                        serde_json::json!({ "nprobe": 16 })
                    } else {
                        serde_json::json!({})
                    };
                    serde_json::json!({ "vector": q, "top_k": 10, "params": params }).to_string()
                })
                .collect(),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let errors = Arc::new(AtomicUsize::new(0));
        let writer = {
            let (addr, stop, errors) = (addr.clone(), stop.clone(), errors.clone());
            std::thread::spawn(move || -> Res<usize> {
                let mut c = Conn::new(&addr)?;
                let mut acked = 0usize;
                let period = Duration::from_secs_f64(1.0 / writes.max(1) as f64);
                let mut next = Instant::now();
                let mut k = 0u64;
                while writes > 0 && !stop.load(Ordering::Relaxed) {
                    next += period;
                    let body = serde_json::json!({
                        "vectors": random_vectors(1, d, 5_000_000 + k),
                        "metadata": [{"written": k}],
                    })
                    .to_string();
                    match c.call("POST", "/collections/bench/items", &body) {
                        Ok((200, _)) => acked += 1,
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    k += 1;
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
                Ok(acked)
            })
        };
        let round = hammer(
            &addr,
            "/collections/bench/search",
            &bodies,
            clients,
            secs as f64,
            false,
        );
        stop.store(true, Ordering::Relaxed);
        let acked = writer.join().map_err(|_| "writer panicked")??;
        let round = round?;
        let (s, b) = c.call("GET", "/collections/bench", "")?;
        let v: serde_json::Value = serde_json::from_str(&b).map_err(|e| format!("{s} {b}: {e}"))?;
        let items = v["items"].as_u64().unwrap_or(0) as usize;
        let rss_peak = rss_mib(pid, "VmHWM:");
        Ok(vec![
            format!(
                "fathom serve, {index} (efSearch {ef}), {n} × {d} added through the API in \
                 {build_s:.1} s; {clients} clients for {secs} s over loopback while a writer \
                 adds {writes} items/s"
            ),
            String::new(),
            "| QPS | P50 ms | P95 ms | P99 ms | max ms | errors | adds acked | items after | RSS loaded MiB | peak RSS MiB |".into(),
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|".into(),
            format!(
                "| {:.0} | {:.2} | {:.2} | {:.2} | {:.1} | {} | {acked} | {items} ({}) | {rss_loaded:.0} | {rss_peak:.0} |",
                round.qps,
                round.p50,
                round.p95,
                round.p99,
                round.max,
                round.shed + round.other + errors.load(Ordering::Relaxed),
                if items == n + acked { "none lost" } else { "MISMATCH" },
            ),
        ])
    })();
    drop(server);
    result
}

/// A `fathom serve` on `dir` with `flags`, killed when dropped.
struct Server {
    child: std::process::Child,
    addr: String,
}

impl Server {
    fn start(fathom: &Path, dir: &Path, flags: &[&str]) -> Res<Self> {
        let mut child = Command::new(fathom)
            .args([
                "serve",
                "--port",
                "0",
                "--snapshot-secs",
                "0",
                "--cache-mb",
                "0",
                "--data-dir",
            ])
            .arg(dir)
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("fathom serve: {e}"))?;
        let first = BufReader::new(child.stdout.take().ok_or("no stdout")?)
            .lines()
            .next()
            .ok_or("fathom serve printed nothing")?
            .map_err(|e| e.to_string())?;
        let addr = first
            .split("http://")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .ok_or_else(|| format!("no address in {first:?}"))?
            .to_string();
        Ok(Server { child, addr })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// What one timed run of many clients saw.
struct Round {
    qps: f64,
    p50: f64,
    p95: f64,
    p99: f64,
    max: f64,
    ok: usize,
    shed: usize,
    other: usize,
}

/// `clients` keep-alive connections searching `bodies` for `secs`; a client told 503 waits
/// its `Retry-After` when `polite`, else retries at once.
fn hammer(
    addr: &str,
    route: &str,
    bodies: &Arc<Vec<String>>,
    clients: usize,
    secs: f64,
    polite: bool,
) -> Res<Round> {
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..clients)
        .map(|w| {
            let (addr, route, bodies, stop) = (
                addr.to_string(),
                route.to_string(),
                bodies.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || -> Res<(Vec<f64>, usize, usize)> {
                let mut c = Conn::new(&addr)?;
                let (mut lat, mut shed, mut other) = (Vec::new(), 0, 0);
                let mut i = w;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    match c.call("POST", &route, &bodies[i % bodies.len()]) {
                        Ok((200, _)) => lat.push(t.elapsed().as_secs_f64() * 1e3),
                        Ok((503, _)) => {
                            shed += 1;
                            if polite {
                                let wait = c.retry_after.unwrap_or(1) as f64;
                                std::thread::sleep(Duration::from_secs_f64(wait));
                            }
                        }
                        Ok(_) => other += 1,
                        Err(_) => {
                            other += 1;
                            c = Conn::new(&addr)?;
                        }
                    }
                    i += clients;
                }
                Ok((lat, shed, other))
            })
        })
        .collect();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let (mut lat, mut shed, mut other) = (Vec::new(), 0, 0);
    for w in workers {
        let (l, s, o) = w.join().map_err(|_| "client thread panicked")??;
        lat.extend(l);
        shed += s;
        other += o;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    Ok(Round {
        qps: lat.len() as f64 / elapsed,
        p50: percentile(&lat, 0.5),
        p95: percentile(&lat, 0.95),
        p99: percentile(&lat, 0.99),
        max: lat.last().copied().unwrap_or(f64::NAN),
        ok: lat.len(),
        shed,
        other,
    })
}

/// `cargo xtask serve-load --compare`: query batching on and off (interleaved rounds, same
/// data, same clients) for each index, then a flood past a small queue (shedding).
pub fn serve_compare(a: &ServeLoadArgs, fathom: &Path) -> Res<Vec<String>> {
    let (n, d, clients, secs, rounds) = (
        a.n,
        a.d.unwrap_or(128),
        a.clients.unwrap_or(64),
        a.secs.unwrap_or(10),
        a.rounds,
    );
    let indexes = a
        .index
        .clone()
        .unwrap_or_else(|| "Flat;IVF1024,Flat".into());
    let root = crate::root().join("target/serve-compare");
    let mut out = vec![
        format!(
            "fathom serve, {n} × {d}, {clients} clients each sending one query a request \
             (k = 10, 256 distinct queries), {secs} s a run, batching on (--batch-window-us 500 \
             --max-batch 64) and off (--batch-window-us 0) interleaved, {rounds} rounds, result \
             cache off; figures of the round with the median QPS ratio"
        ),
        String::new(),
        "| index | batching | QPS | P50 ms | P99 ms | errors | QPS on/off |".into(),
        "|---|---|---:|---:|---:|---:|---:|".into(),
    ];
    let queries: Arc<Vec<String>> = Arc::new(
        random_vectors(256, d, 999_999)
            .into_iter()
            .map(|q| {
                serde_json::json!({ "vector": q, "top_k": 10, "params": {"nprobe": 16} })
                    .to_string()
            })
            .collect(),
    );
    let flat_queries: Arc<Vec<String>> = Arc::new(
        random_vectors(256, d, 999_999)
            .into_iter()
            .map(|q| serde_json::json!({ "vector": q, "top_k": 10 }).to_string())
            .collect(),
    );
    for (i, index) in indexes.split(';').enumerate() {
        let dir = root.join(format!("c{i}"));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let s = Server::start(fathom, &dir, &["--max-body-mib", "512"])?;
            let mut c = Conn::new(&s.addr)?;
            let (st, b) = c.call(
                "PUT",
                "/collections/bench",
                &format!(r#"{{"dim": {d}, "index": "{index}"}}"#),
            )?;
            if st >= 300 {
                return Err(format!("create: {st} {b}"));
            }
            // IVF trains on its first batch: send a large one (39 points a list for IVF1024).
            let batch = if index.starts_with("IVF") {
                n.min(40_000)
            } else {
                5000
            };
            for start in (0..n).step_by(batch) {
                let m = batch.min(n - start);
                let body = serde_json::json!({ "vectors": random_vectors(m, d, start as u64 + 1) })
                    .to_string();
                let (st, b) = c.call("POST", "/collections/bench/items", &body)?;
                if st != 200 {
                    return Err(format!("add: {st} {b}"));
                }
            }
        }
        let bodies = if index.starts_with("IVF") {
            &queries
        } else {
            &flat_queries
        };
        let mut pairs = Vec::new();
        for r in 0..rounds {
            let mut pair = Vec::new();
            for window in ["500", "0"] {
                let s = Server::start(fathom, &dir, &["--batch-window-us", window])?;
                // Warm up: the index is loaded, the pages are in.
                hammer(
                    &s.addr,
                    "/collections/bench/search",
                    bodies,
                    clients,
                    1.0,
                    false,
                )?;
                let round = hammer(
                    &s.addr,
                    "/collections/bench/search",
                    bodies,
                    clients,
                    secs as f64,
                    false,
                )?;
                eprintln!(
                    "xtask: {index} round {r} batching {}: {:.0} QPS, P50 {:.2} ms, P99 {:.2} ms",
                    if window == "0" { "off" } else { "on" },
                    round.qps,
                    round.p50,
                    round.p99
                );
                pair.push(round);
            }
            pairs.push(pair);
        }
        pairs.sort_by(|a, b| (a[0].qps / a[1].qps).total_cmp(&(b[0].qps / b[1].qps)));
        let mid = &pairs[pairs.len() / 2];
        for (label, r) in ["on", "off"].iter().zip(mid.iter()) {
            out.push(format!(
                "| {index} | {label} | {:.0} | {:.2} | {:.2} | {} | {} |",
                r.qps,
                r.p50,
                r.p99,
                r.shed + r.other,
                if *label == "on" {
                    format!("{:.2}×", mid[0].qps / mid[1].qps)
                } else {
                    String::new()
                }
            ));
        }
    }
    // Shedding: 4× the clients against a queue of 16 queries with a 100 ms deadline,
    // clients that retry at once and clients that wait the Retry-After they are told.
    let dir = root.join("c0");
    let flood = clients * 4;
    out.extend([
        String::new(),
        format!(
            "Shedding ({} index, {flood} clients, --max-queue 16, --deadline-ms 100, batching \
             off, {secs} s a run):",
            indexes.split(';').next().unwrap_or("Flat")
        ),
        String::new(),
        "| clients on 503 | answered | QPS | P50 ms | P99 ms | shed (503 + Retry-After) | other errors | /health after |".into(),
        "|---|---:|---:|---:|---:|---:|---:|---:|".into(),
    ]);
    for polite in [false, true] {
        let s = Server::start(
            fathom,
            &dir,
            &[
                "--max-queue",
                "16",
                "--deadline-ms",
                "100",
                "--batch-window-us",
                "0",
            ],
        )?;
        let round = hammer(
            &s.addr,
            "/collections/bench/search",
            &flat_queries,
            flood,
            secs as f64,
            polite,
        )?;
        let mut c = Conn::new(&s.addr)?;
        let (health, _) = c.call("GET", "/health", "")?;
        out.push(format!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {} ({:.0} %) | {} | {health} |",
            if polite {
                "wait Retry-After"
            } else {
                "retry at once"
            },
            round.ok,
            round.qps,
            round.p50,
            round.p99,
            round.shed,
            100.0 * round.shed as f64 / (round.ok + round.shed).max(1) as f64,
            round.other
        ));
    }
    Ok(out)
}
