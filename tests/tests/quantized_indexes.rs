//! Accuracy anchors from Faiss's tests for the code-based indexes, behaviour against brute
//! force (selectors, range search, removal, reconstruction), and bad input.

use fathom_core::{Error, IdSelectorRange, Idx, MetricType, SearchParams};
use fathom_index::{
    Index, IndexFlat, IndexLsh, IndexPq, IndexPqFastScan, IndexRefine, IndexScalarQuantizer,
    PqSearchType, index_factory,
};
use fathom_io::synthetic::{SyntheticSpec, generate};
use fathom_quant::{Codec, QuantizerType};

struct Data {
    d: usize,
    xt: Vec<f32>,
    xb: Vec<f32>,
    xq: Vec<f32>,
    gt: Vec<Idx>,
}

fn data(d: usize, nt: usize, nb: usize, nq: usize) -> Data {
    let spec = SyntheticSpec {
        d,
        nb,
        nq,
        nt,
        k: 1,
        seed: 42,
    };
    let s = generate(&spec);
    let gt = fathom_kernels::knn(MetricType::L2, &s.query, &s.base, d, 1, None)
        .unwrap()
        .labels;
    Data {
        d,
        xt: s.learn,
        xb: s.base,
        xq: s.query,
        gt,
    }
}

fn recall_at_1(index: &dyn Index, ds: &Data) -> f64 {
    let res = index.search(&ds.xq, 1).unwrap();
    let hits = res
        .labels
        .iter()
        .zip(&ds.gt)
        .filter(|(a, b)| a == b)
        .count();
    hits as f64 / ds.gt.len() as f64
}

fn build(desc: &str, ds: &Data) -> Box<dyn Index> {
    let mut index = index_factory(ds.d, desc, MetricType::L2).unwrap();
    index.train(&ds.xt).unwrap();
    index.add(&ds.xb).unwrap();
    index
}

#[test]
fn accuracy_anchors() {
    let ds = data(32, 10_000, 5000, 500);
    // Faiss: SQ4 recall@1 > 0.5 (SQ8 0.99, SQfp16 1.0 measured). Faiss's PQ16x4fs > 0.6
    // is on its own generator's data; on this (clustered, harder) data the anchor is that
    // fast-scan loses little against exact-table PQ with the same centroids.
    let pq4 = recall_at_1(&*build("PQ16x4np", &ds), &ds);
    let fs = recall_at_1(&*build("PQ16x4fs", &ds), &ds);
    assert!(
        pq4 > 0.3 && fs >= 0.9 * pq4,
        "PQ16x4fs {fs} vs PQ16x4 {pq4}"
    );
    for (desc, min) in [
        ("SQ4", 0.5),
        ("SQ8", 0.9),
        ("SQfp16", 0.98),
        ("SQ6", 0.85),
        ("SQbf16", 0.9),
        ("PQ8np", 0.3),
    ] {
        let r = recall_at_1(&*build(desc, &ds), &ds);
        assert!(r > min, "{desc}: recall@1 {r} ≤ {min}");
    }
    // IndexRefineFlat(PQ) with k_factor 4: recall@1 ≥ 0.95, and non-decreasing in k_factor.
    let mut refine = build("PQ16np,RFlat", &ds);
    let mut last = 0.0;
    for kf in [1.0, 2.0, 4.0] {
        refine.set_param("k_factor", kf).unwrap();
        let r = recall_at_1(&*refine, &ds);
        assert!(r >= last, "k_factor {kf}: {r} < {last}");
        last = r;
    }
    assert!(last >= 0.95, "RFlat k_factor 4: recall@1 {last}");
}

#[test]
fn polysemous_filter_keeps_top1_and_scans_fewer_codes() {
    let ds = data(32, 10_000, 5000, 200);
    let mut index = IndexPq::new(32, 8, 8, MetricType::L2).unwrap();
    index.set_do_polysemous_training(true);
    index.train(&ds.xt).unwrap();
    index.add(&ds.xb).unwrap();
    let plain = index.search(&ds.xq, 1).unwrap();
    index.set_search_type(PqSearchType::Polysemous);
    index.set_polysemous_ht(24);
    index.stats().reset();
    let poly = index.search(&ds.xq, 1).unwrap();
    let (_, ncode, npass) = index.stats().get();
    let same = plain
        .labels
        .iter()
        .zip(&poly.labels)
        .filter(|(a, b)| a == b)
        .count();
    assert!(
        same as f64 >= 0.9 * 200.0,
        "only {same}/200 top-1 agree with plain PQ"
    );
    assert!(
        npass * 2 < ncode,
        "the filter let {npass} of {ncode} codes through"
    );
    // Without polysemous training the same threshold keeps far fewer true neighbours.
    let mut raw = IndexPq::new(32, 8, 8, MetricType::L2).unwrap();
    raw.train(&ds.xt).unwrap();
    raw.add(&ds.xb).unwrap();
    raw.set_search_type(PqSearchType::Polysemous);
    raw.set_polysemous_ht(24);
    let raw_res = raw.search(&ds.xq, 1).unwrap();
    let raw_same = plain
        .labels
        .iter()
        .zip(&raw_res.labels)
        .filter(|(a, b)| a == b)
        .count();
    assert!(
        raw_same < same,
        "training did not help: {raw_same} vs {same}"
    );
    // SDC and Hamming search run and agree with ADC most of the time.
    index.set_search_type(PqSearchType::Sdc);
    let sdc = index.search(&ds.xq, 1).unwrap();
    let agree = plain
        .labels
        .iter()
        .zip(&sdc.labels)
        .filter(|(a, b)| a == b)
        .count();
    assert!(agree > 60, "SDC agrees on {agree}/200");
    index.set_search_type(PqSearchType::Hamming);
    let ham = index.search(&ds.xq, 5).unwrap();
    assert!(ham.distances.iter().all(|d| d.fract() == 0.0 && *d <= 64.0));
}

#[test]
fn lsh_finds_neighbours_better_than_chance() {
    let ds = data(32, 5000, 5000, 200);
    for desc in ["LSH", "LSHrt", "LSH64r"] {
        let index = build(desc, &ds);
        let res = index.search(&ds.xq, 10).unwrap();
        let hits = (0..200)
            .filter(|&q| res.labels_of(q).contains(&ds.gt[q]))
            .count();
        assert!(hits > 40, "{desc}: true NN in top-10 for {hits}/200");
        assert!(res.distances.iter().all(|d| d.fract() == 0.0));
    }
}

/// Every code index: selectors restrict results to the selected ids and agree with an
/// unrestricted search filtered afterwards; range search agrees with k-NN distances;
/// removal renumbers; reconstruct decodes.
#[test]
fn selectors_range_search_removal_reconstruction() {
    let ds = data(16, 3000, 2000, 20);
    for desc in [
        "PQ4np",
        "PQ4x6np",
        "SQ8",
        "SQ4",
        "SQfp16",
        "LSHt",
        "PQ4x4fs",
        "PQ4np,RFlat",
    ] {
        for metric in [MetricType::L2, MetricType::InnerProduct] {
            if desc.starts_with("LSH") && metric != MetricType::L2 {
                continue;
            }
            let mut index = index_factory(16, desc, metric).unwrap();
            index.train(&ds.xt).unwrap();
            index.add(&ds.xb).unwrap();
            let all = index.search(&ds.xq, 2000).unwrap();
            let sel = IdSelectorRange::new(500, 700);
            let res = index
                .search_with(&ds.xq, 10, &SearchParams::default().with_selector(&sel))
                .unwrap();
            for q in 0..20 {
                let got = res.labels_of(q);
                assert!(
                    got.iter().all(|&l| (500..700).contains(&l)),
                    "{desc}: selector"
                );
                if desc.contains("RFlat") {
                    // Re-ranking sees only the base's k·k_factor selected candidates.
                    continue;
                }
                let got_d = res.distances_of(q);
                let want_d: Vec<f32> = all
                    .labels_of(q)
                    .iter()
                    .zip(all.distances_of(q))
                    .filter(|(l, _)| (500..700).contains(*l))
                    .map(|(_, d)| *d)
                    .take(10)
                    .collect();
                assert_eq!(got_d.len(), want_d.len());
                for (a, b) in got_d.iter().zip(&want_d) {
                    assert!(
                        (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                        "{desc} {metric:?}: {a} vs {b}"
                    );
                }
            }
            if !desc.contains("fs") && !desc.contains("RFlat") {
                // Radius: the 5th k-NN distance of query 0 (strict inequality).
                let r = all.distances_of(0)[5];
                let rs = index.range_search(&ds.xq[..16], r).unwrap();
                let (ids, dis) = rs.query(0);
                let want = all
                    .distances_of(0)
                    .iter()
                    .filter(|&&d| if metric.is_similarity() { d > r } else { d < r })
                    .count();
                assert_eq!(ids.len(), want, "{desc} {metric:?}: range search");
                assert!(
                    dis.iter()
                        .all(|&d| if metric.is_similarity() { d > r } else { d < r })
                );
            }
            let before = index.reconstruct(1500).unwrap();
            assert_eq!(before.len(), 16);
            let removed = index.remove_ids(&IdSelectorRange::new(0, 1000)).unwrap();
            assert_eq!(removed, 1000, "{desc}");
            assert_eq!(index.ntotal(), 1000);
            assert_eq!(
                index.reconstruct(500).unwrap(),
                before,
                "{desc}: ids renumbered"
            );
            assert!(index.reconstruct(1000).is_err());
        }
    }
}

#[test]
fn fast_scan_matches_plain_pq_ranking() {
    let ds = data(32, 5000, 3000, 50);
    let mut fs = IndexPqFastScan::new(32, 16, MetricType::L2).unwrap();
    fs.train(&ds.xt).unwrap();
    fs.add(&ds.xb).unwrap();
    let mut pq = IndexPq::new(32, 16, 4, MetricType::L2).unwrap();
    pq.pq_mut().set_centroids(fs.pq().centroids()).unwrap();
    pq.add(&ds.xb).unwrap();
    let a = fs.search(&ds.xq, 10).unwrap();
    let b = pq.search(&ds.xq, 10).unwrap();
    let mut overlap = 0;
    for q in 0..50 {
        overlap += a
            .labels_of(q)
            .iter()
            .filter(|l| b.labels_of(q).contains(l))
            .count();
        // Quantized distances stay within the table rounding of the exact ADC ones.
        for (l, dq) in a.labels_of(q).iter().zip(a.distances_of(q)) {
            let code = fs.code(*l as usize);
            let mut t = vec![0.0; 16 * 16];
            fs.pq()
                .compute_distance_table(MetricType::L2, &ds.xq[q * 32..(q + 1) * 32], &mut t)
                .unwrap();
            let mut exact = [0.0f32];
            fs.pq().lookup(&t, &code, &mut exact);
            let span = t
                .chunks(16)
                .map(|c| {
                    c.iter().cloned().fold(f32::MIN, f32::max)
                        - c.iter().cloned().fold(f32::MAX, f32::min)
                })
                .fold(0.0, f32::max);
            assert!(
                (dq - exact[0]).abs() <= 16.0 * 0.5 * span / 255.0 + 1e-3,
                "{dq} vs {}",
                exact[0]
            );
        }
    }
    assert!(
        overlap >= 50 * 10 * 8 / 10,
        "overlap {overlap}/500 with plain PQ"
    );
}

#[test]
fn bad_input_is_an_error() {
    assert!(matches!(
        IndexPq::new(30, 4, 8, MetricType::L2),
        Err(Error::InvalidArgument(_))
    ));
    assert!(IndexPq::new(32, 4, 0, MetricType::L2).is_err());
    assert!(IndexPq::new(32, 4, 17, MetricType::L2).is_err());
    assert!(IndexPq::new(32, 0, 8, MetricType::L2).is_err());
    assert!(IndexPq::new(32, 4, 8, MetricType::L1).is_err());
    let ds = data(16, 100, 100, 5);
    let mut pq = IndexPq::new(16, 4, 8, MetricType::L2).unwrap();
    let msg = pq.train(&ds.xt).unwrap_err().to_string();
    assert!(msg.contains("256") && msg.contains("100"), "{msg}");
    assert!(matches!(pq.add(&ds.xb), Err(Error::NotTrained(_))));
    assert!(matches!(pq.search(&ds.xq, 1), Err(Error::NotTrained(_))));
    let mut pq = IndexPq::new(16, 4, 4, MetricType::L2).unwrap();
    pq.train(&ds.xt).unwrap();
    assert!(
        pq.add_codes(&[1, 2, 3]).is_err(),
        "codes of the wrong length"
    );
    assert!(pq.add(&ds.xb[..15]).is_err());
    assert!(pq.search(&ds.xq, 0).is_err());
    let mut nan = ds.xq[..16].to_vec();
    nan[3] = f32::NAN;
    assert!(pq.search(&nan, 1).is_err());
    assert!(pq.add(&nan).is_err());
    assert_eq!(pq.ntotal(), 0, "a failed add stores nothing");
    let mut short = vec![0u8; 3];
    assert!(matches!(
        pq.pq().compute_codes_into(&ds.xb[..32], &mut short),
        Err(Error::DimensionMismatch { .. })
    ));
    let mut buf = vec![0u8; 2 * pq.pq().code_size()];
    pq.pq().compute_codes_into(&ds.xb[..32], &mut buf).unwrap();
    assert_eq!(buf, pq.pq().compute_codes(&ds.xb[..32]).unwrap());
    pq.set_search_type(PqSearchType::Polysemous);
    assert!(pq.search(&ds.xq, 1).is_err(), "polysemous on 4-bit codes");
    let mut sq = IndexScalarQuantizer::new(16, QuantizerType::QT8bit, MetricType::L2).unwrap();
    assert!(matches!(sq.add(&ds.xb), Err(Error::NotTrained(_))));
    assert!(sq.train(&[]).is_err());
    assert!(
        IndexLsh::new(16, 32, false, false).is_err(),
        "nbits > d without rotation"
    );
    assert!(IndexPqFastScan::new(16, 300, MetricType::L2).is_err());
    let flat = IndexFlat::new_l2(8).unwrap();
    let other = IndexFlat::new_l2(16).unwrap();
    assert!(IndexRefine::new(Box::new(flat), Box::new(other)).is_err());
    let mut r = IndexRefine::flat(Box::new(IndexFlat::new_l2(16).unwrap())).unwrap();
    assert!(r.set_param("k_factor", 0.5).is_err());
    for bad in ["PQ5", "PQ4x0", "SQ9", "LSHz", "PQ4,RFlat,RFlat"] {
        let e = index_factory(16, bad, MetricType::L2)
            .unwrap_err()
            .to_string();
        assert!(!e.is_empty(), "{bad}");
    }
}
