//! # fathom-linalg
//!
//! Training-time linear algebra, one layer above `fathom-kernels`: k-means with Faiss's
//! semantics ([`Kmeans`]), on which every trained structure of fathom (IVF coarse
//! quantizers, PQ codebooks) stands; the [`VectorTransform`]s that go in front of an index
//! (PCA, random rotation, OPQ, remapping, normalisation, centering); and Faiss's random
//! generator ([`rng`]) so that the same seed picks the same training points and initial
//! centroids as Faiss does.
//!
//! ```
//! use fathom_linalg::Kmeans;
//! // Two well separated blobs in 2-D.
//! let x: Vec<f32> = (0..200).flat_map(|i| {
//!     let c = if i % 2 == 0 { 0.0 } else { 10.0 };
//!     [c + (i % 7) as f32 * 0.01, c - (i % 5) as f32 * 0.01]
//! }).collect();
//! let mut km = Kmeans::new(2, 2).unwrap();
//! km.train(&x).unwrap();
//! let (_, labels) = km.assign(&[0.0, 0.0, 10.0, 10.0]).unwrap();
//! assert_ne!(labels[0], labels[1]);
//! ```

mod kmeans;
mod opq;
mod pca;
pub mod rng;
mod rotation;
pub mod sample;
mod solve;
mod transform;

pub use kmeans::{
    Assigner, ClusterMembers, ClusteringParameters, IterationStats, Kmeans, KmeansEvent,
};
pub use opq::{OpqMatrix, pq_reconstruction, subspace_centroids};
pub use pca::PcaMatrix;
pub use rotation::RandomRotationMatrix;
pub use solve::solve_spd;
pub use transform::{
    CenteringTransform, LinearTransform, NormalizationTransform, RemapDimensionsTransform,
    TransformView, VectorTransform,
};
