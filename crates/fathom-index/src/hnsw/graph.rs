//! The HNSW graph itself (Faiss's `HNSW` struct): levels, adjacency lists and the searches
//! over them. It knows nothing of vectors; distances come from a [`NodeDistance`].

use std::sync::atomic::{AtomicI32, Ordering::Relaxed};

use fathom_core::{Error, Result};
use fathom_linalg::rng::FaissRng;

use super::heap::{Candidate, MaxHeap, MinHeap, MinimaxHeap};
use super::visited::Visited;

/// Distances from one prepared query to stored nodes, smaller is better (inner products
/// are negated by the storage). Implemented by each [`super::HnswStorage`]'s query type.
pub trait NodeDistance {
    /// Distance to node `id` (`id < ntotal`).
    fn distance(&self, id: u32) -> f32;
    /// Distances to four nodes; storages that can share work across them override it.
    fn distances4(&self, ids: [u32; 4]) -> [f32; 4] {
        ids.map(|i| self.distance(i))
    }
    /// A hint that `id` will be compared soon.
    fn prefetch(&self, id: u32) {
        let _ = id;
    }
    /// The distance between stored nodes `i` and `j` (used to prune neighbour lists).
    fn symmetric(&self, i: u32, j: u32) -> f32;
    /// `out[t] = symmetric(i, js[t])`; flat storage overrides it to batch four rows.
    fn symmetric_many(&self, i: u32, js: &[u32], out: &mut [f32]) {
        for (o, &j) in out.iter_mut().zip(js) {
            *o = self.symmetric(i, j);
        }
    }
}

/// Faiss's HNSW graph: every node has `levels[i]` layers (1-based count) and `2M`
/// neighbour slots on layer 0, `M` on each layer above, unused slots `-1`.
///
/// Faiss keeps all of a node's lists in one block found through `offsets[i]`; fathom
/// keeps layer 0 (where searches spend nearly all their time) in a fixed-stride array,
/// so finding a node's list is arithmetic rather than a dependent load from an
/// `offsets` array that does not fit in cache, and the upper layers in Faiss's block
/// layout. [`Hnsw::offsets`] and [`Hnsw::neighbors`] give Faiss's layout back, and
/// [`Hnsw::from_parts`] takes it; memory is the same as Faiss's.
///
/// Adjacency entries are atomics so that parallel insertion (each list written under its
/// node's lock) can be read by concurrent searches without undefined behaviour; relaxed
/// loads compile to plain loads.
#[derive(Debug)]
pub struct Hnsw {
    assign_probas: Vec<f64>,
    cum_nneighbor_per_level: Vec<i32>,
    levels: Vec<i32>,
    /// Layer 0: node `i`'s `2M` slots at `i·2M`.
    level0: Vec<AtomicI32>,
    /// Node `i`'s upper layers at `upper[upper_offsets[i]..upper_offsets[i+1]]`, layer
    /// `l ≥ 1` at `cum[l] − cum[1]` inside.
    upper_offsets: Vec<u64>,
    upper: Vec<AtomicI32>,
    entry_point: i32,
    max_level: i32,
    /// Beam width while inserting (Faiss's `efConstruction`, default 40).
    pub ef_construction: usize,
    /// Beam width while searching (Faiss's `efSearch`, default 16); `max(k, efSearch)`
    /// is used.
    pub ef_search: usize,
    /// With [`Hnsw::search_bounded_queue`]: stop when `efSearch` candidates closer than
    /// the current one have been seen (Faiss's `check_relative_distance`, default true).
    pub check_relative_distance: bool,
    /// Faiss's default search: a candidate queue bounded at `ef` ("MinimaxHeap"). When
    /// false (fathom's default), the classic HNSW beam search with an unbounded candidate
    /// queue that stops once the nearest candidate is farther than the `ef`-th result
    /// (Faiss's `search_bounded_queue = false`, hnswlib's search), which reaches a given
    /// recall with fewer distance computations.
    pub search_bounded_queue: bool,
    /// At most this many of the neighbours a new node finds on a level become its links
    /// (0, the default: as many as the level holds — Faiss's `2M` on layer 0, `M`
    /// above). hnswlib links a new node to `M` on every level and lets reverse links fill
    /// layer 0 up to `2M`: `M` builds faster (fewer links to select and to add back) at
    /// some recall for a given `efSearch` (docs/BENCHMARKS.md). Not stored in files.
    pub max_new_links: usize,
    /// When a full adjacency list takes a new link, the pruning heuristic keeps at most
    /// `(1 − prune_headroom)` of its slots, leaving room for the next links without
    /// pruning again (Faiss ≥ 1.15's `prune_headroom`, default 0.2, clamped to 0..0.5 where used;
    /// 0 is the older Faiss's build). On 100k × 384 at 2 threads 0.2 built 2.4× faster
    /// than 0 (docs/BENCHMARKS.md). Not stored in files.
    pub prune_headroom: f32,
    rng: FaissRng,
}

/// A graph's neighbour array in Faiss's layout, as [`Hnsw::from_neighbor_ids`] reads it.
pub trait NeighborIds {
    /// Number of slots.
    fn len(&self) -> usize;
    /// Whether there are no slots.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Slot `k` (`k < len()`).
    fn get(&self, k: usize) -> i32;
}

impl NeighborIds for [i32] {
    #[inline]
    fn len(&self) -> usize {
        <[i32]>::len(self)
    }
    #[inline]
    fn get(&self, k: usize) -> i32 {
        self[k]
    }
}

/// Neighbour ids as little-endian `i32` bytes (as a file stores them, at any alignment).
#[derive(Debug, Clone, Copy)]
pub struct LeI32s<'a>(pub &'a [u8]);

impl NeighborIds for LeI32s<'_> {
    #[inline]
    fn len(&self) -> usize {
        self.0.len() / 4
    }
    #[inline]
    fn get(&self, k: usize) -> i32 {
        let b = &self.0[4 * k..4 * k + 4];
        i32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
}

impl Clone for Hnsw {
    fn clone(&self) -> Self {
        Hnsw {
            assign_probas: self.assign_probas.clone(),
            cum_nneighbor_per_level: self.cum_nneighbor_per_level.clone(),
            levels: self.levels.clone(),
            level0: copy_atomics(&self.level0),
            upper_offsets: self.upper_offsets.clone(),
            upper: copy_atomics(&self.upper),
            entry_point: self.entry_point,
            max_level: self.max_level,
            ef_construction: self.ef_construction,
            ef_search: self.ef_search,
            check_relative_distance: self.check_relative_distance,
            search_bounded_queue: self.search_bounded_queue,
            max_new_links: self.max_new_links,
            prune_headroom: self.prune_headroom,
            rng: self.rng.clone(),
        }
    }
}

fn copy_atomics(v: &[AtomicI32]) -> Vec<AtomicI32> {
    v.iter().map(|a| AtomicI32::new(a.load(Relaxed))).collect()
}

/// Options of a beam search on one layer: its width and which nodes may enter the results.
pub(crate) struct BeamOpts<'a> {
    pub ef: usize,
    pub accept: Option<&'a dyn Fn(u32) -> bool>,
}

impl Hnsw {
    /// An empty graph with `m` links per node on the upper layers and `2m` on layer 0,
    /// Faiss's level probabilities (`exp(-l/mult)·(1-exp(-1/mult))`, `mult = 1/ln m`,
    /// down to 1e-9) and its level generator seed 12345.
    pub fn new(m: usize) -> Result<Self> {
        if m < 2 {
            return Err(Error::invalid(format!(
                "HNSW M (links per node) must be at least 2, got {m}"
            )));
        }
        if m > 1 << 20 {
            return Err(Error::invalid(format!(
                "HNSW M = {m} is too large (at most {})",
                1 << 20
            )));
        }
        // f32 arithmetic, as Faiss's `set_default_probas(int M, float levelMult)`, so the
        // same probabilities (and levels) come out.
        let level_mult = (1.0 / (m as f64).ln()) as f32;
        let mut assign_probas = Vec::new();
        let mut cum = vec![0i32];
        let mut nn = 0i32;
        for level in 0.. {
            let proba = (-(level as f32) / level_mult).exp() * (1.0 - (-1.0 / level_mult).exp());
            if proba < 1e-9 {
                break;
            }
            assign_probas.push(proba as f64);
            nn += if level == 0 { 2 * m as i32 } else { m as i32 };
            cum.push(nn);
        }
        Ok(Hnsw {
            assign_probas,
            cum_nneighbor_per_level: cum,
            levels: Vec::new(),
            level0: Vec::new(),
            upper_offsets: vec![0],
            upper: Vec::new(),
            entry_point: -1,
            max_level: -1,
            ef_construction: 40,
            ef_search: 16,
            check_relative_distance: true,
            search_bounded_queue: false,
            max_new_links: 0,
            prune_headroom: 0.2,
            rng: FaissRng::new(12345),
        })
    }

    /// A graph from the fields Faiss stores, checked as Faiss ≥ 1.14's reader checks them
    /// (every offset block the size its level says, neighbours and entry point in range)
    /// and more (a link on layer l leads to a node living on layer l).
    #[allow(clippy::too_many_arguments)]
    pub fn from_parts(
        assign_probas: Vec<f64>,
        cum_nneighbor_per_level: Vec<i32>,
        levels: Vec<i32>,
        offsets: Vec<u64>,
        neighbors: Vec<i32>,
        entry_point: i32,
        max_level: i32,
        ef_construction: usize,
        ef_search: usize,
    ) -> Result<Self> {
        Self::from_neighbor_ids(
            assign_probas,
            cum_nneighbor_per_level,
            levels,
            offsets,
            &neighbors[..],
            entry_point,
            max_level,
            ef_construction,
            ef_search,
        )
    }

    /// [`Hnsw::from_parts`] with the neighbour array from any [`NeighborIds`], e.g. the
    /// little-endian bytes of a file ([`LeI32s`]) without a copy into a `Vec<i32>` first.
    #[allow(clippy::too_many_arguments)]
    pub fn from_neighbor_ids<N: NeighborIds + ?Sized>(
        assign_probas: Vec<f64>,
        cum_nneighbor_per_level: Vec<i32>,
        levels: Vec<i32>,
        offsets: Vec<u64>,
        neighbors: &N,
        entry_point: i32,
        max_level: i32,
        ef_construction: usize,
        ef_search: usize,
    ) -> Result<Self> {
        let bad = |what: String| Err(Error::invalid(format!("invalid HNSW graph: {what}")));
        let n = levels.len();
        if cum_nneighbor_per_level.first() != Some(&0)
            || cum_nneighbor_per_level.windows(2).any(|w| w[1] < w[0])
        {
            return bad("cum_nneighbor_per_level must start at 0 and never decrease".into());
        }
        if offsets.len() != n + 1 || offsets[0] != 0 {
            return bad(format!(
                "{} offsets for {n} nodes (expected {} starting at 0)",
                offsets.len(),
                n + 1
            ));
        }
        for (i, &l) in levels.iter().enumerate() {
            if l < 1 || l as usize >= cum_nneighbor_per_level.len() {
                return bad(format!("node {i} has {l} levels"));
            }
            let want = cum_nneighbor_per_level[l as usize] as u64;
            if offsets[i + 1].checked_sub(offsets[i]) != Some(want) {
                return bad(format!("node {i}'s neighbour block is not {want} slots"));
            }
        }
        if offsets[n] != neighbors.len() as u64 {
            return bad(format!(
                "{} neighbour slots, offsets say {}",
                neighbors.len(),
                offsets[n]
            ));
        }
        let levels_ok = if n == 0 {
            entry_point == -1 && max_level == -1
        } else {
            entry_point >= 0
                && (entry_point as usize) < n
                && max_level >= 0
                && levels[entry_point as usize] == max_level + 1
        };
        if !levels_ok {
            return bad(format!(
                "entry point {entry_point} / max level {max_level} do not match the {n} nodes"
            ));
        }
        if ef_construction == 0 || ef_search == 0 {
            return bad("efConstruction and efSearch must be positive".into());
        }
        // One pass copies the links into fathom's layout (layer 0 at a fixed stride, the
        // upper layers per node) and checks each: in [-1, n), and on layer l ≥ 1 leading
        // to a node that lives on layer l (search follows it there).
        let nb0 = (cum_nneighbor_per_level.get(1).copied().unwrap_or(0)) as usize;
        let mut level0 = Vec::with_capacity(n * nb0);
        let mut upper_offsets = Vec::with_capacity(n + 1);
        upper_offsets.push(0u64);
        let mut upper = Vec::new();
        for i in 0..n {
            let base = offsets[i] as usize;
            let mut out_of_range = None;
            level0.extend((base..base + nb0).map(|k| {
                let v = neighbors.get(k);
                if v < -1 || v as i64 >= n as i64 {
                    out_of_range = Some(v);
                }
                AtomicI32::new(v)
            }));
            if let Some(v) = out_of_range {
                return bad(format!("neighbour {v} outside [-1, {n})"));
            }
            for l in 1..levels[i] as usize {
                let (a, b) = (
                    cum_nneighbor_per_level[l] as usize,
                    cum_nneighbor_per_level[l + 1] as usize,
                );
                for k in base + a..base + b {
                    let v = neighbors.get(k);
                    if v < -1 || v as i64 >= n as i64 {
                        return bad(format!("neighbour {v} outside [-1, {n})"));
                    }
                    if v >= 0 && levels[v as usize] as usize <= l {
                        return bad(format!(
                            "node {i} links on layer {l} to node {v}, which has only {} levels",
                            levels[v as usize]
                        ));
                    }
                    upper.push(AtomicI32::new(v));
                }
            }
            upper_offsets.push(upper.len() as u64);
        }
        Ok(Hnsw {
            assign_probas,
            cum_nneighbor_per_level,
            levels,
            level0,
            upper_offsets,
            upper,
            entry_point,
            max_level,
            ef_construction,
            ef_search,
            check_relative_distance: true,
            search_bounded_queue: false,
            max_new_links: 0,
            prune_headroom: 0.2,
            rng: FaissRng::new(12345),
        })
    }

    /// Reseeds the generator that draws new nodes' levels (Faiss seeds it with 12345 and
    /// does not store it in files). The build is deterministic for a fixed seed on one
    /// thread.
    pub fn set_level_seed(&mut self, seed: i64) {
        self.rng = FaissRng::new(seed);
    }

    /// Links per node on the upper layers (layer 0 has twice as many; a graph whose file
    /// lists layer 0 only gives half its width).
    pub fn m(&self) -> usize {
        match self.nb_neighbors(1) {
            0 => self.nb_neighbors(0) / 2,
            m => m,
        }
    }

    /// Number of nodes.
    pub fn ntotal(&self) -> usize {
        self.levels.len()
    }

    /// Probability of a new node getting each top level.
    pub fn assign_probas(&self) -> &[f64] {
        &self.assign_probas
    }

    /// Cumulative neighbour slots per level (`[0] = 0`).
    pub fn cum_nneighbor_per_level(&self) -> &[i32] {
        &self.cum_nneighbor_per_level
    }

    /// Per node, its number of layers (1 for a node only on layer 0).
    pub fn levels(&self) -> &[i32] {
        &self.levels
    }

    /// Start of each node's neighbour block in Faiss's layout (`ntotal + 1` entries).
    pub fn offsets(&self) -> Vec<u64> {
        let nb0 = self.nb_neighbors(0) as u64;
        let mut out = Vec::with_capacity(self.ntotal() + 1);
        out.push(0);
        for (i, w) in self.upper_offsets.windows(2).enumerate() {
            out.push(out[i] + nb0 + (w[1] - w[0]));
        }
        out
    }

    /// All adjacency slots in Faiss's layout (`-1` for unused).
    pub fn neighbors(&self) -> Vec<i32> {
        let nb0 = self.nb_neighbors(0);
        let mut out = Vec::with_capacity(self.level0.len() + self.upper.len());
        for (i, w) in self.upper_offsets.windows(2).enumerate() {
            let l0 = &self.level0[i * nb0..(i + 1) * nb0];
            let up = &self.upper[w[0] as usize..w[1] as usize];
            out.extend(l0.iter().chain(up).map(|a| a.load(Relaxed)));
        }
        out
    }

    /// The neighbours of `node` on `level`.
    pub fn neighbors_of(&self, node: usize, level: usize) -> Vec<i32> {
        self.slots(node as u32, level)
            .iter()
            .map(|a| a.load(Relaxed))
            .take_while(|&v| v >= 0)
            .collect()
    }

    /// The node searches start from (`-1` when empty).
    pub fn entry_point(&self) -> i32 {
        self.entry_point
    }

    /// The highest layer (0-based; `-1` when empty).
    pub fn max_level(&self) -> i32 {
        self.max_level
    }

    /// Bytes held by the graph (levels, offsets, adjacency).
    pub fn memory_bytes(&self) -> usize {
        self.levels.len() * 4
            + self.upper_offsets.len() * 8
            + (self.level0.len() + self.upper.len()) * 4
    }

    /// Removes every node (parameters and the level generator's state are kept).
    pub fn reset(&mut self) {
        self.levels.clear();
        self.level0 = Vec::new();
        self.upper_offsets = vec![0];
        self.upper = Vec::new();
        self.entry_point = -1;
        self.max_level = -1;
    }

    pub(crate) fn nb_neighbors(&self, level: usize) -> usize {
        let cum = &self.cum_nneighbor_per_level;
        match (cum.get(level), cum.get(level + 1)) {
            (Some(&lo), Some(&hi)) => (hi - lo).max(0) as usize,
            // A level the graph has no width for (a file may list layer 0 only).
            _ => 0,
        }
    }

    #[inline]
    pub(crate) fn slots(&self, node: u32, level: usize) -> &[AtomicI32] {
        let cum = &self.cum_nneighbor_per_level;
        if level == 0 {
            let nb0 = cum[1] as usize;
            let b = node as usize * nb0;
            &self.level0[b..b + nb0]
        } else {
            let o = self.upper_offsets[node as usize] as usize;
            let skip = cum[1] as usize;
            &self.upper[o + cum[level] as usize - skip..o + cum[level + 1] as usize - skip]
        }
    }

    fn random_level(&mut self) -> usize {
        let mut f = f64::from(self.rng.rand_float());
        for (level, &p) in self.assign_probas.iter().enumerate() {
            if f < p {
                return level;
            }
            f -= p;
        }
        self.assign_probas.len() - 1
    }

    /// Draws levels for `n` new nodes and makes room for their adjacency (Faiss's
    /// `prepare_level_tab`); returns the new nodes' highest level.
    pub(crate) fn prepare_levels(&mut self, n: usize) -> Result<usize> {
        let mut max = 0;
        let mut levels = Vec::with_capacity(n);
        for _ in 0..n {
            let l = self.random_level();
            max = max.max(l);
            levels.push(l);
        }
        let nb0 = self.nb_neighbors(0);
        let extra: u64 = levels
            .iter()
            .map(|&l| (self.cum_nneighbor_per_level[l + 1] as usize - nb0) as u64)
            .sum();
        let too_big = |_| {
            Error::invalid(format!(
                "cannot allocate {} bytes for the HNSW graph",
                (n * nb0) as u64 * 4 + extra * 4
            ))
        };
        self.level0.try_reserve_exact(n * nb0).map_err(too_big)?;
        self.upper
            .try_reserve_exact(extra as usize)
            .map_err(too_big)?;
        self.upper_offsets.try_reserve_exact(n).map_err(too_big)?;
        self.levels.try_reserve_exact(n).map_err(too_big)?;
        for l in levels {
            let last = *self.upper_offsets.last().unwrap_or(&0);
            self.upper_offsets
                .push(last + (self.cum_nneighbor_per_level[l + 1] as usize - nb0) as u64);
            self.levels.push(l as i32 + 1);
        }
        let total_upper = *self.upper_offsets.last().unwrap_or(&0) as usize;
        // Every search step reads a random node's list.
        fathom_kernels::advise_huge_pages(self.level0.spare_capacity_mut());
        self.level0
            .resize_with(self.levels.len() * nb0, || AtomicI32::new(-1));
        self.upper.resize_with(total_upper, || AtomicI32::new(-1));
        Ok(max)
    }

    pub(crate) fn set_entry(&mut self, node: u32, level: usize) {
        self.entry_point = node as i32;
        self.max_level = level as i32;
    }

    /// Greedy descent on one upper layer: moves to a closer neighbour until none is.
    pub(crate) fn greedy_update_nearest<D: NodeDistance>(
        &self,
        dis: &D,
        level: usize,
        nearest: &mut u32,
        d_nearest: &mut f32,
    ) {
        let mut ids = Vec::with_capacity(self.nb_neighbors(level));
        loop {
            let prev = *nearest;
            ids.clear();
            ids.extend(
                self.slots(prev, level)
                    .iter()
                    .map(|s| s.load(Relaxed))
                    .take_while(|&v| v >= 0)
                    .map(|v| v as u32),
            );
            Self::for_distances(dis, &ids, |id, d| {
                if d < *d_nearest {
                    *nearest = id;
                    *d_nearest = d;
                }
            });
            if *nearest == prev {
                return;
            }
        }
    }

    /// Descends from the entry point to layer `to_level + 1` greedily; returns the
    /// nearest node found and its distance.
    pub(crate) fn descend<D: NodeDistance>(&self, dis: &D, to_level: usize) -> (u32, f32) {
        let mut nearest = self.entry_point as u32;
        let mut d = dis.distance(nearest);
        let mut level = self.max_level;
        while level > to_level as i32 {
            self.greedy_update_nearest(dis, level as usize, &mut nearest, &mut d);
            level -= 1;
        }
        (nearest, d)
    }

    /// The unvisited neighbours of `node` on `level`, marked visited.
    #[inline]
    fn fresh_neighbors(&self, node: u32, level: usize, vt: &mut Visited, out: &mut Vec<u32>) {
        out.clear();
        for s in self.slots(node, level) {
            let v = s.load(Relaxed);
            if v < 0 {
                break;
            }
            if vt.set(v as u32) {
                out.push(v as u32);
            }
        }
    }

    /// Calls `f(id, distance)` for each id of `ids`, four at a time, prefetching the
    /// rows two blocks ahead: far enough for them to arrive, near enough not to flood
    /// the CPU's queue of outstanding misses.
    #[inline]
    fn for_distances<D: NodeDistance>(dis: &D, ids: &[u32], mut f: impl FnMut(u32, f32)) {
        const AHEAD: usize = 8;
        for &id in ids.iter().take(AHEAD) {
            dis.prefetch(id);
        }
        let mut chunks = ids.chunks_exact(4);
        let mut next = AHEAD;
        for c in &mut chunks {
            for &id in ids.iter().skip(next).take(4) {
                dis.prefetch(id);
            }
            next += 4;
            let four = [c[0], c[1], c[2], c[3]];
            let ds = dis.distances4(four);
            for (id, d) in four.into_iter().zip(ds) {
                f(id, d);
            }
        }
        for &id in chunks.remainder() {
            f(id, dis.distance(id));
        }
    }

    /// Beam search on one layer from `entry` (Faiss's `search_neighbors_to_add`, also
    /// the unbounded search): the `ef` nearest nodes found, as a max-heap. `visit` sees
    /// every computed distance; `accept` filters what may enter the results (the beam
    /// still walks through rejected nodes).
    pub(crate) fn beam_search<D: NodeDistance>(
        &self,
        dis: &D,
        entry: (u32, f32),
        level: usize,
        opts: &BeamOpts<'_>,
        vt: &mut Visited,
        visit: &mut impl FnMut(u32, f32),
    ) -> MaxHeap {
        let ef = opts.ef.max(1);
        // Capacity hints only: a huge `k` must not reserve more than the graph holds.
        let cap = ef.min(self.ntotal());
        let mut results = MaxHeap::with_capacity(cap + 1);
        let mut candidates = MinHeap::with_capacity((cap * 4).min(self.ntotal()));
        let mut fresh = Vec::with_capacity(self.nb_neighbors(level));
        let accepted = |id: u32| opts.accept.is_none_or(|a| a(id));
        candidates.push(Candidate::new(entry.1, entry.0));
        if accepted(entry.0) {
            results.push(Candidate::new(entry.1, entry.0));
        }
        visit(entry.0, entry.1);
        vt.set(entry.0);
        while let Some(c) = candidates.pop() {
            if results.len() >= ef && c.d > results.peek_d() {
                break;
            }
            if let Some(next) = candidates.peek() {
                fathom_kernels::prefetch(self.slots(next.id, level));
            }
            self.fresh_neighbors(c.id, level, vt, &mut fresh);
            Self::for_distances(dis, &fresh, |id, d| {
                visit(id, d);
                if results.len() < ef || d < results.peek_d() {
                    candidates.push(Candidate::new(d, id));
                    if accepted(id) {
                        results.push(Candidate::new(d, id));
                        if results.len() > ef {
                            results.pop();
                        }
                    }
                }
            });
        }
        results
    }

    /// Faiss's default level-0 search (`search_from_candidates` with a `MinimaxHeap`
    /// bounded at `ef`): results go to `out` (a max-heap of at most `k`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn bounded_search<D: NodeDistance>(
        &self,
        dis: &D,
        entry: (u32, f32),
        k: usize,
        opts: &BeamOpts<'_>,
        vt: &mut Visited,
        visit: &mut impl FnMut(u32, f32),
        out: &mut MaxHeap,
    ) {
        let ef = opts.ef.max(1);
        let accepted = |id: u32| opts.accept.is_none_or(|a| a(id));
        let mut cands = MinimaxHeap::new(ef.min(self.ntotal()));
        cands.push(entry.0, entry.1);
        vt.set(entry.0);
        visit(entry.0, entry.1);
        let offer = |out: &mut MaxHeap, id: u32, d: f32| {
            if accepted(id) && (out.len() < k || d < out.peek_d()) {
                out.push(Candidate::new(d, id));
                if out.len() > k {
                    out.pop();
                }
            }
        };
        offer(out, entry.0, entry.1);
        let mut fresh = Vec::with_capacity(self.nb_neighbors(0));
        let mut nstep = 0;
        while let Some((v0, d0)) = cands.pop_min() {
            if self.check_relative_distance && cands.count_below(d0) >= ef {
                break;
            }
            self.fresh_neighbors(v0, 0, vt, &mut fresh);
            Self::for_distances(dis, &fresh, |id, d| {
                visit(id, d);
                offer(out, id, d);
                cands.push(id, d);
            });
            nstep += 1;
            if !self.check_relative_distance && nstep > ef {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faiss_level_probabilities() {
        // The values faiss-format.md gives for M = 8.
        let g = Hnsw::new(8).unwrap();
        assert_eq!(g.assign_probas.len(), 10);
        assert_eq!(&g.cum_nneighbor_per_level[..5], &[0, 16, 24, 32, 40]);
        assert!((g.assign_probas[0] - 0.875).abs() < 1e-6);
        assert!((g.assign_probas[1] - 0.109375).abs() < 1e-6);
        assert!(Hnsw::new(1).is_err());
        assert!(Hnsw::new(0).is_err());
    }

    #[test]
    fn from_parts_rejects_inconsistent_graphs() {
        let g = Hnsw::new(4).unwrap();
        let cum = g.cum_nneighbor_per_level.clone();
        let probas = g.assign_probas.clone();
        let ok = Hnsw::from_parts(
            probas.clone(),
            cum.clone(),
            vec![1, 2],
            vec![0, 8, 20],
            [vec![1], vec![-1; 7], vec![0], vec![-1; 11]].concat(),
            1,
            1,
            40,
            16,
        );
        assert!(ok.is_ok(), "{ok:?}");
        let bad_neighbor = Hnsw::from_parts(
            probas.clone(),
            cum.clone(),
            vec![1, 2],
            vec![0, 8, 20],
            [vec![5], vec![-1; 19]].concat(),
            1,
            1,
            40,
            16,
        );
        assert!(bad_neighbor.is_err());
        let bad_offsets = Hnsw::from_parts(
            probas,
            cum,
            vec![1, 2],
            vec![0, 8, 19],
            vec![-1; 19],
            1,
            1,
            40,
            16,
        );
        assert!(bad_offsets.is_err());
    }
}
