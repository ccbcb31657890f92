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

#[test]
fn distance_tables_of_the_wrong_size_are_errors() {
    use fathom_quant::ProductQuantizer;
    let (d, m) = (8, 2);
    let mut pq = ProductQuantizer::new(d, m, 4).unwrap();
    let mut table = vec![0.0; m * 16];
    // Untrained first, then every wrong length.
    assert!(
        pq.compute_distance_table(MetricType::L2, &[0.0; 8], &mut table)
            .is_err()
    );
    pq.train(&data(400, d)).unwrap();
    pq.compute_distance_table(MetricType::L2, &[0.0; 8], &mut table)
        .unwrap();
    let e = pq
        .compute_distance_table(MetricType::L2, &[0.0; 7], &mut table)
        .unwrap_err();
    assert!(e.to_string().contains("query of 8 floats"), "{e}");
    assert!(
        pq.compute_distance_table(MetricType::L2, &[0.0; 8], &mut table[..5])
            .is_err()
    );

    let mut lut = vec![0u8; fathom_quant::fastscan::packed_nsq(m) * 16];
    fathom_quant::fastscan::quantize_lut(&table, m, &mut lut).unwrap();
    assert!(fathom_quant::fastscan::quantize_lut(&table[..16], m, &mut lut).is_err());
    assert!(fathom_quant::fastscan::quantize_lut(&table, m, &mut lut[..3]).is_err());

    let e = fathom_kernels::codes::hamming::distance(&[1, 2, 3], &[1]).unwrap_err();
    assert!(e.to_string().contains("3 and 1 bytes"), "{e}");
}

/// A coarse quantizer that finds centroids but cannot hand them back.
struct NoReconstruct(IndexFlat);

impl Index for NoReconstruct {
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn ntotal(&self) -> usize {
        self.0.ntotal()
    }
    fn metric(&self) -> MetricType {
        self.0.metric()
    }
    fn add(&mut self, x: &[f32]) -> fathom_index::Result<()> {
        self.0.add(x)
    }
    fn search_with(
        &self,
        q: &[f32],
        k: usize,
        p: &fathom_index::SearchParams<'_>,
    ) -> fathom_index::Result<fathom_index::SearchResult> {
        self.0.search_with(q, k, p)
    }
    fn reset(&mut self) -> fathom_index::Result<()> {
        self.0.reset()
    }
    fn description(&self) -> String {
        "NoReconstruct".into()
    }
    fn view(&self) -> fathom_index::IndexView<'_> {
        fathom_index::IndexView::Other
    }
}

#[test]
fn residuals_without_centroids_are_errors_not_zeros() {
    // The index encodes residuals but its quantizer cannot reconstruct centroids: training
    // and adding used to subtract zeros and store wrong codes silently.
    use fathom_index::ivf::{IndexIvf, IvfFlat};
    let d = 4;
    let q = NoReconstruct(IndexFlat::new(d, MetricType::L2).unwrap());
    let mut ivf =
        IndexIvf::with_codec(Box::new(q), 4, MetricType::L2, IvfFlat::new(d), true).unwrap();
    let x = data(200, d);
    let e = ivf.train(&x).unwrap_err();
    assert!(e.to_string().contains("centroid of list"), "{e}");
    assert!(ivf.add(&x).is_err());
    assert_eq!(ivf.ntotal(), 0);
}
