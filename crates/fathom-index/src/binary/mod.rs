//! Binary indexes: vectors of `d` bits (`d / 8` bytes each, as hashes, deduplication keys
//! or 1-bit embeddings produce them) compared by Hamming distance — Faiss's `IndexBinary`
//! family. [`IndexBinary`] is the trait and [`BinaryIndexView`] its runtime shape (what
//! persistence and the Python classes match on). The kinds:
//! - [`IndexBinaryFlat`]: exhaustive, scanned with the popcount kernel of
//!   `fathom_kernels::codes::hamming` through the same scan engine as the float code
//!   indexes;
//! - [`IndexBinaryIvf`]: inverted lists under a binary coarse quantizer;
//! - [`IndexBinaryHnsw`]: the float HNSW graph with Hamming distances;
//! - [`IndexBinaryHash`] / [`IndexBinaryMultiHash`]: hash tables on key bits;
//! - [`IndexBinaryFromFloat`]: any float index over `±1` vectors;
//! - [`IndexBinaryIdMap`]: user-chosen ids over any of them.
//!
//! [`index_binary_factory`] builds them from Faiss's strings.
//!
//! Distances are bit counts, exact integers held in the `f32` distances of
//! [`SearchResult`].
//!
//! ```
//! use fathom_index::binary::{IndexBinary, IndexBinaryFlat};
//! let mut index = IndexBinaryFlat::new(16).unwrap();
//! index.add(&[0b0000_0000, 0xff, 0b1111_0000, 0x0f]).unwrap(); // two 16-bit codes
//! let res = index.search(&[0b0000_0001, 0xff], 2).unwrap();
//! assert_eq!(res.labels, vec![0, 1]);
//! assert_eq!(res.distances, vec![1.0, 9.0]);
//! ```

use fathom_core::{
    Error, IdSelector, IdSelectorTranslated, Idx, MetricType, RangeSearchResult, Result,
    SearchParams, SearchResult,
};

use rayon::prelude::*;

use crate::code_scan::{CodeStore, hamming_scorer, knn_scan, range_scan, to_result};
use crate::idmap::{translate_labels, translated_params};

mod factory;
mod from_float;
mod hash;
mod hnsw;
mod ivf;

pub use factory::index_binary_factory;
pub use from_float::IndexBinaryFromFloat;
pub use hash::{HashBucket, IndexBinaryHash, IndexBinaryMultiHash};
pub use hnsw::IndexBinaryHnsw;
pub use ivf::{IndexBinaryIvf, binary_to_real, real_to_binary};

/// An index of binary vectors (Faiss's `IndexBinary`): `d` bits per vector, given as
/// `d / 8`-byte rows; searches rank by Hamming distance.
///
/// Input is validated as for [`crate::Index`]: a wrong length, `k = 0` or an empty input
/// where one is needed gives an error, never a panic.
pub trait IndexBinary: std::any::Any + Send + Sync {
    /// Bits per vector (a multiple of 8).
    fn d(&self) -> usize;
    /// Bytes per vector, `d / 8`.
    fn code_size(&self) -> usize {
        self.d() / 8
    }
    /// Number of vectors held.
    fn ntotal(&self) -> usize;
    /// Whether vectors may be added and searched.
    fn is_trained(&self) -> bool {
        true
    }
    /// Learns what the index needs from representative vectors.
    fn train(&mut self, x: &[u8]) -> Result<()> {
        let n = fathom_core::check::codes("training set", x, self.code_size())?;
        if n == 0 {
            return Err(Error::invalid("the training set is empty"));
        }
        Ok(())
    }
    /// Adds vectors; their ids are their positions.
    fn add(&mut self, x: &[u8]) -> Result<()>;
    /// Adds vectors with the given ids, one per vector.
    fn add_with_ids(&mut self, x: &[u8], ids: &[Idx]) -> Result<()> {
        let _ = (x, ids);
        Err(Error::Unsupported(format!(
            "{} assigns ids itself: use add(), or wrap it in IndexBinaryIdMap to choose ids",
            self.description()
        )))
    }
    /// The `k` nearest vectors of each query, with per-call parameters.
    fn search_with(
        &self,
        queries: &[u8],
        k: usize,
        params: &SearchParams<'_>,
    ) -> Result<SearchResult>;
    /// The `k` nearest vectors of each query.
    fn search(&self, queries: &[u8], k: usize) -> Result<SearchResult> {
        self.search_with(queries, k, &SearchParams::default())
    }
    /// Every vector at Hamming distance below `radius` of each query.
    fn range_search_with(
        &self,
        queries: &[u8],
        radius: f32,
        params: &SearchParams<'_>,
    ) -> Result<RangeSearchResult>;
    /// Every vector at Hamming distance below `radius` of each query.
    fn range_search(&self, queries: &[u8], radius: f32) -> Result<RangeSearchResult> {
        self.range_search_with(queries, radius, &SearchParams::default())
    }
    /// The stored vector with id `id`.
    fn reconstruct(&self, id: Idx) -> Result<Vec<u8>>;
    /// Removes every vector whose id `selector` contains; returns how many were removed.
    fn remove_ids(&mut self, selector: &dyn IdSelector) -> Result<usize>;
    /// Removes every vector.
    fn reset(&mut self) -> Result<()>;
    /// The description in Faiss's binary factory grammar (`BFlat`, `IDMap,BFlat`).
    fn description(&self) -> String;
    /// What kind of binary index this is, with its parts.
    fn view(&self) -> BinaryIndexView<'_>;
    /// Sets a run-time parameter (`nprobe`, `max_codes` for IVF; `efSearch` for HNSW;
    /// `nflip` for hash indexes); an unknown name is an error naming the known ones.
    fn set_param(&mut self, name: &str, value: f64) -> Result<()> {
        let _ = value;
        Err(unknown_param(self, name, "none"))
    }
    /// The value of a run-time parameter [`IndexBinary::set_param`] accepts, or `None`.
    fn param(&self, name: &str) -> Option<f64> {
        let _ = name;
        None
    }
}

/// The error for a parameter an index does not have; `known` lists those it has.
fn unknown_param<I: IndexBinary + ?Sized>(index: &I, name: &str, known: &str) -> Error {
    Error::invalid(format!(
        "{} has no run-time parameter {name:?} (it has: {known})",
        index.description()
    ))
}

/// What a binary index is ([`IndexBinary::view`]): how persistence and the Python
/// classes treat each kind.
pub enum BinaryIndexView<'a> {
    /// Exhaustive search over the codes.
    Flat(&'a IndexBinaryFlat),
    /// Inverted lists under a coarse quantizer.
    Ivf(&'a IndexBinaryIvf),
    /// An HNSW graph over flat storage.
    Hnsw(&'a IndexBinaryHnsw),
    /// One hash table keyed by the first bits.
    Hash(&'a IndexBinaryHash),
    /// Flat storage with several hash tables.
    MultiHash(&'a IndexBinaryMultiHash),
    /// A float index over `±1` vectors.
    FromFloat(&'a IndexBinaryFromFloat),
    /// User-chosen ids over another binary index.
    IdMap {
        /// The index holding the vectors.
        inner: &'a dyn IndexBinary,
        /// The id of each inner vector, by position.
        ids: &'a [Idx],
        /// Whether ids map back to positions too (`IndexBinaryIDMap2`).
        two_way: bool,
    },
    /// A binary index defined outside this crate.
    Other,
}

/// Checks a range-search radius: a number of bits, not NaN.
fn check_radius(radius: f32) -> Result<()> {
    if radius.is_nan() {
        return Err(Error::invalid("radius is NaN; expected a number of bits"));
    }
    Ok(())
}

/// The candidates of one query as runs of `(keys, ids)`: `visit(q, query, sink)` calls
/// `sink` once per run (an inverted list, a hash bucket, a short-list). The IVF and hash
/// indexes produce their candidates this way and share the k-NN and range collection.
type Sink<'s> = &'s mut dyn FnMut(&[f32], &[Idx]);

/// The `k` nearest of the runs each query's `visit` offers (ids filtered by the
/// selector), in parallel over queries.
fn knn_over_runs<V>(
    queries: &[u8],
    cs: usize,
    k: usize,
    params: &SearchParams<'_>,
    visit: V,
) -> Result<SearchResult>
where
    V: Fn(usize, &[u8], Sink<'_>) + Sync,
{
    fathom_core::check::k(k)?;
    let sel = params.selector;
    let tops: Vec<fathom_kernels::TopK> = queries
        .par_chunks(cs)
        .enumerate()
        .map(|(qi, q)| {
            let mut top = fathom_kernels::TopK::new(k);
            visit(qi, q, &mut |keys, ids| {
                top.push_ids(keys, ids, |id| sel.is_none_or(|s| s.is_member(id)))
            });
            top
        })
        .collect();
    to_result(tops, k, MetricType::L2, |_, key| key)
}

/// Every candidate below `radius` among the runs each query's `visit` offers.
fn range_over_runs<V>(
    queries: &[u8],
    cs: usize,
    radius: f32,
    params: &SearchParams<'_>,
    visit: V,
) -> Result<RangeSearchResult>
where
    V: Fn(usize, &[u8], Sink<'_>) + Sync,
{
    check_radius(radius)?;
    let sel = params.selector;
    let lists: Vec<(Vec<Idx>, Vec<f32>)> = queries
        .par_chunks(cs)
        .enumerate()
        .map(|(qi, q)| {
            let (mut out_ids, mut out_d) = (Vec::new(), Vec::new());
            visit(qi, q, &mut |keys, ids| {
                for (&key, &id) in keys.iter().zip(ids) {
                    if key < radius && sel.is_none_or(|s| s.is_member(id)) {
                        out_ids.push(id);
                        out_d.push(key);
                    }
                }
            });
            (out_ids, out_d)
        })
        .collect();
    Ok(RangeSearchResult::from_lists(lists))
}

/// Checks a search call's queries against a binary index; returns their number.
fn check_queries(index: &dyn IndexBinary, queries: &[u8]) -> Result<usize> {
    let nq = fathom_core::check::codes("query", queries, index.code_size())?;
    if !index.is_trained() {
        return Err(Error::NotTrained("search".into()));
    }
    Ok(nq)
}

/// Exhaustive Hamming search over binary vectors (Faiss's `IndexBinaryFlat`, factory
/// `BFlat`).
#[derive(Debug, Clone)]
pub struct IndexBinaryFlat {
    d: usize,
    store: CodeStore,
}

impl IndexBinaryFlat {
    /// An empty index of `d`-bit vectors; `d` must be a positive multiple of 8.
    pub fn new(d: usize) -> Result<Self> {
        if d == 0 || !d.is_multiple_of(8) {
            return Err(Error::invalid(format!(
                "a binary index needs d to be a positive multiple of 8 bits, got {d}"
            )));
        }
        Ok(IndexBinaryFlat {
            d,
            store: CodeStore::new(d / 8),
        })
    }
    /// The codes, `ntotal × code_size` bytes.
    pub fn codes(&self) -> &[u8] {
        &self.store.codes
    }
}

impl IndexBinary for IndexBinaryFlat {
    fn d(&self) -> usize {
        self.d
    }
    fn ntotal(&self) -> usize {
        self.store.len()
    }
    fn add(&mut self, x: &[u8]) -> Result<()> {
        self.store.append("added binary vectors", x)
    }
    fn search_with(
        &self,
        queries: &[u8],
        k: usize,
        params: &SearchParams<'_>,
    ) -> Result<SearchResult> {
        fathom_core::check::k(k)?;
        let nq = check_queries(self, queries)?;
        let tops = knn_scan(
            nq,
            self.ntotal(),
            k,
            params.selector,
            hamming_scorer(queries, &self.store.codes, self.store.code_size),
        );
        to_result(tops, k, MetricType::L2, |_, key| key)
    }
    fn range_search_with(
        &self,
        queries: &[u8],
        radius: f32,
        params: &SearchParams<'_>,
    ) -> Result<RangeSearchResult> {
        let nq = check_queries(self, queries)?;
        check_radius(radius)?;
        Ok(range_scan(
            nq,
            self.ntotal(),
            radius,
            MetricType::L2,
            params.selector,
            hamming_scorer(queries, &self.store.codes, self.store.code_size),
        ))
    }
    fn reconstruct(&self, id: Idx) -> Result<Vec<u8>> {
        Ok(self.store.checked_code(id)?.to_vec())
    }
    fn remove_ids(&mut self, selector: &dyn IdSelector) -> Result<usize> {
        self.store.remove(selector)
    }
    fn reset(&mut self) -> Result<()> {
        self.store.codes.clear();
        Ok(())
    }
    fn description(&self) -> String {
        "BFlat".into()
    }
    fn view(&self) -> BinaryIndexView<'_> {
        BinaryIndexView::Flat(self)
    }
}

/// User-chosen ids over a binary index whose ids are positions (Faiss's
/// `IndexBinaryIDMap`; `IndexBinaryIDMap2` when `two_way`, which also reconstructs by id).
pub struct IndexBinaryIdMap {
    inner: Box<dyn IndexBinary>,
    ids: Vec<Idx>,
    two_way: bool,
    /// id → row; kept only when `two_way`.
    rev: std::collections::HashMap<Idx, usize>,
}

impl IndexBinaryIdMap {
    /// An id map over `inner`, which must be empty.
    pub fn new(inner: Box<dyn IndexBinary>, two_way: bool) -> Result<Self> {
        Self::from_parts(inner, Vec::new(), two_way)
    }
    /// An id map over `inner` holding `ids.len()` vectors (as read from a file).
    pub fn from_parts(inner: Box<dyn IndexBinary>, ids: Vec<Idx>, two_way: bool) -> Result<Self> {
        if ids.len() != inner.ntotal() {
            return Err(Error::invalid(format!(
                "an id map of {} ids over an index of {} vectors",
                ids.len(),
                inner.ntotal()
            )));
        }
        // A Faiss file may hold an id twice (Faiss's adds do not check): it reads as Faiss
        // reads it, the id reconstructing the later vector.
        let rev = if two_way {
            crate::idmap::reverse_map(&ids)
        } else {
            Default::default()
        };
        Ok(IndexBinaryIdMap {
            inner,
            ids,
            two_way,
            rev,
        })
    }
    /// The wrapped index.
    pub fn inner(&self) -> &dyn IndexBinary {
        &*self.inner
    }
    /// The id of each stored vector, in storage order.
    pub fn id_map(&self) -> &[Idx] {
        &self.ids
    }

    /// Per-call parameters for the inner index: a selector of ids becomes one of the rows
    /// holding them.
    fn selector<'a>(&'a self, params: &SearchParams<'a>) -> Option<IdSelectorTranslated<'a>> {
        params
            .selector
            .map(|s| IdSelectorTranslated::new(&self.ids, s))
    }
}

impl IndexBinary for IndexBinaryIdMap {
    fn d(&self) -> usize {
        self.inner.d()
    }
    fn ntotal(&self) -> usize {
        self.ids.len()
    }
    fn is_trained(&self) -> bool {
        self.inner.is_trained()
    }
    fn train(&mut self, x: &[u8]) -> Result<()> {
        self.inner.train(x)
    }
    fn add(&mut self, x: &[u8]) -> Result<()> {
        let _ = x;
        Err(Error::Unsupported(
            "an id map needs the ids: use add_with_ids()".into(),
        ))
    }
    fn add_with_ids(&mut self, x: &[u8], ids: &[Idx]) -> Result<()> {
        let n = fathom_core::check::codes("added binary vectors", x, self.code_size())?;
        fathom_core::check::ids(ids, n)?;
        if self.two_way
            && let Some(dup) = crate::idmap::taken_id(ids, &self.rev)
        {
            return Err(Error::invalid(format!(
                "IndexBinaryIDMap2 needs unique ids; {dup} is already there"
            )));
        }
        self.inner.add(x)?;
        let start = self.ids.len();
        self.ids.extend_from_slice(ids);
        if self.two_way {
            self.rev
                .extend(ids.iter().enumerate().map(|(i, &id)| (id, start + i)));
        }
        Ok(())
    }
    fn search_with(
        &self,
        queries: &[u8],
        k: usize,
        params: &SearchParams<'_>,
    ) -> Result<SearchResult> {
        let sel = self.selector(params);
        let mut res = self
            .inner
            .search_with(queries, k, &translated_params(params, &sel))?;
        translate_labels(&mut res.labels, &self.ids)?;
        Ok(res)
    }
    fn range_search_with(
        &self,
        queries: &[u8],
        radius: f32,
        params: &SearchParams<'_>,
    ) -> Result<RangeSearchResult> {
        let sel = self.selector(params);
        let mut res =
            self.inner
                .range_search_with(queries, radius, &translated_params(params, &sel))?;
        translate_labels(&mut res.labels, &self.ids)?;
        Ok(res)
    }
    fn reconstruct(&self, id: Idx) -> Result<Vec<u8>> {
        if !self.two_way {
            return Err(Error::Unsupported(
                "IndexBinaryIDMap cannot reconstruct by id; use IndexBinaryIDMap2".into(),
            ));
        }
        let row = *self.rev.get(&id).ok_or(Error::IdNotFound(id))?;
        self.inner.reconstruct(row as Idx)
    }
    fn remove_ids(&mut self, selector: &dyn IdSelector) -> Result<usize> {
        let rows: Vec<Idx> = (0..self.ids.len() as Idx)
            .filter(|&r| selector.is_member(self.ids[r as usize]))
            .collect();
        let by_row = fathom_core::IdSelectorBatch::new(rows.iter().copied());
        let removed = self.inner.remove_ids(&by_row)?;
        // The inner index renumbers its rows as this drops their ids: they stay aligned.
        self.ids.retain(|id| !selector.is_member(*id));
        if self.two_way && removed > 0 {
            self.rev = crate::idmap::reverse_map(&self.ids);
        }
        Ok(removed)
    }
    fn reset(&mut self) -> Result<()> {
        self.inner.reset()?;
        self.ids.clear();
        self.rev.clear();
        Ok(())
    }
    fn description(&self) -> String {
        format!(
            "{},{}",
            if self.two_way { "IDMap2" } else { "IDMap" },
            self.inner.description()
        )
    }
    fn view(&self) -> BinaryIndexView<'_> {
        BinaryIndexView::IdMap {
            inner: &*self.inner,
            ids: &self.ids,
            two_way: self.two_way,
        }
    }
    fn set_param(&mut self, name: &str, value: f64) -> Result<()> {
        self.inner.set_param(name, value)
    }
    fn param(&self, name: &str) -> Option<f64> {
        self.inner.param(name)
    }
}
