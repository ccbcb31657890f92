//! `IndexResidualQuantizer`: exhaustive search over residual-quantizer codes (Faiss's
//! `IndexResidualQuantizer`, factory `RQ<M>x<nbits>[_<M>x<nbits>…][_N<norm>]`).

use fathom_core::{Error, MetricType, Result};
use fathom_quant::residual::{AqSearchType, ResidualQuantizer};

use crate::flat_codes::{CodeScorer, FlatCodec, IndexFlatCodes};

/// Vectors as sums of one entry per residual-quantizer codebook, searched exhaustively
/// (Faiss's `IndexResidualQuantizer`). With [`AqSearchType::Decompress`] each code is
/// decoded and compared exactly; with a stored norm (`NormFloat`, `NormQint8`,
/// `NormQint4`) distances come from a look-up table per query, as Faiss's.
///
/// ```
/// use fathom_index::{Index, IndexResidualQuantizer, MetricType};
/// use fathom_quant::residual::AqSearchType;
/// let d = 16;
/// let x: Vec<f32> = (0..2000 * d).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
/// let mut index =
///     IndexResidualQuantizer::new(d, vec![6, 6, 6], MetricType::L2, AqSearchType::NormFloat)
///         .unwrap();
/// index.train(&x).unwrap();
/// index.add(&x).unwrap();
/// assert_eq!(index.search(&x[..d], 1).unwrap().labels, vec![0]);
/// ```
pub type IndexResidualQuantizer = IndexFlatCodes<ResidualQuantizer>;

impl IndexFlatCodes<ResidualQuantizer> {
    /// An untrained index with one codebook of `2^nbits[m]` entries per level.
    pub fn new(
        d: usize,
        nbits: Vec<usize>,
        metric: MetricType,
        search_type: AqSearchType,
    ) -> Result<Self> {
        check_metric(metric)?;
        Ok(Self::with_codec(
            ResidualQuantizer::new(d, nbits, search_type)?,
            metric,
        ))
    }
    /// An index over a trained quantizer (as read from a file).
    pub fn from_quantizer(rq: ResidualQuantizer, metric: MetricType) -> Result<Self> {
        check_metric(metric)?;
        Ok(Self::with_codec(rq, metric))
    }
    /// The quantizer.
    pub fn rq(&self) -> &ResidualQuantizer {
        &self.codec
    }
    /// The quantizer, for its training settings (`max_beam_size`, `train_type`).
    pub fn rq_mut(&mut self) -> &mut ResidualQuantizer {
        &mut self.codec
    }
}

pub(crate) fn check_metric(metric: MetricType) -> Result<()> {
    if !matches!(metric, MetricType::L2 | MetricType::InnerProduct) {
        return Err(Error::Unsupported(format!(
            "additive quantizers compare with L2 or inner product, not {metric:?}"
        )));
    }
    Ok(())
}

/// The factory token of a residual quantizer: `RQ<M>x<b>` groups, then the norm suffix.
pub(crate) fn rq_token(rq: &ResidualQuantizer) -> String {
    let mut s = String::from("RQ");
    let nb = rq.nbits();
    let mut i = 0;
    let mut first = true;
    while i < nb.len() {
        let run = nb[i..].iter().take_while(|&&b| b == nb[i]).count();
        if !first {
            s.push('_');
        }
        s.push_str(&format!("{run}x{}", nb[i]));
        first = false;
        i += run;
    }
    s.push_str(rq.search_type().factory_suffix());
    s
}

/// Scores codes against one query: decoded and compared exactly, or by table.
pub(crate) struct RqQuery<'a> {
    rq: &'a ResidualQuantizer,
    q: Vec<f32>,
    lut: Vec<f32>,
    q_norm: f32,
    metric: MetricType,
    decode: Vec<f32>,
}

impl<'a> RqQuery<'a> {
    pub(crate) fn new(rq: &'a ResidualQuantizer, q: &[f32], metric: MetricType) -> Self {
        let exact = rq.search_type() == AqSearchType::Decompress;
        RqQuery {
            rq,
            q: q.to_vec(),
            lut: if exact { Vec::new() } else { rq.compute_lut(q) },
            q_norm: q.iter().map(|v| v * v).sum(),
            metric,
            decode: vec![0.0; rq.d()],
        }
    }
    /// The key of a code, smaller is better: the L2 distance, or the inner product
    /// negated.
    pub(crate) fn key(&mut self, code: &[u8]) -> f32 {
        let ip = self.metric == MetricType::InnerProduct;
        if self.lut.is_empty() {
            self.rq.decode(code, &mut self.decode);
            return if ip {
                -self
                    .q
                    .iter()
                    .zip(&self.decode)
                    .map(|(a, b)| a * b)
                    .sum::<f32>()
            } else {
                self.q
                    .iter()
                    .zip(&self.decode)
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum()
            };
        }
        let s = self.rq.lut_score(code, &self.lut, self.metric);
        if ip { -s } else { self.q_norm + s }
    }
}

impl FlatCodec for ResidualQuantizer {
    type Prepared = ();
    const NAME: &'static str = "IndexResidualQuantizer";

    fn is_trained(&self) -> bool {
        ResidualQuantizer::is_trained(self)
    }
    fn train(&mut self, x: &[f32]) -> Result<()> {
        ResidualQuantizer::train(self, x)
    }
    fn decode(&self, code: &[u8]) -> Result<Vec<f32>> {
        if !ResidualQuantizer::is_trained(self) {
            return Err(Error::NotTrained(
                "decoding residual-quantizer codes".into(),
            ));
        }
        let mut out = vec![0.0f32; self.d()];
        ResidualQuantizer::decode(self, code, &mut out);
        Ok(out)
    }
    fn prepare(&self, _metric: MetricType, _queries: &[f32]) -> Result<()> {
        Ok(())
    }
    fn scorer<'a>(
        &'a self,
        metric: MetricType,
        _prepared: &'a (),
        queries: &'a [f32],
        codes: &'a [u8],
    ) -> impl Fn(usize) -> CodeScorer<'a> + Sync + 'a {
        let (d, cs) = (self.d(), self.code_size());
        move |qi| {
            let mut query = RqQuery::new(self, &queries[qi * d..(qi + 1) * d], metric);
            Box::new(move |start: usize, out: &mut [f32]| {
                let run = &codes[start * cs..(start + out.len()) * cs];
                for (o, code) in out.iter_mut().zip(run.chunks_exact(cs)) {
                    *o = query.key(code);
                }
            })
        }
    }
    fn description(&self) -> String {
        rq_token(self)
    }
    fn view(index: &IndexFlatCodes<Self>) -> crate::IndexView<'_> {
        crate::IndexView::ResidualQuantizer(index)
    }
    fn set_param(&mut self, name: &str, value: f64) -> Result<bool> {
        if name != "max_beam_size" {
            return Ok(false);
        }
        self.max_beam_size = crate::param_values::positive(name, value)?;
        Ok(true)
    }
    fn param(&self, name: &str) -> Option<f64> {
        (name == "max_beam_size").then_some(self.max_beam_size as f64)
    }
}
