//! `IndexAdditiveCoarseQuantizer` (Faiss's `AdditiveCoarseQuantizer`): a coarse quantizer
//! whose centroids are every code of an additive quantizer — `2^(Σ nbits)` of them, never
//! stored. A centroid's id is its code with level 0 in the low bits. Over a residual
//! quantizer (`IndexResidualCoarseQuantizer`, Faiss's `ResidualCoarseQuantizer`, factory
//! `RCQ<M>x<b>[_…]`) search is a beam search keeping `k · beam_factor` partial sums per
//! level (Faiss's default 4), or, with a negative `beam_factor`, an exhaustive scan of
//! every centroid through look-up tables; over a local-search quantizer
//! (`IndexLocalSearchCoarseQuantizer`, Faiss's `LocalSearchCoarseQuantizer`, factory
//! `LSCQ<M>x<b>`) always the exhaustive scan.

use std::sync::OnceLock;

use fathom_core::{Error, Idx, MetricType, Result, SearchParams, SearchResult};
use fathom_quant::additive::{AdditiveQuantizer, AqSearchType};
use rayon::prelude::*;

use crate::{Index, check_search};

/// Centroids an exhaustive scan enumerates at most.
const MAX_EXHAUSTIVE: usize = 1 << 24;

/// A coarse quantizer over every code of a residual or local-search quantizer.
///
/// ```
/// use fathom_index::{Index, IndexResidualCoarseQuantizer, MetricType};
/// let d = 8;
/// let x: Vec<f32> = (0..4000 * d).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
/// let mut rcq = IndexResidualCoarseQuantizer::new(d, vec![4, 4], MetricType::L2).unwrap();
/// rcq.train(&x).unwrap();
/// assert_eq!(rcq.ntotal(), 256);
/// let res = rcq.search(&x[..d], 3).unwrap();
/// // The beam search finds the same nearest centroid as the exhaustive scan.
/// rcq.beam_factor = -1.0;
/// assert_eq!(rcq.search(&x[..d], 1).unwrap().labels[0], res.labels[0]);
/// ```
#[derive(Debug, Clone)]
pub struct IndexAdditiveCoarseQuantizer {
    rq: AdditiveQuantizer,
    metric: MetricType,
    /// Partial sums kept per result in the beam search; negative scans every centroid.
    pub beam_factor: f32,
    centroid_norms: OnceLock<Vec<f32>>,
}

/// [`IndexAdditiveCoarseQuantizer`] over a residual quantizer (Faiss's
/// `ResidualCoarseQuantizer`).
pub type IndexResidualCoarseQuantizer = IndexAdditiveCoarseQuantizer;
/// [`IndexAdditiveCoarseQuantizer`] over a local-search quantizer (Faiss's
/// `LocalSearchCoarseQuantizer`).
pub type IndexLocalSearchCoarseQuantizer = IndexAdditiveCoarseQuantizer;

impl IndexAdditiveCoarseQuantizer {
    /// An untrained quantizer over a residual quantizer of `d`-dimensional vectors with
    /// levels of `nbits` bits.
    pub fn new(d: usize, nbits: Vec<usize>, metric: MetricType) -> Result<Self> {
        Self::from_quantizer(
            AdditiveQuantizer::residual(d, nbits, AqSearchType::Decompress)?,
            metric,
            4.0,
        )
    }

    /// An untrained quantizer over a local-search quantizer of `d`-dimensional vectors
    /// with `m` codebooks of `nbits` bits.
    pub fn new_local_search(d: usize, m: usize, nbits: usize, metric: MetricType) -> Result<Self> {
        Self::from_quantizer(
            AdditiveQuantizer::local_search(d, m, nbits, AqSearchType::Decompress)?,
            metric,
            -1.0,
        )
    }

    /// A quantizer over a residual or local-search quantizer (trained or not).
    pub fn from_quantizer(
        rq: AdditiveQuantizer,
        metric: MetricType,
        beam_factor: f32,
    ) -> Result<Self> {
        use fathom_quant::additive::AqKind;
        crate::additive::check_metric(metric)?;
        if !matches!(rq.kind(), AqKind::Residual(_) | AqKind::LocalSearch(_)) {
            return Err(Error::invalid(
                "an additive coarse quantizer is built over a residual or a local-search \
                 quantizer (not a product of them)",
            ));
        }
        if rq.code_bits() > 62 {
            return Err(Error::invalid(format!(
                "an additive coarse quantizer numbers its centroids in 62 bits; these \
                 codebooks take {}",
                rq.code_bits()
            )));
        }
        if beam_factor.is_nan() || (0.0..1.0).contains(&beam_factor) {
            return Err(Error::invalid(format!(
                "beam_factor is {beam_factor}; expected ≥ 1, or negative for an exhaustive scan"
            )));
        }
        Ok(IndexResidualCoarseQuantizer {
            rq,
            metric,
            beam_factor,
            centroid_norms: OnceLock::new(),
        })
    }

    /// The additive quantizer.
    pub fn aq(&self) -> &AdditiveQuantizer {
        &self.rq
    }

    /// Whether the centroids come from a residual quantizer (which has a beam search).
    fn is_residual(&self) -> bool {
        matches!(self.rq.kind(), fathom_quant::additive::AqKind::Residual(_))
    }

    /// The level codes of centroid `id`.
    fn levels(&self, id: usize) -> impl Iterator<Item = usize> + '_ {
        let mut shift = 0;
        self.rq.nbits().iter().map(move |&b| {
            let c = (id >> shift) & ((1 << b) - 1);
            shift += b;
            c
        })
    }

    fn centroid_norms(&self) -> &[f32] {
        self.centroid_norms.get_or_init(|| {
            (0..self.ntotal())
                .into_par_iter()
                .map_init(
                    || vec![0.0f32; self.dim()],
                    |y, id| {
                        self.decode_into(id, y);
                        y.iter().map(|v| v * v).sum()
                    },
                )
                .collect()
        })
    }

    fn decode_into(&self, id: usize, out: &mut [f32]) {
        let levels: Vec<u32> = self.levels(id).map(|c| c as u32).collect();
        self.rq.decode_levels(&levels, out);
    }

    /// Every centroid scored by tables; the `k` best of each query.
    fn search_exhaustive(&self, queries: &[f32], k: usize, res: &mut SearchResult) -> Result<()> {
        let (d, nt) = (self.dim(), self.ntotal());
        if nt > MAX_EXHAUSTIVE {
            return Err(Error::Unsupported(format!(
                "an exhaustive scan of {nt} centroids (more than {MAX_EXHAUSTIVE}); use a \
                 positive beam_factor"
            )));
        }
        let norms = (self.metric == MetricType::L2).then(|| self.centroid_norms());
        let offsets: Vec<usize> = self
            .rq
            .nbits()
            .iter()
            .scan(0, |o, &b| {
                let here = *o;
                *o += 1 << b;
                Some(here)
            })
            .collect();
        res.distances
            .par_chunks_mut(k)
            .zip(res.labels.par_chunks_mut(k))
            .zip(queries.par_chunks(d))
            .for_each(|((dis, labels), q)| {
                let lut = self.rq.compute_lut(q);
                let qn: f32 = q.iter().map(|v| v * v).sum();
                let mut all: Vec<(f32, Idx)> = (0..nt)
                    .map(|id| {
                        let ip: f32 = self
                            .levels(id)
                            .zip(&offsets)
                            .map(|(c, &o)| lut[o + c])
                            .sum();
                        let key = match norms {
                            Some(n) => qn + n[id] - 2.0 * ip,
                            None => -ip,
                        };
                        (key, id as Idx)
                    })
                    .collect();
                let keep = k.min(nt);
                let by = |a: &(f32, Idx), b: &(f32, Idx)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
                if keep < all.len() {
                    all.select_nth_unstable_by(keep - 1, by);
                    all.truncate(keep);
                }
                all.sort_unstable_by(by);
                for (j, (key, id)) in all.into_iter().enumerate() {
                    dis[j] = if norms.is_some() { key } else { -key };
                    labels[j] = id;
                }
            });
        Ok(())
    }
}

impl Index for IndexAdditiveCoarseQuantizer {
    fn dim(&self) -> usize {
        self.rq.d()
    }
    fn ntotal(&self) -> usize {
        if self.rq.is_trained() {
            1usize << self.rq.code_bits()
        } else {
            0
        }
    }
    fn metric(&self) -> MetricType {
        self.metric
    }
    fn is_trained(&self) -> bool {
        self.rq.is_trained()
    }
    fn train(&mut self, x: &[f32]) -> Result<()> {
        self.centroid_norms = OnceLock::new();
        self.rq.train(x)
    }
    fn add(&mut self, _x: &[f32]) -> Result<()> {
        Err(Error::Unsupported(
            "an additive coarse quantizer's centroids are every code of its quantizer; add \
             is not supported (train it instead)"
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
        if !self.is_trained() {
            return Err(Error::NotTrained(
                "searching an additive coarse quantizer".into(),
            ));
        }
        if params.selector.is_some() {
            return Err(Error::Unsupported(
                "id selectors on an additive coarse quantizer".into(),
            ));
        }
        fathom_core::check::finite("queries", queries, self.dim())?;
        let mut res = SearchResult::try_empty(nq, k, self.metric)?;
        // The beam search ranks by L2 and exists for residual quantizers; the rest scans
        // every centroid.
        if self.beam_factor < 0.0 || self.metric == MetricType::InnerProduct || !self.is_residual()
        {
            self.search_exhaustive(queries, k, &mut res)?;
            return Ok(res);
        }
        let nt = self.ntotal();
        let beam = ((k as f64 * self.beam_factor as f64) as usize).clamp(1, nt);
        let keep = k.min(beam);
        let (codes, dists, _) = self.rq.beam_search(queries, beam, keep);
        let mm = self.rq.m();
        for q in 0..nq {
            for j in 0..keep {
                let mut id: Idx = 0;
                let mut shift = 0;
                for (c, &b) in codes[(q * keep + j) * mm..][..mm]
                    .iter()
                    .zip(self.rq.nbits())
                {
                    id |= (*c as Idx) << shift;
                    shift += b;
                }
                res.labels[q * k + j] = id;
                res.distances[q * k + j] = dists[q * keep + j];
            }
        }
        Ok(res)
    }
    fn reconstruct(&self, id: Idx) -> Result<Vec<f32>> {
        if id < 0 || id as usize >= self.ntotal() {
            return Err(Error::IdNotFound(id));
        }
        let mut out = vec![0.0; self.dim()];
        self.decode_into(id as usize, &mut out);
        Ok(out)
    }
    fn reset(&mut self) -> Result<()> {
        Ok(())
    }
    fn set_param(&mut self, name: &str, value: f64) -> Result<()> {
        if name != "beam_factor" {
            return Err(Error::invalid(format!(
                "{name:?} is not a parameter of an additive coarse quantizer (beam_factor is)"
            )));
        }
        let bf = value as f32;
        if bf.is_nan() || (0.0..1.0).contains(&bf) {
            return Err(Error::invalid(format!(
                "beam_factor is {value}; expected ≥ 1, or negative for an exhaustive scan"
            )));
        }
        self.beam_factor = bf;
        Ok(())
    }
    fn param(&self, name: &str) -> Option<f64> {
        (name == "beam_factor").then_some(self.beam_factor as f64)
    }
    fn description(&self) -> String {
        let tok = crate::additive::aq_token(&self.rq);
        match tok.strip_prefix("LSQ") {
            Some(rest) => format!("LSCQ{rest}"),
            None => format!("RCQ{}", tok.trim_start_matches("RQ")),
        }
    }
    fn view(&self) -> crate::IndexView<'_> {
        crate::IndexView::AdditiveCoarseQuantizer(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, d: usize) -> Vec<f32> {
        let mut s = 7u32;
        (0..n * d)
            .map(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    }

    #[test]
    fn local_search_centroids_are_searched_exhaustively_to_brute_force() {
        let d = 8;
        let x = data(3000, d);
        for metric in [MetricType::L2, MetricType::InnerProduct] {
            let mut q = IndexLocalSearchCoarseQuantizer::new_local_search(d, 2, 4, metric).unwrap();
            assert_eq!(q.description(), "LSCQ2x4");
            q.train(&x).unwrap();
            assert_eq!(q.ntotal(), 256);
            let centroids: Vec<Vec<f32>> = (0..256).map(|i| q.reconstruct(i).unwrap()).collect();
            let res = q.search(&x[..5 * d], 3).unwrap();
            for (i, row) in x[..5 * d].chunks(d).enumerate() {
                let mut all: Vec<(f32, Idx)> = centroids
                    .iter()
                    .enumerate()
                    .map(|(id, c)| {
                        let v = fathom_kernels::distance(metric, row, c).unwrap();
                        (if metric == MetricType::L2 { v } else { -v }, id as Idx)
                    })
                    .collect();
                all.sort_by(|a, b| a.0.total_cmp(&b.0));
                assert_eq!(res.labels[i * 3], all[0].1, "{metric:?} query {i}");
            }
        }
    }

    #[test]
    fn the_factory_builds_an_ivf_over_a_local_search_coarse_quantizer() {
        let d = 8;
        let x = data(3000, d);
        let mut index = crate::index_factory(d, "IVF256(LSCQ2x4),Flat", MetricType::L2).unwrap();
        assert_eq!(index.description(), "IVF256(LSCQ2x4),Flat");
        index.train(&x).unwrap();
        index.add(&x).unwrap();
        index.set_param("nprobe", 256.0).unwrap();
        // Every list probed: exact.
        let r = index.search(&x[42 * d..43 * d], 1).unwrap();
        assert_eq!((r.labels[0], r.distances[0]), (42, 0.0));
    }
}
