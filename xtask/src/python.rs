//! `cargo xtask py-bench`: the Python module against faiss-cpu and against fathom's own
//! Rust figures, on the same data and thread count. Builds the release wheel with maturin
//! into the benchmark virtualenv, then alternates rounds of the Rust CLI (`fathom bench`)
//! and of crates/fathom-py/bench/py_bench.py (which itself alternates fathom and faiss):
//! the per-call overhead of a one-query search, and bulk QPS.

use std::path::Path;
use std::process::Command;

use crate::{Res, root, run_ok};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Builds and installs the release wheel into `py`'s environment.
pub fn install_wheel(py: &Path) -> Res<()> {
    run_ok(
        Command::new(py).args(["-m", "pip", "install", "-q", "maturin>=1.9,<2"]),
        "pip install maturin",
    )?;
    let out = root().join("target/py-wheels-release");
    let _ = std::fs::remove_dir_all(&out);
    let maturin = py.with_file_name("maturin");
    run_ok(
        Command::new(&maturin)
            .current_dir(root())
            .args([
                "build",
                "--release",
                "--skip-auditwheel",
                "-q",
                "--manifest-path",
            ])
            .arg(root().join("crates/fathom-py/Cargo.toml"))
            .arg("--interpreter")
            .arg(py)
            .arg("--out")
            .arg(&out),
        "maturin build --release",
    )?;
    let wheel = std::fs::read_dir(&out)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or("maturin made no wheel")?;
    run_ok(
        Command::new(py)
            .args([
                "-m",
                "pip",
                "install",
                "-q",
                "--force-reinstall",
                "--no-deps",
            ])
            .arg(&wheel),
        "pip install the wheel",
    )
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l.trim()).ok())
        .collect()
}

/// Runs the benchmark; returns the report's lines.
pub fn py_bench(
    args: &crate::cli::PyBenchArgs,
    py: &Path,
    data: &Path,
    fathom: &Path,
) -> Res<Vec<String>> {
    let (rounds, threads) = (args.rounds, args.threads.clone());
    let specs: Vec<String> = match args.index.clone() {
        Some(s) => s.split(';').map(String::from).collect(),
        None => vec!["Flat".into(), "IVF1024,Flat:nprobe=16".into()],
    };
    install_wheel(py)?;
    let script = root().join("crates/fathom-py/bench/py_bench.py");
    let (mut ours_us, mut faiss_us, mut diff_us) = (Vec::new(), Vec::new(), Vec::new());
    let mut qps: Vec<[Vec<f64>; 3]> = specs.iter().map(|_| Default::default()).collect();
    for round in 0..rounds {
        eprintln!("xtask: py-bench round {}/{rounds}", round + 1);
        // Rust first, then Python (fathom, faiss): A B A B across rounds.
        for (i, spec) in specs.iter().enumerate() {
            let (desc, param) = spec.split_once(':').unwrap_or((spec, ""));
            let mut cmd = Command::new(fathom);
            // Best of 10 passes: about as many as py_bench.py makes in its 2 s.
            cmd.arg("bench").arg(data).args([
                "--index",
                desc,
                "--threads",
                &threads,
                "--runs",
                "10",
                "--json",
            ]);
            if !param.is_empty() {
                cmd.args(["--param", param]);
            }
            let out = cmd.output().map_err(|e| format!("fathom bench: {e}"))?;
            let rows = json_lines(&String::from_utf8_lossy(&out.stdout));
            let q = rows.iter().find_map(|r| r["qps"].as_f64()).ok_or_else(|| {
                format!(
                    "fathom bench printed no qps: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })?;
            qps[i][2].push(q);
        }
        let mut cmd = Command::new(py);
        cmd.arg(&script).arg(data).args(["--threads", &threads]);
        for s in &specs {
            cmd.args(["--index", s]);
        }
        let out = cmd.output().map_err(|e| format!("py_bench.py: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "py_bench.py failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let rows = json_lines(&String::from_utf8_lossy(&out.stdout));
        let pick = |kind: &str, lib: &str, index: Option<&str>, field: &str| {
            rows.iter().find_map(|r| {
                (r["kind"] == kind && r["lib"] == lib && index.is_none_or(|ix| r["index"] == ix))
                    .then(|| r[field].as_f64())
                    .flatten()
            })
        };
        let (a, b) = (
            pick("overhead", "fathom", None, "us_per_call").ok_or("no fathom overhead")?,
            pick("overhead", "faiss", None, "us_per_call").ok_or("no faiss overhead")?,
        );
        ours_us.push(a);
        faiss_us.push(b);
        diff_us.push(a - b);
        for (i, s) in specs.iter().enumerate() {
            qps[i][0].push(pick("bulk", "fathom", Some(s), "qps").ok_or("no fathom bulk")?);
            qps[i][1].push(pick("bulk", "faiss", Some(s), "qps").ok_or("no faiss bulk")?);
        }
    }
    let mut lines = vec![
        format!(
            "Python module, {} rounds alternating Rust CLI / fathom-py / faiss-cpu, {threads} threads, data {}; medians",
            rounds,
            data.display()
        ),
        String::new(),
        "| one-query search call (d = 128, 1 stored vector) | fathom-py | faiss-cpu | fathom − faiss |".into(),
        "|---|---:|---:|---:|".into(),
        format!(
            "| µs per call | {:.2} | {:.2} | {:+.2} |",
            median(ours_us),
            median(faiss_us),
            median(diff_us)
        ),
        String::new(),
        "| bulk search (all queries, k = 10) | fathom-py QPS | Rust CLI QPS | faiss-cpu QPS | py / Rust | py / faiss |".into(),
        "|---|---:|---:|---:|---:|---:|".into(),
    ];
    for (i, s) in specs.iter().enumerate() {
        let [p, f, r] = &qps[i];
        let (p, f, r) = (median(p.clone()), median(f.clone()), median(r.clone()));
        lines.push(format!(
            "| {s} | {p:.0} | {r:.0} | {f:.0} | {:.2} | {:.2} |",
            p / r,
            p / f
        ));
    }
    Ok(lines)
}
