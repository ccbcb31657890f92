//! `cargo xtask guide`: the figures of the "choosing an index" guide (crates/fathom/
//! guide.md), measured by `fathom tune` on one dataset: for each factory string, build
//! time, size on disk, and the fastest setting reaching a target recall.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::Res;

/// The guide's candidates for `nb` vectors of dimension `d`: exact, graph, and the IVF
/// family at Faiss's rule of thumb nlist ≈ 4·√nb (a power of two).
fn candidates(nb: usize, d: usize) -> Vec<String> {
    let nlist = (4.0 * (nb as f64).sqrt()).log2().round().exp2() as usize;
    let m = d / 4;
    vec![
        "Flat".into(),
        "HNSW32".into(),
        format!("IVF{nlist},Flat"),
        format!("IVF{nlist},SQ8"),
        format!("IVF{nlist},PQ{m}x4fs,RFlat"),
        format!("OPQ{m},IVF{nlist},PQ{m}x4fsr"),
        format!("OPQ{m},IVF{nlist},PQ{m}"),
    ]
}

fn fvecs_shape(path: &Path) -> Res<(usize, usize)> {
    let len = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len() as usize;
    let mut head = [0u8; 4];
    use std::io::Read;
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let d = u32::from_le_bytes(head) as usize;
    Ok((len / (4 + 4 * d), d))
}

pub fn guide(args: &crate::cli::GuideArgs, fathom: &Path, data: &Path) -> Res<Vec<String>> {
    let (target, criterion) = (args.target.clone(), args.criterion.clone());
    let (nb, d) = fvecs_shape(&data.join("base.fvecs"))?;
    let keys: Vec<String> = match args.index.clone() {
        Some(k) => vec![k],
        None => candidates(nb, d),
    };
    let out_dir = crate::root().join("target/guide");
    std::fs::create_dir_all(&out_dir).map_err(|e| e.to_string())?;
    let mut rows = vec![
        format!(
            "{nb} × {d} vectors ({}), {criterion} ≥ {target}, {} threads; `cargo xtask guide`",
            data.display(),
            rayon_threads()
        ),
        String::new(),
        "| index | train s | add s | bytes/vector | setting | recall | ms/query | QPS |".into(),
        "|---|---:|---:|---:|---|---:|---:|---:|".into(),
    ];
    for key in keys {
        let file = out_dir.join(format!("{}.faiss", key.replace([',', '(', ')'], "_")));
        // Polysemous filtering (ht) is a speed knob orthogonal to nprobe; 40 random draws
        // from nprobe × 65 thresholds leave the front too sparse to find the knee, so the
        // 8-bit PQ rows explore nprobe with filtering off.
        let ht_off = key.contains(",PQ") && !key.contains("x4fs") && !key.contains("RFlat");
        let out = Command::new(fathom)
            .arg("tune")
            .args(if ht_off {
                &["--param", "ht=0"][..]
            } else {
                &[]
            })
            .arg(data)
            .args(["--index", &key, "--criterion", &criterion])
            .args(["--target-recall", &target, "--min-time", "0.3"])
            .args(["--experiments", "40", "--json", "--save"])
            .arg(&file)
            .output()
            .map_err(|e| format!("fathom tune: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "fathom tune --index {key}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let v: Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
            .map_err(|e| format!("fathom tune --json: {e}"))?;
        let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        // When the target is out of reach the most accurate point is usually far past the
        // knee; report the fastest point within 1 % of the best reachable quality instead.
        let knee = v["pareto"].as_array().and_then(|front| {
            let best = front.last()?["perf"].as_f64()?;
            front
                .iter()
                .find(|p| p["perf"].as_f64().is_some_and(|x| x >= 0.99 * best))
        });
        let c = match (v["goal_met"] == true, knee) {
            (false, Some(k)) => k,
            _ => &v["chosen"],
        };
        let f = |x: &Value| x.as_f64().unwrap_or(f64::NAN);
        let row = format!(
            "| `{key}` | {:.1} | {:.1} | {:.0} | {}{} | {:.3} | {:.4} | {:.0} |",
            f(&v["train_s"]),
            f(&v["add_s"]),
            size as f64 / nb as f64,
            match c["setting"].as_str() {
                Some("") | None => "—",
                Some(s) => s,
            },
            if v["goal_met"] == true {
                ""
            } else {
                " (target out of reach; within 1 % of the best)"
            },
            f(&c["perf"]),
            f(&c["ms_per_query"]),
            f(&c["qps"]),
        );
        eprintln!("{row}");
        rows.push(row);
        let _ = std::fs::remove_file(&file);
    }
    Ok(rows)
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
