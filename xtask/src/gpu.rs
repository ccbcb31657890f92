//! `cargo xtask gpu`: fathom-gpu's tests and its benchmark (examples/gpu_bench.rs) beside
//! PyTorch's brute force (bench/torch_ref.py) and, where Python imports it, faiss-gpu
//! (bench/faiss_gpu_ref.py), on the same data: GpuIndexFlat 1M × 128 with 10 000 queries in
//! FP32, TF32 and FP16, IVF4096,Flat and IVF4096,PQ32 at nprobe 16 and 64, k-means
//! 1M → 4096 — ending with one table (Markdown, then one JSON object).
//!
//! Everything runs through a kit: the release test binary, `gpu_bench`, the Python peers,
//! the Python wheel with its GPU tests (test_gpu.py) and `run.sh`, which needs no Rust
//! toolchain. `--carry DIR` only builds the kit into DIR
//! (a git-ignored folder of the repository, `.gpu-kit` by default) for a GPU machine that
//! has no toolchain — the device tool carries it and runs `bash DIR/run.sh`. Without
//! `--carry` the kit is built under target/ and run here; without a GPU the tests skip
//! themselves and the benchmark says there is no GPU.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Res, root, run_ok};

/// The files run.sh expects beside it, from crates/fathom-gpu/bench.
const SCRIPTS: [&str; 4] = ["run.sh", "torch_ref.py", "faiss_gpu_ref.py", "table.py"];

/// Builds the Python wheel into `kit` (with the maturin of target/py-venv, which the
/// Python tests make), for run.sh to test the GPU classes with test_gpu.py. Without
/// maturin the kit goes without, which run.sh says.
fn build_wheel(kit: &Path) -> Res<()> {
    let maturin = root().join("target/py-venv/bin/maturin");
    if !maturin.exists() {
        println!(
            "xtask gpu: no {} (made by `cargo test -p fathom-tests --test python_module`); \
             the kit has no Python wheel",
            maturin.display()
        );
        return Ok(());
    }
    for old in std::fs::read_dir(kit).map_err(|e| format!("{}: {e}", kit.display()))? {
        let path = old.map_err(|e| e.to_string())?.path();
        if path.extension().is_some_and(|x| x == "whl") {
            std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    run_ok(
        Command::new(maturin)
            .current_dir(root())
            .env("CARGO_TARGET_DIR", root().join("target/py-build"))
            .args([
                "build",
                "--release",
                "--strip",
                "--skip-auditwheel",
                "--manifest-path",
            ])
            .arg(root().join("crates/fathom-py/Cargo.toml"))
            .arg("--out")
            .arg(kit),
        "maturin build",
    )?;
    std::fs::copy(
        root().join("crates/fathom-py/tests/test_gpu.py"),
        kit.join("test_gpu.py"),
    )
    .map(|_| ())
    .map_err(|e| format!("copying test_gpu.py: {e}"))
}

/// The path of the `gpu` integration test's executable, built in release mode.
fn build_test_binary() -> Res<PathBuf> {
    let out = Command::new("cargo")
        .current_dir(root())
        .args([
            "test",
            "--release",
            "-p",
            "fathom-gpu",
            "--test",
            "gpu",
            "--no-run",
            "--message-format=json",
        ])
        .output()
        .map_err(|e| format!("cargo test --no-run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "building fathom-gpu's tests failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "gpu")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| "cargo reported no executable for fathom-gpu's test `gpu`".into())
}

/// Builds the kit into `kit`: `gpu-tests`, `gpu_bench` (stripped) and the scripts.
fn build_kit(kit: &Path) -> Res<()> {
    run_ok(
        Command::new("cargo").current_dir(root()).args([
            "build",
            "--release",
            "-p",
            "fathom-gpu",
            "--example",
            "gpu_bench",
        ]),
        "cargo build --example gpu_bench",
    )?;
    let tests = build_test_binary()?;
    std::fs::create_dir_all(kit).map_err(|e| format!("{}: {e}", kit.display()))?;
    let copy = |from: &Path, name: &str| {
        std::fs::copy(from, kit.join(name))
            .map(|_| ())
            .map_err(|e| format!("copying {} into the kit: {e}", from.display()))
    };
    copy(&tests, "gpu-tests")?;
    copy(
        &root().join("target/release/examples/gpu_bench"),
        "gpu_bench",
    )?;
    for name in ["gpu-tests", "gpu_bench"] {
        // Debug information is most of the size; the device tool carries 64 MiB a call.
        let _ = Command::new("strip").arg(kit.join(name)).status();
    }
    for name in SCRIPTS {
        copy(&root().join("crates/fathom-gpu/bench").join(name), name)?;
    }
    build_wheel(kit)?;
    let bytes: u64 = std::fs::read_dir(kit)
        .map_err(|e| format!("{}: {e}", kit.display()))?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "xtask gpu: kit in {} ({:.1} MiB)",
        kit.display(),
        bytes as f64 / (1 << 20) as f64
    );
    Ok(())
}

/// Runs the subcommand.
pub fn gpu(carry: Option<&Path>, data: &Path) -> Res<()> {
    if let Some(kit) = carry {
        let kit = if kit.is_absolute() {
            kit.to_path_buf()
        } else {
            root().join(kit)
        };
        build_kit(&kit)?;
        let rel = kit
            .strip_prefix(root())
            .unwrap_or(&kit)
            .display()
            .to_string();
        println!(
            "On the GPU machine (device tool: carry [\"{rel}\"]): bash {rel}/run.sh \
             [--nb N --nq N]. It prints the tests, then the table; logs go to $OUT."
        );
        return Ok(());
    }
    let kit = root().join("target/gpu-kit");
    build_kit(&kit)?;
    run_ok(
        Command::new("bash")
            .arg(kit.join("run.sh"))
            .env("FATHOM_GPU_DATA", data),
        "the GPU kit's run.sh",
    )
}
