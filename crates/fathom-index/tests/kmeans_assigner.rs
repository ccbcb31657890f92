//! k-means through an index: the same centroids as exact assignment with a Flat index, and
//! `update_index` re-trains the assigner at every iteration.

use fathom_index::{
    Index, IndexAssigner, IndexFlat, MetricType, Result, SearchParams, SearchResult,
};
use fathom_linalg::{ClusteringParameters, Kmeans};

fn data(n: usize, d: usize) -> Vec<f32> {
    (0..n * d)
        .map(|i| (((i * 7919) % 1009) as f32 / 100.0) + (i / d % 5) as f32)
        .collect()
}

/// A Flat index that counts how often it is trained.
struct Counting {
    flat: IndexFlat,
    trains: usize,
}

impl Index for Counting {
    fn dim(&self) -> usize {
        self.flat.dim()
    }
    fn ntotal(&self) -> usize {
        self.flat.ntotal()
    }
    fn metric(&self) -> MetricType {
        self.flat.metric()
    }
    fn train(&mut self, x: &[f32]) -> Result<()> {
        self.trains += 1;
        self.flat.train(x)
    }
    fn add(&mut self, x: &[f32]) -> Result<()> {
        self.flat.add(x)
    }
    fn search_with(&self, q: &[f32], k: usize, p: &SearchParams<'_>) -> Result<SearchResult> {
        self.flat.search_with(q, k, p)
    }
    fn reset(&mut self) -> Result<()> {
        self.flat.reset()
    }
    fn description(&self) -> String {
        "Counting".into()
    }
    fn view(&self) -> fathom_index::IndexView<'_> {
        fathom_index::IndexView::Other
    }
}

#[test]
fn index_assignment_matches_exact_and_update_index_retrains() {
    let (d, k) = (6, 8);
    let x = data(900, d);
    let params = ClusteringParameters {
        niter: 7,
        ..Default::default()
    };
    let mut exact = Kmeans::new(d, k).unwrap().with_params(params.clone());
    exact.train(&x).unwrap();
    let mut flat = IndexFlat::new_l2(d).unwrap();
    let mut via = Kmeans::new(d, k).unwrap().with_params(params.clone());
    via.train_with_assigner(&x, &mut IndexAssigner(&mut flat), &mut |_| {})
        .unwrap();
    assert_eq!(via.centroids(), exact.centroids());
    assert_eq!(via.obj(), exact.obj());
    assert_eq!(flat.ntotal(), k, "the index ends holding the centroids");

    let mut counting = Counting {
        flat: IndexFlat::new_l2(d).unwrap(),
        trains: 0,
    };
    let mut km = Kmeans::new(d, k)
        .unwrap()
        .with_params(ClusteringParameters {
            update_index: true,
            ..params.clone()
        });
    km.train_with_assigner(&x, &mut IndexAssigner(&mut counting), &mut |_| {})
        .unwrap();
    assert_eq!(
        counting.trains,
        1 + 7,
        "trained before the first iteration and after each"
    );
    let mut counting = Counting {
        flat: IndexFlat::new_l2(d).unwrap(),
        trains: 0,
    };
    let mut km = Kmeans::new(d, k).unwrap().with_params(params);
    km.train_with_assigner(&x, &mut IndexAssigner(&mut counting), &mut |_| {})
        .unwrap();
    assert_eq!(
        counting.trains, 0,
        "a trained assigner is not re-trained without update_index"
    );
}
