//! The GPU benchmark `cargo xtask gpu` runs (fathom's side; bench/faiss_gpu_ref.py is
//! faiss-gpu's on the same data): `gpu_bench DATADIR` prints one JSON object per line —
//! GpuIndexFlat QPS, IVF4096,Flat and IVF4096,PQ32 QPS and 1-recall@1 at nprobe 16 and 64,
//! and k-means of the base set into 4096 centroids.

use std::time::Instant;

use fathom_core::{Idx, MetricType};
use fathom_gpu::{GpuIndexFlat, GpuIndexIvfFlat, GpuIndexIvfPq, GpuResources, gpu_kmeans};
use fathom_index::Index;
use fathom_linalg::ClusteringParameters;

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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).ok_or("usage: gpu_bench DATADIR")?);
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
    eprintln!(
        "gpu_bench: {} — {nb} × {d}, {nq} queries",
        res.device_name()
    );
    let k = 10;

    let mut flat = GpuIndexFlat::new(res.clone(), d, MetricType::L2)?;
    let t = Instant::now();
    flat.add(&xb)?;
    let add_s = t.elapsed().as_secs_f64();
    let (qps, labels) = best_qps(&flat, &xq, nq, k);
    println!(
        "{{\"tool\":\"fathom-gpu\",\"index\":\"Flat\",\"add_s\":{add_s},\"qps\":{qps},\"recall_at_1\":{}}}",
        recall1(&labels, k, &gt, gt_k, nq)
    );
    drop(flat);

    let ivf_flat: Box<dyn Index> =
        Box::new(GpuIndexIvfFlat::new(res.clone(), d, 4096, MetricType::L2)?);
    let ivf_pq: Box<dyn Index> = Box::new(GpuIndexIvfPq::new(
        res.clone(),
        d,
        4096,
        32,
        MetricType::L2,
    )?);
    for (name, mut index) in [("IVF4096,Flat", ivf_flat), ("IVF4096,PQ32", ivf_pq)] {
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
                "{{\"tool\":\"fathom-gpu\",\"index\":\"{name}\",\"nprobe\":{nprobe},\"train_s\":{train_s},\"add_s\":{add_s},\"qps\":{qps},\"recall_at_1\":{}}}",
                recall1(&labels, k, &gt, gt_k, nq)
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
        "{{\"tool\":\"fathom-gpu\",\"kmeans\":4096,\"niter\":20,\"time_s\":{},\"obj\":{}}}",
        t.elapsed().as_secs_f64(),
        km.obj().last().copied().unwrap_or(f64::NAN)
    );
    Ok(())
}
