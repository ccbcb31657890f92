//! Flat, IdMap, IdMap2 and Shards against exact brute force.

use fathom_core::{
    IdSelector, IdSelectorAnd, IdSelectorBatch, IdSelectorBitmap, IdSelectorNot, IdSelectorOr,
    IdSelectorRange, IdSelectorXor,
};
use fathom_index::{
    Error, Idx, Index, IndexFlat, IndexIdMap, IndexIdMap2, IndexShards, MetricType, SearchParams,
    ShardIds,
};
use fathom_kernels::distance;

fn data(n: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..n * d)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

const METRICS: [MetricType; 8] = [
    MetricType::L2,
    MetricType::InnerProduct,
    MetricType::L1,
    MetricType::Linf,
    MetricType::Lp(1.5),
    MetricType::Canberra,
    MetricType::BrayCurtis,
    MetricType::JensenShannon,
];

/// Exact top-k by brute force over (id, vector) pairs.
fn brute(metric: MetricType, q: &[f32], items: &[(Idx, &[f32])], k: usize) -> Vec<(f32, Idx)> {
    let mut all: Vec<(f32, Idx)> = items
        .iter()
        .map(|(id, v)| (distance(metric, q, v).unwrap(), *id))
        .collect();
    all.sort_by(|a, b| {
        let o = a.0.total_cmp(&b.0);
        (if metric.is_similarity() {
            o.reverse()
        } else {
            o
        })
        .then(a.1.cmp(&b.1))
    });
    all.truncate(k);
    all
}

/// Checks a search result row against brute force, allowing ties to come in any order.
fn assert_row(metric: MetricType, dists: &[f32], labels: &[Idx], want: &[(f32, Idx)], what: &str) {
    for j in 0..labels.len() {
        if j >= want.len() {
            assert_eq!(labels[j], -1, "{what}: slot {j} should be empty");
            assert_eq!(dists[j], metric.worst_value());
            continue;
        }
        let tol = 1e-4 * want[j].0.abs().max(1.0);
        assert!(
            (dists[j] - want[j].0).abs() <= tol,
            "{what}: slot {j}: {} vs {}",
            dists[j],
            want[j].0
        );
        let same_dist: Vec<Idx> = want
            .iter()
            .filter(|w| (w.0 - want[j].0).abs() <= tol)
            .map(|w| w.1)
            .collect();
        assert!(
            same_dist.contains(&labels[j]) || j + 1 == want.len(),
            "{what}: slot {j}: label {}",
            labels[j]
        );
    }
}

fn items<'a>(x: &'a [f32], d: usize, ids: &[Idx]) -> Vec<(Idx, &'a [f32])> {
    ids.iter().copied().zip(x.chunks_exact(d)).collect()
}

#[test]
fn flat_every_metric_matches_brute_force() {
    let (d, nb, nq, k) = (9, 700, 40, 6);
    let x = data(nb, d, 1);
    let q = data(nq, d, 2);
    let ids: Vec<Idx> = (0..nb as Idx).collect();
    for metric in METRICS {
        let mut index = IndexFlat::new(d, metric).unwrap();
        index.add(&x[..300 * d]).unwrap();
        index.add(&x[300 * d..]).unwrap();
        assert_eq!(index.ntotal(), nb);
        for batch in [1, nq] {
            let res = index.search(&q[..batch * d], k).unwrap();
            for i in 0..batch {
                let want = brute(metric, &q[i * d..][..d], &items(&x, d, &ids), k);
                assert_row(
                    metric,
                    res.distances_of(i),
                    res.labels_of(i),
                    &want,
                    &format!("{metric}"),
                );
            }
        }
    }
}

fn selectors(n: Idx) -> Vec<(&'static str, Box<dyn IdSelector>)> {
    let evens: Vec<Idx> = (0..n).step_by(2).collect();
    vec![
        ("range", Box::new(IdSelectorRange::new(10, 60))),
        (
            "batch",
            Box::new(IdSelectorBatch::new([3, 77, 150, 999_999])),
        ),
        (
            "bitmap",
            Box::new(IdSelectorBitmap::from_ids(n as usize, evens.clone()).unwrap()),
        ),
        (
            "not",
            Box::new(IdSelectorNot::new(IdSelectorRange::new(0, n - 5))),
        ),
        (
            "and",
            Box::new(IdSelectorAnd::new(
                IdSelectorRange::new(0, 100),
                IdSelectorBatch::new(evens.clone()),
            )),
        ),
        (
            "or",
            Box::new(IdSelectorOr::new(
                IdSelectorRange::new(0, 5),
                IdSelectorRange::new(190, 200),
            )),
        ),
        (
            "xor",
            Box::new(IdSelectorXor::new(
                IdSelectorRange::new(0, 50),
                IdSelectorRange::new(25, 75),
            )),
        ),
        ("nothing", Box::new(IdSelectorBatch::new([]))),
    ]
}

/// Search, range search and removal with every selector, through Flat, IdMap and Shards,
/// against brute force over the selected vectors.
#[test]
fn selectors_in_search_range_search_and_removal() {
    let (d, nb, nq, k) = (8, 200, 25, 5);
    let x = data(nb, d, 3);
    let q = data(nq, d, 4);
    for metric in [MetricType::L2, MetricType::InnerProduct, MetricType::L1] {
        // Flat (ids = rows), IdMap (ids = 1000 + 3·row but selectors in id space), Shards.
        let row_ids: Vec<Idx> = (0..nb as Idx).collect();
        let mut flat = IndexFlat::new(d, metric).unwrap();
        flat.add(&x).unwrap();
        let mut shards = IndexShards::new(d, metric, ShardIds::Sequential);
        for _ in 0..3 {
            shards
                .add_shard(Box::new(IndexFlat::new(d, metric).unwrap()))
                .unwrap();
        }
        shards.add(&x[..77 * d]).unwrap();
        shards.add(&x[77 * d..]).unwrap();
        let indexes: Vec<(&str, Box<dyn Index>, Vec<Idx>)> = vec![
            ("flat", Box::new(flat), row_ids.clone()),
            ("shards", Box::new(shards), row_ids.clone()),
            (
                "idmap",
                {
                    let mut m = IndexIdMap::new(IndexFlat::new(d, metric).unwrap());
                    let ids: Vec<Idx> = (0..nb as Idx).map(|i| (i * 7) % nb as Idx).collect();
                    m.add_with_ids(&x, &ids).unwrap();
                    Box::new(m)
                },
                (0..nb as Idx).map(|i| (i * 7) % nb as Idx).collect(),
            ),
        ];
        for (name, mut index, ids) in indexes {
            for (sname, sel) in selectors(nb as Idx) {
                let what = format!("{name} {metric} {sname}");
                let kept: Vec<Idx> = ids.iter().copied().filter(|&i| sel.is_member(i)).collect();
                let kept_items: Vec<(Idx, &[f32])> = items(&x, d, &ids)
                    .into_iter()
                    .filter(|(i, _)| sel.is_member(*i))
                    .collect();
                let params = SearchParams::default().with_selector(sel.as_ref());
                let res = index.search_with(&q, k, &params).unwrap();
                for i in 0..nq {
                    let want = brute(metric, &q[i * d..][..d], &kept_items, k);
                    assert_row(metric, res.distances_of(i), res.labels_of(i), &want, &what);
                }
                // Range search with a radius that keeps roughly a third of everything.
                let all = brute(metric, &q[..d], &items(&x, d, &ids), nb);
                // Midway between two distances, so rounding cannot decide membership.
                let radius = 0.5 * (all[nb / 3].0 + all[nb / 3 + 1].0);
                let rr = index.range_search_with(&q, radius, &params).unwrap();
                for i in 0..nq {
                    let (labels, dists) = rr.query(i);
                    let mut got: Vec<Idx> = labels.to_vec();
                    got.sort();
                    let mut want: Vec<Idx> = kept_items
                        .iter()
                        .filter(|(_, v)| {
                            metric.is_better(distance(metric, &q[i * d..][..d], v).unwrap(), radius)
                        })
                        .map(|(id, _)| *id)
                        .collect();
                    want.sort();
                    assert_eq!(got, want, "{what} range q{i}");
                    assert!(dists.iter().all(|&v| metric.is_better(v, radius)));
                }
                let _ = kept;
            }
            // Removal with a selector: the removed ids disappear, the rest stay searchable.
            let sel = IdSelectorRange::new(0, 50);
            let expect = ids.iter().filter(|&&i| sel.is_member(i)).count();
            let before = index.ntotal();
            assert_eq!(index.remove_ids(&sel).unwrap(), expect, "{name}");
            assert_eq!(index.ntotal(), before - expect);
            let res = index.search(&q, nb).unwrap();
            if name != "flat" {
                // Flat renumbers the rows after a removal (as Faiss); the others keep ids.
                assert!(
                    res.labels.iter().all(|&l| l == -1 || l >= 50),
                    "{name}: removed id returned"
                );
            }
            assert_eq!(
                res.labels_of(0).iter().filter(|&&l| l >= 0).count(),
                nb - expect
            );
            assert_eq!(index.remove_ids(&IdSelectorBatch::new([])).unwrap(), 0);
        }
    }
}

#[test]
fn flat_remove_shifts_ids_and_reconstructs() {
    let d = 3;
    let x = data(10, d, 5);
    let mut index = IndexFlat::new_l2(d).unwrap();
    index.add(&x).unwrap();
    assert_eq!(index.reconstruct(4).unwrap(), &x[12..15]);
    assert_eq!(index.reconstruct_n(2, 3).unwrap(), &x[6..15]);
    assert_eq!(index.remove_ids(&IdSelectorBatch::new([0, 5])).unwrap(), 2);
    // Row 1 became row 0; row 6 became row 4 (ids shift, as Faiss).
    assert_eq!(index.reconstruct(0).unwrap(), &x[3..6]);
    assert_eq!(index.reconstruct(4).unwrap(), &x[18..21]);
    assert!(matches!(index.reconstruct(8), Err(Error::IdNotFound(8))));
    assert!(index.reconstruct(-1).is_err());
    assert!(index.reconstruct_n(7, 2).is_err());
    assert!(index.reconstruct_n(i64::MAX, 2).is_err());
    index.reset().unwrap();
    assert_eq!(index.ntotal(), 0);
}

#[test]
fn bad_input_gives_errors_and_changes_nothing() {
    let d = 4;
    let mut index = IndexFlat::new_l2(d).unwrap();
    assert!(IndexFlat::new_l2(0).is_err());
    assert!(IndexFlat::new(d, MetricType::Lp(-1.0)).is_err());
    assert!(IndexFlat::new(d, MetricType::Lp(f32::NAN)).is_err());
    // Search on an empty index: all slots missing.
    let r = index.search(&[0.0; 4], 3).unwrap();
    assert_eq!(r.labels, vec![-1; 3]);
    assert!(r.distances.iter().all(|v| *v == f32::INFINITY));
    index.add(&data(5, d, 1)).unwrap();
    let e = index.add(&[1.0; 6]).unwrap_err();
    assert!(matches!(e, Error::DimensionMismatch { .. }), "{e}");
    let e = index
        .add(&[1.0, f32::NAN, 0.0, 0.0])
        .unwrap_err()
        .to_string();
    assert!(e.contains("non-finite"), "{e}");
    assert!(index.add(&[f32::INFINITY, 0.0, 0.0, 0.0]).is_err());
    assert_eq!(index.ntotal(), 5, "failed adds store nothing");
    index.add(&[]).unwrap();
    assert_eq!(index.ntotal(), 5, "adding nothing is a no-op");
    assert!(index.search(&[0.0; 3], 1).is_err());
    assert!(index.search(&[0.0; 4], 0).is_err());
    assert!(index.search(&[f32::NAN, 0.0, 0.0, 0.0], 1).is_err());
    assert!(index.range_search(&[f32::NAN, 0.0, 0.0, 0.0], 1.0).is_err());
    assert!(index.range_search(&[0.0; 4], f32::NAN).is_err());
    assert!(index.train(&[]).is_err());
    assert!(index.add_with_ids(&[0.0; 4], &[1]).is_err());
    assert!(index.set_param("nprobe", 4.0).is_err());
    // k > ntotal pads with -1 and the worst value.
    let r = index.search(&[0.0; 4], 8).unwrap();
    assert_eq!(&r.labels[5..], &[-1, -1, -1]);
    assert!(r.labels[..5].iter().all(|&l| l >= 0));
    // A k no memory can hold is an error, not an abort.
    let e = index
        .search(&[0.0; 4], usize::MAX / 4)
        .unwrap_err()
        .to_string();
    assert!(e.contains("smaller k"), "{e}");
    let mut shards = IndexShards::new(d, MetricType::L2, ShardIds::Sequential);
    shards.add_shard(Box::new(index.clone())).unwrap();
    assert!(shards.search(&[0.0; 4], usize::MAX / 4).is_err());
    // No queries: an empty result.
    assert_eq!(index.search(&[], 3).unwrap().nq, 0);
    assert_eq!(index.range_search(&[], 1.0).unwrap().nq(), 0);
    // The inner product fills missing slots with -inf.
    let mut ip = IndexFlat::new_ip(d).unwrap();
    ip.add(&[1.0; 4]).unwrap();
    let r = ip.search(&[1.0; 4], 2).unwrap();
    assert_eq!(r.labels, vec![0, -1]);
    assert_eq!(r.distances[1], f32::NEG_INFINITY);
}

#[test]
fn idmap_and_idmap2() {
    let d = 5;
    let x = data(30, d, 7);
    let ids: Vec<Idx> = (0..30).map(|i| 1000 + 10 * i).collect();
    let mut m = IndexIdMap::new(IndexFlat::new_l2(d).unwrap());
    assert!(m.add(&x).is_err());
    assert!(m.add_with_ids(&x, &ids[..29]).is_err());
    assert!(m.add_with_ids(&x[..d], &[-3]).is_err());
    assert!(m.add_with_ids(&x[..d], &[1]).map(|_| ()).is_ok());
    m.reset().unwrap();
    m.add_with_ids(&x, &ids).unwrap();
    let r = m.search(&x[7 * d..8 * d], 1).unwrap();
    assert_eq!(r.labels, vec![1070]);
    assert!(m.reconstruct(1070).is_err());
    assert_eq!(m.description(), "IDMap,Flat");
    assert!(
        IndexIdMap::try_new({
            let mut f = IndexFlat::new_l2(d).unwrap();
            f.add(&x[..d]).unwrap();
            f
        })
        .is_err()
    );

    let mut m2 = IndexIdMap2::new(IndexFlat::new_l2(d).unwrap());
    m2.add_with_ids(&x, &ids).unwrap();
    assert_eq!(m2.reconstruct(1070).unwrap(), &x[7 * d..8 * d]);
    assert!(matches!(m2.reconstruct(5), Err(Error::IdNotFound(5))));
    assert!(
        m2.add_with_ids(&x[..2 * d], &[5, 5]).is_err(),
        "duplicate in batch"
    );
    assert!(
        m2.add_with_ids(&x[..d], &[1000]).is_err(),
        "duplicate of stored id"
    );
    assert_eq!(m2.ntotal(), 30, "rejected batches add nothing");
    assert_eq!(m2.remove_ids(&IdSelectorRange::new(1000, 1050)).unwrap(), 5);
    assert_eq!(
        m2.reconstruct(1070).unwrap(),
        &x[7 * d..8 * d],
        "reverse map follows removal"
    );
    assert!(m2.reconstruct(1010).is_err());
    assert_eq!(m2.reconstruct_n(1070, 1).unwrap(), &x[7 * d..8 * d]);
    let r = m2.search(&x[7 * d..8 * d], 1).unwrap();
    assert_eq!(r.labels, vec![1070]);
}

#[test]
fn shards_match_one_flat() {
    let (d, nb, nq, k) = (12, 1000, 30, 10);
    let x = data(nb, d, 11);
    let q = data(nq, d, 12);
    for metric in [MetricType::L2, MetricType::InnerProduct] {
        let mut flat = IndexFlat::new(d, metric).unwrap();
        flat.add(&x).unwrap();
        let mut seq = IndexShards::new(d, metric, ShardIds::Sequential);
        let mut exp = IndexShards::new(d, metric, ShardIds::Explicit);
        assert!(seq.add(&x).is_err(), "no shards yet");
        for _ in 0..4 {
            seq.add_shard(Box::new(IndexFlat::new(d, metric).unwrap()))
                .unwrap();
            exp.add_shard(Box::new(IndexIdMap2::new(
                IndexFlat::new(d, metric).unwrap(),
            )))
            .unwrap();
        }
        assert!(
            seq.add_shard(Box::new(IndexFlat::new(d + 1, metric).unwrap()))
                .is_err()
        );
        for chunk in x.chunks(333 * d) {
            seq.add(chunk).unwrap();
        }
        let ids: Vec<Idx> = (0..nb as Idx).collect();
        exp.add_with_ids(&x, &ids).unwrap();
        assert!(seq.add_with_ids(&x[..d], &[5]).is_err());
        assert!(exp.add(&x[..d]).is_err());
        let want = flat.search(&q, k).unwrap();
        for s in [&seq, &exp] {
            assert_eq!(s.ntotal(), nb);
            let got = s.search(&q, k).unwrap();
            for i in 0..nq {
                let w: Vec<(f32, Idx)> = want
                    .distances_of(i)
                    .iter()
                    .copied()
                    .zip(want.labels_of(i).iter().copied())
                    .collect();
                assert_row(metric, got.distances_of(i), got.labels_of(i), &w, "shards");
            }
            assert_eq!(s.reconstruct(777).unwrap(), &x[777 * d..778 * d]);
            assert!(s.reconstruct(5000).is_err());
        }
    }
}

#[test]
fn concurrent_searches_share_one_index() {
    let d = 16;
    let x = data(2000, d, 21);
    let mut index = IndexFlat::new_l2(d).unwrap();
    index.add(&x).unwrap();
    let want = index.search(&x[..10 * d], 3).unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..5 {
                    assert_eq!(index.search(&x[..10 * d], 3).unwrap().labels, want.labels);
                }
            });
        }
    });
}
