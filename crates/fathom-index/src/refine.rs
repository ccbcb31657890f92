//! `IndexRefine`: search one index, re-rank its candidates with another.

use fathom_core::{Error, IdSelector, Idx, MetricType, Result, SearchParams, SearchResult, check};
use rayon::prelude::*;

use crate::{Index, IndexFlat, check_search};

/// Searches `base` for `k · k_factor` candidates per query and re-ranks them by their
/// distance in `refine` — exact when `refine` is an [`IndexFlat`] (Faiss's
/// `IndexRefineFlat`, factory suffix `,RFlat`; `,Refine(SQ8)` for any other). Both
/// indexes hold the same vectors in the same order: [`Index::add`] adds to both.
///
/// ```
/// use fathom_index::{Index, IndexPq, IndexRefine, MetricType};
/// let d = 8;
/// let x: Vec<f32> = (0..2000 * d).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
/// let pq = IndexPq::new(d, 2, 4, MetricType::L2).unwrap();
/// let mut index = IndexRefine::flat(Box::new(pq)).unwrap();
/// index.k_factor = 8.0;
/// index.train(&x).unwrap();
/// index.add(&x).unwrap();
/// let res = index.search(&x[5 * d..6 * d], 1).unwrap();
/// assert_eq!(res.labels[0], 5); // exact distances after re-ranking
/// ```
#[derive(Debug)]
pub struct IndexRefine {
    base: Box<dyn Index>,
    refine: Box<dyn Index>,
    /// Candidates fetched from `base` per result (≥ 1).
    pub k_factor: f32,
}

impl IndexRefine {
    /// `base` re-ranked by `refine`; they must agree on dimension and metric, and hold the
    /// same number of vectors.
    pub fn new(base: Box<dyn Index>, refine: Box<dyn Index>) -> Result<Self> {
        if base.dim() != refine.dim() || base.metric() != refine.metric() {
            return Err(Error::invalid(format!(
                "refinement index ({}, d = {}, {:?}) does not match the base ({}, d = {}, {:?})",
                refine.description(),
                refine.dim(),
                refine.metric(),
                base.description(),
                base.dim(),
                base.metric()
            )));
        }
        if base.ntotal() != refine.ntotal() {
            return Err(Error::invalid(format!(
                "base holds {} vectors and the refinement index {}: they must hold the same",
                base.ntotal(),
                refine.ntotal()
            )));
        }
        Ok(IndexRefine {
            base,
            refine,
            k_factor: 1.0,
        })
    }

    /// `base` re-ranked by exact distances (a new [`IndexFlat`] with the base's metric);
    /// `base` must be empty.
    pub fn flat(base: Box<dyn Index>) -> Result<Self> {
        let refine = IndexFlat::new(base.dim(), base.metric())?;
        Self::new(base, Box::new(refine))
    }

    /// The index searched first.
    pub fn base(&self) -> &dyn Index {
        &*self.base
    }
    /// The index searched first, mutably (for its parameters).
    pub fn base_mut(&mut self) -> &mut dyn Index {
        &mut *self.base
    }
    /// The re-ranking index.
    pub fn refine(&self) -> &dyn Index {
        &*self.refine
    }
}

impl Index for IndexRefine {
    fn dim(&self) -> usize {
        self.base.dim()
    }
    fn ntotal(&self) -> usize {
        self.refine.ntotal()
    }
    fn metric(&self) -> MetricType {
        self.base.metric()
    }
    fn is_trained(&self) -> bool {
        self.base.is_trained() && self.refine.is_trained()
    }
    fn train(&mut self, x: &[f32]) -> Result<()> {
        self.base.train(x)?;
        self.refine.train(x)
    }
    fn add(&mut self, x: &[f32]) -> Result<()> {
        if !self.is_trained() {
            return Err(Error::NotTrained("add to IndexRefine".into()));
        }
        check::vectors("added", x, self.dim())?;
        check::finite("added", x, self.dim())?;
        self.base.add(x)?;
        self.refine.add(x)
    }

    fn search_with(
        &self,
        queries: &[f32],
        k: usize,
        params: &SearchParams<'_>,
    ) -> Result<SearchResult> {
        let nq = check_search(self, queries, k)?;
        if self.k_factor.is_nan() || self.k_factor < 1.0 {
            return Err(Error::invalid(format!(
                "k_factor = {} must be at least 1",
                self.k_factor
            )));
        }
        let k_base = ((k as f64 * self.k_factor as f64).ceil() as usize).max(k);
        let cand = self.base.search_with(queries, k_base, params)?;
        let d = self.dim();
        let metric = self.metric();
        let rows: Vec<Vec<(f32, Idx)>> = (0..nq)
            .into_par_iter()
            .map(|q| {
                let ids = cand.labels_of(q);
                let mut dis = vec![0.0f32; ids.len()];
                self.refine
                    .compute_distances(&queries[q * d..(q + 1) * d], ids, &mut dis)?;
                let mut pairs: Vec<(f32, Idx)> = dis
                    .into_iter()
                    .zip(ids.iter().copied())
                    .filter(|&(_, id)| id >= 0)
                    .collect();
                pairs.sort_by(|a, b| {
                    let o = if metric.is_similarity() {
                        b.0.total_cmp(&a.0)
                    } else {
                        a.0.total_cmp(&b.0)
                    };
                    o.then(a.1.cmp(&b.1))
                });
                pairs.truncate(k);
                Ok(pairs)
            })
            .collect::<Result<_>>()?;
        let mut res = SearchResult::try_empty(nq, k, metric)?;
        for (q, row) in rows.into_iter().enumerate() {
            for (j, (dis, id)) in row.into_iter().enumerate() {
                res.distances[q * k + j] = dis;
                res.labels[q * k + j] = id;
            }
        }
        Ok(res)
    }

    fn reconstruct(&self, id: Idx) -> Result<Vec<f32>> {
        self.refine.reconstruct(id)
    }

    fn compute_distances(&self, query: &[f32], ids: &[Idx], out: &mut [f32]) -> Result<()> {
        self.refine.compute_distances(query, ids, out)
    }

    fn ids_are_positions(&self) -> bool {
        self.base.ids_are_positions()
    }
    fn remove_ids(&mut self, selector: &dyn IdSelector) -> Result<usize> {
        let a = self.base.remove_ids(selector)?;
        let b = self.refine.remove_ids(selector)?;
        if a != b {
            return Err(Error::invalid(format!(
                "base removed {a} vectors but the refinement index {b}: the two are out of step"
            )));
        }
        Ok(a)
    }

    fn reset(&mut self) -> Result<()> {
        self.base.reset()?;
        self.refine.reset()
    }

    fn set_param(&mut self, name: &str, value: f64) -> Result<()> {
        // `k_factor_rf` is always this re-ranking's; plain `k_factor` too unless the base
        // has its own (IVFPQR), as Faiss's set_index_parameter.
        let base_has_it = || {
            self.base
                .parameter_ranges()
                .iter()
                .any(|r| r.name == "k_factor")
        };
        match name {
            "k_factor_rf" => {
                self.k_factor = k_factor(name, value)?;
                Ok(())
            }
            "k_factor" if !base_has_it() => {
                self.k_factor = k_factor(name, value)?;
                Ok(())
            }
            _ => self.base.set_param(name, value),
        }
    }

    fn param(&self, name: &str) -> Option<f64> {
        match name {
            "k_factor_rf" => Some(self.k_factor as f64),
            "k_factor" if self.base.param("k_factor").is_none() => Some(self.k_factor as f64),
            _ => self.base.param(name),
        }
    }
    fn parameter_ranges(&self) -> Vec<crate::autotune::ParameterRange> {
        let mut ranges = vec![crate::autotune::ParameterRange::powers_of_two(
            "k_factor_rf",
            0,
            6,
        )];
        ranges.extend(self.base.parameter_ranges());
        ranges
    }

    fn description(&self) -> String {
        if matches!(self.refine.view(), crate::IndexView::Flat(_)) {
            format!("{},RFlat", self.base.description())
        } else {
            format!(
                "{},Refine({})",
                self.base.description(),
                self.refine.description()
            )
        }
    }

    fn view(&self) -> crate::IndexView<'_> {
        crate::IndexView::Refine(self)
    }
    fn part_mut(&mut self, part: crate::Part) -> Option<&mut dyn Index> {
        match part {
            crate::Part::Inner => Some(&mut *self.base),
            crate::Part::Refine => Some(&mut *self.refine),
            _ => None,
        }
    }
}

/// A checked `k_factor` run-time parameter (at least 1): candidates kept per result before
/// re-ranking, shared by every index that re-ranks.
pub(crate) fn k_factor(name: &str, value: f64) -> Result<f32> {
    if value.is_nan() || value < 1.0 {
        return Err(Error::invalid(format!(
            "{name} = {value} must be at least 1"
        )));
    }
    Ok(value as f32)
}
