//! `IndexLsh`: binary codes searched by Hamming distance.

use fathom_core::{
    IdSelector, Idx, MetricType, RangeSearchResult, Result, SearchParams, SearchResult,
};
use fathom_kernels::codes::hamming;
use fathom_quant::{Codec, LshEncoder};

use crate::code_scan::{BoxedScorer, CodeStore, knn_scan, range_scan, to_result};
use crate::{Index, check_queries, check_search};

/// Locality-sensitive hashing by signs (Faiss's `IndexLSH`, factory `LSH`, `LSHr`, `LSHt`,
/// `LSHrt`): each vector becomes `nbits` bits ([`LshEncoder`]) and search ranks codes by
/// Hamming distance to the query's code, with a popcount kernel. Distances are bit counts.
///
/// ```
/// use fathom_index::{Index, IndexLsh};
/// let mut index = IndexLsh::new(4, 4, false, false).unwrap();
/// index.add(&[1.0, -1.0, 1.0, -1.0, -1.0, 1.0, -1.0, 1.0]).unwrap();
/// let res = index.search(&[0.5, -0.2, 0.3, -0.9], 1).unwrap();
/// assert_eq!((res.labels[0], res.distances[0]), (0, 0.0));
/// ```
#[derive(Debug, Clone)]
pub struct IndexLsh {
    enc: LshEncoder,
    store: CodeStore,
}

impl IndexLsh {
    /// `nbits`-bit codes of `d`-dimensional vectors; see [`LshEncoder::new`].
    pub fn new(d: usize, nbits: usize, rotate_data: bool, train_thresholds: bool) -> Result<Self> {
        let enc = LshEncoder::new(d, nbits, rotate_data, train_thresholds)?;
        Ok(IndexLsh {
            store: CodeStore::new(enc.code_size()),
            enc,
        })
    }

    /// The encoder.
    pub fn encoder(&self) -> &LshEncoder {
        &self.enc
    }
    /// The encoder, to replace its parts (as read from a file).
    pub fn encoder_mut(&mut self) -> &mut LshEncoder {
        &mut self.enc
    }
    /// The codes, `ntotal × code_size` bytes.
    pub fn codes(&self) -> &[u8] {
        &self.store.codes
    }
    /// Appends codes computed elsewhere.
    pub fn add_codes(&mut self, codes: &[u8]) -> Result<()> {
        self.store.append("LSH codes", codes)
    }
    crate::code_scan::mapped_code_methods!();

    fn scorer<'a>(&'a self, qcodes: &'a [u8]) -> impl Fn(usize) -> BoxedScorer<'a> + Sync {
        let cs = self.store.code_size;
        move |q| {
            let qc = &qcodes[q * cs..(q + 1) * cs];
            let mut ham = Vec::new();
            Box::new(move |start: usize, out: &mut [f32]| {
                ham.resize(out.len(), 0u32);
                hamming::distances(
                    qc,
                    &self.store.codes[start * cs..(start + out.len()) * cs],
                    &mut ham,
                );
                for (o, &h) in out.iter_mut().zip(&ham) {
                    *o = h as f32;
                }
            })
        }
    }
}

impl Index for IndexLsh {
    fn dim(&self) -> usize {
        self.enc.d()
    }
    fn ntotal(&self) -> usize {
        self.store.len()
    }
    fn metric(&self) -> MetricType {
        MetricType::L2
    }
    fn is_trained(&self) -> bool {
        self.enc.is_trained()
    }
    fn train(&mut self, x: &[f32]) -> Result<()> {
        self.enc.train(x)
    }
    fn add(&mut self, x: &[f32]) -> Result<()> {
        self.store.add_vectors(&self.enc, x)
    }

    fn search_with(
        &self,
        queries: &[f32],
        k: usize,
        params: &SearchParams<'_>,
    ) -> Result<SearchResult> {
        let nq = check_search(self, queries, k)?;
        let qcodes = self.enc.compute_codes(queries)?;
        let tops = knn_scan(nq, self.ntotal(), k, params.selector, self.scorer(&qcodes));
        to_result(tops, k, MetricType::L2, |_, key| key)
    }

    fn range_search_with(
        &self,
        queries: &[f32],
        radius: f32,
        params: &SearchParams<'_>,
    ) -> Result<RangeSearchResult> {
        let nq = check_queries(self, queries)?;
        let qcodes = self.enc.compute_codes(queries)?;
        Ok(range_scan(
            nq,
            self.ntotal(),
            radius,
            MetricType::L2,
            params.selector,
            self.scorer(&qcodes),
        ))
    }

    fn reconstruct(&self, id: Idx) -> Result<Vec<f32>> {
        self.enc.decode(self.store.checked_code(id)?)
    }

    fn remove_ids(&mut self, selector: &dyn IdSelector) -> Result<usize> {
        self.store.remove(selector)
    }

    fn reset(&mut self) -> Result<()> {
        self.store.codes.clear();
        Ok(())
    }

    fn description(&self) -> String {
        let mut s = String::from("LSH");
        if self.enc.nbits() != self.enc.d() {
            s += &self.enc.nbits().to_string();
        }
        if self.enc.rotate_data() {
            s.push('r');
        }
        if self.enc.train_thresholds() {
            s.push('t');
        }
        s
    }

    fn view(&self) -> crate::IndexView<'_> {
        crate::IndexView::Lsh(self)
    }
}
