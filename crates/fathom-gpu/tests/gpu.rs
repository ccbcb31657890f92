//! GPU indexes against their CPU counterparts: the same labels for Flat (ties aside), the
//! same recall within 0.01 for IVF, k-means objectives within 1 %, exact round trips of
//! the CPU form. Without a GPU every test but the first reports itself skipped (the
//! harness counts it as ignored); the first checks that asking for a GPU then gives `GpuUnavailable` instead of a panic.

use std::sync::Arc;

use fathom_core::{
    Error, IdSelector, IdSelectorRange, Idx, MetricType, SearchParams, SearchResult,
};
use fathom_gpu::{
    GpuAssigner, GpuFlatPrecision, GpuIndexFlat, GpuIndexIvfFlat, GpuIndexIvfPq, GpuIndexIvfSq,
    GpuResources, IvfScanOrder, bf_knn, bf_knn_device, gpu_available, gpu_kmeans, index_cpu_to_gpu,
    index_cpu_to_gpu_multiple, index_gpu_to_cpu,
};
use fathom_index::{Index, IndexFlat, index_factory};
use fathom_linalg::{Assigner, ClusterMembers, ClusteringParameters, Kmeans};
use fathom_quant::QuantizerType;
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
        "argmin_tile",
        "centroid_means",
        "range_tile",
        "ivf_sq8_scan",
        "ivf_flat_list_major",
        "ivf_select_segments",
        "ivf_flat_range",
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

/// The CPU's answers, ties and FP32 rounding aside: 99.9 % of the labels equal, every
/// distance within 1e-3 (relative).
fn assert_same_answers(want: &SearchResult, got: &SearchResult, what: &str) {
    let same = want
        .labels
        .iter()
        .zip(&got.labels)
        .filter(|(a, b)| a == b)
        .count();
    assert!(
        same as f64 >= 0.999 * want.labels.len() as f64,
        "{what}: {same} of {} labels equal",
        want.labels.len()
    );
    for (a, b) in want.distances.iter().zip(&got.distances) {
        assert!(
            (a - b).abs() <= 1e-3 * a.abs().max(1.0),
            "{what}: {a} vs {b}"
        );
    }
}

/// TF32 tensor cores with exact re-ranking give the CPU's answers. Vectors far from the
/// origin (an offset of 1000 on every coordinate) make TF32's error bound wider than the
/// gaps between neighbours, so every query is certified only by the FP32 search again —
/// that path is checked too.
fn flat_tf32_gives_the_cpu_answers() -> Outcome {
    let res = match gpu() {
        Ok(res) => res,
        Err(skip) => return skip,
    };
    for d in [32, 128] {
        let (_, xb, xq) = get_dataset_2(d, 0, 30_000, 500);
        for metric in [MetricType::L2, MetricType::InnerProduct] {
            let mut cpu = IndexFlat::new(d, metric).unwrap();
            cpu.add(&xb).unwrap();
            let mut g =
                GpuIndexFlat::with_precision(res.clone(), d, metric, GpuFlatPrecision::Tf32)
                    .unwrap();
            g.add(&xb).unwrap();
            for k in [1, 10, 100, 1500] {
                let what = format!("TF32 d={d} {metric} k={k}");
                assert_same_answers(
                    &cpu.search(&xq, k).unwrap(),
                    &g.search(&xq, k).unwrap(),
                    &what,
                );
            }
            eprintln!(
                "    d={d} {metric}: {} of {} queries searched again in FP32",
                g.fp32_searches(),
                4 * 500
            );
            // Switching to FP32 keeps the vectors; FP16 would need an empty index.
            g.set_precision(GpuFlatPrecision::F32).unwrap();
            assert_same_answers(
                &cpu.search(&xq, 10).unwrap(),
                &g.search(&xq, 10).unwrap(),
                "F32 again",
            );
            assert!(g.set_precision(GpuFlatPrecision::F16).is_err());
        }
    }
    let d = 16;
    let (_, xb, xq) = get_dataset_2(d, 0, 5_000, 100);
    let far = |x: &[f32]| x.iter().map(|v| v + 1000.0).collect::<Vec<f32>>();
    let (xb, xq) = (far(&xb), far(&xq));
    let mut cpu = IndexFlat::new(d, MetricType::L2).unwrap();
    cpu.add(&xb).unwrap();
    let mut g =
        GpuIndexFlat::with_precision(res, d, MetricType::L2, GpuFlatPrecision::Tf32).unwrap();
    g.add(&xb).unwrap();
    let want = cpu.search(&xq, 10).unwrap();
    let got = g.search(&xq, 10).unwrap();
    assert!(
        g.fp32_searches() > 0,
        "the offset should defeat the TF32 bound"
    );
    let same = want
        .labels
        .iter()
        .zip(&got.labels)
        .filter(|(a, b)| a == b)
        .count();
    assert!(
        same as f64 >= 0.99 * want.labels.len() as f64,
        "{same} labels equal"
    );
    PASSED
}

/// FP16 storage: the stored vectors are the FP16 roundings, search finds what an FP32
/// index over those roundings finds (recall@10 ≥ 0.99), values beyond FP16's range are
/// refused, and the CPU form holds the rounded vectors.
fn flat_fp16_stores_rounded_vectors_and_recalls() -> Outcome {
    let res = match gpu() {
        Ok(res) => res,
        Err(skip) => return skip,
    };
    let d = 64;
    let (_, xb, xq) = get_dataset_2(d, 0, 20_000, 300);
    let rounded: Vec<f32> = xb
        .iter()
        .map(|&v| half::f16::from_f32(v).to_f32())
        .collect();
    for metric in [MetricType::L2, MetricType::InnerProduct] {
        let mut cpu = IndexFlat::new(d, metric).unwrap();
        cpu.add(&rounded).unwrap();
        let mut g =
            GpuIndexFlat::with_precision(res.clone(), d, metric, GpuFlatPrecision::F16).unwrap();
        g.add(&xb[..5_000 * d]).unwrap();
        g.add(&xb[5_000 * d..]).unwrap();
        assert_eq!(g.reconstruct_n(0, 20_000).unwrap(), rounded);
        let k = 10;
        let (want, got) = (cpu.search(&xq, k).unwrap(), g.search(&xq, k).unwrap());
        let hits: usize = (0..300)
            .map(|q| {
                let w = &want.labels[q * k..(q + 1) * k];
                got.labels[q * k..(q + 1) * k]
                    .iter()
                    .filter(|l| w.contains(l))
                    .count()
            })
            .sum();
        assert!(
            hits as f64 >= 0.99 * (300 * k) as f64,
            "{metric}: {hits} of {}",
            300 * k
        );
        let err = g.add(&vec![1e5; d]).unwrap_err();
        assert!(err.to_string().contains("65504"), "{err}");
        assert_eq!(
            g.to_cpu().unwrap().reconstruct(7).unwrap(),
            rounded[7 * d..8 * d]
        );
        assert!(g.set_precision(GpuFlatPrecision::F32).is_err());
        g.reset().unwrap();
        g.set_precision(GpuFlatPrecision::F32).unwrap();
    }
    PASSED
}

/// bf_knn from host arrays and from device arrays gives the CPU flat index's answers;
/// arrays of the wrong length are errors.
fn bf_knn_from_host_and_device_arrays() -> Outcome {
    let res = match gpu() {
        Ok(res) => res,
        Err(skip) => return skip,
    };
    let d = 40;
    let (_, xb, xq) = get_dataset_2(d, 0, 8_000, 200);
    for metric in [MetricType::L2, MetricType::InnerProduct] {
        let mut cpu = IndexFlat::new(d, metric).unwrap();
        cpu.add(&xb).unwrap();
        let want = cpu.search(&xq, 20).unwrap();
        let host = bf_knn(res.clone(), &xb, &xq, d, 20, metric).unwrap();
        assert_same_answers(&want, &host, &format!("bf_knn {metric}"));
        let (db, q) = (
            res.stream().clone_htod(&xb).unwrap(),
            res.stream().clone_htod(&xq).unwrap(),
        );
        let dev = bf_knn_device(res.clone(), &db, &q, d, 20, metric).unwrap();
        assert_eq!(dev.labels, host.labels);
        assert!(bf_knn_device(res.clone(), &db, &q, d + 1, 20, metric).is_err());
        assert!(bf_knn(res.clone(), &xb, &xq[..d - 1], d, 20, metric).is_err());
    }
    PASSED
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
            // 2500: beyond the kernels' 2048, the host selects from the GPU's products.
            for k in [1, 10, 100, 2048, 2500] {
                let want = cpu.search(&xq, k).unwrap();
                let got = g.search(&xq, k).unwrap();
                assert_same_answers(&want, &got, &format!("{metric} k={k}"));
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
    let only = SearchParams::default().with_selector(&sel);
    assert_eq!(
        g.search_with(&xq, 5, &only).unwrap().labels,
        cpu.search_with(&xq, 5, &only).unwrap().labels
    );
    assert!(g.range_search(&xq, f32::NAN).is_err());
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

/// GPU range search and id selectors answer as the CPU flat index: the same ids by query
/// (ids whose distance lies within rounding of the radius aside), queries with more hits
/// than the first pass has room for (256) included, in every precision for selectors.
fn flat_range_search_and_selectors_match_the_cpu() -> Outcome {
    let res = match gpu() {
        Ok(res) => res,
        Err(skip) => return skip,
    };
    let d = 24;
    let (_, xb, xq) = get_dataset_2(d, 0, 6_000, 100);
    let keep = IdSelectorRange::new(1_000, 4_000);
    for metric in [MetricType::L2, MetricType::InnerProduct] {
        let mut cpu = IndexFlat::new(d, metric).unwrap();
        cpu.add(&xb).unwrap();
        let mut g = GpuIndexFlat::new(res.clone(), d, metric).unwrap();
        g.add(&xb).unwrap();
        // A radius around the 500th neighbour of a typical query: most queries find
        // hundreds, some more than 256.
        let probe = cpu.search(&xq, 500).unwrap();
        let mut r: Vec<f32> = (0..100).map(|q| probe.distances[q * 500 + 499]).collect();
        r.sort_by(f32::total_cmp);
        let radius = r[50];
        for params in [
            SearchParams::default(),
            SearchParams::default().with_selector(&keep),
        ] {
            let want = cpu.range_search_with(&xq, radius, &params).unwrap();
            let got = g.range_search_with(&xq, radius, &params).unwrap();
            assert_eq!(got.lims.len(), 101);
            let mut overflowed = 0;
            for q in 0..100 {
                let (wl, wd) = want.query(q);
                let (gl, gd) = got.query(q);
                overflowed += usize::from(gl.len() > 256);
                let near = |id: Idx| {
                    let dist = wl
                        .iter()
                        .position(|&l| l == id)
                        .map(|p| wd[p])
                        .unwrap_or_else(|| {
                            let v = &xb[id as usize * d..(id as usize + 1) * d];
                            let qv = &xq[q * d..(q + 1) * d];
                            match metric {
                                MetricType::L2 => {
                                    v.iter().zip(qv).map(|(a, b)| (a - b) * (a - b)).sum()
                                }
                                _ => v.iter().zip(qv).map(|(a, b)| a * b).sum(),
                            }
                        });
                    (dist - radius).abs() <= 1e-3 * radius.abs().max(1.0)
                };
                for id in wl
                    .iter()
                    .filter(|l| !gl.contains(l))
                    .chain(gl.iter().filter(|l| !wl.contains(l)))
                {
                    assert!(
                        near(*id),
                        "{metric} query {q}: id {id} differs away from the radius"
                    );
                }
                assert!(gl.windows(2).all(|w| w[0] < w[1]), "ids in order");
                for (l, dist) in gl.iter().zip(gd) {
                    if let Some(p) = wl.iter().position(|w| w == l) {
                        assert!((wd[p] - dist).abs() <= 1e-3 * wd[p].abs().max(1.0));
                    }
                    assert!(params.selector.is_none() || keep.is_member(*l));
                }
            }
            if params.selector.is_none() {
                assert!(overflowed > 0, "{metric}: no query needed a second pass");
            }
        }
        for precision in [GpuFlatPrecision::F32, GpuFlatPrecision::Tf32] {
            g.set_precision(precision).unwrap();
            let only = SearchParams::default().with_selector(&keep);
            let want = cpu.search_with(&xq, 20, &only).unwrap();
            let got = g.search_with(&xq, 20, &only).unwrap();
            assert_same_answers(
                &want,
                &got,
                &format!("{metric} {precision:?} with a selector"),
            );
            let one = g.search_with(&xq, 1, &only).unwrap();
            assert!(one.labels.iter().all(|&l| keep.is_member(l)));
        }
    }
    PASSED
}

/// Id selectors on the GPU IVF scans (a mask per device row, both scan orders) and IVF-Flat
/// range search on the GPU answer as the CPU index; k > 2048 runs on the GPU index's CPU
/// form.
fn ivf_takes_selectors_range_search_and_large_k() -> Outcome {
    let res = match gpu() {
        Ok(res) => res,
        Err(skip) => return skip,
    };
    let d = 16;
    let (xt, xb, xq) = get_dataset_2(d, 2_000, 5_000, 20);
    let mut cpu = index_factory(d, "IVF16,Flat", MetricType::L2).unwrap();
    cpu.train(&xt).unwrap();
    cpu.add(&xb).unwrap();
    cpu.set_param("nprobe", 4.0).unwrap();
    let mut g = index_cpu_to_gpu(res.clone(), &*cpu).unwrap();
    g.set_param("nprobe", 4.0).unwrap();
    let keep = IdSelectorRange::new(100, 900);
    let only = SearchParams::default().with_selector(&keep);
    let want = cpu.search_with(&xq, 10, &only).unwrap();
    assert_same_answers(
        &want,
        &g.search_with(&xq, 10, &only).unwrap(),
        "IVF selector",
    );
    let copy: Box<dyn std::any::Any> = fathom_io::faiss::clone_index(&*cpu).unwrap();
    let copy = *copy.downcast::<fathom_index::IndexIvfFlat>().unwrap();
    let mut flat = GpuIndexIvfFlat::from_cpu(res, copy).unwrap();
    flat.set_param("nprobe", 4.0).unwrap();
    for order in [IvfScanOrder::QueryMajor, IvfScanOrder::ListMajor] {
        flat.set_scan_order(order);
        let got = flat.search_with(&xq, 10, &only).unwrap();
        assert_same_answers(&want, &got, &format!("IVF selector {order:?}"));
        assert!(got.labels.iter().all(|&l| l < 0 || keep.is_member(l)));
    }
    // Range search: IVF-Flat on the GPU (ivf_flat_range), the same hits as the CPU index
    // (those within rounding of the radius aside), in id order; queries with hundreds
    // of hits take the second pass.
    for radius in [1.0f32, 4.0] {
        let (want, got) = (
            cpu.range_search(&xq, radius).unwrap(),
            g.range_search(&xq, radius).unwrap(),
        );
        for q in 0..20 {
            let ((wl, wd), (gl, gd)) = (want.query(q), got.query(q));
            assert!(gl.windows(2).all(|w| w[0] < w[1]), "ids in order");
            for (l, dist) in gl.iter().zip(gd) {
                match wl.iter().position(|w| w == l) {
                    Some(p) => assert!((wd[p] - dist).abs() <= 1e-3 * wd[p].max(1.0)),
                    None => assert!((dist - radius).abs() <= 1e-3 * radius, "{l}: {dist}"),
                }
            }
            for (l, dist) in wl.iter().zip(wd) {
                assert!(gl.contains(l) || (dist - radius).abs() <= 1e-3 * radius);
            }
        }
    }
    let only_range = flat.range_search_with(&xq, 4.0, &only).unwrap();
    assert!(only_range.labels.iter().all(|&l| keep.is_member(l)));
    assert_eq!(
        g.search(&xq, 3000).unwrap().labels,
        cpu.search(&xq, 3000).unwrap().labels
    );
    PASSED
}

fn ivf_recalls(gpu_index: &mut dyn Index, cpu: &mut dyn Index, xq: &[f32], gt: &[Idx]) {
    ivf_recalls_within(gpu_index, cpu, xq, gt, 0.01);
}

/// The GPU index's 1-recall@10 at nprobe 1 and 16 is the CPU index's, within `tolerance`.
fn ivf_recalls_within(
    gpu_index: &mut dyn Index,
    cpu: &mut dyn Index,
    xq: &[f32],
    gt: &[Idx],
    tolerance: f64,
) {
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
            (rg - rc).abs() <= tolerance,
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
    for desc in ["IVF64,Flat", "IVF64,PQ8", "IVF64,SQ8"] {
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
    // Both scan orders give the same answers (ties aside).
    g.set_param("nprobe", 8.0).unwrap();
    g.set_scan_order(IvfScanOrder::QueryMajor);
    let by_query = g.search(&xq, 10).unwrap();
    g.set_scan_order(IvfScanOrder::ListMajor);
    let by_list = g.search(&xq, 10).unwrap();
    assert_same_answers(&by_query, &by_list, "list-major against query-major");
    // With 16 MiB of temporary memory the distances (500 queries × 8 lists × ~320 rows)
    // take several passes of query ranges.
    let small = GpuResources::with_temp_memory(0, 0).unwrap();
    let copy: Box<dyn std::any::Any> = fathom_io::faiss::clone_index(g.cpu()).unwrap();
    let mut g2 = GpuIndexIvfFlat::from_cpu(small, *copy.downcast().unwrap()).unwrap();
    g2.set_param("nprobe", 8.0).unwrap();
    g2.set_scan_order(IvfScanOrder::ListMajor);
    let xq_many: Vec<f32> = xq.iter().cycle().take(xq.len() * 8).copied().collect();
    let many = g2.search(&xq_many, 10).unwrap();
    for rep in 0..8 {
        let part = SearchResult {
            nq: 500,
            k: 10,
            distances: many.distances[rep * 5000..(rep + 1) * 5000].to_vec(),
            labels: many.labels[rep * 5000..(rep + 1) * 5000].to_vec(),
        };
        assert_same_answers(&by_query, &part, "list-major in query ranges");
    }
    let mut g = GpuIndexIvfPq::new(res.clone(), d, 64, 8, MetricType::L2).unwrap();
    g.train(&xt).unwrap();
    g.add(&xb).unwrap();
    let mut cpu = index_factory(d, "IVF64,PQ8", MetricType::L2).unwrap();
    cpu.train(&xt).unwrap();
    cpu.add(&xb).unwrap();
    ivf_recalls(&mut g, &mut *cpu, &xq, &gt);
    // 4-bit codes: an IVF-PQ and a fast-scan index (whose CPU scan quantizes its tables
    // to 8 bits, hence the wider tolerance).
    for (desc, tolerance) in [("IVF64,PQ16x4", 0.01), ("IVF64,PQ16x4fs", 0.03)] {
        let mut cpu = index_factory(d, desc, MetricType::L2).unwrap();
        cpu.train(&xt).unwrap();
        cpu.add(&xb).unwrap();
        let mut g = index_cpu_to_gpu(res.clone(), &*cpu).unwrap();
        ivf_recalls_within(&mut *g, &mut *cpu, &xq, &gt, tolerance);
        let back = index_gpu_to_cpu(&*g).unwrap();
        assert_eq!(
            back.search(&xq, 5).unwrap(),
            cpu.search(&xq, 5).unwrap(),
            "{desc}"
        );
    }
    let mut g = GpuIndexIvfSq::new(res, d, 64, QuantizerType::QT8bit, MetricType::L2).unwrap();
    g.train(&xt).unwrap();
    g.add(&xb).unwrap();
    let mut cpu = index_factory(d, "IVF64,SQ8", MetricType::L2).unwrap();
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
    for desc in ["IVF32,Flat", "IVF32,PQ8", "IVF32,SQ8"] {
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

/// The GPU's update step gives the CPU's centroids to the bit (each cluster's points summed
/// in their original order), leaves frozen centroids alone and zeroes empty clusters; its
/// assignment of the kept points equals a search of them.
fn kmeans_update_on_the_gpu_equals_the_cpu_means() -> Outcome {
    let res = match gpu() {
        Ok(res) => res,
        Err(skip) => return skip,
    };
    let (d, n, k, frozen) = (24, 5_000, 37, 2);
    let (x, centroids, _) = get_dataset_2(d, n, k, 0);
    // Every cluster but 5 gets points; 5 stays empty.
    let assign: Vec<usize> = (0..n)
        .map(|i| (i * 7919) % k)
        .map(|c| if c == 5 { 6 } else { c })
        .collect();
    let members = ClusterMembers::new(&assign, k);
    let mut a = GpuAssigner::new(res, d, MetricType::L2).unwrap();
    a.add(&centroids).unwrap();
    a.set_points(&x).unwrap();
    let mut got = vec![9.0f32; k * d];
    a.cluster_means(&x, &members, frozen, &mut got)
        .unwrap()
        .unwrap();
    assert!(
        got[..frozen * d].iter().all(|&v| v == 9.0),
        "frozen centroids changed"
    );
    for c in frozen..k {
        let mut want = vec![0.0f32; d];
        for &i in members.of(c) {
            for (w, v) in want.iter_mut().zip(&x[i * d..(i + 1) * d]) {
                *w += v;
            }
        }
        if !members.of(c).is_empty() {
            let norm = 1.0 / members.of(c).len() as f32;
            want.iter_mut().for_each(|w| *w *= norm);
        }
        assert_eq!(&got[c * d..(c + 1) * d], &want[..], "cluster {c}");
    }
    assert_eq!(a.assign_points(&x).unwrap(), a.assign(&x).unwrap());
    assert!(
        a.assign_points(&x[..d]).is_err(),
        "other points than set_points'"
    );
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
    bf_knn_from_host_and_device_arrays,
    flat_range_search_and_selectors_match_the_cpu,
    flat_tf32_gives_the_cpu_answers,
    flat_fp16_stores_rounded_vectors_and_recalls,
    flat_converts_both_ways_and_refuses_what_it_cannot_do,
    ivf_flat_and_ivf_pq_match_the_cpu_recall,
    ivf_takes_selectors_range_search_and_large_k,
    inner_product_ivf_matches_the_cpu,
    kmeans_on_the_gpu_matches_the_cpu_objective,
    kmeans_update_on_the_gpu_equals_the_cpu_means,
    sharded_over_gpus_equals_one_index,
);
