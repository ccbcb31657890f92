//! What every codec shares: vectors of dimension `dim` become codes of `code_size` bytes.

use fathom_core::Result;

/// A vector codec (product, scalar or LSH quantizer): encoding in bulk, in parallel.
///
/// ```
/// use fathom_quant::{Codec, QuantizerType, ScalarQuantizer};
/// let sq = ScalarQuantizer::new(2, QuantizerType::Fp16).unwrap();
/// let codes = sq.compute_codes(&[1.0, 2.0, 3.0, 4.0]).unwrap();
/// assert_eq!(codes.len(), 2 * sq.code_size());
/// ```
pub trait Codec: Sync {
    /// Dimension of the vectors coded.
    fn dim(&self) -> usize;
    /// Bytes per code.
    fn code_size(&self) -> usize;
    /// Codes the rows of `x` into `codes` (`n × code_size` bytes), such as the tail of an
    /// index's storage, so that nothing is copied after coding.
    fn compute_codes_into(&self, x: &[f32], codes: &mut [u8]) -> Result<()>;
    /// Codes every row of `x`: `n × code_size` bytes.
    fn compute_codes(&self, x: &[f32]) -> Result<Vec<u8>> {
        let mut codes = vec![0u8; x.len() / self.dim().max(1) * self.code_size()];
        self.compute_codes_into(x, &mut codes)?;
        Ok(codes)
    }
}
