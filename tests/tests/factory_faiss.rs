//! Faiss's `tests/test_factory.py`, for every string that names an index type fathom has:
//! the same structure (types, parameters, nesting) as faiss-cpu builds. Strings naming
//! types fathom does not have (NSG, RaBitQ, additive quantizers, FlatDedup, spectral
//! hashing) must fail with a message listing what is allowed.

use fathom_index::{
    Index, IndexFlat, IndexHnswFlat, IndexHnswPq, IndexHnswSq, IndexIdMap, IndexIdMap2,
    IndexIvfFlat, IndexIvfPq, IndexIvfPqFastScan, IndexIvfScalarQuantizer, IndexLsh, IndexPq,
    IndexPqFastScan, IndexPreTransform, IndexRefine, IndexScalarQuantizer, MetricType,
    index_factory,
};

fn build(d: usize, s: &str) -> Box<dyn Index> {
    index_factory(d, s, MetricType::L2).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn cast<T: Index>(index: &dyn Index) -> &T {
    index.downcast_ref::<T>().unwrap_or_else(|| {
        panic!(
            "{} is not a {}",
            index.description(),
            std::any::type_name::<T>()
        )
    })
}

#[test]
fn polysemous_training_and_pq_dimension_checks() {
    assert!(
        cast::<IndexIvfPq>(&*build(12, "IVF10,PQ4"))
            .codec()
            .do_polysemous_training
    );
    assert!(
        !cast::<IndexIvfPq>(&*build(12, "IVF10,PQ4np"))
            .codec()
            .do_polysemous_training
    );
    assert!(cast::<IndexPq>(&*build(12, "PQ4")).do_polysemous_training());
    assert!(!cast::<IndexPq>(&*build(12, "PQ4np")).do_polysemous_training());
    let err = index_factory(10, "PQ4", MetricType::L2)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("token 1 (\"PQ4\")") && err.contains("multiple"),
        "{err}"
    );
}

#[test]
fn sq_code_size_and_opq_output() {
    assert_eq!(
        cast::<IndexScalarQuantizer>(&*build(12, "SQ8"))
            .sq()
            .code_size(),
        12
    );
    let pt = build(128, "OPQ16_64,Flat");
    let pt = cast::<IndexPreTransform>(&*pt);
    assert_eq!(pt.transforms()[0].d_out(), 64);
    assert_eq!(pt.index().dim(), 64);
    let pt = build(128, "OPQ16,Flat");
    assert_eq!(cast::<IndexPreTransform>(&*pt).index().dim(), 128);
}

#[test]
fn hnsw_storages_old_and_new_syntax() {
    for s in ["HNSW32", "HNSW32,Flat"] {
        let ix = build(12, s);
        assert_eq!(cast::<IndexHnswFlat>(&*ix).storage().dim(), 12, "{s}");
    }
    for s in ["HNSW32_SQ8", "HNSW32,SQ8"] {
        let ix = build(12, s);
        assert_eq!(
            cast::<IndexHnswSq>(&*ix).storage().sq().code_size(),
            12,
            "{s}"
        );
    }
    let ix = index_factory(12, "HNSW32,SQ8", MetricType::InnerProduct).unwrap();
    assert_eq!(ix.metric(), MetricType::InnerProduct);
    for (s, m, nbits) in [
        ("HNSW32_PQ4", 4, 8),
        ("HNSW,PQ4", 4, 8),
        ("HNSW32,PQ4np", 4, 8),
        ("HNSW32,PQ4x12np", 4, 12),
    ] {
        let ix = build(12, s);
        let pq = cast::<IndexHnswPq>(&*ix).storage().pq();
        assert_eq!((pq.m(), pq.nbits()), (m, nbits), "{s}");
        assert!(!cast::<IndexHnswPq>(&*ix).storage().do_polysemous_training());
    }
    assert_eq!(cast::<IndexHnswPq>(&*build(12, "HNSW,PQ4")).hnsw().m(), 32);
}

#[test]
fn lsh_bits_and_flags() {
    let ix = build(128, "LSHrt");
    let enc = cast::<IndexLsh>(&*ix).encoder();
    assert_eq!(enc.nbits(), 128);
    assert!(enc.rotate_data() && enc.train_thresholds());
    assert_eq!(
        cast::<IndexLsh>(&*build(128, "LSH16rt")).encoder().nbits(),
        16
    );
}

#[test]
fn fast_scan_block_sizes_and_residuals() {
    let ix = build(56, "PQ28x4fs");
    assert_eq!(cast::<IndexPqFastScan>(&*ix).bbs(), 32);
    assert_eq!(cast::<IndexPqFastScan>(&*ix).pq().nbits(), 4);
    assert_eq!(
        cast::<IndexPqFastScan>(&*build(56, "PQ28x4fs_64")).bbs(),
        64
    );
    let ix = index_factory(56, "IVF50,PQ28x4fs_64", MetricType::InnerProduct).unwrap();
    let ivf = cast::<IndexIvfPqFastScan>(&*ix);
    assert_eq!((ivf.codec().bbs(), ivf.nlist()), (64, 50));
    assert!(!ivf.by_residual);
    assert!(ivf.cp.spherical, "IP clustering is spherical, as Faiss");
    assert!(cast::<IndexIvfPqFastScan>(&*build(56, "IVF50,PQ28x4fsr_64")).by_residual);
    assert!(cast::<IndexIvfPqFastScan>(&*build(50, "IVF1000,PQ25x4fsr")).by_residual);
    let ix = build(56, "PQ28x4fs,RFlat");
    assert_eq!(cast::<IndexRefine>(&*ix).k_factor, 1.0);
    for bad in [
        "PQ28x4fs_48",
        "PQ28x4fs_0",
        "IVF50,PQ28x4fs_",
        "PQ28x4fs_64x",
    ] {
        assert!(index_factory(56, bad, MetricType::L2).is_err(), "{bad}");
    }
}

#[test]
fn parenthesised_quantizers() {
    let ix = build(50, "IVF32(PQ25),Flat");
    let q = cast::<IndexIvfFlat>(&*ix).quantizer();
    assert_eq!(cast::<IndexPq>(q).pq().m(), 25);

    let ix = build(50, "PCA30,IVF32(PQ15),Flat");
    let ivf = cast::<IndexIvfFlat>(cast::<IndexPreTransform>(&*ix).index().as_ref());
    let q = cast::<IndexPq>(ivf.quantizer());
    assert_eq!((q.pq().m(), q.dim()), (15, 30));

    let ix = build(50, "IVF1000(IVF20,SQ4,Refine(SQ8)),Flat");
    let q = cast::<IndexRefine>(cast::<IndexIvfFlat>(&*ix).quantizer());
    assert_eq!(
        cast::<IndexScalarQuantizer>(q.refine()).sq().code_size(),
        50
    );
    assert_eq!(q.base().description(), "IVF20,SQ4");

    let ix = build(123, "IVF100(LSHr),Flat");
    assert!(cast::<IndexIvfFlat>(&*ix).quantizer().is::<IndexLsh>());
}

#[test]
fn refinement_outside_the_transforms() {
    let ix = build(50, "IVF32,Flat,Refine(PQ25x12)");
    let rf = cast::<IndexPq>(cast::<IndexRefine>(&*ix).refine());
    assert_eq!((rf.pq().m(), rf.pq().nbits()), (25, 12));
    let ix = build(50, "PCA32,IVF32,Flat,Refine(PQ25x12)");
    let r = cast::<IndexRefine>(&*ix);
    assert_eq!(cast::<IndexPq>(r.refine()).pq().m(), 25);
    assert_eq!(
        r.refine().dim(),
        50,
        "the refinement sees the original vectors"
    );
    assert!(r.base().is::<IndexPreTransform>());

    let ix = build(123, "LSHrt,Refine(Flat)");
    let enc = cast::<IndexLsh>(cast::<IndexRefine>(&*ix).base()).encoder();
    assert!(enc.rotate_data() && enc.train_thresholds());
    assert!(cast::<IndexRefine>(&*build(123, "Flat,RFlat")).k_factor >= 1.0);
}

#[test]
fn transforms_ivf_and_id_maps() {
    let ix = build(123, "PCAR100,L2Norm,PCAW50,LSHr");
    assert_eq!(cast::<IndexPreTransform>(&*ix).transforms().len(), 3);
    assert!(ix.description().starts_with("PCAR100,L2norm,PCAW50,"));
    assert!(build(123, "IVF456,Flat").is::<IndexIvfFlat>());
    assert_eq!(
        cast::<IndexIvfFlat>(&*build(123, "IVF3k,Flat")).nlist(),
        3072
    );
    assert_eq!(
        cast::<IndexIvfFlat>(&*build(123, "IVF1M,Flat")).nlist(),
        1 << 20
    );
    let ix = build(123, "IVF1M_HNSW,Flat");
    let ivf = cast::<IndexIvfFlat>(&*ix);
    assert_eq!(ivf.nlist(), 1 << 20);
    assert_eq!(cast::<IndexHnswFlat>(ivf.quantizer()).hnsw().m(), 32);
    assert!(build(123, "Flat,IDMap").is::<IndexIdMap>());
    assert!(build(123, "Flat,IDMap2").is::<IndexIdMap2>());
    assert!(build(123, "IDMap2,Flat").is::<IndexIdMap2>());
    let ix = build(12, "PCAR8,IVF10,PQ4");
    assert!(cast::<IndexPreTransform>(&*ix).index().is::<IndexIvfPq>());
}

#[test]
fn id_map_over_refined_fast_scan_takes_ids_not_plain_adds() {
    let mut ix = build(8, "IDMap,PQ4x4fs,RFlat");
    let r = cast::<IndexRefine>(cast::<IndexIdMap>(&*ix).inner().as_ref());
    assert!(r.base().is::<IndexPqFastScan>());
    assert!(r.refine().is::<IndexFlat>());
    let x = fathom_tests::uniform_data(64, 8, 3);
    ix.train(&x).unwrap();
    let ids: Vec<i64> = (100..164).collect();
    ix.add_with_ids(&x, &ids).unwrap();
    assert_eq!(ix.ntotal(), 64);
    let hit = ix.search(&x[8..16], 1).unwrap();
    assert_eq!(hit.labels[0], 101);
}

#[test]
fn parenthesised_quantizers_train_and_search() {
    let d = 16;
    let x = fathom_tests::uniform_data(4000, d, 11);
    for s in [
        "IVF64(PQ4x4fs),Flat",
        "IVF32(IVF4,SQ8,RFlat),Flat",
        "IVF32_HNSW16,SQ8",
    ] {
        let mut ix = build(d, s);
        ix.train(&x).unwrap_or_else(|e| panic!("{s}: {e}"));
        ix.add(&x).unwrap();
        ix.set_param("nprobe", 32.0).unwrap();
        let r = ix.search(&x[..50 * d], 1).unwrap();
        let found = r
            .labels
            .iter()
            .enumerate()
            .filter(|&(i, &l)| l == i as i64)
            .count();
        assert!(found >= 45, "{s}: {found} of 50 find themselves");
    }
    let ix = build(d, "IVF64(PQ4x4fs),Flat");
    assert!(ix.is::<IndexIvfScalarQuantizer>() || ix.is::<IndexIvfFlat>());
}

#[test]
fn unknown_types_and_malformed_strings_say_what_is_allowed() {
    for (s, wants) in [
        ("NSG64", "expected"),
        ("IVF65536_NSG64,Flat", "HNSW"),
        ("IVF10,FlatDedup", "expected"),
        ("RaBitQfs0", "expected"),
        ("IVF256,RaBitQ4fs", "expected"),
        ("LSQ4x4fs", "2×4-bit norm"),
        ("RQ4x4fsr", "expected"),
        ("RQ8x8_Nfoo", "expected"),
        ("IVF16(Flat,Flat", "parenthes"),
        ("IVF16(Flat)x,Flat", "parenthes"),
        ("IVF0,Flat", "0"),
        ("IVF16,PQ5", "token 2 (\"PQ5\")"),
        ("OPQ16,IVF16,PQ15", "token 1 (\"OPQ16\")"),
        ("PCA8,IVF16,Flat,Refine(PQ5)", "token 4"),
        ("PCA20,Flat", "token 1"),
    ] {
        let err = index_factory(12, s, MetricType::L2)
            .map(|ix| ix.description())
            .expect_err(s)
            .to_string();
        assert!(err.contains(wants), "{s}: {err}");
        assert!(
            err.contains(&format!("{s:?}")),
            "{s}: the message quotes the string: {err}"
        );
    }
}
