//! Exhaustive search over additive-quantizer codes: Faiss's `IndexResidualQuantizer`,
//! `IndexLocalSearchQuantizer`, `IndexProductResidualQuantizer` and
//! `IndexProductLocalSearchQuantizer` are one type here, [`IndexAdditiveQuantizer`],
//! whose quantizer's [`AqKind`] says which (factory `RQ<M>x<b>[_…]`, `LSQ<M>x<b>`,
//! `PRQ<n>x<M>x<b>`, `PLSQ<n>x<M>x<b>`, each with an optional `_N<norm>`).

use fathom_core::{Error, MetricType, Result};
use fathom_quant::additive::{AdditiveQuantizer, AqKind, AqSearchType};

use crate::flat_codes::{CodeScorer, FlatCodec, IndexFlatCodes};

/// Vectors as sums of one entry per additive-quantizer codebook, searched exhaustively.
/// With [`AqSearchType::Decompress`] each code is decoded and compared exactly; with a
/// stored norm (`_Nfloat`, `_Nqint8`, `_Ncqint8`, …) or for inner product, distances come
/// from a look-up table per query, as Faiss's.
///
/// ```
/// use fathom_index::{Index, IndexAdditiveQuantizer, MetricType};
/// use fathom_quant::additive::{AdditiveQuantizer, AqSearchType};
/// let d = 16;
/// let x: Vec<f32> = (0..2000 * d).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
/// let rq = AdditiveQuantizer::residual(d, vec![6, 6, 6], AqSearchType::NormFloat).unwrap();
/// let mut index = IndexAdditiveQuantizer::new(rq, MetricType::L2).unwrap();
/// index.train(&x).unwrap();
/// index.add(&x).unwrap();
/// assert_eq!(index.search(&x[..d], 1).unwrap().labels, vec![0]);
/// ```
pub type IndexAdditiveQuantizer = IndexFlatCodes<AdditiveQuantizer>;
/// Faiss's name for an [`IndexAdditiveQuantizer`] over a residual quantizer.
pub type IndexResidualQuantizer = IndexAdditiveQuantizer;
/// Faiss's name for an [`IndexAdditiveQuantizer`] over a local-search quantizer.
pub type IndexLocalSearchQuantizer = IndexAdditiveQuantizer;

impl IndexFlatCodes<AdditiveQuantizer> {
    /// An index over `aq` (untrained, or trained as read from a file).
    pub fn new(aq: AdditiveQuantizer, metric: MetricType) -> Result<Self> {
        check_metric(metric)?;
        Ok(Self::with_codec(aq, metric))
    }
    /// The quantizer.
    pub fn aq(&self) -> &AdditiveQuantizer {
        &self.codec
    }
    /// The quantizer, for its training settings ([`AdditiveQuantizer::kind_mut`]).
    pub fn aq_mut(&mut self) -> &mut AdditiveQuantizer {
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

/// The factory token of an additive quantizer: `RQ<M>x<b>` groups, `LSQ<M>x<b>`,
/// `PRQ<n>x<M>x<b>` or `PLSQ<n>x<M>x<b>`, then the norm suffix.
pub(crate) fn aq_token(aq: &AdditiveQuantizer) -> String {
    let groups = |nb: &[usize]| {
        let mut s = Vec::new();
        let mut i = 0;
        while i < nb.len() {
            let run = nb[i..].iter().take_while(|&&b| b == nb[i]).count();
            s.push(format!("{run}x{}", nb[i]));
            i += run;
        }
        s.join("_")
    };
    let body = match aq.kind() {
        AqKind::Residual(_) => format!("RQ{}", groups(aq.nbits())),
        AqKind::LocalSearch(_) => format!("LSQ{}x{}", aq.m(), aq.nbits()[0]),
        AqKind::Product(subs) => {
            let lsq = subs
                .iter()
                .any(|s| matches!(s.kind(), AqKind::LocalSearch(_)));
            format!(
                "{}{}x{}x{}",
                if lsq { "PLSQ" } else { "PRQ" },
                subs.len(),
                subs[0].m(),
                subs[0].nbits()[0]
            )
        }
    };
    body + aq.search_type().factory_suffix()
}

/// Scores codes against one query: decoded and compared exactly, or by table.
pub(crate) struct AqQuery<'a> {
    aq: &'a AdditiveQuantizer,
    q: Vec<f32>,
    lut: Vec<f32>,
    q_norm: f32,
    metric: MetricType,
    decode: Vec<f32>,
}

impl<'a> AqQuery<'a> {
    pub(crate) fn new(aq: &'a AdditiveQuantizer, q: &[f32], metric: MetricType) -> Self {
        // Faiss decodes only for L2 without a norm; inner product always uses tables.
        let exact = aq.search_type() == AqSearchType::Decompress;
        AqQuery {
            aq,
            q: q.to_vec(),
            lut: if exact { Vec::new() } else { aq.compute_lut(q) },
            q_norm: q.iter().map(|v| v * v).sum(),
            metric,
            decode: vec![0.0; aq.d()],
        }
    }
    /// The key of a code, smaller is better: the L2 distance, or the inner product
    /// negated.
    pub(crate) fn key(&mut self, code: &[u8]) -> f32 {
        let ip = self.metric == MetricType::InnerProduct;
        if self.lut.is_empty() {
            self.aq.decode(code, &mut self.decode);
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
        let s = self.aq.lut_score(code, &self.lut, self.metric);
        if ip { -s } else { self.q_norm + s }
    }
}

impl FlatCodec for AdditiveQuantizer {
    type Prepared = ();
    const NAME: &'static str = "IndexAdditiveQuantizer";

    fn is_trained(&self) -> bool {
        AdditiveQuantizer::is_trained(self)
    }
    fn train(&mut self, x: &[f32]) -> Result<()> {
        AdditiveQuantizer::train(self, x)
    }
    fn decode(&self, code: &[u8]) -> Result<Vec<f32>> {
        if !AdditiveQuantizer::is_trained(self) {
            return Err(Error::NotTrained(
                "decoding additive-quantizer codes".into(),
            ));
        }
        let mut out = vec![0.0f32; self.d()];
        AdditiveQuantizer::decode(self, code, &mut out);
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
            let mut query = AqQuery::new(self, &queries[qi * d..(qi + 1) * d], metric);
            Box::new(move |start: usize, out: &mut [f32]| {
                let run = &codes[start * cs..(start + out.len()) * cs];
                for (o, code) in out.iter_mut().zip(run.chunks_exact(cs)) {
                    *o = query.key(code);
                }
            })
        }
    }
    fn description(&self) -> String {
        aq_token(self)
    }
    fn view(index: &IndexFlatCodes<Self>) -> crate::IndexView<'_> {
        crate::IndexView::AdditiveQuantizer(index)
    }
    fn set_param(&mut self, name: &str, value: f64) -> Result<bool> {
        set_aq_param(self, name, value)
    }
    fn param(&self, name: &str) -> Option<f64> {
        aq_param(self, name)
    }
}

/// `max_beam_size` of a residual quantizer (or of every part of a product of them).
pub(crate) fn set_aq_param(aq: &mut AdditiveQuantizer, name: &str, value: f64) -> Result<bool> {
    if name != "max_beam_size" || aq.max_beam_size().is_none() {
        return Ok(false);
    }
    aq.set_max_beam_size(crate::param_values::positive(name, value)?);
    Ok(true)
}

/// The value of a parameter [`set_aq_param`] sets.
pub(crate) fn aq_param(aq: &AdditiveQuantizer, name: &str) -> Option<f64> {
    (name == "max_beam_size")
        .then(|| aq.max_beam_size())
        .flatten()
        .map(|b| b as f64)
}
