//! fathom's side of the GPU benchmark (`cargo xtask gpu`, which also runs the PyTorch peer
//! bench/torch_ref.py on the same data): `gpu_bench DATADIR [--nb N] [--nq N]` prints one
//! JSON object per line — GpuIndexFlat QPS and 1-recall@1 in FP32, TF32 (exact re-ranking)
//! and FP16, IVF4096,Flat (query- and list-major), IVF4096,PQ32 and IVF4096,SQ8 at nprobe
//! 16 and 64, and k-means of the base set
//! into 4096 centroids. A DATADIR without `base.fvecs` gets a generated dataset (`fathom
//! gen`'s: 1M × 128, 10 000 queries, 100 000 training vectors, ground truth k = 10 by
//! default). Without a GPU it prints `{"gpu":false,…}` and exits 0.

use std::time::Instant;

use fathom_core::{Idx, MetricType};
use fathom_gpu::{
    GpuFlatPrecision, GpuIndexFlat, GpuIndexIvfFlat, GpuIndexIvfPq, GpuIndexIvfSq, GpuResources,
    IvfScanOrder, gpu_available, gpu_kmeans,
};
use fathom_index::Index;
use fathom_linalg::ClusteringParameters;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// The best of three timed searches of every query: (QPS, labels).
fn best_qps(index: &dyn Index, xq: &[f32], nq: usize, k: usize) -> Res<(f64, Vec<Idx>)> {
    let mut best = f64::INFINITY;
    let mut labels = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let r = index.search(xq, k)?;
        best = best.min(t.elapsed().as_secs_f64());
        labels = r.labels;
    }
    Ok((nq as f64 / best, labels))
}

/// The data and device every measurement uses.
struct Bench {
    res: std::sync::Arc<GpuResources>,
    xb: Vec<f32>,
    xq: Vec<f32>,
    xt: Vec<f32>,
    gt: Vec<Idx>,
    gt_k: usize,
    d: usize,
    nq: usize,
    k: usize,
}

impl Bench {
    fn recall(&self, labels: &[Idx]) -> f64 {
        recall1(labels, self.k, &self.gt, self.gt_k, self.nq)
    }
}

/// Runs one measurement; a failure prints a row saying so and the others go on (one
/// broken path must not hide the rest of a GPU session's figures).
fn section(name: &str, run: impl FnOnce() -> Res<()>) {
    if let Err(e) = run() {
        println!(
            "{}",
            serde_json::json!({"tool": "fathom-gpu", "section": name, "error": e.to_string()})
        );
    }
}

fn recall1(labels: &[Idx], k: usize, gt: &[Idx], gt_k: usize, nq: usize) -> f64 {
    (0..nq).filter(|&q| labels[q * k] == gt[q * gt_k]).count() as f64 / nq as f64
}

fn arg(args: &[String], name: &str, default: usize) -> Result<usize, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{name} takes a number")),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = std::path::PathBuf::from(
        args.first()
            .ok_or("usage: gpu_bench DATADIR [--nb N] [--nq N]")?,
    );
    if !gpu_available() {
        let why = GpuResources::new(0).err().map(|e| e.to_string());
        println!(
            "{}",
            serde_json::json!({"tool": "fathom-gpu", "gpu": false, "why": why})
        );
        return Ok(());
    }
    if !dir.join("base.fvecs").exists() {
        let spec = fathom_io::synthetic::SyntheticSpec {
            d: 128,
            nb: arg(&args, "--nb", 1_000_000)?,
            nq: arg(&args, "--nq", 10_000)?,
            nt: 100_000,
            k: 10,
            seed: 1234,
        };
        let t = Instant::now();
        // Written beside, then renamed: a run stopped half-way leaves no partial dataset
        // for the next run to read.
        let partial = dir.with_extension("partial");
        let _ = std::fs::remove_dir_all(&partial);
        fathom_io::synthetic::write_dataset(&partial, &spec)?;
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&partial, &dir)?;
        eprintln!(
            "gpu_bench: generated {} in {:.1} s",
            dir.display(),
            t.elapsed().as_secs_f64()
        );
    }
    let base = fathom_io::read_fvecs(dir.join("base.fvecs"))?;
    let (xq, xt) = (
        fathom_io::read_fvecs(dir.join("query.fvecs"))?.data,
        fathom_io::read_fvecs(dir.join("learn.fvecs"))?.data,
    );
    let gts = fathom_io::read_ivecs(dir.join("groundtruth.ivecs"))?;
    let (gt, gt_k): (Vec<Idx>, usize) = (gts.data.iter().map(|&i| i as Idx).collect(), gts.d);
    let d = base.d;
    let xb = base.data;
    let (nb, nq) = (xb.len() / d, xq.len() / d);
    let res = GpuResources::new(0)?;
    println!(
        "{}",
        serde_json::json!({"tool": "fathom-gpu", "gpu": true, "device": res.device_name(),
            "nb": nb, "d": d, "nq": nq})
    );
    let b = Bench {
        res,
        xb,
        xq,
        xt,
        gt,
        gt_k,
        d,
        nq,
        k: 10,
    };
    section("Flat", || flat(&b));
    section("IVF4096,Flat", || ivf_flat(&b));
    section("IVF4096,PQ32", || ivf_codec(&b, "IVF4096,PQ32"));
    section("IVF4096,SQ8", || ivf_codec(&b, "IVF4096,SQ8"));
    section("k-means", || kmeans(&b, nb));
    Ok(())
}

/// Flat in FP32, TF32 and FP16 with the default temporary memory (1 GiB: tiles of 4096
/// queries × 65 536 vectors, far beyond L2), and FP32 and TF32 with 48 MiB (4096 × 3072,
/// tiles that stay in the H100's 50 MB L2 between the product and the selection).
fn flat(b: &Bench) -> Res<()> {
    let small_tiles = GpuResources::with_temp_memory(0, 48 << 20)?;
    for (precision, tiles, r) in [
        (GpuFlatPrecision::F32, "1GiB", &b.res),
        (GpuFlatPrecision::Tf32, "1GiB", &b.res),
        (GpuFlatPrecision::F16, "1GiB", &b.res),
        (GpuFlatPrecision::F32, "48MiB", &small_tiles),
        (GpuFlatPrecision::Tf32, "48MiB", &small_tiles),
    ] {
        let name = format!("Flat {precision:?} {tiles}");
        section(&name, || {
            let mut index =
                GpuIndexFlat::with_precision(r.clone(), b.d, MetricType::L2, precision)?;
            let t = Instant::now();
            index.add(&b.xb)?;
            let add_s = t.elapsed().as_secs_f64();
            let (qps, labels) = best_qps(&index, &b.xq, b.nq, b.k)?;
            println!(
                "{}",
                serde_json::json!({"tool": "fathom-gpu", "index": "Flat",
                    "precision": format!("{precision:?}").to_lowercase(),
                    "temp_memory": tiles, "add_s": add_s, "qps": qps,
                    "recall_at_1": b.recall(&labels),
                    "fp32_again": index.fp32_searches() as f64 / (3 * b.nq) as f64})
            );
            Ok(())
        });
    }
    Ok(())
}

/// IVF-Flat in both scan orders on one trained index.
fn ivf_flat(b: &Bench) -> Res<()> {
    let mut index = GpuIndexIvfFlat::new(b.res.clone(), b.d, 4096, MetricType::L2)?;
    let t = Instant::now();
    index.train(&b.xt)?;
    let train_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    index.add(&b.xb)?;
    let add_s = t.elapsed().as_secs_f64();
    for (order_name, order) in [
        ("query-major", IvfScanOrder::QueryMajor),
        ("list-major", IvfScanOrder::ListMajor),
    ] {
        index.set_scan_order(order);
        for nprobe in [16usize, 64] {
            section(
                &format!("IVF4096,Flat {order_name} nprobe {nprobe}"),
                || {
                    index.set_param("nprobe", nprobe as f64)?;
                    let (qps, labels) = best_qps(&index, &b.xq, b.nq, b.k)?;
                    println!(
                        "{}",
                        serde_json::json!({"tool": "fathom-gpu", "index": "IVF4096,Flat",
                        "order": order_name, "nprobe": nprobe, "train_s": train_s,
                        "add_s": add_s, "qps": qps, "recall_at_1": b.recall(&labels)})
                    );
                    Ok(())
                },
            );
        }
    }
    Ok(())
}

/// IVF-PQ (32 × 8 bits) or IVF-SQ8 at nprobe 16 and 64.
fn ivf_codec(b: &Bench, name: &str) -> Res<()> {
    let mut index: Box<dyn Index> = if name.ends_with("PQ32") {
        Box::new(GpuIndexIvfPq::new(
            b.res.clone(),
            b.d,
            4096,
            32,
            MetricType::L2,
        )?)
    } else {
        let qt = fathom_quant::QuantizerType::QT8bit;
        Box::new(GpuIndexIvfSq::new(
            b.res.clone(),
            b.d,
            4096,
            qt,
            MetricType::L2,
        )?)
    };
    let t = Instant::now();
    index.train(&b.xt)?;
    let train_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    index.add(&b.xb)?;
    let add_s = t.elapsed().as_secs_f64();
    for nprobe in [16usize, 64] {
        section(&format!("{name} nprobe {nprobe}"), || {
            index.set_param("nprobe", nprobe as f64)?;
            let (qps, labels) = best_qps(&*index, &b.xq, b.nq, b.k)?;
            println!(
                "{}",
                serde_json::json!({"tool": "fathom-gpu", "index": name, "nprobe": nprobe,
                    "train_s": train_s, "add_s": add_s, "qps": qps,
                    "recall_at_1": b.recall(&labels)})
            );
            Ok(())
        });
    }
    Ok(())
}

/// k-means of the base set into 4096 centroids, 20 iterations.
fn kmeans(b: &Bench, nb: usize) -> Res<()> {
    let params = ClusteringParameters {
        niter: 20,
        max_points_per_centroid: nb / 4096 + 1,
        ..Default::default()
    };
    let t = Instant::now();
    let km = gpu_kmeans(b.res.clone(), &b.xb, b.d, 4096, params, MetricType::L2)?;
    println!(
        "{}",
        serde_json::json!({"tool": "fathom-gpu", "kmeans": 4096, "niter": 20,
            "time_s": t.elapsed().as_secs_f64(),
            "obj": km.obj().last().copied().unwrap_or(f64::NAN)})
    );
    Ok(())
}
