//! The IVF family against ground truth: brute force, Faiss's accuracy anchors on Faiss's
//! own test data (`get_dataset_2`), exact equivalences (all lists probed = Flat; fast-scan
//! IVF = fast-scan PQ; merge of halves = one index), maintenance operations and bad input.

use fathom_core::{Error, IdSelectorBatch, IdSelectorRange, Idx, MetricType, SearchParams};
use fathom_index::ivf::{DirectMapType, SubsetType};
use fathom_index::{
    Index, IndexFlat, IndexIvfFlat, IndexIvfPq, IndexIvfPqFastScan, IndexIvfScalarQuantizer,
    IndexPqFastScan, MultiIndexQuantizer, index_factory,
};
use fathom_quant::QuantizerType;
use fathom_tests::get_dataset_2;

fn flat_q(d: usize, metric: MetricType) -> Box<dyn Index> {
    Box::new(IndexFlat::new(d, metric).unwrap())
}

/// Number of queries whose true nearest neighbour is among the results.
fn n_ok(labels: &[Idx], k: usize, gt: &[Idx]) -> usize {
    gt.iter()
        .enumerate()
        .filter(|(q, t)| labels[q * k..(q + 1) * k].contains(t))
        .count()
}

fn exact_nn(metric: MetricType, xq: &[f32], xb: &[f32], d: usize) -> Vec<Idx> {
    fathom_kernels::knn(metric, xq, xb, d, 1, None)
        .unwrap()
        .labels
}

#[test]
fn ivf_flat_probing_every_list_is_exact() {
    let d = 24;
    let (xt, xb, xq) = get_dataset_2(d, 2000, 3000, 50);
    for metric in [MetricType::L2, MetricType::InnerProduct] {
        let mut ivf = IndexIvfFlat::new(flat_q(d, metric), 32, metric).unwrap();
        ivf.train(&xt).unwrap();
        ivf.add(&xb).unwrap();
        ivf.nprobe = 32;
        let mut flat = IndexFlat::new(d, metric).unwrap();
        flat.add(&xb).unwrap();
        for k in [1, 10] {
            let a = ivf.search(&xq, k).unwrap();
            let b = flat.search(&xq, k).unwrap();
            assert_eq!(a.labels, b.labels, "{metric:?} k={k}");
            for (x, y) in a.distances.iter().zip(&b.distances) {
                assert!((x - y).abs() <= 1e-3 * y.abs().max(1.0), "{x} vs {y}");
            }
        }
        // nprobe above nlist is clamped.
        ivf.nprobe = 1000;
        assert_eq!(
            ivf.search(&xq, 5).unwrap().labels,
            flat.search(&xq, 5).unwrap().labels
        );
        // Single-query search (parallel over lists) gives the same answer.
        ivf.nprobe = 32;
        let one = ivf.search(&xq[..d], 10).unwrap();
        assert_eq!(one.labels, flat.search(&xq[..d], 10).unwrap().labels);
        // Range search with every list probed equals the exact range search.
        let radius = a_radius(&flat, &xq);
        let ra = ivf.range_search(&xq, radius).unwrap();
        let rb = flat.range_search(&xq, radius).unwrap();
        for q in 0..xq.len() / d {
            let mut a: Vec<Idx> = ra.query(q).0.to_vec();
            let mut b: Vec<Idx> = rb.query(q).0.to_vec();
            a.sort();
            b.sort();
            assert_eq!(a, b, "range query {q}");
        }
    }
}

/// A radius between the 20th and 21st neighbours of the first query, so that float
/// round-off of the two distance paths cannot move a vector across it.
fn a_radius(flat: &IndexFlat, xq: &[f32]) -> f32 {
    let r = flat.search(xq, 21).unwrap().distances;
    (r[19] + r[20]) / 2.0
}

#[test]
fn ivf_pq_anchor_from_faiss() {
    // Faiss test_index.py: IVFPQ(32 lists, PQ8), get_dataset_2(32, 1500, 1000, 200),
    // nprobe 4, k = 10: the true NN is found for > 66% of queries (faiss: 145/200).
    let d = 32;
    let (xt, xb, xq) = get_dataset_2(d, 1500, 1000, 200);
    let gt = exact_nn(MetricType::L2, &xq, &xb, d);
    let mut index = IndexIvfPq::new(flat_q(d, MetricType::L2), 32, 8, 8, MetricType::L2).unwrap();
    index.train(&xt).unwrap();
    index.add(&xb).unwrap();
    index.nprobe = 4;
    let res = index.search(&xq, 10).unwrap();
    let ok = n_ok(&res.labels, 10, &gt);
    assert!(ok > 132, "IVF32,PQ8 nprobe 4: {ok}/200");

    // The same through the factory, with polysemous training.
    let mut f = index_factory(d, "IVF32,PQ8", MetricType::L2).unwrap();
    f.train(&xt).unwrap();
    f.add(&xb).unwrap();
    f.set_param("nprobe", 4.0).unwrap();
    let ok = n_ok(&f.search(&xq, 10).unwrap().labels, 10, &gt);
    assert!(ok > 132, "factory IVF32,PQ8: {ok}/200");
}

#[test]
fn imi_anchor_from_faiss() {
    // Faiss test_index.py: IMI 2x5 + IVFPQ(PQ8), nprobe 100, k = 10: n_ok > 165 of 200.
    let d = 32;
    let (xt, xb, xq) = get_dataset_2(d, 1500, 1000, 200);
    let gt = exact_nn(MetricType::L2, &xq, &xb, d);
    let mut index = index_factory(d, "IMI2x5,PQ8", MetricType::L2).unwrap();
    index.train(&xt).unwrap();
    index.add(&xb).unwrap();
    index.set_param("nprobe", 100.0).unwrap();
    let ok = n_ok(&index.search(&xq, 10).unwrap().labels, 10, &gt);
    assert!(ok > 165, "IMI2x5,PQ8 nprobe 100: {ok}/200");
}

#[test]
fn multi_index_search_is_exact_over_combinations() {
    // d = 8: per-query tables; d = 64: sub-vectors of 32, blocks of queries through GEMMs.
    for d in [8, 64] {
        let nq = 150;
        let (xt, _, xq) = get_dataset_2(d, 2000, 0, nq);
        let mut imi = MultiIndexQuantizer::new(d, 2, 4).unwrap();
        imi.train(&xt).unwrap();
        assert_eq!(imi.ntotal(), 256);
        // Brute force over every combination's reconstruction.
        let all = imi.reconstruct_n(0, 256).unwrap();
        for k in [1, 7] {
            let exact = fathom_kernels::knn(MetricType::L2, &xq, &all, d, k, None).unwrap();
            let got = imi.search(&xq, k).unwrap();
            for (a, b) in got.distances.iter().zip(&exact.distances) {
                assert!(
                    (a - b).abs() <= 1e-3 * b.max(1.0),
                    "d={d} k={k}: {a} vs {b}"
                );
            }
            let same = got
                .labels
                .iter()
                .zip(&exact.labels)
                .filter(|(a, b)| a == b)
                .count();
            assert!(same as f64 >= 0.98 * (nq * k) as f64, "d={d} k={k}: {same}");
        }
        // k = 1 (the assignment shortcut) agrees with the first of k = 5 (Faiss's check).
        let one = imi.search(&xq, 1).unwrap();
        let five = imi.search(&xq, 5).unwrap();
        for q in 0..nq {
            assert_eq!(one.labels[q], five.labels[q * 5], "d={d} query {q}");
        }
        assert!(imi.add(&xq).is_err());
    }
}

#[test]
fn ivf_sq_and_pq_distances_match_reconstructions() {
    let d = 16;
    let (xt, xb, xq) = get_dataset_2(d, 3000, 2000, 20);
    for metric in [MetricType::L2, MetricType::InnerProduct] {
        let mut indexes: Vec<Box<dyn Index>> = vec![
            Box::new(
                IndexIvfScalarQuantizer::new(flat_q(d, metric), 16, QuantizerType::QT8bit, metric)
                    .unwrap(),
            ),
            Box::new(IndexIvfPq::new(flat_q(d, metric), 16, 4, 8, metric).unwrap()),
        ];
        for index in &mut indexes {
            index.train(&xt).unwrap();
            index.add(&xb).unwrap();
            index.set_param("nprobe", 4.0).unwrap();
            let desc = index.description();
            if let fathom_index::IndexViewMut::Ivf(ix) = index.view_mut() {
                ix.make_direct_map(true).unwrap();
            }
            let res = index.search(&xq, 5).unwrap();
            for q in 0..20 {
                for j in 0..5 {
                    let id = res.labels[q * 5 + j];
                    let v = index.reconstruct(id).unwrap();
                    let want =
                        fathom_kernels::distance(metric, &xq[q * d..(q + 1) * d], &v).unwrap();
                    let got = res.distances[q * 5 + j];
                    assert!(
                        (got - want).abs() <= 2e-3 * want.abs().max(1.0),
                        "{desc} {metric:?}: {got} vs {want}"
                    );
                }
            }
        }
    }
}

#[test]
fn ivf_fast_scan_over_all_lists_equals_fast_scan_pq() {
    let d = 16;
    let (xt, xb, xq) = get_dataset_2(d, 3000, 2000, 30);
    for metric in [MetricType::L2, MetricType::InnerProduct] {
        let mut ivf = IndexIvfPqFastScan::new(flat_q(d, metric), 8, 8, metric).unwrap();
        ivf.train(&xt).unwrap();
        ivf.add(&xb).unwrap();
        ivf.nprobe = 8;
        let mut fs = IndexPqFastScan::new(d, 8, metric).unwrap();
        fs.pq_mut()
            .set_centroids(ivf.codec().pq().centroids())
            .unwrap();
        fs.add(&xb).unwrap();
        let a = ivf.search(&xq, 10).unwrap();
        let b = fs.search(&xq, 10).unwrap();
        assert_eq!(a.labels, b.labels, "{metric:?}");
        for (x, y) in a.distances.iter().zip(&b.distances) {
            assert!((x - y).abs() <= 1e-4 * y.abs().max(1.0));
        }
        // Reconstruction unpacks the blocks.
        ivf.make_direct_map(true).unwrap();
        assert_eq!(ivf.reconstruct(17).unwrap(), fs.reconstruct(17).unwrap());
    }
    // With residuals ("r"), recall is at least as good as without on this data.
    let gt = exact_nn(MetricType::L2, &xq, &xb, d);
    let mut plain = index_factory(d, "IVF8,PQ8x4fs", MetricType::L2).unwrap();
    let mut resid = index_factory(d, "IVF8,PQ8x4fsr", MetricType::L2).unwrap();
    let mut oks = Vec::new();
    for ix in [&mut plain, &mut resid] {
        ix.train(&xt).unwrap();
        ix.add(&xb).unwrap();
        ix.set_param("nprobe", 4.0).unwrap();
        oks.push(n_ok(&ix.search(&xq, 10).unwrap().labels, 10, &gt));
    }
    assert!(
        oks[1] + 2 >= oks[0],
        "residual {} vs plain {}",
        oks[1],
        oks[0]
    );
}

fn trained_flat(d: usize, xt: &[f32]) -> IndexIvfFlat {
    let mut ix = IndexIvfFlat::new(flat_q(d, MetricType::L2), 16, MetricType::L2).unwrap();
    ix.train(xt).unwrap();
    ix
}

fn trained_copy(src: &IndexIvfFlat, d: usize) -> IndexIvfFlat {
    let mut q = IndexFlat::new_l2(d).unwrap();
    q.add(&src.quantizer().reconstruct_n(0, src.nlist()).unwrap())
        .unwrap();
    IndexIvfFlat::new(Box::new(q), src.nlist(), MetricType::L2).unwrap()
}

#[test]
fn merge_of_halves_equals_one_index() {
    let d = 16;
    let (xt, xb, xq) = get_dataset_2(d, 2000, 2000, 40);
    let mut whole = trained_flat(d, &xt);
    whole.add(&xb).unwrap();
    whole.nprobe = 4;
    let mut a = trained_copy(&whole, d);
    let mut b = trained_copy(&whole, d);
    a.add(&xb[..1000 * d]).unwrap();
    b.add(&xb[1000 * d..]).unwrap();
    a.merge_from(&mut b, 1000).unwrap();
    a.nprobe = 4;
    assert_eq!(b.ntotal(), 0);
    assert_eq!(a.ntotal(), 2000);
    let ra = a.search(&xq, 10).unwrap();
    let rw = whole.search(&xq, 10).unwrap();
    assert_eq!(ra.labels, rw.labels);
    assert_eq!(ra.distances, rw.distances);

    // Same for fast-scan (block lists) and PQ.
    for desc in ["IVF16,PQ4x4fs", "IVF16,PQ4np", "IVF16,SQ8"] {
        let mut w = index_factory(d, desc, MetricType::L2).unwrap();
        w.train(&xt).unwrap();
        w.add(&xb).unwrap();
        w.set_param("nprobe", 4.0).unwrap();
        let want = w.search(&xq, 10).unwrap();
        let (halves, _) = split_like(&*w, desc, &xt, &xb, d);
        let got = halves.search(&xq, 10).unwrap();
        assert_eq!(got.labels, want.labels, "{desc}");
    }
}

/// Builds the index `desc` twice from the trained state of `w` (training is
/// deterministic), on each half of `xb`, and merges them.
fn split_like(
    _w: &dyn Index,
    desc: &str,
    xt: &[f32],
    xb: &[f32],
    d: usize,
) -> (Box<dyn Index>, usize) {
    fn halves<C: fathom_index::ivf::IvfCodec + 'static>(
        a: &mut Box<dyn Index>,
        b: &mut Box<dyn Index>,
        n: usize,
    ) {
        let b = b.downcast_mut::<fathom_index::IndexIvf<C>>().unwrap();
        let a = a.downcast_mut::<fathom_index::IndexIvf<C>>().unwrap();
        a.merge_from(b, n as Idx).unwrap();
    }
    let n = xb.len() / d;
    let mut a = index_factory(d, desc, MetricType::L2).unwrap();
    let mut b = index_factory(d, desc, MetricType::L2).unwrap();
    a.train(xt).unwrap();
    b.train(xt).unwrap();
    a.add(&xb[..n / 2 * d]).unwrap();
    b.add(&xb[n / 2 * d..]).unwrap();
    if desc.contains("fs") {
        halves::<fathom_index::ivf::IvfPqFastScan>(&mut a, &mut b, n / 2);
    } else if desc.contains("PQ") {
        halves::<fathom_index::ivf::IvfPq>(&mut a, &mut b, n / 2);
    } else {
        halves::<fathom_index::ivf::IvfScalarQuantizer>(&mut a, &mut b, n / 2);
    }
    a.set_param("nprobe", 4.0).unwrap();
    (a, n)
}

#[test]
fn copy_subsets_partition_the_index() {
    let d = 8;
    let (xt, xb, _) = get_dataset_2(d, 1000, 1000, 0);
    let mut src = trained_flat(d, &xt);
    src.add(&xb).unwrap();
    let count = |subset: SubsetType| {
        let mut dst = trained_copy(&src, d);
        let n = src.copy_subset_to(&mut dst, subset).unwrap();
        assert_eq!(n, dst.ntotal());
        dst
    };
    assert_eq!(
        count(SubsetType::IdRange {
            start: 100,
            end: 300
        })
        .ntotal(),
        200
    );
    let mut total = 0;
    for r in 0..3 {
        let dst = count(SubsetType::IdMod {
            modulus: 3,
            remainder: r,
        });
        for l in 0..16 {
            assert!(dst.invlists().ids(l).iter().all(|id| id % 3 == r));
        }
        total += dst.ntotal();
    }
    assert_eq!(total, 1000);
    let a = count(SubsetType::ElementRange { start: 0, end: 500 }).ntotal();
    let b = count(SubsetType::ElementRange {
        start: 500,
        end: 1000,
    })
    .ntotal();
    assert_eq!(a + b, 1000);
    assert!((a as i64 - 500).abs() <= 16, "{a}");
    let f: usize = (0..4)
        .map(|p| count(SubsetType::ListFraction { parts: 4, part: p }).ntotal())
        .sum();
    assert_eq!(f, 1000);
    let lists = count(SubsetType::Lists { start: 0, end: 4 });
    assert_eq!(
        lists.ntotal(),
        (0..4).map(|l| src.invlists().list_size(l)).sum::<usize>()
    );
    let mut dst = trained_copy(&src, d);
    assert!(
        src.copy_subset_to(
            &mut dst,
            SubsetType::IdMod {
                modulus: 0,
                remainder: 0
            }
        )
        .is_err()
    );
    assert!(
        src.copy_subset_to(&mut dst, SubsetType::ListFraction { parts: 2, part: 2 })
            .is_err()
    );
}

#[test]
fn ids_removal_reconstruction_and_updates() {
    let d = 8;
    let (xt, xb, xq) = get_dataset_2(d, 1000, 500, 10);
    let mut ix = trained_flat(d, &xt);
    let ids: Vec<Idx> = (0..500).map(|i| 10_000 + 3 * i).collect();
    ix.set_direct_map_type(DirectMapType::Hashtable).unwrap();
    ix.add_with_ids(&xb, &ids).unwrap();
    ix.nprobe = 16;
    let res = ix.search(&xb[7 * d..8 * d], 1).unwrap();
    assert_eq!(res.labels, vec![10_021]);
    assert_eq!(ix.reconstruct(10_021).unwrap(), xb[7 * d..8 * d].to_vec());
    assert!(matches!(ix.reconstruct(5), Err(Error::IdNotFound(5))));

    // Removal: the removed ids never come back, the others are unchanged.
    let gone = IdSelectorRange::new(10_000, 10_300);
    assert_eq!(ix.remove_ids(&gone).unwrap(), 100);
    assert_eq!(ix.ntotal(), 400);
    let res = ix.search(&xq, 20).unwrap();
    assert!(res.labels.iter().all(|&l| l >= 10_300));
    assert!(ix.reconstruct(10_021).is_err());
    assert_eq!(
        ix.reconstruct(10_300).unwrap(),
        xb[100 * d..101 * d].to_vec()
    );

    // Update moves a vector (possibly to another list) and the map follows.
    let newv = xb[499 * d..500 * d].to_vec();
    ix.update_vectors(&[10_300], &newv).unwrap();
    assert_eq!(ix.reconstruct(10_300).unwrap(), newv);
    assert_eq!(ix.ntotal(), 400);
    assert!(ix.update_vectors(&[1], &newv).is_err());

    // Selector search equals searching the allowed subset exactly.
    let allowed = IdSelectorBatch::new((10_300..10_600).step_by(2));
    let params = SearchParams::default().with_selector(&allowed);
    let res = ix.search_with(&xq, 5, &params).unwrap();
    assert!(res.labels.iter().all(|&l| l < 0 || allowed.is_member_id(l)));

    // Duplicate ids are stored as given; removal takes all of them.
    ix.add_with_ids(&xb[..2 * d], &[42, 42]).unwrap();
    assert_eq!(ix.remove_ids(&IdSelectorBatch::new([42])).unwrap(), 2);

    // Array direct map: sequential ids only, no removal.
    let mut seq = trained_flat(d, &xt);
    seq.add(&xb).unwrap();
    seq.make_direct_map(true).unwrap();
    assert_eq!(seq.reconstruct(123).unwrap(), xb[123 * d..124 * d].to_vec());
    assert!(seq.add_with_ids(&xb[..d], &[9]).is_err());
    assert!(seq.remove_ids(&IdSelectorRange::new(0, 5)).is_err());
    seq.add(&xb[..d]).unwrap();
    assert_eq!(seq.reconstruct(500).unwrap(), xb[..d].to_vec());
    // Without a map, reconstruct says what to do.
    seq.make_direct_map(false).unwrap();
    let msg = seq.reconstruct(1).unwrap_err().to_string();
    assert!(msg.contains("make_direct_map"), "{msg}");
}

/// `reconstruct_n` and `search_and_reconstruct` need no direct map, as in Faiss (a pass
/// over the lists), and agree with per-id reconstruction through one; an id in range
/// that is not stored is an error naming it, where Faiss would hand back an
/// uninitialised row.
#[test]
fn reconstruction_needs_no_direct_map() {
    let d = 8;
    let (xt, xb, _) = get_dataset_2(d, 1000, 300, 1);
    for desc in ["IVF16,Flat", "IVF16,PQ4", "IVF16,SQ8"] {
        let mut ix = index_factory(d, desc, MetricType::L2).unwrap();
        ix.train(&xt).unwrap();
        ix.add(&xb).unwrap();
        let all = ix.reconstruct_n(0, 300).unwrap();
        assert_eq!(all.len(), 300 * d, "{desc}");
        if desc == "IVF16,Flat" {
            assert_eq!(all, xb, "{desc}");
        }
        let part = ix.reconstruct_n(100, 50).unwrap();
        assert_eq!(part, all[100 * d..150 * d].to_vec(), "{desc}");
        assert!(ix.reconstruct_n(0, 0).unwrap().is_empty());
        let msg = ix.reconstruct_n(250, 51).unwrap_err().to_string();
        assert!(msg.contains("out of range") && msg.contains("300"), "{msg}");
        assert!(ix.reconstruct_n(-1, 2).is_err());
        let found = |ix: &dyn Index| {
            let (res, vectors) = ix
                .search_and_reconstruct(&xb[..4 * d], 5, &SearchParams::default())
                .unwrap();
            for (&id, v) in res.labels.iter().zip(vectors.chunks_exact(d)) {
                if id < 0 {
                    assert!(v.iter().all(|x| x.is_nan()));
                } else {
                    assert_eq!(v, &all[id as usize * d..(id as usize + 1) * d], "{desc}");
                }
            }
            res.labels
        };
        let without_map = found(&*ix);
        assert!(without_map.iter().filter(|&&l| l >= 0).count() >= 4);
        // Through a direct map, one id at a time: the same vectors.
        set_direct_map(&mut *ix, true);
        assert_eq!(ix.reconstruct_n(0, 300).unwrap(), all, "{desc}");
        assert_eq!(found(&*ix), without_map);
        set_direct_map(&mut *ix, false);
        // A removed id inside the range is named.
        ix.remove_ids(&IdSelectorBatch::new([120])).unwrap();
        let e = ix.reconstruct_n(100, 50).unwrap_err();
        assert!(matches!(e, Error::IdNotFound(120)), "{desc}: {e}");
        assert_eq!(
            ix.reconstruct_n(121, 20).unwrap(),
            all[121 * d..141 * d].to_vec()
        );
    }
}

fn set_direct_map(index: &mut dyn Index, on: bool) {
    let fathom_index::IndexViewMut::Ivf(ivf) = index.view_mut() else {
        panic!("not an IVF index")
    };
    ivf.make_direct_map(on).unwrap();
}

trait IsMember {
    fn is_member_id(&self, id: Idx) -> bool;
}
impl IsMember for IdSelectorBatch {
    fn is_member_id(&self, id: Idx) -> bool {
        fathom_core::IdSelector::is_member(self, id)
    }
}

#[test]
fn incremental_adds_need_no_retraining() {
    let d = 8;
    let (xt, xb, xq) = get_dataset_2(d, 1000, 1000, 20);
    let mut once = trained_flat(d, &xt);
    once.add(&xb).unwrap();
    let mut steps = trained_flat(d, &xt);
    for chunk in xb.chunks(137 * d) {
        steps.add(chunk).unwrap();
    }
    once.nprobe = 3;
    steps.nprobe = 3;
    assert_eq!(
        once.search(&xq, 10).unwrap().labels,
        steps.search(&xq, 10).unwrap().labels
    );
    assert!(once.imbalance_factor() >= 1.0);
}

#[test]
fn bad_input_is_an_error() {
    let d = 8;
    let (xt, xb, xq) = get_dataset_2(d, 1000, 100, 2);
    let mut ix = IndexIvfFlat::new(flat_q(d, MetricType::L2), 16, MetricType::L2).unwrap();
    assert!(matches!(ix.search(&xq, 1), Err(Error::NotTrained(_))));
    assert!(matches!(ix.add(&xb), Err(Error::NotTrained(_))));
    ix.train(&xt).unwrap();
    ix.add(&xb).unwrap();
    assert!(ix.search(&xq, 0).is_err());
    assert!(ix.search(&xq[..5], 1).is_err());
    assert!(ix.set_param("nprobe", 0.0).is_err());
    assert!(ix.set_param("nprobe", 1.5).is_err());
    assert!(ix.set_param("efSearch", 4.0).is_err());
    ix.nprobe = 0;
    assert!(
        ix.search(&xq, 1)
            .unwrap_err()
            .to_string()
            .contains("nprobe")
    );
    ix.nprobe = 2;
    let n = ix.ntotal();
    assert!(ix.add_with_ids(&xb[..2 * d], &[1]).is_err());
    let mut nan = xb[..d].to_vec();
    nan[3] = f32::NAN;
    assert!(ix.add(&nan).is_err());
    assert_eq!(ix.ntotal(), n, "a failed add stores nothing");
    assert!(IndexIvfFlat::new(flat_q(d, MetricType::L2), 0, MetricType::L2).is_err());
    assert!(IndexIvfFlat::new(flat_q(d, MetricType::L2), 4, MetricType::InnerProduct).is_err());
    assert!(IndexIvfFlat::new(flat_q(d, MetricType::L1), 4, MetricType::L1).is_err());

    // Merges of incompatible indexes name the difference.
    let mut other = IndexIvfFlat::new(flat_q(d, MetricType::L2), 8, MetricType::L2).unwrap();
    let msg = ix.merge_from(&mut other, 0).unwrap_err().to_string();
    assert!(msg.contains("list counts"), "{msg}");
    let mut other = IndexIvfFlat::new(flat_q(4, MetricType::L2), 16, MetricType::L2).unwrap();
    assert!(
        ix.merge_from(&mut other, 0)
            .unwrap_err()
            .to_string()
            .contains("dimensions")
    );
    // Different codec types cannot even be passed: the type system refuses them; the same
    // type with different parameters is caught at run time.
    let mut a = IndexIvfPq::new(flat_q(d, MetricType::L2), 16, 4, 8, MetricType::L2).unwrap();
    let mut b = IndexIvfPq::new(flat_q(d, MetricType::L2), 16, 2, 8, MetricType::L2).unwrap();
    assert!(
        a.merge_from(&mut b, 0)
            .unwrap_err()
            .to_string()
            .contains("codecs")
    );

    // Factory errors point at the token.
    let msg = index_factory(d, "IVF16,LSH", MetricType::L2)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("LSH") && msg.contains("Flat"), "{msg}");
    let msg = index_factory(d, "IVF16x,Flat", MetricType::L2)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("IVF16x"), "{msg}");
}

#[test]
fn pqr_refinement_beats_plain_ivf_pq() {
    let d = 32;
    let (xt, xb, xq) = get_dataset_2(d, 3000, 2000, 200);
    let gt = exact_nn(MetricType::L2, &xq, &xb, d);
    let mut top1 = Vec::new();
    let mut errs = Vec::new();
    for desc in ["IVF32,PQ8np", "IVF32,PQ8+16"] {
        let mut ix = index_factory(d, desc, MetricType::L2).unwrap();
        ix.train(&xt).unwrap();
        ix.add(&xb).unwrap();
        ix.set_param("nprobe", 8.0).unwrap();
        let res = ix.search(&xq, 1).unwrap();
        top1.push(res.labels.iter().zip(&gt).filter(|(a, b)| a == b).count());
        if let Some(pqr) = ix.downcast_ref::<fathom_index::ivf::IndexIvfPqr>() {
            let err: f32 = (0..100)
                .map(|i| {
                    let v = pqr.reconstruct(i).unwrap();
                    let w = pqr.ivf().reconstruct(i).unwrap();
                    let x = &xb[i as usize * d..(i as usize + 1) * d];
                    let e1: f32 = x.iter().zip(&v).map(|(a, b)| (a - b) * (a - b)).sum();
                    let e0: f32 = x.iter().zip(&w).map(|(a, b)| (a - b) * (a - b)).sum();
                    e1 / e0.max(1e-12)
                })
                .sum::<f32>()
                / 100.0;
            errs.push(err);
            assert!(ix.add_with_ids(&xb[..d], &[5]).is_err());
            ix.set_param("k_factor", 8.0).unwrap();
            assert!(ix.set_param("k_factor", 0.5).is_err());
        }
    }
    assert!(top1[1] > top1[0], "PQR {} vs PQ {}", top1[1], top1[0]);
    assert!(
        errs[0] < 0.8,
        "refinement leaves {:.2} of the PQ error",
        errs[0]
    );
    assert!(index_factory(d, "IVF32,PQ8+16", MetricType::InnerProduct).is_err());
}

#[test]
fn selectors_and_parallel_modes_match_brute_force() {
    use fathom_core::IdSelector;
    let d = 16;
    let (xt, xb, xq) = get_dataset_2(d, 2000, 3000, 30);
    let allowed: Vec<Idx> = (0..3000).filter(|i| i % 7 == 3 || i % 11 == 0).collect();
    let sel = IdSelectorBatch::new(allowed.iter().copied());
    let mut sub = Vec::new();
    for &i in &allowed {
        sub.extend_from_slice(&xb[i as usize * d..(i as usize + 1) * d]);
    }
    let exact = fathom_kernels::knn(MetricType::L2, &xq, &sub, d, 10, None).unwrap();
    let want: Vec<Idx> = exact.labels.iter().map(|&j| allowed[j as usize]).collect();
    for desc in ["IVF16,Flat", "IVF16,SQfp16"] {
        let mut ix = index_factory(d, desc, MetricType::L2).unwrap();
        ix.train(&xt).unwrap();
        ix.add(&xb).unwrap();
        ix.set_param("nprobe", 16.0).unwrap();
        let params = SearchParams::default().with_selector(&sel);
        let got = ix.search_with(&xq, 10, &params).unwrap();
        let same = got.labels.iter().zip(&want).filter(|(a, b)| a == b).count();
        assert!(
            same >= want.len() * 98 / 100,
            "{desc}: {same}/{}",
            want.len()
        );
        assert!(got.labels.iter().all(|&l| sel.is_member(l)));
        // Both parallel modes and one-query-at-a-time agree with the batch result.
        let batch = ix.search(&xq, 10).unwrap();
        for mode in [0.0, 1.0] {
            ix.set_param("parallel_mode", mode).unwrap();
            assert_eq!(
                ix.search(&xq, 10).unwrap().labels,
                batch.labels,
                "{desc} mode {mode}"
            );
        }
        for q in 0..3 {
            let one = ix.search(&xq[q * d..(q + 1) * d], 10).unwrap();
            assert_eq!(one.labels, batch.labels[q * 10..(q + 1) * 10].to_vec());
        }
        assert!(ix.set_param("parallel_mode", 7.0).is_err());
    }

    // search_preassigned with the index's own probe equals search.
    let mut ix = IndexIvfFlat::new(flat_q(d, MetricType::L2), 16, MetricType::L2).unwrap();
    ix.train(&xt).unwrap();
    ix.add(&xb).unwrap();
    ix.nprobe = 3;
    let coarse = ix.probe(&xq, 3).unwrap();
    let pre = ix
        .search_preassigned(&xq, 5, &coarse, &SearchParams::default())
        .unwrap();
    assert_eq!(pre.labels, ix.search(&xq, 5).unwrap().labels);
    // max_codes bounds the work: with a tiny budget only the first list is scanned.
    ix.max_codes = 1;
    let capped = ix.search(&xq, 5).unwrap();
    ix.nprobe = 1;
    ix.max_codes = 0;
    assert_eq!(capped.labels, ix.search(&xq, 5).unwrap().labels);
}

#[test]
fn polysemous_threshold_filters_and_keeps_the_best() {
    let d = 32;
    let (xt, xb, xq) = get_dataset_2(d, 3000, 2000, 100);
    // Faiss's test_index_accuracy setting: PQ4x8 (32-bit codes), ht = 20.
    let mut ix = index_factory(d, "IVF16,PQ4", MetricType::L2).unwrap();
    ix.train(&xt).unwrap();
    ix.add(&xb).unwrap();
    ix.set_param("nprobe", 4.0).unwrap();
    let plain = ix.search(&xq, 10).unwrap();
    // A threshold as large as the code keeps every code: results unchanged.
    ix.set_param("ht", 32.0).unwrap();
    assert_eq!(ix.search(&xq, 10).unwrap().labels, plain.labels);
    // A tight threshold drops codes but what passes keeps its exact ADC distance, and
    // after polysemous training most true top-1 results survive (Faiss: ht 20 loses
    // little).
    ix.set_param("ht", 20.0).unwrap();
    let filtered = ix.search(&xq, 10).unwrap();
    let kept = (0..100)
        .filter(|&q| filtered.labels[q * 10] == plain.labels[q * 10])
        .count();
    assert!(kept >= 80, "top-1 kept for {kept}/100 queries");
    for (i, &l) in filtered.labels.iter().enumerate() {
        if let Some(j) = plain.labels[i / 10 * 10..i / 10 * 10 + 10]
            .iter()
            .position(|&p| p == l)
        {
            assert_eq!(filtered.distances[i], plain.distances[i / 10 * 10 + j]);
        }
    }
    assert!(ix.set_param("ht", -1.0).is_err());
}

#[test]
fn ivf_flat_with_residuals_still_searches_exactly() {
    // Faiss's IVF-Flat never encodes residuals, but the field is public: setting it must
    // not change results (per-query and list-major paths).
    let d = 16;
    let (xt, xb, xq) = get_dataset_2(d, 2000, 2000, 40);
    for metric in [MetricType::L2, MetricType::InnerProduct] {
        let mut ix = IndexIvfFlat::new(flat_q(d, metric), 8, metric).unwrap();
        ix.by_residual = true;
        ix.train(&xt).unwrap();
        ix.add(&xb).unwrap();
        ix.nprobe = 8;
        let mut flat = IndexFlat::new(d, metric).unwrap();
        flat.add(&xb).unwrap();
        let want = flat.search(&xq, 5).unwrap();
        assert_eq!(
            ix.search(&xq, 5).unwrap().labels,
            want.labels,
            "{metric:?} batch"
        );
        assert_eq!(
            ix.search(&xq[..d], 5).unwrap().labels,
            want.labels[..5].to_vec(),
            "{metric:?} one query"
        );
    }
}

#[test]
fn large_adds_go_in_blocks_with_continuous_ids() {
    // More rows than one add block (65 536): ids and the direct map continue across blocks.
    let d = 4;
    let n = 140_000;
    let x: Vec<f32> = (0..n * d)
        .map(|i| ((i * 7919) % 10_007) as f32 / 10_007.0)
        .collect();
    let mut ix = IndexIvfFlat::new(flat_q(d, MetricType::L2), 8, MetricType::L2).unwrap();
    ix.train(&x[..20_000 * d]).unwrap();
    ix.make_direct_map(true).unwrap();
    ix.add(&x).unwrap();
    assert_eq!(ix.ntotal(), n);
    for id in [0usize, 65_535, 65_536, 131_072, n - 1] {
        assert_eq!(
            ix.reconstruct(id as Idx).unwrap(),
            x[id * d..(id + 1) * d].to_vec()
        );
    }
    let mut ids: Vec<Idx> = (0..8).flat_map(|l| ix.invlists().ids(l).to_vec()).collect();
    ids.sort_unstable();
    assert!(ids.iter().enumerate().all(|(i, &id)| id == i as Idx));
}

#[test]
fn per_call_nprobe_equals_setting_it_on_the_index() {
    let d = 16;
    let (xt, xb, xq) = get_dataset_2(d, 2000, 3000, 50);
    let mut index = index_factory(d, "IDMap,IVF32,PQ4,RFlat", MetricType::L2).unwrap();
    index.train(&xt).unwrap();
    let ids: Vec<Idx> = (0..3000).map(|i| i * 3).collect();
    index.add_with_ids(&xb, &ids).unwrap();
    for nprobe in [1usize, 4, 32, 1000] {
        let per_call = index
            .search_with(&xq, 5, &SearchParams::default().with_nprobe(nprobe))
            .unwrap();
        let mut tuned = fathom_io::faiss::clone_index(&*index).unwrap();
        tuned.set_param("nprobe", nprobe as f64).unwrap();
        let set = tuned.search(&xq, 5).unwrap();
        assert_eq!(per_call.labels, set.labels, "nprobe {nprobe}");
    }
    let zero = SearchParams::default().with_nprobe(0);
    assert!(index.search_with(&xq, 5, &zero).is_err());
}

#[test]
fn an_id_map_over_an_ivf_index_refuses_removal_instead_of_mismatching_ids() {
    let d = 8;
    let (xt, xb, _) = get_dataset_2(d, 1000, 500, 0);
    let mut index = index_factory(d, "IDMap,IVF8,Flat", MetricType::L2).unwrap();
    index.train(&xt).unwrap();
    let ids: Vec<Idx> = (0..500).map(|i| 1000 + i).collect();
    index.add_with_ids(&xb, &ids).unwrap();
    let before = index.search(&xb[..10 * d], 1).unwrap();
    let err = index
        .remove_ids(&IdSelectorRange::new(1000, 1002))
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err}");
    assert_eq!(index.ntotal(), 500);
    assert_eq!(
        index.search(&xb[..10 * d], 1).unwrap().labels,
        before.labels
    );
    // Over a Flat index, whose ids shift on removal, the id map follows.
    let mut flat = index_factory(d, "IDMap,Flat", MetricType::L2).unwrap();
    flat.add_with_ids(&xb, &ids).unwrap();
    assert_eq!(
        flat.remove_ids(&IdSelectorRange::new(1000, 1002)).unwrap(),
        2
    );
    let r = flat.search(&xb[2 * d..4 * d], 1).unwrap();
    assert_eq!(r.labels, vec![1002, 1003]);
}

#[test]
fn param_reads_back_what_set_param_set_through_wrappers() {
    let d = 16;
    let (xt, _, _) = get_dataset_2(d, 1000, 0, 0);
    for (desc, name, value) in [
        ("IVF16,Flat", "nprobe", 7.0),
        ("IDMap,IVF16,PQ4", "nprobe", 5.0),
        ("IVF16,PQ4", "ht", 12.0),
        ("PCA8,IVF16,SQ8", "max_codes", 300.0),
        ("IVF16_HNSW8,Flat", "quantizer_efSearch", 40.0),
        ("HNSW8", "efSearch", 33.0),
        ("HNSW8", "efConstruction", 50.0),
        ("IVF16,Flat,RFlat", "k_factor_rf", 3.0),
        ("IVF16,PQ4+4", "k_factor", 6.0),
        ("PQ4", "ht", 9.0),
    ] {
        let mut index = index_factory(d, desc, MetricType::L2).unwrap();
        index.train(&xt).unwrap();
        index.set_param(name, value).unwrap();
        assert_eq!(index.param(name), Some(value), "{desc} {name}");
    }
    let flat = index_factory(d, "Flat", MetricType::L2).unwrap();
    assert_eq!(flat.param("nprobe"), None);
}

#[test]
fn flat_merge_appends_and_empties_the_source() {
    let d = 8;
    let (_, xb, xq) = get_dataset_2(d, 0, 300, 10);
    let mut whole = IndexFlat::new_l2(d).unwrap();
    whole.add(&xb).unwrap();
    let mut a = IndexFlat::new_l2(d).unwrap();
    let mut b = IndexFlat::new_l2(d).unwrap();
    a.add(&xb[..100 * d]).unwrap();
    b.add(&xb[100 * d..]).unwrap();
    a.merge_from(&mut b).unwrap();
    assert_eq!((a.ntotal(), b.ntotal()), (300, 0));
    assert_eq!(a.search(&xq, 5).unwrap(), whole.search(&xq, 5).unwrap());
    let mut ip = IndexFlat::new_ip(d).unwrap();
    assert!(a.merge_from(&mut ip).is_err());
    let mut other_d = IndexFlat::new_l2(d + 1).unwrap();
    assert!(a.merge_from(&mut other_d).is_err());
    assert_eq!(a.ntotal(), 300);
}

#[test]
fn list_major_batches_equal_query_by_query_search() {
    // 800 queries probing every one of 16 lists: the list-major path (its slots sized so
    // that k = 1000 splits the batch into blocks of ~350), against the per-query path, with
    // and without a selector, k below and above the lists' sizes; for the two codecs that
    // decode lists (IVF-Flat, and IVF-SQ through the SQ decode kernel: 8-bit, fp16, 6-bit).
    let d = 16;
    let (xt, xb, xq) = get_dataset_2(d, 2000, 3000, 800);
    for metric in [MetricType::L2, MetricType::InnerProduct] {
        let mut ix = IndexIvfFlat::new(flat_q(d, metric), 16, metric).unwrap();
        ix.train(&xt).unwrap();
        ix.add(&xb).unwrap();
        list_major_equals_per_query(&mut ix, &xq, metric);
        for qt in [
            QuantizerType::QT8bit,
            QuantizerType::Fp16,
            QuantizerType::QT6bit,
        ] {
            let mut ix = IndexIvfScalarQuantizer::new(flat_q(d, metric), 16, qt, metric).unwrap();
            ix.train(&xt).unwrap();
            ix.add(&xb).unwrap();
            list_major_equals_per_query(&mut ix, &xq, metric);
        }
    }
}

fn list_major_equals_per_query<C: fathom_index::ivf::IvfCodec + 'static>(
    ix: &mut fathom_index::ivf::IndexIvf<C>,
    xq: &[f32],
    metric: MetricType,
) {
    let what = ix.description();
    ix.nprobe = 16;
    let odd = IdSelectorBatch::new((0..3000).filter(|i| i % 3 != 0));
    for k in [1, 10, 1000] {
        for sel in [None, Some(&odd as &dyn fathom_core::IdSelector)] {
            let params = match sel {
                Some(s) => SearchParams::default().with_selector(s),
                None => SearchParams::default(),
            };
            ix.parallel_mode = fathom_index::ivf::ParallelMode::Auto;
            let batch = ix.search_with(xq, k, &params).unwrap();
            ix.parallel_mode = fathom_index::ivf::ParallelMode::Queries;
            let one = ix.search_with(xq, k, &params).unwrap();
            // Rank by rank the same distances (the matrix product rounds differently
            // from the per-query kernel, so near-ties may swap labels at large k).
            for (a, b) in batch.distances.iter().zip(&one.distances) {
                assert!(
                    (a - b).abs() <= 1e-3 * b.abs().max(1.0),
                    "{what}: {a} vs {b}"
                );
            }
            let mut same = 0;
            for (x, y) in batch.labels.chunks(k).zip(one.labels.chunks(k)) {
                let y: std::collections::HashSet<_> = y.iter().collect();
                same += x.iter().filter(|l| y.contains(l)).count();
            }
            let frac = same as f64 / batch.labels.len() as f64;
            assert!(frac >= 0.995, "{what} {metric:?} k {k}: {frac}");
            if k <= 10 {
                assert_eq!(batch.labels, one.labels, "{what} {metric:?} k {k}");
            }
        }
    }
}

#[test]
fn ivf_params_by_residual_and_quantizer_training() {
    let d = 8;
    let (xt, xb, _) = get_dataset_2(d, 1000, 200, 0);
    let mut ix = IndexIvfFlat::new(flat_q(d, MetricType::L2), 8, MetricType::L2).unwrap();
    assert_eq!(ix.param("by_residual"), Some(0.0));
    assert_eq!(ix.param("quantizer_trains_alone"), Some(0.0));
    ix.set_param("quantizer_trains_alone", 2.0).unwrap();
    assert_eq!(ix.param("quantizer_trains_alone"), Some(2.0));
    assert!(ix.set_param("quantizer_trains_alone", 3.0).is_err());
    ix.set_param("quantizer_trains_alone", 0.0).unwrap();
    // Residuals in an IVF-Flat: searchable, but Faiss's IndexIVFFlat record cannot hold
    // them, so saving is refused rather than writing a file that reads back wrong.
    ix.set_param("by_residual", 1.0).unwrap();
    ix.train(&xt).unwrap();
    ix.add(&xb).unwrap();
    assert_eq!(ix.search(&xb[..d], 1).unwrap().labels, vec![0]);
    let err = fathom_io::faiss::index_to_bytes(&ix)
        .unwrap_err()
        .to_string();
    assert!(err.contains("residuals"), "{err}");
    // Stored codes fix the choice.
    let err = ix.set_param("by_residual", 0.0).unwrap_err().to_string();
    assert!(err.contains("reset"), "{err}");
}

#[test]
fn parts_reach_every_sub_index_and_tune_it_in_place() {
    use fathom_index::{IndexView, Part};
    let d = 16;
    let (xt, xb, _) = get_dataset_2(d, 2000, 500, 0);
    let mut index = index_factory(d, "IDMap,IVF16_HNSW8,Flat", MetricType::L2).unwrap();
    index.train(&xt).unwrap();
    let ivf = index.view().part(Part::Inner).unwrap();
    assert!(matches!(ivf.view(), IndexView::Ivf(_)));
    let q = ivf.view().part(Part::Quantizer).unwrap();
    assert_eq!((q.description().as_str(), q.ntotal()), ("HNSW8", 16));
    assert!(index.view().part(Part::Quantizer).is_none());
    // Tuning a part in place is what the owner then reads.
    let q = index
        .part_mut(Part::Inner)
        .and_then(|i| i.part_mut(Part::Quantizer))
        .unwrap();
    q.set_param("efSearch", 77.0).unwrap();
    assert_eq!(index.param("quantizer_efSearch"), Some(77.0));
    for (desc, part, inner) in [
        ("PCA8,IVF8,Flat", Part::Inner, "IVF8,Flat"),
        ("IVF8,Flat,RFlat", Part::Refine, "Flat"),
        ("HNSW8", Part::Storage, "Flat"),
    ] {
        let mut index = index_factory(d, desc, MetricType::L2).unwrap();
        index.train(&xt).unwrap();
        index.add(&xb).unwrap();
        let p = index.view().part(part).unwrap();
        assert_eq!(p.description(), inner, "{desc}");
        assert_eq!(index.part_mut(part).unwrap().description(), inner, "{desc}");
    }
}

#[test]
fn add_preassigned_stores_rows_in_the_lists_given() {
    let d = 16;
    let (xt, xb, _) = get_dataset_2(d, 2000, 300, 0);
    let mut ix = IndexIvfPq::new(flat_q(d, MetricType::L2), 8, 4, 8, MetricType::L2).unwrap();
    ix.train(&xt).unwrap();
    // Every row into list 3, whatever its nearest centroid: codes are residuals to it.
    let lists = vec![3 as Idx; 300];
    ix.add_preassigned(&xb, &lists, None).unwrap();
    assert_eq!(ix.invlists().list_size(3), 300);
    assert_eq!(ix.ntotal(), 300);
    ix.nprobe = 8;
    let res = ix.search(&xb[..10 * d], 1).unwrap();
    let found = (0..10).filter(|&i| res.labels[i] == i as Idx).count();
    assert!(found >= 8, "only {found} of 10 rows found themselves");
    // A bad list number changes nothing.
    let err = ix
        .add_preassigned(&xb[..d], &[8], None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("out of range"), "{err}");
    assert!(ix.add_preassigned(&xb[..d], &[1, 2], None).is_err());
    assert_eq!(ix.ntotal(), 300);
}

#[test]
fn merge_ondisk_searches_as_one_index_over_every_shard() {
    let d = 16;
    let (xt, xb, xq) = get_dataset_2(d, 2000, 3000, 50);
    let dir = tempfile::tempdir().unwrap();
    let trained = || {
        let mut ix = index_factory(d, "IVF16,Flat", MetricType::L2).unwrap();
        ix.train(&xt).unwrap();
        ix
    };
    let mut whole = trained();
    whole.add(&xb).unwrap();
    let shards: Vec<Box<dyn Index>> = xb
        .chunks(1000 * d)
        .map(|part| {
            let mut s = trained();
            s.add(part).unwrap();
            s
        })
        .collect();
    let refs: Vec<&dyn Index> = shards.iter().map(|s| &**s).collect();
    let mut merged = trained();
    let path = dir.path().join("merged.ivfdata");
    let n = fathom_index::ivf::merge_ondisk(&mut *merged, &refs, &path, true).unwrap();
    assert_eq!((n, merged.ntotal()), (3000, 3000));
    merged.set_param("nprobe", 16.0).unwrap();
    whole.set_param("nprobe", 16.0).unwrap();
    assert_eq!(
        merged.search(&xq, 5).unwrap().labels,
        whole.search(&xq, 5).unwrap().labels
    );
    // Written and read back, the lists stay in the data file.
    let file = dir.path().join("merged.index");
    fathom_io::faiss::write_index(&*merged, &file).unwrap();
    let back = fathom_io::faiss::read_index(&file).unwrap();
    assert_eq!(back.ntotal(), 3000);
    // Refused: a non-empty target, a shard that is not IVF.
    let err = fathom_index::ivf::merge_ondisk(&mut *merged, &refs, &path, true).unwrap_err();
    assert!(err.to_string().contains("empty index"), "{err}");
    let flat = IndexFlat::new(d, MetricType::L2).unwrap();
    let err = fathom_index::ivf::merge_ondisk(&mut *trained(), &[&flat], &path, true).unwrap_err();
    assert!(err.to_string().contains("IVF"), "{err}");
}

#[test]
fn clustering_and_pq_search_parameters_by_name() {
    let d = 16;
    let (xt, _, _) = get_dataset_2(d, 2000, 0, 0);
    let mut ix = IndexIvfFlat::new(flat_q(d, MetricType::L2), 8, MetricType::L2).unwrap();
    ix.set_param("cp.niter", 3.0).unwrap();
    ix.set_param("cp.seed", -5.0).unwrap();
    ix.set_param("cp.spherical", 1.0).unwrap();
    assert_eq!((ix.cp.niter, ix.cp.seed, ix.cp.spherical), (3, -5, true));
    assert_eq!(ix.param("cp.seed"), Some(-5.0));
    assert!(ix.set_param("cp.niter", 0.5).is_err());
    assert!(ix.set_param("cp.seed", f64::NAN).is_err());
    assert!(ix.set_param("cp.nosuch", 1.0).is_err());
    ix.train(&xt).unwrap();
    let mut pq = index_factory(d, "PQ4", MetricType::L2).unwrap();
    assert_eq!(pq.param("search_type"), Some(0.0));
    pq.set_param("search_type", 3.0).unwrap();
    assert_eq!(pq.param("search_type"), Some(3.0));
    let err = pq.set_param("search_type", 2.0).unwrap_err().to_string();
    assert!(err.contains("ST_polysemous"), "{err}");
    assert!(pq.set_param("search_type", 9.0).is_err());
    pq.set_param("do_polysemous_training", 0.0).unwrap();
    assert_eq!(pq.param("do_polysemous_training"), Some(0.0));
}
