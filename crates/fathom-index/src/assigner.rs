//! Any index as the assignment step of k-means.

use fathom_core::{Idx, Result};
use fathom_linalg::Assigner;

use crate::Index;

/// Lets k-means assign points through any [`Index`] (Faiss's `Clustering::train(n, x,
/// index)`), e.g. an approximate index over millions of centroids. The index is reset and
/// re-filled with the centroids at every iteration; with `update_index` it is also
/// re-trained on them.
///
/// ```
/// use fathom_index::{IndexAssigner, IndexFlat};
/// use fathom_linalg::Kmeans;
/// let x: Vec<f32> = (0..400).map(|i| ((i * 7919) % 1000) as f32 / 100.0).collect();
/// let mut flat = IndexFlat::new_l2(4).unwrap();
/// let mut km = Kmeans::new(4, 5).unwrap();
/// km.train_with_assigner(&x, &mut IndexAssigner(&mut flat), &mut |_| {}).unwrap();
/// assert_eq!(km.centroids().len(), 20);
/// ```
pub struct IndexAssigner<'a>(pub &'a mut dyn Index);

impl Assigner for IndexAssigner<'_> {
    fn reset(&mut self) -> Result<()> {
        self.0.reset()
    }
    fn is_trained(&self) -> bool {
        self.0.is_trained()
    }
    fn train(&mut self, centroids: &[f32]) -> Result<()> {
        self.0.train(centroids)
    }
    fn add(&mut self, centroids: &[f32]) -> Result<()> {
        self.0.add(centroids)
    }
    fn assign(&self, x: &[f32]) -> Result<(Vec<f32>, Vec<Idx>)> {
        let r = self.0.search(x, 1)?;
        Ok((r.distances, r.labels))
    }
}
