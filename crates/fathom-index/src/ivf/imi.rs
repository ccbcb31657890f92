//! The inverted multi-index quantizer: a product quantizer whose every code is a list.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::OnceLock;

use fathom_core::{Error, Idx, MetricType, Result, SearchParams, SearchResult};
use fathom_kernels::TopK;
use fathom_quant::ProductQuantizer;
use rayon::prelude::*;

use crate::{Index, check_search};

/// An inverted multi-index (Faiss's `MultiIndexQuantizer`, factory `IMI2x10`): a product
/// quantizer with `m` sub-spaces of `2^nbits` centroids whose `2^(m·nbits)` centroid
/// combinations are the lists of an IVF index. Combination `(i_0, …, i_{m−1})` is list
/// `Σ i_j · 2^(j·nbits)`.
///
/// Search finds the `k` combinations nearest to the query without enumerating them:
/// each sub-space's distances are sorted and combinations are visited in increasing sum
/// with a heap (the multi-sequence algorithm of Babenko & Lempitsky).
///
/// ```
/// use fathom_index::{Index, MultiIndexQuantizer};
/// let d = 4;
/// let x: Vec<f32> = (0..500 * d).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
/// let mut imi = MultiIndexQuantizer::new(d, 2, 3).unwrap();
/// imi.train(&x).unwrap();
/// assert_eq!(imi.ntotal(), 64);
/// let res = imi.search(&x[..d], 4).unwrap();
/// assert!(res.distances.windows(2).all(|w| w[0] <= w[1]));
/// ```
#[derive(Debug, Clone)]
pub struct MultiIndexQuantizer {
    pq: ProductQuantizer,
    norms: OnceLock<Vec<f32>>,
}

impl MultiIndexQuantizer {
    /// An untrained multi-index of `m` sub-spaces × `nbits` bits (`m · nbits ≤ 62`).
    pub fn new(d: usize, m: usize, nbits: usize) -> Result<Self> {
        if m * nbits > 62 {
            return Err(Error::invalid(format!(
                "a multi-index of {m} × {nbits} bits has more lists than ids can number \
                 (m · nbits ≤ 62)"
            )));
        }
        Ok(MultiIndexQuantizer {
            pq: ProductQuantizer::new(d, m, nbits)?,
            norms: OnceLock::new(),
        })
    }
    /// The product quantizer.
    pub fn pq(&self) -> &ProductQuantizer {
        &self.pq
    }
    /// The product quantizer, e.g. to set centroids read from a file.
    pub fn pq_mut(&mut self) -> &mut ProductQuantizer {
        self.norms = OnceLock::new();
        &mut self.pq
    }

    /// `‖c‖²` of every sub-centroid.
    fn centroid_norms(&self) -> &[f32] {
        self.norms.get_or_init(|| {
            self.pq
                .centroids()
                .chunks_exact(self.pq.dsub())
                .map(|c| c.iter().map(|v| v * v).sum())
                .collect()
        })
    }

    /// The `k` best combinations for one query table (`m × ksub`).
    fn search_one(&self, table: &[f32], k: usize, dis: &mut [f32], labels: &mut [Idx]) {
        let (m, ksub, nbits) = (self.pq.m(), self.pq.ksub(), self.pq.nbits());
        let kk = k.min(ksub);
        // The kk best entries of each sub-table, in increasing order: no combination
        // among the k best uses a worse one.
        let sorted: Vec<Vec<(f32, u32)>> = table
            .chunks_exact(ksub)
            .map(|t| {
                let mut top = TopK::new(kk);
                top.push_run(0, t, |_| true);
                top.into_sorted()
                    .into_iter()
                    .map(|(d, j)| (d, j as u32))
                    .collect()
            })
            .collect();
        let label_of = |pos: &[u32]| -> Idx {
            pos.iter()
                .enumerate()
                .map(|(j, &p)| (sorted[j][p as usize].1 as Idx) << (j * nbits))
                .sum()
        };
        let sum_of = |pos: &[u32]| -> f32 {
            pos.iter()
                .enumerate()
                .map(|(j, &p)| sorted[j][p as usize].0)
                .sum()
        };
        // Each combination has one parent (its last non-zero position decremented), so
        // children increment positions at or after the last non-zero one. States' positions
        // live in one arena (`m` entries each), so a push allocates nothing.
        let mut arena: Vec<u32> = vec![0; m];
        let mut heap = BinaryHeap::new();
        heap.push(Reverse((
            OrdF32(sum_of(&arena[..m])),
            label_of(&arena[..m]),
            0u32,
        )));
        let mut got = 0;
        while got < k {
            let Some(Reverse((OrdF32(s), label, state))) = heap.pop() else {
                break;
            };
            dis[got] = s;
            labels[got] = label;
            got += 1;
            let at = state as usize * m;
            let last = arena[at..at + m].iter().rposition(|&p| p > 0).unwrap_or(0);
            for j in last..m {
                if (arena[at + j] as usize) + 1 < sorted[j].len() {
                    let next = (arena.len() / m) as u32;
                    arena.extend_from_within(at..at + m);
                    let pos = &mut arena[next as usize * m..];
                    pos[j] += 1;
                    heap.push(Reverse((OrdF32(sum_of(pos)), label_of(pos), next)));
                }
            }
        }
        for slot in got..k {
            dis[slot] = f32::INFINITY;
            labels[slot] = -1;
        }
    }
}

/// A totally ordered f32 for the heap.
#[derive(Debug, Clone, Copy, PartialEq)]
struct OrdF32(f32);
impl Eq for OrdF32 {}
impl PartialOrd for OrdF32 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrdF32 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl Index for MultiIndexQuantizer {
    fn dim(&self) -> usize {
        self.pq.d()
    }
    fn ntotal(&self) -> usize {
        if self.pq.is_trained() {
            1usize << (self.pq.m() * self.pq.nbits())
        } else {
            0
        }
    }
    fn metric(&self) -> MetricType {
        MetricType::L2
    }
    fn is_trained(&self) -> bool {
        self.pq.is_trained()
    }
    fn train(&mut self, x: &[f32]) -> Result<()> {
        self.norms = OnceLock::new();
        self.pq.train(x)
    }
    fn add(&mut self, _x: &[f32]) -> Result<()> {
        Err(Error::Unsupported(
            "a multi-index quantizer holds every centroid combination; add is not supported \
             (train it instead)"
                .into(),
        ))
    }
    fn search_with(
        &self,
        queries: &[f32],
        k: usize,
        params: &SearchParams<'_>,
    ) -> Result<SearchResult> {
        let nq = check_search(self, queries, k)?;
        if params.selector.is_some() {
            return Err(Error::Unsupported(
                "id selectors on a multi-index quantizer".into(),
            ));
        }
        let mut res = SearchResult::try_empty(nq, k, MetricType::L2)?;
        let d = self.pq.d();
        let (ksub, dsub, nbits) = (self.pq.ksub(), self.pq.dsub(), self.pq.nbits());
        let per = self.pq.m() * ksub;
        let norms = self.centroid_norms();
        let m = self.pq.m();
        // Blocks of queries: with long sub-vectors each block's inner products with a
        // sub-space's centroids are one GEMM (centroids read once per block, as Faiss's
        // BLAS tables); short ones use the per-query table kernel.
        let block = if dsub >= 16 { 64 } else { 1 };
        res.distances
            .par_chunks_mut(block * k)
            .zip(res.labels.par_chunks_mut(block * k))
            .zip(queries.par_chunks(block * d))
            .try_for_each_init(
                || {
                    (
                        vec![0.0f32; block * per],
                        Vec::new(),
                        vec![0.0f32; block * ksub],
                    )
                },
                |(tables, xs, ip), ((dis, labels), x)| -> Result<()> {
                    let nb = x.len() / d;
                    if block == 1 {
                        self.pq.compute_distance_table(
                            MetricType::InnerProduct,
                            x,
                            &mut tables[..per],
                        )?;
                    } else {
                        if k == 1 {
                            // Assignment: each sub-space's nearest centroid minimises
                            // ‖c‖² − 2⟨x,c⟩; no table is composed.
                            dis[..nb].fill(0.0);
                            labels[..nb].fill(0);
                        }
                        for s in 0..m {
                            xs.clear();
                            for r in x.chunks_exact(d) {
                                xs.extend_from_slice(&r[s * dsub..(s + 1) * dsub]);
                            }
                            let cs = &self.pq.centroids()[s * ksub * dsub..(s + 1) * ksub * dsub];
                            fathom_kernels::matmul_abt(xs, cs, dsub, 1.0, &mut ip[..nb * ksub])?;
                            if k == 1 {
                                let cn = &norms[s * ksub..(s + 1) * ksub];
                                for q in 0..nb {
                                    let row = &mut ip[q * ksub..(q + 1) * ksub];
                                    for (v, &c) in row.iter_mut().zip(cn) {
                                        *v = c - 2.0 * *v;
                                    }
                                    let a = fathom_kernels::codes::pq::argmin(row);
                                    let xsub = &xs[q * dsub..(q + 1) * dsub];
                                    let xn: f32 = xsub.iter().map(|v| v * v).sum();
                                    dis[q] += (xn + row[a]).max(0.0);
                                    labels[q] |= (a as Idx) << (s * nbits);
                                }
                                continue;
                            }
                            for q in 0..nb {
                                tables[q * per + s * ksub..q * per + (s + 1) * ksub]
                                    .copy_from_slice(&ip[q * ksub..(q + 1) * ksub]);
                            }
                        }
                    }
                    if k == 1 && block > 1 {
                        return Ok(());
                    }
                    for q in 0..nb {
                        let table = &mut tables[q * per..(q + 1) * per];
                        let xq = &x[q * d..(q + 1) * d];
                        // ‖x−c‖² = ‖x‖² + ‖c‖² − 2⟨x,c⟩.
                        for (s, t) in table.chunks_exact_mut(ksub).enumerate() {
                            let xsub = &xq[s * dsub..(s + 1) * dsub];
                            let xn: f32 = xsub.iter().map(|v| v * v).sum();
                            for (v, &cn) in t.iter_mut().zip(&norms[s * ksub..(s + 1) * ksub]) {
                                *v = (xn + cn - 2.0 * *v).max(0.0);
                            }
                        }
                        let (dq, lq) = (
                            &mut dis[q * k..(q + 1) * k],
                            &mut labels[q * k..(q + 1) * k],
                        );
                        if k == 1 {
                            // The nearest combination is each sub-space's nearest centroid.
                            let mut label = 0;
                            let mut sum = 0.0;
                            for (j, t) in table.chunks_exact(ksub).enumerate() {
                                let a = fathom_kernels::codes::pq::argmin(t);
                                sum += t[a];
                                label |= (a as Idx) << (j * nbits);
                            }
                            dq[0] = sum;
                            lq[0] = label;
                        } else {
                            self.search_one(table, k, dq, lq);
                        }
                    }
                    Ok(())
                },
            )?;
        Ok(res)
    }
    fn reconstruct(&self, id: Idx) -> Result<Vec<f32>> {
        if id < 0 || id as usize >= self.ntotal() {
            return Err(Error::IdNotFound(id));
        }
        let (nbits, dsub) = (self.pq.nbits(), self.pq.dsub());
        let mask = (1 << nbits) - 1;
        let mut x = vec![0.0; self.pq.d()];
        for (j, xs) in x.chunks_exact_mut(dsub).enumerate() {
            let c = ((id >> (j * nbits)) & mask) as usize;
            xs.copy_from_slice(self.pq.centroid(j, c));
        }
        Ok(x)
    }
    fn reset(&mut self) -> Result<()> {
        Ok(())
    }
    fn description(&self) -> String {
        format!("IMI{}x{}", self.pq.m(), self.pq.nbits())
    }
    fn view(&self) -> crate::IndexView<'_> {
        crate::IndexView::MultiIndexQuantizer(self)
    }
}
