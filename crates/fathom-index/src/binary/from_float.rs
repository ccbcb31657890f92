//! A binary index backed by a float index (Faiss's `IndexBinaryFromFloat`): vectors are
//! stored as `±1` floats, so any float index (IVF, HNSW, PQ, …) can search binary data.
//! For `±1` vectors the squared L2 distance is four times the Hamming distance, which is
//! how results are given back.

use fathom_core::{
    Error, IdSelector, Idx, MetricType, RangeSearchResult, Result, SearchParams, SearchResult,
};

use super::ivf::{binary_to_real, real_to_binary};
use super::{BinaryIndexView, IndexBinary, check_queries};
use crate::Index;

/// Binary vectors searched through a float index of the same dimension (Faiss's
/// `IndexBinaryFromFloat`). The float index must compare with L2.
///
/// ```
/// use fathom_index::binary::{IndexBinary, IndexBinaryFromFloat};
/// use fathom_index::IndexFlat;
/// let mut index = IndexBinaryFromFloat::new(Box::new(IndexFlat::new_l2(16).unwrap())).unwrap();
/// index.add(&[0x00, 0xff, 0x0f, 0x0f]).unwrap();
/// let res = index.search(&[0x01, 0xff], 2).unwrap();
/// assert_eq!((res.labels, res.distances), (vec![0, 1], vec![1.0, 7.0]));
/// ```
pub struct IndexBinaryFromFloat {
    index: Box<dyn Index>,
}

impl IndexBinaryFromFloat {
    /// Wraps `index` (L2, dimension a positive multiple of 8, one float per bit).
    pub fn new(index: Box<dyn Index>) -> Result<Self> {
        let d = index.dim();
        if d == 0 || !d.is_multiple_of(8) {
            return Err(Error::invalid(format!(
                "IndexBinaryFromFloat needs a float index whose dimension is a positive \
                 multiple of 8 (one float per bit); got d = {d}"
            )));
        }
        if index.metric() != MetricType::L2 {
            return Err(Error::invalid(format!(
                "IndexBinaryFromFloat turns squared L2 distances into Hamming distances; the \
                 float index compares with {:?}",
                index.metric()
            )));
        }
        Ok(IndexBinaryFromFloat { index })
    }

    /// The float index.
    pub fn index(&self) -> &dyn Index {
        &*self.index
    }
    /// The float index, for its parameters.
    pub fn index_mut(&mut self) -> &mut dyn Index {
        &mut *self.index
    }

    fn floats(&self, what: &str, x: &[u8]) -> Result<Vec<f32>> {
        fathom_core::check::codes(what, x, self.code_size())?;
        Ok(binary_to_real(x))
    }
}

/// A squared L2 distance between `±1` vectors as a bit count (Faiss rounds `d / 4`).
fn to_bits(d: f32) -> f32 {
    if d.is_finite() { (d / 4.0).round() } else { d }
}

impl IndexBinary for IndexBinaryFromFloat {
    fn d(&self) -> usize {
        self.index.dim()
    }
    fn ntotal(&self) -> usize {
        self.index.ntotal()
    }
    fn is_trained(&self) -> bool {
        self.index.is_trained()
    }
    fn train(&mut self, x: &[u8]) -> Result<()> {
        let xf = self.floats("training set", x)?;
        self.index.train(&xf)
    }
    fn add(&mut self, x: &[u8]) -> Result<()> {
        let xf = self.floats("added binary vectors", x)?;
        self.index.add(&xf)
    }
    fn add_with_ids(&mut self, x: &[u8], ids: &[Idx]) -> Result<()> {
        let xf = self.floats("added binary vectors", x)?;
        self.index.add_with_ids(&xf, ids)
    }
    fn search_with(
        &self,
        queries: &[u8],
        k: usize,
        params: &SearchParams<'_>,
    ) -> Result<SearchResult> {
        check_queries(self, queries)?;
        let mut res = self
            .index
            .search_with(&binary_to_real(queries), k, params)?;
        res.distances.iter_mut().for_each(|d| *d = to_bits(*d));
        Ok(res)
    }
    fn range_search_with(
        &self,
        queries: &[u8],
        radius: f32,
        params: &SearchParams<'_>,
    ) -> Result<RangeSearchResult> {
        check_queries(self, queries)?;
        super::check_radius(radius)?;
        // Hamming distances are integers: `h < radius` ⇔ `4h < 4·radius`, and the float
        // distances of ±1 vectors are exactly 4h.
        let mut res =
            self.index
                .range_search_with(&binary_to_real(queries), 4.0 * radius, params)?;
        res.distances.iter_mut().for_each(|d| *d = to_bits(*d));
        Ok(res)
    }
    fn reconstruct(&self, id: Idx) -> Result<Vec<u8>> {
        Ok(real_to_binary(&self.index.reconstruct(id)?))
    }
    fn remove_ids(&mut self, selector: &dyn IdSelector) -> Result<usize> {
        self.index.remove_ids(selector)
    }
    fn reset(&mut self) -> Result<()> {
        self.index.reset()
    }
    fn description(&self) -> String {
        format!("BFromFloat({})", self.index.description())
    }
    fn view(&self) -> BinaryIndexView<'_> {
        BinaryIndexView::FromFloat(self)
    }
    fn set_param(&mut self, name: &str, value: f64) -> Result<()> {
        self.index.set_param(name, value)
    }
    fn param(&self, name: &str) -> Option<f64> {
        self.index.param(name)
    }
}
