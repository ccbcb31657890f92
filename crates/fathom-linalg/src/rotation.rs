//! Random orthogonal transforms.

use faer::Mat;
use fathom_core::{Error, Result};

use crate::rng::float_randn;
use crate::transform::{LinearTransform, VectorTransform, check_reverse, delegate_to_linear};

/// A `d_out × d_in` matrix with orthonormal rows (`d_out <= d_in`) or orthonormal columns
/// (`d_out > d_in`, a tight frame), from a seeded Gaussian matrix (Faiss's `float_randn`)
/// through a QR decomposition.
pub(crate) fn random_orthogonal(d_out: usize, d_in: usize, seed: i64) -> Vec<f32> {
    let (big, small) = (d_in.max(d_out), d_in.min(d_out));
    let g = float_randn(big * small, seed);
    let m = Mat::<f64>::from_fn(big, small, |i, j| g[j * big + i] as f64);
    let q = m.qr().compute_thin_Q();
    let mut a = vec![0.0f32; d_out * d_in];
    for r in 0..d_out {
        for c in 0..d_in {
            // Rows of Qᵀ when reducing, rows of Q when expanding.
            a[r * d_in + c] = if d_out <= d_in { q[(c, r)] } else { q[(r, c)] } as f32;
        }
    }
    a
}

/// A seeded random rotation (Faiss's `RandomRotationMatrix`, factory `RR`): training only
/// draws the matrix (seed 12345, as Faiss's `train`), so it needs no data. Reversible.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomRotationMatrix {
    lt: LinearTransform,
}

impl RandomRotationMatrix {
    /// An untrained rotation from `d_in` to `d_out` dimensions.
    pub fn new(d_in: usize, d_out: usize) -> Result<Self> {
        Ok(RandomRotationMatrix {
            lt: LinearTransform::new(d_in, d_out)?,
        })
    }

    /// A rotation with a given matrix (e.g. read from a file): `lt` must be set and have no
    /// bias.
    pub fn from_linear(lt: LinearTransform) -> Result<Self> {
        if !lt.is_set() || !lt.b.is_empty() {
            return Err(Error::invalid(format!(
                "a random rotation needs a {}×{} matrix and no bias",
                lt.d_out, lt.d_in
            )));
        }
        Ok(RandomRotationMatrix { lt })
    }

    /// Draws the matrix from `seed`.
    pub fn init(&mut self, seed: i64) {
        self.lt.a = random_orthogonal(self.lt.d_out, self.lt.d_in, seed);
        self.lt.is_orthonormal = true;
    }

    /// The underlying `A` (no bias).
    pub fn linear(&self) -> &LinearTransform {
        &self.lt
    }
}

impl VectorTransform for RandomRotationMatrix {
    delegate_to_linear!(RandomRotation);
    fn train(&mut self, _x: &[f32]) -> Result<()> {
        self.init(12345);
        Ok(())
    }
    fn reverse_transform(&self, y: &[f32]) -> Result<Vec<f32>> {
        check_reverse(self, y)?;
        self.lt.reverse_rows(y, true)
    }
    fn description(&self) -> String {
        format!("RR{}", self.lt.d_out)
    }
}
