//! `cargo xtask gpu`: on a machine with an NVIDIA GPU, runs fathom-gpu's tests and its
//! benchmark (examples/gpu_bench.rs) beside faiss-gpu (PyPI `faiss-gpu-cu12`,
//! bench/faiss_gpu_ref.py) on the same data: GpuIndexFlat 1M × 128 with 10 000 queries,
//! IVF4096,Flat and IVF4096,PQ32 at nprobe 16 and 64, k-means 1M → 4096. Without a GPU it
//! says so and succeeds.

use std::path::Path;
use std::process::Command;

use crate::{Res, root, run_ok};

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l.trim()).ok())
        .collect()
}

fn faiss_gpu_python() -> Res<std::path::PathBuf> {
    let venv = root().join(".venv-gpu");
    let py = venv.join("bin/python");
    let ready = |p: &Path| {
        Command::new(p)
            .args(["-c", "import faiss; faiss.StandardGpuResources()"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !ready(&py) {
        run_ok(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv",
        )?;
        run_ok(
            Command::new(&py).args(["-m", "pip", "install", "-q", "faiss-gpu-cu12", "numpy"]),
            "pip install faiss-gpu-cu12",
        )?;
    }
    Ok(py)
}

/// Runs the subcommand.
pub fn gpu(data: &std::path::Path) -> Res<()> {
    if !fathom_gpu::gpu_available() {
        println!(
            "xtask gpu: no GPU present (no CUDA driver library or no CUDA device on this \
             machine). The GPU tests skip themselves, so `cargo test -p fathom-gpu` passes \
             here; there is nothing to benchmark."
        );
        return Ok(());
    }
    run_ok(
        Command::new("cargo").current_dir(root()).args([
            "test",
            "--release",
            "-p",
            "fathom-gpu",
            "--",
            "--nocapture",
        ]),
        "cargo test -p fathom-gpu",
    )?;
    if !data.join("groundtruth.ivecs").exists() {
        run_ok(
            Command::new("cargo")
                .current_dir(root())
                .args(["run", "--release", "-q", "-p", "fathom-cli", "--", "gen"])
                .arg(data)
                .args([
                    "--nb", "1000000", "--d", "128", "--nq", "10000", "--nt", "100000", "--k", "10",
                ]),
            "fathom gen",
        )?;
    }
    let ours = Command::new("cargo")
        .current_dir(root())
        .args([
            "run",
            "--release",
            "-q",
            "-p",
            "fathom-gpu",
            "--example",
            "gpu_bench",
            "--",
        ])
        .arg(data)
        .output()
        .map_err(|e| format!("gpu_bench: {e}"))?;
    if !ours.status.success() {
        return Err(format!(
            "gpu_bench failed: {}",
            String::from_utf8_lossy(&ours.stderr)
        ));
    }
    let ours = json_lines(&String::from_utf8_lossy(&ours.stdout));
    let theirs = match faiss_gpu_python() {
        Ok(py) => {
            let out = Command::new(py)
                .arg(root().join("crates/fathom-gpu/bench/faiss_gpu_ref.py"))
                .arg(data)
                .output()
                .map_err(|e| format!("faiss_gpu_ref.py: {e}"))?;
            if !out.status.success() {
                eprintln!("faiss-gpu failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            json_lines(&String::from_utf8_lossy(&out.stdout))
        }
        Err(e) => {
            eprintln!("xtask gpu: faiss-gpu unavailable ({e}); fathom's figures only");
            Vec::new()
        }
    };
    println!("| measurement | fathom-gpu | faiss-gpu | ratio | recall@1 fathom / faiss |");
    println!("|---|---:|---:|---:|---|");
    for row in &ours {
        let same = |r: &&serde_json::Value| {
            r["index"] == row["index"]
                && r["nprobe"] == row["nprobe"]
                && r["kmeans"] == row["kmeans"]
        };
        let other = theirs.iter().find(same);
        if row["kmeans"].is_number() {
            let (a, b) = (
                row["time_s"].as_f64(),
                other.and_then(|o| o["time_s"].as_f64()),
            );
            println!(
                "| k-means 1M → 4096, 20 iterations (s) | {:.2} | {} | {} | |",
                a.unwrap_or(f64::NAN),
                b.map_or("—".into(), |b| format!("{b:.2}")),
                b.zip(a)
                    .map_or("—".into(), |(b, a)| format!("{:.2}× faster", b / a))
            );
            continue;
        }
        let label = match row["nprobe"].as_u64() {
            Some(p) => format!("{} nprobe {p} (QPS)", row["index"].as_str().unwrap_or("?")),
            None => format!("{} (QPS)", row["index"].as_str().unwrap_or("?")),
        };
        let (a, b) = (row["qps"].as_f64(), other.and_then(|o| o["qps"].as_f64()));
        println!(
            "| {label} | {:.0} | {} | {} | {:.3} / {} |",
            a.unwrap_or(f64::NAN),
            b.map_or("—".into(), |b| format!("{b:.0}")),
            a.zip(b)
                .map_or("—".into(), |(a, b)| format!("{:.2}", a / b)),
            row["recall_at_1"].as_f64().unwrap_or(f64::NAN),
            other
                .and_then(|o| o["recall_at_1"].as_f64())
                .map_or("—".into(), |r| format!("{r:.3}"))
        );
    }
    Ok(())
}
