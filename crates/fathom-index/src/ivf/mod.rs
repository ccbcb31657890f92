//! The inverted-file family: a coarse quantizer sends each vector to one of `nlist`
//! lists, a per-list codec stores it, and a search scans only the `nprobe` lists nearest
//! to the query.
//!
//! [`IndexIvf`] holds everything the codecs share (training of the coarse quantizer,
//! assignment, residuals, the lists, the direct map, search over probed lists, removal,
//! merging, subsets); an [`IvfCodec`] supplies the encoding and the [`ListScanner`].
//! The type, its accessors and its `Index` implementation live here; `train` trains it,
//! `search` plans and runs searches, `mutate` changes its entries (each change one
//! transaction, `transaction`), and `dyn_ivf` gives every codec one object-safe face.

mod additive;
mod aq_fastscan;
mod codec;
mod dyn_ivf;
mod fastscan;
mod flat;
mod imi;
mod merge_ondisk;
mod mutate;
mod pq;
mod pqr;
mod rabitq;
mod rabitq_fastscan;
mod search;
pub(crate) use search::PREFETCH_LINES;
mod sq;
mod standalone;
mod subset;
mod train;
mod transaction;

use std::borrow::Cow;
use std::sync::OnceLock;

use fathom_core::{
    Error, IdSelector, Idx, MetricType, RangeSearchResult, Result, SearchParams, SearchResult,
};
pub use fathom_invlists::{DirectMap, DirectMapType, InvertedLists};
use fathom_linalg::ClusteringParameters;
use rayon::prelude::*;

pub use additive::{IndexIvfAdditiveQuantizer, IndexIvfResidualQuantizer, IvfAdditiveQuantizer};
pub use aq_fastscan::{IndexIvfAqFastScan, IvfAqFastScan};
pub use codec::{IvfCodec, IvfContext, ListScanner};
pub use dyn_ivf::{DynIvf, IvfCodecView};
pub use fastscan::{IndexIvfPqFastScan, IvfPqFastScan};
pub use flat::{IndexIvfFlat, IvfFlat};
pub use imi::MultiIndexQuantizer;
pub use merge_ondisk::merge_ondisk;
pub use pq::{IndexIvfPq, IvfPq};
pub use pqr::IndexIvfPqr;
pub use rabitq::{IndexIvfRaBitQ, IvfRaBitQ};
pub use rabitq_fastscan::{IndexIvfRaBitQFastScan, IvfRaBitQFastScan};
pub use sq::{IndexIvfScalarQuantizer, IvfScalarQuantizer};
pub use subset::SubsetType;

/// The shape of an IVF index's lists, as [`lists_of`] reads it from any index.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IvfLists {
    /// Number of inverted lists.
    pub nlist: usize,
    /// Faiss's imbalance factor (1 is even), `None` while the index is empty.
    pub imbalance: Option<f64>,
}

/// `index` as an IVF index of any codec, `None` for other indexes — and for the IVF-PQ
/// with refinement, whose search is more than its lists' (see [`lists_of`] for its shape).
pub fn as_ivf(index: &dyn crate::Index) -> Option<&dyn DynIvf> {
    match index.view() {
        crate::IndexView::Ivf(ivf) => Some(ivf),
        _ => None,
    }
}

/// The lists of `index` when it is an IVF index of any codec (the IVF-PQ-refine too),
/// `None` for other indexes.
pub fn lists_of(index: &dyn crate::Index) -> Option<IvfLists> {
    let ivf = index.view().ivf_lists()?;
    Some(IvfLists {
        nlist: ivf.nlist(),
        imbalance: ivf.imbalance(),
    })
}

use crate::{Index, check_queries, check_search};

/// Coarse centroids kept in a table (rather than reconstructed per use) up to this many
/// floats.
const MAX_CACHED_CENTROID_FLOATS: usize = 1 << 26;

/// IVF indexes compare with L2 or inner product (the metrics k-means and the codecs
/// serve).
fn check_metric(metric: MetricType) -> Result<()> {
    if matches!(metric, MetricType::L2 | MetricType::InnerProduct) {
        Ok(())
    } else {
        Err(Error::Unsupported(format!(
            "IVF indexes support L2 and inner product, not {metric:?}"
        )))
    }
}

/// How the coarse quantizer is trained (Faiss's `quantizer_trains_alone`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QuantizerTraining {
    /// k-means with `nlist` centroids, assigning through the quantizer itself (0).
    #[default]
    Kmeans,
    /// The quantizer's own `train` (a multi-index quantizer) (1).
    Alone,
    /// k-means with an exact L2 assigner, then the centroids are added to the quantizer
    /// (an HNSW quantizer) (2).
    KmeansThenAdd,
}

/// How a search is spread over threads (Faiss's `parallel_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ParallelMode {
    /// Over queries when there are at least as many as threads, else over the probed
    /// lists of each query.
    #[default]
    Auto,
    /// Over queries (Faiss's 0).
    Queries,
    /// Over the probed lists of each query, one query after the other (Faiss's 1).
    Lists,
}

/// An inverted-file index over any coarse quantizer and any [`IvfCodec`] (Faiss's
/// `IndexIVF`).
///
/// * `nprobe` (default 1) lists are scanned per query; values above `nlist` are clamped
///   to `nlist` as Faiss does, and 0 is refused.
/// * `max_codes` (default 0: no limit) stops a query's scan once that many codes were
///   looked at (checked after each list).
/// * Ids: [`Index::add`] numbers vectors `ntotal, ntotal+1, …`; [`Index::add_with_ids`]
///   takes any ids. Duplicate ids are stored as given (both can be returned by a search,
///   `remove_ids` removes all of them, and a hashtable direct map points at the last one
///   added), as in Faiss.
/// * Reconstruction and `update_vectors` need a direct map
///   ([`IndexIvf::make_direct_map`]).
#[derive(Debug)]
pub struct IndexIvf<C: IvfCodec> {
    d: usize,
    metric: MetricType,
    nlist: usize,
    quantizer: Box<dyn Index>,
    invlists: Box<dyn InvertedLists>,
    direct_map: DirectMap,
    codec: C,
    ntotal: usize,
    trained: bool,
    centroids: OnceLock<Option<Vec<f32>>>,
    /// Lists scanned per query.
    pub nprobe: usize,
    /// Most codes scanned per query (0: no limit).
    pub max_codes: usize,
    /// Whether codes encode `x − centroid` (set by the constructors as Faiss does).
    pub by_residual: bool,
    /// How [`Index::train`] trains the coarse quantizer.
    pub quantizer_training: QuantizerTraining,
    /// The coarse k-means settings (Faiss's IVF default: 10 iterations).
    pub cp: ClusteringParameters,
    /// How searches use threads.
    pub parallel_mode: ParallelMode,
}

impl<C: IvfCodec + 'static> IndexIvf<C> {
    /// An untrained index over `quantizer` (which must compare with `metric`), with
    /// `nlist` lists and `codec` inside them.
    pub fn with_codec(
        quantizer: Box<dyn Index>,
        nlist: usize,
        metric: MetricType,
        codec: C,
        by_residual: bool,
    ) -> Result<Self> {
        let d = quantizer.dim();
        if nlist == 0 {
            return Err(Error::invalid(
                "an IVF index needs at least one list (nlist ≥ 1)",
            ));
        }
        if quantizer.metric() != metric {
            return Err(Error::invalid(format!(
                "the coarse quantizer compares with {:?} but the index with {metric:?}",
                quantizer.metric()
            )));
        }
        let trained = quantizer.is_trained() && quantizer.ntotal() == nlist && codec.is_trained();
        let cp = ClusteringParameters {
            niter: 10,
            ..Default::default()
        };
        Ok(IndexIvf {
            d,
            metric,
            nlist,
            invlists: codec.new_lists(nlist),
            quantizer,
            direct_map: DirectMap::default(),
            codec,
            ntotal: 0,
            trained,
            centroids: OnceLock::new(),
            nprobe: 1,
            max_codes: 0,
            by_residual,
            quantizer_training: QuantizerTraining::Kmeans,
            cp,
            parallel_mode: ParallelMode::Auto,
        })
    }

    /// Number of lists.
    pub fn nlist(&self) -> usize {
        self.nlist
    }
    /// The coarse quantizer.
    pub fn quantizer(&self) -> &dyn Index {
        &*self.quantizer
    }
    /// The coarse quantizer, e.g. to set its search parameters.
    pub fn quantizer_mut(&mut self) -> &mut dyn Index {
        self.centroids = OnceLock::new();
        self.codec.invalidate();
        &mut *self.quantizer
    }
    /// The inverted lists.
    pub fn invlists(&self) -> &dyn InvertedLists {
        &*self.invlists
    }
    /// Replaces the inverted lists (e.g. with on-disk lists holding the same entries);
    /// they must have `nlist` lists of this codec's code size.
    pub fn replace_invlists(&mut self, lists: Box<dyn InvertedLists>) -> Result<()> {
        if lists.nlist() != self.nlist || lists.code_size() != self.codec.code_size() {
            return Err(Error::invalid(format!(
                "replacement lists have {} lists of {}-byte codes; this index needs {} lists \
                 of {}-byte codes",
                lists.nlist(),
                lists.code_size(),
                self.nlist,
                self.codec.code_size()
            )));
        }
        self.ntotal = lists.compute_ntotal();
        self.invlists = lists;
        let kind = self.direct_map.kind();
        self.direct_map = DirectMap::default();
        self.set_direct_map_type(kind)
    }
    /// The per-list codec.
    pub fn codec(&self) -> &C {
        &self.codec
    }
    /// The per-list codec, to change its parameters.
    pub fn codec_mut(&mut self) -> &mut C {
        self.codec.invalidate();
        &mut self.codec
    }
    /// The direct map.
    pub fn direct_map(&self) -> &DirectMap {
        &self.direct_map
    }

    /// Refuses a change to lists that are read-only (memory-mapped from a file).
    fn check_writable(&self, what: &str) -> Result<()> {
        if self.invlists.is_read_only() {
            return Err(Error::Unsupported(format!(
                "cannot {what} {}: its inverted lists are read-only (memory-mapped from a \
                 file); load it with read_index to change it",
                self.description()
            )));
        }
        Ok(())
    }

    /// Keeps (`true`, an array map: ids must be `0..ntotal`) or drops an id → entry map,
    /// as Faiss's `make_direct_map`.
    pub fn make_direct_map(&mut self, on: bool) -> Result<()> {
        self.set_direct_map_type(if on {
            DirectMapType::Array
        } else {
            DirectMapType::NoMap
        })
    }

    /// Switches the direct map to `kind` (hashtable for arbitrary ids).
    pub fn set_direct_map_type(&mut self, kind: DirectMapType) -> Result<()> {
        self.direct_map.set_type(kind, &*self.invlists, self.ntotal)
    }

    fn context(&self) -> IvfContext<'_> {
        let centroids = self
            .centroids
            .get_or_init(|| {
                if !self.quantizer.is_trained()
                    || self.quantizer.ntotal() != self.nlist
                    || self.nlist.saturating_mul(self.d) > MAX_CACHED_CENTROID_FLOATS
                {
                    return None;
                }
                self.quantizer.reconstruct_n(0, self.nlist).ok()
            })
            .as_deref();
        IvfContext {
            metric: self.metric,
            by_residual: self.by_residual,
            nlist: self.nlist,
            quantizer: &*self.quantizer,
            centroids,
        }
    }

    /// The list of each row of `x` (`quantizer.assign`).
    fn assign(&self, x: &[f32]) -> Result<Vec<Idx>> {
        Ok(self.quantizer.search(x, 1)?.labels)
    }

    /// `x − centroid(list)` for each row, or `x` itself without residuals.
    fn residuals<'x>(
        &self,
        ctx: &IvfContext<'_>,
        x: &'x [f32],
        lists: &[Idx],
    ) -> Result<Cow<'x, [f32]>> {
        if !self.by_residual {
            return Ok(Cow::Borrowed(x));
        }
        let mut r = x.to_vec();
        r.par_chunks_mut(self.d)
            .zip(lists.par_iter())
            .zip(x.par_chunks(self.d))
            .try_for_each(|((row, &l), x)| {
                if l >= 0 {
                    ctx.residual(l as usize, x, row)?;
                }
                Ok::<_, Error>(())
            })?;
        Ok(Cow::Owned(r))
    }

    /// The vector stored at entry `offset` of `list` (decoded, plus the centroid when
    /// residuals are encoded).
    pub fn reconstruct_from_offset(&self, list: usize, offset: usize) -> Result<Vec<f32>> {
        if list >= self.nlist || offset >= self.invlists.list_size(list) {
            return Err(Error::invalid(format!(
                "entry {offset} of list {list} does not exist"
            )));
        }
        let mut x = vec![0.0; self.d];
        self.codec.decode(&self.invlists.code(list, offset), &mut x);
        if self.by_residual {
            let ctx = self.context();
            let c = ctx.centroid(list)?;
            x.iter_mut().zip(c.iter()).for_each(|(v, c)| *v += c);
        }
        Ok(x)
    }

    /// Calls `found(i, list, offset)` for the entry holding `ids[i]`, for each of `ids`
    /// that is stored: through the direct map when one is kept, else in one pass over
    /// the lists (as Faiss's `reconstruct_n` and `search_and_reconstruct` do without a
    /// map).
    fn locate(
        &self,
        ids: &[Idx],
        mut found: impl FnMut(usize, usize, usize) -> Result<()>,
    ) -> Result<()> {
        if self.direct_map.is_enabled() {
            for (i, &id) in ids.iter().enumerate() {
                if let Ok((list, offset)) = self.direct_map.get(id) {
                    found(i, list, offset)?;
                }
            }
            return Ok(());
        }
        let mut wanted = std::collections::HashMap::with_capacity(ids.len());
        for (i, &id) in ids.iter().enumerate() {
            wanted.entry(id).or_insert(i);
        }
        for list in 0..self.nlist {
            for (offset, id) in self.invlists.ids(list).iter().enumerate() {
                if let Some(&i) = wanted.get(id) {
                    found(i, list, offset)?;
                }
            }
        }
        Ok(())
    }

    /// Sizes of the lists and their balance.
    pub fn imbalance_factor(&self) -> f64 {
        self.invlists.imbalance_factor()
    }

    /// Sets `name`; `Ok(false)` when the IVF layer does not know it. Besides the run-time
    /// parameters, `cp.<field>` sets a field of the coarse k-means's parameters (Faiss's
    /// `index.cp.niter = 20`), used by the next `train`.
    fn set_ivf_param(&mut self, name: &str, value: f64) -> Result<bool> {
        let as_count = |v: f64| crate::param_values::count(name, v);
        match name {
            "nprobe" => {
                let v = as_count(value)?;
                if v == 0 {
                    return Err(Error::invalid("nprobe must be at least 1"));
                }
                self.nprobe = v;
            }
            // Infinity (the last value of its autotune range) means no limit, as 0 does.
            "max_codes" if value == f64::INFINITY => self.max_codes = 0,
            "max_codes" => self.max_codes = as_count(value)?,
            "parallel_mode" => {
                self.parallel_mode = match as_count(value)? {
                    0 => ParallelMode::Queries,
                    1 => ParallelMode::Lists,
                    v => {
                        return Err(Error::invalid(format!(
                            "parallel_mode is 0 (queries) or 1 (lists), got {v}"
                        )));
                    }
                }
            }
            "by_residual" => {
                let v = crate::param_values::flag(name, value)?;
                if v != self.by_residual && self.ntotal > 0 {
                    return Err(Error::invalid(format!(
                        "by_residual cannot change once vectors are stored ({} are encoded \
                         {}); set it before adding, or reset() the index first",
                        self.ntotal,
                        if self.by_residual {
                            "as residuals"
                        } else {
                            "as vectors"
                        }
                    )));
                }
                self.by_residual = v;
            }
            "quantizer_trains_alone" => {
                self.quantizer_training = match as_count(value)? {
                    0 => QuantizerTraining::Kmeans,
                    1 => QuantizerTraining::Alone,
                    2 => QuantizerTraining::KmeansThenAdd,
                    v => {
                        return Err(Error::invalid(format!(
                            "quantizer_trains_alone is 0 (k-means), 1 (the quantizer's own \
                             training) or 2 (k-means, then added to the quantizer), got {v}"
                        )));
                    }
                }
            }
            _ => {
                if let Some(rest) = name.strip_prefix("quantizer_") {
                    self.quantizer.set_param(rest, value)?;
                    return Ok(true);
                }
                if let Some(field) = name.strip_prefix("cp.") {
                    return set_clustering_param(&mut self.cp, field, value);
                }
                return self.codec.set_param(name, value);
            }
        }
        Ok(true)
    }

    fn coarse_description(&self) -> String {
        let q = self.quantizer.description();
        match self.quantizer.view() {
            crate::IndexView::MultiIndexQuantizer(imi) => imi.description(),
            _ if q == "Flat" => format!("IVF{}", self.nlist),
            crate::IndexView::Hnsw { storage, .. }
                if matches!(storage.view(), crate::IndexView::Flat(_)) =>
            {
                format!("IVF{}_{q}", self.nlist)
            }
            _ => format!("IVF{}({q})", self.nlist),
        }
    }
}

impl<C: IvfCodec + 'static> Index for IndexIvf<C> {
    fn dim(&self) -> usize {
        self.d
    }
    fn ntotal(&self) -> usize {
        self.ntotal
    }
    fn metric(&self) -> MetricType {
        self.metric
    }
    fn is_trained(&self) -> bool {
        self.trained
    }

    fn train(&mut self, x: &[f32]) -> Result<()> {
        self.train_all(x)
    }

    fn add(&mut self, x: &[f32]) -> Result<()> {
        self.add_core(x, None)
    }

    fn add_with_ids(&mut self, x: &[f32], ids: &[Idx]) -> Result<()> {
        self.add_core(x, Some(ids))
    }

    fn search_with(
        &self,
        queries: &[f32],
        k: usize,
        params: &SearchParams<'_>,
    ) -> Result<SearchResult> {
        check_search(self, queries, k)?;
        let coarse = self.probe(queries, self.effective_nprobe(params)?)?;
        self.search_preassigned(queries, k, &coarse, params)
    }

    fn range_search_with(
        &self,
        queries: &[f32],
        radius: f32,
        params: &SearchParams<'_>,
    ) -> Result<RangeSearchResult> {
        check_queries(self, queries)?;
        let coarse = self.probe(queries, self.effective_nprobe(params)?)?;
        self.range_search_preassigned(queries, radius, &coarse, params)
    }

    fn reconstruct(&self, id: Idx) -> Result<Vec<f32>> {
        let (list, offset) = self.direct_map.get(id)?;
        self.reconstruct_from_offset(list, offset)
    }

    /// Works without a direct map, as Faiss's does: one pass over the lists picks out the
    /// ids in range. Unlike Faiss, which leaves a missing id's row uninitialised, an id
    /// in range that is not stored (removed, or never added) is an error naming it.
    fn reconstruct_n(&self, start: Idx, n: usize) -> Result<Vec<f32>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let end = usize::try_from(start)
            .ok()
            .and_then(|s| s.checked_add(n))
            .filter(|&e| e <= self.ntotal)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "ids {start}..{start}+{n} are out of range: the index holds {} vectors",
                    self.ntotal
                ))
            })? as Idx;
        let ids: Vec<Idx> = (start..end).collect();
        let mut out = vec![0.0; n * self.d];
        let mut found = vec![false; n];
        self.locate(&ids, |row, list, offset| {
            let x = self.reconstruct_from_offset(list, offset)?;
            out[row * self.d..(row + 1) * self.d].copy_from_slice(&x);
            found[row] = true;
            Ok(())
        })?;
        if let Some(missing) = found.iter().position(|&f| !f) {
            return Err(Error::IdNotFound(start + missing as Idx));
        }
        Ok(out)
    }

    /// Needs no direct map, as Faiss's does: the entries found are located in the lists.
    fn search_and_reconstruct(
        &self,
        queries: &[f32],
        k: usize,
        params: &SearchParams<'_>,
    ) -> Result<(SearchResult, Vec<f32>)> {
        let res = self.search_with(queries, k, params)?;
        let mut ids: Vec<Idx> = res.labels.iter().copied().filter(|&id| id >= 0).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut vectors = vec![Vec::new(); ids.len()];
        self.locate(&ids, |i, list, offset| {
            vectors[i] = self.reconstruct_from_offset(list, offset)?;
            Ok(())
        })?;
        let mut out = Vec::with_capacity(res.labels.len() * self.d);
        for id in &res.labels {
            match ids.binary_search(id).ok().map(|i| &vectors[i]) {
                Some(v) if !v.is_empty() => out.extend_from_slice(v),
                _ => out.extend(std::iter::repeat_n(f32::NAN, self.d)),
            }
        }
        Ok((res, out))
    }

    fn ids_are_positions(&self) -> bool {
        false
    }
    fn remove_ids(&mut self, selector: &dyn IdSelector) -> Result<usize> {
        self.remove_where(selector)
    }

    fn reset(&mut self) -> Result<()> {
        if self.invlists.is_read_only() {
            // The mapped file stays as it is; the index lets go of it and starts empty.
            self.invlists = self.codec.new_lists(self.nlist);
        } else {
            self.invlists.reset()?;
        }
        self.direct_map.clear();
        self.ntotal = 0;
        Ok(())
    }

    fn parameter_ranges(&self) -> Vec<crate::autotune::ParameterRange> {
        use crate::autotune::ParameterRange;
        // As Faiss: powers of two below nlist (up to 4096), the quantizer's own
        // parameters behind `quantizer_`, the codec's, and max_codes for a multi-index.
        let nprobe = (0..13u32)
            .map(|i| 1usize << i)
            .take_while(|&n| n < self.nlist)
            .map(|n| n as f64);
        let mut ranges = vec![ParameterRange::new("nprobe", nprobe)];
        for r in self.quantizer.parameter_ranges() {
            ranges.push(ParameterRange::new(
                format!("quantizer_{}", r.name),
                r.values,
            ));
        }
        ranges.extend(self.codec.parameter_ranges());
        if matches!(
            self.quantizer.view(),
            crate::IndexView::MultiIndexQuantizer(_)
        ) {
            let mut r = ParameterRange::powers_of_two("max_codes", 8, 19);
            r.values.push(f64::INFINITY);
            ranges.push(r);
        }
        ranges
    }

    fn set_param(&mut self, name: &str, value: f64) -> Result<()> {
        if self.set_ivf_param(name, value)? {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "{} has no run-time parameter {name:?} (it has nprobe, max_codes, \
                 parallel_mode, by_residual, quantizer_trains_alone, quantizer_<name> and the codec's own)",
                self.description()
            )))
        }
    }

    fn param(&self, name: &str) -> Option<f64> {
        match name {
            "nprobe" => Some(self.nprobe as f64),
            "max_codes" => Some(self.max_codes as f64),
            "by_residual" => Some(if self.by_residual { 1.0 } else { 0.0 }),
            "quantizer_trains_alone" => Some(match self.quantizer_training {
                QuantizerTraining::Kmeans => 0.0,
                QuantizerTraining::Alone => 1.0,
                QuantizerTraining::KmeansThenAdd => 2.0,
            }),
            // `Auto` (the default) has no number of its own in set_param.
            "parallel_mode" => match self.parallel_mode {
                ParallelMode::Queries => Some(0.0),
                ParallelMode::Lists => Some(1.0),
                ParallelMode::Auto => None,
            },
            _ => match (name.strip_prefix("quantizer_"), name.strip_prefix("cp.")) {
                (Some(rest), _) => self.quantizer.param(rest),
                (_, Some(field)) => clustering_param(&self.cp, field),
                _ => self.codec.param(name),
            },
        }
    }

    fn description(&self) -> String {
        format!(
            "{},{}",
            self.coarse_description(),
            self.codec.description(self.by_residual)
        )
    }

    fn sa_code_size(&self) -> Result<usize> {
        Ok(self.sa_code_size_ivf())
    }
    fn sa_encode(&self, x: &[f32]) -> Result<Vec<u8>> {
        self.sa_encode_ivf(x)
    }
    fn sa_decode(&self, codes: &[u8]) -> Result<Vec<f32>> {
        self.sa_decode_ivf(codes)
    }
    fn add_sa_codes(&mut self, codes: &[u8], ids: Option<&[Idx]>) -> Result<()> {
        self.add_sa_codes_ivf(codes, ids)
    }

    fn view(&self) -> crate::IndexView<'_> {
        crate::IndexView::Ivf(self)
    }

    fn view_mut(&mut self) -> crate::IndexViewMut<'_> {
        crate::IndexViewMut::Ivf(self)
    }
    fn part_mut(&mut self, part: crate::Part) -> Option<&mut dyn Index> {
        (part == crate::Part::Quantizer).then(|| self.quantizer_mut())
    }

    fn merge_from(&mut self, other: &mut dyn Index, add_id: Idx) -> Result<()> {
        self.merge_from_ivf(other, add_id)
    }
}

/// Sets the field `field` of clustering parameters from a number (booleans as 0/1);
/// `Ok(false)` for a name that is not a field.
fn set_clustering_param(cp: &mut ClusteringParameters, field: &str, value: f64) -> Result<bool> {
    use crate::param_values::{count, flag, positive};
    let name = format!("cp.{field}");
    match field {
        "niter" => cp.niter = positive(&name, value)?,
        "nredo" => cp.nredo = positive(&name, value)?,
        "min_points_per_centroid" => cp.min_points_per_centroid = count(&name, value)?,
        "max_points_per_centroid" => cp.max_points_per_centroid = positive(&name, value)?,
        "seed" => {
            if value.fract() != 0.0 || !(i64::MIN as f64..=i64::MAX as f64).contains(&value) {
                return Err(Error::invalid(format!("{name} is an integer, got {value}")));
            }
            cp.seed = value as i64;
        }
        "spherical" => cp.spherical = flag(&name, value)?,
        "int_centroids" => cp.int_centroids = flag(&name, value)?,
        "frozen_centroids" => cp.frozen_centroids = flag(&name, value)?,
        "update_index" => cp.update_index = flag(&name, value)?,
        "early_stop_threshold" => {
            if !(value.is_finite() && value >= 0.0) {
                return Err(Error::invalid(format!(
                    "{name} must be a number ≥ 0, got {value}"
                )));
            }
            cp.early_stop_threshold = value;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// The field `field` of clustering parameters as a number (booleans as 0/1).
fn clustering_param(cp: &ClusteringParameters, field: &str) -> Option<f64> {
    let b = |v: bool| if v { 1.0 } else { 0.0 };
    Some(match field {
        "niter" => cp.niter as f64,
        "nredo" => cp.nredo as f64,
        "min_points_per_centroid" => cp.min_points_per_centroid as f64,
        "max_points_per_centroid" => cp.max_points_per_centroid as f64,
        "seed" => cp.seed as f64,
        "spherical" => b(cp.spherical),
        "int_centroids" => b(cp.int_centroids),
        "frozen_centroids" => b(cp.frozen_centroids),
        "update_index" => b(cp.update_index),
        "early_stop_threshold" => cp.early_stop_threshold,
        _ => return None,
    })
}
