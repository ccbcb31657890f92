//! `IndexIvfPqr`: IVF-PQ whose candidates are re-ranked with a second PQ of what the
//! first one missed.

use fathom_core::{Error, Idx, MetricType, Result, SearchParams, SearchResult, check};
use fathom_kernels::TopK;
use fathom_quant::{Codec, ProductQuantizer};
use rayon::prelude::*;

use super::{IndexIvfPq, IvfCodec};
use crate::{Index, check_search};

/// IVF-PQ plus a refinement PQ of the second-order residual (Faiss's `IndexIVFPQR`,
/// factory `IVF4096,PQ8+16`): the IVF-PQ search keeps `k · k_factor` candidates, which
/// are re-ranked by their distance to `centroid + PQ residual + refinement`. L2 only.
///
/// Ids are sequential (the refinement codes are stored by id), so `add_with_ids` and
/// `remove_ids` are refused, as they cannot keep that numbering.
///
/// ```
/// use fathom_index::{Index, IndexFlat};
/// use fathom_index::ivf::IndexIvfPqr;
/// let d = 16;
/// let x: Vec<f32> = (0..3000 * d).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
/// let q = Box::new(IndexFlat::new_l2(d).unwrap());
/// let mut index = IndexIvfPqr::new(q, 8, 4, 8, 4).unwrap();
/// index.train(&x).unwrap();
/// index.add(&x).unwrap();
/// index.set_param("nprobe", 8.0).unwrap();
/// assert_eq!(index.search(&x[..d], 1).unwrap().labels, vec![0]);
/// ```
#[derive(Debug)]
pub struct IndexIvfPqr {
    ivf: IndexIvfPq,
    refine_pq: ProductQuantizer,
    refine_codes: Vec<u8>,
    /// Candidates kept per result before re-ranking (Faiss's default 4).
    pub k_factor: f32,
}

impl IndexIvfPqr {
    /// An untrained index: `nlist` lists, `m` × `nbits` PQ of residuals and an
    /// `m_refine` × 8 refinement PQ.
    pub fn new(
        quantizer: Box<dyn Index>,
        nlist: usize,
        m: usize,
        nbits: usize,
        m_refine: usize,
    ) -> Result<Self> {
        let d = quantizer.dim();
        let mut ivf = IndexIvfPq::new(quantizer, nlist, m, nbits, MetricType::L2)?;
        ivf.make_direct_map(true)?;
        Ok(IndexIvfPqr {
            ivf,
            refine_pq: ProductQuantizer::new(d, m_refine, 8)?,
            refine_codes: Vec::new(),
            k_factor: 4.0,
        })
    }

    /// Assembles an index from its parts (e.g. read from a file): `refine_codes` holds one
    /// `refine_pq` code per vector of `ivf`, in id order, and `ivf` must keep an array
    /// direct map (ids `0..ntotal`).
    pub fn from_parts(
        mut ivf: IndexIvfPq,
        refine_pq: ProductQuantizer,
        refine_codes: Vec<u8>,
        k_factor: f32,
    ) -> Result<Self> {
        if refine_pq.d() != ivf.dim() {
            return Err(Error::invalid(format!(
                "refinement PQ has dimension {}, the index {}",
                refine_pq.d(),
                ivf.dim()
            )));
        }
        if refine_codes.len() != ivf.ntotal() * refine_pq.code_size() {
            return Err(Error::DimensionMismatch {
                what: "IVFPQR refinement codes".into(),
                got: refine_codes.len(),
                expected: format!(
                    "ntotal × code size = {} × {}",
                    ivf.ntotal(),
                    refine_pq.code_size()
                ),
            });
        }
        if !(k_factor.is_finite() && k_factor >= 1.0) {
            return Err(Error::invalid(format!(
                "k_factor must be a finite number ≥ 1, got {k_factor}"
            )));
        }
        ivf.make_direct_map(true)?;
        Ok(IndexIvfPqr {
            ivf,
            refine_pq,
            refine_codes,
            k_factor,
        })
    }

    /// The refinement codes, one per vector in id order.
    pub fn refine_codes(&self) -> &[u8] {
        &self.refine_codes
    }

    /// The IVF-PQ part.
    pub fn ivf(&self) -> &IndexIvfPq {
        &self.ivf
    }
    /// The IVF-PQ part, to set its parameters.
    pub fn ivf_mut(&mut self) -> &mut IndexIvfPq {
        &mut self.ivf
    }
    /// The refinement quantizer.
    pub fn refine_pq(&self) -> &ProductQuantizer {
        &self.refine_pq
    }

    /// `x − centroid − PQ(x − centroid)` for each row, with the rows' lists.
    fn second_residuals(&self, x: &[f32]) -> Result<Vec<f32>> {
        let lists = self.ivf.assign(x)?;
        let ctx = self.ivf.context();
        let mut r = self.ivf.residuals(&ctx, x, &lists)?.into_owned();
        let pq = self.ivf.codec().pq();
        let d = self.ivf.dim();
        let codes = pq.compute_codes(&r)?;
        r.par_chunks_mut(d)
            .zip(codes.par_chunks(pq.code_size()))
            .for_each(|(row, code)| {
                let mut dec = vec![0.0; d];
                pq.decode_one(code, &mut dec);
                row.iter_mut().zip(&dec).for_each(|(v, p)| *v -= p);
            });
        Ok(r)
    }
}

impl Index for IndexIvfPqr {
    fn dim(&self) -> usize {
        self.ivf.dim()
    }
    fn ntotal(&self) -> usize {
        self.ivf.ntotal()
    }
    fn metric(&self) -> MetricType {
        MetricType::L2
    }
    fn is_trained(&self) -> bool {
        self.ivf.is_trained() && self.refine_pq.is_trained()
    }
    fn train(&mut self, x: &[f32]) -> Result<()> {
        check::nonempty_finite("training set", x, self.dim())?;
        self.ivf.train(x)?;
        let xs = &*super::train::subsample(x, self.dim(), self.ivf.codec().train_sample_size());
        let r2 = self.second_residuals(xs)?;
        self.refine_pq.train(&r2)
    }
    fn add(&mut self, x: &[f32]) -> Result<()> {
        if !self.is_trained() {
            return Err(Error::NotTrained("add to IndexIvfPqr".into()));
        }
        check::vectors("added", x, self.dim())?;
        check::finite("added", x, self.dim())?;
        let r2 = self.second_residuals(x)?;
        let codes = self.refine_pq.compute_codes(&r2)?;
        self.ivf.add(x)?;
        self.refine_codes.extend_from_slice(&codes);
        Ok(())
    }
    fn search_with(
        &self,
        queries: &[f32],
        k: usize,
        params: &SearchParams<'_>,
    ) -> Result<SearchResult> {
        let nq = check_search(self, queries, k)?;
        let k1 = ((k as f64 * self.k_factor as f64).ceil() as usize).max(k);
        let first = self.ivf.search_with(queries, k1, params)?;
        let d = self.dim();
        let tops: Vec<TopK> = (0..nq)
            .into_par_iter()
            .map(|q| {
                let x = &queries[q * d..(q + 1) * d];
                let mut top = TopK::new(k);
                for &id in &first.labels[q * k1..(q + 1) * k1] {
                    // Every returned id is stored, so its reconstruction exists.
                    let Ok(v) = self.reconstruct(id) else {
                        continue;
                    };
                    let dis: f32 = x.iter().zip(&v).map(|(a, b)| (a - b) * (a - b)).sum();
                    top.push(dis, id);
                }
                top
            })
            .collect();
        crate::code_scan::to_result(tops, k, MetricType::L2, |_, key| key)
    }
    fn reconstruct(&self, id: Idx) -> Result<Vec<f32>> {
        let mut v = self.ivf.reconstruct(id)?;
        let cs = self.refine_pq.code_size();
        let mut refine = vec![0.0; self.dim()];
        self.refine_pq.decode_one(
            &self.refine_codes[id as usize * cs..(id as usize + 1) * cs],
            &mut refine,
        );
        v.iter_mut().zip(&refine).for_each(|(a, b)| *a += b);
        Ok(v)
    }
    fn ids_are_positions(&self) -> bool {
        false
    }
    fn reset(&mut self) -> Result<()> {
        self.ivf.reset()?;
        self.refine_codes.clear();
        Ok(())
    }
    fn parameter_ranges(&self) -> Vec<crate::autotune::ParameterRange> {
        let mut ranges = self.ivf.parameter_ranges();
        ranges.push(crate::autotune::ParameterRange::powers_of_two(
            "k_factor", 0, 6,
        ));
        ranges
    }
    fn set_param(&mut self, name: &str, value: f64) -> Result<()> {
        match name {
            "k_factor" | "k_factor_rf" => {
                self.k_factor = crate::refine::k_factor(name, value)?;
                Ok(())
            }
            _ => self.ivf.set_param(name, value),
        }
    }
    fn param(&self, name: &str) -> Option<f64> {
        match name {
            "k_factor" | "k_factor_rf" => Some(self.k_factor as f64),
            _ => self.ivf.param(name),
        }
    }
    fn description(&self) -> String {
        format!("{}+{}", self.ivf.description(), self.refine_pq.m())
    }
    fn view(&self) -> crate::IndexView<'_> {
        crate::IndexView::IvfPqr(self)
    }

    fn view_mut(&mut self) -> crate::IndexViewMut<'_> {
        crate::IndexViewMut::IvfPqr(self)
    }
    fn part_mut(&mut self, part: crate::Part) -> Option<&mut dyn Index> {
        (part == crate::Part::Quantizer).then(|| self.ivf.quantizer_mut())
    }
}
