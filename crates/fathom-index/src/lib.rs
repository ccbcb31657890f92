//! # fathom-index
//!
//! The [`Index`] trait and the index types built on it. This crate sits above
//! `fathom-quant` (the codecs), `fathom-linalg` (transforms, k-means), `fathom-kernels`
//! (which computes every distance)
//! and `fathom-core` (the vocabulary);
//! persistence, the CLI and the service sit above it.
//!
//! Index families reach each other through the [`Index`] trait, so a wrapper such as
//! [`IndexIdMap`] or [`IndexShards`] works over any index. Code that must treat each kind
//! on its own (persistence, Python, the CLI) asks [`Index::view`] what an index is and
//! matches on the answer ([`IndexView`]) — one place per type instead of downcasts.
//!
//! | type | what it is | Faiss |
//! |---|---|---|
//! | [`IndexFlat`] | exact search over stored vectors, every metric | `IndexFlat`, `IndexFlatL2`, `IndexFlatIP` |
//! | [`IndexIdMap`] | user-chosen ids over any index | `IndexIDMap` |
//! | [`IndexIdMap2`] | the same, plus reconstruction by id | `IndexIDMap2` |
//! | [`IndexShards`] | several indexes searched in parallel as one | `IndexShards` |
//! | [`IndexReplicas`] | copies of one index sharing each batch of queries | `IndexReplicas` |
//! | [`IndexPreTransform`] | vector transforms (PCA, OPQ, …) in front of any index | `IndexPreTransform` |
//! | [`IndexFlatCodes`] | any [`FlatCodec`]'s codes in one array, searched exhaustively | `IndexFlatCodes` |
//! | [`IndexPq`] | product-quantizer codes: ADC, SDC, Hamming and polysemous search | `IndexPQ` |
//! | [`IndexScalarQuantizer`] | per-dimension 8/6/4-bit, fp16, bf16 codes | `IndexScalarQuantizer` |
//! | [`IndexLsh`] | sign-bit codes searched by Hamming distance | `IndexLSH` |
//! | [`IndexPqFastScan`] | 4-bit PQ in blocks of 32, SIMD shuffle look-ups | `IndexPQFastScan` |
//! | [`IndexRaBitQ`] / [`IndexRaBitQFastScan`] | RaBitQ sign-bit codes (+ extra bits), popcounts / fast-scan tables | `IndexRaBitQ` / `IndexRaBitQFastScan` |
//! | [`IndexRefine`] | any index re-ranked by another (exact with a Flat) | `IndexRefine`, `IndexRefineFlat` |
//! | [`IndexIvfFlat`] | inverted file, full vectors in the lists | `IndexIVFFlat` |
//! | [`IndexIvfPq`] | inverted file, PQ codes of residuals | `IndexIVFPQ` |
//! | [`IndexIvfPqr`] | IVF-PQ re-ranked by a second PQ of the residual error | `IndexIVFPQR` |
//! | [`IndexIvfScalarQuantizer`] | inverted file, scalar-quantized residuals | `IndexIVFScalarQuantizer` |
//! | [`IndexIvfPqFastScan`] | inverted file, 4-bit PQ in fast-scan blocks | `IndexIVFPQFastScan` |
//! | [`IndexIvfRaBitQ`] / [`IndexIvfRaBitQFastScan`] | inverted file, RaBitQ codes relative to the centroids | `IndexIVFRaBitQ` / `IndexIVFRaBitQFastScan` |
//! | [`IndexHnswFlat`] | HNSW graph over full vectors | `IndexHNSWFlat` |
//! | [`IndexHnswSq`] / [`IndexHnswPq`] | HNSW graph over SQ / PQ codes | `IndexHNSWSQ` / `IndexHNSWPQ` |
//! | [`MultiIndexQuantizer`] | inverted multi-index, a coarse quantizer of `2^(M·nbits)` lists | `MultiIndexQuantizer` |
//!
//! ```
//! use fathom_index::{Index, IndexFlat};
//! let mut index = IndexFlat::new_l2(2).unwrap();
//! index.add(&[0.0, 0.0, 1.0, 1.0, 5.0, 5.0]).unwrap();
//! let res = index.search(&[0.9, 0.8], 2).unwrap();
//! assert_eq!(res.labels, vec![1, 0]);
//! ```

mod additive;
mod aq_fastscan;
mod assigner;
pub mod autotune;
pub mod binary;
mod code_scan;
mod factory;
mod fastscan;
mod flat;
mod flat_codes;
pub mod hnsw;
mod idmap;
pub mod ivf;
mod lsh;
mod param_values;
mod pq;
mod pretransform;
mod rabitq;
mod rabitq_fastscan;
mod rcq;
mod refine;
mod replicas;
mod shards;
mod sq;
mod view;

pub use additive::{IndexAdditiveQuantizer, IndexLocalSearchQuantizer, IndexResidualQuantizer};
pub use aq_fastscan::IndexAqFastScan;
pub use assigner::IndexAssigner;
pub use factory::{
    AqShape, AqSpec, BodySpec, CoarseSpec, HnswStorageSpec, IdMapKind, IndexSpec, IvfCodecSpec,
    RefineSpec, StorageSpec, TransformSpec, index_factory, reverse_index_factory,
};
pub use fastscan::IndexPqFastScan;
pub use fathom_core::{
    Error, IdSelector, Idx, MetricType, RangeSearchResult, Result, SearchParams, SearchResult,
};
pub use flat::IndexFlat;
pub use flat_codes::{CodeScorer, FlatCodec, IndexFlatCodes};
pub use hnsw::{IndexHnsw, IndexHnswFlat, IndexHnswPq, IndexHnswSq};
pub use idmap::{IdMapped, IndexIdMap, IndexIdMap2};
pub use ivf::{
    IndexIvf, IndexIvfAdditiveQuantizer, IndexIvfAqFastScan, IndexIvfFlat, IndexIvfPq,
    IndexIvfPqFastScan, IndexIvfPqr, IndexIvfRaBitQ, IndexIvfRaBitQFastScan,
    IndexIvfResidualQuantizer, IndexIvfScalarQuantizer, MultiIndexQuantizer,
};
pub use lsh::IndexLsh;
pub use pq::{IndexPq, PqCodes, PqSearchStats, PqSearchType};
pub use pretransform::IndexPreTransform;
pub use rabitq::{IndexRaBitQ, RaBitQCodes};
pub use rabitq_fastscan::{DEFAULT_FAST_SCAN_QB, IndexRaBitQFastScan, RaBitQPacker};
pub use rcq::{
    IndexAdditiveCoarseQuantizer, IndexLocalSearchCoarseQuantizer, IndexResidualCoarseQuantizer,
};
pub use refine::IndexRefine;
pub use replicas::IndexReplicas;
pub use shards::{IndexShards, ShardIds, merge_results};
pub use sq::IndexScalarQuantizer;
pub use view::{IndexView, IndexViewMut, Part};

/// A searchable collection of vectors, fathom's counterpart of `faiss::Index`.
///
/// Vectors are flat row-major `&[f32]` slices whose length is a multiple of
/// [`Index::dim`]. Search takes `&self` and may run from any number of threads at once;
/// everything that changes the index takes `&mut self`. Ids are [`Idx`]; a result slot
/// with no vector has label `-1`.
///
/// Input is validated: a wrong length, `k = 0`, non-finite values in vectors or queries,
/// an untrained index, or an unsupported operation each give an [`Error`], never a panic.
/// Adding zero vectors is a no-op and searching zero queries gives an empty result.
pub trait Index: std::any::Any + Send + Sync {
    /// Vector dimension.
    fn dim(&self) -> usize;
    /// Number of vectors held.
    fn ntotal(&self) -> usize;
    /// How vectors are compared.
    fn metric(&self) -> MetricType;
    /// Whether [`Index::add`] and search may be called. Indexes without training are
    /// always trained.
    fn is_trained(&self) -> bool {
        true
    }
    /// Learns whatever the index needs from representative vectors. Indexes that need no
    /// training only check the input.
    fn train(&mut self, x: &[f32]) -> Result<()> {
        fathom_core::check::nonempty_finite("training set", x, self.dim())?;
        Ok(())
    }
    /// Adds vectors; their ids are assigned by the index (usually `ntotal`, `ntotal+1`, …).
    fn add(&mut self, x: &[f32]) -> Result<()>;
    /// Adds vectors with the given ids, one per vector.
    fn add_with_ids(&mut self, x: &[f32], ids: &[Idx]) -> Result<()> {
        let _ = (x, ids);
        Err(Error::Unsupported(format!(
            "{} assigns ids itself: use add(), or wrap it in IndexIdMap to choose ids",
            self.description()
        )))
    }
    /// The `k` nearest vectors of each query, with per-call parameters.
    fn search_with(
        &self,
        queries: &[f32],
        k: usize,
        params: &SearchParams<'_>,
    ) -> Result<SearchResult>;
    /// The `k` nearest vectors of each query.
    fn search(&self, queries: &[f32], k: usize) -> Result<SearchResult> {
        self.search_with(queries, k, &SearchParams::default())
    }
    /// Every vector within `radius` of each query (`distance < radius`, or
    /// `similarity > radius` for inner product), with per-call parameters.
    fn range_search_with(
        &self,
        queries: &[f32],
        radius: f32,
        params: &SearchParams<'_>,
    ) -> Result<RangeSearchResult> {
        let _ = (queries, radius, params);
        Err(Error::Unsupported(format!(
            "{} does not support range search",
            self.description()
        )))
    }
    /// Every vector within `radius` of each query.
    fn range_search(&self, queries: &[f32], radius: f32) -> Result<RangeSearchResult> {
        self.range_search_with(queries, radius, &SearchParams::default())
    }
    /// The stored vector with id `id` (decoded, for compressed indexes).
    fn reconstruct(&self, id: Idx) -> Result<Vec<f32>> {
        let _ = id;
        Err(Error::Unsupported(format!(
            "{} cannot reconstruct vectors",
            self.description()
        )))
    }
    /// Vectors with ids `start .. start + n`, concatenated.
    fn reconstruct_n(&self, start: Idx, n: usize) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(n.saturating_mul(self.dim()).min(1 << 26));
        for i in 0..n as Idx {
            out.extend(self.reconstruct(start + i)?);
        }
        Ok(out)
    }
    /// The stored vectors `ids` (decoded), concatenated (Faiss's `reconstruct_batch`).
    fn reconstruct_batch(&self, ids: &[Idx]) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(ids.len().saturating_mul(self.dim()).min(1 << 26));
        for &id in ids {
            out.extend(self.reconstruct(id)?);
        }
        Ok(out)
    }
    /// The `k` nearest vectors of each query and those vectors, reconstructed (`nq × k ×
    /// d` floats; NaN where there is no result, as Faiss's `-1` bytes are), as Faiss's
    /// `search_and_reconstruct`.
    fn search_and_reconstruct(
        &self,
        queries: &[f32],
        k: usize,
        params: &SearchParams<'_>,
    ) -> Result<(SearchResult, Vec<f32>)> {
        let res = self.search_with(queries, k, params)?;
        let d = self.dim();
        let mut out = Vec::with_capacity(res.labels.len().saturating_mul(d).min(1 << 26));
        for &id in &res.labels {
            if id < 0 {
                out.extend(std::iter::repeat_n(f32::NAN, d));
            } else {
                out.extend(self.reconstruct(id)?);
            }
        }
        Ok((res, out))
    }
    /// `x − reconstruct(key)` for each row of `xs` and its key (Faiss's
    /// `compute_residual_n`; with a coarse quantizer, the residual an IVF index encodes).
    fn compute_residual_n(&self, xs: &[f32], keys: &[Idx]) -> Result<Vec<f32>> {
        let n = fathom_core::check::vectors("vectors", xs, self.dim())?;
        fathom_core::check::ids(keys, n)?;
        let mut out = Vec::with_capacity(xs.len());
        for (x, &key) in xs.chunks_exact(self.dim()).zip(keys) {
            let r = self.reconstruct(key)?;
            out.extend(x.iter().zip(&r).map(|(a, b)| a - b));
        }
        Ok(out)
    }
    /// Bytes of one standalone code ([`Index::sa_encode`]), for the indexes that have a
    /// standalone codec (flat, PQ, SQ, LSH, IVF; transforms and id maps forward to
    /// theirs).
    fn sa_code_size(&self) -> Result<usize> {
        Err(Error::Unsupported(format!(
            "{} has no standalone codec",
            self.description()
        )))
    }
    /// The standalone codes of `x` (Faiss's `sa_encode`): what the index would store,
    /// self-contained (an IVF code starts with its list number), `sa_code_size` bytes a
    /// row. The index must be trained; nothing is added.
    fn sa_encode(&self, x: &[f32]) -> Result<Vec<u8>> {
        let _ = x;
        Err(Error::Unsupported(format!(
            "{} has no standalone codec",
            self.description()
        )))
    }
    /// The vectors standalone codes stand for (Faiss's `sa_decode`).
    fn sa_decode(&self, codes: &[u8]) -> Result<Vec<f32>> {
        let _ = codes;
        Err(Error::Unsupported(format!(
            "{} has no standalone codec",
            self.description()
        )))
    }
    /// Adds vectors given by their standalone codes (Faiss's `add_sa_codes`), with ids
    /// where the index stores ids (IVF, id maps) or at the next positions.
    fn add_sa_codes(&mut self, codes: &[u8], ids: Option<&[Idx]>) -> Result<()> {
        let _ = (codes, ids);
        Err(Error::Unsupported(format!(
            "{} cannot add standalone codes",
            self.description()
        )))
    }
    /// Distances (or similarities, for inner product) from one query to the stored
    /// vectors `ids`, into `out` (Faiss's `DistanceComputer`); an id of `-1` gives the
    /// metric's worst value. The default decodes each vector with
    /// [`Index::reconstruct`]; indexes that store vectors read them in place.
    fn compute_distances(&self, query: &[f32], ids: &[Idx], out: &mut [f32]) -> Result<()> {
        for (o, &id) in out.iter_mut().zip(ids) {
            *o = if id < 0 {
                self.metric().worst_value()
            } else {
                fathom_kernels::distance(self.metric(), query, &self.reconstruct(id)?)?
            };
        }
        Ok(())
    }
    /// Removes every vector whose id `selector` contains; returns how many were removed.
    fn remove_ids(&mut self, selector: &dyn IdSelector) -> Result<usize> {
        let _ = selector;
        Err(Error::Unsupported(format!(
            "{} does not support removal",
            self.description()
        )))
    }
    /// Removes every vector (training is kept).
    fn reset(&mut self) -> Result<()>;
    /// Whether the ids this index returns are the vectors' positions in insertion order,
    /// renumbered after a removal (Flat, PQ, SQ, LSH, HNSW) — what an id map over it
    /// relies on. Indexes that store ids themselves (IVF, shards, id maps) say `false`.
    fn ids_are_positions(&self) -> bool {
        true
    }
    /// Sets a run-time parameter by name (`nprobe`, `efSearch`, …). Indexes without such
    /// a parameter return an error naming it.
    fn set_param(&mut self, name: &str, value: f64) -> Result<()> {
        let _ = value;
        Err(Error::invalid(format!(
            "{} has no run-time parameter {name:?}",
            self.description()
        )))
    }
    /// The current value of a run-time parameter that [`Index::set_param`] accepts
    /// (`nprobe`, `efSearch`, `k_factor_rf`, …), or `None` when this index has no such
    /// parameter. Wrappers answer for their inner index as `set_param` forwards to it.
    fn param(&self, name: &str) -> Option<f64> {
        let _ = name;
        None
    }
    /// The run-time parameters worth exploring and their values, cheapest first (Faiss's
    /// `ParameterSpace::initialize`): `nprobe` for IVF, `efSearch` for HNSW, `ht` for
    /// polysemous PQ, `k_factor_rf` for refinement, … Wrappers add theirs to their inner
    /// index's. Indexes without such parameters report none.
    fn parameter_ranges(&self) -> Vec<autotune::ParameterRange> {
        Vec::new()
    }
    /// A short description in Faiss's factory grammar ("Flat", "IDMap,Flat", …).
    fn description(&self) -> String;
    /// What kind of index this is, with its parts ([`IndexView`]): how code holding a
    /// `dyn Index` treats each kind on its own. Types outside this crate answer
    /// [`IndexView::Other`].
    fn view(&self) -> IndexView<'_>;
    /// The mutable parts of the kinds whose own operations reach past this trait
    /// ([`IndexViewMut`]); [`IndexViewMut::Other`] for the rest.
    fn view_mut(&mut self) -> IndexViewMut<'_> {
        IndexViewMut::Other
    }
    /// The sub-index `part`, mutably (the counterpart of [`IndexView::part`]): for tuning
    /// a part's run-time parameters in place (`index.quantizer.hnsw.efSearch`). Callers
    /// must not change what the owner relies on (a quantizer's centroids, a wrapped
    /// index's vectors). `None` where the index has no such part.
    fn part_mut(&mut self, part: Part) -> Option<&mut dyn Index> {
        let _ = part;
        None
    }
    /// Moves every vector of `other` (an index of the same kind, trained alike) into this
    /// one, adding `add_id` to their ids, and leaves `other` empty (Faiss's
    /// `merge_from`). Flat and IVF indexes merge; others give an error.
    fn merge_from(&mut self, other: &mut dyn Index, add_id: Idx) -> Result<()> {
        let _ = add_id;
        Err(Error::Unsupported(format!(
            "{} cannot merge other indexes into it (flat and IVF indexes can); got {}",
            self.description(),
            other.description()
        )))
    }
}

impl std::fmt::Debug for dyn Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("description", &self.description())
            .field("dim", &self.dim())
            .field("metric", &self.metric())
            .field("ntotal", &self.ntotal())
            .finish()
    }
}

/// Access to the concrete type behind a `dyn Index`, as `dyn Error` offers: for code that
/// knows which type it built (tests, examples). Code that must handle every kind matches
/// on [`Index::view`] instead, which the compiler checks for completeness.
///
/// ```
/// use fathom_index::{Index, IndexFlat, index_factory, MetricType};
/// let index = index_factory(4, "Flat", MetricType::L2).unwrap();
/// assert!(index.is::<IndexFlat>());
/// assert_eq!(index.downcast_ref::<IndexFlat>().unwrap().dim(), 4);
/// ```
impl dyn Index {
    /// Whether the index is a `T`.
    pub fn is<T: Index>(&self) -> bool {
        (self as &dyn std::any::Any).is::<T>()
    }
    /// The index as a `T`, `None` when it is another type.
    pub fn downcast_ref<T: Index>(&self) -> Option<&T> {
        (self as &dyn std::any::Any).downcast_ref()
    }
    /// The index as a mutable `T`, `None` when it is another type.
    pub fn downcast_mut<T: Index>(&mut self) -> Option<&mut T> {
        (self as &mut dyn std::any::Any).downcast_mut()
    }
}

macro_rules! forward_index {
    ($($ptr:tt)*) => {
        impl<T: Index + ?Sized> Index for $($ptr)*<T> {
            fn dim(&self) -> usize { (**self).dim() }
            fn ntotal(&self) -> usize { (**self).ntotal() }
            fn metric(&self) -> MetricType { (**self).metric() }
            fn is_trained(&self) -> bool { (**self).is_trained() }
            fn train(&mut self, x: &[f32]) -> Result<()> { (**self).train(x) }
            fn add(&mut self, x: &[f32]) -> Result<()> { (**self).add(x) }
            fn add_with_ids(&mut self, x: &[f32], ids: &[Idx]) -> Result<()> { (**self).add_with_ids(x, ids) }
            fn search_with(&self, q: &[f32], k: usize, p: &SearchParams<'_>) -> Result<SearchResult> { (**self).search_with(q, k, p) }
            fn range_search_with(&self, q: &[f32], r: f32, p: &SearchParams<'_>) -> Result<RangeSearchResult> { (**self).range_search_with(q, r, p) }
            fn reconstruct(&self, id: Idx) -> Result<Vec<f32>> { (**self).reconstruct(id) }
            fn reconstruct_n(&self, start: Idx, n: usize) -> Result<Vec<f32>> { (**self).reconstruct_n(start, n) }
            fn compute_distances(&self, q: &[f32], ids: &[Idx], out: &mut [f32]) -> Result<()> { (**self).compute_distances(q, ids, out) }
            fn reconstruct_batch(&self, ids: &[Idx]) -> Result<Vec<f32>> { (**self).reconstruct_batch(ids) }
            fn search_and_reconstruct(&self, q: &[f32], k: usize, p: &SearchParams<'_>) -> Result<(SearchResult, Vec<f32>)> { (**self).search_and_reconstruct(q, k, p) }
            fn compute_residual_n(&self, xs: &[f32], keys: &[Idx]) -> Result<Vec<f32>> { (**self).compute_residual_n(xs, keys) }
            fn sa_code_size(&self) -> Result<usize> { (**self).sa_code_size() }
            fn sa_encode(&self, x: &[f32]) -> Result<Vec<u8>> { (**self).sa_encode(x) }
            fn sa_decode(&self, codes: &[u8]) -> Result<Vec<f32>> { (**self).sa_decode(codes) }
            fn add_sa_codes(&mut self, codes: &[u8], ids: Option<&[Idx]>) -> Result<()> { (**self).add_sa_codes(codes, ids) }
            fn remove_ids(&mut self, s: &dyn IdSelector) -> Result<usize> { (**self).remove_ids(s) }
            fn reset(&mut self) -> Result<()> { (**self).reset() }
            fn ids_are_positions(&self) -> bool { (**self).ids_are_positions() }
            fn set_param(&mut self, name: &str, value: f64) -> Result<()> { (**self).set_param(name, value) }
            fn param(&self, name: &str) -> Option<f64> { (**self).param(name) }
            fn parameter_ranges(&self) -> Vec<autotune::ParameterRange> { (**self).parameter_ranges() }
            fn description(&self) -> String { (**self).description() }
            fn view(&self) -> IndexView<'_> { (**self).view() }
            fn view_mut(&mut self) -> IndexViewMut<'_> { (**self).view_mut() }
            fn part_mut(&mut self, part: Part) -> Option<&mut dyn Index> { (**self).part_mut(part) }
            fn merge_from(&mut self, other: &mut dyn Index, add_id: Idx) -> Result<()> { (**self).merge_from(other, add_id) }
        }
    };
}

forward_index!(Box);

/// Checks a search call's queries and `k` against an index; returns the number of queries.
pub(crate) fn check_search(index: &dyn Index, queries: &[f32], k: usize) -> Result<usize> {
    fathom_core::check::k(k)?;
    check_queries(index, queries)
}

/// Checks queries against an index (shape, finiteness, training); returns their number.
pub(crate) fn check_queries(index: &dyn Index, queries: &[f32]) -> Result<usize> {
    let nq = fathom_core::check::vectors("query", queries, index.dim())?;
    fathom_core::check::finite("query", queries, index.dim())?;
    fathom_core::check::metric_ready(index.metric())?;
    if !index.is_trained() {
        return Err(Error::NotTrained("search".into()));
    }
    Ok(nq)
}
