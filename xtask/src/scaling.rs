//! `cargo xtask scaling`: queries per second against thread count, fathom and faiss-cpu
//! side by side (issue 26). Each index is built once by fathom and saved in Faiss's
//! format; both tools then search that same file (`fathom bench --load`,
//! `xtask/py/faiss_scaling.py`), so the comparison is of search alone, at every thread
//! count, batch size and parameter value, interleaved round by round. k-means training
//! is timed at each thread count too.
//!
//! On a machine with fewer cores than the largest thread count the figures say nothing
//! about scaling; the table notes the core count so a reader can tell.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::{Res, cli, measured, median, root};

/// The indexes searched by default and the parameter each is swept over.
const DEFAULT_INDEXES: &[(&str, &str)] = &[
    ("Flat", ""),
    ("IVF4096,Flat", "nprobe=1,16,64"),
    ("IVF4096,SQ8", "nprobe=1,16,64"),
    ("IVF4096,PQ32", "nprobe=1,16,64"),
    ("IVF4096,PQ32x4fs", "nprobe=1,16,64"),
    ("HNSW32", "efSearch=16,64"),
];

/// `value → qps` per JSON line of one run.
fn qps_by_value(out: &str) -> Vec<(String, f64)> {
    out.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| {
            let value = match v.get("value") {
                Some(Value::String(s)) => s.clone(),
                Some(x) => x.to_string(),
                None => "–".into(),
            };
            (
                value,
                v.get("qps").and_then(Value::as_f64).unwrap_or(f64::NAN),
            )
        })
        .collect()
}

/// The sweep's values (`nprobe=1,16` → `["1", "16"]`; none → one empty value).
fn values(sweep: &str) -> Vec<String> {
    match sweep.split_once('=') {
        Some((_, v)) => v.split(',').map(|s| s.trim().to_string()).collect(),
        None => vec![String::new()],
    }
}

pub(crate) fn scaling(
    args: &cli::ScalingArgs,
    py: &Path,
    data: &Path,
    fathom: &Path,
) -> Res<Vec<String>> {
    let threads: Vec<usize> = parse_list(&args.threads, "--threads")?;
    let batches: Vec<usize> = parse_list(&args.batches, "--batches")?;
    let helper = root().join("xtask/py/faiss_scaling.py");
    let faiss_ref = crate::shared().join("bench/faiss_ref.py");
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let indexes: Vec<(String, String)> = if args.index.is_empty() {
        DEFAULT_INDEXES
            .iter()
            .map(|(k, s)| (k.to_string(), s.to_string()))
            .collect()
    } else {
        args.index
            .iter()
            .map(|spec| match spec.split_once(':') {
                Some((k, s)) => (k.to_string(), s.to_string()),
                None => (spec.clone(), String::new()),
            })
            .collect()
    };
    let dir = root().join("target/scaling");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut table = vec![format!(
        "Thread scaling on {} ({} cores here) · {} rounds, fathom and faiss interleaved on the same \
         index file · QPS fathom / faiss (median over rounds of each tool's best of 3 passes), \
         ratio of the medians",
        data.display(),
        cores,
        args.rounds
    )];
    table.push(String::new());
    let head: Vec<String> = threads.iter().map(|t| format!("{t} threads")).collect();
    table.push(format!("| index | param | batch | {} |", head.join(" | ")));
    table.push(format!("|---|---|---|{}", "---|".repeat(threads.len())));
    for (key, sweep) in &indexes {
        let file = dir.join(format!("{}.faiss", key.replace([',', '(', ')'], "_")));
        eprintln!("xtask: building {key}");
        let mut build = Command::new(fathom);
        build
            .args(["bench"])
            .arg(data)
            .args(["--index", key, "--queries", "10", "--runs", "1", "--save"])
            .arg(&file);
        measured(&mut build)?;
        for &batch in &batches {
            // Per thread count and value: the rounds' QPS of each tool.
            let nvals = values(sweep).len();
            let mut ours = vec![vec![Vec::new(); nvals]; threads.len()];
            let mut theirs = vec![vec![Vec::new(); nvals]; threads.len()];
            for round in 0..args.rounds {
                for (ti, &t) in threads.iter().enumerate() {
                    eprintln!(
                        "xtask: {key} batch {batch} threads {t} — round {}",
                        round + 1
                    );
                    let queries = if batch == 0 {
                        None
                    } else {
                        Some(args.small_batch_queries.to_string())
                    };
                    let mut cmd = Command::new(fathom);
                    cmd.args(["--threads", &t.to_string(), "bench"])
                        .arg(data)
                        .arg("--load")
                        .arg(&file)
                        .args(["--runs", "3", "--json"]);
                    if !sweep.is_empty() {
                        cmd.args(["--param", sweep]);
                    }
                    if batch > 0 {
                        cmd.args(["--batch", &batch.to_string()]);
                    }
                    if let Some(q) = &queries {
                        cmd.args(["--queries", q]);
                    }
                    let (out, _) = measured(&mut cmd)?;
                    for (vi, (_, q)) in qps_by_value(&out).into_iter().enumerate().take(nvals) {
                        ours[ti][vi].push(q);
                    }
                    let mut cmd = Command::new(py);
                    cmd.arg(&helper).arg(data).arg("--load").arg(&file).args([
                        "--threads",
                        &t.to_string(),
                        "--batch",
                        &batch.to_string(),
                    ]);
                    if !sweep.is_empty() {
                        cmd.args(["--param", sweep]);
                    }
                    if let Some(q) = &queries {
                        cmd.args(["--queries", q]);
                    }
                    let (out, _) = measured(&mut cmd)?;
                    for (vi, (_, q)) in qps_by_value(&out).into_iter().enumerate().take(nvals) {
                        theirs[ti][vi].push(q);
                    }
                }
            }
            let pname = sweep.split_once('=').map_or("", |(p, _)| p);
            for (vi, v) in values(sweep).iter().enumerate() {
                let cells: Vec<String> = (0..threads.len())
                    .map(|ti| {
                        let (a, b) = (median(ours[ti][vi].clone()), median(theirs[ti][vi].clone()));
                        format!("{a:.0} / {b:.0} ({:.2}×)", a / b)
                    })
                    .collect();
                let param = if pname.is_empty() {
                    "–".to_string()
                } else {
                    format!("{pname} {v}")
                };
                let b = if batch == 0 {
                    "all".to_string()
                } else {
                    batch.to_string()
                };
                let line = format!("| {key} | {param} | {b} | {} |", cells.join(" | "));
                eprintln!("{line}");
                table.push(line);
            }
        }
    }
    // k-means: seconds at each thread count (training is where a thread count shows).
    if args.kmeans > 0 {
        let mut cells = Vec::new();
        for &t in &threads {
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            for _ in 0..args.rounds {
                let (out, _) = measured(
                    Command::new(fathom)
                        .args(["--threads", &t.to_string(), "bench"])
                        .arg(data)
                        .args(["--kmeans", &args.kmeans.to_string(), "--json"]),
                )?;
                ours.push(seconds(&out)?);
                let (out, _) = measured(Command::new(py).arg(&faiss_ref).arg(data).args([
                    "--kmeans",
                    &args.kmeans.to_string(),
                    "--threads",
                    &t.to_string(),
                    "--json",
                ]))?;
                theirs.push(seconds(&out)?);
            }
            let (a, b) = (median(ours), median(theirs));
            cells.push(format!("{a:.2} s / {b:.2} s ({:.2}×)", b / a));
        }
        table.push(format!(
            "| k-means {} centroids (time, ratio = faiss / fathom) | niter 20 | – | {} |",
            args.kmeans,
            cells.join(" | ")
        ));
    }
    Ok(table)
}

/// A comma-separated list of counts (`0` allowed: "all" for batches).
fn parse_list(s: &str, what: &str) -> Res<Vec<usize>> {
    s.split(',')
        .map(|v| {
            v.trim()
                .parse()
                .map_err(|_| format!("{what}: {v:?} is not a count (e.g. 1,2,4)"))
        })
        .collect()
}

/// The `seconds` of the last JSON line of a run (k-means: `fathom bench --kmeans` and
/// `faiss_ref.py --kmeans` both report it).
fn seconds(out: &str) -> Res<f64> {
    let v = crate::last_json(out)?;
    v.get("seconds")
        .and_then(Value::as_f64)
        .ok_or_else(|| format!("no seconds in {v}"))
}
