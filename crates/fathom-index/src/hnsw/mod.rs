//! Graph search: HNSW over flat, scalar-quantized or product-quantized storage.
//!
//! [`IndexHnsw`] pairs a [`Hnsw`] graph (Faiss's layout, so it can be written in Faiss's
//! format) with a storage index implementing [`HnswStorage`]. The graph never sees
//! vectors, only distances by node id; the storage decides how they are computed (SIMD
//! on floats, on SQ codes, or through a PQ table).

mod build;
mod graph;
mod heap;
mod storage;
mod visited;

use fathom_core::{
    Error, IdSelector, Idx, MetricType, RangeSearchResult, Result, SearchParams, SearchResult,
    check,
};
use fathom_kernels::TopK;
use fathom_quant::QuantizerType;
use rayon::prelude::*;

pub(crate) use build::add_vertices_with;
pub use graph::{Hnsw, LeI32s, NeighborIds, NodeDistance};
pub use storage::{FlatQuery, HnswStorage, PqQueryDistance, SqQueryDistance};

use crate::code_scan::{key_sign, radius_key};
use crate::{Index, IndexFlat, IndexPq, IndexScalarQuantizer, check_queries, check_search};
use graph::BeamOpts;
use heap::MaxHeap;
use visited::with_visited;

/// HNSW over full vectors (Faiss's `IndexHNSWFlat`, factory `HNSW32`).
pub type IndexHnswFlat = IndexHnsw<IndexFlat>;
/// HNSW over scalar-quantizer codes (Faiss's `IndexHNSWSQ`, factory `HNSW32,SQ8`).
pub type IndexHnswSq = IndexHnsw<IndexScalarQuantizer>;
/// HNSW over product-quantizer codes (Faiss's `IndexHNSWPQ`, factory `HNSW32,PQ16`).
pub type IndexHnswPq = IndexHnsw<IndexPq>;

/// With an id selector, the search scans the allowed vectors exactly instead of walking
/// the graph when a sample of ids suggests fewer than this fraction of them are allowed
/// (a graph walk that may only keep 1 node in 50 visits most of the graph anyway, and
/// loses recall when the allowed nodes are not connected to each other).
pub const FILTER_BRUTE_FORCE_FRACTION: f64 = 0.02;

/// How many ids are sampled to estimate what fraction a selector allows.
const FILTER_SAMPLE: usize = 1024;

/// Hierarchical navigable small-world graph search (Faiss's `IndexHNSW`): approximate
/// k-NN that visits `O(log n)` nodes per query, over any [`HnswStorage`].
///
/// Parameters as Faiss's: `M` links per node (`2M` on layer 0), `efConstruction` (40) and
/// `efSearch` (16, at least `k` is used) on [`IndexHnsw::hnsw_mut`], or through
/// [`Index::set_param`] (`efSearch`, `efConstruction`, `search_bounded_queue`,
/// `check_relative_distance`, and `max_new_links` — set it to `M` before adding for
/// hnswlib's faster build, see [`Hnsw::max_new_links`]) and per call with [`SearchParams::with_ef_search`]. Node
/// levels are drawn as Faiss draws them (same generator and seed), so a build on one
/// thread is deterministic; with several threads nodes of one level are inserted in
/// parallel, each list under its own lock.
///
/// Ids are row numbers. Vectors cannot be removed (as in Faiss); [`Index::reset`] empties
/// the index. Searching an empty index gives empty slots (label `-1`), not an error;
/// vectors or queries with NaN or infinite values are refused with an error. Search with an id selector walks the graph keeping only allowed nodes, or
/// scans the allowed vectors exactly when the selector allows fewer than
/// [`FILTER_BRUTE_FORCE_FRACTION`] of them.
///
/// ```
/// use fathom_index::{Index, IndexHnswFlat, MetricType};
/// let d = 8;
/// let x: Vec<f32> = (0..2000 * d).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
/// let mut index = IndexHnswFlat::new_flat(d, 16, MetricType::L2).unwrap();
/// index.add(&x).unwrap();
/// let res = index.search(&x[40 * d..41 * d], 1).unwrap();
/// assert_eq!(res.distances[0], 0.0);
/// ```
#[derive(Debug, Clone)]
pub struct IndexHnsw<S: HnswStorage> {
    hnsw: Hnsw,
    storage: S,
}

impl IndexHnsw<IndexFlat> {
    /// An empty HNSW index over full vectors, `m` links per node.
    pub fn new_flat(d: usize, m: usize, metric: MetricType) -> Result<Self> {
        Self::with_storage(IndexFlat::new(d, metric)?, m)
    }
}

impl IndexHnsw<IndexScalarQuantizer> {
    /// An empty (untrained unless the quantizer needs no training) HNSW index over
    /// scalar-quantizer codes.
    pub fn new_sq(d: usize, qtype: QuantizerType, m: usize, metric: MetricType) -> Result<Self> {
        Self::with_storage(IndexScalarQuantizer::new(d, qtype, metric)?, m)
    }
}

impl IndexHnsw<IndexPq> {
    /// An empty, untrained HNSW index over PQ codes of `pq_m` sub-quantizers × `pq_nbits`.
    pub fn new_pq(
        d: usize,
        pq_m: usize,
        m: usize,
        pq_nbits: usize,
        metric: MetricType,
    ) -> Result<Self> {
        Self::with_storage(IndexPq::new(d, pq_m, pq_nbits, metric)?, m)
    }
}

impl<S: HnswStorage> IndexHnsw<S> {
    /// An index over an empty `storage`, `m` links per node.
    pub fn with_storage(storage: S, m: usize) -> Result<Self> {
        if storage.ntotal() != 0 {
            return Err(Error::invalid(format!(
                "HNSW storage must start empty (it holds {} vectors); use from_parts for a \
                 built graph",
                storage.ntotal()
            )));
        }
        Ok(IndexHnsw {
            hnsw: Hnsw::new(m)?,
            storage,
        })
    }

    /// An index from a built graph and its storage (e.g. read from a file); their node
    /// counts must agree.
    pub fn from_parts(hnsw: Hnsw, storage: S) -> Result<Self> {
        if hnsw.ntotal() != storage.ntotal() {
            return Err(Error::invalid(format!(
                "HNSW graph has {} nodes but its storage {} vectors",
                hnsw.ntotal(),
                storage.ntotal()
            )));
        }
        Ok(IndexHnsw { hnsw, storage })
    }

    /// The graph.
    pub fn hnsw(&self) -> &Hnsw {
        &self.hnsw
    }

    /// The graph, to change its search and build parameters.
    pub fn hnsw_mut(&mut self) -> &mut Hnsw {
        &mut self.hnsw
    }

    /// The storage index.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Bytes held by the graph (not counting the storage's vectors or codes).
    pub fn graph_memory_bytes(&self) -> usize {
        self.hnsw.memory_bytes()
    }

    /// One query's nearest nodes (keys smaller-is-better), nearest first.
    fn search_one(
        &self,
        q: &[f32],
        k: usize,
        ef: usize,
        sel: Option<&dyn IdSelector>,
        brute: bool,
    ) -> Vec<(f32, Idx)> {
        knn_one(
            &self.hnsw,
            &self.storage.prepare(q),
            self.ntotal(),
            k,
            ef,
            sel,
            brute,
        )
    }
}

/// Whether a search under `sel` should scan the `n` nodes instead of walking the graph:
/// when `sel` allows so few (estimated from a strided sample) that a beam search would
/// wander through rejected nodes.
pub(crate) fn scan_instead(n: usize, sel: Option<&dyn IdSelector>) -> bool {
    let Some(sel) = sel else { return false };
    let samples = n.min(FILTER_SAMPLE);
    if samples == 0 {
        return false;
    }
    let hits = (0..samples)
        .filter(|&i| sel.is_member((i * n / samples) as Idx))
        .count();
    (hits as f64 / samples as f64) < FILTER_BRUTE_FORCE_FRACTION
}

/// The `k` nearest of `n` graph nodes to a prepared query (keys smaller-is-better,
/// nearest first): a beam search of width `ef`, or a scan of every node when `brute` (a
/// selector that allows few nodes). Float and binary HNSW indexes both search with it.
pub(crate) fn knn_one<D: NodeDistance>(
    g: &Hnsw,
    dis: &D,
    n: usize,
    k: usize,
    ef: usize,
    sel: Option<&dyn IdSelector>,
    brute: bool,
) -> Vec<(f32, Idx)> {
    if n == 0 {
        return Vec::new();
    }
    if brute {
        let mut top = TopK::new(k);
        for id in 0..n {
            if sel.is_none_or(|s| s.is_member(id as Idx)) {
                top.push(dis.distance(id as u32), id as Idx);
            }
        }
        return top.into_sorted();
    }
    let accept_fn = sel.map(|s| move |id: u32| s.is_member(id as Idx));
    let opts = BeamOpts {
        ef: ef.max(k),
        accept: accept_fn.as_ref().map(|f| f as &dyn Fn(u32) -> bool),
    };
    with_visited(n, |vt| {
        let entry = g.descend(dis, 0);
        let heap = if g.search_bounded_queue {
            let mut out = MaxHeap::with_capacity(k.min(n) + 1);
            g.bounded_search(dis, entry, k, &opts, vt, &mut |_, _| {}, &mut out);
            out
        } else {
            g.beam_search(dis, entry, 0, &opts, vt, &mut |_, _| {})
        };
        heap.into_sorted()
            .into_iter()
            .take(k)
            .map(|c| (c.d, c.id as Idx))
            .collect()
    })
}

/// Every node within key `< radius_key` of a prepared query that a beam search of
/// width `ef` visits (and `sel` allows), nearest first.
pub(crate) fn range_one<D: NodeDistance>(
    g: &Hnsw,
    dis: &D,
    n: usize,
    radius_key: f32,
    ef: usize,
    sel: Option<&dyn IdSelector>,
) -> Vec<(f32, Idx)> {
    let mut found: Vec<(f32, Idx)> = Vec::new();
    if n > 0 {
        with_visited(n, |vt| {
            let entry = g.descend(dis, 0);
            let opts = BeamOpts { ef, accept: None };
            let mut visit = |id: u32, d: f32| {
                if d < radius_key && sel.is_none_or(|s| s.is_member(id as Idx)) {
                    found.push((d, id as Idx));
                }
            };
            g.beam_search(dis, entry, 0, &opts, vt, &mut visit);
        });
    }
    found.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    found
}

impl<S: HnswStorage> Index for IndexHnsw<S> {
    fn dim(&self) -> usize {
        self.storage.dim()
    }

    fn ntotal(&self) -> usize {
        self.storage.ntotal()
    }

    fn metric(&self) -> MetricType {
        self.storage.metric()
    }

    fn is_trained(&self) -> bool {
        self.storage.is_trained()
    }

    fn train(&mut self, x: &[f32]) -> Result<()> {
        self.storage.train(x)
    }

    fn add(&mut self, x: &[f32]) -> Result<()> {
        let n = check::vectors("added", x, self.dim())?;
        // Linking the graph compares vectors.
        check::metric_ready(self.metric())?;
        if !self.is_trained() {
            return Err(Error::NotTrained(format!(
                "add to {} (train its storage first)",
                self.description()
            )));
        }
        if n == 0 {
            return Ok(());
        }
        let n0 = self.ntotal();
        if n0 + n > i32::MAX as usize {
            return Err(Error::invalid(format!(
                "HNSW holds at most {} vectors (Faiss's 32-bit node ids); {n0} + {n} is more",
                i32::MAX
            )));
        }
        self.storage.add(x)?;
        if let Err(e) = build::add_vertices(&mut self.hnsw, &self.storage, x, n0) {
            // Keep storage and graph the same size: drop what the graph could not take.
            let sel = fathom_core::IdSelectorRange::new(n0 as Idx, (n0 + n) as Idx);
            let _ = self.storage.remove_ids(&sel);
            return Err(e);
        }
        Ok(())
    }

    fn search_with(
        &self,
        queries: &[f32],
        k: usize,
        params: &SearchParams<'_>,
    ) -> Result<SearchResult> {
        let nq = check_search(self, queries, k)?;
        let ef = params.ef_search.unwrap_or(self.hnsw.ef_search);
        if ef == 0 {
            return Err(Error::invalid("efSearch must be at least 1"));
        }
        let mut res = SearchResult::try_empty(nq, k, self.metric())?;
        let sel = params.selector;
        let brute = scan_instead(self.ntotal(), sel);
        let d = self.dim();
        let sign = key_sign(self.metric());
        let fill = |q: &[f32], dist: &mut [f32], lab: &mut [Idx]| {
            for (j, (key, id)) in self
                .search_one(q, k, ef, sel, brute)
                .into_iter()
                .enumerate()
            {
                dist[j] = sign * key;
                lab[j] = id;
            }
        };
        if nq == 1 {
            fill(queries, &mut res.distances, &mut res.labels);
        } else {
            queries
                .par_chunks(d)
                .zip(res.distances.par_chunks_mut(k))
                .zip(res.labels.par_chunks_mut(k))
                .for_each(|((q, dist), lab)| fill(q, dist, lab));
        }
        Ok(res)
    }

    fn range_search_with(
        &self,
        queries: &[f32],
        radius: f32,
        params: &SearchParams<'_>,
    ) -> Result<RangeSearchResult> {
        check_queries(self, queries)?;
        let ef = params.ef_search.unwrap_or(self.hnsw.ef_search).max(1);
        let n = self.ntotal();
        let key = radius_key(self.metric(), radius);
        let sign = key_sign(self.metric());
        let sel = params.selector;
        let lists: Vec<(Vec<Idx>, Vec<f32>)> = queries
            .par_chunks(self.dim())
            .map(|q| {
                let found = range_one(&self.hnsw, &self.storage.prepare(q), n, key, ef, sel);
                found.into_iter().map(|(d, id)| (id, sign * d)).unzip()
            })
            .collect();
        Ok(RangeSearchResult::from_lists(lists))
    }

    fn reconstruct(&self, id: Idx) -> Result<Vec<f32>> {
        self.storage.reconstruct(id)
    }

    fn reconstruct_n(&self, start: Idx, n: usize) -> Result<Vec<f32>> {
        self.storage.reconstruct_n(start, n)
    }

    fn compute_distances(&self, query: &[f32], ids: &[Idx], out: &mut [f32]) -> Result<()> {
        self.storage.compute_distances(query, ids, out)
    }

    fn remove_ids(&mut self, selector: &dyn IdSelector) -> Result<usize> {
        let _ = selector;
        Err(Error::Unsupported(format!(
            "{} cannot remove vectors (graph links would dangle, as in Faiss); rebuild the \
             index, or filter at search time with an id selector",
            self.description()
        )))
    }

    fn reset(&mut self) -> Result<()> {
        self.storage.reset()?;
        self.hnsw.reset();
        Ok(())
    }

    fn parameter_ranges(&self) -> Vec<crate::autotune::ParameterRange> {
        vec![crate::autotune::ParameterRange::powers_of_two(
            "efSearch", 2, 9,
        )]
    }

    fn set_param(&mut self, name: &str, value: f64) -> Result<()> {
        use crate::param_values::{count, flag, positive};
        match name {
            "efSearch" => self.hnsw.ef_search = positive(name, value)?,
            "efConstruction" => self.hnsw.ef_construction = positive(name, value)?,
            "max_new_links" => self.hnsw.max_new_links = count(name, value)?,
            "prune_headroom" => {
                self.hnsw.prune_headroom = crate::param_values::finite(name, value)?
            }
            "search_bounded_queue" | "bounded_queue" => {
                self.hnsw.search_bounded_queue = flag(name, value)?
            }
            "check_relative_distance" => self.hnsw.check_relative_distance = flag(name, value)?,
            "metric_arg" => self.storage.set_param(name, value)?,
            _ => {
                return Err(Error::invalid(format!(
                    "{} has no run-time parameter {name:?} (it has efSearch, \
                     efConstruction, max_new_links, prune_headroom, search_bounded_queue, \
                     check_relative_distance)",
                    self.description()
                )));
            }
        }
        Ok(())
    }

    fn param(&self, name: &str) -> Option<f64> {
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        match name {
            "efSearch" => Some(self.hnsw.ef_search as f64),
            "efConstruction" => Some(self.hnsw.ef_construction as f64),
            "max_new_links" => Some(self.hnsw.max_new_links as f64),
            "prune_headroom" => Some(self.hnsw.prune_headroom as f64),
            "search_bounded_queue" | "bounded_queue" => Some(flag(self.hnsw.search_bounded_queue)),
            "check_relative_distance" => Some(flag(self.hnsw.check_relative_distance)),
            _ => self.storage.param(name),
        }
    }

    fn description(&self) -> String {
        let storage = self.storage.factory_name();
        if storage == "Flat" {
            format!("HNSW{}", self.hnsw.m())
        } else {
            format!("HNSW{},{storage}", self.hnsw.m())
        }
    }

    fn view(&self) -> crate::IndexView<'_> {
        crate::IndexView::Hnsw {
            graph: &self.hnsw,
            storage: &self.storage,
        }
    }
    fn part_mut(&mut self, part: crate::Part) -> Option<&mut dyn Index> {
        (part == crate::Part::Storage).then_some(&mut self.storage as &mut dyn Index)
    }
}
