//! `IndexIvfAdditiveQuantizer`: additive-quantizer codes (RQ, LSQ, PRQ, PLSQ) of
//! residuals in the lists.

use fathom_core::{Idx, MetricType, Result};
use fathom_quant::additive::AdditiveQuantizer;

use super::{IndexIvf, IvfCodec, IvfContext, ListScanner};
use crate::Index;
use crate::additive::{AqQuery, aq_param, aq_token, check_metric, set_aq_param};

/// The codec of [`IndexIvfAdditiveQuantizer`].
#[derive(Debug, Clone)]
pub struct IvfAdditiveQuantizer {
    aq: AdditiveQuantizer,
}

/// Additive-quantizer codes in inverted lists (Faiss's `IndexIVFResidualQuantizer`,
/// `IndexIVFLocalSearchQuantizer`, `IndexIVFProductResidualQuantizer`,
/// `IndexIVFProductLocalSearchQuantizer`; factory `IVF<n>,RQ…`, `IVF<n>,LSQ…`,
/// `IVF<n>,PRQ…`, `IVF<n>,PLSQ…`), of the vectors' residuals to their centroids by
/// default.
///
/// ```
/// use fathom_index::{Index, IndexFlat, IndexIvfAdditiveQuantizer, MetricType};
/// use fathom_quant::additive::{AdditiveQuantizer, AqSearchType};
/// let d = 16;
/// let x: Vec<f32> = (0..3000 * d).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
/// let q = Box::new(IndexFlat::new_l2(d).unwrap());
/// let rq = AdditiveQuantizer::residual(d, vec![6, 6], AqSearchType::Decompress).unwrap();
/// let mut index = IndexIvfAdditiveQuantizer::new(q, 8, rq, MetricType::L2).unwrap();
/// index.train(&x).unwrap();
/// index.add(&x).unwrap();
/// index.nprobe = 8;
/// assert_eq!(index.search(&x[..d], 1).unwrap().labels, vec![0]);
/// ```
pub type IndexIvfAdditiveQuantizer = IndexIvf<IvfAdditiveQuantizer>;
/// Faiss's name for an [`IndexIvfAdditiveQuantizer`] over a residual quantizer.
pub type IndexIvfResidualQuantizer = IndexIvfAdditiveQuantizer;

impl IndexIvf<IvfAdditiveQuantizer> {
    /// An untrained index over `quantizer` with `nlist` lists, coding with `aq`.
    pub fn new(
        quantizer: Box<dyn Index>,
        nlist: usize,
        aq: AdditiveQuantizer,
        metric: MetricType,
    ) -> Result<Self> {
        check_metric(metric)?;
        if aq.d() != quantizer.dim() {
            return Err(fathom_core::Error::DimensionMismatch {
                what: "additive quantizer".into(),
                got: aq.d(),
                expected: quantizer.dim().to_string(),
            });
        }
        IndexIvf::with_codec(quantizer, nlist, metric, IvfAdditiveQuantizer { aq }, true)
    }
}

impl IvfAdditiveQuantizer {
    /// The codec over a quantizer (trained, as read from a file).
    pub fn from_aq(aq: AdditiveQuantizer) -> Self {
        IvfAdditiveQuantizer { aq }
    }
    /// The quantizer.
    pub fn aq(&self) -> &AdditiveQuantizer {
        &self.aq
    }
}

impl IvfCodec for IvfAdditiveQuantizer {
    fn view(&self) -> super::IvfCodecView<'_> {
        super::IvfCodecView::AdditiveQuantizer(self)
    }
    fn code_size(&self) -> usize {
        self.aq.code_size()
    }
    fn is_trained(&self) -> bool {
        self.aq.is_trained()
    }
    fn train(&mut self, x: &[f32], _lists: &[Idx], _ctx: IvfContext<'_>) -> Result<()> {
        self.aq.train(x)
    }
    fn train_sample_size(&self) -> usize {
        // Faiss's train_encoder_num_vectors: 1024 · 2^nbits[0], M times that for LSQ.
        let per_level = 1024 << self.aq.nbits()[0];
        match self.aq.kind() {
            fathom_quant::additive::AqKind::LocalSearch(_) => per_level * self.aq.m(),
            _ => per_level,
        }
    }
    fn encode(&self, x: &[f32], codes: &mut [u8]) -> Result<()> {
        self.aq.encode(x, codes)
    }
    fn decode(&self, code: &[u8], out: &mut [f32]) {
        self.aq.decode(code, out);
    }
    fn scanner<'a>(
        &'a self,
        ctx: IvfContext<'a>,
        query: &'a [f32],
    ) -> Result<Box<dyn ListScanner + 'a>> {
        Ok(Box::new(AqScanner {
            codec: self,
            ctx,
            query,
            residual: vec![0.0; query.len()],
            prepared: None,
            bias: 0.0,
        }))
    }
    fn description(&self, _by_residual: bool) -> String {
        aq_token(&self.aq)
    }
    fn set_param(&mut self, name: &str, value: f64) -> Result<bool> {
        set_aq_param(&mut self.aq, name, value)
    }
    fn param(&self, name: &str) -> Option<f64> {
        aq_param(&self.aq, name)
    }
}

/// Per list: L2 over residuals compares `q − c` with the decoded residual; inner product
/// adds `⟨q, c⟩` (the coarse score) to `⟨q, y⟩`.
struct AqScanner<'a> {
    codec: &'a IvfAdditiveQuantizer,
    ctx: IvfContext<'a>,
    query: &'a [f32],
    residual: Vec<f32>,
    prepared: Option<AqQuery<'a>>,
    bias: f32,
}

impl ListScanner for AqScanner<'_> {
    fn set_list(&mut self, list: usize, coarse_dis: f32) -> Result<()> {
        let l2 = self.ctx.metric == MetricType::L2;
        if l2 && self.ctx.by_residual {
            self.ctx.residual(list, self.query, &mut self.residual)?;
        } else {
            self.residual.copy_from_slice(self.query);
        }
        self.prepared = Some(AqQuery::new(
            &self.codec.aq,
            &self.residual,
            self.ctx.metric,
        ));
        self.bias = if self.ctx.by_residual && !l2 {
            coarse_dis
        } else {
            0.0
        };
        Ok(())
    }
    fn keys(&mut self, codes: &[u8], out: &mut [f32]) {
        let cs = self.codec.code_size();
        let Some(query) = &mut self.prepared else {
            out.fill(f32::INFINITY);
            return;
        };
        // Inner-product keys are negated scores: the coarse score is subtracted.
        for (o, code) in out.iter_mut().zip(codes.chunks_exact(cs)) {
            *o = query.key(code) - self.bias;
        }
    }
}
