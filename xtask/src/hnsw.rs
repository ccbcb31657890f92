//! `cargo xtask hnsw`: HNSW32 (efConstruction 40) built and searched by fathom, faiss-cpu,
//! hnswlib and usearch on the same data with the same thread count, interleaved round by
//! round; a table of build time, memory and the recall/QPS curve of each, QPS at recall@10
//! 0.90 / 0.95 / 0.99 (interpolated on each curve), and a PNG plot of the curves.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::{Res, measured, median, root};

const TARGETS: [f64; 3] = [0.90, 0.95, 0.99];

/// One tool's results of one round: build seconds, peak RSS and graph MiB, and
/// `(ef, qps, recall@10)` per beam width.
struct Run {
    build_s: f64,
    rss: f64,
    graph_mb: Option<f64>,
    curve: Vec<(f64, f64, f64)>,
}

fn parse_run(out: &str, rss: f64, build_key: &str, ef_key: &str) -> Res<Run> {
    let rows: Vec<Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect();
    let first = rows
        .first()
        .ok_or_else(|| format!("no results in:\n{out}"))?;
    let num = |v: &Value, k: &str| -> f64 {
        v.get(k)
            .and_then(|x| {
                x.as_f64()
                    .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
            })
            .unwrap_or(f64::NAN)
    };
    Ok(Run {
        build_s: num(first, build_key),
        rss,
        graph_mb: first.get("graph_mb").and_then(Value::as_f64),
        curve: rows
            .iter()
            .map(|r| (num(r, ef_key), num(r, "qps"), num(r, "recall_10_at_10")))
            .collect(),
    })
}

/// QPS where a curve (recall rising with ef) crosses `target`, interpolated linearly in
/// recall and geometrically in QPS; `None` when the curve never reaches it.
pub(crate) fn qps_at(curve: &[(f64, f64, f64)], target: f64) -> Option<f64> {
    let mut pts: Vec<(f64, f64)> = curve.iter().map(|&(_, q, r)| (r, q)).collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    if let Some(&(r, q)) = pts.first()
        && r >= target
    {
        return Some(q);
    }
    pts.windows(2).find_map(|w| {
        let ((r0, q0), (r1, q1)) = (w[0], w[1]);
        (r0 < target && target <= r1).then(|| {
            let t = (target - r0) / (r1 - r0);
            (q0.ln() + t * (q1.ln() - q0.ln())).exp()
        })
    })
}

fn peers_ready(py: &Path) -> Vec<&'static str> {
    let has = |m: &str| {
        Command::new(py)
            .args(["-c", &format!("import {m}")])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !has("hnswlib") || !has("usearch") || !has("matplotlib") {
        eprintln!("xtask: installing hnswlib, usearch and matplotlib into .venv-bench");
        let _ = Command::new(py)
            .args([
                "-m",
                "pip",
                "install",
                "-q",
                "hnswlib",
                "usearch",
                "matplotlib",
            ])
            .status();
    }
    ["hnswlib", "usearch"]
        .into_iter()
        .filter(|m| {
            let ok = has(m);
            if !ok {
                eprintln!("xtask: {m} is not installed; its rows are left out");
            }
            ok
        })
        .collect()
}

pub(crate) fn hnsw(
    args: &crate::cli::HnswArgs,
    py: &Path,
    fathom: &Path,
    data: &Path,
) -> Res<Vec<String>> {
    let (threads, rounds, efs) = (args.threads.clone(), args.rounds, args.ef.clone());
    let helper = root().join("xtask/py/ann_hnsw.py");
    let mut tools = vec!["fathom", "faiss"];
    tools.extend(peers_ready(py));
    let mut runs: Vec<Vec<Run>> = tools.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        for (t, tool) in tools.iter().enumerate() {
            eprintln!("xtask: HNSW32 — {tool}, round {}/{rounds}", round + 1);
            let run = if *tool == "fathom" {
                let (out, rss) = measured(
                    Command::new(fathom)
                        .args(["--threads", &threads, "bench"])
                        .arg(data)
                        .args(["--index", "HNSW32", "--k", "10", "--json"])
                        .arg("--param")
                        .arg(format!("efSearch={efs}")),
                )?;
                parse_run(&out, rss, "add_s", "value")?
            } else {
                let (out, rss) = measured(Command::new(py).arg(&helper).arg(data).args([
                    "--tool",
                    tool,
                    "--threads",
                    &threads,
                    "--ef",
                    &efs,
                ]))?;
                parse_run(&out, rss, "build_s", "ef")?
            };
            runs[t].push(run);
        }
    }
    let mut table = vec![
        String::new(),
        format!(
            "HNSW32, efConstruction 40, k = 10, {threads} threads, {rounds} round(s); build \
             median (each round), memory median, QPS at recall: median over rounds of each \
             round's curve (best of 3 passes per setting); the per-ef table is round 1"
        ),
        String::new(),
        "| tool | build s median (rounds) | peak RSS MiB | graph MiB | QPS @ R10 0.90 | QPS @ R10 0.95 | QPS @ R10 0.99 |".into(),
        "|---|---|---|---|---|---|---|".into(),
    ];
    let at = |rs: &[Run], target: f64| -> Option<f64> {
        let v: Vec<f64> = rs.iter().filter_map(|r| qps_at(&r.curve, target)).collect();
        (!v.is_empty()).then(|| median(v))
    };
    let fathom_at: Vec<Option<f64>> = TARGETS.iter().map(|&t| at(&runs[0], t)).collect();
    for (t, tool) in tools.iter().enumerate() {
        let rs = &runs[t];
        let cells: Vec<String> = TARGETS
            .iter()
            .zip(&fathom_at)
            .map(|(&target, ours)| match (at(rs, target), ours) {
                (Some(q), Some(o)) if t > 0 => format!("{q:.0} (fathom {:.2}×)", o / q),
                (Some(q), _) => format!("{q:.0}"),
                (None, _) => "not reached".into(),
            })
            .collect();
        let graph = rs
            .iter()
            .filter_map(|r| r.graph_mb)
            .next()
            .map_or("—".into(), |g| format!("{g:.0}"));
        let per_round: Vec<String> = rs.iter().map(|r| format!("{:.1}", r.build_s)).collect();
        table.push(format!(
            "| {tool} | {:.1} ({}) | {:.0} | {graph} | {} |",
            median(rs.iter().map(|r| r.build_s).collect()),
            per_round.join(", "),
            median(rs.iter().map(|r| r.rss).collect()),
            cells.join(" | ")
        ));
    }
    table.push(String::new());
    table.push("| tool | ef | QPS | recall@10 |".into());
    table.push("|---|---|---|---|".into());
    for (t, tool) in tools.iter().enumerate() {
        if let Some(r) = runs[t].first() {
            for &(ef, q, rec) in &r.curve {
                table.push(format!("| {tool} | {ef:.0} | {q:.0} | {rec:.4} |"));
            }
        }
    }
    // The curves as JSON for the plot.
    let curves: serde_json::Map<String, Value> = tools
        .iter()
        .zip(&runs)
        .map(|(tool, rs)| {
            let pts: Vec<Value> = rs
                .first()
                .map(|r| {
                    r.curve
                        .iter()
                        .map(|&(ef, q, rec)| serde_json::json!({"ef": ef, "qps": q, "recall": rec}))
                        .collect()
                })
                .unwrap_or_default();
            (tool.to_string(), Value::Array(pts))
        })
        .collect();
    let json_path = root().join("target/hnsw-curves.json");
    std::fs::write(&json_path, Value::Object(curves).to_string()).map_err(|e| e.to_string())?;
    let png: PathBuf = args
        .plot
        .clone()
        .unwrap_or_else(|| root().join("target/hnsw-recall-qps.png"));
    let plotted = Command::new(py)
        .arg(root().join("xtask/py/plot_hnsw.py"))
        .arg(&json_path)
        .arg(&png)
        .arg(format!(
            "HNSW32 (efC 40), {threads} threads, {}",
            data.file_name()
                .map_or("data".into(), |n| n.to_string_lossy())
        ))
        .status()
        .is_ok_and(|s| s.success());
    if plotted {
        eprintln!("xtask: recall/QPS plot written to {}", png.display());
    } else {
        eprintln!("xtask: could not draw the plot (matplotlib missing?)");
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::qps_at;

    #[test]
    fn interpolates_on_the_curve() {
        let curve = [(16.0, 1000.0, 0.8), (32.0, 500.0, 0.9), (64.0, 250.0, 1.0)];
        assert!((qps_at(&curve, 0.9).unwrap() - 500.0).abs() < 1e-6);
        let q = qps_at(&curve, 0.95).unwrap();
        assert!((q - 353.55).abs() < 0.1, "{q}");
        assert_eq!(qps_at(&curve, 0.5), Some(1000.0));
        assert_eq!(qps_at(&curve[..2], 0.99), None);
    }
}
