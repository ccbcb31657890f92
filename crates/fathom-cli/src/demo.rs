//! `fathom demo`: the README's first command. Generates a dataset in memory, builds an
//! exact index, searches it, and checks the results against an independent brute-force
//! ground truth.

use std::time::Instant;

use fathom_core::{Idx, MetricType, Result};
use fathom_index::{Index, IndexFlat, index_factory};
use fathom_io::Dataset;
use fathom_io::synthetic::{SyntheticSpec, generate, ground_truth};

use crate::bench::recalls;
use crate::progress;

pub fn run() -> Result<()> {
    let spec = SyntheticSpec {
        d: 128,
        nb: 200_000,
        nq: 1000,
        nt: 0,
        k: 10,
        seed: 1234,
    };
    let threads = rayon::current_num_threads();
    outln!(
        "fathom demo: {} database vectors and {} queries of dimension {}, {}, SIMD {}",
        spec.nb,
        spec.nq,
        spec.d,
        crate::count(threads as u64, "thread", "threads"),
        fathom_kernels::simd_level().name()
    );
    let bar = progress::spinner("generating vectors".into());
    let t = Instant::now();
    let data = generate(&spec);
    bar.finish_and_clear();
    outln!("  generated in {:.2} s", t.elapsed().as_secs_f64());

    let bar = progress::spinner("computing ground truth query by query".into());
    let t = Instant::now();
    let gt = Dataset {
        d: spec.k,
        data: ground_truth(&data, spec.d, spec.k, MetricType::L2)?,
    };
    bar.finish_and_clear();
    let gt_s = t.elapsed().as_secs_f64();
    outln!(
        "  ground truth (one query at a time, SIMD scans): {:.2} s = {:.0} queries/s",
        gt_s,
        spec.nq as f64 / gt_s
    );

    let mut index = IndexFlat::new_l2(spec.d)?;
    let t = Instant::now();
    index.add(&data.base)?;
    outln!(
        "  IndexFlatL2: added {} vectors in {:.3} s",
        index.ntotal(),
        t.elapsed().as_secs_f64()
    );

    let mut best = f64::INFINITY;
    let mut labels: Vec<Idx> = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let res = index.search(&data.query, spec.k)?;
        best = best.min(t.elapsed().as_secs_f64());
        labels = res.labels;
    }
    let (r1, r10) = recalls(&labels, spec.k, &gt);
    let gflops = 2.0 * (spec.nq * spec.nb * spec.d) as f64 / best / 1e9;
    outln!(
        "  batched search of {} queries, k = {}: {:.3} s = {:.0} queries/s ({:.1} GFLOP/s, best of 3)",
        spec.nq,
        spec.k,
        best,
        spec.nq as f64 / best,
        gflops
    );
    outln!("  1-recall@1 = {r1:.4}, 10-recall@10 = {r10:.4} (exact search: both should be 1.0)");

    // The approximate counterpart: an inverted file trained on a sample of the database.
    let nlist = 1024;
    let mut ivf = index_factory(spec.d, "IVF1024,Flat", MetricType::L2)?;
    let bar = progress::spinner(format!(
        "training IVF{nlist},Flat (k-means on 50000 vectors)"
    ));
    let t = Instant::now();
    ivf.train(&data.base[..50_000 * spec.d])?;
    let train_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    ivf.add(&data.base)?;
    bar.finish_and_clear();
    outln!(
        "  IVF{nlist},Flat: trained in {train_s:.2} s, added in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    for nprobe in [4, 16, 64] {
        ivf.set_param("nprobe", nprobe as f64)?;
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let t = Instant::now();
            let res = ivf.search(&data.query, spec.k)?;
            best = best.min(t.elapsed().as_secs_f64());
            labels = res.labels;
        }
        let (r1, r10) = recalls(&labels, spec.k, &gt);
        outln!(
            "    nprobe {nprobe:>2}: {:.0} queries/s, 1-recall@1 = {r1:.3}, 10-recall@10 = {r10:.3}",
            spec.nq as f64 / best
        );
    }
    outln!(
        "next: `fathom gen DIR` writes a dataset to disk; `fathom bench DIR --index IVF4096,Flat \
         --param nprobe=1,16` measures it"
    );
    Ok(())
}
