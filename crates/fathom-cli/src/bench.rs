//! `fathom bench`: the same measurements as `../shared/bench/faiss_ref.py`, on the same
//! files, with the same JSON fields, so `cargo xtask bench` can put them side by side.

use std::path::{Path, PathBuf};
use std::time::Instant;

use fathom_core::{Error, Idx, MetricType, Result};
use fathom_index::{Index, index_factory};
use fathom_io::{Dataset, read_fvecs, read_ivecs};
use fathom_linalg::{
    ClusteringParameters, Kmeans, KmeansEvent, OpqMatrix, PcaMatrix, VectorTransform,
    pq_reconstruction,
};
use serde::Serialize;

use crate::progress;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Dataset directory: base.fvecs, query.fvecs, learn.fvecs, groundtruth.ivecs.
    dir: PathBuf,
    /// Index description (Faiss factory grammar), e.g. "Flat", "IDMap2,Flat".
    #[arg(long, default_value = "Flat")]
    index: String,
    /// Metric: l2, ip, l1, linf, lp:P, canberra, braycurtis, jensenshannon.
    #[arg(long, default_value = "l2")]
    metric: String,
    /// A run-time parameter and the values to try, e.g. nprobe=1,8,32.
    #[arg(long)]
    param: Option<String>,
    /// Parameters set after the index is made and before it is trained and filled,
    /// e.g. `efConstruction=80,max_new_links=32` (HNSW build options).
    #[arg(long, value_name = "NAME=V,…")]
    build_param: Option<String>,
    /// Neighbours per query.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Queries per search call (default: the whole query set in one call). 1 measures
    /// single-query latency.
    #[arg(long)]
    batch: Option<usize>,
    /// Also time the first N queries searched one at a time (single-query latency,
    /// reported as `qps_nq1`).
    #[arg(long)]
    latency_queries: Option<usize>,
    /// Use only the first N queries (default: all).
    #[arg(long)]
    queries: Option<usize>,
    /// Timed passes over the query set; the best is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Instead of an index, time k-means with this many centroids on learn.fvecs (seed 1,
    /// as faiss_ref.py --kmeans).
    #[arg(long)]
    kmeans: Option<usize>,
    /// Train k-means on base.fvecs instead of learn.fvecs (the IVF case: K = 4096 on 1M).
    #[arg(long)]
    kmeans_on_base: bool,
    /// k-means iterations.
    #[arg(long, default_value_t = 20)]
    niter: usize,
    /// Instead of an index, time PCA training to this many dimensions on learn.fvecs and
    /// report the explained-variance ratio of each kept component.
    #[arg(long)]
    pca: Option<usize>,
    /// Instead of an index, time OPQ training with this many sub-spaces on learn.fvecs and
    /// report the PQ (M × 8 bits) reconstruction error after the rotation.
    #[arg(long)]
    opq: Option<usize>,
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
    /// After building, save the index to this Faiss-format file (atomically).
    #[arg(long)]
    save: Option<PathBuf>,
    /// Search the index in this Faiss-format file (from faiss or `--save`) instead of
    /// building one: learn.fvecs and base.fvecs are not read.
    #[arg(long)]
    load: Option<PathBuf>,
    /// With `--load`: memory-map the file read-only (IVF lists and PQ/SQ/LSH codes are
    /// served from it) instead of reading it into memory.
    #[arg(long, requires = "load")]
    mmap: bool,
}

#[derive(Serialize)]
struct Row<'a> {
    tool: &'static str,
    version: &'static str,
    key: &'a str,
    metric: String,
    param: Option<&'a str>,
    value: Option<&'a str>,
    threads: usize,
    batch: usize,
    train_s: f64,
    add_s: f64,
    qps: f64,
    recall_at_1: f64,
    recall_10_at_10: f64,
    /// Effective distance-computation rate of an exhaustive search (2·nq·nb·d / time).
    gflops: Option<f64>,
    /// Queries per second when searched one at a time (`--latency-queries`).
    qps_nq1: Option<f64>,
    peak_rss_mb: Option<f64>,
    /// Memory of an HNSW graph (levels, offsets, links), without the vectors.
    graph_mb: Option<f64>,
    /// Seconds to open the index file (`--load`).
    load_s: Option<f64>,
    /// Seconds to save the index file (`--save`), fsync included.
    save_s: Option<f64>,
}

/// The graph memory of an HNSW index, in MiB.
fn graph_mb(index: &dyn Index) -> Option<f64> {
    let fathom_index::IndexView::Hnsw { graph, .. } = index.view() else {
        return None;
    };
    let bytes = graph.memory_bytes();
    Some(bytes as f64 / (1 << 20) as f64)
}

pub fn load(dir: &Path, name: &str) -> Result<Dataset<f32>> {
    read_fvecs(dir.join(name))
}

/// Peak resident memory of this process (Linux), in MiB.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// 1-recall@1 and 10-recall@10 as faiss_ref.py computes them.
pub fn recalls(labels: &[Idx], k: usize, gt: &Dataset<i32>) -> (f64, f64) {
    let nq = labels.len() / k;
    let k10 = k.min(10).min(gt.d);
    let mut r1 = 0usize;
    let mut r10 = 0usize;
    for i in 0..nq {
        let row = &labels[i * k..(i + 1) * k];
        let truth = gt.row(i);
        if row[0] == truth[0] as Idx {
            r1 += 1;
        }
        r10 += row[..k10]
            .iter()
            .filter(|&&l| truth[..k10].iter().any(|&t| t as Idx == l))
            .count();
    }
    (r1 as f64 / nq as f64, r10 as f64 / (nq * k10.max(1)) as f64)
}

fn run_kmeans(args: &BenchArgs, k: usize) -> Result<()> {
    let bar = progress::spinner(format!("reading {}", args.dir.display()));
    let learn = load(
        &args.dir,
        if args.kmeans_on_base {
            "base.fvecs"
        } else {
            "learn.fvecs"
        },
    )?;
    bar.finish_and_clear();
    let params = ClusteringParameters {
        niter: args.niter,
        seed: 1,
        ..Default::default()
    };
    let mut km = Kmeans::new(learn.d, k)?.with_params(params);
    let bar = progress::bar(args.niter as u64, "k-means");
    let t = Instant::now();
    km.train_with_progress(&learn.data, &mut |e| {
        if let KmeansEvent::Iteration { .. } = e {
            bar.inc(1);
        }
    })?;
    let seconds = t.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let objective = km.obj().last().copied().unwrap_or(f64::NAN);
    if args.json {
        let row = serde_json::json!({
            "tool": "fathom", "kmeans": k, "n": learn.n(), "niter": args.niter,
            "threads": rayon::current_num_threads(), "seconds": seconds, "objective": objective,
            "peak_rss_mb": peak_rss_mb(),
        });
        outln!("{row}");
    } else {
        outln!(
            "fathom kmeans k={k} n={} niter={} {seconds:.2}s objective={objective:.6e}",
            learn.n(),
            args.niter
        );
    }
    Ok(())
}

fn run_transform(args: &BenchArgs) -> Result<()> {
    let bar = progress::spinner(format!("reading {}", args.dir.display()));
    let learn = load(&args.dir, "learn.fvecs")?;
    bar.finish_and_clear();
    let d = learn.d;
    let bar = progress::spinner("training".into());
    let mut row = serde_json::json!({"tool": "fathom", "n": learn.n(), "d": d, "threads": rayon::current_num_threads()});
    if let Some(d_out) = args.pca {
        let t = Instant::now();
        let mut pca = PcaMatrix::new(d, d_out, 0.0, false)?;
        pca.train(&learn.data)?;
        let seconds = t.elapsed().as_secs_f64();
        let total: f64 = pca.eigenvalues().iter().map(|&v| v as f64).sum();
        let ratios: Vec<f64> = pca.eigenvalues()[..d_out]
            .iter()
            .map(|&v| v as f64 / total)
            .collect();
        row["pca"] = d_out.into();
        row["seconds"] = seconds.into();
        row["explained_variance_ratio"] = ratios.into();
    } else if let Some(m) = args.opq {
        let t = Instant::now();
        let mut opq = OpqMatrix::new(d, m, d)?;
        opq.train(&learn.data)?;
        let seconds = t.elapsed().as_secs_f64();
        let y = opq.apply(&learn.data)?;
        let recons = pq_reconstruction(&y, d, m, 256, &ClusteringParameters::default())?;
        let mse = y
            .iter()
            .zip(&recons)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum::<f64>()
            / learn.n() as f64;
        row["opq"] = m.into();
        row["seconds"] = seconds.into();
        row["pq_mse"] = mse.into();
    }
    bar.finish_and_clear();
    row["peak_rss_mb"] = peak_rss_mb().into();
    outln!("{row}");
    Ok(())
}

/// Builds the index of `--index` on learn.fvecs and base.fvecs: (index, train s, add s).
fn build(args: &BenchArgs, metric: MetricType, d: usize) -> Result<(Box<dyn Index>, f64, f64)> {
    let mut settings = Vec::new();
    for item in args.build_param.iter().flat_map(|s| s.split(',')) {
        let (name, v) = item.split_once('=').ok_or_else(|| {
            Error::invalid(format!("--build-param {item:?}: expected name=value"))
        })?;
        let v: f64 = v
            .parse()
            .map_err(|_| Error::invalid(format!("--build-param {name}={v}: not a number")))?;
        settings.push((name.to_string(), v));
    }
    build_index(&args.dir, &args.index, metric, d, &settings)
}

/// Builds `description` on a TEXMEX-layout directory's learn.fvecs and base.fvecs
/// (ids 0.. for an id map), checking they have dimension `d`, with `settings` applied
/// before training: (index, train s, add s).
pub fn build_index(
    dir: &Path,
    description: &str,
    metric: MetricType,
    d: usize,
    settings: &[(String, f64)],
) -> Result<(Box<dyn Index>, f64, f64)> {
    let bar = progress::spinner(format!("reading {}", dir.display()));
    let learn = load(dir, "learn.fvecs")?;
    let base = load(dir, "base.fvecs")?;
    bar.finish_and_clear();
    for (name, set) in [("learn", &learn), ("base", &base)] {
        if set.d != d {
            return Err(Error::DimensionMismatch {
                what: format!("{name}.fvecs"),
                got: set.d,
                expected: format!("query.fvecs's dimension {d}"),
            });
        }
    }
    let mut index = index_factory(d, description, metric)?;
    for (name, v) in settings {
        index.set_param(name, *v)?;
    }

    // Training and adding are where HNSW and IVF builds spend minutes: say so on stderr,
    // with the time each took.
    // (An index that needs no training is still given the chance, silently.)
    let stage = (!index.is_trained()).then(|| {
        progress::stage(format!(
            "training {description} on {}",
            crate::count(learn.n() as u64, "vector", "vectors")
        ))
    });
    let t0 = Instant::now();
    index.train(&learn.data)?;
    let train_s = match stage {
        Some(stage) => stage.done(),
        None => t0.elapsed().as_secs_f64(),
    };

    let with_ids = description.contains("IDMap");
    let stage = progress::stage(format!(
        "adding {} to {description}",
        crate::count(base.n() as u64, "vector", "vectors")
    ));
    if with_ids {
        let ids: Vec<Idx> = (0..base.n() as Idx).collect();
        index.add_with_ids(&base.data, &ids)?;
    } else {
        index.add(&base.data)?;
    }
    let add_s = stage.done();
    Ok((index, train_s, add_s))
}

pub fn run(args: &BenchArgs) -> Result<()> {
    if let Some(k) = args.kmeans {
        return run_kmeans(args, k);
    }
    if args.pca.is_some() || args.opq.is_some() {
        return run_transform(args);
    }
    let metric = MetricType::parse(&args.metric)?;
    if args.runs == 0 || args.batch == Some(0) {
        return Err(Error::invalid("--runs and --batch must be at least 1"));
    }
    let bar = progress::spinner(format!("reading {}", args.dir.display()));
    let mut query = load(&args.dir, "query.fvecs")?;
    if let Some(n) = args.queries {
        query.data.truncate(n.max(1) * query.d);
    }
    let gt = read_ivecs(args.dir.join("groundtruth.ivecs"))?;
    bar.finish_and_clear();
    let d = query.d;
    if gt.n() < query.n() {
        return Err(Error::invalid(format!(
            "groundtruth.ivecs has {} rows for {} queries",
            gt.n(),
            query.n()
        )));
    }
    let mut load_s = None;
    let (mut index, train_s, add_s) = match &args.load {
        Some(path) => {
            let bar = progress::spinner(format!("loading {}", path.display()));
            let t0 = Instant::now();
            let index = if args.mmap {
                fathom_io::faiss::read_index_mmap(path)?
            } else {
                fathom_io::faiss::read_index(path)?
            };
            load_s = Some(t0.elapsed().as_secs_f64());
            bar.finish_and_clear();
            if !args.json {
                outln!(
                    "loaded {} ({}, {} vectors) in {:.2}s",
                    path.display(),
                    index.description(),
                    index.ntotal(),
                    t0.elapsed().as_secs_f64()
                );
            }
            (index, 0.0, 0.0)
        }
        None => build(args, metric, d)?,
    };
    if index.dim() != d {
        return Err(Error::DimensionMismatch {
            what: "query.fvecs".into(),
            got: d,
            expected: format!("the index's dimension {}", index.dim()),
        });
    }
    let key = match &args.load {
        Some(_) => index.description(),
        None => args.index.clone(),
    };
    let mut save_s = None;
    if let Some(path) = &args.save {
        let bar = progress::spinner(format!("saving {}", path.display()));
        let t0 = Instant::now();
        fathom_io::faiss::write_index(&*index, path)?;
        save_s = Some(t0.elapsed().as_secs_f64());
        bar.finish_and_clear();
        if !args.json {
            outln!(
                "saved {} in {:.2}s",
                path.display(),
                t0.elapsed().as_secs_f64()
            );
        }
    }

    let (pname, values): (Option<&str>, Vec<Option<&str>>) = match &args.param {
        Some(p) => {
            let (name, vals) = p
                .split_once('=')
                .ok_or_else(|| Error::invalid(format!("--param {p:?}: expected name=v1,v2,…")))?;
            (
                Some(name),
                vals.split(',')
                    .filter(|v| !v.is_empty())
                    .map(Some)
                    .collect(),
            )
        }
        None => (None, vec![None]),
    };
    let batch = args.batch.unwrap_or(query.n()).max(1);
    for value in values {
        if let (Some(name), Some(v)) = (pname, value) {
            let v: f64 = v
                .parse()
                .map_err(|_| Error::invalid(format!("--param {name}={v}: not a number")))?;
            index.set_param(name, v)?;
        }
        let bar = progress::bar(args.runs as u64, "searching");
        let mut best = f64::INFINITY;
        let mut labels = Vec::new();
        for _ in 0..args.runs {
            labels.clear();
            let t = Instant::now();
            for qs in query.data.chunks(batch * d) {
                labels.extend(index.search(qs, args.k)?.labels);
            }
            best = best.min(t.elapsed().as_secs_f64());
            bar.inc(1);
        }
        bar.finish_and_clear();
        let mut qps_nq1 = None;
        if let Some(n) = args.latency_queries {
            let n = n.clamp(1, query.n());
            let mut best1 = f64::INFINITY;
            for _ in 0..args.runs {
                let t = Instant::now();
                for q in query.data[..n * d].chunks(d) {
                    index.search(q, args.k)?;
                }
                best1 = best1.min(t.elapsed().as_secs_f64());
            }
            qps_nq1 = Some(n as f64 / best1);
        }
        let (r1, r10) = recalls(&labels, args.k, &gt);
        let desc = index.description();
        let exhaustive = desc.ends_with("Flat") && !desc.contains("IVF") && !desc.contains("IMI");
        let row = Row {
            tool: "fathom",
            version: env!("CARGO_PKG_VERSION"),
            key: &key,
            metric: index.metric().to_string(),
            param: pname,
            value,
            threads: rayon::current_num_threads(),
            batch,
            train_s,
            add_s,
            qps: query.n() as f64 / best,
            recall_at_1: r1,
            recall_10_at_10: r10,
            gflops: exhaustive.then(|| 2.0 * (query.n() * index.ntotal() * d) as f64 / best / 1e9),
            qps_nq1,
            peak_rss_mb: peak_rss_mb(),
            graph_mb: graph_mb(index.as_ref()),
            load_s,
            save_s,
        };
        if args.json {
            outln!(
                "{}",
                serde_json::to_string(&row).expect("plain data serialises")
            );
        } else {
            // The parameter column only when there is a parameter.
            let setting = match (pname, value) {
                (Some(name), Some(v)) => format!(" {name}={v}"),
                _ => String::new(),
            };
            outln!(
                "fathom {} {}{setting} train={:.2}s add={:.2}s qps={:.0}{} R@1={:.3} 10-R@10={:.3}{}",
                row.key,
                row.metric,
                train_s,
                add_s,
                row.qps,
                qps_nq1
                    .map(|q| format!(" qps(nq=1)={q:.0}"))
                    .unwrap_or_default(),
                r1,
                r10,
                row.gflops
                    .map(|g| format!(" ({g:.1} GFLOP/s)"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(())
}
