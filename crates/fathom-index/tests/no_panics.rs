//! Public calls that used to panic on inputs they accept: each gives an answer or an
//! error now (issue 31's list, found by reading).

use fathom_index::hnsw::Hnsw;
use fathom_index::{Index, IndexFlat, IndexHnsw, IndexIdMap, IndexIvfFlat, MetricType};

fn data(n: usize, d: usize) -> Vec<f32> {
    (0..n * d)
        .map(|i| ((i * 37 % 101) as f32) / 101.0)
        .collect()
}

#[test]
fn an_hnsw_graph_without_upper_levels_describes_itself() {
    // Two entries: layer 0 only. It passes the graph's checks; m() read a third entry.
    let n = 3;
    let g = Hnsw::from_parts(
        vec![1.0],
        vec![0, 4],
        vec![1; n],
        (0..=n as u64).map(|i| i * 4).collect(),
        vec![1, 2, -1, -1, 0, 2, -1, -1, 0, 1, -1, -1],
        0,
        0,
        40,
        16,
    )
    .unwrap();
    assert_eq!(
        g.m(),
        2,
        "M is half the layer-0 width when no upper layer says"
    );
    let mut storage = IndexFlat::new(2, MetricType::L2).unwrap();
    storage.add(&data(n, 2)).unwrap();
    let index = IndexHnsw::from_parts(g, storage).unwrap();
    assert!(index.description().contains("HNSW"));
    let _ = format!("{index:?}");
    let r = index.search(&[0.0, 0.0], 2).unwrap();
    assert_eq!(r.labels.len(), 2);
}

#[test]
fn an_id_map_over_a_non_empty_index_numbers_its_vectors() {
    let mut flat = IndexFlat::new(2, MetricType::L2).unwrap();
    flat.add(&data(5, 2)).unwrap();
    let mut m = IndexIdMap::new(flat);
    assert_eq!(m.ntotal(), 5);
    let r = m.search(&data(5, 2)[4..6], 1).unwrap();
    assert_eq!(
        r.labels,
        vec![2],
        "the wrapped vectors keep their positions as ids"
    );
    m.add_with_ids(&[9.0, 9.0], &[100]).unwrap();
    assert_eq!(m.search(&[9.0, 9.0], 1).unwrap().labels, vec![100]);
}

#[test]
fn preassigned_searches_check_the_coarse_distances() {
    let d = 2;
    let q = IndexFlat::new(d, MetricType::L2).unwrap();
    let mut ivf = IndexIvfFlat::new(Box::new(q), 4, MetricType::L2).unwrap();
    let x = data(200, d);
    ivf.train(&x).unwrap();
    ivf.add(&x).unwrap();
    let queries = &x[..2 * d];
    let mut coarse = ivf.probe(queries, 2).unwrap();
    coarse.distances.truncate(1);
    let params = fathom_index::SearchParams::default();
    let e = ivf
        .search_preassigned(queries, 3, &coarse, &params)
        .unwrap_err();
    assert!(e.to_string().contains("coarse distances"), "{e}");
    let e = ivf
        .range_search_preassigned(queries, 1.0, &coarse, &params)
        .unwrap_err();
    assert!(e.to_string().contains("coarse distances"), "{e}");
}

#[test]
fn an_id_map_whose_index_returns_unknown_rows_is_an_error() {
    // What a crafted IxMp record gives: an IVF index storing ids ≥ its ntotal under an id
    // map of ntotal entries.
    let d = 2;
    let q = IndexFlat::new(d, MetricType::L2).unwrap();
    let mut ivf = IndexIvfFlat::new(Box::new(q), 2, MetricType::L2).unwrap();
    let x = data(50, d);
    ivf.train(&x).unwrap();
    let stored: Vec<i64> = (0..50).map(|i| i * 1000).collect();
    ivf.add_with_ids(&x, &stored).unwrap();
    let ids: Vec<i64> = (0..50).collect();
    let m = IndexIdMap::from_parts(Box::new(ivf) as Box<dyn Index>, ids).unwrap();
    let e = m.search(&x[..d], 3).unwrap_err();
    assert!(e.to_string().contains("row"), "{e}");
    assert!(m.range_search(&x[..d], 10.0).is_err());
}
