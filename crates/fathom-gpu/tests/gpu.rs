//! GPU indexes against their CPU counterparts: the same labels for Flat (ties aside), the
//! same recall within 0.01 for IVF, k-means objectives within 1 %, exact round trips of
//! the CPU form. Without a GPU every test but the first reports itself skipped (the
//! harness counts it as ignored); the first checks that asking for a GPU then gives `GpuUnavailable` instead of a panic.

use std::sync::Arc;

use fathom_core::{Error, IdSelectorRange, Idx, MetricType, SearchParams};
use fathom_gpu::{
    GpuIndexFlat, GpuIndexIvfFlat, GpuIndexIvfPq, GpuResources, gpu_available, gpu_kmeans,
    index_cpu_to_gpu, index_cpu_to_gpu_multiple, index_gpu_to_cpu,
};
use fathom_index::{Index, IndexFlat, index_factory};
use fathom_linalg::{ClusteringParameters, Kmeans};
use fathom_tests::get_dataset_2;
use fathom_tests::harness::{Outcome, PASSED, skipped};

/// The GPU's resources, or why the test cannot run.
fn gpu() -> Result<Arc<GpuResources>, Outcome> {
    if !gpu_available() {
        return Err(skipped("no CUDA device on this machine"));
    }
    Ok(GpuResources::new(0).expect("a GPU that gpu_available() reported"))
}

fn recall_at_1(labels: &[Idx], k: usize, gt: &[Idx]) -> f64 {
    let hits = gt
        .iter()
        .enumerate()
        .filter(|(q, g)| labels[q * k..(q + 1) * k].contains(g))
        .count();
    hits as f64 / gt.len() as f64
}

fn without_a_gpu_resources_are_an_error_not_a_panic() -> Outcome {
    if gpu_available() {
        let err = GpuResources::new(10_000).unwrap_err();
        assert!(matches!(err, Error::GpuUnavailable(_)), "{err}");
        return PASSED;
    }
    let err = GpuResources::new(0).unwrap_err();
    assert!(matches!(err, Error::GpuUnavailable(_)), "{err}");
    assert!(err.to_string().contains("GPU unavailable"), "{err}");
    assert_eq!(fathom_gpu::device_count(), 0);
    PASSED
}

/// The kernels compile with NVRTC for the A100's and the H100's architectures. This runs on
/// every machine, GPU or not: NVRTC is a library. Where it is not installed the test fetches
/// it (PyPI's nvidia-cuda-nvrtc-cu12) and runs itself again with it on the library path.
fn kernels_compile_with_nvrtc() -> Outcome {
    const CHILD: &str = "FATHOM_NVRTC_CHILD";
    let entries = [
        "init_best",
        "l2_norms",
        "l2_norms_f16",
        "select_tile",
        "rerank",
        "rerank_f16",
        "ivf_flat_scan",
        "ivf_pq_scan",
    ];
    match fathom_gpu::kernels_ptx(8, 0) {
        Ok(ptx80) => {
            let ptx90 = fathom_gpu::kernels_ptx(9, 0).unwrap();
            for (ptx, target) in [(&ptx80, "sm_80"), (&ptx90, "sm_90")] {
                assert!(ptx.contains(&format!(".target {target}")), "{target}");
                for name in entries {
                    assert!(
                        ptx.contains(&format!(".entry {name}(")),
                        "{name} missing from the {target} PTX"
                    );
                }
            }
            PASSED
        }
        Err(e) if std::env::var_os(CHILD).is_some() || !e.to_string().contains("loaded") => {
            panic!("{e}")
        }
        Err(_) => {
            let dir = match fathom_tests::nvrtc_lib_dir() {
                Ok(dir) => dir,
                Err(why) => return skipped(why),
            };
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["kernels_compile_with_nvrtc", "--exact"])
                .env(CHILD, "1")
                .env("LD_LIBRARY_PATH", &dir)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && text.contains("kernels_compile_with_nvrtc ... ok"),
                "with NVRTC from {}: {text}{}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            PASSED
        }
    }
}

fn flat_gives_the_cpu_labels() -> Outcome {
    let res = match gpu() {
        Ok(res) => res,
        Err(skip) => return skip,
    };
    let d = 32;
    let (_, xb, xq) = get_dataset_2(d, 0, 20_000, 300);
    for metric in [MetricType::L2, MetricType::InnerProduct] {
        let mut cpu = IndexFlat::new(d, metric).unwrap();
        cpu.add(&xb).unwrap();
        // 16 MiB of temporary memory: many tiles.
        let small = GpuResources::with_temp_memory(0, 0).unwrap();
        for r in [res.clone(), small] {
            let mut g = GpuIndexFlat::new(r, d, metric).unwrap();
            g.add(&xb[..7_000 * d]).unwrap();
            g.add(&xb[7_000 * d..]).unwrap();
            assert_eq!(g.ntotal(), 20_000);
            for k in [1, 10, 100, 2048] {
                let want = cpu.search(&xq, k).unwrap();
                let got = g.search(&xq, k).unwrap();
                let same = want
                    .labels
                    .iter()
                    .zip(&got.labels)
                    .filter(|(a, b)| a == b)
                    .count();
                assert!(
                    same as f64 >= 0.999 * want.labels.len() as f64,
                    "{metric} k={k}"
                );
                for (a, b) in want.distances.iter().zip(&got.distances) {
                    assert!(
                        (a - b).abs() <= 1e-3 * a.abs().max(1.0),
                        "{metric} k={k}: {a} vs {b}"
                    );
                }
            }
        }
        assert!(matches!(
            GpuIndexFlat::from_cpu(res.clone(), &cpu)
                .unwrap()
                .search(&xq, 2049),
            Err(Error::InvalidArgument(_))
        ));
    }
    PASSED
}

fn flat_converts_both_ways_and_refuses_what_it_cannot_do() -> Outcome {
    let res = match gpu() {
        Ok(res) => res,
        Err(skip) => return skip,
    };
    let d = 16;
    let (_, xb, xq) = get_dataset_2(d, 0, 3_000, 20);
    let mut cpu = IndexFlat::new_l2(d).unwrap();
    cpu.add(&xb).unwrap();
    let g = index_cpu_to_gpu(res.clone(), &cpu).unwrap();
    let back = index_gpu_to_cpu(&*g).unwrap();
    assert_eq!(back.reconstruct_n(0, 3_000).unwrap(), xb);
    assert_eq!(g.reconstruct(17).unwrap(), &xb[17 * d..18 * d]);
    let sel = IdSelectorRange::new(0, 10);
    assert!(
        g.search_with(&xq, 5, &SearchParams::default().with_selector(&sel))
            .is_err()
    );
    let mut nan = xq.clone();
    nan[3] = f32::NAN;
    assert!(g.search(&nan, 5).is_err());
    let hnsw = index_factory(d, "HNSW8", MetricType::L2).unwrap();
    assert!(matches!(
        index_cpu_to_gpu(res, &*hnsw),
        Err(Error::Unsupported(_))
    ));
    PASSED
}

fn ivf_recalls(gpu_index: &mut dyn Index, cpu: &mut dyn Index, xq: &[f32], gt: &[Idx]) {
    for nprobe in [1.0, 16.0] {
        gpu_index.set_param("nprobe", nprobe).unwrap();
        cpu.set_param("nprobe", nprobe).unwrap();
        let g = gpu_index.search(xq, 10).unwrap();
        let c = cpu.search(xq, 10).unwrap();
        let (rg, rc) = (
            recall_at_1(&g.labels, 10, gt),
            recall_at_1(&c.labels, 10, gt),
        );
        assert!(
            (rg - rc).abs() <= 0.01,
            "nprobe {nprobe}: GPU {rg} vs CPU {rc}"
        );
    }
}

fn ivf_flat_and_ivf_pq_match_the_cpu_recall() -> Outcome {
    let res = match gpu() {
        Ok(res) => res,
        Err(skip) => return skip,
    };
    let d = 32;
    let (xt, xb, xq) = get_dataset_2(d, 10_000, 20_000, 500);
    let mut exact = IndexFlat::new_l2(d).unwrap();
    exact.add(&xb).unwrap();
    let gt = exact.search(&xq, 1).unwrap().labels;
    for desc in ["IVF64,Flat", "IVF64,PQ8"] {
        let mut cpu = index_factory(d, desc, MetricType::L2).unwrap();
        cpu.train(&xt).unwrap();
        cpu.add(&xb).unwrap();
        // Converted from the trained CPU index: the same lists, scanned on the GPU.
        let mut g = index_cpu_to_gpu(res.clone(), &*cpu).unwrap();
        ivf_recalls(&mut *g, &mut *cpu, &xq, &gt);
        let back = index_gpu_to_cpu(&*g).unwrap();
        assert_eq!(back.ntotal(), cpu.ntotal());
        assert_eq!(
            back.search(&xq, 5).unwrap(),
            cpu.search(&xq, 5).unwrap(),
            "{desc}: the CPU form is the index"
        );
    }
    // Trained on the GPU (k-means assignment there), then added to.
    let mut g = GpuIndexIvfFlat::new(res.clone(), d, 64, MetricType::L2).unwrap();
    g.train(&xt).unwrap();
    g.add(&xb).unwrap();
    let mut cpu = index_factory(d, "IVF64,Flat", MetricType::L2).unwrap();
    cpu.train(&xt).unwrap();
    cpu.add(&xb).unwrap();
    ivf_recalls(&mut g, &mut *cpu, &xq, &gt);
    let mut g = GpuIndexIvfPq::new(res, d, 64, 8, MetricType::L2).unwrap();
    g.train(&xt).unwrap();
    g.add(&xb).unwrap();
    let mut cpu = index_factory(d, "IVF64,PQ8", MetricType::L2).unwrap();
    cpu.train(&xt).unwrap();
    cpu.add(&xb).unwrap();
    ivf_recalls(&mut g, &mut *cpu, &xq, &gt);
    PASSED
}

fn inner_product_ivf_matches_the_cpu() -> Outcome {
    let res = match gpu() {
        Ok(res) => res,
        Err(skip) => return skip,
    };
    let d = 32;
    let (xt, xb, xq) = get_dataset_2(d, 10_000, 20_000, 300);
    let mut exact = IndexFlat::new_ip(d).unwrap();
    exact.add(&xb).unwrap();
    let gt = exact.search(&xq, 1).unwrap().labels;
    for desc in ["IVF32,Flat", "IVF32,PQ8"] {
        let mut cpu = index_factory(d, desc, MetricType::InnerProduct).unwrap();
        cpu.train(&xt).unwrap();
        cpu.add(&xb).unwrap();
        let mut g = index_cpu_to_gpu(res.clone(), &*cpu).unwrap();
        ivf_recalls(&mut *g, &mut *cpu, &xq, &gt);
    }
    PASSED
}

fn kmeans_on_the_gpu_matches_the_cpu_objective() -> Outcome {
    let res = match gpu() {
        Ok(res) => res,
        Err(skip) => return skip,
    };
    let d = 32;
    let (xt, _, _) = get_dataset_2(d, 20_000, 0, 0);
    let params = ClusteringParameters {
        niter: 10,
        ..Default::default()
    };
    let g = gpu_kmeans(res, &xt, d, 100, params.clone(), MetricType::L2).unwrap();
    let mut c = Kmeans::new(d, 100).unwrap().with_params(params);
    c.train(&xt).unwrap();
    let (og, oc) = (*g.obj().last().unwrap(), *c.obj().last().unwrap());
    assert!((og - oc).abs() <= 0.01 * oc, "GPU {og} vs CPU {oc}");
    PASSED
}

fn sharded_over_gpus_equals_one_index() -> Outcome {
    let res = match gpu() {
        Ok(res) => res,
        Err(skip) => return skip,
    };
    let d = 16;
    let (xt, xb, xq) = get_dataset_2(d, 5_000, 9_000, 100);
    // The same device twice stands in for two GPUs.
    let two = [res.clone(), res];
    let mut flat = IndexFlat::new_l2(d).unwrap();
    flat.add(&xb).unwrap();
    let shards = index_cpu_to_gpu_multiple(&two, &flat).unwrap();
    assert_eq!(shards.ntotal(), 9_000);
    let (a, b) = (
        shards.search(&xq, 10).unwrap(),
        flat.search(&xq, 10).unwrap(),
    );
    let same = a
        .labels
        .iter()
        .zip(&b.labels)
        .filter(|(x, y)| x == y)
        .count();
    assert!(same as f64 >= 0.999 * a.labels.len() as f64);
    let mut ivf = index_factory(d, "IVF32,Flat", MetricType::L2).unwrap();
    ivf.train(&xt).unwrap();
    ivf.add(&xb).unwrap();
    ivf.set_param("nprobe", 32.0).unwrap();
    let mut shards = index_cpu_to_gpu_multiple(&two, &*ivf).unwrap();
    shards.set_param("nprobe", 32.0).unwrap();
    assert_eq!(shards.ntotal(), 9_000);
    assert_eq!(
        shards.search(&xq, 10).unwrap().labels,
        ivf.search(&xq, 10).unwrap().labels
    );
    PASSED
}

fathom_tests::harness::main!(
    without_a_gpu_resources_are_an_error_not_a_panic,
    kernels_compile_with_nvrtc,
    flat_gives_the_cpu_labels,
    flat_converts_both_ways_and_refuses_what_it_cannot_do,
    ivf_flat_and_ivf_pq_match_the_cpu_recall,
    inner_product_ivf_matches_the_cpu,
    kmeans_on_the_gpu_matches_the_cpu_objective,
    sharded_over_gpus_equals_one_index,
);
