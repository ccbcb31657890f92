//! Exhaustive k-NN and range search over a flat array of vectors: the engine behind
//! `IndexFlat`, coarse assignment and k-means.
//!
//! The work is cut into tiles of (a block of queries) × (a block of database vectors).
//! Each tile is filled with *keys* — numbers where smaller is better — and then scanned
//! by a SIMD filter that passes only entries at or below the current threshold to a sink
//! (a top-k heap per query, or a per-query hit list for range search).
//!
//! - For L2 and inner product with enough queries in a tile, the tile comes from one GEMM
//!   (faer): key = ‖y‖² − 2⟨x,y⟩ for L2 (‖x‖² is added back on output) and −⟨x,y⟩ for inner
//!   product. The ‖y‖² term is added inside the filter, never stored.
//! - Otherwise each query row is filled by the one-to-many SIMD kernel.
//!
//! Memory is bounded: each worker holds one tile (at most `Q_BLOCK_MAX × GEMM_DB_BLOCK`
//! floats, 1 MiB) whatever the number of queries; no `nq × nb` matrix is ever allocated.
//! Parallelism goes over query blocks when there are enough queries, and otherwise over
//! database blocks with per-worker sinks merged at the end (so one query uses every core).

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use fathom_core::{
    Error, IdSelector, Idx, MetricType, RangeSearchResult, Result, SearchResult, check,
};
use rayon::prelude::*;

use crate::dispatch::{Kernels, kernels};
use crate::distance::many_with;
use crate::topk::TopKSlab;

/// Fewest queries in a tile for which the GEMM path is used (Faiss's
/// `distance_compute_blas_threshold` is 20).
pub(crate) const GEMM_MIN_ROWS: usize = 16;
/// Database vectors per GEMM tile.
const GEMM_DB_BLOCK: usize = 512;
/// Most queries per tile.
const Q_BLOCK_MAX: usize = 512;
/// Bytes of database vectors per tile on the direct path (about an L2 cache's worth).
const DIRECT_DB_BYTES: usize = 256 * 1024;
/// Tile-row entries filtered against one threshold before it is refreshed.
const FILTER_CHUNK: usize = 128;
/// Multiply-adds (queries × rows × d) up to which a search with few queries runs on the
/// calling thread.
const SEQUENTIAL_MAX_WORK: usize = 1 << 20;
/// Queries per tile on the direct path.
const DIRECT_Q_BLOCK: usize = 32;

/// How a search is cut up; fixed for one call.
struct Plan<'a> {
    kern: &'static Kernels,
    metric: MetricType,
    d: usize,
    nq: usize,
    nb: usize,
    queries: &'a [f32],
    base: &'a [f32],
    selector: Option<&'a dyn IdSelector>,
    /// Queries per block when parallel over queries; `None` when parallel over the database.
    q_block: Option<usize>,
    db_block: usize,
    gemm: bool,
    /// ‖x‖² per query (L2 GEMM path only; empty otherwise).
    qnorms: Vec<f32>,
}

impl<'a> Plan<'a> {
    fn new(
        metric: MetricType,
        queries: &'a [f32],
        base: &'a [f32],
        d: usize,
        selector: Option<&'a dyn IdSelector>,
    ) -> Result<Self> {
        check::metric_ready(metric)?;
        let nq = check::vectors("query", queries, d)?;
        let nb = check::vectors("database", base, d)?;
        let kern = kernels();
        let gemm_metric = matches!(metric, MetricType::L2 | MetricType::InnerProduct);
        let threads = rayon::current_num_threads().max(1);
        let min_rows = if gemm_metric { GEMM_MIN_ROWS } else { 4 };
        // Enough query blocks to keep every thread busy, each as large as allowed: every
        // block streams the whole database once, so fewer, larger blocks save bandwidth.
        let q_block = (nq >= 2 * threads * min_rows).then(|| {
            let max = if gemm_metric {
                Q_BLOCK_MAX
            } else {
                DIRECT_Q_BLOCK
            };
            let blocks = nq.div_ceil(max).next_multiple_of(threads);
            nq.div_ceil(blocks).max(min_rows)
        });
        let rows = q_block.unwrap_or(nq);
        let gemm = gemm_metric && rows >= GEMM_MIN_ROWS;
        let db_block = if gemm {
            GEMM_DB_BLOCK
        } else {
            (DIRECT_DB_BYTES / (4 * d)).clamp(16, 8192)
        };
        let mut qnorms = Vec::new();
        if gemm && metric == MetricType::L2 {
            qnorms = vec![0.0; nq];
            (kern.norms_sqr)(queries, d, &mut qnorms);
        }
        Ok(Plan {
            kern,
            metric,
            d,
            nq,
            nb,
            queries,
            base,
            selector,
            q_block,
            db_block,
            gemm,
            qnorms,
        })
    }

    /// The key under which a metric value is ranked (smaller is better).
    fn key_of(&self, value: f32, qi: usize) -> f32 {
        match self.metric {
            MetricType::InnerProduct => -value,
            MetricType::L2 if self.gemm => value - self.qnorms[qi],
            _ => value,
        }
    }

    /// The metric value a key stands for.
    fn value_of(&self, key: f32, qi: usize) -> f32 {
        match self.metric {
            MetricType::InnerProduct => -key,
            MetricType::L2 if self.gemm => (key + self.qnorms[qi]).max(0.0),
            _ => key,
        }
    }

    /// Runs every tile through sinks made by `make(first_query, n_queries)`; returns the
    /// sinks in query order.
    fn run<S: Sink>(&self, make: impl Fn(usize, usize) -> S + Sync) -> Vec<S> {
        let d = self.d;
        match self.q_block {
            Some(bq) => self
                .queries
                .par_chunks(bq * d)
                .enumerate()
                .map_init(
                    // One scratch per worker, reused across its query blocks.
                    || Scratch::new(bq, self.db_block),
                    |scratch, (b, qs)| {
                        let mut sink = make(b * bq, qs.len() / d);
                        for start in (0..self.nb).step_by(self.db_block) {
                            self.tile(b * bq, qs, start, &mut sink, scratch);
                        }
                        sink
                    },
                )
                .collect(),
            None if self.nq * self.nb * self.d <= SEQUENTIAL_MAX_WORK => {
                // A few queries against a small database (an IVF coarse quantizer): handing
                // the work to the thread pool (and waking it) costs more than the scan.
                let mut sink = make(0, self.nq);
                let mut scratch = Scratch::new(self.nq, self.db_block);
                for start in (0..self.nb).step_by(self.db_block) {
                    self.tile(0, self.queries, start, &mut sink, &mut scratch);
                }
                vec![sink]
            }
            None => {
                let blocks = self.nb.div_ceil(self.db_block);
                let merged = (0..blocks)
                    .into_par_iter()
                    .fold(
                        || (make(0, self.nq), Scratch::new(self.nq, self.db_block)),
                        |(mut sink, mut scratch), blk| {
                            let start = blk * self.db_block;
                            self.tile(0, self.queries, start, &mut sink, &mut scratch);
                            (sink, scratch)
                        },
                    )
                    .map(|(sink, _)| sink)
                    .reduce_with(|mut a, b| {
                        a.merge(b);
                        a
                    });
                vec![merged.unwrap_or_else(|| make(0, self.nq))]
            }
        }
    }

    /// One tile: queries `qs` (global index of the first: `q0`) against database vectors
    /// `start..start + db_block`.
    fn tile<S: Sink>(&self, q0: usize, qs: &[f32], start: usize, sink: &mut S, sc: &mut Scratch) {
        let d = self.d;
        let rows = qs.len() / d;
        let cols = self.db_block.min(self.nb - start);
        let ys = &self.base[start * d..(start + cols) * d];
        let tile = &mut sc.tile[..rows * cols];
        let mut bias: &[f32] = &[];
        if self.gemm {
            let alpha = if self.metric == MetricType::L2 {
                -2.0
            } else {
                -1.0
            };
            gemm_tile(qs, rows, ys, cols, d, alpha, tile);
            if self.metric == MetricType::L2 {
                (self.kern.norms_sqr)(ys, d, &mut sc.ynorms[..cols]);
                bias = &sc.ynorms[..cols];
            }
        } else {
            for (q, row) in qs.chunks_exact(d).zip(tile.chunks_exact_mut(cols)) {
                many_with(self.kern, self.metric, q, ys, row);
                if self.metric == MetricType::InnerProduct {
                    row.iter_mut().for_each(|v| *v = -*v);
                }
            }
        }
        for (r, row) in tile.chunks_exact(cols).enumerate() {
            let qi = q0 + r;
            // The threshold is refreshed every FILTER_CHUNK entries: a heap that starts
            // empty (threshold +∞) fills within the first chunk instead of taking every
            // entry of the first tile, which matters when the database is small (k-means
            // assignment against a few thousand centroids).
            for lo in (0..cols).step_by(FILTER_CHUNK) {
                let hi = (lo + FILTER_CHUNK).min(cols);
                let b = if bias.is_empty() { bias } else { &bias[lo..hi] };
                let mut thr = sink.threshold(qi);
                let free = sink.free(qi);
                if thr == f32::INFINITY && free > 0 && free < hi - lo && self.selector.is_none() {
                    // Not full yet: the free-th best key of this chunk bounds what can
                    // enter, so only about `free` entries are offered instead of all. (Not
                    // with a selector: it may reject the entries the bound counts on.)
                    let chunk = &row[lo..hi];
                    thr = if free == 1 {
                        row_min(chunk, b)
                    } else {
                        let key = |j: usize| chunk[j] + b.get(j).copied().unwrap_or(0.0);
                        sc.seed.clear();
                        sc.seed.extend((0..chunk.len()).map(key));
                        *sc.seed.select_nth_unstable_by(free - 1, f32::total_cmp).1
                    };
                }
                sc.cand.clear();
                (self.kern.collect_le)(&row[lo..hi], b, thr, lo as u32, &mut sc.cand);
                for &j in &sc.cand {
                    let j = j as usize;
                    let id = (start + j) as Idx;
                    if self.selector.is_none_or(|s| s.is_member(id)) {
                        let key = row[j] + bias.get(j).copied().unwrap_or(0.0);
                        sink.offer(qi, key, id);
                    }
                }
            }
        }
    }
}

/// `min(keys[j] + bias[j])` (`bias` empty means zeros), NaN ignored; written in sixteen
/// independent lanes so it compiles to vector min instructions.
fn row_min(keys: &[f32], bias: &[f32]) -> f32 {
    let mut lanes = [f32::INFINITY; 16];
    let fold = |v: f32, l: &mut f32| {
        if v < *l {
            *l = v;
        }
    };
    let tail_start = keys.len() - keys.len() % 16;
    if bias.is_empty() {
        for c in keys.chunks_exact(16) {
            for (l, &v) in lanes.iter_mut().zip(c) {
                fold(v, l);
            }
        }
        for &v in &keys[tail_start..] {
            fold(v, &mut lanes[0]);
        }
    } else {
        for (c, bc) in keys.chunks_exact(16).zip(bias.chunks_exact(16)) {
            for ((l, &v), &bv) in lanes.iter_mut().zip(c).zip(bc) {
                fold(v + bv, l);
            }
        }
        for (&v, &bv) in keys[tail_start..].iter().zip(&bias[tail_start..]) {
            fold(v + bv, &mut lanes[0]);
        }
    }
    lanes
        .iter()
        .fold(f32::INFINITY, |m, &v| if v < m { v } else { m })
}

struct Scratch {
    tile: Vec<f32>,
    ynorms: Vec<f32>,
    cand: Vec<u32>,
    seed: Vec<f32>,
}

impl Scratch {
    fn new(rows: usize, cols: usize) -> Self {
        Scratch {
            tile: vec![0.0; rows * cols],
            ynorms: vec![0.0; cols],
            cand: Vec::with_capacity(cols),
            seed: Vec::with_capacity(FILTER_CHUNK),
        }
    }
}

/// Where the candidates of a tile go. Query indices are global; a sink covers the queries
/// it was made for.
trait Sink: Send {
    /// Keys above this are of no interest for query `qi`.
    fn threshold(&self, qi: usize) -> f32;
    /// How many more candidates query `qi` takes before its threshold becomes finite
    /// (0: the threshold is what it is, as for range search).
    fn free(&self, _qi: usize) -> usize {
        0
    }
    fn offer(&mut self, qi: usize, key: f32, id: Idx);
    /// Absorbs a sink for the same queries and other database vectors.
    fn merge(&mut self, other: Self);
}

struct TopKSink {
    first: usize,
    heaps: TopKSlab,
}

impl Sink for TopKSink {
    fn threshold(&self, qi: usize) -> f32 {
        self.heaps.threshold(qi - self.first)
    }
    fn free(&self, qi: usize) -> usize {
        self.heaps.free(qi - self.first)
    }
    fn offer(&mut self, qi: usize, key: f32, id: Idx) {
        self.heaps.push(qi - self.first, key, id);
    }
    fn merge(&mut self, other: Self) {
        self.heaps.merge(&other.heaps);
    }
}

struct RangeSink {
    first: usize,
    /// Strict bound on keys per query.
    bounds: Vec<f32>,
    hits: Vec<Vec<(Idx, f32)>>,
}

impl Sink for RangeSink {
    fn threshold(&self, qi: usize) -> f32 {
        self.bounds[qi - self.first]
    }
    fn offer(&mut self, qi: usize, key: f32, id: Idx) {
        let i = qi - self.first;
        if key < self.bounds[i] {
            self.hits[i].push((id, key));
        }
    }
    fn merge(&mut self, other: Self) {
        for (a, b) in self.hits.iter_mut().zip(other.hits) {
            a.extend(b);
        }
    }
}

/// `c = alpha · x · yᵀ` for row-major `x` (rows × d), `y` (cols × d), `c` (rows × cols).
fn gemm_tile(x: &[f32], rows: usize, y: &[f32], cols: usize, d: usize, alpha: f32, c: &mut [f32]) {
    let a = MatRef::from_row_major_slice(x, rows, d);
    let b = MatRef::from_row_major_slice(y, cols, d);
    let c = MatMut::from_row_major_slice_mut(c, rows, cols);
    matmul(c, Accum::Replace, a, b.transpose(), alpha, Par::Seq);
}

/// `out = alpha · x · yᵀ` for row-major `x` (`nx × d`) and `y` (`ny × d`), into row-major
/// `out` (`nx × ny`), through faer in parallel over row blocks: the product every linear
/// transform and the batched distance paths need.
///
/// ```
/// let mut out = [0.0f32; 2];
/// fathom_kernels::matmul_abt(&[1.0, 2.0], &[3.0, 4.0, 5.0, 6.0], 2, 1.0, &mut out).unwrap();
/// assert_eq!(out, [11.0, 17.0]);
/// ```
pub fn matmul_abt(x: &[f32], y: &[f32], d: usize, alpha: f32, out: &mut [f32]) -> Result<()> {
    let nx = check::vectors("x", x, d)?;
    let ny = check::vectors("y", y, d)?;
    if out.len() != nx * ny {
        return Err(Error::DimensionMismatch {
            what: "output".into(),
            got: out.len(),
            expected: format!("{nx} × {ny}"),
        });
    }
    if nx > 0 && ny > 0 {
        gemm_xyt(x, y, d, alpha, out);
    }
    Ok(())
}

/// `out = alpha · x · yᵀ` (row-major, `nx × ny`), in parallel over row blocks.
pub(crate) fn gemm_xyt(x: &[f32], y: &[f32], d: usize, alpha: f32, out: &mut [f32]) {
    let ny = y.len() / d;
    out.par_chunks_mut(Q_BLOCK_MAX * ny)
        .zip(x.par_chunks(Q_BLOCK_MAX * d))
        .for_each(|(c, xs)| gemm_tile(xs, xs.len() / d, y, ny, d, alpha, c));
}

/// The `k` nearest rows of `base` for each row of `queries` (dimension `d`), exactly, with
/// row numbers as ids. Rows `selector` rejects are skipped. Missing results (k larger than
/// the number of eligible rows) get label `-1` and the metric's worst value, as Faiss.
///
/// Candidates whose distance is NaN are never returned.
///
/// ```
/// use fathom_core::MetricType;
/// let base = [0.0, 0.0, 1.0, 0.0, 5.0, 5.0];
/// let res = fathom_kernels::knn(MetricType::L2, &[0.9, 0.1], &base, 2, 2, None).unwrap();
/// assert_eq!(res.labels, vec![1, 0]);
/// ```
pub fn knn(
    metric: MetricType,
    queries: &[f32],
    base: &[f32],
    d: usize,
    k: usize,
    selector: Option<&dyn IdSelector>,
) -> Result<SearchResult> {
    check::k(k)?;
    if k == 1
        && selector.is_none()
        && let Some(out) = nearest_small_d(metric, queries, base, d)?
    {
        return Ok(out);
    }
    let plan = Plan::new(metric, queries, base, d, selector)?;
    let heap_k = k.min(plan.nb);
    let mut out = SearchResult::try_empty(plan.nq, k, metric)?;
    if plan.nq == 0 || plan.nb == 0 {
        return Ok(out);
    }
    let sinks = plan.run(|first, n| TopKSink {
        first,
        heaps: TopKSlab::new(n, heap_k),
    });
    // The sinks cover consecutive queries: each sorts its heaps into its own part of the
    // output, in parallel (done on the calling thread, sorting 10 000 heaps of 64 was
    // 3 % of an IVF search's time, all of it serial).
    let mut parts = Vec::with_capacity(sinks.len());
    let (mut dist, mut labels) = (&mut out.distances[..], &mut out.labels[..]);
    for sink in &sinks {
        let n = sink.heaps.len() * k;
        let (d, rest_d) = dist.split_at_mut(n);
        let (l, rest_l) = labels.split_at_mut(n);
        parts.push((sink, d, l));
        (dist, labels) = (rest_d, rest_l);
    }
    parts.into_par_iter().for_each(|(sink, dist, labels)| {
        for i in 0..sink.heaps.len() {
            let qi = sink.first + i;
            for (slot, (key, id)) in sink.heaps.sorted(i).into_iter().enumerate() {
                dist[i * k + slot] = plan.value_of(key, qi);
                labels[i * k + slot] = id;
            }
        }
    });
    Ok(out)
}

/// Queries per parallel piece of [`nearest_small_d`].
const NEAREST_CHUNK: usize = 256;

/// `k = 1` for vectors of at most [`nearest::MAX_DIM`] dimensions against up to 65 536
/// rows (k-means assignment and PQ encoding on sub-spaces) through the transposed-block
/// kernel, which beats the GEMM-and-tile path 3× there; `None` when the shape is not one
/// it takes. Queries the kernel finds no row for (NaN, overflow) go through the general
/// path.
///
/// [`nearest::MAX_DIM`]: crate::nearest::MAX_DIM
fn nearest_small_d(
    metric: MetricType,
    queries: &[f32],
    base: &[f32],
    d: usize,
) -> Result<Option<SearchResult>> {
    let ip = match metric {
        MetricType::L2 => false,
        MetricType::InnerProduct => true,
        _ => return Ok(None),
    };
    if !(1..=crate::nearest::MAX_DIM).contains(&d) {
        return Ok(None);
    }
    let nq = check::vectors("query", queries, d)?;
    let nb = check::vectors("database", base, d)?;
    // Transposing the rows costs a pass over them: worth it for many queries, and kept
    // for centroid-sized sets.
    if nb == 0 || nb > 1 << 16 || nq < 16 {
        return Ok(None);
    }
    let cents = crate::nearest::Centroids::new(base, d, ip);
    let mut out = SearchResult::try_empty(nq, 1, metric)?;
    let norms = kernels().norms_sqr;
    // Each piece turns its keys into distances itself: nothing per query is left to the
    // calling thread.
    queries
        .par_chunks(NEAREST_CHUNK * d)
        .zip(out.labels.par_chunks_mut(NEAREST_CHUNK))
        .zip(out.distances.par_chunks_mut(NEAREST_CHUNK))
        .try_for_each(|((qs, labels), dist)| -> Result<()> {
            let mut found = [0u32; NEAREST_CHUNK];
            let found = &mut found[..labels.len()];
            cents.nearest(qs, found, dist);
            let mut qn = vec![0.0f32; labels.len()];
            if !ip {
                norms(qs, d, &mut qn);
            }
            for (j, q) in qs.chunks_exact(d).enumerate() {
                if found[j] == u32::MAX {
                    let one = knn(metric, q, base, d, 1, None)?;
                    (dist[j], labels[j]) = (one.distances[0], one.labels[0]);
                    continue;
                }
                labels[j] = found[j] as Idx;
                dist[j] = if ip {
                    -dist[j]
                } else {
                    (qn[j] + dist[j]).max(0.0)
                };
            }
            Ok(())
        })?;
    Ok(Some(out))
}

/// Every row of `base` within `radius` of each query: `distance < radius` for distances,
/// `similarity > radius` for inner product (strict, as Faiss). Row numbers are the ids;
/// rows `selector` rejects are skipped. Within a query, results come in increasing id
/// order.
pub fn range_search(
    metric: MetricType,
    queries: &[f32],
    base: &[f32],
    d: usize,
    radius: f32,
    selector: Option<&dyn IdSelector>,
) -> Result<RangeSearchResult> {
    check::radius(radius)?;
    let plan = Plan::new(metric, queries, base, d, selector)?;
    if plan.nb == 0 {
        return Ok(RangeSearchResult::from_lists(
            (0..plan.nq).map(|_| (Vec::new(), Vec::new())),
        ));
    }
    let sinks = plan.run(|first, n| RangeSink {
        first,
        bounds: (first..first + n)
            .map(|qi| plan.key_of(radius, qi))
            .collect(),
        hits: vec![Vec::new(); n],
    });
    let mut qi = 0;
    let mut lists = Vec::with_capacity(plan.nq);
    for sink in sinks {
        for mut hits in sink.hits {
            hits.sort_unstable_by_key(|h| h.0);
            let ids = hits.iter().map(|h| h.0).collect();
            let dists = hits.iter().map(|h| plan.value_of(h.1, qi)).collect();
            lists.push((ids, dists));
            qi += 1;
        }
    }
    Ok(RangeSearchResult::from_lists(lists))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distance::distance;
    use fathom_core::{IdSelectorBatch, IdSelectorRange};

    pub(crate) fn data(n: usize, d: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
        (0..n * d)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 24) as f32
            })
            .collect()
    }

    /// Exact reference: every distance by the one-to-one kernel, sorted.
    fn brute(
        metric: MetricType,
        q: &[f32],
        base: &[f32],
        d: usize,
        sel: &dyn Fn(Idx) -> bool,
    ) -> Vec<(f32, Idx)> {
        let mut all: Vec<(f32, Idx)> = base
            .chunks_exact(d)
            .enumerate()
            .filter(|(i, _)| sel(*i as Idx))
            .map(|(i, y)| (distance(metric, q, y).unwrap(), i as Idx))
            .collect();
        all.sort_by(|a, b| {
            let o = a.0.total_cmp(&b.0);
            if metric.is_similarity() {
                o.reverse()
            } else {
                o
            }
        });
        all
    }

    fn check_knn(
        metric: MetricType,
        nq: usize,
        nb: usize,
        d: usize,
        k: usize,
        sel: Option<&dyn IdSelector>,
    ) {
        let q = data(nq, d, 1);
        let base = data(nb, d, 2);
        let res = knn(metric, &q, &base, d, k, sel).unwrap();
        let member = |id: Idx| sel.is_none_or(|s| s.is_member(id));
        for i in 0..nq {
            let qi = &q[i * d..(i + 1) * d];
            let want = brute(metric, qi, &base, d, &member);
            let labels = res.labels_of(i);
            let dists = res.distances_of(i);
            for j in 0..k {
                if j >= want.len() {
                    assert_eq!(labels[j], -1, "{metric} q{i} slot {j}");
                    assert_eq!(dists[j], metric.worst_value());
                    continue;
                }
                let tol = 1e-3 * want[j].0.abs().max(1.0);
                assert!(
                    (dists[j] - want[j].0).abs() <= tol,
                    "{metric} nq={nq} q{i} slot {j}: {} vs {}",
                    dists[j],
                    want[j].0
                );
                let id = labels[j];
                assert!(member(id));
                let true_d = distance(metric, qi, &base[id as usize * d..][..d]).unwrap();
                assert!(
                    (true_d - want[j].0).abs() <= tol,
                    "{metric} q{i} slot {j}: label {id} has {true_d}, want {}",
                    want[j].0
                );
                assert!(!labels[..j].contains(&id), "duplicate label");
            }
        }
    }

    const ALL: [MetricType; 8] = [
        MetricType::L2,
        MetricType::InnerProduct,
        MetricType::L1,
        MetricType::Linf,
        MetricType::Lp(3.0),
        MetricType::Canberra,
        MetricType::BrayCurtis,
        MetricType::JensenShannon,
    ];

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    }

    #[test]
    fn knn_every_metric_every_path() {
        for threads in [1, 2, 3] {
            pool(threads).install(|| {
                for metric in ALL {
                    // one query (database-parallel, direct), a few (database-parallel, GEMM
                    // for L2/IP), many (query-parallel).
                    for nq in [1, 20, 150] {
                        check_knn(metric, nq, 3000, 13, 7, None);
                    }
                }
            });
        }
    }

    #[test]
    fn knn_with_selectors_and_large_k() {
        let range = IdSelectorRange::new(100, 140);
        let batch = IdSelectorBatch::new([5, 17, 2999]);
        let none = IdSelectorBatch::new([]);
        for metric in [MetricType::L2, MetricType::InnerProduct, MetricType::L1] {
            for nq in [1, 150] {
                check_knn(metric, nq, 3000, 16, 10, Some(&range));
                check_knn(metric, nq, 3000, 16, 10, Some(&batch));
                check_knn(metric, nq, 3000, 16, 4, Some(&none));
                check_knn(metric, nq, 30, 16, 50, None);
            }
        }
    }

    #[test]
    fn range_matches_brute_force() {
        let d = 8;
        let base = data(2500, d, 3);
        for metric in ALL {
            for nq in [1, 100] {
                let q = data(nq, d, 4);
                // A radius that keeps about 2% of the database.
                let probe = brute(metric, &q[..d], &base, d, &|_| true);
                let radius = probe[50].0;
                let sel = IdSelectorRange::new(0, 2000);
                let res = range_search(metric, &q, &base, d, radius, Some(&sel)).unwrap();
                assert_eq!(res.nq(), nq);
                for i in 0..nq {
                    let qi = &q[i * d..(i + 1) * d];
                    let want: Vec<Idx> = brute(metric, qi, &base, d, &|id| id < 2000)
                        .into_iter()
                        .filter(|&(v, _)| {
                            let margin = 1e-4 * radius.abs().max(1.0);
                            if metric.is_similarity() {
                                v > radius + margin
                            } else {
                                v < radius - margin
                            }
                        })
                        .map(|x| x.1)
                        .collect();
                    let (ids, dists) = res.query(i);
                    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids ascending");
                    for id in &want {
                        assert!(ids.contains(id), "{metric} q{i}: missing {id}");
                    }
                    for (&id, &v) in ids.iter().zip(dists) {
                        assert!(id < 2000);
                        assert!(
                            metric.is_better(v, radius) || (v - radius).abs() < 1e-3,
                            "{metric}: {v} vs {radius}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn bad_input() {
        let base = data(10, 4, 1);
        assert!(knn(MetricType::L2, &base[..4], &base, 4, 0, None).is_err());
        assert!(knn(MetricType::L2, &base[..3], &base, 4, 1, None).is_err());
        assert!(knn(MetricType::L2, &base[..4], &base[..5], 4, 1, None).is_err());
        assert!(knn(MetricType::L2, &base[..4], &base, 0, 1, None).is_err());
        assert!(knn(MetricType::L2, &base[..4], &base, 4, usize::MAX, None).is_err());
        assert!(range_search(MetricType::L2, &base[..4], &base, 4, f32::NAN, None).is_err());
        // Empty database: all missing.
        let r = knn(MetricType::InnerProduct, &base[..8], &[], 4, 3, None).unwrap();
        assert_eq!(r.labels, vec![-1; 6]);
        assert!(r.distances.iter().all(|&v| v == f32::NEG_INFINITY));
        // No queries: empty result.
        let r = knn(MetricType::L2, &[], &base, 4, 3, None).unwrap();
        assert_eq!(r.nq, 0);
    }

    #[test]
    fn nan_rows_are_never_returned() {
        let d = 4;
        let mut base = data(40, d, 9);
        base[8] = f32::NAN; // row 2
        for nq in [1, 100] {
            let q = data(nq, d, 5);
            let r = knn(MetricType::L2, &q, &base, d, 40, None).unwrap();
            for i in 0..nq {
                assert!(!r.labels_of(i).contains(&2));
                assert_eq!(r.labels_of(i)[39], -1);
            }
        }
    }

    #[test]
    fn result_does_not_depend_on_threads() {
        let d = 24;
        let q = data(300, d, 7);
        let base = data(5000, d, 8);
        let one = pool(1).install(|| knn(MetricType::L2, &q, &base, d, 5, None).unwrap());
        let three = pool(3).install(|| knn(MetricType::L2, &q, &base, d, 5, None).unwrap());
        assert_eq!(one.labels, three.labels);
    }
}
