//! Top-k search over the mapped rows: one pass over the vectors per batch of queries,
//! a GEMM per block of rows when there are several queries, norms read beside the vectors
//! so cosine similarity costs one dot product per vector.

use fathom_core::{Error, MetricType, Result, check};
use fathom_kernels::TopK;
use rayon::prelude::*;

use crate::store::{Inner, SegmentView, VectorStore};

/// How stored vectors are compared with a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Similarity {
    /// `⟨q, x⟩ / (‖q‖·‖x‖)`, higher is better. A stored zero vector scores 0; a zero
    /// query is an error (its cosine is undefined).
    #[default]
    Cosine,
    /// `⟨q, x⟩`, higher is better.
    InnerProduct,
    /// Squared Euclidean distance `‖q − x‖²`, lower is better.
    L2,
}

impl Similarity {
    /// Whether higher scores are better (cosine, inner product).
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Similarity::L2)
    }

    /// Parses `cosine`, `ip` / `inner_product`, `l2`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "cosine" | "cos" => Ok(Similarity::Cosine),
            "ip" | "inner_product" | "dot" => Ok(Similarity::InnerProduct),
            "l2" => Ok(Similarity::L2),
            _ => Err(Error::invalid(format!(
                "unknown similarity {s:?}; expected cosine, ip or l2"
            ))),
        }
    }
}

/// One result: a vector id and its score (similarity, or squared distance for L2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// The vector's id.
    pub id: u64,
    /// Its similarity to the query (cosine, inner product) or squared distance (L2).
    pub score: f32,
}

/// Options of [`VectorStore::search`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SearchOptions<'a> {
    /// Keep only hits scoring at least this (cosine, inner product) or at most this
    /// distance (L2).
    pub threshold: Option<f32>,
    /// Rows scored per block (0: 8192). Bounds the scratch memory of a search:
    /// `queries × batch_size` floats per worker.
    pub batch_size: usize,
    /// Search only these ids (deleted ones are skipped; an id never stored is an error).
    pub ids: Option<&'a [u64]>,
}

/// Queries at and above which a block is scored with one GEMM instead of one pass per
/// query.
const GEMM_MIN_QUERIES: usize = 4;
const DEFAULT_BATCH: usize = 8192;

/// Per-query constants that turn a dot product into a key (smaller is better).
struct KeyMap {
    sim: Similarity,
    /// ‖q‖ (cosine) or ‖q‖² (L2), per query.
    qn: Vec<f32>,
    /// Keys above this are cut (the threshold as a key), `+∞` without one.
    cut: f32,
}

impl KeyMap {
    #[inline]
    fn key(&self, q: usize, dot: f32, norm: f32) -> f32 {
        let key = match self.sim {
            Similarity::Cosine => {
                let den = self.qn[q] * norm;
                if den > 0.0 { -(dot / den) } else { -0.0 }
            }
            Similarity::InnerProduct => -dot,
            Similarity::L2 => (self.qn[q] + norm * norm - 2.0 * dot).max(0.0),
        };
        // Infinite keys never enter a heap.
        if key > self.cut { f32::INFINITY } else { key }
    }

    fn score(&self, key: f32) -> f32 {
        if self.sim.higher_is_better() {
            -key
        } else {
            key
        }
    }
}

impl VectorStore {
    /// The `k` best stored vectors for each of the queries (`nq × dim` floats), best
    /// first; fewer when fewer vectors are live or pass the threshold.
    ///
    /// ```
    /// use fathom_store::{SearchOptions, Similarity, VectorStore};
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = VectorStore::create(dir.path().join("s"), 2).unwrap();
    /// store.add_vectors(&[0.0, 0.0, 3.0, 4.0, 1.0, 1.0]).unwrap();
    /// let opts = SearchOptions { threshold: Some(5.0), ..Default::default() };
    /// let hits = store.search(&[0.0, 0.0], 3, Similarity::L2, &opts).unwrap();
    /// let ids: Vec<u64> = hits[0].iter().map(|h| h.id).collect();
    /// assert_eq!(ids, vec![0, 2]); // id 1 is at distance² 25 > 5
    /// ```
    pub fn search(
        &self,
        queries: &[f32],
        k: usize,
        sim: Similarity,
        opts: &SearchOptions<'_>,
    ) -> Result<Vec<Vec<Hit>>> {
        let g = self.read();
        let d = g.dim();
        check::k(k)?;
        let nq = check::vectors("query", queries, d)?;
        check::finite("query", queries, d)?;
        if let Some(t) = opts.threshold
            && t.is_nan()
        {
            return Err(Error::invalid("threshold is NaN"));
        }
        let qn: Vec<f32> = match sim {
            Similarity::Cosine => fathom_kernels::l2_norms(queries, d)?,
            Similarity::L2 => fathom_kernels::l2_norms_sqr(queries, d)?,
            Similarity::InnerProduct => vec![0.0; nq],
        };
        if sim == Similarity::Cosine
            && let Some(q) = qn.iter().position(|&n| n == 0.0)
        {
            return Err(Error::invalid(format!(
                "query {q} is the zero vector: its cosine similarity is undefined"
            )));
        }
        let cut = match (opts.threshold, sim.higher_is_better()) {
            (None, _) => f32::INFINITY,
            (Some(t), true) => -t,
            (Some(t), false) => t,
        };
        let km = KeyMap { sim, qn, cut };
        let tops = match opts.ids {
            Some(ids) => search_ids(&g, queries, k, &km, ids)?,
            None => {
                let batch = if opts.batch_size == 0 {
                    DEFAULT_BATCH
                } else {
                    opts.batch_size
                };
                scan(&g, queries, k, &km, batch)?
            }
        };
        Ok(tops
            .into_iter()
            .map(|t| {
                t.into_sorted()
                    .into_iter()
                    .map(|(key, id)| Hit {
                        id: id as u64,
                        score: km.score(key),
                    })
                    .collect()
            })
            .collect())
    }

    /// The `top_k` live vectors most cosine-similar to `query`, best first; with
    /// `min_score`, only those scoring at least that. `batch_size` rows are scored per
    /// block (0: the default).
    pub fn cosine_search(
        &self,
        query: &[f32],
        top_k: usize,
        min_score: Option<f32>,
        batch_size: usize,
    ) -> Result<Vec<Hit>> {
        let opts = SearchOptions {
            threshold: min_score,
            batch_size,
            ids: None,
        };
        self.single(query, top_k, &opts)
    }

    /// [`VectorStore::cosine_search`] among `ids` only (deleted ones skipped).
    pub fn cosine_search_in_ids(
        &self,
        query: &[f32],
        ids: &[u64],
        top_k: usize,
        min_score: Option<f32>,
    ) -> Result<Vec<Hit>> {
        let opts = SearchOptions {
            threshold: min_score,
            batch_size: 0,
            ids: Some(ids),
        };
        self.single(query, top_k, &opts)
    }

    fn single(&self, query: &[f32], k: usize, opts: &SearchOptions<'_>) -> Result<Vec<Hit>> {
        let d = self.dim();
        if query.len() != d {
            return Err(Error::DimensionMismatch {
                what: "query".into(),
                got: query.len(),
                expected: format!("the store's dimension {d}"),
            });
        }
        Ok(self
            .search(query, k, Similarity::Cosine, opts)?
            .pop()
            .unwrap_or_default())
    }
}

/// Every live row against every query, blocks of rows in parallel.
fn scan(g: &Inner, queries: &[f32], k: usize, km: &KeyMap, batch: usize) -> Result<Vec<TopK>> {
    let d = g.dim();
    let nq = queries.len() / d;
    let segments = g.segments();
    let blocks: Vec<(usize, usize, usize)> = segments
        .iter()
        .enumerate()
        .flat_map(|(s, v)| {
            (0..v.rows())
                .step_by(batch)
                .map(move |r| (s, r, (r + batch).min(v.rows())))
        })
        .collect();
    let fresh = || (0..nq).map(|_| TopK::new(k)).collect::<Vec<_>>();
    blocks
        .par_iter()
        .try_fold(
            || (fresh(), Vec::new()),
            |(mut tops, mut dots), &(s, r0, r1)| -> Result<_> {
                score_block(&segments[s], r0, r1, queries, d, km, &mut tops, &mut dots)?;
                Ok((tops, dots))
            },
        )
        .map(|r| r.map(|(t, _)| t))
        .try_reduce(fresh, |mut a, b| {
            for (x, y) in a.iter_mut().zip(&b) {
                x.merge(y);
            }
            Ok(a)
        })
}

/// Scores rows `r0..r1` of one segment for every query and offers them to the heaps.
#[allow(clippy::too_many_arguments)]
fn score_block(
    seg: &SegmentView<'_>,
    r0: usize,
    r1: usize,
    queries: &[f32],
    d: usize,
    km: &KeyMap,
    tops: &mut [TopK],
    dots: &mut Vec<f32>,
) -> Result<()> {
    let nq = tops.len();
    let nb = r1 - r0;
    let rows = &seg.vectors[r0 * d..r1 * d];
    let norms = &seg.norms[r0..r1];
    dots.resize(nq * nb, 0.0);
    if nq >= GEMM_MIN_QUERIES {
        fathom_kernels::matmul_abt(queries, rows, d, 1.0, dots)?;
    } else {
        for (q, out) in dots.chunks_exact_mut(nb).enumerate() {
            fathom_kernels::distances_to(
                MetricType::InnerProduct,
                &queries[q * d..(q + 1) * d],
                rows,
                out,
            )?;
        }
    }
    let first = (seg.first_row + r0 as u64) as i64;
    for (q, (top, row)) in tops.iter_mut().zip(dots.chunks_exact_mut(nb)).enumerate() {
        for (v, &n) in row.iter_mut().zip(norms) {
            *v = km.key(q, *v, n);
        }
        top.push_run(first, row, |id| !seg.is_deleted((id - first) as usize + r0));
    }
    Ok(())
}

/// Only the listed rows, queries in parallel.
fn search_ids(g: &Inner, queries: &[f32], k: usize, km: &KeyMap, ids: &[u64]) -> Result<Vec<TopK>> {
    for &id in ids {
        g.check_id(id)?;
    }
    let d = g.dim();
    Ok(queries
        .par_chunks(d)
        .enumerate()
        .map(|(q, query)| {
            let mut top = TopK::new(k);
            for &id in ids {
                if g.is_deleted(id) {
                    continue;
                }
                let (x, n) = g.row(id);
                let dot = fathom_kernels::distance(MetricType::InnerProduct, query, x)
                    .expect("rows have the store's dimension");
                let key = km.key(q, dot, n);
                if key < f32::INFINITY {
                    top.push(key, id as i64);
                }
            }
            top
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similarity_names() {
        assert_eq!(Similarity::parse("COSINE").unwrap(), Similarity::Cosine);
        assert_eq!(Similarity::parse("ip").unwrap(), Similarity::InnerProduct);
        assert!(Similarity::parse("hamming").is_err());
    }
}
