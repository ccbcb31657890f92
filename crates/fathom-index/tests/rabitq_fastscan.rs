//! The RaBitQ fast-scan indexes against the RaBitQ indexes they re-layout: the same codes,
//! the same results for extended codes, the 1-bit results up to the 8-bit tables'
//! rounding; the block layout under removal, merging, range search and selectors.

use fathom_core::IdSelectorRange;
use fathom_index::{
    Index, IndexFlat, IndexIvfRaBitQ, IndexIvfRaBitQFastScan, IndexRaBitQ, IndexRaBitQFastScan,
    MetricType,
};

/// Uniform in [-0.5, 0.5), clustered around 8 centres so IVF lists differ.
fn data(n: usize, d: usize, seed: u32) -> Vec<f32> {
    let mut s = seed | 1;
    let mut next = move || {
        s = s.wrapping_mul(1664525).wrapping_add(1013904223);
        (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
    };
    let centres: Vec<f32> = (0..8 * d).map(|_| 2.0 * next()).collect();
    (0..n)
        .flat_map(|i| {
            let c = (i * 7) % 8;
            (0..d)
                .map(|j| centres[c * d + j] + next())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn overlap(a: &[i64], b: &[i64]) -> f64 {
    a.iter().filter(|x| b.contains(x)).count() as f64 / a.len() as f64
}

#[test]
fn flat_codes_and_results_follow_index_rabitq() {
    let (d, n, nq, k) = (37, 1500, 20, 10);
    let (x, q) = (data(n, d, 3), data(nq, d, 5));
    for metric in [MetricType::L2, MetricType::InnerProduct] {
        for nb_bits in [1, 3] {
            let mut fs = IndexRaBitQFastScan::new(d, metric, nb_bits).unwrap();
            let mut rq = IndexRaBitQ::new(d, metric, nb_bits).unwrap();
            for ix in [&mut fs as &mut dyn Index, &mut rq] {
                ix.train(&x).unwrap();
                ix.add(&x).unwrap();
                ix.set_param("qb", 8.0).unwrap();
            }
            assert_eq!(
                fs.sa_encode(&x[..5 * d]).unwrap(),
                rq.sa_encode(&x[..5 * d]).unwrap()
            );
            assert_eq!(fs.code(1234), rq.sa_encode(&x[1234 * d..1235 * d]).unwrap());
            assert_eq!(fs.reconstruct(77).unwrap(), rq.reconstruct(77).unwrap());
            let (a, b) = (fs.search(&q, k).unwrap(), rq.search(&q, k).unwrap());
            let common = overlap(&a.labels, &b.labels);
            if nb_bits == 1 {
                // Table rounding: the same neighbours, distances within a small error.
                assert!(common >= 0.85, "{metric:?}: {common}");
                let scale = b.distances.iter().map(|v| v.abs()).fold(0.0f32, f32::max);
                for (i, (&la, &da)) in a.labels.iter().zip(&a.distances).enumerate() {
                    let row = i / k * k..(i / k + 1) * k;
                    if let Some(j) = b.labels[row.clone()].iter().position(|&l| l == la) {
                        let db = b.distances[row.start + j];
                        assert!((da - db).abs() <= 0.01 * scale, "{da} vs {db}");
                    }
                }
            } else {
                // Full estimates: the same values for the same codes.
                assert!(common >= 0.97, "{metric:?}: {common}");
                for (i, (la, da)) in a.labels.iter().zip(&a.distances).enumerate() {
                    let row = i / k * k..(i / k + 1) * k;
                    if let Some(j) = b.labels[row.clone()].iter().position(|l| l == la) {
                        let db = b.distances[row.start + j];
                        assert!((da - db).abs() <= 1e-3 * da.abs().max(1.0), "{da} vs {db}");
                    }
                }
            }
        }
    }
}

#[test]
fn ivf_results_follow_ivf_rabitq_and_range_search_agrees() {
    let (d, n, nq, k) = (64, 3000, 15, 10);
    let (x, q) = (data(n, d, 7), data(nq, d, 9));
    for nb_bits in [1, 4] {
        let mk_q = || Box::new(IndexFlat::new_l2(d).unwrap());
        let mut fs = IndexIvfRaBitQFastScan::new(mk_q(), 16, MetricType::L2, nb_bits).unwrap();
        let mut rq = IndexIvfRaBitQ::new(mk_q(), 16, MetricType::L2, nb_bits).unwrap();
        for ix in [&mut fs as &mut dyn Index, &mut rq] {
            ix.train(&x).unwrap();
            ix.add(&x).unwrap();
            ix.set_param("nprobe", 4.0).unwrap();
            ix.set_param("qb", 8.0).unwrap();
        }
        let (a, b) = (fs.search(&q, k).unwrap(), rq.search(&q, k).unwrap());
        let common = overlap(&a.labels, &b.labels);
        assert!(common >= if nb_bits == 1 { 0.85 } else { 0.97 }, "{common}");
        fs.make_direct_map(true).unwrap();
        rq.make_direct_map(true).unwrap();
        assert_eq!(fs.reconstruct(1999).unwrap(), rq.reconstruct(1999).unwrap());
        fs.make_direct_map(false).unwrap();
        // Range search: every key within the radius, and what the k-NN search returned
        // below it is found.
        let radius = a.distances[k / 2];
        let r = fs.range_search(&q[..d], radius).unwrap();
        let (lo, hi) = (r.lims[0], r.lims[1]);
        assert!(r.distances[lo..hi].iter().all(|&v| v < radius));
        for (&l, &dist) in a.labels[..k].iter().zip(&a.distances[..k]) {
            if dist < radius * 0.999 {
                assert!(r.labels[lo..hi].contains(&l), "{l} at {dist} < {radius}");
            }
        }
        // Selectors and removal: ids 0..1000 gone.
        let sel = IdSelectorRange::new(0, 1000);
        let removed = fs.remove_ids(&sel).unwrap();
        assert_eq!(removed, 1000);
        assert_eq!(fs.ntotal(), 2000);
        let after = fs.search(&q, k).unwrap();
        assert!(after.labels.iter().all(|&l| l >= 1000 || l == -1));
    }
}

#[test]
fn removal_and_merging_keep_the_codes() {
    let (d, n) = (20, 300);
    let x = data(n, d, 11);
    let mut a = IndexRaBitQFastScan::new(d, MetricType::L2, 2).unwrap();
    a.train(&x).unwrap();
    let mut b = a.clone();
    a.add(&x[..100 * d]).unwrap();
    b.add(&x[100 * d..]).unwrap();
    a.merge_from(&mut b, 0).unwrap();
    assert_eq!((a.ntotal(), b.ntotal()), (300, 0));
    let mut whole = IndexRaBitQFastScan::new(d, MetricType::L2, 2).unwrap();
    whole.train(&x).unwrap();
    whole.add(&x).unwrap();
    assert_eq!(a.blocks(), whole.blocks());
    // Removing the first 50: the rest keep their codes, renumbered.
    let code_60 = a.code(60);
    assert_eq!(a.remove_ids(&IdSelectorRange::new(0, 50)).unwrap(), 50);
    assert_eq!(a.code(10), code_60);
    let r = a.search(&x[60 * d..61 * d], 1).unwrap();
    assert_eq!(r.labels, vec![10]);
    // Inputs it must refuse.
    assert!(IndexRaBitQFastScan::new(1025, MetricType::L2, 1).is_err());
    assert!(a.set_param("qb", 0.0).is_err());
    assert!(a.set_param("qb", 9.0).is_err());
    assert!(a.search(&x[..d], 0).is_err());
    let untrained = IndexRaBitQFastScan::new(d, MetricType::L2, 1).unwrap();
    assert!(untrained.search(&x[..d], 1).is_err());
}
