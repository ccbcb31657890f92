//! Vector transforms in front of any index.

use fathom_core::{
    Error, IdSelector, Idx, MetricType, RangeSearchResult, Result, SearchParams, SearchResult,
    check,
};
use fathom_linalg::VectorTransform;

use crate::Index;

/// A chain of [`VectorTransform`]s applied before an index: Faiss's `IndexPreTransform`
/// (factory prefixes `PCA64,`, `OPQ16_64,`, `RR64,`, `L2norm,` …).
///
/// `train` trains each untrained transform on the output of the ones before it, then the
/// index on the fully transformed data; `add`, `search` and `range_search` transform their
/// input first; `reconstruct` reverses the chain, which fails for a transform that cannot
/// be reversed (normalisation, whitening).
///
/// ```
/// use fathom_index::{Index, IndexFlat, IndexPreTransform};
/// use fathom_linalg::PcaMatrix;
/// let x: Vec<f32> = (0..400).map(|i| ((i * 37) % 101) as f32).collect(); // 100 × 4
/// let pca = PcaMatrix::new(4, 2, 0.0, false).unwrap();
/// let mut index = IndexPreTransform::new(Box::new(pca), IndexFlat::new_l2(2).unwrap()).unwrap();
/// index.train(&x).unwrap();
/// index.add(&x).unwrap();
/// assert_eq!(index.description(), "PCA2,Flat");
/// assert_eq!(index.search(&x[..4], 1).unwrap().labels.len(), 1);
/// ```
pub struct IndexPreTransform<I: Index = Box<dyn Index>> {
    chain: Vec<Box<dyn VectorTransform>>,
    index: I,
}

impl<I: Index> IndexPreTransform<I> {
    /// One transform in front of `index`; its output dimension must be the index's.
    pub fn new(transform: Box<dyn VectorTransform>, index: I) -> Result<Self> {
        if transform.d_out() != index.dim() {
            return Err(Error::DimensionMismatch {
                what: "transform output".into(),
                got: transform.d_out(),
                expected: format!("the index dimension {}", index.dim()),
            });
        }
        Ok(IndexPreTransform {
            chain: vec![transform],
            index,
        })
    }

    /// Puts another transform at the front of the chain; its output dimension must be the
    /// current input dimension.
    pub fn prepend_transform(&mut self, transform: Box<dyn VectorTransform>) -> Result<()> {
        let d_in = self.chain[0].d_in();
        if transform.d_out() != d_in {
            return Err(Error::DimensionMismatch {
                what: "prepended transform output".into(),
                got: transform.d_out(),
                expected: format!("the chain's input dimension {d_in}"),
            });
        }
        self.chain.insert(0, transform);
        Ok(())
    }

    /// The transforms, first applied first.
    pub fn transforms(&self) -> &[Box<dyn VectorTransform>] {
        &self.chain
    }

    /// The index behind the transforms.
    pub fn index(&self) -> &I {
        &self.index
    }

    /// Applies the whole chain (Faiss's `apply_chain`).
    pub fn apply_chain(&self, x: &[f32]) -> Result<Vec<f32>> {
        let mut cur = x.to_vec();
        for t in &self.chain {
            cur = t.apply(&cur)?;
        }
        Ok(cur)
    }

    /// Reverses the whole chain (Faiss's `reverse_chain`).
    pub fn reverse_chain(&self, y: &[f32]) -> Result<Vec<f32>> {
        let mut cur = y.to_vec();
        for t in self.chain.iter().rev() {
            cur = t.reverse_transform(&cur)?;
        }
        Ok(cur)
    }
}

impl<I: Index + 'static> Index for IndexPreTransform<I> {
    fn dim(&self) -> usize {
        self.chain[0].d_in()
    }
    fn ntotal(&self) -> usize {
        self.index.ntotal()
    }
    fn metric(&self) -> MetricType {
        self.index.metric()
    }
    fn is_trained(&self) -> bool {
        self.chain.iter().all(|t| t.is_trained()) && self.index.is_trained()
    }
    fn train(&mut self, x: &[f32]) -> Result<()> {
        check::nonempty_finite("training set", x, self.dim())?;
        let mut cur = x.to_vec();
        for t in &mut self.chain {
            if !t.is_trained() {
                t.train(&cur)?;
            }
            cur = t.apply(&cur)?;
        }
        self.index.train(&cur)
    }
    fn add(&mut self, x: &[f32]) -> Result<()> {
        check::vectors("added", x, self.dim())?;
        let y = self.apply_chain(x)?;
        self.index.add(&y)
    }
    fn add_with_ids(&mut self, x: &[f32], ids: &[Idx]) -> Result<()> {
        check::vectors("added", x, self.dim())?;
        let y = self.apply_chain(x)?;
        self.index.add_with_ids(&y, ids)
    }
    fn search_with(&self, q: &[f32], k: usize, params: &SearchParams<'_>) -> Result<SearchResult> {
        check::k(k)?;
        let y = self.apply_chain(q)?;
        self.index.search_with(&y, k, params)
    }
    fn range_search_with(
        &self,
        q: &[f32],
        radius: f32,
        params: &SearchParams<'_>,
    ) -> Result<RangeSearchResult> {
        let y = self.apply_chain(q)?;
        self.index.range_search_with(&y, radius, params)
    }
    fn reconstruct(&self, id: Idx) -> Result<Vec<f32>> {
        self.reverse_chain(&self.index.reconstruct(id)?)
    }
    fn reconstruct_n(&self, start: Idx, n: usize) -> Result<Vec<f32>> {
        self.reverse_chain(&self.index.reconstruct_n(start, n)?)
    }
    fn ids_are_positions(&self) -> bool {
        self.index.ids_are_positions()
    }
    fn sa_code_size(&self) -> Result<usize> {
        self.index.sa_code_size()
    }
    fn sa_encode(&self, x: &[f32]) -> Result<Vec<u8>> {
        self.index.sa_encode(&self.apply_chain(x)?)
    }
    fn sa_decode(&self, codes: &[u8]) -> Result<Vec<f32>> {
        self.reverse_chain(&self.index.sa_decode(codes)?)
    }
    fn add_sa_codes(&mut self, codes: &[u8], ids: Option<&[Idx]>) -> Result<()> {
        self.index.add_sa_codes(codes, ids)
    }
    fn remove_ids(&mut self, selector: &dyn IdSelector) -> Result<usize> {
        self.index.remove_ids(selector)
    }
    fn reset(&mut self) -> Result<()> {
        self.index.reset()
    }
    fn set_param(&mut self, name: &str, value: f64) -> Result<()> {
        self.index.set_param(name, value)
    }
    fn param(&self, name: &str) -> Option<f64> {
        self.index.param(name)
    }
    fn parameter_ranges(&self) -> Vec<crate::autotune::ParameterRange> {
        self.index.parameter_ranges()
    }
    fn description(&self) -> String {
        let mut parts: Vec<String> = self.chain.iter().map(|t| t.description()).collect();
        parts.push(self.index.description());
        parts.join(",")
    }
    fn view(&self) -> crate::IndexView<'_> {
        crate::IndexView::PreTransform {
            transforms: &self.chain,
            inner: &self.index,
        }
    }
    fn part_mut(&mut self, part: crate::Part) -> Option<&mut dyn Index> {
        (part == crate::Part::Inner).then_some(&mut self.index as &mut dyn Index)
    }
}

impl<I: Index> std::fmt::Debug for IndexPreTransform<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexPreTransform")
            .field(
                "chain",
                &self
                    .chain
                    .iter()
                    .map(|t| t.description())
                    .collect::<Vec<_>>(),
            )
            .field("index", &self.index.description())
            .finish()
    }
}
