//! `IndexScalarQuantizer`: exhaustive search over scalar-quantizer codes.

use fathom_core::{
    Error, IdSelector, Idx, MetricType, RangeSearchResult, Result, SearchParams, SearchResult,
};
use fathom_quant::{QuantizerType, ScalarQuantizer};

use crate::code_scan::{BoxedScorer, CodeStore, knn_scan, radius_key, range_scan, to_result};
use crate::{Index, check_queries, check_search};

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
#[derive(Debug, Clone)]
pub struct IndexScalarQuantizer {
    sq: ScalarQuantizer,
    metric: MetricType,
    store: CodeStore,
}

impl IndexScalarQuantizer {
    /// A new index; fp16, bf16 and the direct types need no training.
    pub fn new(d: usize, qtype: QuantizerType, metric: MetricType) -> Result<Self> {
        if !matches!(metric, MetricType::L2 | MetricType::InnerProduct) {
            return Err(Error::Unsupported(format!(
                "IndexScalarQuantizer supports L2 and inner product, not {metric:?}"
            )));
        }
        let sq = ScalarQuantizer::new(d, qtype)?;
        Ok(IndexScalarQuantizer {
            store: CodeStore::new(sq.code_size()),
            sq,
            metric,
        })
    }

    /// The quantizer.
    pub fn sq(&self) -> &ScalarQuantizer {
        &self.sq
    }
    /// The quantizer, to set its range statistic before training.
    pub fn sq_mut(&mut self) -> &mut ScalarQuantizer {
        &mut self.sq
    }
    /// The codes, `ntotal × code_size` bytes.
    pub fn codes(&self) -> &[u8] {
        &self.store.codes
    }
    /// Appends codes computed elsewhere (`n × code_size` bytes).
    pub fn add_codes(&mut self, codes: &[u8]) -> Result<()> {
        self.store.append("SQ codes", codes)
    }
    crate::code_scan::mapped_code_methods!();

    fn scorer<'a>(&'a self, queries: &'a [f32]) -> impl Fn(usize) -> BoxedScorer<'a> + Sync {
        let d = self.sq.d();
        move |q| {
            let query = self.sq.query(self.metric, &queries[q * d..(q + 1) * d]);
            let neg = self.metric.is_similarity();
            Box::new(move |start: usize, out: &mut [f32]| {
                let cs = self.store.code_size;
                query.distances(&self.store.codes[start * cs..(start + out.len()) * cs], out);
                if neg {
                    out.iter_mut().for_each(|v| *v = -*v);
                }
            })
        }
    }
}

impl Index for IndexScalarQuantizer {
    fn dim(&self) -> usize {
        self.sq.d()
    }
    fn ntotal(&self) -> usize {
        self.store.len()
    }
    fn metric(&self) -> MetricType {
        self.metric
    }
    fn is_trained(&self) -> bool {
        self.sq.is_trained()
    }
    fn train(&mut self, x: &[f32]) -> Result<()> {
        self.sq.train(x)
    }
    fn add(&mut self, x: &[f32]) -> Result<()> {
        if !self.is_trained() {
            return Err(Error::NotTrained("add to IndexScalarQuantizer".into()));
        }
        self.store.add_vectors(&self.sq, x)
    }

    fn search_with(
        &self,
        queries: &[f32],
        k: usize,
        params: &SearchParams<'_>,
    ) -> Result<SearchResult> {
        let nq = check_search(self, queries, k)?;
        let tops = knn_scan(nq, self.ntotal(), k, params.selector, self.scorer(queries));
        to_result(tops, k, self.metric, |_, key| key)
    }

    fn range_search_with(
        &self,
        queries: &[f32],
        radius: f32,
        params: &SearchParams<'_>,
    ) -> Result<RangeSearchResult> {
        let nq = check_queries(self, queries)?;
        Ok(range_scan(
            nq,
            self.ntotal(),
            radius_key(self.metric, radius),
            self.metric,
            params.selector,
            self.scorer(queries),
        ))
    }

    fn reconstruct(&self, id: Idx) -> Result<Vec<f32>> {
        let code = self.store.checked_code(id)?;
        let mut x = vec![0.0; self.dim()];
        self.sq.decode_one(code, &mut x);
        Ok(x)
    }

    fn remove_ids(&mut self, selector: &dyn IdSelector) -> Result<usize> {
        self.store.remove(selector)
    }

    fn reset(&mut self) -> Result<()> {
        self.store.codes.clear();
        Ok(())
    }

    fn description(&self) -> String {
        format!("SQ{}", self.sq.qtype().factory_name())
    }

    fn view(&self) -> crate::IndexView<'_> {
        crate::IndexView::ScalarQuantizer(self)
    }
}
