//! IndexPreTransform: transforms that preserve distances give the same neighbours as the
//! plain index; the chain trains in order and reverses where it can.

use fathom_index::{Error, Index, IndexFlat, IndexIdMap2, IndexPreTransform, MetricType};
use fathom_linalg::{
    CenteringTransform, NormalizationTransform, PcaMatrix, RandomRotationMatrix, VectorTransform,
};

fn data(n: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..n * d)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 * 4.0
        })
        .collect()
}

#[test]
fn distance_preserving_transforms_give_the_same_neighbours() {
    let (d, nb, nq, k) = (8, 500, 20, 5);
    let x = data(nb, d, 1);
    let q = data(nq, d, 2);
    let mut flat = IndexFlat::new_l2(d).unwrap();
    flat.add(&x).unwrap();
    let want = flat.search(&q, k).unwrap();
    let transforms: Vec<Box<dyn VectorTransform>> = vec![
        Box::new(PcaMatrix::new(d, d, 0.0, false).unwrap()),
        Box::new(RandomRotationMatrix::new(d, d).unwrap()),
        Box::new(CenteringTransform::new(d).unwrap()),
    ];
    for t in transforms {
        let name = t.description();
        let mut index = IndexPreTransform::new(t, IndexFlat::new_l2(d).unwrap()).unwrap();
        assert!(!index.is_trained(), "{name}: untrained until train()");
        assert!(
            matches!(index.search(&q, k), Err(Error::NotTrained(_))),
            "{name}: untrained search"
        );
        index.train(&x).unwrap();
        index.add(&x).unwrap();
        let got = index.search(&q, k).unwrap();
        assert_eq!(got.labels, want.labels, "{name}");
        for (a, b) in got.distances.iter().zip(&want.distances) {
            assert!((a - b).abs() < 1e-3 * b.max(1.0), "{name}: {a} vs {b}");
        }
        // Orthonormal transforms reverse exactly.
        let back = index.reconstruct(7).unwrap();
        for (a, b) in back.iter().zip(&x[7 * d..8 * d]) {
            assert!((a - b).abs() < 1e-4, "{name}: {a} vs {b}");
        }
        let r = index
            .range_search(&q[..d], want.distances[k - 1] + 1e-3)
            .unwrap();
        assert!(r.query(0).0.len() >= k);
    }
}

#[test]
fn chains_train_in_order_and_describe_themselves() {
    let (d, n) = (6, 300);
    let x = data(n, d, 3);
    let pca = PcaMatrix::new(d, 3, 0.0, false).unwrap();
    let inner = IndexIdMap2::new(IndexFlat::new(3, MetricType::InnerProduct).unwrap());
    let mut index = IndexPreTransform::new(Box::new(pca), inner).unwrap();
    index
        .prepend_transform(Box::new(NormalizationTransform::new(d).unwrap()))
        .unwrap();
    assert!(
        index
            .prepend_transform(Box::new(CenteringTransform::new(d + 1).unwrap()))
            .is_err()
    );
    assert_eq!(index.description(), "L2norm,PCA3,IDMap2,Flat");
    index.train(&x).unwrap();
    let ids: Vec<i64> = (0..n as i64).map(|i| i * 10).collect();
    index.add_with_ids(&x, &ids).unwrap();
    assert_eq!(index.ntotal(), n);
    let r = index.search(&x[..d], 1).unwrap();
    assert_eq!(r.labels[0] % 10, 0);
    // Normalisation loses the norm: reconstruction through it is an error.
    assert!(matches!(index.reconstruct(10), Err(Error::Unsupported(_))));
    assert!(index.search(&x[..d - 1], 1).is_err());
    assert!(index.search(&x[..d], 0).is_err());
    let mismatched = PcaMatrix::new(d, 3, 0.0, false).unwrap();
    assert!(IndexPreTransform::new(Box::new(mismatched), IndexFlat::new_l2(4).unwrap()).is_err());
    assert_eq!(
        index
            .remove_ids(&fathom_core::IdSelectorRange::new(0, 100))
            .unwrap(),
        10
    );
    index.reset().unwrap();
    assert_eq!(index.ntotal(), 0);
}
