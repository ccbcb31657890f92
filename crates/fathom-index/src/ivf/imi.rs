//! The inverted multi-index quantizer: a product quantizer whose every code is a list.

use std::any::Any;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

use fathom_core::{Error, Idx, MetricType, Result, SearchParams, SearchResult};
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
        })
    }
    /// The product quantizer.
    pub fn pq(&self) -> &ProductQuantizer {
        &self.pq
    }
    /// The product quantizer, e.g. to set centroids read from a file.
    pub fn pq_mut(&mut self) -> &mut ProductQuantizer {
        &mut self.pq
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
                let mut v: Vec<(f32, u32)> =
                    t.iter().enumerate().map(|(j, &d)| (d, j as u32)).collect();
                let cmp = |a: &(f32, u32), b: &(f32, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
                if kk < v.len() {
                    v.select_nth_unstable_by(kk - 1, cmp);
                    v.truncate(kk);
                }
                v.sort_unstable_by(cmp);
                v
            })
            .collect();
        let label_of = |pos: &[usize]| -> Idx {
            pos.iter()
                .enumerate()
                .map(|(j, &p)| (sorted[j][p].1 as Idx) << (j * nbits))
                .sum()
        };
        let sum_of =
            |pos: &[usize]| -> f32 { pos.iter().enumerate().map(|(j, &p)| sorted[j][p].0).sum() };
        // Each combination has one parent (its last non-zero position decremented), so
        // children increment positions at or after the last non-zero one.
        let mut heap = BinaryHeap::new();
        let start = vec![0usize; m];
        heap.push(Reverse((OrdF32(sum_of(&start)), label_of(&start), start)));
        let mut got = 0;
        while got < k {
            let Some(Reverse((OrdF32(s), label, pos))) = heap.pop() else {
                break;
            };
            dis[got] = s;
            labels[got] = label;
            got += 1;
            let last = pos.iter().rposition(|&p| p > 0).unwrap_or(0);
            for j in last..m {
                if pos[j] + 1 < sorted[j].len() {
                    let mut next = pos.clone();
                    next[j] += 1;
                    heap.push(Reverse((OrdF32(sum_of(&next)), label_of(&next), next)));
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
        let per = self.pq.m() * self.pq.ksub();
        res.distances
            .par_chunks_mut(k)
            .zip(res.labels.par_chunks_mut(k))
            .zip(queries.par_chunks(d))
            .for_each_init(
                || vec![0.0f32; per],
                |table, ((dis, labels), x)| {
                    self.pq.compute_distance_table(MetricType::L2, x, table);
                    if k == 1 {
                        // The nearest combination is each sub-space's nearest centroid.
                        let mut label = 0;
                        let mut s = 0.0;
                        for (j, t) in table.chunks_exact(self.pq.ksub()).enumerate() {
                            let a = fathom_kernels::codes::pq::argmin(t);
                            s += t[a];
                            label |= (a as Idx) << (j * self.pq.nbits());
                        }
                        dis[0] = s;
                        labels[0] = label;
                    } else {
                        self.search_one(table, k, dis, labels);
                    }
                },
            );
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
    fn reset(&mut self) {}
    fn description(&self) -> String {
        format!("IMI{}x{}", self.pq.m(), self.pq.nbits())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
