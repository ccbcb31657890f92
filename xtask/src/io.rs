//! `cargo xtask io`: opening and saving index files, fathom against faiss-cpu on the same
//! files (Faiss's format, written once by fathom), interleaved rounds, medians.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::{Res, last_json, measured, median, root};

/// Index descriptions timed by default.
const KEYS: &[&str] = &["Flat", "IVF1024,Flat", "IVF1024,PQ32", "HNSW32"];

fn load_save(v: &Value) -> (f64, Option<f64>) {
    (
        v.get("load_s").and_then(Value::as_f64).unwrap_or(f64::NAN),
        v.get("save_s").and_then(Value::as_f64),
    )
}

fn fathom_run(
    fathom: &Path,
    data: &Path,
    file: &Path,
    out: &Path,
    mmap: bool,
) -> Res<(f64, Option<f64>)> {
    let mut cmd = Command::new(fathom);
    cmd.args(["--threads", "1", "bench"])
        .arg(data)
        .arg("--load")
        .arg(file);
    if mmap {
        cmd.arg("--mmap");
    } else {
        cmd.arg("--save").arg(out);
    }
    cmd.args(["--queries", "10", "--runs", "1", "--json"]);
    Ok(load_save(&last_json(&measured(&mut cmd)?.0)?))
}

fn faiss_run(py: &Path, file: &Path, out: &Path, mmap: bool) -> Res<(f64, Option<f64>)> {
    let mut cmd = Command::new(py);
    cmd.env("OMP_NUM_THREADS", "1")
        .arg(root().join("xtask/py/faiss_io.py"))
        .arg(file)
        .arg(out);
    if mmap {
        cmd.arg("--mmap");
    }
    Ok(load_save(&last_json(&measured(&mut cmd)?.0)?))
}

pub fn io(args: &crate::cli::IoArgs, py: &Path, fathom: &Path, data: &Path) -> Res<Vec<String>> {
    let rounds = args.rounds;
    let keys: Vec<String> = args
        .index
        .clone()
        .map(|k| vec![k])
        .unwrap_or_else(|| KEYS.iter().map(|k| k.to_string()).collect());
    let dir = root().join("target/io-bench");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut table = vec![
        "| index | file MiB | open: faiss / fathom s | ratio | open mmap: faiss / fathom s | ratio | save: faiss / fathom s (fathom fsyncs) | ratio |".to_string(),
        "|---|---|---|---|---|---|---|---|".to_string(),
    ];
    for key in &keys {
        let file = dir.join(format!("{}.faiss", key.replace(',', "_")));
        if !file.exists() {
            eprintln!(
                "xtask io: building {key} with fathom into {}",
                file.display()
            );
            let mut cmd = Command::new(fathom);
            cmd.arg("bench")
                .arg(data)
                .args(["--index", key, "--save"])
                .arg(&file);
            cmd.args(["--queries", "10", "--runs", "1", "--json"]);
            measured(&mut cmd)?;
        }
        let mb =
            std::fs::metadata(&file).map_err(|e| e.to_string())?.len() as f64 / (1 << 20) as f64;
        let out: PathBuf = dir.join("resaved.faiss");
        let (mut fl, mut tl, mut fm, mut tm, mut fs, mut ts) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        // Warm the page cache once so every timed open reads the same way.
        faiss_run(py, &file, &out, false)?;
        for round in 0..rounds {
            let (a, b) = (
                faiss_run(py, &file, &out, false)?,
                fathom_run(fathom, data, &file, &out, false)?,
            );
            let (c, d) = (
                faiss_run(py, &file, &out, true)?,
                fathom_run(fathom, data, &file, &out, true)?,
            );
            eprintln!(
                "xtask io: {key} round {round}: open {:.3}/{:.3}s, mmap {:.3}/{:.3}s, save {:.3}/{:.3}s",
                a.0,
                b.0,
                c.0,
                d.0,
                a.1.unwrap_or(f64::NAN),
                b.1.unwrap_or(f64::NAN)
            );
            fl.push(a.0);
            tl.push(b.0);
            fm.push(c.0);
            tm.push(d.0);
            fs.push(a.1.unwrap_or(f64::NAN));
            ts.push(b.1.unwrap_or(f64::NAN));
        }
        let (fl, tl, fm, tm, fs, ts) = (
            median(fl),
            median(tl),
            median(fm),
            median(tm),
            median(fs),
            median(ts),
        );
        table.push(format!(
            "| {key} | {mb:.0} | {fl:.3} / {tl:.3} | {:.2}× | {fm:.4} / {tm:.4} | {:.2}× | {fs:.3} / {ts:.3} | {:.2}× |",
            fl / tl,
            fm / tm,
            fs / ts
        ));
    }
    Ok(table)
}
