//! fathom's HNSW against a faiss-cpu graph on the same data (fixtures written by
//! `tests/fixtures/make_faiss_hnsw.py`): the same level probabilities, the same level drawn
//! for every node (same generator and seed, across two adds), the same entry point; a
//! graph in Faiss's layout loads through `Hnsw::from_parts` and searches as Faiss's does;
//! a one-thread fathom build links nearly the same neighbours as Faiss's.

use std::path::PathBuf;

use fathom_index::hnsw::Hnsw;
use fathom_index::{Index, IndexFlat, IndexHnsw, IndexHnswFlat, MetricType};
use fathom_io::{NpyArray, read_npy};

fn load(name: &str) -> NpyArray {
    read_npy(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/faiss_hnsw")
            .join(name),
    )
    .unwrap()
}

fn f32s(name: &str) -> Vec<f32> {
    match load(name) {
        NpyArray::F32(d) => d.data,
        other => panic!("{name}: {}", other.dtype_name()),
    }
}

fn i32s(name: &str) -> Vec<i32> {
    match load(name) {
        NpyArray::I32(d) => d.data,
        other => panic!("{name}: {}", other.dtype_name()),
    }
}

fn i64s(name: &str) -> Vec<i64> {
    match load(name) {
        NpyArray::I64(d) => d.data,
        other => panic!("{name}: {}", other.dtype_name()),
    }
}

fn one_thread<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(f)
}

#[test]
fn same_levels_probabilities_and_entry_point() {
    let d = 8;
    let x = f32s("x.npy");
    let ours = one_thread(|| {
        let mut ix = IndexHnswFlat::new_flat(d, 16, MetricType::L2).unwrap();
        ix.add(&x[..1200 * d]).unwrap();
        ix.add(&x[1200 * d..]).unwrap();
        ix
    });
    let g = ours.hnsw();
    assert_eq!(g.cum_nneighbor_per_level(), i32s("cum.npy").as_slice());
    for (a, b) in g.assign_probas().iter().zip(f32s("probas.npy")) {
        assert!((*a as f32 - b).abs() <= 1e-7 * b.max(1e-30), "{a} vs {b}");
    }
    assert_eq!(g.levels(), i32s("levels.npy").as_slice());
    let meta = i32s("meta.npy");
    assert_eq!((g.entry_point(), g.max_level()), (meta[0], meta[1]));

    // Same algorithm, same insertion order: layer-0 neighbour sets nearly agree (the
    // order inside a list differs, and near-ties can go either way).
    let offsets = i64s("offsets.npy");
    let neighbors = i32s("neighbors.npy");
    let (mut common, mut total) = (0usize, 0usize);
    for i in 0..2000 {
        let theirs: Vec<i32> = neighbors[offsets[i] as usize..offsets[i] as usize + 32]
            .iter()
            .copied()
            .filter(|&v| v >= 0)
            .collect();
        let mine = g.neighbors_of(i, 0);
        common += mine.iter().filter(|v| theirs.contains(v)).count();
        total += theirs.len().max(mine.len());
    }
    let overlap = common as f64 / total as f64;
    eprintln!("layer-0 neighbour overlap with faiss: {overlap:.4}");
    assert!(overlap >= 0.9, "layer-0 neighbour overlap {overlap}");
}

#[test]
fn faiss_graph_loads_and_searches_like_faiss() {
    let d = 8;
    let x = f32s("x.npy");
    let q = f32s("q.npy");
    let meta = i32s("meta.npy");
    let g = Hnsw::from_parts(
        Hnsw::new(16).unwrap().assign_probas().to_vec(),
        i32s("cum.npy"),
        i32s("levels.npy"),
        i64s("offsets.npy").into_iter().map(|o| o as u64).collect(),
        i32s("neighbors.npy"),
        meta[0],
        meta[1],
        40,
        32,
    )
    .unwrap();
    // The layout round-trips exactly.
    assert_eq!(g.neighbors(), i32s("neighbors.npy"));
    let offsets: Vec<u64> = i64s("offsets.npy").into_iter().map(|o| o as u64).collect();
    assert_eq!(g.offsets(), offsets);
    let mut storage = IndexFlat::new_l2(d).unwrap();
    storage.add(&x).unwrap();
    let mut index = IndexHnsw::from_parts(g, storage).unwrap();
    // Faiss's default level-0 search.
    index.set_param("search_bounded_queue", 1.0).unwrap();
    let res = index.search(&q, 10).unwrap();
    let want = i64s("labels.npy");
    let same = res.labels.iter().zip(&want).filter(|(a, b)| a == b).count();
    eprintln!("labels equal to faiss's: {same} of {}", want.len());
    assert!(
        same * 100 >= want.len() * 99,
        "{same} of {} labels equal",
        want.len()
    );
    // A storage of another size is refused.
    let mut short = IndexFlat::new_l2(d).unwrap();
    short.add(&x[..10 * d]).unwrap();
    assert!(IndexHnsw::from_parts(index.hnsw().clone(), short).is_err());
}
