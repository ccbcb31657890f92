//! The inverted-file family: a coarse quantizer sends each vector to one of `nlist`
//! lists, a per-list codec stores it, and a search scans only the `nprobe` lists nearest
//! to the query.
//!
//! [`IndexIvf`] holds everything the codecs share (training of the coarse quantizer,
//! assignment, residuals, the lists, the direct map, search over probed lists, removal,
//! merging, subsets); an [`IvfCodec`] supplies the encoding and the [`ListScanner`].

mod codec;
mod dyn_ivf;
mod fastscan;
mod flat;
mod imi;
mod pq;
mod pqr;
mod sq;
mod subset;
mod transaction;

use std::borrow::Cow;
use std::sync::OnceLock;

use fathom_core::{
    Error, IdSelector, Idx, MetricType, RangeSearchResult, Result, SearchParams, SearchResult,
    check,
};
pub use fathom_invlists::{DirectMap, DirectMapType, InvertedLists};
use fathom_kernels::TopK;
use fathom_linalg::{ClusteringParameters, Kmeans};
use rayon::prelude::*;

pub use codec::{IvfCodec, IvfContext, ListScanner};
pub use dyn_ivf::{DynIvf, IvfCodecView};
pub use fastscan::{IndexIvfPqFastScan, IvfPqFastScan};
pub use flat::{IndexIvfFlat, IvfFlat};
pub use imi::MultiIndexQuantizer;
pub use pq::{IndexIvfPq, IvfPq};
pub use pqr::IndexIvfPqr;
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

use crate::code_scan::{radius_key, to_result};
use crate::{Index, check_queries, check_search};
use transaction::ListTransaction;

/// Coarse centroids kept in a table (rather than reconstructed per use) up to this many
/// floats.
const MAX_CACHED_CENTROID_FLOATS: usize = 1 << 26;
/// Average number of queries per probed list from which a batch is searched list by
/// list (one matrix product per list) rather than query by query. Measured on 50k × 64,
/// IVF256, 200 queries, one thread (`fathom bench --batch 200` against `--batch 1`): list
/// by list is 0.87× query by query at 12.5 queries a list, even at ~19, 1.05× at 25, 1.3×
/// at 37.5.
const LIST_MAJOR_MIN_SHARING: usize = 20;
/// Queries searched together by the list-major path (bounds the heaps held per worker).
const LIST_MAJOR_QUERY_BLOCK: usize = 2048;

/// Bytes of codes a single query must scan (estimated) before its lists are spread over
/// threads: below this, waking the pool for every query costs more than it saves
/// (measured: splitting 62 KiB of fast-scan codes made single queries 0.6× faiss).
const MIN_BYTES_TO_SPLIT_A_QUERY: usize = 1024 * 1024;
/// Rows assigned and encoded together when adding (Faiss's block size).
const ADD_BLOCK: usize = 65536;
/// Rows encoded per parallel task when adding.
const ADD_CHUNK: usize = 1024;

/// At most `max` rows of `x` (all when `max` is 0), chosen as Faiss's
/// `fvecs_maybe_subsample` does (seed 1234; `fathom_linalg`'s one subsampling function), so
/// an encoder trains on the same points as in Faiss.
fn subsample(x: &[f32], d: usize, max: usize) -> Cow<'_, [f32]> {
    match (max > 0)
        .then(|| fathom_linalg::sample::subsample(x, d, max, 1234))
        .flatten()
    {
        Some(rows) => Cow::Owned(rows),
        None => Cow::Borrowed(x),
    }
}

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

/// How [`IndexIvf::search_preassigned`] spreads a batch over threads
/// (`IndexIvf::search_plan` chooses).
#[derive(Debug, Clone, Copy, PartialEq)]
enum SearchPlan {
    /// List by list, each list compared with all its queries in one matrix product.
    ListMajor,
    /// One query on the calling thread.
    Inline,
    /// Queries in parallel, each scanning its lists in turn.
    ByQueries,
    /// Each query in turn, its lists split in parts of `per` scanned in parallel.
    ByLists { per: usize },
}

/// Per-worker buffers of the list-major search.
struct ListMajorScratch {
    tops: Vec<TopK>,
    base: Vec<f32>,
    xq: Vec<f32>,
    ip: Vec<f32>,
    xn: Vec<f32>,
    qn: Vec<f32>,
}

impl ListMajorScratch {
    fn new(nq: usize, k: usize) -> Self {
        ListMajorScratch {
            tops: (0..nq).map(|_| TopK::new(k)).collect(),
            base: Vec::new(),
            xq: Vec::new(),
            ip: Vec::new(),
            xn: Vec::new(),
            qn: Vec::new(),
        }
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

    fn train_quantizer(&mut self, x: &[f32]) -> Result<()> {
        if self.quantizer.is_trained() && self.quantizer.ntotal() == self.nlist {
            return Ok(());
        }
        match self.quantizer_training {
            QuantizerTraining::Alone => {
                self.quantizer.train(x)?;
                if self.quantizer.ntotal() != self.nlist {
                    return Err(Error::invalid(format!(
                        "the quantizer trained alone holds {} centroids; the index has {} lists",
                        self.quantizer.ntotal(),
                        self.nlist
                    )));
                }
            }
            QuantizerTraining::Kmeans | QuantizerTraining::KmeansThenAdd => {
                let mut km = Kmeans::new(self.d, self.nlist)?
                    .with_params(self.cp.clone())
                    .with_metric(self.metric)?;
                let flat = matches!(self.quantizer.view(), crate::IndexView::Flat(_));
                if flat || self.quantizer_training == QuantizerTraining::KmeansThenAdd {
                    // An exact quantizer assigns exactly as k-means' own engine does.
                    km.train(x)?;
                } else {
                    km.train_with_assigner(
                        x,
                        &mut crate::IndexAssigner(&mut *self.quantizer),
                        &mut |_| {},
                    )?;
                }
                self.quantizer.reset()?;
                if !self.quantizer.is_trained() {
                    self.quantizer.train(km.centroids()).map_err(|e| {
                        e.context(format!(
                            "training the quantizer {} on the {} k-means centroids",
                            self.quantizer.description(),
                            self.nlist
                        ))
                    })?;
                }
                self.quantizer.add(km.centroids())?;
            }
        }
        self.centroids = OnceLock::new();
        self.codec.invalidate();
        Ok(())
    }

    /// Adds vectors with explicit ids (`Some`) or sequential ones; atomic: on error no
    /// list changes.
    fn add_core(&mut self, x: &[f32], ids: Option<&[Idx]>) -> Result<()> {
        self.check_writable("add to")?;
        if !self.is_trained() {
            return Err(Error::NotTrained(format!("add to {}", self.description())));
        }
        let n = check::vectors("added", x, self.d)?;
        check::finite("added", x, self.d)?;
        if let Some(ids) = ids {
            check::ids(ids, n)?;
        }
        self.direct_map.check_can_add(ids.is_some())?;
        if n == 0 {
            return Ok(());
        }
        // Blocks of rows, as Faiss: the codes buffer stays small (for IVF-Flat a copy of
        // the whole input would double the peak memory of a large add).
        let d = self.d;
        self.transact(|ix, tx| {
            for start in (0..n).step_by(ADD_BLOCK) {
                let end = (start + ADD_BLOCK).min(n);
                let block_ids = ids.map(|ids| &ids[start..end]);
                ix.add_block(&x[start * d..end * d], block_ids, tx)?;
            }
            Ok(())
        })
    }

    /// Assigns, encodes and stores one block of checked rows.
    fn add_block(
        &mut self,
        x: &[f32],
        ids: Option<&[Idx]>,
        tx: &mut ListTransaction,
    ) -> Result<()> {
        let n = x.len() / self.d;
        let lists = self.assign(x)?;
        let cs = self.codec.code_size();
        let mut codes = Vec::new();
        codes
            .try_reserve_exact(n * cs)
            .map_err(|_| Error::invalid(format!("cannot allocate {} bytes for codes", n * cs)))?;
        codes.resize(n * cs, 0);
        {
            let ctx = self.context();
            let d = self.d;
            codes
                .par_chunks_mut(ADD_CHUNK * cs)
                .zip(x.par_chunks(ADD_CHUNK * d))
                .zip(lists.par_chunks(ADD_CHUNK))
                .try_for_each(|((c, xs), ls)| {
                    let r = self.residuals(&ctx, xs, ls)?;
                    self.codec.encode(&r, c)
                })?;
        }
        self.add_codes_core(&lists, &codes, ids, tx)
    }

    /// Appends pre-computed codes to their lists (ids sequential when `ids` is `None`);
    /// on error the lists are restored.
    fn add_codes_core(
        &mut self,
        lists: &[Idx],
        codes: &[u8],
        ids: Option<&[Idx]>,
        tx: &mut ListTransaction,
    ) -> Result<()> {
        let n = lists.len();
        let cs = self.codec.code_size();
        let id_of = |i: usize| ids.map_or((self.ntotal + i) as Idx, |ids| ids[i]);
        // Counting sort by list: one add_entries call per list.
        let mut count = vec![0usize; self.nlist + 1];
        for &l in lists {
            if l < 0 || l as usize >= self.nlist {
                return Err(Error::invalid(format!(
                    "list number {l} is out of range: there are {} lists",
                    self.nlist
                )));
            }
            count[l as usize + 1] += 1;
        }
        for i in 0..self.nlist {
            count[i + 1] += count[i];
        }
        let mut order = vec![0usize; n];
        let mut pos = count.clone();
        for (i, &l) in lists.iter().enumerate() {
            order[pos[l as usize]] = i;
            pos[l as usize] += 1;
        }
        let mut placed = Vec::with_capacity(n);
        for l in (0..self.nlist).filter(|&l| count[l + 1] > count[l]) {
            let members = &order[count[l]..count[l + 1]];
            let lids: Vec<Idx> = members.iter().map(|&i| id_of(i)).collect();
            let mut lcodes = Vec::with_capacity(members.len() * cs);
            for &i in members {
                lcodes.extend_from_slice(&codes[i * cs..(i + 1) * cs]);
            }
            tx.appending(&*self.invlists, l);
            let offset = self.invlists.add_entries(l, &lids, &lcodes)?;
            placed.extend(lids.iter().enumerate().map(|(j, &id)| (id, l, offset + j)));
        }
        for (id, l, o) in placed {
            self.direct_map.add_single(id, l, o);
        }
        self.ntotal += n;
        Ok(())
    }

    /// Adds codes computed elsewhere (`n × code_size` bytes) to the given lists with the
    /// given ids (sequential ids when `None`), as Faiss's `add_core` with precomputed
    /// assignments.
    pub fn add_preassigned_codes(
        &mut self,
        lists: &[Idx],
        codes: &[u8],
        ids: Option<&[Idx]>,
    ) -> Result<()> {
        let n = check::codes("codes", codes, self.codec.code_size())?;
        check::output_len("list assignments", lists.len(), n)?;
        if let Some(ids) = ids {
            check::ids(ids, n)?;
        }
        self.direct_map.check_can_add(ids.is_some())?;
        self.transact(|ix, tx| ix.add_codes_core(lists, codes, ids, tx))
    }

    /// The coarse step of a search: the `nprobe` nearest lists of each query and the
    /// distances to their centroids.
    pub fn probe(&self, queries: &[f32], nprobe: usize) -> Result<SearchResult> {
        self.quantizer.search(queries, nprobe)
    }

    fn effective_nprobe(&self, params: &SearchParams<'_>) -> Result<usize> {
        let nprobe = params.nprobe.unwrap_or(self.nprobe);
        if nprobe == 0 {
            return Err(Error::invalid(
                "nprobe is 0; at least one list must be probed",
            ));
        }
        Ok(nprobe.min(self.nlist))
    }

    /// Scans the probed lists `lists` (with centroid distances `dis`) of one query into
    /// `top`; returns the number of codes looked at.
    fn scan_lists(
        &self,
        ctx: IvfContext<'_>,
        query: &[f32],
        (lists, dis): (&[Idx], &[f32]),
        top: &mut TopK,
        selector: Option<&dyn IdSelector>,
        max_codes: usize,
    ) -> Result<usize> {
        let mut scanner = self.codec.scanner(ctx, query)?;
        let mut scanned = 0;
        for (&l, &cd) in lists.iter().zip(dis) {
            if l < 0 || l as usize >= self.nlist {
                continue;
            }
            let list = l as usize;
            let n = self.invlists.list_size(list);
            if n == 0 {
                continue;
            }
            scanner.set_list(list, cd)?;
            scanner.scan(
                self.invlists.codes(list),
                self.invlists.ids(list),
                top,
                selector,
            );
            scanned += n;
            if max_codes > 0 && scanned >= max_codes {
                break;
            }
        }
        Ok(scanned)
    }

    /// Search with the coarse step already done (`coarse`: `nprobe` lists per query from
    /// [`IndexIvf::probe`]), as Faiss's `search_preassigned`.
    pub fn search_preassigned(
        &self,
        queries: &[f32],
        k: usize,
        coarse: &SearchResult,
        params: &SearchParams<'_>,
    ) -> Result<SearchResult> {
        let nq = check_search(self, queries, k)?;
        let nprobe = coarse.k;
        check::output_len("coarse assignments", coarse.labels.len(), nq * nprobe)?;
        check::output_len("coarse distances", coarse.distances.len(), nq * nprobe)?;
        // On-disk lists read the probed lists ahead; in-memory lists ignore the hint.
        let mut probed: Vec<usize> = coarse
            .labels
            .iter()
            .filter(|&&l| l >= 0 && (l as usize) < self.nlist)
            .map(|&l| l as usize)
            .collect();
        probed.sort_unstable();
        probed.dedup();
        self.invlists.prefetch_lists(&probed);
        let ctx = self.context();
        let sel = params.selector;
        let d = self.d;
        let one = |q: usize, lists: &[Idx], dis: &[f32], max_codes: usize| -> Result<TopK> {
            let mut top = TopK::new(k);
            let x = &queries[q * d..(q + 1) * d];
            self.scan_lists(ctx, x, (lists, dis), &mut top, sel, max_codes)?;
            Ok(top)
        };
        let tops: Vec<TopK> = match self.search_plan(nq, nprobe) {
            SearchPlan::ListMajor => self.search_list_major(ctx, queries, k, coarse, sel)?,
            SearchPlan::Inline => vec![one(0, &coarse.labels, &coarse.distances, self.max_codes)?],
            SearchPlan::ByQueries => (0..nq)
                .into_par_iter()
                .map(|q| {
                    let r = q * nprobe..(q + 1) * nprobe;
                    one(
                        q,
                        &coarse.labels[r.clone()],
                        &coarse.distances[r],
                        self.max_codes,
                    )
                })
                .collect::<Result<_>>()?,
            SearchPlan::ByLists { per } => {
                // max_codes is shared out evenly between the parts.
                let parts = nprobe.div_ceil(per);
                let part_codes = self.max_codes.div_ceil(parts);
                (0..nq)
                    .map(|q| {
                        let labels = &coarse.labels[q * nprobe..(q + 1) * nprobe];
                        let dis = &coarse.distances[q * nprobe..(q + 1) * nprobe];
                        labels
                            .par_chunks(per)
                            .zip(dis.par_chunks(per))
                            .map(|(l, dd)| one(q, l, dd, part_codes))
                            .try_reduce(
                                || TopK::new(k),
                                |mut a, b| {
                                    a.merge(&b);
                                    Ok(a)
                                },
                            )
                    })
                    .collect::<Result<_>>()?
            }
        };
        to_result(tops, k, self.metric, |_, key| key)
    }

    /// How a batch of `nq` queries probing `nprobe` lists each is searched: the one
    /// place the rules of thumb live.
    fn search_plan(&self, nq: usize, nprobe: usize) -> SearchPlan {
        let threads = rayon::current_num_threads();
        // Many queries sharing lists: compare each list with all the queries that probe
        // it at once, so the list is read once per batch rather than once per query.
        let sharing = nq * nprobe / self.nlist.max(1);
        if self.parallel_mode == ParallelMode::Auto
            && self.max_codes == 0
            && nq >= 2 * threads
            && sharing >= LIST_MAJOR_MIN_SHARING
            && self.invlists.block_layout().is_none()
            && self.codec.decodes_lists()
        {
            return SearchPlan::ListMajor;
        }
        let by_queries = match self.parallel_mode {
            ParallelMode::Queries => true,
            ParallelMode::Lists => false,
            // Splitting one query's lists pays off only when there is enough to scan.
            ParallelMode::Auto => {
                let bytes = nprobe * self.ntotal / self.nlist.max(1) * self.codec.code_size();
                nq >= threads || bytes < MIN_BYTES_TO_SPLIT_A_QUERY
            }
        };
        if nq == 1 && (by_queries || nprobe == 1) {
            SearchPlan::Inline
        } else if by_queries {
            SearchPlan::ByQueries
        } else {
            SearchPlan::ByLists {
                per: nprobe.div_ceil(threads * 2).max(1),
            }
        }
    }

    /// The list-major batch search: for a block of queries, each probed list is decoded
    /// once and compared with all its queries by one matrix product (`‖q‖² + ‖x‖² −
    /// 2⟨q, x⟩`, or `−⟨q, x⟩`), with residual queries `q − c` when residuals are encoded.
    fn search_list_major(
        &self,
        ctx: IvfContext<'_>,
        queries: &[f32],
        k: usize,
        coarse: &SearchResult,
        sel: Option<&dyn IdSelector>,
    ) -> Result<Vec<TopK>> {
        let (d, nprobe) = (self.d, coarse.k);
        let nq = queries.len() / d;
        let l2 = self.metric == MetricType::L2;
        let mut tops = Vec::with_capacity(nq);
        for q0 in (0..nq).step_by(LIST_MAJOR_QUERY_BLOCK) {
            let q1 = (q0 + LIST_MAJOR_QUERY_BLOCK).min(nq);
            // For each list, the (query, centroid distance) pairs that probe it.
            let mut start = vec![0usize; self.nlist + 1];
            for &l in &coarse.labels[q0 * nprobe..q1 * nprobe] {
                if l >= 0 && (l as usize) < self.nlist {
                    start[l as usize + 1] += 1;
                }
            }
            for l in 0..self.nlist {
                start[l + 1] += start[l];
            }
            let mut fill = start.clone();
            let mut probes = vec![(0u32, 0.0f32); start[self.nlist]];
            for q in q0..q1 {
                for p in 0..nprobe {
                    let l = coarse.labels[q * nprobe + p];
                    if l >= 0 && (l as usize) < self.nlist {
                        probes[fill[l as usize]] =
                            ((q - q0) as u32, coarse.distances[q * nprobe + p]);
                        fill[l as usize] += 1;
                    }
                }
            }
            let lists: Vec<usize> = (0..self.nlist)
                .filter(|&l| start[l + 1] > start[l] && self.invlists.list_size(l) > 0)
                .collect();
            let nb = q1 - q0;
            let block = lists
                .par_iter()
                .try_fold(
                    || ListMajorScratch::new(nb, k),
                    |mut st, &l| -> Result<ListMajorScratch> {
                        let n = self.invlists.list_size(l);
                        let group = &probes[start[l]..start[l + 1]];
                        let g = group.len();
                        st.base.resize(n * d, 0.0);
                        self.codec.decode_list(self.invlists.codes(l), &mut st.base);
                        st.xq.clear();
                        let centroid = if self.by_residual && l2 {
                            Some(ctx.centroid(l)?)
                        } else {
                            None
                        };
                        for &(q, _) in group {
                            let x = &queries[(q0 + q as usize) * d..(q0 + q as usize + 1) * d];
                            match &centroid {
                                Some(c) => st.xq.extend(x.iter().zip(c.iter()).map(|(a, b)| a - b)),
                                None => st.xq.extend_from_slice(x),
                            }
                        }
                        st.ip.resize(g * n, 0.0);
                        // Shapes are consistent by construction.
                        let _ = fathom_kernels::matmul_abt(&st.xq, &st.base, d, 1.0, &mut st.ip);
                        if l2 {
                            // The SIMD kernel: a scalar sum here was 40 % of a batch's
                            // time (issue 26's batch slower than single queries).
                            st.xn.resize(n, 0.0);
                            let _ = fathom_kernels::l2_norms_sqr_into(&st.base, d, &mut st.xn);
                            st.qn.resize(g, 0.0);
                            let _ = fathom_kernels::l2_norms_sqr_into(&st.xq, d, &mut st.qn);
                        }
                        let ids = self.invlists.ids(l);
                        for (j, &(q, cd)) in group.iter().enumerate() {
                            let row = &mut st.ip[j * n..(j + 1) * n];
                            if l2 {
                                let qn = st.qn[j];
                                for (v, &xn) in row.iter_mut().zip(&st.xn) {
                                    *v = (qn + xn - 2.0 * *v).max(0.0);
                                }
                            } else {
                                // Inner product over residuals adds ⟨q, c⟩.
                                let b = if self.by_residual { cd } else { 0.0 };
                                row.iter_mut().for_each(|v| *v = -(*v + b));
                            }
                            st.tops[q as usize]
                                .push_ids(row, ids, |id| sel.is_none_or(|s| s.is_member(id)));
                        }
                        Ok(st)
                    },
                )
                .map(|st| st.map(|st| st.tops))
                .try_reduce(
                    || (0..nb).map(|_| TopK::new(k)).collect(),
                    |mut a, b| {
                        for (x, y) in a.iter_mut().zip(&b) {
                            x.merge(y);
                        }
                        Ok(a)
                    },
                )?;
            tops.extend(block);
        }
        Ok(tops)
    }

    /// Every entry within `radius` of each query among its probed lists.
    pub fn range_search_preassigned(
        &self,
        queries: &[f32],
        radius: f32,
        coarse: &SearchResult,
        params: &SearchParams<'_>,
    ) -> Result<RangeSearchResult> {
        let nq = check_queries(self, queries)?;
        if radius.is_nan() {
            return Err(Error::invalid("radius is NaN; expected a number"));
        }
        let nprobe = coarse.k;
        check::output_len("coarse assignments", coarse.labels.len(), nq * nprobe)?;
        check::output_len("coarse distances", coarse.distances.len(), nq * nprobe)?;
        let ctx = self.context();
        let sel = params.selector;
        let rkey = radius_key(self.metric, radius);
        let sign = if self.metric.is_similarity() {
            -1.0
        } else {
            1.0
        };
        let d = self.d;
        let lists: Vec<(Vec<Idx>, Vec<f32>)> = (0..nq)
            .into_par_iter()
            .map(|q| -> Result<(Vec<Idx>, Vec<f32>)> {
                let x = &queries[q * d..(q + 1) * d];
                let mut scanner = self.codec.scanner(ctx, x)?;
                let (mut out_ids, mut out_dis) = (Vec::new(), Vec::new());
                let mut keys = Vec::new();
                let mut scanned = 0;
                for p in 0..nprobe {
                    let l = coarse.labels[q * nprobe + p];
                    if l < 0 || l as usize >= self.nlist {
                        continue;
                    }
                    let list = l as usize;
                    let n = self.invlists.list_size(list);
                    if n == 0 {
                        continue;
                    }
                    scanner.set_list(list, coarse.distances[q * nprobe + p])?;
                    keys.resize(n, 0.0);
                    scanner.keys(self.invlists.codes(list), &mut keys);
                    for (&key, &id) in keys.iter().zip(self.invlists.ids(list)) {
                        if key < rkey && sel.is_none_or(|s| s.is_member(id)) {
                            out_ids.push(id);
                            out_dis.push(sign * key);
                        }
                    }
                    scanned += n;
                    if self.max_codes > 0 && scanned >= self.max_codes {
                        break;
                    }
                }
                Ok((out_ids, out_dis))
            })
            .collect::<Result<_>>()?;
        Ok(RangeSearchResult::from_lists(lists))
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

    /// The entries of `list` as flat codes (unpacked from blocks when needed).
    fn flat_codes(&self, list: usize) -> Cow<'_, [u8]> {
        if self.invlists.block_layout().is_none() {
            return Cow::Borrowed(self.invlists.codes(list));
        }
        let n = self.invlists.list_size(list);
        let mut out = Vec::with_capacity(n * self.codec.code_size());
        for o in 0..n {
            out.extend_from_slice(&self.invlists.code(list, o));
        }
        Cow::Owned(out)
    }

    fn check_compatible(&self, other: &Self) -> Result<()> {
        let mismatch = |what: &str, a: String, b: String| {
            Err(Error::invalid(format!(
                "cannot merge: {what} differ ({a} here, {b} in the other index)"
            )))
        };
        if self.d != other.d {
            return mismatch("dimensions", self.d.to_string(), other.d.to_string());
        }
        if self.nlist != other.nlist {
            return mismatch(
                "list counts",
                self.nlist.to_string(),
                other.nlist.to_string(),
            );
        }
        if self.metric != other.metric {
            return mismatch(
                "metrics",
                format!("{:?}", self.metric),
                format!("{:?}", other.metric),
            );
        }
        if self.codec.description(false) != other.codec.description(false)
            || self.codec.code_size() != other.codec.code_size()
        {
            return mismatch(
                "codecs",
                self.codec.description(self.by_residual),
                other.codec.description(other.by_residual),
            );
        }
        if self.by_residual != other.by_residual {
            return mismatch(
                "residual encodings",
                self.by_residual.to_string(),
                other.by_residual.to_string(),
            );
        }
        if self.direct_map.kind() == DirectMapType::Array
            || other.direct_map.kind() == DirectMapType::Array
        {
            return Err(Error::Unsupported(
                "cannot merge indexes with an array direct map; use the hashtable map".into(),
            ));
        }
        Ok(())
    }

    /// Moves every entry of `other` into this index, adding `add_id` to their ids, and
    /// leaves `other` empty (Faiss's `merge_from`). Both must have the same dimension,
    /// lists, metric and codec; the coarse quantizers are assumed equal (trained once and
    /// copied, the usual workflow), as Faiss does.
    pub fn merge_from(&mut self, other: &mut Self, add_id: Idx) -> Result<()> {
        self.check_writable("merge into")?;
        other.check_writable("merge (and empty)")?;
        self.check_compatible(other)?;
        self.transact(|ix, tx| {
            for l in 0..ix.nlist {
                let n = other.invlists.list_size(l);
                if n == 0 {
                    continue;
                }
                let ids: Vec<Idx> = other
                    .invlists
                    .ids(l)
                    .iter()
                    .map(|&id| id.saturating_add(add_id))
                    .collect();
                tx.appending(&*ix.invlists, l);
                ix.invlists.add_entries(l, &ids, &other.flat_codes(l))?;
            }
            ix.ntotal += other.ntotal;
            let kind = ix.direct_map.kind();
            ix.direct_map.set_type(kind, &*ix.invlists, ix.ntotal)
        })?;
        // Emptied only once the entries are in: a failure here leaves them in both
        // indexes (as the error says), never in neither.
        other.reset().map_err(|e| {
            e.context("the entries were merged, but emptying the merged-from index failed")
        })
    }

    /// Copies the entries `subset` selects into `other` (which must be compatible), as
    /// Faiss's `copy_subset_to`; returns how many were copied.
    pub fn copy_subset_to(&self, other: &mut Self, subset: SubsetType) -> Result<usize> {
        other.check_writable("copy a subset into")?;
        self.check_compatible(other)?;
        subset.validate()?;
        let ntotal = self.invlists.compute_ntotal();
        let mut accu = subset::Accumulator::default();
        other.transact(|other, tx| {
            let mut added = 0;
            for l in 0..self.nlist {
                let ids = self.invlists.ids(l);
                let picked = subset.pick(l, ids, ntotal, &mut accu);
                if picked.is_empty() {
                    continue;
                }
                let codes: Vec<u8> = picked
                    .iter()
                    .flat_map(|&o| self.invlists.code(l, o).into_owned())
                    .collect();
                let pids: Vec<Idx> = picked.iter().map(|&o| ids[o]).collect();
                tx.appending(&*other.invlists, l);
                other.invlists.add_entries(l, &pids, &codes)?;
                added += pids.len();
                // Counted as it goes, so the count never lags the lists.
                other.ntotal += pids.len();
            }
            let kind = other.direct_map.kind();
            other
                .direct_map
                .set_type(kind, &*other.invlists, other.ntotal)?;
            Ok(added)
        })
    }

    /// Replaces the vectors with ids `ids` by the rows of `x` (re-assigned and re-encoded;
    /// an entry may move to another list). Needs a direct map.
    pub fn update_vectors(&mut self, ids: &[Idx], x: &[f32]) -> Result<()> {
        self.check_writable("update vectors of")?;
        let n = check::vectors("updated", x, self.d)?;
        check::finite("updated", x, self.d)?;
        check::ids(ids, n)?;
        if !self.direct_map.is_enabled() {
            return Err(Error::Unsupported(
                "update_vectors needs a direct map: call make_direct_map() first".into(),
            ));
        }
        // Every id must exist before anything changes.
        for &id in ids {
            self.direct_map.get(id)?;
        }
        let lists = self.assign(x)?;
        let cs = self.codec.code_size();
        let mut codes = vec![0u8; n * cs];
        {
            let ctx = self.context();
            let r = self.residuals(&ctx, x, &lists)?;
            self.codec.encode(&r, &mut codes)?;
        }
        self.transact(|ix, tx| {
            for (i, &id) in ids.iter().enumerate() {
                let (old_list, offset) = ix.direct_map.get(id)?;
                let new_list = lists[i] as usize;
                let code = &codes[i * cs..(i + 1) * cs];
                tx.rewriting(&*ix.invlists, old_list);
                if new_list == old_list {
                    ix.invlists.update_entries(old_list, offset, &[id], code)?;
                    continue;
                }
                // Fill the hole with the list's last entry, then append to the new list.
                let last = ix.invlists.list_size(old_list) - 1;
                if offset != last {
                    let last_id = ix.invlists.ids(old_list)[last];
                    let last_code = ix.invlists.code(old_list, last).into_owned();
                    ix.invlists
                        .update_entries(old_list, offset, &[last_id], &last_code)?;
                    ix.direct_map.add_single(last_id, old_list, offset);
                }
                ix.invlists.resize(old_list, last)?;
                tx.appending(&*ix.invlists, new_list);
                let o = ix.invlists.add_entries(new_list, &[id], code)?;
                ix.direct_map.add_single(id, new_list, o);
            }
            Ok(())
        })
    }

    /// Sizes of the lists and their balance.
    pub fn imbalance_factor(&self) -> f64 {
        self.invlists.imbalance_factor()
    }

    fn set_ivf_param(&mut self, name: &str, value: f64) -> Result<bool> {
        let as_count = |v: f64| -> Result<usize> {
            if v.is_finite() && v >= 0.0 && v.fract() == 0.0 {
                Ok(v as usize)
            } else {
                Err(Error::invalid(format!(
                    "{name} must be a non-negative integer, got {v}"
                )))
            }
        };
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
            _ => {
                if let Some(rest) = name.strip_prefix("quantizer_") {
                    self.quantizer.set_param(rest, value)?;
                    return Ok(true);
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
        check::nonempty_finite("training set", x, self.d)?;
        self.train_quantizer(x)?;
        let xs = &*subsample(x, self.d, self.codec.train_sample_size());
        let lists = if self.by_residual {
            self.assign(xs)?
        } else {
            Vec::new()
        };
        let r = {
            let ctx = self.context();
            self.residuals(&ctx, xs, &lists)?.into_owned()
        };
        let ctx = IvfContext {
            metric: self.metric,
            by_residual: self.by_residual,
            nlist: self.nlist,
            quantizer: &*self.quantizer,
            centroids: self.centroids.get().and_then(|c| c.as_deref()),
        };
        self.codec.train(&r, &lists, ctx)?;
        self.codec.invalidate();
        self.trained = true;
        Ok(())
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

    fn ids_are_positions(&self) -> bool {
        false
    }
    fn remove_ids(&mut self, selector: &dyn IdSelector) -> Result<usize> {
        self.check_writable("remove from")?;
        if self.direct_map.kind() == DirectMapType::Array {
            return Err(Error::Unsupported(
                "remove_ids with an array direct map (ids would stop being 0..ntotal); use \
                 the hashtable map"
                    .into(),
            ));
        }
        let mut removed = 0;
        for l in 0..self.nlist {
            let ids = self.invlists.ids(l);
            if !ids.iter().any(|&id| selector.is_member(id)) {
                continue;
            }
            let keep: Vec<usize> = (0..ids.len())
                .filter(|&o| !selector.is_member(ids[o]))
                .collect();
            let kept_ids: Vec<Idx> = keep.iter().map(|&o| ids[o]).collect();
            let kept_codes: Vec<u8> = keep
                .iter()
                .flat_map(|&o| self.invlists.code(l, o).into_owned())
                .collect();
            removed += ids.len() - keep.len();
            self.invlists.update_entries(l, 0, &kept_ids, &kept_codes)?;
            self.invlists.resize(l, kept_ids.len())?;
        }
        self.ntotal -= removed;
        let kind = self.direct_map.kind();
        self.direct_map
            .set_type(kind, &*self.invlists, self.ntotal)?;
        Ok(removed)
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
                 parallel_mode, quantizer_<name> and the codec's own)",
                self.description()
            )))
        }
    }

    fn param(&self, name: &str) -> Option<f64> {
        match name {
            "nprobe" => Some(self.nprobe as f64),
            "max_codes" => Some(self.max_codes as f64),
            // `Auto` (the default) has no number of its own in set_param.
            "parallel_mode" => match self.parallel_mode {
                ParallelMode::Queries => Some(0.0),
                ParallelMode::Lists => Some(1.0),
                ParallelMode::Auto => None,
            },
            _ => match name.strip_prefix("quantizer_") {
                Some(rest) => self.quantizer.param(rest),
                None => self.codec.param(name),
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

    fn view(&self) -> crate::IndexView<'_> {
        crate::IndexView::Ivf(self)
    }

    fn view_mut(&mut self) -> crate::IndexViewMut<'_> {
        crate::IndexViewMut::Ivf(self)
    }

    fn merge_from(&mut self, other: &mut dyn Index, add_id: Idx) -> Result<()> {
        self.merge_from_ivf(other, add_id)
    }
}
