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

/// The best of three timed searches of every query: (QPS, labels).
fn best_qps(index: &dyn Index, xq: &[f32], nq: usize, k: usize) -> (f64, Vec<Idx>) {
    let mut best = f64::INFINITY;
    let mut labels = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let r = index.search(xq, k).expect("search");
        best = best.min(t.elapsed().as_secs_f64());
        labels = r.labels;
    }
    (nq as f64 / best, labels)
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
        fathom_io::synthetic::write_dataset(&dir, &spec)?;
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
    let k = 10;

    // The default temporary memory (1 GiB: tiles of 4096 queries × 65 536 vectors, far
    // beyond L2), and 48 MiB (4096 × 3072, tiles that stay in the H100's 50 MB L2 between
    // the product and the selection).
    let small_tiles = GpuResources::with_temp_memory(0, 48 << 20)?;
    for (precision, tiles, r) in [
        (GpuFlatPrecision::F32, "1GiB", &res),
        (GpuFlatPrecision::Tf32, "1GiB", &res),
        (GpuFlatPrecision::F16, "1GiB", &res),
        (GpuFlatPrecision::F32, "48MiB", &small_tiles),
        (GpuFlatPrecision::Tf32, "48MiB", &small_tiles),
    ] {
        let mut flat = GpuIndexFlat::with_precision(r.clone(), d, MetricType::L2, precision)?;
        let t = Instant::now();
        flat.add(&xb)?;
        let add_s = t.elapsed().as_secs_f64();
        let (qps, labels) = best_qps(&flat, &xq, nq, k);
        println!(
            "{}",
            serde_json::json!({"tool": "fathom-gpu", "index": "Flat",
                "precision": format!("{precision:?}").to_lowercase(), "temp_memory": tiles,
                "add_s": add_s,
                "qps": qps, "recall_at_1": recall1(&labels, k, &gt, gt_k, nq),
                "fp32_again": flat.fp32_searches() as f64 / (3 * nq) as f64})
        );
    }

    // IVF-Flat in both scan orders on one trained index.
    let mut ivf_flat = GpuIndexIvfFlat::new(res.clone(), d, 4096, MetricType::L2)?;
    let t = Instant::now();
    ivf_flat.train(&xt)?;
    let train_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    ivf_flat.add(&xb)?;
    let add_s = t.elapsed().as_secs_f64();
    for (order_name, order) in [
        ("query-major", IvfScanOrder::QueryMajor),
        ("list-major", IvfScanOrder::ListMajor),
    ] {
        ivf_flat.set_scan_order(order);
        for nprobe in [16usize, 64] {
            ivf_flat.set_param("nprobe", nprobe as f64)?;
            let (qps, labels) = best_qps(&ivf_flat, &xq, nq, k);
            println!(
                "{}",
                serde_json::json!({"tool": "fathom-gpu", "index": "IVF4096,Flat",
                    "order": order_name, "nprobe": nprobe, "train_s": train_s,
                    "add_s": add_s, "qps": qps,
                    "recall_at_1": recall1(&labels, k, &gt, gt_k, nq)})
            );
        }
    }
    drop(ivf_flat);

    let ivf_pq: Box<dyn Index> = Box::new(GpuIndexIvfPq::new(
        res.clone(),
        d,
        4096,
        32,
        MetricType::L2,
    )?);
    let ivf_sq: Box<dyn Index> = Box::new(GpuIndexIvfSq::new(
        res.clone(),
        d,
        4096,
        fathom_quant::QuantizerType::QT8bit,
        MetricType::L2,
    )?);
    for (name, mut index) in [("IVF4096,PQ32", ivf_pq), ("IVF4096,SQ8", ivf_sq)] {
        let t = Instant::now();
        index.train(&xt)?;
        let train_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        index.add(&xb)?;
        let add_s = t.elapsed().as_secs_f64();
        for nprobe in [16usize, 64] {
            index.set_param("nprobe", nprobe as f64)?;
            let (qps, labels) = best_qps(&*index, &xq, nq, k);
            println!(
                "{}",
                serde_json::json!({"tool": "fathom-gpu", "index": name, "nprobe": nprobe,
                    "train_s": train_s, "add_s": add_s, "qps": qps,
                    "recall_at_1": recall1(&labels, k, &gt, gt_k, nq)})
            );
        }
    }

    let params = ClusteringParameters {
        niter: 20,
        max_points_per_centroid: nb / 4096 + 1,
        ..Default::default()
    };
    let t = Instant::now();
    let km = gpu_kmeans(res, &xb, d, 4096, params, MetricType::L2)?;
    println!(
        "{}",
        serde_json::json!({"tool": "fathom-gpu", "kmeans": 4096, "niter": 20,
            "time_s": t.elapsed().as_secs_f64(),
            "obj": km.obj().last().copied().unwrap_or(f64::NAN)})
    );
    Ok(())
}
