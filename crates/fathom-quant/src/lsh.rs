//! Binary codes by signs of (optionally rotated, optionally re-centred) coordinates: the
//! codec of Faiss's `IndexLSH`.

use fathom_core::{Error, Result, check};
use fathom_linalg::{RandomRotationMatrix, VectorTransform};
use rayon::prelude::*;

/// Codes a `d`-dimensional vector as `nbits` bits: bit `j` is set when coordinate `j` of
/// the projected vector is at or above its threshold. The projection is a random rotation
/// to `nbits` dimensions (seed 5, as Faiss) when `rotate_data`, otherwise the first
/// `nbits` coordinates; thresholds are the per-bit medians of the training set when
/// `train_thresholds`, otherwise 0. Bits are packed LSB-first, `⌈nbits/8⌉` bytes.
///
/// ```
/// use fathom_quant::{Codec, LshEncoder};
/// let enc = LshEncoder::new(4, 4, false, false).unwrap();
/// let code = enc.compute_codes(&[1.0, -1.0, 0.5, -0.5]).unwrap();
/// assert_eq!(code, vec![0b0101]);
/// ```
#[derive(Debug, Clone)]
pub struct LshEncoder {
    d: usize,
    nbits: usize,
    rotation: Option<RandomRotationMatrix>,
    train_thresholds: bool,
    thresholds: Vec<f32>,
    is_trained: bool,
}

impl LshEncoder {
    /// A new encoder; without rotation `nbits` must not exceed `d`.
    pub fn new(d: usize, nbits: usize, rotate_data: bool, train_thresholds: bool) -> Result<Self> {
        if d == 0 || nbits == 0 {
            return Err(Error::invalid(format!(
                "LSH needs d ≥ 1 and nbits ≥ 1, got d = {d}, nbits = {nbits}"
            )));
        }
        let rotation = if rotate_data {
            let mut r = RandomRotationMatrix::new(d, nbits)?;
            r.init(5);
            Some(r)
        } else {
            if nbits > d {
                return Err(Error::invalid(format!(
                    "LSH without rotation takes nbits ≤ d coordinates: nbits = {nbits}, d = {d}"
                )));
            }
            None
        };
        Ok(LshEncoder {
            d,
            nbits,
            rotation,
            train_thresholds,
            thresholds: Vec::new(),
            is_trained: !train_thresholds,
        })
    }

    /// Input dimension.
    pub fn d(&self) -> usize {
        self.d
    }
    /// Bits per code.
    pub fn nbits(&self) -> usize {
        self.nbits
    }
    /// Bytes per code.
    pub fn code_size(&self) -> usize {
        self.nbits.div_ceil(8)
    }
    /// Whether the data is rotated.
    pub fn rotate_data(&self) -> bool {
        self.rotation.is_some()
    }
    /// Whether thresholds are trained.
    pub fn train_thresholds(&self) -> bool {
        self.train_thresholds
    }
    /// The rotation, when there is one.
    pub fn rotation(&self) -> Option<&RandomRotationMatrix> {
        self.rotation.as_ref()
    }
    /// The trained thresholds (empty unless `train_thresholds`).
    pub fn thresholds(&self) -> &[f32] {
        &self.thresholds
    }
    /// Whether codes can be computed.
    pub fn is_trained(&self) -> bool {
        self.is_trained
    }

    /// Replaces the rotation and thresholds (as read from a file).
    pub fn set_parts(
        &mut self,
        rotation: Option<RandomRotationMatrix>,
        thresholds: Vec<f32>,
    ) -> Result<()> {
        if self.train_thresholds && thresholds.len() != self.nbits {
            return Err(Error::DimensionMismatch {
                what: "LSH thresholds".into(),
                got: thresholds.len(),
                expected: format!("nbits = {}", self.nbits),
            });
        }
        if let Some(r) = &rotation
            && (r.d_in() != self.d || r.d_out() != self.nbits)
        {
            return Err(Error::invalid(format!(
                "LSH rotation maps {} → {} dimensions, expected {} → {}",
                r.d_in(),
                r.d_out(),
                self.d,
                self.nbits
            )));
        }
        self.rotation = rotation;
        self.thresholds = thresholds;
        self.is_trained = true;
        Ok(())
    }

    /// The projected vectors (`n × nbits`), before thresholds.
    fn project(&self, x: &[f32]) -> Result<Vec<f32>> {
        match &self.rotation {
            Some(r) => r.apply(x),
            None => Ok(x
                .chunks_exact(self.d)
                .flat_map(|r| &r[..self.nbits])
                .copied()
                .collect()),
        }
    }

    /// Sets the thresholds to the per-bit medians of `x` (when `train_thresholds`).
    pub fn train(&mut self, x: &[f32]) -> Result<()> {
        if self.train_thresholds {
            let n = check::nonempty_finite("LSH training set", x, self.d)?;
            let y = self.project(x)?;
            let nb = self.nbits;
            self.thresholds = (0..nb)
                .map(|j| {
                    let mut col: Vec<f32> = (0..n).map(|i| y[i * nb + j]).collect();
                    let hi = *col.select_nth_unstable_by(n / 2, f32::total_cmp).1;
                    if n % 2 == 0 {
                        let lo = *col.select_nth_unstable_by(n / 2 - 1, f32::total_cmp).1;
                        (hi + lo) / 2.0
                    } else {
                        hi
                    }
                })
                .collect();
        } else {
            // Nothing is learned: only the shape matters.
            check::vectors("LSH training set", x, self.d)?;
        }
        self.is_trained = true;
        Ok(())
    }

    /// Decodes codes: each bit to ±1, plus the threshold, rotated back (Faiss's
    /// `sa_decode`; only the signs survive coding, so this is a direction, not the vector).
    pub fn decode(&self, codes: &[u8]) -> Result<Vec<f32>> {
        let cs = self.code_size();
        let n = check::codes("LSH codes", codes, cs)?;
        let nb = self.nbits;
        let mut y = Vec::with_capacity(n * nb);
        for code in codes.chunks_exact(cs) {
            for j in 0..nb {
                let bit = code[j / 8] >> (j % 8) & 1;
                let t = self.thresholds.get(j).copied().unwrap_or(0.0);
                y.push(if bit == 1 { 1.0 } else { -1.0 } + t);
            }
        }
        match &self.rotation {
            Some(r) => r.reverse_transform(&y),
            None => {
                let mut x = vec![0.0f32; y.len() / nb * self.d];
                for (xr, yr) in x.chunks_exact_mut(self.d).zip(y.chunks_exact(nb)) {
                    xr[..nb].copy_from_slice(yr);
                }
                Ok(x)
            }
        }
    }
}

impl crate::Codec for LshEncoder {
    fn dim(&self) -> usize {
        self.d
    }
    fn code_size(&self) -> usize {
        LshEncoder::code_size(self)
    }
    fn compute_codes_into(&self, x: &[f32], codes: &mut [u8]) -> Result<()> {
        if !self.is_trained {
            return Err(Error::NotTrained("LSH encoding".into()));
        }
        let n = check::vectors("encoded", x, self.d)?;
        check::finite("encoded", x, self.d)?;
        let (d, nb, cs) = (self.d, self.nbits, self.code_size());
        check::output_len("LSH code buffer", codes.len(), n * cs)?;
        let out = codes;
        let zeros = vec![0.0f32; nb];
        let thr = if self.thresholds.is_empty() {
            &zeros
        } else {
            &self.thresholds
        };
        // Blocks of rows are projected and coded by one worker, so the projection of the
        // whole input never exists at once (and without rotation is never copied).
        const ROWS: usize = 1024;
        out.par_chunks_mut(cs * ROWS)
            .zip(x.par_chunks(d * ROWS))
            .try_for_each(|(codes, xb)| -> Result<()> {
                let rotated;
                let (y, stride) = match &self.rotation {
                    Some(r) => {
                        rotated = r.apply(xb)?;
                        (&rotated[..], nb)
                    }
                    None => (xb, d),
                };
                for (row, code) in y.chunks_exact(stride).zip(codes.chunks_exact_mut(cs)) {
                    for (byte, (v, t)) in
                        code.iter_mut().zip(row[..nb].chunks(8).zip(thr.chunks(8)))
                    {
                        let mut b = 0u8;
                        for (i, (&v, &t)) in v.iter().zip(t).enumerate() {
                            b |= u8::from(v - t >= 0.0) << i;
                        }
                        *byte = b;
                    }
                }
                Ok(())
            })
    }
}
