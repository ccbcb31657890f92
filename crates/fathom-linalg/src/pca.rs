//! Principal component analysis as Faiss's `PCAMatrix`.

use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, Mat, MatRef, Par, Side};
use fathom_core::{Error, Result, check};

use crate::rotation::random_orthogonal;
use crate::sample::subsample;
use crate::transform::{
    LinearTransform, VectorTransform, centered, check_reverse, delegate_to_linear, matmul_ab,
    mean_rows,
};

/// PCA from `d_in` to `d_out <= d_in` dimensions (Faiss's `PCAMatrix`; factory `PCA64`,
/// `PCAW64` whitened, `PCAR64` rotated, `PCAWR64`).
///
/// Training subsamples to `max_points_per_d · d_in` points (seed 1234), centres them,
/// and eigen-decomposes the scatter matrix `XcᵀXc` in f64 (or, with fewer points than
/// dimensions, the Gram matrix `XcXcᵀ`). Output row `i` is the `i`-th principal direction
/// (largest eigenvalue first), scaled by `(λᵢ + epsilon)^eigen_power` (−0.5 whitens),
/// optionally followed by a random rotation (seed 5) or spread over `balanced_bins` groups
/// of equal total variance. The bias is `−A·mean`. Reversible when `eigen_power == 0`
/// (`Aᵀ·y + mean`: exact on the kept components).
///
/// ```
/// use fathom_linalg::{PcaMatrix, VectorTransform};
/// // Points on a line in 3-D: one component carries all the variance.
/// let x: Vec<f32> = (0..50).flat_map(|i| { let t = i as f32; [t, 2.0 * t, -t] }).collect();
/// let mut pca = PcaMatrix::new(3, 1, 0.0, false).unwrap();
/// pca.train(&x).unwrap();
/// let back = pca.reverse_transform(&pca.apply(&x[3..6]).unwrap()).unwrap();
/// assert!((back[1] - 2.0).abs() < 1e-3);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PcaMatrix {
    lt: LinearTransform,
    /// Power applied to the eigenvalues when scaling the output (0: none, −0.5: whiten).
    pub eigen_power: f32,
    /// Added to the eigenvalues before `eigen_power`.
    pub epsilon: f32,
    /// Rotate the output randomly after the projection.
    pub random_rotation: bool,
    /// Training points kept per input dimension (1000).
    pub max_points_per_d: usize,
    /// Number of groups of output dimensions of balanced variance (0: off).
    pub balanced_bins: usize,
    mean: Vec<f32>,
    eigenvalues: Vec<f32>,
    /// All `d_in` principal directions, `d_in × d_in` row-major.
    pca_mat: Vec<f32>,
}

impl PcaMatrix {
    /// An untrained PCA; `d_out` must not exceed `d_in`.
    pub fn new(d_in: usize, d_out: usize, eigen_power: f32, random_rotation: bool) -> Result<Self> {
        let lt = LinearTransform::new(d_in, d_out)?;
        if d_out > d_in {
            return Err(Error::invalid(format!(
                "PCA reduces dimensions: d_out = {d_out} is larger than d_in = {d_in}"
            )));
        }
        Ok(PcaMatrix {
            lt,
            eigen_power,
            epsilon: 0.0,
            random_rotation,
            max_points_per_d: 1000,
            balanced_bins: 0,
            mean: Vec::new(),
            eigenvalues: Vec::new(),
            pca_mat: Vec::new(),
        })
    }

    /// A trained PCA from its parts (e.g. read from a file): the fitted map `lt`, the
    /// training `mean` and `eigenvalues` (`d_in` each) and the principal directions
    /// `pca_mat` (rows of `d_in`, at least `d_out` of them). An unset `lt` with empty parts
    /// gives an untrained PCA.
    #[allow(clippy::too_many_arguments)]
    pub fn from_parts(
        lt: LinearTransform,
        eigen_power: f32,
        epsilon: f32,
        random_rotation: bool,
        balanced_bins: usize,
        mean: Vec<f32>,
        eigenvalues: Vec<f32>,
        pca_mat: Vec<f32>,
    ) -> Result<Self> {
        let mut pca = Self::new(lt.d_in, lt.d_out, eigen_power, random_rotation)?;
        let d = lt.d_in;
        if lt.is_set() {
            let bad = |what: &str, got: usize, expected: String| {
                Err(Error::DimensionMismatch {
                    what: format!("PCA {what}"),
                    got,
                    expected,
                })
            };
            if mean.len() != d {
                return bad("mean", mean.len(), format!("d_in = {d}"));
            }
            if eigenvalues.len() != d {
                return bad("eigenvalues", eigenvalues.len(), format!("d_in = {d}"));
            }
            if !pca_mat.len().is_multiple_of(d) || pca_mat.len() < d * lt.d_out {
                return bad(
                    "matrix",
                    pca_mat.len(),
                    format!(
                        "a multiple of d_in = {d} with at least d_out = {} rows",
                        lt.d_out
                    ),
                );
            }
        }
        pca.epsilon = epsilon;
        pca.balanced_bins = balanced_bins;
        pca.lt = lt;
        pca.mean = mean;
        pca.eigenvalues = eigenvalues;
        pca.pca_mat = pca_mat;
        Ok(pca)
    }

    /// All principal directions found by training, one row of `d_in` per direction.
    pub fn pca_matrix(&self) -> &[f32] {
        &self.pca_mat
    }

    /// Eigenvalues of the training scatter matrix, largest first (`d_in` values; with fewer
    /// training points than dimensions the trailing ones are 0).
    pub fn eigenvalues(&self) -> &[f32] {
        &self.eigenvalues
    }

    /// The training mean.
    pub fn mean(&self) -> &[f32] {
        &self.mean
    }

    /// The fitted affine map.
    pub fn linear(&self) -> &LinearTransform {
        &self.lt
    }

    fn prepare_ab(&mut self) -> Result<()> {
        let (d_in, d_out) = (self.lt.d_in, self.lt.d_out);
        let mut a = self.pca_mat[..d_out * d_in].to_vec();
        if self.eigen_power != 0.0 {
            for (i, row) in a.chunks_exact_mut(d_in).enumerate() {
                let s = (self.eigenvalues[i] + self.epsilon).powf(self.eigen_power);
                if !s.is_finite() {
                    return Err(Error::invalid(format!(
                        "eigenvalue {i} is {} and cannot be raised to the power {} (add epsilon)",
                        self.eigenvalues[i], self.eigen_power
                    )));
                }
                row.iter_mut().for_each(|v| *v *= s);
            }
        }
        if self.balanced_bins > 0 {
            let bins = self.balanced_bins;
            if d_out % bins != 0 || self.random_rotation {
                return Err(Error::invalid(format!(
                    "balanced_bins = {bins} needs d_out = {d_out} to be a multiple and no random rotation"
                )));
            }
            let dsub = d_out / bins;
            let mut out = vec![0.0f32; d_out * d_in];
            let mut accu = vec![0.0f32; bins];
            let mut count = vec![0usize; bins];
            for i in 0..d_out {
                let j = (0..bins)
                    .filter(|&j| count[j] < dsub)
                    .min_by(|&x, &y| accu[x].total_cmp(&accu[y]))
                    .unwrap_or(0);
                let dst = j * dsub + count[j];
                accu[j] += self.eigenvalues[i];
                count[j] += 1;
                out[dst * d_in..(dst + 1) * d_in].copy_from_slice(&a[i * d_in..(i + 1) * d_in]);
            }
            a = out;
        }
        if self.random_rotation {
            let r = random_orthogonal(d_out, d_out, 5);
            let mut ra = vec![0.0f32; d_out * d_in];
            matmul_ab(&r, &a, d_out, d_out, d_in, &mut ra);
            a = ra;
        }
        let mut b = vec![0.0f32; d_out];
        fathom_kernels::matmul_abt(&a, &self.mean, d_in, -1.0, &mut b)?;
        self.lt.a = a;
        self.lt.b = b;
        self.lt.is_orthonormal = self.eigen_power == 0.0;
        Ok(())
    }
}

/// The lower triangle of `(X − mean)ᵀ(X − mean)` (`d × d`), centring blocks of rows into a small buffer and
/// accumulating one GEMM per block, in parallel: no centred copy of the data is made, and
/// the subtraction happens before the products, so a large mean costs no precision.
fn scatter_matrix(x: &[f32], mean: &[f32]) -> Mat<f32> {
    use rayon::prelude::*;
    const ROWS: usize = 4096;
    let d = mean.len();
    x.par_chunks(ROWS * d)
        .fold(
            || (Mat::<f32>::zeros(d, d), Vec::<f32>::new()),
            |(mut acc, mut buf), block| {
                buf.clear();
                for row in block.chunks_exact(d) {
                    buf.extend(row.iter().zip(mean).map(|(v, m)| v - m));
                }
                let b = MatRef::from_row_major_slice(&buf, block.len() / d, d);
                // Only the lower triangle: the eigen-solver reads no more, and it halves
                // the work (Faiss uses BLAS's ssyrk for the same reason).
                triangular::matmul(
                    acc.as_mut(),
                    BlockStructure::TriangularLower,
                    Accum::Add,
                    b.transpose(),
                    BlockStructure::Rectangular,
                    b,
                    BlockStructure::Rectangular,
                    1.0,
                    Par::Seq,
                );
                (acc, buf)
            },
        )
        .map(|(acc, _)| acc)
        .reduce(|| Mat::<f32>::zeros(d, d), |a, b| a + b)
}

impl VectorTransform for PcaMatrix {
    delegate_to_linear!(Pca);
    fn train(&mut self, x: &[f32]) -> Result<()> {
        let d = self.lt.d_in;
        check::nonempty_finite("training set", x, d)?;
        let sampled = subsample(x, d, self.max_points_per_d.saturating_mul(d).max(1), 1234);
        let x = sampled.as_deref().unwrap_or(x);
        let n = x.len() / d;
        self.mean = mean_rows(x, d);
        let (vals, vecs): (Vec<f64>, Vec<f32>) = if n >= d {
            let cov = scatter_matrix(x, &self.mean);
            let cov64 = Mat::<f64>::from_fn(d, d, |i, j| cov[(i, j)] as f64);
            let evd = cov64
                .self_adjoint_eigen(Side::Lower)
                .map_err(|e| Error::invalid(format!("PCA eigen-decomposition failed: {e:?}")))?;
            let s = evd.S().column_vector();
            let u = evd.U();
            // Descending order; row i of the PCA matrix is the i-th eigenvector.
            let vals = (0..d).map(|i| s[d - 1 - i]).collect();
            let mut vecs = vec![0.0f32; d * d];
            for i in 0..d {
                for j in 0..d {
                    vecs[i * d + j] = u[(j, d - 1 - i)] as f32;
                }
            }
            (vals, vecs)
        } else {
            let xc = centered(x, &self.mean);
            let xm = MatRef::from_row_major_slice(&xc, n, d);
            let mut gram = Mat::<f32>::zeros(n, n);
            matmul(
                gram.as_mut(),
                Accum::Replace,
                xm,
                xm.transpose(),
                1.0,
                Par::rayon(0),
            );
            let g64 = Mat::<f64>::from_fn(n, n, |i, j| gram[(i, j)] as f64);
            let evd = g64
                .self_adjoint_eigen(Side::Lower)
                .map_err(|e| Error::invalid(format!("PCA eigen-decomposition failed: {e:?}")))?;
            let s = evd.S().column_vector();
            let u = evd.U();
            let mut vals = vec![0.0f64; d];
            let mut vecs = vec![0.0f32; d * d];
            for i in 0..n {
                vals[i] = s[n - 1 - i].max(0.0);
                // Direction = Xcᵀ·v, normalised.
                let row = &mut vecs[i * d..(i + 1) * d];
                for (p, xrow) in xc.chunks_exact(d).enumerate() {
                    let w = u[(p, n - 1 - i)] as f32;
                    row.iter_mut().zip(xrow).for_each(|(r, x)| *r += w * x);
                }
                let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
                if norm > 0.0 {
                    row.iter_mut().for_each(|v| *v /= norm);
                }
            }
            (vals, vecs)
        };
        self.eigenvalues = vals.iter().map(|&v| v as f32).collect();
        self.pca_mat = vecs;
        self.prepare_ab()
    }
    fn reverse_transform(&self, y: &[f32]) -> Result<Vec<f32>> {
        check_reverse(self, y)?;
        if !self.lt.is_orthonormal {
            return Err(Error::Unsupported(
                "a whitening PCA (eigen_power != 0) cannot be reversed".into(),
            ));
        }
        // y = A·(x − mean), so the preimage closest to the training data is Aᵀ·y + mean
        // (Faiss computes Aᵀ·(y − b), which drops the part of the mean outside the kept
        // components).
        let mut x = self.lt.reverse_rows(y, false)?;
        for row in x.chunks_exact_mut(self.lt.d_in) {
            row.iter_mut().zip(&self.mean).for_each(|(v, m)| *v += m);
        }
        Ok(x)
    }
    fn description(&self) -> String {
        let w = if self.eigen_power == -0.5 { "W" } else { "" };
        let r = if self.random_rotation { "R" } else { "" };
        format!("PCA{w}{r}{}", self.lt.d_out)
    }
}
