//! Transform prefixes in `index_factory` (`PCA…`, `OPQ…`, `RR…`, `L2norm`, `Pad…`), as
//! Faiss parses them: they chain in front of the index, an id map wraps everything and a
//! refinement re-ranks with the untransformed vectors.

use fathom_index::{Index, IndexIdMap, IndexPreTransform, IndexRefine, MetricType, index_factory};

fn data(n: usize, d: usize) -> Vec<f32> {
    fathom_tests::uniform_data(n, d, 0x9e37_79b9_7f4a_7c15)
}

#[test]
fn transform_prefixes_build_trainable_searchable_indexes() {
    let d = 16;
    let x = data(2000, d);
    for (desc, want) in [
        ("PCA8,Flat", "PCA8,Flat"),
        ("PCAR8,Flat", "PCAR8,Flat"),
        ("PCAW8,Flat", "PCAW8,Flat"),
        ("PCAWR8,Flat", "PCAWR8,Flat"),
        ("OPQ4,Flat", "OPQ4,Flat"),
        ("OPQ4_8,PQ4", "OPQ4_8,PQ4"),
        ("RR16,Flat", "RR16,Flat"),
        ("L2norm,Flat", "L2norm,Flat"),
        ("PCA12,L2norm,IVF8,PQ4", "PCA12,L2norm,IVF8,PQ4"),
        ("OPQ4,IVF8,PQ4np", "OPQ4,IVF8,PQ4"),
    ] {
        let mut index =
            index_factory(d, desc, MetricType::L2).unwrap_or_else(|e| panic!("{desc}: {e}"));
        assert_eq!(index.description(), want);
        assert!(
            index.downcast_ref::<IndexPreTransform>().is_some(),
            "{desc}"
        );
        index.train(&x).unwrap();
        index.add(&x).unwrap();
        let res = index.search(&x[..5 * d], 3).unwrap();
        assert_eq!(res.labels.len(), 15, "{desc}");
    }
    // Pad keeps every coordinate, so exact search is unchanged.
    let mut pad = index_factory(d, "Pad20,Flat", MetricType::L2).unwrap();
    pad.add(&x).unwrap();
    assert_eq!(pad.search(&x[..3 * d], 1).unwrap().labels, vec![0, 1, 2]);
}

#[test]
fn id_maps_wrap_and_refinement_reranks_outside_the_transforms() {
    let d = 16;
    let x = data(2000, d);
    let ids: Vec<i64> = (0..2000).map(|i| 10 * i).collect();
    let mut index = index_factory(d, "IDMap,PCA8,Flat", MetricType::L2).unwrap();
    assert!(index.downcast_ref::<IndexIdMap>().is_some());
    index.train(&x).unwrap();
    index.add_with_ids(&x, &ids).unwrap();
    assert_eq!(index.search(&x[..d], 1).unwrap().labels, vec![0]);

    let mut refined = index_factory(d, "PCA4,IVF8,Flat,RFlat", MetricType::L2).unwrap();
    let r = refined
        .downcast_ref::<IndexRefine>()
        .expect("refinement outside");
    assert_eq!(r.refine().dim(), d, "re-ranks with the original vectors");
    assert_eq!(r.base().dim(), d);
    refined.train(&x).unwrap();
    refined.add(&x).unwrap();
    refined.set_param("k_factor", 50.0).unwrap();
    refined.set_param("nprobe", 8.0).unwrap();
    // PCA to 4 dimensions alone would miss, the exact re-ranking finds each vector.
    let res = refined.search(&x[..20 * d], 1).unwrap();
    assert_eq!(res.labels, (0..20).collect::<Vec<i64>>());
}

#[test]
fn transforms_the_dimension_cannot_serve_are_errors_naming_the_token() {
    for (desc, needle) in [
        ("PCA32,Flat", "PCA reduces dimensions"),
        ("OPQ5,Flat", "multiple of the number of sub-spaces"),
        ("OPQ4_10,PQ4", "multiple of the number of sub-spaces"),
        ("PCAX8,Flat", "PCA<n>, PCAR<n>"),
        ("Pad8,Flat", "Pad8 pads to at least"),
        ("PCA8,PQ3", "multiple of the number of sub-quantizers M = 3"),
    ] {
        let err = index_factory(16, desc, MetricType::L2)
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{desc}: {err}");
    }
}
