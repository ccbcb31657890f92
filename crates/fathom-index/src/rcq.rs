//! `IndexResidualCoarseQuantizer` (Faiss's `ResidualCoarseQuantizer`, factory
//! `RCQ<M>x<b>[_…]`): a coarse quantizer whose centroids are every code of a residual
//! quantizer — `2^(Σ nbits)` of them, never stored. A centroid's id is its code with
//! level 0 in the low bits. Search is a beam search keeping `k · beam_factor` partial sums
//! per level (Faiss's default 4), or, with a negative `beam_factor`, an exhaustive scan of
//! every centroid through look-up tables.

use std::sync::OnceLock;

use fathom_core::{Error, Idx, MetricType, Result, SearchParams, SearchResult};
use fathom_quant::additive::{AdditiveQuantizer, AqSearchType};
use rayon::prelude::*;

use crate::{Index, check_search};

/// Centroids an exhaustive scan enumerates at most.
const MAX_EXHAUSTIVE: usize = 1 << 24;

/// A coarse quantizer over every code of a residual quantizer.
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
pub struct IndexResidualCoarseQuantizer {
    rq: AdditiveQuantizer,
    metric: MetricType,
    /// Partial sums kept per result in the beam search; negative scans every centroid.
    pub beam_factor: f32,
    centroid_norms: OnceLock<Vec<f32>>,
}

impl IndexResidualCoarseQuantizer {
    /// An untrained quantizer of `d`-dimensional vectors with levels of `nbits` bits.
    pub fn new(d: usize, nbits: Vec<usize>, metric: MetricType) -> Result<Self> {
        Self::from_quantizer(
            AdditiveQuantizer::residual(d, nbits, AqSearchType::Decompress)?,
            metric,
            4.0,
        )
    }

    /// A quantizer over a residual quantizer (trained, as read from a file).
    pub fn from_quantizer(
        rq: AdditiveQuantizer,
        metric: MetricType,
        beam_factor: f32,
    ) -> Result<Self> {
        crate::additive::check_metric(metric)?;
        if !matches!(rq.kind(), fathom_quant::additive::AqKind::Residual(_)) {
            return Err(Error::invalid(
                "a residual coarse quantizer is built over a residual quantizer",
            ));
        }
        if rq.code_bits() > 62 {
            return Err(Error::invalid(format!(
                "a residual coarse quantizer numbers its centroids in 62 bits; these codebooks \
                 take {}",
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

    /// The residual quantizer.
    pub fn rq(&self) -> &AdditiveQuantizer {
        &self.rq
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

impl Index for IndexResidualCoarseQuantizer {
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
            "a residual coarse quantizer's centroids are every code of its quantizer; add is \
             not supported (train it instead)"
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
                "searching a residual coarse quantizer".into(),
            ));
        }
        if params.selector.is_some() {
            return Err(Error::Unsupported(
                "id selectors on a residual coarse quantizer".into(),
            ));
        }
        fathom_core::check::finite("queries", queries, self.dim())?;
        let mut res = SearchResult::try_empty(nq, k, self.metric)?;
        // The beam search ranks by L2; inner product always scans every centroid.
        if self.beam_factor < 0.0 || self.metric == MetricType::InnerProduct {
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
                "{name:?} is not a parameter of a residual coarse quantizer (beam_factor is)"
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
        format!("RCQ{}", tok.trim_start_matches("RQ"))
    }
    fn view(&self) -> crate::IndexView<'_> {
        crate::IndexView::ResidualCoarseQuantizer(self)
    }
}
