//! `cargo xtask binary-bench`: binary indexes (BFlat, BIVF, BHNSW) built and searched by
//! fathom (`fathom-io`'s `binary_bench` example) and faiss-cpu (`xtask/py/faiss_binary.py`)
//! on the same binarised vectors, interleaved round by round (fathom, faiss, fathom, …).
//! The vectors are sign bits of 256 random projections of the float dataset
//! (`xtask/py/binarise.py`), written beside it once.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::{Res, cli, measured, median, root, run_ok};

/// One row: a factory string, how many base vectors it indexes (all when `None`) and the
/// parameter values it is searched with.
struct BinaryRow {
    factory: &'static str,
    nb: Option<usize>,
    sweep: Option<&'static str>,
}

const ROWS: &[BinaryRow] = &[
    BinaryRow {
        factory: "BFlat",
        nb: None,
        sweep: None,
    },
    BinaryRow {
        factory: "BIVF1024",
        nb: None,
        sweep: Some("nprobe=8,32"),
    },
    BinaryRow {
        factory: "BHNSW32",
        nb: Some(200_000),
        sweep: Some("efSearch=16,64"),
    },
];

/// `(param, qps, r1, build_s)` per JSON line of one run.
fn parse(out: &str) -> Vec<(String, f64, f64, f64)> {
    out.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| {
            let f = |k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
            let param = match v.get("param") {
                Some(Value::Object(m)) => m
                    .iter()
                    .map(|(k, x)| format!("{k} {}", x.as_f64().unwrap_or(f64::NAN)))
                    .collect(),
                _ => "–".to_string(),
            };
            (param, f("qps"), f("r1"), f("build_s"))
        })
        .collect()
}

pub(crate) fn binary_bench(
    args: &cli::BinaryBenchArgs,
    py: &Path,
    data: &Path,
) -> Res<Vec<String>> {
    let bin_dir = data.with_file_name(format!(
        "{}-b256",
        data.file_name().and_then(|n| n.to_str()).unwrap_or("data")
    ));
    if !bin_dir.join("query.npy").exists() {
        run_ok(
            Command::new(py)
                .arg(root().join("xtask/py/binarise.py"))
                .arg(data)
                .arg(&bin_dir),
            "binarise.py",
        )?;
    }
    run_ok(
        Command::new("cargo").current_dir(root()).args([
            "build",
            "--release",
            "-q",
            "-p",
            "fathom-io",
            "--example",
            "binary_bench",
        ]),
        "cargo build --release --example binary_bench",
    )?;
    let example = root().join("target/release/examples/binary_bench");
    let script = root().join("xtask/py/faiss_binary.py");
    let t = args.threads.to_string();
    let mut table = vec![
        format!(
            "Binary vectors {} (256 bits) · {} threads · {} rounds, fathom and faiss interleaved · QPS: each tool's best of 3 passes, median over rounds · ratio: median of the rounds' ratios · r1: first result at the exact nearest distance",
            bin_dir.display(),
            args.threads,
            args.rounds
        ),
        String::new(),
        "| index | nb | param | fathom QPS | faiss QPS | fathom/faiss (median) | r1 fathom / faiss | build s fathom / faiss |".into(),
        "|---|---|---|---|---|---|---|---|".into(),
    ];
    for row in ROWS {
        let mut a: Vec<String> = vec![
            t.clone(),
            row.factory.into(),
            row.nb.map_or("all".to_string(), |n| n.to_string()),
        ];
        a.extend(row.sweep.map(String::from));
        let mut fa_runs = Vec::new();
        let mut fs_runs = Vec::new();
        for round in 0..args.rounds {
            eprintln!(
                "xtask: {} — round {}/{}",
                row.factory,
                round + 1,
                args.rounds
            );
            let (out, _) = measured(Command::new(&example).arg(&bin_dir).args(&a))?;
            fa_runs.push(parse(&out));
            let (out, _) = measured(Command::new(py).arg(&script).arg(&bin_dir).args(&a))?;
            fs_runs.push(parse(&out));
        }
        let nrows = fa_runs.first().map_or(0, Vec::len);
        for p in 0..nrows {
            let col = |runs: &[Vec<(String, f64, f64, f64)>],
                       f: fn(&(String, f64, f64, f64)) -> f64| {
                median(runs.iter().map(|r| f(&r[p])).collect())
            };
            let ratios: Vec<f64> = fa_runs
                .iter()
                .zip(&fs_runs)
                .map(|(a, b)| a[p].1 / b[p].1)
                .collect();
            table.push(format!(
                "| {} | {} | {} | {:.0} | {:.0} | {:.2}× | {:.3} / {:.3} | {:.1} / {:.1} |",
                row.factory,
                row.nb.map_or("all".to_string(), |n| n.to_string()),
                fa_runs[0][p].0,
                col(&fa_runs, |s| s.1),
                col(&fs_runs, |s| s.1),
                median(ratios),
                col(&fa_runs, |s| s.2),
                col(&fs_runs, |s| s.2),
                col(&fa_runs, |s| s.3),
                col(&fs_runs, |s| s.3),
            ));
        }
    }
    Ok(table)
}
