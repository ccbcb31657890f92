//! The Python module end to end: maturin builds the `fathom` wheel from crates/fathom-py
//! into a virtualenv (target/py-venv, with numpy, pytest and faiss-cpu from PyPI), then
//! its pytest suite (crates/fathom-py/tests) runs — Faiss's tutorial against faiss-cpu,
//! the rest of the API, bad input at every entry point. Without python3 or PyPI access the
//! test says so and passes; a failing build or suite fails it.

use fathom_tests::harness::{Outcome, PASSED, skipped};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("{cmd:?} failed:\n{text}"))
    }
}

/// The virtualenv's python with maturin, pytest and numpy, made on first use.
fn venv_python(venv: &Path) -> Result<PathBuf, String> {
    let python = venv.join("bin/python");
    let ready = |py: &Path| {
        Command::new(py)
            .args(["-c", "import maturin, pytest, numpy"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !ready(&python) {
        run(Command::new("python3").args(["-m", "venv"]).arg(venv))?;
        run(Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "maturin>=1.9,<2",
            "pytest",
            "numpy",
        ]))?;
    }
    // faiss-cpu is the reference the comparisons need; without it they are skipped.
    let has_faiss = Command::new(&python)
        .args(["-c", "import faiss"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_faiss
        && let Err(e) = run(Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &format!("faiss-cpu=={}", fathom_tests::FAISS_VERSION),
        ]))
    {
        eprintln!("faiss-cpu could not be installed, comparisons will be skipped: {e}");
    }
    Ok(python)
}

fn python_module_pytest_suite() -> Outcome {
    let root = root();
    let venv = root.join("target/py-venv");
    let python = match venv_python(&venv) {
        Ok(p) => p,
        Err(e) => return skipped(format!("no Python environment for the module's tests: {e}")),
    };
    let wheels = root.join("target/py-wheels");
    let _ = std::fs::remove_dir_all(&wheels);
    // Its own target directory: the `cargo test` running this holds the lock of target/.
    let built = run(Command::new(venv.join("bin/maturin"))
        .current_dir(&root)
        .env("CARGO_TARGET_DIR", root.join("target/py-build"))
        .args([
            "build",
            "--profile",
            "pytest",
            "--skip-auditwheel",
            "--manifest-path",
        ])
        .arg(root.join("crates/fathom-py/Cargo.toml"))
        .arg("--interpreter")
        .arg(&python)
        .arg("--out")
        .arg(&wheels));
    if let Err(e) = built {
        panic!("maturin could not build the wheel:\n{e}");
    }
    let wheel = std::fs::read_dir(&wheels)
        .expect("maturin's output directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .expect("a wheel in target/py-wheels");
    assert!(
        wheel.to_string_lossy().contains("abi3"),
        "the wheel should be abi3: {}",
        wheel.display()
    );
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--force-reinstall",
            "--no-deps",
        ])
        .arg(&wheel))
    .unwrap_or_else(|e| panic!("{e}"));
    match run(Command::new(&python)
        .current_dir(root.join("crates/fathom-py/tests"))
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "faulthandler_timeout=300",
        ])) {
        Ok(out) => eprintln!("{out}"),
        Err(e) => panic!("the Python module's pytest suite failed:\n{e}"),
    }
    PASSED
}

fathom_tests::harness::main!(python_module_pytest_suite,);
