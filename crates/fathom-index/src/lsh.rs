//! `IndexLsh`: binary codes searched by Hamming distance.

use fathom_core::{MetricType, Result};
use fathom_quant::{Codec, LshEncoder};

use crate::code_scan::hamming_scorer;
use crate::flat_codes::{CodeScorer, FlatCodec, IndexFlatCodes};

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
pub type IndexLsh = IndexFlatCodes<LshEncoder>;

impl IndexFlatCodes<LshEncoder> {
    /// `nbits`-bit codes of `d`-dimensional vectors; see [`LshEncoder::new`].
    pub fn new(d: usize, nbits: usize, rotate_data: bool, train_thresholds: bool) -> Result<Self> {
        let enc = LshEncoder::new(d, nbits, rotate_data, train_thresholds)?;
        // Codes compare by Hamming distance, which stands in for L2.
        Ok(Self::with_codec(enc, MetricType::L2))
    }

    /// The encoder.
    pub fn encoder(&self) -> &LshEncoder {
        &self.codec
    }
    /// The encoder, to replace its parts (as read from a file).
    pub fn encoder_mut(&mut self) -> &mut LshEncoder {
        &mut self.codec
    }
}

impl FlatCodec for LshEncoder {
    /// The queries' codes.
    type Prepared = Vec<u8>;
    const NAME: &'static str = "IndexLSH";

    fn is_trained(&self) -> bool {
        LshEncoder::is_trained(self)
    }
    fn train(&mut self, x: &[f32]) -> Result<()> {
        LshEncoder::train(self, x)
    }
    fn decode(&self, code: &[u8]) -> Result<Vec<f32>> {
        LshEncoder::decode(self, code)
    }
    fn prepare(&self, _metric: MetricType, queries: &[f32]) -> Result<Vec<u8>> {
        self.compute_codes(queries)
    }
    fn scorer<'a>(
        &'a self,
        _metric: MetricType,
        qcodes: &'a Vec<u8>,
        _queries: &'a [f32],
        codes: &'a [u8],
    ) -> impl Fn(usize) -> CodeScorer<'a> + Sync + 'a {
        hamming_scorer(qcodes, codes, self.code_size())
    }
    fn description(&self) -> String {
        let mut s = String::from("LSH");
        if self.nbits() != self.d() {
            s += &self.nbits().to_string();
        }
        if self.rotate_data() {
            s.push('r');
        }
        if self.train_thresholds() {
            s.push('t');
        }
        s
    }
    fn view(index: &IndexFlatCodes<Self>) -> crate::IndexView<'_> {
        crate::IndexView::Lsh(index)
    }
}
