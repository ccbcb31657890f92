//! `IndexIvfResidualQuantizer`: residual-quantizer codes of residuals in the lists.

use fathom_core::{Idx, MetricType, Result};
use fathom_quant::residual::{AqSearchType, ResidualQuantizer};

use super::{IndexIvf, IvfCodec, IvfContext, ListScanner};
use crate::Index;
use crate::residual::{RqQuery, check_metric, rq_token};

/// The codec of [`IndexIvfResidualQuantizer`].
#[derive(Debug, Clone)]
pub struct IvfResidualQuantizer {
    rq: ResidualQuantizer,
}

/// Residual-quantizer codes in inverted lists (Faiss's `IndexIVFResidualQuantizer`,
/// factory `IVF<n>,RQ<M>x<nbits>[_N<norm>]`), of the vectors' residuals to their
/// centroids by default.
///
/// ```
/// use fathom_index::{Index, IndexFlat, IndexIvfResidualQuantizer, MetricType};
/// use fathom_quant::residual::AqSearchType;
/// let d = 16;
/// let x: Vec<f32> = (0..3000 * d).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
/// let q = Box::new(IndexFlat::new_l2(d).unwrap());
/// let mut index =
///     IndexIvfResidualQuantizer::new(q, 8, vec![6, 6], MetricType::L2, AqSearchType::Decompress)
///         .unwrap();
/// index.train(&x).unwrap();
/// index.add(&x).unwrap();
/// index.nprobe = 8;
/// assert_eq!(index.search(&x[..d], 1).unwrap().labels, vec![0]);
/// ```
pub type IndexIvfResidualQuantizer = IndexIvf<IvfResidualQuantizer>;

impl IndexIvf<IvfResidualQuantizer> {
    /// An untrained index over `quantizer` with `nlist` lists.
    pub fn new(
        quantizer: Box<dyn Index>,
        nlist: usize,
        nbits: Vec<usize>,
        metric: MetricType,
        search_type: AqSearchType,
    ) -> Result<Self> {
        check_metric(metric)?;
        let rq = ResidualQuantizer::new(quantizer.dim(), nbits, search_type)?;
        IndexIvf::with_codec(quantizer, nlist, metric, IvfResidualQuantizer { rq }, true)
    }
}

impl IvfResidualQuantizer {
    /// The codec over a quantizer (trained, as read from a file).
    pub fn from_rq(rq: ResidualQuantizer) -> Self {
        IvfResidualQuantizer { rq }
    }
    /// The quantizer.
    pub fn rq(&self) -> &ResidualQuantizer {
        &self.rq
    }
}

impl IvfCodec for IvfResidualQuantizer {
    fn view(&self) -> super::IvfCodecView<'_> {
        super::IvfCodecView::ResidualQuantizer(self)
    }
    fn code_size(&self) -> usize {
        self.rq.code_size()
    }
    fn is_trained(&self) -> bool {
        self.rq.is_trained()
    }
    fn train(&mut self, x: &[f32], _lists: &[Idx], _ctx: IvfContext<'_>) -> Result<()> {
        self.rq.train(x)
    }
    fn train_sample_size(&self) -> usize {
        // Faiss's train_encoder_num_vectors: 1024 · 2^nbits[0].
        1024 << self.rq.nbits()[0]
    }
    fn encode(&self, x: &[f32], codes: &mut [u8]) -> Result<()> {
        self.rq.encode(x, codes)
    }
    fn decode(&self, code: &[u8], out: &mut [f32]) {
        self.rq.decode(code, out);
    }
    fn scanner<'a>(
        &'a self,
        ctx: IvfContext<'a>,
        query: &'a [f32],
    ) -> Result<Box<dyn ListScanner + 'a>> {
        Ok(Box::new(RqScanner {
            codec: self,
            ctx,
            query,
            residual: vec![0.0; query.len()],
            prepared: None,
            bias: 0.0,
        }))
    }
    fn description(&self, _by_residual: bool) -> String {
        rq_token(&self.rq)
    }
    fn set_param(&mut self, name: &str, value: f64) -> Result<bool> {
        if name != "max_beam_size" {
            return Ok(false);
        }
        self.rq.max_beam_size = crate::param_values::positive(name, value)?;
        Ok(true)
    }
    fn param(&self, name: &str) -> Option<f64> {
        (name == "max_beam_size").then_some(self.rq.max_beam_size as f64)
    }
}

/// Per list: L2 over residuals compares `q − c` with the decoded residual; inner product
/// adds `⟨q, c⟩` (the coarse score) to `⟨q, y⟩`.
struct RqScanner<'a> {
    codec: &'a IvfResidualQuantizer,
    ctx: IvfContext<'a>,
    query: &'a [f32],
    residual: Vec<f32>,
    prepared: Option<RqQuery<'a>>,
    bias: f32,
}

impl ListScanner for RqScanner<'_> {
    fn set_list(&mut self, list: usize, coarse_dis: f32) -> Result<()> {
        let l2 = self.ctx.metric == MetricType::L2;
        if l2 && self.ctx.by_residual {
            self.ctx.residual(list, self.query, &mut self.residual)?;
        } else {
            self.residual.copy_from_slice(self.query);
        }
        self.prepared = Some(RqQuery::new(
            &self.codec.rq,
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
