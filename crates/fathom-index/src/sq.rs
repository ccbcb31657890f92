//! `IndexScalarQuantizer`: exhaustive search over scalar-quantizer codes.

use fathom_core::{Error, MetricType, Result};
use fathom_quant::{QuantizerType, ScalarQuantizer};

use crate::flat_codes::{CodeScorer, FlatCodec, IndexFlatCodes};

/// Vectors coded one dimension at a time and searched exhaustively (Faiss's
/// `IndexScalarQuantizer`, factory `SQ8`, `SQ4`, `SQ6`, `SQfp16`, `SQbf16`, `SQ8_direct`,
/// `SQ8_direct_signed`). Distances are computed from the codes, sixteen components at a
/// time, without decoding vectors.
///
/// ```
/// use fathom_index::{Index, IndexScalarQuantizer, MetricType};
/// use fathom_quant::QuantizerType;
/// let x: Vec<f32> = (0..400).map(|i| (i % 37) as f32 * 0.1).collect(); // 100 × 4
/// let mut index = IndexScalarQuantizer::new(4, QuantizerType::QT8bit, MetricType::L2).unwrap();
/// index.train(&x).unwrap();
/// index.add(&x).unwrap();
/// assert_eq!(index.search(&x[8..12], 1).unwrap().labels, vec![2]);
/// ```
pub type IndexScalarQuantizer = IndexFlatCodes<ScalarQuantizer>;

impl IndexFlatCodes<ScalarQuantizer> {
    /// A new index; fp16, bf16 and the direct types need no training.
    pub fn new(d: usize, qtype: QuantizerType, metric: MetricType) -> Result<Self> {
        if !matches!(metric, MetricType::L2 | MetricType::InnerProduct) {
            return Err(Error::Unsupported(format!(
                "IndexScalarQuantizer supports L2 and inner product, not {metric:?}"
            )));
        }
        Ok(Self::with_codec(ScalarQuantizer::new(d, qtype)?, metric))
    }

    /// The quantizer.
    pub fn sq(&self) -> &ScalarQuantizer {
        &self.codec
    }
    /// The quantizer, to set its range statistic before training (or its trained ranges,
    /// as read from a file).
    pub fn sq_mut(&mut self) -> &mut ScalarQuantizer {
        &mut self.codec
    }
}

impl FlatCodec for ScalarQuantizer {
    type Prepared = ();
    const NAME: &'static str = "IndexScalarQuantizer";

    fn is_trained(&self) -> bool {
        ScalarQuantizer::is_trained(self)
    }
    fn train(&mut self, x: &[f32]) -> Result<()> {
        ScalarQuantizer::train(self, x)
    }
    fn decode(&self, code: &[u8]) -> Result<Vec<f32>> {
        let mut x = vec![0.0; self.d()];
        self.decode_one(code, &mut x);
        Ok(x)
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
        move |q| {
            let query = self.query(metric, &queries[q * d..(q + 1) * d]);
            let neg = metric.is_similarity();
            Box::new(move |start: usize, out: &mut [f32]| {
                query.distances(&codes[start * cs..(start + out.len()) * cs], out);
                if neg {
                    out.iter_mut().for_each(|v| *v = -*v);
                }
            })
        }
    }
    fn description(&self) -> String {
        format!("SQ{}", self.qtype().factory_name())
    }
    fn view(index: &IndexFlatCodes<Self>) -> crate::IndexView<'_> {
        crate::IndexView::ScalarQuantizer(index)
    }
}
