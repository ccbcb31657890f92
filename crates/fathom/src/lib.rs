//! # fathom
//!
//! Similarity search and clustering of dense vectors, as Faiss does it, in Rust: exact and
//! approximate nearest-neighbour search (Flat, IVF, PQ / OPQ / SQ, HNSW, LSH, IMI),
//! k-means and PCA, Faiss's index files (read and written, memory-mapped, on-disk inverted
//! lists), `index_factory` strings and autotuning.
//!
//! This is the facade, the top of the library's layering: it adds nothing of its own but
//! the [`prelude`] and the [`guide`]; every item comes from the layer that owns it
//! ([`core`](fathom_core) ← [`kernels`] ← [`linalg`] ← [`quant`] ← [`invlists`] ← the
//! index types ← [`io`]; [`store`] beside them).
//!
//! ```
//! use fathom::prelude::*;
//!
//! let d = 32;
//! let data: Vec<f32> = (0..20_000 * d).map(|i| ((i * 7919) % 1009) as f32 / 1009.0).collect();
//! let mut index = index_factory(d, "IVF64,SQ8", MetricType::L2)?;
//! index.train(&data)?;
//! index.add(&data)?;
//! index.set_param("nprobe", 8.0)?;
//! let found = index.search(&data[..d], 5)?;
//! assert_eq!(found.labels[0], 0);
//!
//! // Faiss reads this file, and fathom reads Faiss's.
//! let dir = tempfile::tempdir().unwrap();
//! fathom::io::faiss::write_index(&*index, dir.path().join("index.faiss"))?;
//! let again = fathom::io::faiss::read_index(dir.path().join("index.faiss"))?;
//! assert_eq!(again.search(&data[..d], 5)?.labels, found.labels);
//! # Ok::<(), fathom::Error>(())
//! ```
//!
//! Which index to choose for a dataset, and how to tune it: the [`guide`].

pub use fathom_core::check;
pub use fathom_core::{
    Error, IdSelector, IdSelectorAll, IdSelectorAnd, IdSelectorBatch, IdSelectorBitmap,
    IdSelectorNot, IdSelectorOr, IdSelectorRange, IdSelectorTranslated, IdSelectorXor, Idx,
    MetricType, NO_ID, RangeSearchResult, Result, SearchParams, SearchResult,
};
#[cfg(feature = "gpu")]
pub use fathom_gpu as gpu;
pub use fathom_index::{
    Index, IndexAdditiveCoarseQuantizer, IndexAdditiveQuantizer, IndexAqFastScan, IndexFlat,
    IndexHnsw, IndexHnswFlat, IndexHnswPq, IndexHnswSq, IndexIdMap, IndexIdMap2, IndexIvf,
    IndexIvfAdditiveQuantizer, IndexIvfAqFastScan, IndexIvfFlat, IndexIvfPq, IndexIvfPqFastScan,
    IndexIvfPqr, IndexIvfRaBitQ, IndexIvfRaBitQFastScan, IndexIvfResidualQuantizer,
    IndexIvfScalarQuantizer, IndexLocalSearchCoarseQuantizer, IndexLocalSearchQuantizer, IndexLsh,
    IndexPq, IndexPqFastScan, IndexPreTransform, IndexRaBitQ, IndexRaBitQFastScan, IndexRefine,
    IndexReplicas, IndexResidualCoarseQuantizer, IndexResidualQuantizer, IndexScalarQuantizer,
    IndexShards, IndexView, IndexViewMut, MultiIndexQuantizer, Part, ShardIds, autotune, binary,
    hnsw, index_factory, ivf, reverse_index_factory,
};
pub use fathom_invlists as invlists;
pub use fathom_io as io;
pub use fathom_kernels as kernels;
pub use fathom_linalg as linalg;
pub use fathom_quant as quant;
pub use fathom_store as store;

/// What most programs need: the [`Index`] trait, the factory, metrics, results, errors.
pub mod prelude {
    pub use crate::autotune::{Criterion, ParameterSpace, TuneGoal, set_index_parameters, tune};
    pub use crate::{
        Error, Idx, Index, MetricType, Result, SearchParams, SearchResult, index_factory,
        reverse_index_factory,
    };
}

#[doc = include_str!("../guide.md")]
pub mod guide {}
